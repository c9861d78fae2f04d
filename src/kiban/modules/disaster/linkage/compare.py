"""Comparing two normalised registrations: string distances and the comparison levels.

Each level is written twice, as Splink SQL (``Level.sql``, columns suffixed ``_l``/``_r``) and as
its Python twin (``Level.test``); a pair takes the first level that holds, as in Splink's
CASE WHEN. The model has four comparisons: given name (kanji, reading, near reading, reading
guessed from the spelling, written in kana vs kanji, different), birth date (exact, day/month
swapped, one typo, one day off, the year one off, an age written as 1 January), sex, and
"household" — family name, address and phone *together*, because a household shares all three
and scoring them independently would count one piece of evidence three times (every twin would
be linked).

Blocking rules (``BLOCKING_RULES``): full reading (guessed from the spelling where none was
written); full normalised name; birth date with family name, given name, given reading, phone or
town; phone with family or given name; family name with the whole address.

Changing a comparison level or blocking rule here requires retraining (loading refuses a model
whose SQL differs from the code). The SQL is plain (equality, ``left``/``right``/``substr``,
``levenshtein``, ``starts_with`` and the three functions ``spark.py`` defines for Spark): what needs
arithmetic or a dictionary is computed once per registration in ``normalise.py`` instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from kiban.modules.disaster.linkage.normalise import (
    ADDR,
    ADDR_LG,
    ADDR_NUM,
    ADDR_TOWN,
    COLUMNS,
    DOB,
    DOB_ALT,
    FAM_G,
    FAM_K,
    FAM_R,
    FAM_RL,
    GIV_C,
    GIV_G,
    GIV_K,
    GIV_R,
    GIV_RL,
    PHONE,
    SEX,
)

# --------------------------------------------------------------------------- string distances
# Python twins of DuckDB's functions. They agree with the SQL engine by construction, not by
# matching one release's internals:
# * every value compared by distance is ASCII (readings coded one byte per kana, digits for dates,
#   phones and block numbers), so "bytes" and "characters" are the same thing (DuckDB 1.x counted
#   bytes, 2.x counts characters: on ASCII both give the same answer); the twins refuse anything else;
# * Levenshtein and Damerau–Levenshtein are integers; Jaro–Winkler is a rational number whose
#   floating-point rounding may differ between builds, so the threshold sits just below 0.9
#   (``JW_CLOSE``): no pair of strings up to ``JW_MAX_LEN`` bytes has a true similarity in
#   [JW_CLOSE, 0.9), and rounding moves a value by ~1e-16, far less than that gap. (``JW_MAX_LEN`` lives in
#   ``normalise.py``, which cuts readings to it: the similarity's denominator is at most 30·n³, so the gap
#   below 0.9 is at least 1/(30·n³) > 1e-7 for n ≤ 64.)

JW_CLOSE = 0.8999999
JW_CLOSE_SQL = "0.8999999"


def _ascii_bytes(value: str) -> bytes:
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"string distances compare ASCII-coded values only, not {value!r}") from None


def levenshtein(a: str, b: str) -> int:
    x, y = _ascii_bytes(a), _ascii_bytes(b)
    if len(x) < len(y):
        x, y = y, x
    previous = list(range(len(y) + 1))
    for i, cx in enumerate(x, 1):
        current = [i]
        for j, cy in enumerate(y, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (cx != cy)))
        previous = current
    return previous[-1]


def within_one_edit_or_swap(a: str, b: str) -> bool:
    """``damerau_levenshtein(a, b) <= 1`` (one insertion, deletion, substitution or adjacent swap)."""
    x, y = _ascii_bytes(a), _ascii_bytes(b)
    if x == y:
        return True
    if len(x) == len(y):
        diffs = [i for i in range(len(x)) if x[i] != y[i]]
        if len(diffs) == 1:
            return True
        return len(diffs) == 2 and diffs[1] == diffs[0] + 1 and x[diffs[0]] == y[diffs[1]] and x[diffs[1]] == y[diffs[0]]
    return levenshtein(a, b) <= 1


def _jaro(p: bytes, t: bytes) -> float:
    p_len, t_len = len(p), len(t)
    if not p_len or not t_len:
        return 0.0
    if p_len == 1 and t_len == 1:
        return float(p[0] == t[0])
    if t_len > p_len:
        bound = t_len // 2 - 1
        if t_len > p_len + bound:
            t = t[:p_len + bound]
    else:
        bound = p_len // 2 - 1
        if p_len > t_len + bound:
            p = p[:t_len + bound]
    p_flag = [False] * len(p)
    t_flag = [False] * len(t)
    common = 0
    for j, ch in enumerate(t):
        for i in range(max(0, j - bound), min(len(p), j + bound + 1)):
            if not p_flag[i] and p[i] == ch:
                p_flag[i] = t_flag[j] = True
                common += 1
                break
    if not common:
        return 0.0
    transpositions, k = 0, 0
    for j, flagged in enumerate(t_flag):
        if flagged:
            while not p_flag[k]:
                k += 1
            transpositions += t[j] != p[k]
            k += 1
    transpositions //= 2
    sim = common / p_len
    sim += common / t_len
    sim += (common - transpositions) / common
    return sim / 3.0


def jaro_winkler(a: str, b: str) -> float:
    """DuckDB's ``jaro_winkler_similarity(a, b)`` on ASCII (prefix weight 0.1, prefix up to 4).

    The algorithm of the rapidfuzz code DuckDB embeds (window, greedy matching, original
    lengths), the final multiply-add rounded once; compare it with ``JW_CLOSE``, not 0.9.
    """
    p, t = _ascii_bytes(a), _ascii_bytes(b)
    max_prefix = min(len(p), len(t), 4)
    prefix = 0
    while prefix < max_prefix and p[prefix] == t[prefix]:
        prefix += 1
    sim = _jaro(p, t)
    if sim > 0.7 and prefix:
        # DuckDB's build fuses this multiply-add (one rounding); do the same, exactly
        sim = float(Fraction(prefix * 0.1) * Fraction(1.0 - sim) + Fraction(sim))
    return sim


# --------------------------------------------------------------------------- comparison levels


@dataclass(frozen=True)
class Level:
    key: str  # stable identifier, used for the reasons
    label: str
    sql: str  # Splink sql_condition (columns suffixed _l/_r)
    test: Callable[..., bool] | None  # Python twin of ``sql``; None for ELSE
    is_null: bool = False
    fixed_m: float | None = None  # an m probability set by hand, kept fixed during EM
    fixed_u: float | None = None  # a u probability set by hand, kept fixed (with fixed_m: a set weight)


@dataclass(frozen=True)
class Comparison:
    """Levels in order; a pair takes the first whose test holds, as in Splink's CASE WHEN.

    ``prepare`` turns the pair (lower record_id first) into the arguments of the tests.
    """

    name: str
    levels: tuple[Level, ...]
    prepare: Callable[[tuple, tuple], tuple] | None = None

    def classify(self, a: tuple, b: tuple) -> int:
        args = self.prepare(a, b) if self.prepare else (a, b)
        for i, level in enumerate(self.levels):
            if level.test is None or level.test(*args):
                return i
        raise AssertionError("a comparison must end with ELSE")


def _null(col: str) -> Level:
    i = COLUMNS.index(col)
    return Level("null", "記載なし", f"{col}_l IS NULL OR {col}_r IS NULL",
                 lambda a, b: a[i] is None or b[i] is None, is_null=True)


_ELSE = Level("else", "不一致", "ELSE", None)


_KANA_NAME = re.compile("[ぁ-ゖ]+")
#: m of "the given names differ" (kanji differ, and readings differ or are missing), set by hand
#: and kept fixed during EM. EM cannot learn it: twins (same surname, household and birth date)
#: look like one person to an unsupervised model, which then puts the twins' different names
#: into m (≈0.5%) and links twins. We assume at most 1 registration in 100,000 has a given name
#: wrong in both kanji and reading (異体字, width, kana, voicing and long vowels are normalised
#: before comparing); with it, twins score about 0.2–0.45 instead of 0.99.
GIVEN_NAME_DIFFERS_M = 1e-5
#: m of "the kanji differ and the written readings are close but not equal" (ゆうと/ゆうた is not
#: close; しほ/しほな, えみ/えみえ are), set by hand for the same reason: twins are
#: often given related names, and a pair of twins agrees on everything else. A registration with
#: both its given name's kanji and its reading wrong is rarer than twins with such names, so this
#: level counts as strongly against, like different names.
GIVEN_NAME_CLOSE_M = 1e-8
#: m = u of a level that says nothing either way (weight 0).
NO_EVIDENCE = 1e-3


def _given_levels() -> tuple[Level, ...]:
    return (
        _null("giv_k"),
        Level("kanji_reading", "漢字・読み一致",
              "giv_k_l = giv_k_r AND (giv_yomi_l = giv_yomi_r OR giv_yomi_l IS NULL OR giv_yomi_r IS NULL)",
              lambda a, b: a[GIV_K] == b[GIV_K] and (a[GIV_R] is None or b[GIV_R] is None or a[GIV_R] == b[GIV_R])),
        Level("kanji", "漢字一致・読み違い", "giv_k_l = giv_k_r", lambda a, b: a[GIV_K] == b[GIV_K]),
        Level("reading", "読み一致", "giv_yomi_l = giv_yomi_r", lambda a, b: a[GIV_R] is not None and a[GIV_R] == b[GIV_R]),
        # the readings equal but for long vowels and voicing marks (りょうや/リョーヤ, ともこ/ドモコ)
        Level("reading_loose", "読みが長音・濁点の違いを除いて一致", "giv_yomi2_l = giv_yomi2_r",
              lambda a, b: a[GIV_RL] is not None and a[GIV_RL] == b[GIV_RL]),
        Level("reading_close", "読みがほぼ一致", "jaro_winkler_similarity(giv_yomi_l, giv_yomi_r) >= " + JW_CLOSE_SQL,
              lambda a, b: a[GIV_R] is not None and b[GIV_R] is not None and jaro_winkler(a[GIV_R], b[GIV_R]) >= JW_CLOSE,
              fixed_m=GIVEN_NAME_CLOSE_M),
        # kanji differ and a reading is missing, but one side's reading is a reading of the other's
        # spelling (裕子 without kana / 祐子 ゆうこ): the readings guessed from the name lists
        # (normalise.py: giv_yomi_g the reading or the likeliest guess, giv_yomi_c all of them)
        Level("reading_guess", "読みの記載がなく、漢字から推定した読みが一致",
              "contains(giv_yomi_c_l, '|' || giv_yomi_g_r || '|') OR contains(giv_yomi_c_r, '|' || giv_yomi_g_l || '|')",
              lambda a, b: (a[GIV_C] is not None and b[GIV_G] is not None and f"|{b[GIV_G]}|" in a[GIV_C])
              or (b[GIV_C] is not None and a[GIV_G] is not None and f"|{a[GIV_G]}|" in b[GIV_C])),
        # one written in kana, the other in kanji without a reading, a spelling the name lists do
        # not know: nothing to compare, so no evidence either way (weight 0: m = u, set by hand,
        # for no synthetic registration has a name outside the lists to learn it from). A
        # spelling they know, read otherwise, is a different name (below).
        Level("incomparable", "かなと漢字（読みなし）",
              "(regexp_full_match(giv_k_l, '[ぁ-ゖ]+') OR regexp_full_match(giv_k_r, '[ぁ-ゖ]+')) "
              "AND (giv_yomi_l IS NULL OR giv_yomi_r IS NULL) AND (giv_yomi_c_l IS NULL OR giv_yomi_c_r IS NULL)",
              lambda a, b: (_KANA_NAME.fullmatch(a[GIV_K]) is not None or _KANA_NAME.fullmatch(b[GIV_K]) is not None)
              and (a[GIV_R] is None or b[GIV_R] is None) and (a[GIV_C] is None or b[GIV_C] is None),
              fixed_m=NO_EVIDENCE, fixed_u=NO_EVIDENCE),
        Level("kanji_differ", "漢字が異なる（読みなし）", "giv_yomi_l IS NULL OR giv_yomi_r IS NULL",
              lambda a, b: a[GIV_R] is None or b[GIV_R] is None, fixed_m=GIVEN_NAME_DIFFERS_M),
        Level("else", "不一致", "ELSE", None, fixed_m=GIVEN_NAME_DIFFERS_M),  # both readings known, different
    )


def _starts(a: str, b: str) -> bool:
    return a == "" or b == "" or (a + "-").startswith(b + "-") or (b + "-").startswith(a + "-")


# The household comparison looks at family name, address and phone together. Members of a
# household share all three; scored as three independent comparisons, the agreement would be
# counted three times and twins (same birth date too) would look like one person. In Python each
# part is first put in a category, and the levels are combinations of categories.

def surname_agreement(a: tuple, b: tuple) -> str:
    """null; same (normalised kanji or reading, the reading guessed from the spelling where none
    was written); close (reading nearly, or one kanji of two+); diff."""
    if a[FAM_K] is None or b[FAM_K] is None:
        return "null"
    if a[FAM_K] == b[FAM_K] or (a[FAM_G] is not None and a[FAM_G] == b[FAM_G]):
        return "same"
    if a[FAM_R] is not None and b[FAM_R] is not None and (
            a[FAM_RL] == b[FAM_RL] or jaro_winkler(a[FAM_R], b[FAM_R]) >= JW_CLOSE):
        return "close"
    ka, kb = a[FAM_K], b[FAM_K]
    if len(ka) == len(kb) and len(ka) >= 2 and (ka[0] == kb[0] or ka[-1] == kb[-1]):
        return "close"
    return "diff"


def address_agreement(a: tuple, b: tuple) -> str:
    """null, exact, partial (番地 missing on one side), number_typo, town_typo, town, lg, else."""
    if a[ADDR] is None or b[ADDR] is None:
        return "null"
    if a[ADDR] == b[ADDR]:
        return "exact"
    if a[ADDR_TOWN] == b[ADDR_TOWN]:
        if _starts(a[ADDR_NUM], b[ADDR_NUM]):
            return "partial"
        if levenshtein(a[ADDR_NUM], b[ADDR_NUM]) <= 1:
            return "number_typo"
    if a[ADDR_LG] == b[ADDR_LG] and a[ADDR_NUM] == b[ADDR_NUM] and a[ADDR_NUM] != "":
        return "town_typo"
    if a[ADDR_TOWN] == b[ADDR_TOWN]:
        return "town"
    if a[ADDR_LG] == b[ADDR_LG]:
        return "lg"
    return "else"


def phone_agreement(a: tuple, b: tuple) -> str:
    """null, exact, typo (one digit) or else."""
    if a[PHONE] is None or b[PHONE] is None:
        return "null"
    if a[PHONE] == b[PHONE]:
        return "exact"
    return "typo" if levenshtein(a[PHONE], b[PHONE]) <= 1 else "else"


def _household_agreement(a: tuple, b: tuple) -> tuple[str, str, str]:
    return surname_agreement(a, b), address_agreement(a, b), phone_agreement(a, b)


# The levels' SQL uses these plain conditions and relies on the order of the levels (CASE WHEN
# takes the first that holds); the Python tests use the categories above. For every pair that
# reaches a level, the two agree (tests/modules/test_disaster_linkage.py checks it on pairs).
_S_SAME = "(fam_k_l = fam_k_r OR fam_yomi_g_l = fam_yomi_g_r)"
_S_CLOSE = (f"(fam_yomi2_l = fam_yomi2_r OR jaro_winkler_similarity(fam_yomi_l, fam_yomi_r) >= {JW_CLOSE_SQL} "
            "OR (length(fam_k_l) = length(fam_k_r) AND length(fam_k_l) >= 2 "
            "AND (left(fam_k_l, 1) = left(fam_k_r, 1) OR right(fam_k_l, 1) = right(fam_k_r, 1))))")
_A_EXACT = "addr_l = addr_r"
_A_CLOSE = ("((addr_town_l = addr_town_r AND (addr_num_l = '' OR addr_num_r = '' "
            "OR starts_with(addr_num_l || '-', addr_num_r || '-') OR starts_with(addr_num_r || '-', addr_num_l || '-') "
            "OR levenshtein(addr_num_l, addr_num_r) <= 1)) "
            "OR (addr_lg_l = addr_lg_r AND addr_num_l = addr_num_r AND addr_num_l <> ''))")
_A_NULL = "(addr_l IS NULL OR addr_r IS NULL)"
_P_MATCH = "levenshtein(phone_l, phone_r) <= 1"
_P_NULL = "(phone_l IS NULL OR phone_r IS NULL)"
_CONTACT_AGREES = f"({_A_EXACT} OR {_A_CLOSE} OR {_P_MATCH})"
_CLOSE_ADDRESS = ("partial", "number_typo", "town_typo")
_PHONE_MATCH = ("exact", "typo")


def _agrees(a: str, p: str) -> bool:
    return a == "exact" or a in _CLOSE_ADDRESS or p in _PHONE_MATCH


HOUSEHOLD_LEVELS = (
    Level("null", "記載なし", "fam_k_l IS NULL OR fam_k_r IS NULL", lambda s, a, p: s == "null", is_null=True),
    Level("same_both", "姓・住所・電話一致", f"{_S_SAME} AND {_A_EXACT} AND {_P_MATCH}",
          lambda s, a, p: s == "same" and a == "exact" and p in _PHONE_MATCH),
    Level("same_close_phone", "姓・電話一致・住所ほぼ一致か記載なし", f"{_S_SAME} AND {_P_MATCH} AND ({_A_CLOSE} OR {_A_NULL})",
          lambda s, a, p: s == "same" and p in _PHONE_MATCH and (a in _CLOSE_ADDRESS or a == "null")),
    Level("same_address", "姓・住所一致・電話なし", f"{_S_SAME} AND {_A_EXACT} AND {_P_NULL}",
          lambda s, a, p: s == "same" and a == "exact" and p == "null"),
    Level("same_partly", "姓一致・住所か電話の一方が一致", f"{_S_SAME} AND {_CONTACT_AGREES}",
          lambda s, a, p: s == "same" and _agrees(a, p)),
    Level("same_no_contact", "姓一致・住所電話とも記載なし", f"{_S_SAME} AND {_A_NULL} AND {_P_NULL}",
          lambda s, a, p: s == "same" and a == "null" and p == "null"),
    Level("same_town", "姓一致・住所は町名まで一致", f"{_S_SAME} AND addr_town_l = addr_town_r",
          lambda s, a, p: s == "same" and a == "town"),
    Level("same_lg", "姓一致・住所は市区町村のみ一致", f"{_S_SAME} AND addr_lg_l = addr_lg_r",
          lambda s, a, p: s == "same" and a == "lg"),
    Level("same_other", "姓一致・住所電話とも不一致", _S_SAME, lambda s, a, p: s == "same"),
    Level("close_contact", "姓がほぼ一致・住所か電話が一致", f"{_S_CLOSE} AND {_CONTACT_AGREES}",
          lambda s, a, p: s == "close" and _agrees(a, p)),
    Level("close_other", "姓がほぼ一致", _S_CLOSE, lambda s, a, p: s == "close"),
    Level("diff_contact", "姓が異なり住所か電話が一致", _CONTACT_AGREES, lambda s, a, p: _agrees(a, p)),
    _ELSE,
)


COMPARISONS: tuple[Comparison, ...] = (
    Comparison("given_name", _given_levels()),
    Comparison("birth_date", (
        _null("dob"),
        Level("exact", "一致", "dob_l = dob_r", lambda a, b: a[DOB] == b[DOB]),
        Level("swap", "月日の入れ替わり",
              "substr(dob_l, 1, 4) = substr(dob_r, 1, 4) AND substr(dob_l, 5, 2) = substr(dob_r, 7, 2) "
              "AND substr(dob_l, 7, 2) = substr(dob_r, 5, 2)",
              lambda a, b: a[DOB][:4] == b[DOB][:4] and a[DOB][4:6] == b[DOB][6:8] and a[DOB][6:8] == b[DOB][4:6]),
        Level("typo", "1文字違い", "damerau_levenshtein(dob_l, dob_r) <= 1",
              lambda a, b: within_one_edit_or_swap(a[DOB], b[DOB])),
        # a day off across digits (1970-01-10 / 1970-01-09): dob_alt starts with the next day
        Level("one_day", "1日違い", "dob_l = left(dob_alt_r, 8) OR left(dob_alt_l, 8) = dob_r",
              lambda a, b: a[DOB] == b[DOB_ALT][:8] or a[DOB_ALT][:8] == b[DOB]),
        # the same day of a year one off (a 和暦 year converted wrongly): dob_alt ends with the year before
        Level("year", "年が1年違い（月日は一致）",
              "substr(dob_l, 5, 4) = substr(dob_r, 5, 4) "
              "AND (left(dob_l, 4) = right(dob_alt_r, 4) OR right(dob_alt_l, 4) = left(dob_r, 4))",
              lambda a, b: a[DOB][4:] == b[DOB][4:] and (a[DOB][:4] == b[DOB_ALT][8:] or a[DOB_ALT][8:] == b[DOB][:4])),
        # only an age was given: written as 1 January of the year it implies, the birth year or the next
        Level("age_only", "一方が1月1日（年齢からの推定）で年がほぼ一致",
              "(substr(dob_l, 5, 4) = '0101' AND (left(dob_r, 4) = left(dob_l, 4) OR left(dob_r, 4) = right(dob_alt_l, 4))) "
              "OR (substr(dob_r, 5, 4) = '0101' AND (left(dob_l, 4) = left(dob_r, 4) OR left(dob_l, 4) = right(dob_alt_r, 4)))",
              lambda a, b: (a[DOB][4:] == "0101" and b[DOB][:4] in (a[DOB][:4], a[DOB_ALT][8:]))
              or (b[DOB][4:] == "0101" and a[DOB][:4] in (b[DOB][:4], b[DOB_ALT][8:]))),
        _ELSE,
    )),
    Comparison("sex", (
        _null("sex"),
        Level("exact", "一致", "sex_l = sex_r", lambda a, b: a[SEX] == b[SEX]),
        _ELSE,
    )),
    Comparison("household", HOUSEHOLD_LEVELS, prepare=_household_agreement),
)
COMPARISON_NAMES = tuple(c.name for c in COMPARISONS)


#: Splink blocking rules: pairs that agree on all the columns of at least one rule are scored.
BLOCKING_RULES: tuple[tuple[str, ...], ...] = (
    ("fam_yomi_g", "giv_yomi_g"), ("name_k",), ("dob", "fam_k"), ("dob", "giv_k"), ("dob", "giv_yomi"),
    ("dob", "phone"), ("giv_k", "phone"), ("fam_k", "phone"), ("dob", "addr_town"), ("fam_k", "addr"),
)


def _comparison_dicts() -> list[dict]:
    out = []
    for comparison in COMPARISONS:
        levels = comparison.levels
        out.append({
            "output_column_name": comparison.name,
            "comparison_description": comparison.name,
            "comparison_levels": [
                {"sql_condition": lv.sql, "label_for_charts": lv.label,
                 **({"is_null_level": True} if lv.is_null else {}),
                 **({"m_probability": lv.fixed_m, "fix_m_probability": True} if lv.fixed_m is not None else {}),
                 **({"u_probability": lv.fixed_u, "fix_u_probability": True} if lv.fixed_u is not None else {})}
                for lv in levels
            ],
        })
    return out
