"""Synthetic evacuee registrations modelled on real shelter rosters (避難者名簿), with ground truth.

A second generator for 名寄せ, written independently of ``synthetic.py`` (from a description of
how rosters are filled in, not from that module), so that the linkage model can be measured on
data it was not shaped around. ``roster_registrations(n, seed=...)`` returns ``n`` registrations
in the shape the linkage reads (``service.record_mapping``: record_id, family_name, given_name,
family_kana, given_kana, birth_date, sex, home_lg_code, home_address, phone, registered_by) plus
the truth: ``person_id``, ``household_id``, ``twin_of`` / ``namesake_of`` (the person a true
non-match was made to resemble) and ``errors``, the tags of what was written differently from
the person's own data on that registration (``ERROR_RATES`` lists them). Same seed, same records.

How the registrations come about:

* **The disaster** strikes 6–14 municipalities of one prefecture (drawn by seed). Households live
  there (in a 政令市, in a ward: the home code is the ward's), on a generated 町名 with 丁目・番・号
  or, in the countryside, on a 大字 with a 番地; some in an apartment whose name and room are
  written on some registrations and not on others.
* **Households** are real Japanese shapes (single elderly, elderly couples, couples with
  children, single parents, three generations); surnames are drawn in proportion to their
  estimated bearers, given names by sex from readings and their kanji spellings, with the
  spellings of the older generations (〜子, 〜夫・〜雄) for the old. Twins (2.5% of households with
  two children or more) share everything but the given name, which is often a related one
  (ゆうと/ゆうた, 翔太/翔平). Look-alikes: 1.5% of households are given the surname of an earlier
  household of the same municipality (mostly the same 町), and one member its given name and
  birth year (``namesake_of``); common names collide on their own too.
* **Evacuation**: a household registers at a shelter of its own municipality, a neighbouring one
  or, 広域避難, a large city elsewhere; 25% register again elsewhere and 7% a third time (each
  member again with probability 0.85), and 1% of people are entered twice at one shelter.
* **What the clerk writes** depends on the registering municipality's habits (its system's kana
  script — katakana, hiragana or half-width —, whether it can type MJ 異体字, how it writes
  addresses and phone numbers; each shelter differs from its municipality's habit 30% of the
  time) and on the registration's own slips, at the rates of ``ERROR_RATES``: furigana left
  blank, misread (シ/ツ, ソ/ン), voicing marks or long vowels lost, 拗音 written full size; a
  given name heard rather than seen and written in other kanji of the same reading (the kana
  blank on some); 異体字 (髙/高, 﨑/崎, 邊・邉/辺, 齋/斎, 齊/斉, and rarer MJ variants from the
  table) typed as the common form where the system cannot hold them, or the common form of a
  surname mistaken for another of the same reading (斎藤/斉藤); the name field in kana; birth
  dates off by one day (1970-01-10/1970-01-09), one digit mistyped, two digits swapped, month
  and day swapped, a 和暦 year converted one year off, only an age given (1 January of the year
  it implies, or nothing), or nothing; sex missing or wrong; the address as 町名 only, without
  prefecture or municipality, in another block notation (一丁目2番3号, 1-2-3, 1丁目2-3, full-width),
  ケ/ヶ/が, a mistyped block number, the city's code instead of the ward's; the phone as the
  person's own mobile, the family's shared one, the landline or nothing, with or without
  hyphens, parentheses, full-width; a recently married woman under her maiden name.

Data (all under this module's ``data/`` or the registry's, with their attribution in the
README/SOURCES there): surnames and estimated bearers (``names_surnames_estimated_population.csv``,
japanese-personal-name-dataset 0.4.0, MIT); given-name readings with their kanji spellings
(``names_given_readings_kanji.csv``, the same package, MIT; first names cross-checked with
Wikidata (CC0) and NDL Web Authorities per its README); the 異体字 table
(``kanji_variant_pairs.csv``: MJ文字情報一覧表・MJ縮退マップ by CITPC/IPA, CC BY-SA 2.1 JP, and
the 国税庁 JIS縮退マップ); ``names_gimei.csv`` (gimei 0.2.3, MIT) only to prefer spellings that
are in everyday use; municipalities, wards and populations from the registry's
``lg_population.csv`` and ``designated_city_wards_population.csv`` (SSDSE-A / 住民基本台帳).
Town names, block numbers, apartments and phone numbers are invented.
"""

from __future__ import annotations

import csv
import math
import random
from bisect import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources
from itertools import accumulate
from pathlib import Path

import jaconv

DATA = Path(__file__).resolve().parent / "data"
#: The day of the disaster: ages are counted to it.
DISASTER_DATE = date(2024, 1, 1)

#: Per registration, the probability of each slip (tags in ``errors``). Birth-date slips are
#: exclusive (one per registration). Some need something to act on, and only apply then:
#: ``dob_month_day_swap`` a day ≤ 12 other than the month, ``family_other_kanji`` a surname with
#: another spelling of its reading in the list, ``lg_city_code`` a home in a ward of a 政令市,
#: ``given_other_kanji`` a given name in kanji, ``kana_typo`` a registration with kana.
ERROR_RATES: dict[str, float] = {
    "kana_missing": 0.10,  # no furigana at all
    "given_kana_missing": 0.03,  # furigana of the surname only
    "kana_typo": 0.02,  # voicing mark, long vowel, 拗音 full size, シ/ツ ソ/ン misread
    "given_other_kanji": 0.025,  # other kanji of the same reading (heard, not seen)
    "family_other_kanji": 0.01,  # another surname of the same reading (斎藤/斉藤)
    "given_in_kana": 0.01,  # the name field written in kana
    "dob_missing": 0.015,
    "dob_age_only": 0.01,  # an age: 1 January of the year it implies (60%) or nothing
    "dob_one_day": 0.012,  # a day before or after, across digits (1970-01-10 / 1970-01-09)
    "dob_digit_typo": 0.006,  # one digit of YYMMDD mistyped
    "dob_digit_swap": 0.005,  # two neighbouring digits swapped
    "dob_month_day_swap": 0.003,
    "dob_wareki_year": 0.006,  # a 和暦 year converted one year off
    "sex_missing": 0.02,
    "sex_wrong": 0.003,
    "addr_missing": 0.03,
    "addr_town_only": 0.04,  # 町名 without block numbers
    "addr_number_typo": 0.007,
    "lg_city_code": 0.05,  # of homes in a ward: the city's code written instead of the ward's
    "phone_typo": 0.005,
    "phone_blank": 0.04,  # left blank on a form whose household gave a number
}

