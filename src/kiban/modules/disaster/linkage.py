"""名寄せ of evacuee registrations: which registrations, made by different municipalities, are
the same person. A Fellegi–Sunter model run by Splink on DuckDB, on Japanese-normalised fields.

Three ways in:

* ``link_batch(records)`` — Splink predicts scored pairs over the whole batch and clusters them
  (connected components at a threshold). For the 広域被災者データベース's nightly 名寄せ.
* ``Matcher(records)`` / ``.add(record)`` / ``.candidates(record)`` — the same model, scored in
  Python for one new registration against everything registered so far (in-memory blocking
  indexes keyed exactly like the Splink blocking rules). For the registration screen.
* ``explain_pair(a, b)`` — probability and the reasons, in Japanese, for one pair.

Batch and online agree: both read the trained parameters (``data/linkage_model.json``), block
with the same rules and put a pair into the same comparison levels (each level is written here
twice, as Splink SQL and as Python; loading a model checks that its SQL is exactly this code's).
DuckDB's Jaro–Winkler, Levenshtein and Damerau–Levenshtein are reproduced on ASCII-coded values. The
probabilities agree to floating-point rounding (the tests check every pair of a batch).

Normalisation (``normalise_record``): 異体字 folded with ``names.normalize_kanji`` (髙→高);
readings from the kana fields (or from a name written in kana) folded with
``names.normalize_kana`` (width, script, small kana, long-vowel marks), plus a looser reading
key without long vowels or voicing marks (さとう/さと, ゆうこ/ゆこ, づ/ず, ｼﾞ/ｼ); dates as
``YYYYMMDD`` whatever the input; addresses folded (width, spaces, dashes, kanji numerals before
丁目/番/号, ``1丁目2番3号`` → ``1-2-3``, prefecture/郡/municipality prefix dropped because the home
code says it) and split into town and block numbers; phone numbers as digits. Readings are
stored one ASCII byte per kana, so that string distances mean the same on any engine (bytes =
characters; see "string distances" below).
A batch is normalised column by column, each distinct value once (``_normalise_columns``); one
registration row by row (``_normalise``); both give the same values.

The model has four comparisons: given name (kanji, reading, near reading, written in kana vs
kanji, different), birth date (exact, day/month swapped, one typo), sex, and "household" —
family name, address and phone *together*, because a household shares all three and scoring
them independently would count one piece of evidence three times (every twin would be linked).

Blocking rules: full reading; full normalised name; birth date with family name, given name,
given reading, phone or town; phone with family or given name.

Training (``train_model``) uses Splink's estimation on synthetic registrations
(``synthetic.py``): λ from deterministic rules (recall 0.8), u by random sampling, m by EM on
two passes (blocked on birth date + municipality, and on given name). One parameter is set by
hand: m of "the given names differ" (``GIVEN_NAME_DIFFERS_M``), which EM cannot learn because
twins look like one person to it. To retrain and overwrite ``data/linkage_model.json``::

    python -m kiban.modules.disaster.linkage train --registrations 100000 --seed 20240101

Changing a comparison level or blocking rule here requires retraining (loading refuses a model
whose SQL differs from the code).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

from kiban.modules.disaster.names import normalize_kana, normalize_kanji

MODEL_PATH = Path(__file__).resolve().parent / "data" / "linkage_model.json"
#: Pairs at or above this probability are the same person (chosen on a validation set).
DEFAULT_THRESHOLD = 0.95
#: The registration screen proposes candidates from this probability upwards.
DEFAULT_CANDIDATE_PROBABILITY = 0.05

# --------------------------------------------------------------------------- normalisation

#: The columns the model compares, in the order of a normalised row.
COLUMNS = ("record_id", "fam_k", "giv_k", "fam_yomi", "giv_yomi", "fam_yomi2", "giv_yomi2", "dob", "sex",
           "addr", "addr_town", "addr_num", "addr_lg", "phone", "name_k", "name_yomi", "name_raw")
(RID, FAM_K, GIV_K, FAM_R, GIV_R, FAM_RL, GIV_RL, DOB, SEX, ADDR, ADDR_TOWN, ADDR_NUM, ADDR_LG,
 PHONE, NAME_K, NAME_R, NAME_RAW) = range(len(COLUMNS))
#: Columns given to Splink (``name_raw`` only serves the reasons).
SPLINK_COLUMNS = COLUMNS[:NAME_RAW]

_NAME_MARKS = re.compile(r"[\s\u3000・･.]+")
_KANA_ONLY = re.compile(r"^[\u3041-\u3096\u309d\u309e\u30a1-\u30fa\u30fc-\u30feｦ-ﾟ]+$")
# one printable ASCII byte per hiragana (U+3041…U+3096 → '!'…'v')
_HIRAGANA_TO_ASCII = {cp: chr(0x21 + cp - 0x3041) for cp in range(0x3041, 0x3097)}
_LOOSE_FOLD = str.maketrans({"を": "お", "ぢ": "じ", "づ": "ず", "ゐ": "い", "ゑ": "え"})
_UNVOICE = str.maketrans("がぎぐげござじずぜぞだでどばびぶべぼぱぴぷぺぽ", "かきくけこさしすせそたてとはひふへほはひふへほ")
_VOWEL_OF: dict[str, str] = {}
for _vowel, _row in (("a", "あかさたなはまやらわがざだばぱ"), ("i", "いきしちにひみりぎじぢびぴ"),
                     ("u", "うくすつぬふむゆるぐずづぶぷ"), ("e", "えけせてねへめれげぜでべぺ"),
                     ("o", "おこそとのほもよろをごぞどぼぽ")):
    for _ch in _row:
        _VOWEL_OF[_ch] = _vowel


def _loose_reading(reading: str) -> str:
    """Reading without long vowels or voicing marks: さとう → さと, ゆうこ → ゆこ, けいこ → けこ,
    おおの → おの, ななじ → ななし, いづみ → いすみ (the dakuten is a separate character in half-width
    katakana and the first thing lost or added by mistake)."""
    text = reading.translate(_LOOSE_FOLD).translate(_UNVOICE)
    out: list[str] = []
    for ch in text:
        prev = _VOWEL_OF.get(out[-1]) if out else None
        if (ch == "う" and prev in ("o", "u")) or (ch == "い" and prev == "e") or (ch == "お" and prev == "o") \
                or (ch == "あ" and prev == "a"):
            continue
        out.append(ch)
    return "".join(out)


_NOT_HIRAGANA = re.compile(r"[^\u3041-\u3096]+")


def _ascii(reading: str) -> str:
    """The reading coded one ASCII byte per hiragana; anything else typed in a kana field (kanji,
    Latin letters, marks) is dropped, and the result is cut to ``JW_MAX_LEN``."""
    return _NOT_HIRAGANA.sub("", reading).translate(_HIRAGANA_TO_ASCII)[:JW_MAX_LEN]


@lru_cache(maxsize=1 << 17)
def _name_key(text: str) -> str | None:
    """Normalised kanji name: 異体字 folded, width folded, spaces dropped; kana names as kana."""
    folded = _NAME_MARKS.sub("", normalize_kanji(text))
    if folded and _KANA_ONLY.match(folded):
        folded = normalize_kana(folded)
    return folded or None


@lru_cache(maxsize=1 << 17)
def _raw_name(text: str) -> str:
    return _NAME_MARKS.sub("", unicodedata.normalize("NFKC", text))


@lru_cache(maxsize=1 << 17)
def _reading(kana: str, written: str) -> tuple[str | None, str | None]:
    """(reading, loose reading), ASCII-coded; from the kana field, or from a name written in kana."""
    source = kana if kana and kana.strip() else ""
    if not source:
        folded = _NAME_MARKS.sub("", unicodedata.normalize("NFKC", written or ""))
        source = folded if folded and _KANA_ONLY.match(folded) else ""
    reading = normalize_kana(source) if source else ""
    if not reading:
        return None, None
    coded = _ascii(reading)
    return (coded, _ascii(_loose_reading(reading))) if coded else (None, None)


@lru_cache(maxsize=1 << 16)
def _birth(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return f"{value.year:04d}{value.month:02d}{value.day:02d}"
    text = unicodedata.normalize("NFKC", str(value)).strip()
    match = re.fullmatch(r"(\d{4})[-/.年]?(\d{1,2})[-/.月]?(\d{1,2})日?", text)
    if not match:
        return None
    y, m, d = (int(g) for g in match.groups())
    try:
        date(y, m, d)
    except ValueError:
        return None
    return f"{y:04d}{m:02d}{d:02d}"


_SEX = {"male": "m", "female": "f", "m": "m", "f": "f", "男": "m", "女": "f", "男性": "m", "女性": "f",
        "1": "m", "2": "f"}


@lru_cache(maxsize=1)
def _place_names() -> dict[str, tuple[str, str]]:
    """lg_code → (prefecture, municipality name) from the registry's seed data."""
    import csv
    from importlib import resources

    data = resources.files("kiban.core.registry") / "data"
    out: dict[str, tuple[str, str]] = {}
    with (data / "lg_codes_kana.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            out[row["code"]] = (row["prefecture"], row["city"])
    with (data / "designated_city_wards_population.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            out[row["code"]] = (row["prefecture"], row["city"] + row["ward"])
    return out


_KANJI_NUMERAL = re.compile(r"([〇一二三四五六七八九十百]+)(?=丁目|番地|番|号|の\d)")
_DIGIT_DASH = re.compile(r"(?<=\d)[ー‐‑‒–—―−ｰ~〜の](?=\d)")
# ASCII digits only (NFKC has already folded full-width ones): compared values stay ASCII
_DIGITS = re.compile(r"[0-9]+")
_FIRST_DIGIT = re.compile(r"[0-9]")
_NON_DIGITS = re.compile(r"[^0-9]+")
_TOWN_SUFFIXES = ("番地", "丁目", "番", "号", "の")


def _kanji_to_int(text: str) -> str:
    digits = "〇一二三四五六七八九"
    if "十" not in text and "百" not in text:
        return "".join(str(digits.index(ch)) for ch in text)
    total, current = 0, 0
    for ch in text:
        if ch in digits:
            current = digits.index(ch)
        else:
            total += (current or 1) * (10 if ch == "十" else 100)
            current = 0
    return str(total + current)


def _kanji_numeral(match: re.Match) -> str:
    return _kanji_to_int(match.group(1))


def normalise_address(text: str | None, lg_code: str | None) -> tuple[str, str, str, str] | None:
    """(address key, town key, block numbers, lg code) or ``None`` when there is no address.

    ``石川県輪島市河井町１丁目２番３号`` and ``輪島市河井町1-2-3`` both give
    ``('172049|河井町|1-2-3', '172049|河井町', '1-2-3', '172049')``: width and spaces folded,
    kanji numerals before 丁目/番/号 as digits, the prefecture, 郡 and municipality (known from the
    home code) dropped, and 丁目/番地/番/号/の and dashes all one separator.
    """
    if not text:
        return None
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    folded = "".join(text.split())  # drops what \s matches
    if not folded:
        return None
    lg = (lg_code or "").strip()
    if "大字" in folded:
        folded = folded.replace("大字", "")
    folded = _KANJI_NUMERAL.sub(_kanji_numeral, folded)
    folded = _DIGIT_DASH.sub("-", folded)
    prefecture, city = _place_names().get(lg, ("", ""))
    if city:
        at = folded.find(city, 0, len(city) + 10)
        if at >= 0:  # drop 石川県, 鳳珠郡 … up to the municipality's own name
            folded = folded[at + len(city):]
    elif prefecture and folded.startswith(prefecture):
        folded = folded[len(prefecture):]
    first = _FIRST_DIGIT.search(folded)
    if first:
        town = folded[:first.start()]
        numbers = "-".join(_DIGITS.findall(folded, first.start()))
    else:
        town, numbers = folded, ""
    while town.endswith(_TOWN_SUFFIXES):
        for suffix in _TOWN_SUFFIXES:
            if town.endswith(suffix):
                town = town[:-len(suffix)]
                break
    key = f"{lg}|{town}"
    return f"{key}|{numbers}", key, numbers, lg


def normalise_phone(text: str | None) -> str | None:
    """Digits only (``+81`` as a leading 0); ``None`` below six digits."""
    if not text:
        return None
    folded = text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)
    digits = _NON_DIGITS.sub("", folded)
    if digits.startswith("81") and folded.lstrip().startswith("+81"):
        digits = "0" + digits[2:]
    return digits if len(digits) >= 6 else None


@lru_cache(maxsize=1 << 18)
def _pair_key(a: str | None, b: str | None) -> str | None:
    return None if a is None or b is None else f"{a}|{b}"


def _sex_code(value: Any) -> str | None:
    return _SEX.get(str(value).strip().lower()) if value else None


_NO_ADDRESS = (None, None, None, None)


def _address_or_none(text: Any, lg_code: Any) -> tuple:
    return normalise_address(text, lg_code) or _NO_ADDRESS


def _normalise(record: Mapping[str, Any]) -> tuple:
    """One registration as a row of ``COLUMNS`` (the online path; ``_normalise_columns`` is the
    same, column by column, for batches)."""
    family = record.get("family_name") or ""
    given = record.get("given_name") or ""
    fam_k, giv_k = _name_key(family), _name_key(given)
    fam_r, fam_rl = _reading(record.get("family_kana") or "", family)
    giv_r, giv_rl = _reading(record.get("given_kana") or "", given)
    addr, addr_town, addr_num, addr_lg = _address_or_none(record.get("home_address"), record.get("home_lg_code"))
    name_k = _pair_key(fam_k, giv_k)
    name_raw = _pair_key(_raw_name(family), _raw_name(given))
    return (
        str(record["record_id"]), fam_k, giv_k, fam_r, giv_r, fam_rl, giv_rl,
        _birth(record.get("birth_date")), _sex_code(record.get("sex")),
        addr, addr_town, addr_num, addr_lg, normalise_phone(record.get("phone")),
        name_k, _pair_key(fam_r, giv_r), name_k if name_raw == name_k else name_raw,
    )


#: The fields of a registration that matching reads.
FIELDS = ("record_id", "family_name", "given_name", "family_kana", "given_kana", "birth_date", "sex",
          "home_lg_code", "home_address", "phone")


def _encode(column) -> tuple[list, Any]:
    """(distinct values, index of each row's value) of an Arrow string column, nulls as ''."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(pc.fill_null(column, ""))
    if hasattr(encoded, "combine_chunks"):
        encoded = encoded.combine_chunks()
    return encoded.dictionary.to_pylist(), encoded.indices


def _per_distinct(func: Callable[..., Any], *columns, width: int = 1) -> list:
    """``func`` applied to each row's values of ``columns``, called once per distinct combination.

    Returns ``width`` Arrow string arrays (the components of ``func``'s result when width > 1).
    Only the distinct values pass through Python; the rest is Arrow's.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = [_encode(c) for c in columns]
    if len(encoded) == 1:
        values, indices = encoded[0]
        results = [func(v) for v in values]
    else:
        (values_a, idx_a), (values_b, idx_b) = encoded
        n_b = max(len(values_b), 1)
        combined = pc.add(pc.multiply(idx_a.cast(pa.int64()), n_b), idx_b.cast(pa.int64()))
        pairs = pc.dictionary_encode(combined)
        results = [func(values_a[k // n_b], values_b[k % n_b]) for k in pairs.dictionary.to_pylist()]
        indices = pairs.indices
    if width == 1:
        return [pc.take(pa.array(results, pa.string()), indices)]
    return [pc.take(pa.array([r[i] for r in results], pa.string()), indices) for i in range(width)]


def _normalise_columns(cols: Mapping[str, Any], *, with_raw: bool = False) -> list:
    """Registrations as Arrow columns (``FIELDS``) → the ``SPLINK_COLUMNS`` of ``_normalise``.

    Each distinct value (or pair of values) is normalised once, in Python; gathering the
    results back to a million rows is done by Arrow. Gives exactly what ``_normalise`` gives.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    family, given = cols["family_name"], cols["given_name"]
    (fam_k,) = _per_distinct(_name_key, family)
    (giv_k,) = _per_distinct(_name_key, given)
    fam_r, fam_rl = _per_distinct(_reading, cols["family_kana"], family, width=2)
    giv_r, giv_rl = _per_distinct(_reading, cols["given_kana"], given, width=2)
    address = _per_distinct(_address_or_none, cols["home_address"], cols["home_lg_code"], width=4)
    name_k = pc.binary_join_element_wise(fam_k, giv_k, "|")
    out = [
        pc.cast(cols["record_id"], pa.string()), fam_k, giv_k, fam_r, giv_r, fam_rl, giv_rl,
        *_per_distinct(_birth, cols["birth_date"]), *_per_distinct(_sex_code, cols["sex"]),
        *address, *_per_distinct(normalise_phone, cols["phone"]),
        name_k, pc.binary_join_element_wise(fam_r, giv_r, "|"),
    ]
    if with_raw:
        raw = pc.binary_join_element_wise(*_per_distinct(_raw_name, family), *_per_distinct(_raw_name, given), "|")
        out.append(pc.if_else(pc.fill_null(pc.equal(raw, name_k), False), name_k, raw))
    return out


def _python_columns(arrays: Sequence[Any]) -> list[list]:
    """Arrow string arrays as Python lists in which equal values are one shared object."""
    import pyarrow.compute as pc

    out = []
    for array in arrays:
        encoded = pc.dictionary_encode(array)
        values = encoded.dictionary.to_pylist()
        values.append(None)
        indices = encoded.indices.fill_null(len(values) - 1).to_pylist()
        out.append(list(map(values.__getitem__, indices)))
    return out


def normalise_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The comparison columns of one registration (readings are ASCII-coded, see the docstring)."""
    return dict(zip(COLUMNS, _normalise(record), strict=True))


# --------------------------------------------------------------------------- string distances
# Python twins of DuckDB's functions. They agree with the SQL engine by construction, not by
# matching one release's internals:
# * every value compared by distance is ASCII (readings coded one byte per kana, digits for dates,
#   phones and block numbers), so "bytes" and "characters" are the same thing (DuckDB 1.x counted
#   bytes, 2.x counts characters: on ASCII both give the same answer); the twins refuse anything else;
# * Levenshtein and Damerau–Levenshtein are integers; Jaro–Winkler is a rational number whose
#   floating-point rounding may differ between builds, so the threshold sits just below 0.9
#   (``JW_CLOSE``): no pair of strings up to ``JW_MAX_LEN`` bytes has a true similarity in
#   [JW_CLOSE, 0.9), and rounding moves a value by ~1e-16, far less than that gap.

#: Longest reading compared by Jaro–Winkler (the similarity's denominator is at most 30·n³, so the
#: gap below 0.9 is at least 1/(30·n³) > 1e-7 for n ≤ 64); longer readings are cut to this length.
JW_MAX_LEN = 64
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


def _given_levels() -> tuple[Level, ...]:
    return (
        _null("giv_k"),
        Level("kanji_reading", "漢字・読み一致",
              "giv_k_l = giv_k_r AND (giv_yomi_l = giv_yomi_r OR giv_yomi_l IS NULL OR giv_yomi_r IS NULL)",
              lambda a, b: a[GIV_K] == b[GIV_K] and (a[GIV_R] is None or b[GIV_R] is None or a[GIV_R] == b[GIV_R])),
        Level("kanji", "漢字一致・読み違い", "giv_k_l = giv_k_r", lambda a, b: a[GIV_K] == b[GIV_K]),
        Level("reading", "読み一致", "giv_yomi_l = giv_yomi_r", lambda a, b: a[GIV_R] is not None and a[GIV_R] == b[GIV_R]),
        Level("reading_close", "読みがほぼ一致",
              "giv_yomi2_l = giv_yomi2_r OR jaro_winkler_similarity(giv_yomi_l, giv_yomi_r) >= " + JW_CLOSE_SQL,
              lambda a, b: a[GIV_R] is not None and b[GIV_R] is not None
              and (a[GIV_RL] == b[GIV_RL] or jaro_winkler(a[GIV_R], b[GIV_R]) >= JW_CLOSE)),
        # one written in kana, the other in kanji without a reading: nothing to compare
        Level("incomparable", "かなと漢字（読みなし）",
              "(regexp_full_match(giv_k_l, '[ぁ-ゖ]+') OR regexp_full_match(giv_k_r, '[ぁ-ゖ]+')) "
              "AND (giv_yomi_l IS NULL OR giv_yomi_r IS NULL)",
              lambda a, b: (_KANA_NAME.fullmatch(a[GIV_K]) is not None or _KANA_NAME.fullmatch(b[GIV_K]) is not None)
              and (a[GIV_R] is None or b[GIV_R] is None)),
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
    """null; same (normalised kanji or reading); close (reading nearly, or one kanji of two+); diff."""
    if a[FAM_K] is None or b[FAM_K] is None:
        return "null"
    if a[FAM_K] == b[FAM_K] or (a[FAM_R] is not None and a[FAM_R] == b[FAM_R]):
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
_S_SAME = "(fam_k_l = fam_k_r OR fam_yomi_l = fam_yomi_r)"
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
    Level("same_town", "姓一致・住所は町名か市区町村まで", f"{_S_SAME} AND addr_lg_l = addr_lg_r",
          lambda s, a, p: s == "same" and a in ("town", "lg")),
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
    ("name_yomi",), ("name_k",), ("dob", "fam_k"), ("dob", "giv_k"), ("dob", "giv_yomi"), ("dob", "phone"),
    ("giv_k", "phone"), ("fam_k", "phone"), ("dob", "addr_town"),
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
                 **({"m_probability": lv.fixed_m, "fix_m_probability": True} if lv.fixed_m is not None else {})}
                for lv in levels
            ],
        })
    return out


def settings(blocking_rules: Sequence[Sequence[str]] = BLOCKING_RULES):
    """The Splink settings (untrained) of our model."""
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_id",
        comparisons=_comparison_dicts(),
        blocking_rules_to_generate_predictions=[block_on(*rule) for rule in blocking_rules],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
        em_convergence=0.0001,
        max_iterations=30,
    )


_BLOCKING_SQL = re.compile(r'l\."?(\w+)"?\s*=\s*r\."?(\w+)"?')


@dataclass(frozen=True)
class Model:
    """Trained parameters, as Python numbers: prior weight, and a weight per comparison level."""

    settings: dict
    prior_weight: float
    weights: tuple[tuple[float, ...], ...]  # per comparison, per level (0.0 for the null level)
    blocking_rules: tuple[tuple[str, ...], ...]


def _prob_to_weight(p: float) -> float:
    return math.log2(p / (1 - p))


def _level_weight(level: dict) -> float:
    if level.get("is_null_level"):
        return 0.0
    m, u = level.get("m_probability"), level.get("u_probability")
    if not isinstance(m, (int, float)) or not isinstance(u, (int, float)):
        raise ValueError(f"untrained level in the linkage model: {level.get('sql_condition')}")  # noqa: TRY004
    return math.log2(max(m, 1e-300) / max(u, 1e-300))


def load_model(path: Path | str | None = None) -> Model:
    """Read a trained model; refuse one whose levels or blocking rules are not this code's."""
    data = json.loads(Path(path or MODEL_PATH).read_text(encoding="utf-8"))
    return _model_from_settings(data)


def _model_from_settings(data: dict) -> Model:
    names = [c["output_column_name"] for c in data["comparisons"]]
    if tuple(names) != COMPARISON_NAMES:
        raise ValueError(f"linkage model comparisons {names} are not {COMPARISON_NAMES}")
    weights = []
    for comparison, ours in zip(data["comparisons"], (c.levels for c in COMPARISONS), strict=True):
        theirs = [lv["sql_condition"] for lv in comparison["comparison_levels"]]
        if theirs != [lv.sql for lv in ours]:
            raise ValueError(f"linkage model levels of {comparison['output_column_name']} differ from the code; retrain")
        weights.append(tuple(_level_weight(lv) for lv in comparison["comparison_levels"]))
    rules = []
    for rule in data["blocking_rules_to_generate_predictions"]:
        sql = rule["blocking_rule"] if isinstance(rule, dict) else rule
        pairs = _BLOCKING_SQL.findall(sql)
        if not pairs or any(a != b for a, b in pairs):
            raise ValueError(f"unsupported blocking rule in the linkage model: {sql}")
        rules.append(tuple(a for a, _ in pairs))
    return Model(data, _prob_to_weight(data["probability_two_random_records_match"]), tuple(weights), tuple(rules))


@lru_cache(maxsize=4)
def _cached_model(path: str) -> Model:
    return load_model(path)


def default_model() -> Model:
    return _cached_model(str(MODEL_PATH))


def _score(a: tuple, b: tuple, weights: tuple[tuple[float, ...], ...], prior: float) -> tuple[float, tuple[int, ...]]:
    """Match weight and levels of a pair, summed in Splink's order (prior, then comparisons)."""
    if a[RID] > b[RID]:
        a, b = b, a
    total = prior
    chosen = []
    for comparison, w in zip(COMPARISONS, weights, strict=True):
        i = comparison.classify(a, b)
        chosen.append(i)
        if i:
            total += w[i]
    return total, tuple(chosen)


def _probability(weight: float) -> float:
    if weight >= 0:
        return 1.0 / (1.0 + 2.0 ** (-weight))
    return 2.0 ** weight / (1.0 + 2.0 ** weight)


# --------------------------------------------------------------------------- reasons


def _surname_phrase(a: tuple, b: tuple) -> str:
    if a[FAM_K] is None or b[FAM_K] is None:
        return "姓の記載なし"
    if a[FAM_K] == b[FAM_K]:
        return "姓（漢字）が一致"
    if a[FAM_R] is not None and a[FAM_R] == b[FAM_R]:
        return "姓の漢字が異なり読みが一致"
    if surname_agreement(a, b) == "close":
        return "姓がほぼ一致（読みか漢字1字の違い）"
    return "姓が異なる"


_GIVEN_PHRASE = {
    "null": "名の記載なし", "reading": "名の漢字が異なり読みが一致", "reading_close": "名の漢字が異なり読みがほぼ一致",
    "incomparable": "名の一方がかな書きで、もう一方に読みがなく比較できない",
    "kanji_differ": "名（漢字）が異なる（読みの記載なし）", "else": "名が異なる",
}


def _reasons(a: tuple, b: tuple, levels: Sequence[int]) -> list[str]:
    """Japanese phrases for what agreed and what differed."""
    lv = _level_names(levels)
    out: list[str] = []
    given = lv["given_name"]
    if a[FAM_K] is not None and a[FAM_K] == b[FAM_K] and given in ("kanji_reading", "kanji"):
        out.append("氏名（漢字）が一致" if a[NAME_RAW] == b[NAME_RAW] else "氏名（漢字）が異体字を統一して一致")
    else:
        out.append(_surname_phrase(a, b))
        out.append("名（漢字）が一致" if given in ("kanji_reading", "kanji") else _GIVEN_PHRASE[given])
    readings = [(a[FAM_R], b[FAM_R]), (a[GIV_R], b[GIV_R])]
    if any(x is None or y is None for x, y in readings):
        out.append("フリガナの記載なし（比較できず）")
    elif all(x == y for x, y in readings):
        out.append("フリガナが一致")
    elif a[FAM_RL] == b[FAM_RL] and a[GIV_RL] == b[GIV_RL]:
        out.append("フリガナが長音・濁点・表記の違いを除いて一致")
    else:
        out.append("フリガナが異なる")
    out.append({
        "null": "生年月日の記載なし", "exact": "生年月日が一致", "swap": "生年月日の月日が入れ替わり",
        "typo": "生年月日が1文字違い", "else": "生年月日が異なる",
    }[lv["birth_date"]])
    out.append({
        "null": "住所の記載なし", "exact": "住所が一致", "partial": "住所が一致（一方は番地の記載なし）",
        "number_typo": "住所の番地が1文字違い", "town_typo": "住所の番地が一致し町名が異なる",
        "town": "住所の町名まで一致（番地が異なる）", "lg": "住所の市区町村のみ一致", "else": "住所が異なる",
    }[address_agreement(a, b)])
    out.append({"null": "電話番号の記載なし", "exact": "電話番号が一致", "typo": "電話番号が1桁違い",
                "else": "電話番号が異なる"}[phone_agreement(a, b)])
    out.append({"null": "性別の記載なし", "exact": "性別が一致", "else": "性別が異なる"}[lv["sex"]])
    return out


# --------------------------------------------------------------------------- online


@dataclass(frozen=True)
class Candidate:
    record_id: str
    probability: float
    match_weight: float
    reasons: list[str] = field(default_factory=list)
    levels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PairExplanation:
    probability: float
    match_weight: float
    reasons: list[str]
    levels: dict[str, str]


def _level_names(levels: Sequence[int]) -> dict[str, str]:
    return {c.name: c.levels[i].key for c, i in zip(COMPARISONS, levels, strict=True)}


def explain_pair(a: Mapping[str, Any], b: Mapping[str, Any], *, model: Model | None = None) -> PairExplanation:
    """Probability that two registrations are the same person, and why (Japanese phrases)."""
    model = model or default_model()
    na, nb = _normalise(a), _normalise(b)
    weight, levels = _score(na, nb, model.weights, model.prior_weight)
    return PairExplanation(_probability(weight), weight, _reasons(na, nb, levels), _level_names(levels))


class Matcher:
    """Registrations kept in memory with blocking indexes, to score one new registration fast.

    Build it from all current registrations (``Matcher(rows)``; rows are mappings with the
    registration keys, or a pyarrow Table with those columns), then ``add`` each new one after
    it has been saved (``remove`` one that was withdrawn or corrected; ``add`` with a known
    record_id replaces it). ``candidates`` only scores registrations that share a blocking key
    with the new one — the pairs ``link_batch`` would score — with the same model.

    The indexes live in this process only (keys of compound rules are Python hashes, which change
    between processes): rebuild a Matcher from the database at start-up instead of pickling one.
    """

    def __init__(self, records: Iterable[Mapping[str, Any]] | Any = (), *, model: Model | None = None):
        self.model = model or default_model()
        from operator import itemgetter

        self._rule_columns = tuple(tuple(COLUMNS.index(c) for c in rule) for rule in self.model.blocking_rules)
        self._key_parts = tuple((itemgetter(*cols), len(cols) == 1) for cols in self._rule_columns)
        self._rows: list[tuple | None] = []
        self._by_id: dict[str, int] = {}
        self._indexes: list[dict[Any, int | list[int]]] = [{} for _ in self._rule_columns]
        self.extend(records)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._by_id

    def _keys(self, row: tuple) -> list[Any]:
        keys = []
        for get, single in self._key_parts:
            values = get(row)
            if single:
                keys.append(values)  # the row's own string: no extra memory
            else:
                # a hash instead of the tuple saves ~40% of the index memory; a collision (2^-64)
                # would only add a candidate, which is then scored like any other
                keys.append(None if None in values else hash(values))
        return keys

    def _insert(self, row: tuple) -> None:
        if row[RID] in self._by_id:
            self.remove(row[RID])
        position = len(self._rows)
        self._rows.append(row)
        self._by_id[row[RID]] = position
        for index, key in zip(self._indexes, self._keys(row), strict=True):
            if key is None:
                continue
            found = index.get(key)
            if found is None:
                index[key] = position
            elif isinstance(found, int):
                index[key] = [found, position]
            else:
                found.append(position)

    def add(self, record: Mapping[str, Any]) -> None:
        """Index a registration (replacing one with the same record_id)."""
        self._insert(_normalise(record))

    def extend(self, records: Iterable[Mapping[str, Any]] | Any) -> None:
        """Index many registrations (mappings or a pyarrow Table): normalised column by column,
        which is several times faster than ``add`` one by one and gives the same rows."""
        for cols in _column_chunks(records, 200_000):
            for row in zip(*_python_columns(_normalise_columns(cols, with_raw=True)), strict=True):
                self._insert(row)

    def remove(self, record_id: str) -> bool:
        """Forget a registration; False if it was not indexed."""
        position = self._by_id.pop(record_id, None)
        if position is None:
            return False
        row = self._rows[position]
        self._rows[position] = None
        for index, key in zip(self._indexes, self._keys(row), strict=True):
            if key is None:
                continue
            found = index.get(key)
            if isinstance(found, list):
                found.remove(position)
                if len(found) == 1:
                    index[key] = found[0]
            elif found == position:
                del index[key]
        return True

    def _blocked(self, row: tuple) -> set[int]:
        hits: set[int] = set()
        for index, key in zip(self._indexes, self._keys(row), strict=True):
            if key is None:
                continue
            found = index.get(key)
            if found is None:
                continue
            if isinstance(found, int):
                hits.add(found)
            else:
                hits.update(found)
        return hits

    def candidates(self, record: Mapping[str, Any], limit: int = 10,
                   min_probability: float = DEFAULT_CANDIDATE_PROBABILITY) -> list[Candidate]:
        """Existing registrations that may be the same person, most probable first."""
        row = _normalise(record)
        weights, prior = self.model.weights, self.model.prior_weight
        min_weight = _prob_to_weight(min_probability) if 0 < min_probability < 1 else (
            -math.inf if min_probability <= 0 else math.inf)
        scored = []
        for position in self._blocked(row):
            other = self._rows[position]
            if other is None or other[RID] == row[RID]:
                continue
            weight, levels = _score(row, other, weights, prior)
            if weight >= min_weight:
                scored.append((weight, other[RID], other, levels))
        scored.sort(key=lambda s: (-s[0], s[1]))
        out = []
        for weight, rid, other, levels in scored[:limit]:
            a, b = (row, other) if row[RID] < other[RID] else (other, row)
            out.append(Candidate(rid, _probability(weight), weight, _reasons(a, b, levels), _level_names(levels)))
        return out


# --------------------------------------------------------------------------- batch (Splink)


def _column_chunks(records: Any, chunk: int) -> Iterable[dict[str, Any]]:
    """Registrations (mappings, or a pyarrow Table with the ``FIELDS`` as columns) as chunks of
    Arrow string columns."""
    import pyarrow as pa

    if isinstance(records, pa.Table):
        names = set(records.schema.names)
        for offset in range(0, max(records.num_rows, 1), chunk):
            part = records.slice(offset, chunk)
            yield {f: (part.column(f).combine_chunks().cast(pa.string()) if f in names
                       else pa.nulls(part.num_rows, pa.string())) for f in FIELDS}
        return

    def columns(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
        out = {}
        for f in FIELDS:
            values = [r.get(f) for r in rows]
            if f == "birth_date":  # dates or strings: as the normalised string, which _birth accepts
                values = [_birth(v) for v in values]
            elif f == "record_id":
                values = [str(v) for v in values]
            out[f] = pa.array([v if v is None or isinstance(v, str) else str(v) for v in values], pa.string())
        return out

    buffer: list[Mapping[str, Any]] = []
    for record in records:
        buffer.append(record)
        if len(buffer) >= chunk:
            yield columns(buffer)
            buffer = []
    if buffer:
        yield columns(buffer)


def _arrow_table(records: Any, chunk: int = 1_000_000):
    """Normalised registrations as a pyarrow Table of ``SPLINK_COLUMNS`` (all strings)."""
    import pyarrow as pa

    schema = pa.schema([(c, pa.string()) for c in SPLINK_COLUMNS])
    batches = [pa.table(_normalise_columns(cols), schema=schema) for cols in _column_chunks(records, chunk)]
    if not batches:
        return schema.empty_table()
    return pa.concat_tables(batches)


def _duckdb(threads: int | None, memory_limit: str | None):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads or min(2, os.cpu_count() or 1))}")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    return con


