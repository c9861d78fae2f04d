"""Normalisation: a registration (mapping or Arrow columns) → the comparison columns (``COLUMNS``).

異体字 folded with ``names.normalize_kanji`` (髙→高); readings from the kana fields (or from a
name written in kana) folded with ``names.normalize_kana`` (width, script, small kana, long-vowel
marks), plus a looser reading key without long vowels or voicing marks (さとう/さと, ゆうこ/ゆこ,
づ/ず, ｼﾞ/ｼ); dates as ``YYYYMMDD`` whatever the input; addresses folded (width, spaces, dashes,
kanji numerals before 丁目/番/号, ``1丁目2番3号`` → ``1-2-3``, prefecture/郡/municipality prefix
dropped because the home code says it, a ward's code read as its 政令市's) and split into town and
block numbers; phone numbers as digits. Readings are stored one ASCII byte per kana, so that
string distances mean the same on any engine (bytes = characters; see ``compare.py``). Where no
kana was written, ``fam_yomi_g``/``giv_yomi_g`` guess the reading from the spelling (the name
lists); ``dob_alt`` carries the next day and the year before, for the date levels.

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
           "addr", "addr_town", "addr_num", "addr_lg", "phone", "fam_yomi_g", "giv_yomi_g", "giv_yomi_c",
           "dob_alt", "name_k", "name_yomi", "name_raw")
(RID, FAM_K, GIV_K, FAM_R, GIV_R, FAM_RL, GIV_RL, DOB, SEX, ADDR, ADDR_TOWN, ADDR_NUM, ADDR_LG,
 PHONE, FAM_G, GIV_G, GIV_C, DOB_ALT, NAME_K, NAME_R, NAME_RAW) = range(len(COLUMNS))
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


# --- readings guessed from how a name is written (when the kana is missing) ---------------------
# A clerk who hears 「ゆうこ」 writes 裕子 where the register says 祐子, and leaves the furigana
# blank: the kanji differ and there is no reading to compare. The name lists the project ships
# give each spelling its readings: surnames with their bearers (names_surnames_estimated_population,
# gimei), given names with their spellings (names_given_readings_kanji, gimei). ``fam_yomi_g`` and
# ``giv_yomi_g`` are the reading when it was written, else the most likely reading of the
# spelling: for a surname the one with most bearers; for a given name the one gimei's everyday
# list pairs it with, then a reading of the curated popular subset, then the reading with most
# spellings. ``giv_yomi_c`` is the set of readings the given name may have, as ``|a|b|c|``: the
# written one, else the spelling's readings in the lists (most likely first, at most
# ``MAX_READINGS``); a level asks whether one side's reading is in the other's set (``contains``).
# All are ASCII-coded like the readings. A spelling with a 異体字 that the strict folding leaves
# alone (one variant, several standard forms in the tables) is looked up with each form.

#: Readings of one given-name spelling kept in ``giv_yomi_c`` (the lists give up to dozens for 光).
MAX_READINGS = 8


def _data_path(name: str):
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "data" / name


def _csv_rows(name: str, *columns: str) -> Iterable[tuple[str, ...]]:
    """The named columns of a data file, row by row (streamed: the given-name list has 91,222 rows)."""
    import csv

    with _data_path(name).open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        at = [header.index(c) for c in columns]
        for row in reader:
            yield tuple(row[i] for i in at)


def _spelling_key(text: str) -> str | None:
    """``_name_key`` without filling its cache with the lists' 70,000 spellings."""
    return _name_key.__wrapped__(text)