#: Outcomes rather than slips, also tagged: ``family_variant`` / ``given_variant`` (written with
#: a 異体字 of the everyday form; ``*_rare`` when it is outside JIS X 0208), ``surname_changed``
#: (maiden name), ``phone_missing`` (no phone written), ``phone_household`` (the family's or the
#: landline, not the person's own mobile), ``addr_apartment`` (apartment written),
#: ``addr_ke_variant`` (ケ written ヶ or が), ``resubmitted`` (entered twice at one shelter).
OUTCOME_TAGS = ("family_variant", "family_variant_rare", "given_variant", "given_variant_rare", "surname_changed",
                "phone_missing", "phone_household", "addr_apartment", "addr_ke_variant", "resubmitted")

DOB_ERRORS = ("dob_missing", "dob_age_only", "dob_one_day", "dob_digit_typo", "dob_digit_swap",
              "dob_month_day_swap", "dob_wareki_year")

EVENT_COUNTS = ((1, 0.68), (2, 0.25), (3, 0.07))  # shelters a household registers at
MEMBER_AGAIN = 0.85  # each member registers again with the household
RESUBMITTED = 0.01
TWIN_HOUSEHOLDS = 0.025  # of households with two children or more
NAMESAKE_HOUSEHOLDS = 0.015
FAMILY_VARIANT_PEOPLE = 0.04  # surnames with a char that has variants: official form is one
MAIDEN_NAME_WOMEN = 0.05  # women 22–40 married recently
MAIDEN_NAME_USED = 0.35  # … who write the maiden name on a registration
KEPT_HABIT = 0.70  # a shelter keeps its municipality's habits