@dataclass
class BatchResult:
    pairs: list[tuple[str, str, float]]  # (record_id_l, record_id_r, probability), id_l < id_r
    clusters: dict[str, str]  # record_id → cluster_id (a record_id of the cluster)
    threshold: float


def run_splink(table, settings_dict: dict | Any, *, threshold: float, min_pair_probability: float,
               threads: int | None = None, memory_limit: str | None = None) -> BatchResult:
    """Predict and cluster an Arrow table with a Splink model (ours or another one)."""
    from splink import DuckDBAPI, Linker

    con = _duckdb(threads, memory_limit)
    db = DuckDBAPI(con)
    sdf = db.register(table, table_name="registrations")
    linker = Linker(sdf, settings_dict, log_level=logging.WARNING)
    predictions = linker.inference.predict(threshold_match_probability=min(min_pair_probability, threshold),
                                           warning_mode="never")
    clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=threshold)
    pairs = con.sql(f"SELECT record_id_l, record_id_r, match_probability FROM {predictions.physical_name} "
                    f"WHERE match_probability >= {float(min_pair_probability)!r}").fetchall()
    clusters = dict(con.sql(f"SELECT record_id, cluster_id FROM {clustered.physical_name}").fetchall())
    con.close()
    return BatchResult(pairs, clusters, threshold)