@lru_cache(maxsize=1)
def _reading_lists() -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(surname spelling → readings, given-name spelling → readings), most likely first; spellings
    as ``_name_key``s, readings ASCII-coded."""
    family_scores: dict[str, dict[str, float]] = {}
    for kanji, reading, bearers in _csv_rows("names_surnames_estimated_population.csv", "kanji", "hiragana",
                                             "estimated_population"):
        key = _spelling_key(kanji)
        if key:
            scores = family_scores.setdefault(key, {})
            scores[reading] = scores.get(reading, 0.0) + float(bearers or 0)
    given_readings: dict[str, list[str]] = {}
    spellings_of: dict[str, int] = {}
    popular: set[str] = set()
    everyday: set[tuple[str, str]] = set()
    for kind, kanji, reading in _csv_rows("names_gimei.csv", "name_type", "kanji", "hiragana"):
        key = _spelling_key(kanji)
        if not key:
            continue
        if kind == "last_name":
            family_scores.setdefault(key, {}).setdefault(reading, 0.0)
        else:
            everyday.add((key, reading))
            given_readings.setdefault(key, []).append(reading)
    for kanji, reading, in_popular in _csv_rows("names_given_readings_kanji.csv", "kanji", "hiragana",
                                                "in_popular_subset"):
        spellings_of[reading] = spellings_of.get(reading, 0) + 1
        if in_popular == "1":
            popular.add(reading)
        key = _spelling_key(kanji)
        if key:
            given_readings.setdefault(key, []).append(reading)

    coded_of: dict[str, str] = {}

    def coded(readings: Iterable[str]) -> tuple[str, ...]:
        out: list[str] = []
        for reading in readings:
            code = coded_of.get(reading)
            if code is None:
                code = coded_of[reading] = _ascii(normalize_kana(reading))
            if code and code not in out:
                out.append(code)
        return tuple(out)

    family = {key: coded(sorted(scores, key=lambda r: (-scores[r], r))) for key, scores in family_scores.items()}
    given = {key: coded(sorted(set(readings), key=lambda r: ((key, r) not in everyday, r not in popular,
                                                             -spellings_of.get(r, 0), r)))[:MAX_READINGS]
             for key, readings in given_readings.items()}
    return family, given


@lru_cache(maxsize=1)
def _other_forms() -> dict[str, tuple[str, ...]]:
    """variant character → every standard form the 異体字 table gives it (any basis)."""
    forms: dict[str, set[str]] = {}
    for variant, target in _csv_rows("kanji_variant_pairs.csv", "variant", "target"):
        variant = unicodedata.normalize("NFKC", variant)
        forms.setdefault(variant, set()).add(normalize_kanji(target))
    return {k: tuple(sorted(v - {k})) for k, v in forms.items() if v - {k}}


@lru_cache(maxsize=1 << 17)
def _guessed_readings(key: str | None, given: bool) -> tuple[str, ...]:
    """The readings a spelling (a ``_name_key``) may have, most likely first, ASCII-coded."""
    if not key:
        return ()
    table = _reading_lists()[1 if given else 0]
    readings = table.get(key)
    if readings is None:
        forms = _other_forms()
        candidates = [key]
        for i, ch in enumerate(key):
            if ch in forms:
                candidates = [c[:i] + f + c[i + 1:] for c in candidates for f in (ch, *forms[ch])][:16]
        readings = next((table[c] for c in candidates if c in table), ())
    return readings


def _reading_or_guess(reading: str | None, key: str | None, given: bool) -> str | None:
    if reading is not None:
        return reading
    guesses = _guessed_readings(key, given)
    return guesses[0] if guesses else None


def _reading_set(reading: str | None, key: str | None) -> str | None:
    """``|reading|``, or ``|a|b|…|`` for the readings the given-name spelling may have."""
    readings = (reading,) if reading is not None else _guessed_readings(key, True)
    return "|" + "|".join(readings) + "|" if readings else None


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


@lru_cache(maxsize=1 << 16)
def _birth_alt(dob: str | None) -> str | None:
    """``YYYYMMDD`` of the next day, then ``YYYY`` of the year before (12 ASCII digits): what the
    levels for a date one day off and a year one off compare with ``left``/``right`` and equality
    (plain SQL on any engine, no date arithmetic)."""
    if dob is None:
        return None
    from datetime import timedelta

    try:
        day = date(int(dob[:4]), int(dob[4:6]), int(dob[6:])) + timedelta(days=1)
    except OverflowError:  # 9999-12-31
        day = date.max
    return f"{day.year:04d}{day.month:02d}{day.day:02d}{int(dob[:4]) - 1:04d}"


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


@lru_cache(maxsize=1)
def _designated_cities() -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """(ward code → its 政令市's code, 政令市 code → its wards' names, longest first)."""
    import csv
    from importlib import resources

    parent: dict[str, str] = {}
    wards: dict[str, list[str]] = {}
    path = resources.files("kiban.core.registry") / "data" / "designated_city_wards_population.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            parent[row["code"]] = row["parent_code"]
            wards.setdefault(row["parent_code"], []).append(row["ward"])
    return parent, {k: tuple(sorted(v, key=len, reverse=True)) for k, v in wards.items()}


_KANJI_NUMERAL = re.compile(r"([〇一二三四五六七八九十百]+)(?=丁目|番地|番|号|の\d)")
_DIGIT_DASH = re.compile(r"(?<=\d)[ー‐‑‒–—―−ｰ~〜の](?=\d)")
# ASCII digits only (NFKC has already folded full-width ones): compared values stay ASCII
_DIGITS = re.compile(r"[0-9]+")
_FIRST_DIGIT = re.compile(r"[0-9]")
_NON_DIGITS = re.compile(r"[^0-9]+")
_TOWN_SUFFIXES = ("番地", "丁目", "番", "号", "の")
# ケ in a place name is read が and written ケ, ヶ or が (桜ケ丘・桜ヶ丘・桜が丘): one form in the key
_KE = str.maketrans({"ヶ": "ケ", "が": "ケ", "ガ": "ケ"})


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

    ケ, ヶ and が in the town's name are one (桜ケ丘, 桜ヶ丘, 桜が丘). In a 政令市 the key holds the
    city, not the ward: a home in 札幌市中央区 is written with the
    ward's code by one clerk and the city's by another, and 「札幌市中央区元町」 and 「元町」 (ward
    code) and 「札幌市中央区元町」 (city code) are one address. The ward's name is dropped with the
    city's.
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
    parents, ward_names = _designated_cities()
    lg = parents.get(lg, lg)
    if city:
        at = folded.find(city, 0, len(city) + 10)
        if at < 0 and lg != (lg_code or "").strip():  # a ward's code, the address without the ward
            city = _place_names().get(lg, ("", ""))[1]
            at = folded.find(city, 0, len(city) + 10) if city else -1
        if at >= 0:  # drop 石川県, 鳳珠郡 … up to the municipality's own name
            folded = folded[at + len(city):]
    elif prefecture and folded.startswith(prefecture):
        folded = folded[len(prefecture):]
    for ward in ward_names.get(lg, ()):
        if folded.startswith(ward):
            folded = folded[len(ward):]
            break
    first = _FIRST_DIGIT.search(folded)
    if first:
        town = folded[:first.start()]
        numbers = "-".join(_DIGITS.findall(folded, first.start()))
    else:
        town, numbers = folded, ""
    town = town.translate(_KE)
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
    dob = _birth(record.get("birth_date"))
    return (
        str(record["record_id"]), fam_k, giv_k, fam_r, giv_r, fam_rl, giv_rl,
        dob, _sex_code(record.get("sex")),
        addr, addr_town, addr_num, addr_lg, normalise_phone(record.get("phone")),
        _reading_or_guess(fam_r, fam_k, False), _reading_or_guess(giv_r, giv_k, True), _reading_set(giv_r, giv_k),
        _birth_alt(dob),
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
    (dob,) = _per_distinct(_birth, cols["birth_date"])
    out = [
        pc.cast(cols["record_id"], pa.string()), fam_k, giv_k, fam_r, giv_r, fam_rl, giv_rl,
        dob, *_per_distinct(_sex_code, cols["sex"]),
        *address, *_per_distinct(normalise_phone, cols["phone"]),
        *_per_distinct(lambda r, k: _reading_or_guess(r or None, k or None, False), fam_r, fam_k),
        *_per_distinct(lambda r, k: _reading_or_guess(r or None, k or None, True), giv_r, giv_k),
        *_per_distinct(lambda r, k: _reading_set(r or None, k or None), giv_r, giv_k),
        *_per_distinct(lambda d: _birth_alt(d or None), dob),
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