# --------------------------------------------------------------------------- data


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _registry_rows(name: str) -> list[dict[str, str]]:
    with (resources.files("kiban.core.registry") / "data" / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


class _Weighted:
    """Items drawn with given weights (cumulative sums and bisect)."""

    def __init__(self, items: Sequence, weights: Sequence[float]):
        self.items = list(items)
        self.cum = list(accumulate(weights))
        self.total = self.cum[-1]

    def draw(self, rng: random.Random):
        return self.items[bisect(self.cum, rng.random() * self.total)]


@dataclass
class _Place:
    code: str  # home code (a ward's in a 政令市)
    city_code: str  # the municipality (the 政令市 for a ward)
    prefecture: str
    city: str  # as written: 札幌市中央区
    population: int


@dataclass
class _Data:
    surnames: _Weighted  # (kanji, hiragana)
    surname_by_reading: dict[str, _Weighted]
    given: dict[str, dict[str, _Weighted]]  # sex → era class → _Weighted of (spelling, reading)
    spellings: dict[tuple[str, str], _Weighted]  # (sex, reading) → spellings
    readings_by_prefix: dict[tuple[str, str], list[str]]  # (sex, first two kana) → readings
    variants: dict[str, _Weighted]  # everyday char → its variants
    rare: set[str]  # variants outside JIS X 0208
    plain: dict[str, str]  # variant → everyday char
    places: dict[str, _Place]  # home code → place (wards and municipalities)
    prefectures: dict[str, list[str]]  # prefecture → city-level codes
    cities: dict[str, _Place]  # city-level code → place
    wards: dict[str, list[str]]  # 政令市 code → its ward codes


_OLD_FEMALE_END = "子"
_OLD_MALE_ENDS = ("夫", "雄", "男", "郎", "治", "一", "二", "三", "蔵", "吉")
_FAMOUS_VARIANTS = set("髙﨑𠮷邊邉齋齊濵濱澤嶋廣榮惠實德壽眞國櫻")


@lru_cache(maxsize=1)
def _data() -> _Data:
    surname_rows = _rows(DATA / "names_surnames_estimated_population.csv")
    surnames = [(r["kanji"], r["hiragana"]) for r in surname_rows]
    pops = [float(r["estimated_population"]) for r in surname_rows]
    by_reading: dict[str, list[tuple[tuple[str, str], float]]] = {}
    for item, pop in zip(surnames, pops, strict=True):
        by_reading.setdefault(item[1], []).append((item, pop))
    surname_by_reading = {k: _Weighted([i for i, _ in v], [p for _, p in v]) for k, v in by_reading.items() if len(v) > 1}

    everyday = {r["kanji"] for r in _rows(DATA / "names_gimei.csv") if r["name_type"] == "first_name"}
    spell: dict[tuple[str, str], list[str]] = {}
    popular: dict[tuple[str, str], bool] = {}
    for r in _rows(DATA / "names_given_readings_kanji.csv"):
        key = (r["gender"], r["hiragana"])
        spell.setdefault(key, []).append(r["kanji"])
        popular[key] = popular.get(key, False) or r["in_popular_subset"] == "1"
    # A stable popularity of our own making (the sources have no frequencies): readings of the
    # curated popular subset first, those with more everyday spellings first (ties by a fixed
    # shuffle); Zipf-like weights (s = 0.6), a tenth for readings outside the subset. Within a reading, spellings in everyday use (in gimei's list) come
    # first, Zipf-like, and the others share a small remainder.
    ranker = random.Random(1889)
    spellings: dict[tuple[str, str], _Weighted] = {}
    given: dict[str, dict[str, _Weighted]] = {}
    readings_by_prefix: dict[tuple[str, str], list[str]] = {}
    for sex in ("male", "female"):
        keys = sorted(k for k in spell if k[0] == sex)
        ranker.shuffle(keys)
        # readings with many everyday spellings are the common ones (ひろし, ゆうこ)
        keys.sort(key=lambda k: (not popular[k], -sum(1 for s in set(spell[k]) if s in everyday)))
        classes: dict[str, tuple[list, list]] = {"any": ([], []), "old": ([], [])}
        for rank, key in enumerate(keys, 1):
            options = sorted(set(spell[key]))
            ranker.shuffle(options)
            options.sort(key=lambda s: (s not in everyday, len(s) > 2))
            common = sum(1 for s in options if s in everyday)
            weights = [1.0 / (i + 1) if i < common else 0.03 / (i - common + 1) ** 1.5 for i in range(len(options))]
            spellings[key] = _Weighted(options, weights)
            w = (1.0 if popular[key] else 0.1) / rank ** 0.6
            classes["any"][0].append((options[0], key[1]))
            classes["any"][1].append(w)
            for s in options:  # the generation of 〜子 and 〜雄
                if (sex == "female" and s.endswith(_OLD_FEMALE_END)) or (sex == "male" and s.endswith(_OLD_MALE_ENDS)):
                    classes["old"][0].append((s, key[1]))
                    classes["old"][1].append(w * (1.0 if s in everyday else 0.05))
            if len(key[1]) >= 3:
                readings_by_prefix.setdefault((sex, key[1][:2]), []).append(key[1])
        given[sex] = {k: _Weighted(*v) for k, v in classes.items()}

    # How often each character occurs in names, to tell the everyday form of a pair from its 異体字.
    frequency: dict[str, float] = {}
    for (kanji, _), pop in zip(surnames, pops, strict=True):
        for ch in kanji:
            frequency[ch] = frequency.get(ch, 0.0) + pop
    for options in spell.values():
        for s in options:
            for ch in s:
                frequency[ch] = frequency.get(ch, 0.0) + 1000.0
    plain: dict[str, str] = {}
    rare: set[str] = set()
    for r in _rows(DATA / "kanji_variant_pairs.csv"):
        bases = r["basis"].split(";")
        if all(b in ("mj_reading_glyph_inference", "nta_jis_shrink_map") for b in bases):
            continue  # family-register tables only: what a koseki may really hold
        v, t = r["variant"], r["target"]
        if r["target_in_jisx0208"] != "1" or v == t or len(v) != 1:
            continue
        if frequency.get(v, 0.0) >= frequency.get(t, 0.0):
            continue  # 功⇄切, 寿⇄壽: the everyday form is the one names use more
        if v not in plain or frequency.get(t, 0.0) > frequency.get(plain[v], 0.0):
            plain[v] = t
        if r["variant_in_jisx0208"] != "1":
            rare.add(v)
    variants: dict[str, tuple[list, list]] = {}
    for v, t in sorted(plain.items()):
        weight = 6.0 if v in _FAMOUS_VARIANTS else (3.0 if v not in rare else 1.0)
        variants.setdefault(t, ([], []))
        variants[t][0].append(v)
        variants[t][1].append(weight)

    places: dict[str, _Place] = {}
    prefectures: dict[str, list[str]] = {}
    cities: dict[str, _Place] = {}
    for r in _registry_rows("lg_population.csv"):
        if r["type"] == "都道府県":
            continue
        place = _Place(r["code"], r["code"], r["prefecture"], r["city"], int(r["pop_census_2020"] or 0))
        places[r["code"]] = cities[r["code"]] = place
        prefectures.setdefault(r["prefecture"], []).append(r["code"])
    wards: dict[str, list[str]] = {}
    for r in _registry_rows("designated_city_wards_population.csv"):
        places[r["code"]] = _Place(r["code"], r["parent_code"], r["prefecture"], r["city"] + r["ward"],
                                   int(r["pop_juki_2020_01_01"] or 0))
        wards.setdefault(r["parent_code"], []).append(r["code"])
    return _Data(
        surnames=_Weighted(surnames, pops), surname_by_reading=surname_by_reading, given=given,
        spellings=spellings, readings_by_prefix=readings_by_prefix,
        variants={t: _Weighted(*v) for t, v in variants.items()}, rare=rare, plain=plain,
        places=places, prefectures=prefectures, cities=cities, wards=wards)


# --------------------------------------------------------------------------- places

_TOWN_BASES = ("本町", "元町", "栄町", "幸町", "旭町", "緑町", "錦町", "寿町", "昭和町", "大手町", "新町", "中町",
               "東町", "西町", "南町", "北町", "宮前", "駅前", "中央", "港町", "浜町", "松原", "桜町", "若葉町",
               "青葉町", "日の出町", "春日町", "末広町", "住吉町", "弥生町", "曙町", "花園町", "泉町", "清水町",
               "白山", "八幡町", "天神町", "大町", "上町", "田町", "城東", "城西", "城南", "城北", "富士見町",
               "平和町", "双葉町", "千代田", "朝日町", "明神町", "山手町", "桜ケ丘", "緑ケ丘", "希望ケ丘",
               "ひばりケ丘", "美園", "若松町", "東雲町", "相生町", "常盤町", "宝町", "新栄町", "川端町", "堤町",
               "八幡", "鶴ケ岡", "高砂町", "松ケ枝町", "御幸町", "亀ケ岡", "桜木町", "柳町", "堀川町", "今町")
_TOWN_PREFIXES = ("", "", "", "東", "西", "南", "北", "新", "上", "下", "中", "元")
_APARTMENTS = ("コーポ", "ハイツ", "メゾン", "レジデンス", "グリーンハイツ", "サンハイツ", "パークハイム", "ハイム",
               "アーバン", "ロイヤル")
_KANJI_DIGITS = "〇一二三四五六七八九"


@dataclass
class _Town:
    name: str
    rural: bool  # 大字 + 番地 instead of 丁目・番・号
    max_chome: int


def _kanji_number(n: int) -> str:
    if n < 10:
        return _KANJI_DIGITS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _KANJI_DIGITS[tens]) + "十" + (_KANJI_DIGITS[ones] if ones else "")