def link_batch(records: Iterable[Mapping[str, Any]] | Any, *, threshold: float = DEFAULT_THRESHOLD,
               min_pair_probability: float | None = None, model_path: Path | str | None = None,
               threads: int | None = None, memory_limit: str | None = None) -> BatchResult:
    """Link a batch of registrations with Splink: scored pairs and clusters.

    ``records``: mappings with the registration keys, or a pyarrow Table with those columns.

    ``pairs`` holds every blocked pair with probability ≥ ``min_pair_probability`` (default: the
    threshold); ``clusters`` maps each record_id to its cluster, the connected components of
    the pairs at ``threshold``. ``threads`` defaults to min(2, CPUs).
    """
    settings_dict = json.loads(Path(model_path or MODEL_PATH).read_text(encoding="utf-8"))
    _model_from_settings(settings_dict)  # refuse a model that does not match this code
    table = _arrow_table(records)
    if table.num_rows < 2:
        ids = table.column("record_id").to_pylist()
        return BatchResult([], {i: i for i in ids}, threshold)
    return run_splink(table, settings_dict, threshold=threshold,
                      min_pair_probability=threshold if min_pair_probability is None else min_pair_probability,
                      threads=threads, memory_limit=memory_limit)


# --------------------------------------------------------------------------- training


