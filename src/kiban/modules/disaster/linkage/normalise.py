"""Normalisation: a registration (mapping or Arrow columns) → the comparison columns (``COLUMNS``).

異体字 folded with ``names.normalize_kanji`` (髙→高); readings from the kana fields (or from a
name written in kana) folded with ``names.normalize_kana`` (width, script, small kana, long-vowel
marks), plus a looser reading key without long vowels or voicing marks (さとう/さと, ゆうこ/ゆこ,
づ/ず, ｼﾞ/ｼ); dates as ``YYYYMMDD`` whatever the input; addresses folded (width, spaces, dashes,
kanji numerals before 丁目/番/号, ``1丁目2番3号`` → ``1-2-3``, prefecture/郡/municipality prefix
dropped because the home code says it) and split into town and block numbers; phone numbers as
digits. Readings are stored one ASCII byte per kana, so that string distances mean the same on
any engine (bytes = characters; see ``compare.py``).

A batch is normalised column by column, each distinct value once (``_normalise_columns``); one
registration row by row (``_normalise``); both give the same values.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from kiban.modules.disaster.names import normalize_kana, normalize_kanji

#: Longest reading kept, and so compared by Jaro–Winkler (``compare.py`` explains why 64); longer
#: readings are cut to this length.
JW_MAX_LEN = 64

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