# --------------------------------------------------------------------------- people


@dataclass
class _Person:
    pid: str
    sex: str
    birth: date
    family: str  # as on the family register (may hold a 異体字)
    family_kana: str  # hiragana
    given: str
    given_kana: str
    mobile: str | None = None
    maiden: tuple[str, str] | None = None
    twin_of: str | None = None
    namesake_of: str | None = None


@dataclass
class _Household:
    hid: str
    place: _Place
    town: _Town
    numbers: tuple[int, ...]
    apartment: str | None
    landline: str | None
    members: list[_Person] = field(default_factory=list)


@dataclass
class _Style:
    """How one shelter writes things down."""

    kana: str  # kata, hira, half
    mj: bool  # the system holds MJ 異体字 (otherwise they become the everyday form)
    prefix: str  # full, city, town
    numbers: str  # kanji, chome, dash, mixed, wide
    phone: str  # hyphen, plain, paren, wide, space


_STYLE_CHOICES = {
    "kana": (("kata", 0.6), ("hira", 0.25), ("half", 0.15)),
    "mj": ((True, 0.3), (False, 0.7)),
    "prefix": (("full", 0.45), ("city", 0.35), ("town", 0.20)),
    "numbers": (("chome", 0.3), ("dash", 0.35), ("mixed", 0.15), ("kanji", 0.1), ("wide", 0.1)),
    "phone": (("hyphen", 0.55), ("plain", 0.25), ("paren", 0.08), ("wide", 0.07), ("space", 0.05)),
}


def _choose(rng: random.Random, options: Sequence[tuple]) -> object:
    r = rng.random()
    for value, p in options:
        r -= p
        if r < 0:
            return value
    return options[-1][0]