def train_splink(table, settings_creator, *, seed: int, deterministic_rules: Sequence[Sequence[str]],
                 em_rules: Sequence[Sequence[str]], recall: float = 0.8, max_pairs_u: float = 2e7,
                 threads: int | None = None) -> dict:
    """Splink's estimation: λ from deterministic rules, u by random sampling, m by EM."""
    from splink import DuckDBAPI, Linker, block_on

    con = _duckdb(threads, None)
    linker = Linker(DuckDBAPI(con).register(table, table_name="training"), settings_creator,
                    log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        [block_on(*rule) for rule in deterministic_rules], recall=recall)
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs_u, seed=seed)
    for rule in em_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule))
    trained = linker.misc.save_model_to_json()
    con.close()
    trained.pop("linker_uid", None)
    return trained


def train_model(n_registrations: int = 100_000, seed: int = 20240101, path: Path | str | None = MODEL_PATH,
                *, threads: int | None = None) -> dict:
    """Train our model on synthetic registrations and write it to ``path`` (None: don't write)."""
    from kiban.modules.disaster.synthetic import iter_registrations

    table = _arrow_table(iter_registrations(n_registrations, seed=seed))
    trained = train_splink(
        table, settings(), seed=seed,
        deterministic_rules=[("name_k", "dob"), ("name_yomi", "dob")],
        em_rules=[("dob", "addr_lg"), ("giv_k",)], threads=threads)
    _model_from_settings(trained)  # every level trained
    if path is not None:
        Path(path).write_text(json.dumps(trained, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return trained


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kiban.modules.disaster.linkage")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="retrain on synthetic data and overwrite data/linkage_model.json")
    train.add_argument("--registrations", type=int, default=100_000)
    train.add_argument("--seed", type=int, default=20240101)
    train.add_argument("--output", type=Path, default=MODEL_PATH)
    args = parser.parse_args(argv)
    if args.command == "train":
        trained = train_model(args.registrations, args.seed, args.output)
        print(f"wrote {args.output} (λ = {trained['probability_two_random_records_match']:.3g})")


if __name__ == "__main__":
    main()