class _Generator:
    def __init__(self, seed: int):
        self.seed = seed
        self.rng = random.Random(seed)
        self.data = _data()
        self.n_people = 0
        self._towns: dict[str, list[_Town]] = {}
        self._area_codes: dict[str, str] = {}
        self._styles: dict[str, _Style] = {}
        self.by_place: dict[str, list[_Household]] = {}
        self.n_households = 0
        self._choose_region()

    # -- region
    def _choose_region(self) -> None:
        rng, data = self.rng, self.data
        prefecture = rng.choice(sorted(data.prefectures))
        codes = data.prefectures[prefecture]
        k = min(len(codes), rng.randint(6, 14))
        chosen: list[str] = []
        pool = list(codes)
        while len(chosen) < k:
            pick = _Weighted(pool, [math.sqrt(max(data.cities[c].population, 100)) for c in pool]).draw(rng)
            pool.remove(pick)
            chosen.append(pick)
        homes: list[_Place] = []
        for code in chosen:
            if code in data.wards:
                homes.extend(data.places[w] for w in data.wards[code])
            else:
                homes.append(data.cities[code])
        # households in proportion to population, dampened (a 政令市 is rarely flooded whole)
        self.homes = _Weighted(homes, [max(p.population, 200) ** 0.8 for p in homes])
        self.affected = chosen
        others = [c for c in codes if c not in chosen]
        self.nearby = _Weighted(others or chosen, [max(data.cities[c].population, 100) for c in (others or chosen)])
        far = [c for p, cs in data.prefectures.items() if p != prefecture for c in cs]
        self.far = _Weighted(far, [data.cities[c].population ** 1.3 for c in far])

    def _towns_of(self, place: _Place) -> list[_Town]:
        towns = self._towns.get(place.code)
        if towns is None:
            rng = random.Random(f"{self.seed}/towns/{place.code}")
            n = max(12, min(120, 10 + place.population // 4000))
            rural_share = 0.7 if place.population < 30_000 else (0.3 if place.population < 150_000 else 0.05)
            names: set[str] = set()
            towns = []
            while len(towns) < n:
                if rng.random() < rural_share:
                    name = "大字" + self.data.surnames.draw(rng)[0]
                    rural = True
                else:
                    name = rng.choice(_TOWN_PREFIXES) + rng.choice(_TOWN_BASES)
                    rural = False
                if name in names:
                    continue
                names.add(name)
                towns.append(_Town(name, rural, rng.randint(1, 6)))
            self._towns[place.code] = towns
        return towns

    def _area_code(self, city_code: str) -> str:
        area = self._area_codes.get(city_code)
        if area is None:
            rng = random.Random(f"{self.seed}/area/{city_code}")
            pop = self.data.cities[city_code].population
            length = 3 if pop > 200_000 else rng.choice((4, 4, 5))
            area = "0" + "".join(str(rng.randint(1, 9)) for _ in range(length - 1))
            self._area_codes[city_code] = area
        return area

    def _landline(self, place: _Place) -> str:
        area = self._area_code(place.city_code)
        local = "".join(str(self.rng.randint(0, 9)) for _ in range(10 - len(area)))
        return area + str(self.rng.randint(2, 9)) + local[1:]

    def _mobile(self) -> str:
        return self.rng.choice(("090", "080", "070")) + "".join(str(self.rng.randint(0, 9)) for _ in range(8))

    def style(self, host: str) -> _Style:
        habit = self._styles.get(host)
        if habit is None:
            rng = random.Random(f"{self.seed}/style/{host}")
            habit = _Style(**{k: _choose(rng, v) for k, v in _STYLE_CHOICES.items()})
            self._styles[host] = habit
        rng = self.rng
        return _Style(**{k: (getattr(habit, k) if rng.random() < KEPT_HABIT else _choose(rng, v))
                         for k, v in _STYLE_CHOICES.items()})

    # -- people
    def _official(self, text: str, rate: float) -> str:
        """The form on the family register: one character a 異体字, with probability ``rate``."""
        if self.rng.random() >= rate:
            return text
        positions = [i for i, ch in enumerate(text) if ch in self.data.variants]
        if not positions:
            return text
        i = self.rng.choice(positions)
        return text[:i] + self.data.variants[text[i]].draw(self.rng) + text[i + 1:]

    def _given(self, sex: str, birth: date) -> tuple[str, str]:
        rng, data = self.rng, self.data
        old = (sex == "female" and birth.year < 1970 and rng.random() < 0.65) or (
            sex == "male" and birth.year < 1960 and rng.random() < 0.4)
        spelling, reading = data.given[sex]["old" if old else "any"].draw(rng)
        if not old:
            spelling = data.spellings[(sex, reading)].draw(rng)
        # names written in kana on the register: ハル, キヨ (born before 1945), さくら, ひなた
        if (birth.year < 1945 and sex == "female" and len(reading) == 2 and rng.random() < 0.3) \
                or (birth.year >= 2000 and rng.random() < 0.02):
            spelling = jaconv.hira2kata(reading) if birth.year < 1945 else reading
        return self._official(spelling, 0.25 if birth.year < 1950 else 0.02), reading

    def _birth(self, age_low: int, age_high: int) -> date:
        age = self.rng.randint(age_low, age_high)
        return DISASTER_DATE - timedelta(days=age * 365 + self.rng.randint(0, 364))

    def _person(self, hh: _Household, sex: str, birth: date, surname: tuple[str, str]) -> _Person:
        self.n_people += 1
        taken = {m.given_kana for m in hh.members} | {self._plain(m.given) for m in hh.members}
        given, kana = self._given(sex, birth)
        while kana in taken or self._plain(given) in taken:  # a family does not give two members one name
            given, kana = self._given(sex, birth)
        age = (DISASTER_DATE - birth).days // 365
        owns = 0.05 if age < 15 else 0.9 if age < 20 else 0.97 if age < 65 else 0.85 if age < 75 else 0.55
        person = _Person(f"P{self.seed}-{self.n_people:07d}", sex, birth, surname[0], surname[1], given, kana,
                         self._mobile() if self.rng.random() < owns else None)
        if sex == "female" and 22 <= age <= 40 and self.rng.random() < MAIDEN_NAME_WOMEN:
            maiden = self.data.surnames.draw(self.rng)
            if maiden[0] != surname[0]:
                person.maiden = maiden
        hh.members.append(person)
        return person

    def household(self) -> _Household:
        rng = self.rng
        place = self.homes.draw(rng)
        towns = self._towns_of(place)
        town = rng.choice(towns)
        kind = _choose(rng, (("single_old", 0.14), ("single", 0.15), ("old_couple", 0.15), ("couple", 0.09),
                             ("children", 0.24), ("single_parent", 0.07), ("three_generations", 0.11),
                             ("with_parent", 0.05)))
        self.n_households += 1
        hh = _Household(f"H{self.seed}-{self.n_households:07d}", place, town, self._numbers(town),
                        None, None)
        if not town.rural and rng.random() < 0.25:
            hh.apartment = rng.choice(_APARTMENTS) + rng.choice(_TOWN_BASES).removesuffix("町") \
                + f"{rng.randint(1, 4)}{rng.randint(0, 1)}{rng.randint(1, 9)}"
        surname = self.data.surnames.draw(rng)
        official = self._official(surname[0], FAMILY_VARIANT_PEOPLE)
        family = (official, surname[1])
        sex_head = "male" if rng.random() < 0.8 else "female"
        other = "female" if sex_head == "male" else "male"
        children = 0
        if kind == "single_old":
            self._person(hh, rng.choice(("male", "female", "female")), self._birth(65, 98), family)
        elif kind == "single":
            self._person(hh, rng.choice(("male", "female")), self._birth(19, 64), family)
        elif kind in ("old_couple", "couple"):
            head = self._person(hh, sex_head, self._birth(65, 92) if kind == "old_couple" else self._birth(24, 64), family)
            self._person(hh, other, self._near(head.birth, 3), family)
        elif kind in ("children", "single_parent", "three_generations"):
            head = self._person(hh, sex_head if kind != "single_parent" else rng.choice(("female", "female", "male")),
                                self._birth(26, 58), family)
            mother = head
            if kind != "single_parent":
                spouse = self._person(hh, other, self._near(head.birth, 3), family)
                mother = spouse if spouse.sex == "female" else head
            children = rng.choice((1, 1, 2, 2, 2, 3, 3, 4))
            self._children(hh, mother, children, family)
            if kind == "three_generations":
                for sex in rng.sample(("male", "female"), rng.choice((1, 2))):
                    self._person(hh, sex, self._near(head.birth - timedelta(days=365 * 29), 5), family)
        else:  # an adult child living with an elderly parent
            parent = self._person(hh, rng.choice(("female", "male")), self._birth(75, 98), family)
            self._person(hh, rng.choice(("male", "female")), self._near(parent.birth + timedelta(days=365 * 30), 5),
                         family)
        has_old = any((DISASTER_DATE - p.birth).days > 65 * 365 for p in hh.members)
        if rng.random() < (0.85 if has_old else 0.4):
            hh.landline = self._landline(place)
        self.by_place.setdefault(place.code, []).append(hh)
        if len(self.by_place[place.code]) > 20 and rng.random() < NAMESAKE_HOUSEHOLDS:
            self._namesake(hh)
        return hh

    def _near(self, birth: date, years: int) -> date:
        day = birth + timedelta(days=self.rng.randint(-years * 365, years * 365))
        return min(day, DISASTER_DATE - timedelta(days=1))

    def _children(self, hh: _Household, mother: _Person, count: int, family: tuple[str, str]) -> None:
        rng = self.rng
        birth = mother.birth + timedelta(days=365 * rng.randint(22, 34) + rng.randint(0, 364))
        born: list[_Person] = []
        twins = count >= 2 and rng.random() < TWIN_HOUSEHOLDS
        for i in range(count):
            if birth >= DISASTER_DATE:
                break
            if twins and i == 1:
                first = born[0]
                sex = first.sex if rng.random() < 0.65 else ("female" if first.sex == "male" else "male")
                child = self._person(hh, sex, first.birth, family)
                self._related_name(first, child)
                child.twin_of = first.pid
            else:
                child = self._person(hh, rng.choice(("male", "female")), birth, family)
            born.append(child)
            if not (twins and i == 0):
                birth = birth + timedelta(days=rng.randint(400, 2200))

    def _related_name(self, first: _Person, twin: _Person) -> None:
        """Twins' names: half the time related (ゆうと/ゆうた, or the first kanji shared)."""
        rng, data = self.rng, self.data
        if rng.random() < 0.5:
            return
        pool = [r for r in data.readings_by_prefix.get((twin.sex, first.given_kana[:2]), []) if r != first.given_kana]
        if pool:
            reading = rng.choice(pool)
            spellings = data.spellings[(twin.sex, reading)]
            if all(self._plain(s) == self._plain(first.given) for s in spellings.items):
                return  # 恵 (めぐみ) and 恵 (めぐむ): not a pair of names parents give
            twin.given_kana = reading
            twin.given = spellings.draw(rng)
            while self._plain(twin.given) == self._plain(first.given):
                twin.given = spellings.draw(rng)
            if first.given[:1] and rng.random() < 0.6:
                same_start = [s for s in data.spellings[(twin.sex, twin.given_kana)].items
                              if s[:1] == first.given[:1] and s != first.given]
                if same_start:
                    twin.given = rng.choice(same_start)

    def _namesake(self, hh: _Household) -> None:
        """Give this household an earlier neighbour's surname, and one member a neighbour's given
        name and birth year: same person on paper, different people (``namesake_of``)."""
        rng = self.rng
        earlier = rng.choice(self.by_place[hh.place.code][:-1])
        if rng.random() < 0.7 and not hh.town.rural:
            hh.town = earlier.town
            hh.numbers = self._numbers(hh.town)
        for member in hh.members:
            member.family, member.family_kana = earlier.members[0].family, earlier.members[0].family_kana
        model = rng.choice(earlier.members)
        taken = {m.given_kana for m in hh.members} | {self._plain(m.given) for m in hh.members}
        for member in hh.members:
            if member.sex == model.sex and member.twin_of is None and model.given_kana not in taken \
                    and self._plain(model.given) not in taken:
                member.given, member.given_kana = model.given, model.given_kana
                year = model.birth.year
                day = model.birth
                while day == model.birth:
                    day = date(year, 1, 1) + timedelta(days=rng.randint(0, 364))
                member.birth = min(day, DISASTER_DATE - timedelta(days=1))
                member.namesake_of = model.pid
                break

    def _numbers(self, town: _Town) -> tuple[int, ...]:
        rng = self.rng
        if town.rural:
            return (rng.randint(1, 2500),) + ((rng.randint(1, 12),) if rng.random() < 0.4 else ())
        return rng.randint(1, town.max_chome), rng.randint(1, 30), rng.randint(1, 25)

    # -- registration
    def hosts(self, hh: _Household, events: int) -> list[str]:
        rng = self.rng
        home = hh.place.city_code
        out = []
        for e in range(events):
            r = rng.random()
            if e == 0:
                host = home if r < 0.65 else (self.nearby.draw(rng) if r < 0.9 else self.far.draw(rng))
            else:
                host = home if r < 0.25 else (self.nearby.draw(rng) if r < 0.7 else self.far.draw(rng))
            out.append(host)
        return out

    def render(self, person: _Person, hh: _Household, host: str, style: _Style, contact: str) -> dict:
        rng, data = self.rng, self.data
        errors: list[str] = []

        def slip(tag: str) -> bool:
            return rng.random() < ERROR_RATES[tag]

        # -- names
        family, family_kana = person.family, person.family_kana
        if person.maiden and rng.random() < MAIDEN_NAME_USED:
            family, family_kana = person.maiden
            errors.append("surname_changed")
        family = self._written_variants(family, style, errors, "family")
        if slip("family_other_kanji"):
            alternatives = data.surname_by_reading.get(family_kana)
            if alternatives:
                for _ in range(8):
                    other = alternatives.draw(rng)[0]
                    if other != family and self._plain(other) != self._plain(family):
                        family = other
                        errors.append("family_other_kanji")
                        break
        given = self._written_variants(person.given, style, errors, "given")
        if slip("given_other_kanji") and not _is_kana(given):
            options = data.spellings.get((person.sex, person.given_kana))
            if options and len(options.items) > 1:
                for _ in range(8):
                    other = options.draw(rng)
                    if self._plain(other) != self._plain(given):
                        given = other
                        errors.append("given_other_kanji")
                        break
        in_kana = slip("given_in_kana")
        if in_kana:
            given = self._kana(person.given_kana, "hira" if style.kana == "half" else style.kana)
            errors.append("given_in_kana")
        # -- furigana
        r = rng.random()
        fk, gk = family_kana, person.given_kana
        if r < ERROR_RATES["kana_missing"] or (in_kana and rng.random() < 0.5):
            fk = gk = ""
            errors.append("kana_missing")
        elif r < ERROR_RATES["kana_missing"] + ERROR_RATES["given_kana_missing"]:
            gk = ""
            errors.append("given_kana_missing")
        if (fk or gk) and slip("kana_typo"):
            if gk and (not fk or rng.random() < 0.6):
                gk = _kana_typo(rng, gk)
            else:
                fk = _kana_typo(rng, fk)
            errors.append("kana_typo")
        fk, gk = self._kana(fk, style.kana), self._kana(gk, style.kana)
        # -- birth date
        birth: date | None = person.birth
        r = rng.random()
        for tag in DOB_ERRORS:
            r -= ERROR_RATES[tag]
            if r < 0:
                birth = _slip_date(rng, tag, person.birth)
                if birth != person.birth:
                    errors.append(tag)
                break
        # -- sex
        sex: str | None = person.sex
        r = rng.random()
        if r < ERROR_RATES["sex_missing"]:
            sex = None
            errors.append("sex_missing")
        elif r < ERROR_RATES["sex_missing"] + ERROR_RATES["sex_wrong"]:
            sex = "female" if sex == "male" else "male"
            errors.append("sex_wrong")
        # -- address
        home_code = hh.place.code
        if home_code != hh.place.city_code and slip("lg_city_code"):
            home_code = hh.place.city_code
            errors.append("lg_city_code")
        address = self._address(hh, style, errors)
        # -- phone
        phone = self._phone(person, hh, style, contact, errors)
        return {
            "record_id": "", "family_name": family, "given_name": given, "family_kana": fk, "given_kana": gk,
            "birth_date": birth, "sex": sex, "home_lg_code": home_code, "home_address": address, "phone": phone,
            "registered_by": host, "person_id": person.pid, "household_id": hh.hid, "errors": tuple(errors),
            "twin_of": person.twin_of, "namesake_of": person.namesake_of,
        }

    def _plain(self, text: str) -> str:
        return "".join(self.data.plain.get(ch, ch) for ch in text)

    def _written_variants(self, text: str, style: _Style, errors: list[str], part: str) -> str:
        """A 異体字 of the register as the shelter writes it: kept where the system can hold it
        (JIS X 0208 ones mostly kept, others only on an MJ system), else the everyday form."""
        out = []
        for ch in text:
            target = self.data.plain.get(ch)
            if target is None:
                out.append(ch)
                continue
            keep = style.mj if ch in self.data.rare else self.rng.random() < 0.85
            out.append(ch if keep else target)
        written = "".join(out)
        if any(ch in self.data.plain for ch in written):
            errors.append(f"{part}_variant")
            if any(ch in self.data.rare for ch in written):
                errors.append(f"{part}_variant_rare")
        return written

    @staticmethod
    def _kana(text: str, script: str) -> str:
        if not text:
            return ""
        if script == "hira":
            return jaconv.kata2hira(text)
        katakana = jaconv.hira2kata(text)
        return jaconv.z2h(katakana, kana=True, ascii=False, digit=False) if script == "half" else katakana

    def _address(self, hh: _Household, style: _Style, errors: list[str]) -> str | None:
        rng = self.rng
        if rng.random() < ERROR_RATES["addr_missing"]:
            errors.append("addr_missing")
            return None
        town = hh.town.name
        if hh.town.rural and rng.random() < 0.5:
            town = town.removeprefix("大字")
        if "ケ" in town and rng.random() < 0.3:
            town = town.replace("ケ", rng.choice(("ヶ", "が")))
            errors.append("addr_ke_variant")
        place = hh.place
        prefix = {"full": place.prefecture + place.city, "city": place.city, "town": ""}[style.prefix]
        if rng.random() < ERROR_RATES["addr_town_only"]:
            errors.append("addr_town_only")
            return prefix + town
        numbers = list(hh.numbers)
        if rng.random() < ERROR_RATES["addr_number_typo"]:
            i = rng.randrange(len(numbers))
            text = str(numbers[i])
            j = rng.randrange(len(text))
            digit = rng.choice([d for d in "0123456789" if d != text[j] and not (j == 0 and d == "0")])
            numbers[i] = int(text[:j] + digit + text[j + 1:])
            errors.append("addr_number_typo")
        written = prefix + town + _block(numbers, hh.town.rural, style.numbers)
        if hh.apartment and rng.random() < 0.5:
            written += rng.choice(("", " ", "　")) + hh.apartment + rng.choice(("", "号室"))
            errors.append("addr_apartment")
        return written

    def _phone(self, person: _Person, hh: _Household, style: _Style, contact: str, errors: list[str]) -> str | None:
        rng = self.rng
        head_mobile = next((m.mobile for m in hh.members if m.mobile), None)
        if contact == "none":
            number = None
        elif contact == "own":
            number = person.mobile or head_mobile or hh.landline
        elif contact == "head":
            number = head_mobile or hh.landline
        else:
            number = hh.landline or head_mobile
        if number is not None and rng.random() < ERROR_RATES["phone_blank"]:
            number = None
            errors.append("phone_blank")
        if number is None:
            errors.append("phone_missing")
            return None
        if person.mobile and number != person.mobile:
            errors.append("phone_household")
        if rng.random() < ERROR_RATES["phone_typo"]:
            j = rng.randrange(3, len(number))
            number = number[:j] + rng.choice([d for d in "0123456789" if d != number[j]]) + number[j + 1:]
            errors.append("phone_typo")
        mobile = number.startswith(("090", "080", "070")) and len(number) == 11
        return _format_phone(number, style.phone, 3 if mobile else len(self._area_code(hh.place.city_code)))

    def run(self, n: int) -> list[dict]:
        rng = self.rng
        out: list[dict] = []
        while len(out) < n:
            hh = self.household()
            events = _choose(rng, EVENT_COUNTS)
            for e, host in enumerate(self.hosts(hh, events)):
                members = hh.members if e == 0 else [m for m in hh.members if rng.random() < MEMBER_AGAIN]
                contact = _choose(rng, (("own", 0.40), ("head", 0.28), ("landline", 0.12), ("none", 0.20)))
                style = self.style(host)
                for person in members or hh.members[:1]:
                    out.append(self.render(person, hh, host, style, contact))
                    if rng.random() < RESUBMITTED:
                        again = self.render(person, hh, host, style, contact)
                        again["errors"] = (*again["errors"], "resubmitted")
                        out.append(again)
        del out[n:]
        rng.shuffle(out)
        width = max(7, len(str(n)))
        for i, record in enumerate(out):
            record["record_id"] = f"S{self.seed}-{i:0{width}d}"
        return out


# --------------------------------------------------------------------------- helpers


def _is_kana(text: str) -> bool:
    return bool(text) and all("\u3041" <= ch <= "\u30ff" for ch in text)


_VOICED = str.maketrans("がぎぐげござじずぜぞだぢづでどばびぶべぼ", "かきくけこさしすせそたちつてとはひふへほ")
_SMALL = str.maketrans("ゃゅょっ", "やゆよつ")
_MISREAD = {"し": "つ", "つ": "し", "そ": "ん", "ん": "そ"}  # シ/ツ, ソ/ン in handwriting


def _kana_typo(rng: random.Random, reading: str) -> str:
    kinds = []
    if reading.translate(_VOICED) != reading:
        kinds += ["voicing"] * 4
    if any(a + b in reading for a, b in (("う", "う"), ("お", "う"), ("ゆ", "う"), ("よ", "う"), ("え", "い"))) \
            or "う" in reading[1:]:
        kinds += ["long"] * 3
    if reading.translate(_SMALL) != reading:
        kinds += ["small"] * 2
    if any(ch in _MISREAD for ch in reading):
        kinds += ["misread"] * 2
    if not kinds:
        return reading[:-1] if len(reading) > 2 else reading + "う"
    kind = rng.choice(kinds)
    if kind == "voicing":
        positions = [i for i, ch in enumerate(reading) if ch.translate(_VOICED) != ch]
        i = rng.choice(positions)
        return reading[:i] + reading[i].translate(_VOICED) + reading[i + 1:]
    if kind == "long":
        i = reading.find("う", 1)
        if i > 0:
            return reading[:i] + rng.choice(("ー", "お" if reading[i - 1] in "おこそとのほもよろごぞどぼぽょ" else "")) \
                + reading[i + 1:]
        return reading.replace("えい", "ええ", 1)
    if kind == "small":
        positions = [i for i, ch in enumerate(reading) if ch in "ゃゅょっ"]
        i = rng.choice(positions)
        return reading[:i] + reading[i].translate(_SMALL) + reading[i + 1:]
    positions = [i for i, ch in enumerate(reading) if ch in _MISREAD]
    i = rng.choice(positions)
    return reading[:i] + _MISREAD[reading[i]] + reading[i + 1:]


def _valid(y: int, m: int, d: int) -> date | None:
    try:
        day = date(y, m, d)
    except ValueError:
        return None
    return day if date(1900, 1, 1) <= day < DISASTER_DATE else None


def _slip_date(rng: random.Random, tag: str, birth: date) -> date | None:
    if tag == "dob_missing":
        return None
    if tag == "dob_age_only":
        age = DISASTER_DATE.year - birth.year - ((DISASTER_DATE.month, DISASTER_DATE.day) < (birth.month, birth.day))
        return date(DISASTER_DATE.year - age, 1, 1) if rng.random() < 0.6 else None
    if tag == "dob_one_day":
        day = birth + timedelta(days=rng.choice((-1, 1)))
        return day if day < DISASTER_DATE else birth - timedelta(days=1)
    if tag == "dob_month_day_swap":
        return _valid(birth.year, birth.day, birth.month) or birth
    if tag == "dob_wareki_year":
        return _valid(birth.year + (1 if rng.random() < 0.7 else -1), birth.month, birth.day) or birth
    digits = f"{birth.year:04d}{birth.month:02d}{birth.day:02d}"
    for _ in range(20):
        if tag == "dob_digit_typo":
            i = rng.randrange(2, 8)
            text = digits[:i] + rng.choice([d for d in "0123456789" if d != digits[i]]) + digits[i + 1:]
        else:  # dob_digit_swap
            i = rng.randrange(2, 7)
            if digits[i] == digits[i + 1]:
                continue
            text = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2:]
        day = _valid(int(text[:4]), int(text[4:6]), int(text[6:]))
        if day is not None and day != birth:
            return day
    return birth


_WIDE = str.maketrans("0123456789-", "０１２３４５６７８９－")


def _block(numbers: Sequence[int], rural: bool, notation: str) -> str:
    if rural:
        first, *rest = numbers
        if notation in ("kanji", "chome"):
            return f"{first}番地" + (f"{rest[0]}" if rest else "")
        if notation == "mixed":
            return f"{first}番地" + (f"の{rest[0]}" if rest else "")
        text = "-".join(str(n) for n in numbers)
        return text.translate(_WIDE) if notation == "wide" else text
    chome, ban, go = numbers
    if notation == "kanji":
        return f"{_kanji_number(chome)}丁目{ban}番{go}号"
    if notation == "chome":
        return f"{chome}丁目{ban}番{go}号"
    if notation == "mixed":
        return f"{chome}丁目{ban}-{go}"
    text = f"{chome}-{ban}-{go}"
    return text.translate(_WIDE) if notation == "wide" else text


def _format_phone(number: str, style: str, area: int) -> str:
    """``area``: digits of the area code (3 for a mobile's 090/080/070)."""
    parts = (number[:area], number[area:len(number) - 4], number[len(number) - 4:])
    if style == "plain":
        return number
    if style == "paren":
        return f"{parts[0]}({parts[1]}){parts[2]}"
    if style == "space":
        return " ".join(parts)
    text = "-".join(parts)
    return text.translate(_WIDE) if style == "wide" else text


# --------------------------------------------------------------------------- public


def roster_registrations(n_registrations: int, *, seed: int) -> list[dict]:
    """``n_registrations`` synthetic registrations with ground truth (see the module docstring);
    deterministic in ``seed``."""
    if n_registrations <= 0:
        return []
    return _Generator(seed).run(n_registrations)


def iter_roster_registrations(n_registrations: int, *, seed: int) -> Iterator[dict]:
    """``roster_registrations`` as an iterator (the linkage's training reads either)."""
    yield from roster_registrations(n_registrations, seed=seed)


def true_pairs(records: Sequence[dict]) -> int:
    """How many pairs of the records are the same person."""
    counts: dict[str, int] = {}
    for r in records:
        counts[r["person_id"]] = counts.get(r["person_id"], 0) + 1
    return sum(n * (n - 1) // 2 for n in counts.values())
