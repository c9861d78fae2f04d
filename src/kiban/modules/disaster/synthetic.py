"""Synthetic evacuee registrations with ground truth, for training and measuring 名寄せ.

After a disaster the same person is registered by several municipalities: by their home town,
by the city whose shelter they reached, by the town where relatives took them in. Each writes
the name, reading, birth date, address and phone its own way. ``generate`` makes such
registrations for people who do not exist, and says which registrations belong to the same
person (``person_id``) and household (``household_id``).

What is drawn from data, and what is made up:

* Family names are drawn in proportion to their estimated number of bearers
  (``data/names_surnames_estimated_population.csv``). Given names and their readings come from
  the ``gimei`` lists by sex (``data/names_gimei.csv``); that list has no frequencies, so each
  name gets a fixed, Zipf-like popularity (a stable rank from a checksum of the name), which
  makes a few names common and gives realistic same-name strangers (佐藤 健太 ×n).
* Home municipalities are real codes read from the registry's ``lg_population.csv``, weighted
  by their 2020 census population; unknown codes are refused. The default affected area is
  the Noto peninsula of 石川県, and registering municipalities also include the cities
  evacuees went to (金沢市, 小松市, 白山市 …).
* Town names (町名), block numbers and phone numbers are synthetic. Town names are built from
  common place-name parts and do not claim to exist.
* Ages follow a plausible pyramid for an ageing rural area; households are singles, couples,
  parents with children (twins included), sometimes with an elderly parent. Members share
  surname, address and landline: the hard negatives of 名寄せ.

Each person is registered 1–4 times, by different municipalities, with the variations clerks
really produce: 異体字 (髙橋/高橋, 﨑/崎, 齋/斎 …, the variants taken from the project's variant
table), 斎/斉 confusion, readings in hiragana, katakana or half-width katakana, lost small kana
and long-vowel marks (サトー), missing readings, a given name written in kana in the kanji field,
spaces, a birth date with day and month swapped or one digit wrong, addresses written
``1丁目2番3号`` / ``1-2-3`` / full-width / with kanji numerals / without 番地 / with a typo, and
missing or differently written phone numbers.

Everything is deterministic for a given ``seed``. ``iter_registrations`` yields records one at
a time (memory-friendly for a million); ``generate`` returns them as a list.
"""

from __future__ import annotations

import csv
import math
import random
import zlib
from bisect import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources
from itertools import accumulate
from pathlib import Path

import jaconv

from kiban.modules.disaster.names import normalize_kanji, variant_table

DATA = Path(__file__).resolve().parent / "data"

#: 輪島市, 珠洲市, 七尾市, 志賀町, 穴水町, 能登町 (石川県, 令和6年能登半島地震).
DEFAULT_AFFECTED = ("172049", "172057", "172022", "173843", "174611", "174637")
#: The affected towns plus where evacuees were registered: 金沢市, 小松市, 加賀市, 羽咋市,
#: かほく市, 白山市, 能美市, 野々市市, 津幡町, 内灘町, 中能登町.
DEFAULT_REGISTERING = DEFAULT_AFFECTED + (
    "172014", "172031", "172065", "172073", "172090", "172103", "172111", "172120",
    "173614", "173657", "174076",
)
REFERENCE_DATE = date(2024, 1, 1)

# Population share by five-year age band (0–4 … 95–99) for an ageing rural area.
_AGE_BANDS = (2.4, 2.9, 3.3, 3.5, 3.0, 2.9, 3.4, 4.0, 4.7, 5.4, 5.8, 6.3, 7.4, 8.9, 9.6, 8.2,
              6.6, 4.9, 2.6, 0.8)
_REGISTRATIONS_PER_PERSON = ((1, 2, 3, 4), (35, 35, 20, 10))
_HOUSEHOLD_SIZES = ((1, 2, 3, 4, 5, 6), (30, 33, 16, 12, 6, 3))

# Well-known 異体字 a family register may hold, by the standard character they fold to.
_COMMON_VARIANTS = {
    "高": "髙", "崎": "﨑嵜", "斎": "齋", "斉": "齊", "辺": "邊邉", "沢": "澤", "島": "嶋嶌",
    "浜": "濱濵", "徳": "德", "広": "廣", "国": "國", "桜": "櫻", "恵": "惠", "条": "條",
    "瀬": "瀨", "実": "實", "蔵": "藏", "増": "增", "弥": "彌", "曽": "曾", "浅": "淺",
    "児": "兒", "寛": "寬", "静": "靜", "円": "圓", "豊": "豐", "富": "冨", "槙": "槇",
    "柳": "栁", "吉": "𠮷", "野": "埜",
}
# Characters clerks confuse although the tables keep them apart (斎藤/斉藤/齊藤/齋藤).
_CONFUSABLE = {"斎": "斉齊齋", "斉": "斎齋齊", "齋": "斎斉", "齊": "斉斎"}

_TOWN_HEADS = "東西南北上下中新本大小高岩浜宮川山石松杉竹梅桜鳳若長平吉福寺鵜曽門深赤黒白"
_TOWN_TAILS = "町浦野田崎原沢谷島浜川山畑尾口地木台森"
_KANJI_DIGITS = "〇一二三四五六七八九"
_FULLWIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")


@dataclass(frozen=True)
class Municipality:
    code: str
    prefecture: str
    city: str
    population: int


@lru_cache(maxsize=1)
def municipalities() -> dict[str, Municipality]:
    """Every municipality (and designated-city ward) in the registry's seed data, by code."""
    data = resources.files("kiban.core.registry") / "data"
    out: dict[str, Municipality] = {}
    with (data / "lg_population.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["city"]:
                out[row["code"]] = Municipality(row["code"], row["prefecture"], row["city"],
                                                int(row["pop_census_2020"] or 0))
    with (data / "designated_city_wards_population.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            out[row["code"]] = Municipality(row["code"], row["prefecture"], row["city"] + row["ward"],
                                            int(row["pop_juki_2022_01_01"] or 0))
    return out


def _check_codes(codes: Sequence[str], what: str) -> tuple[str, ...]:
    known = municipalities()
    unknown = [c for c in codes if c not in known]
    if unknown or not codes:
        raise ValueError(f"{what}: not municipality codes in the registry: {unknown or 'none given'}")
    return tuple(dict.fromkeys(codes))


@dataclass(frozen=True)
class _Name:
    kanji: str
    reading: str


class _Weighted:
    """Sampling by cumulative weights, prepared once."""

    def __init__(self, items: Sequence, weights: Sequence[float]):
        self.items = list(items)
        self.cum = list(accumulate(weights))

    def pick(self, rng: random.Random):
        return self.items[bisect(self.cum, rng.random() * self.cum[-1])]


@lru_cache(maxsize=1)
def _name_lists() -> tuple[_Weighted, dict[str, _Weighted], dict[str, dict[str, list[_Name]]]]:
    surnames, weights = [], []
    with (DATA / "names_surnames_estimated_population.csv").open(encoding="utf-8", newline="") as h:
        for row in csv.DictReader(h):
            surnames.append(_Name(row["kanji"], row["hiragana"]))
            weights.append(float(row["estimated_population"]))
    given: dict[str, list[_Name]] = {"male": [], "female": []}
    with (DATA / "names_gimei.csv").open(encoding="utf-8", newline="") as h:
        for row in csv.DictReader(h):
            if row["name_type"] == "first_name" and row["gender"] in given:
                given[row["gender"]].append(_Name(row["kanji"], row["hiragana"]))
    by_sex, by_first_char = {}, {}
    for sex, names in given.items():
        # a fixed popularity rank, independent of the seed: a few names are common
        ranked = sorted(names, key=lambda n: zlib.crc32(f"{n.kanji}/{n.reading}".encode()))
        by_sex[sex] = _Weighted(ranked, [1.0 / (rank + 25) for rank in range(len(ranked))])
        index: dict[str, list[_Name]] = {}
        for name in ranked:
            index.setdefault(name.kanji[0], []).append(name)
        by_first_char[sex] = index
    return _Weighted(surnames, weights), by_sex, by_first_char


@lru_cache(maxsize=1)
def _variants() -> dict[str, tuple[str, ...]]:
    """standard character → variants from the table that fold to it (BMP and compatibility)."""
    out: dict[str, list[str]] = {}
    for variant, standard in sorted(variant_table().items()):
        cp = ord(variant)
        if 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF:
            out.setdefault(standard, []).append(variant)
    return {k: tuple(v) for k, v in out.items()}


def _variant_of(ch: str, rng: random.Random) -> str | None:
    common = _COMMON_VARIANTS.get(ch)
    if common and rng.random() < 0.9:
        return rng.choice(common)
    table = _variants().get(ch)
    return rng.choice(table) if table else (rng.choice(common) if common else None)


def _with_variant(text: str, rng: random.Random) -> str:
    """``text`` with one character that has a variant replaced by it (unchanged if none)."""
    positions = [i for i, ch in enumerate(text) if ch in _COMMON_VARIANTS or ch in _variants()]
    if not positions:
        return text
    i = rng.choice(positions)
    variant = _variant_of(text[i], rng)
    return text[:i] + variant + text[i + 1:] if variant else text


# --------------------------------------------------------------------------- people


@dataclass
class _Address:
    lg: str
    town: str
    chome: int | None  # None: a 番地-style town
    ban: int
    go: int | None
    room: int | None = None


@dataclass
class _Person:
    person_id: str
    household_id: str
    family: str  # as in the family register, possibly with 異体字
    family_reading: str
    given: str
    given_reading: str
    sex: str
    birth: date
    address: _Address
    landline: str | None
    mobile: str | None
    destinations: list[str] = field(default_factory=list)


class _Area:
    """Towns and free addresses of the home municipalities."""

    def __init__(self, codes: Sequence[str], expected_households: float):
        munis = municipalities()
        self.codes = list(codes)
        weights = [max(munis[c].population, 1) for c in codes]
        self.pick_lg = _Weighted(self.codes, weights)
        total = sum(weights)
        self.towns: dict[str, list[tuple[str, int | None]]] = {}
        for code, weight in zip(self.codes, weights, strict=True):
            n_towns = max(8, math.ceil(expected_households * weight / total / 250))
            self.towns[code] = self._make_towns(code, n_towns)
        self.used: set[tuple] = set()

    @staticmethod
    def _make_towns(code: str, n: int) -> list[tuple[str, int | None]]:
        rng = random.Random(int(code))  # the same towns whatever the seed
        names: dict[str, None] = {}
        while len(names) < n:
            length = 1 if rng.random() < 0.6 else 2
            name = "".join(rng.choice(_TOWN_HEADS) for _ in range(length)) + rng.choice(_TOWN_TAILS)
            names.setdefault(name)
        return [(name, rng.randint(1, 5) if rng.random() < 0.55 else None) for name in names]

    def new_address(self, rng: random.Random) -> _Address:
        lg = self.pick_lg.pick(rng)
        for _ in range(6):
            town, chomes = rng.choice(self.towns[lg])
            if chomes:
                addr = _Address(lg, town, rng.randint(1, chomes), rng.randint(1, 30), rng.randint(1, 25))
            else:
                addr = _Address(lg, town, None, rng.randint(1, 1800), rng.randint(1, 12) if rng.random() < 0.4 else None)
            key = (addr.lg, addr.town, addr.chome, addr.ban, addr.go)
            if key not in self.used:
                self.used.add(key)
                return addr
        addr.room = rng.choice((101, 102, 103, 201, 202, 203, 301, 302))  # an apartment block
        return addr


def _birth_date(age: int, rng: random.Random) -> date:
    start = date(REFERENCE_DATE.year - age - 1, REFERENCE_DATE.month, REFERENCE_DATE.day)
    return start + timedelta(days=rng.randrange(365))


def _age(rng: random.Random, low: int = 0, high: int = 99) -> int:
    bands = [(i, w) for i, w in enumerate(_AGE_BANDS) if i * 5 + 4 >= low and i * 5 <= high]
    band = rng.choices([b for b, _ in bands], [w for _, w in bands])[0]
    return min(max(band * 5 + rng.randrange(5), low), high)


def _phone(prefix: str, rng: random.Random) -> str:
    if prefix == "mobile":
        return f"0{rng.choice('789')}0-{rng.randrange(10000):04d}-{rng.randrange(10000):04d}"
    return f"{prefix}-{rng.randrange(20, 100):02d}-{rng.randrange(10000):04d}"


def _area_code(lg: str) -> str:
    return "07" + f"{int(lg[2:5]) % 90 + 10:02d}"  # synthetic, stable per municipality


class _People:
    def __init__(self, rng: random.Random, area: _Area, registering: Sequence[str]):
        self.rng = rng
        self.area = area
        self.registering = list(registering)
        munis = municipalities()
        self.destinations = _Weighted(self.registering, [max(munis[c].population, 1) ** 0.7 for c in self.registering])
        self.households = 0
        self.persons = 0

    def _given(self, sex: str, avoid: set[str], like: str | None = None) -> _Name:
        _, by_sex, by_first = _name_lists()
        if like and self.rng.random() < 0.4:
            options = [n for n in by_first[sex].get(like[0], ()) if n.kanji not in avoid]
            if options:
                return self.rng.choice(options)
        for _ in range(20):
            name = by_sex[sex].pick(self.rng)
            if name.kanji not in avoid:
                return name
        return name

    def household(self) -> list[_Person]:
        rng = self.rng
        surnames, _, _ = _name_lists()
        self.households += 1
        household_id = f"H{self.households:07d}"
        surname = surnames.pick(rng)
        family = _with_variant(surname.kanji, rng) if rng.random() < 0.2 else surname.kanji
        address = self.area.new_address(rng)
        landline = _phone(_area_code(address.lg), rng) if rng.random() < 0.65 else None
        n_dest = rng.choice((1, 2, 2, 3))
        destinations = [self.destinations.pick(rng) for _ in range(n_dest)]
        size = rng.choices(*_HOUSEHOLD_SIZES)[0]

        members: list[tuple[str, int, bool]] = []  # sex, age, twin of the member before
        if size == 1:
            members.append((rng.choice(("male", "female")), _age(rng, 20), False))
        elif size == 2 and rng.random() < 0.75:
            head = _age(rng, 25)
            members += [("male", head, False), ("female", min(99, max(20, head + rng.randint(-6, 4))), False)]
        elif size == 2:
            head = _age(rng, 45)
            members += [(rng.choice(("male", "female")), head, False),
                        (rng.choice(("male", "female")), max(0, head - rng.randint(22, 40)), False)]
        else:
            head = _age(rng, 28, 75)
            members += [("male", head, False), ("female", min(99, max(20, head + rng.randint(-6, 4))), False)]
            n_children = size - 2
            if size >= 4 and rng.random() < 0.25 and head <= 70:  # an elderly parent lives with them
                members.append((rng.choice(("male", "female")), min(99, head + rng.randint(24, 34)), False))
                n_children -= 1
            twins = n_children >= 2 and rng.random() < 0.03  # about 2% of children are twins
            for i in range(n_children):
                if twins and i == 1:
                    first_sex, first_age, _ = members[-1]
                    sex = first_sex if rng.random() < 0.5 else rng.choice(("male", "female"))
                    members.append((sex, first_age, True))
                else:
                    members.append((rng.choice(("male", "female")), max(0, head - rng.randint(22, min(42, head))), False))

        people: list[_Person] = []
        used_names: set[str] = set()
        for sex, age, twin in members:
            like = people[-1].given if twin and people else None
            name = self._given(sex, used_names, like)
            used_names.add(name.kanji)
            given = _with_variant(name.kanji, rng) if rng.random() < 0.05 else name.kanji
            birth = people[-1].birth if twin and people else _birth_date(age, rng)
            own_family = family
            if len(people) >= 2 and age > members[0][1] + 20 and rng.random() < 0.2:
                other = surnames.pick(rng)  # an elderly parent of the spouse
                own_family, surname_reading = other.kanji, other.reading
            else:
                surname_reading = surname.reading
            mobile_rate = 0.0 if age < 13 else 0.9 if age < 65 else 0.7 if age < 80 else 0.35
            self.persons += 1
            people.append(_Person(
                person_id=f"P{self.persons:07d}", household_id=household_id, family=own_family,
                family_reading=surname_reading, given=given, given_reading=name.reading, sex=sex,
                birth=birth, address=address, landline=landline,
                mobile=_phone("mobile", rng) if rng.random() < mobile_rate else None,
                destinations=destinations))
        return people


# --------------------------------------------------------------------------- registrations


def _kanji_number(n: int) -> str:
    if n < 10:
        return _KANJI_DIGITS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _KANJI_DIGITS[tens]) + "十" + (_KANJI_DIGITS[ones] if ones else "")


_SMALL_TO_LARGE = str.maketrans("ぁぃぅぇぉっゃゅょゎ", "あいうえおつやゆよわ")
_VOICED = dict(zip("かきくけこさしすせそたちつてとはひふへほ", "がぎぐげござじずぜぞだぢづでどばびぶべぼ", strict=True))
_O_ROW = set("おこそとのほもよろごぞどぼぽょ")
_U_ROW = set("うくすつぬふむゆるぐずぶぷゅ")


def _render_kana(reading: str, style: str, rng: random.Random, *, lose_small: bool, long_marks: bool) -> str:
    text = reading.translate(_SMALL_TO_LARGE) if lose_small else reading
    if style == "hiragana":
        return text
    kata = jaconv.hira2kata(text)
    if long_marks:  # サトウ → サトー, ユウコ → ユーコ
        chars = list(kata)
        for i in range(1, len(chars)):
            if chars[i] == "ウ" and jaconv.kata2hira(chars[i - 1]) in _O_ROW | _U_ROW:
                chars[i] = "ー"
        kata = "".join(chars)
    return jaconv.z2h(kata, kana=True, ascii=False, digit=False) if style == "halfwidth" else kata


def _kana_typo(reading: str, rng: random.Random) -> str:
    positions = [i for i, ch in enumerate(reading) if ch in _VOICED or ch in _VOICED.values()]
    if not positions:
        return reading
    i = rng.choice(positions)
    ch = reading[i]
    swapped = _VOICED.get(ch) or next(k for k, v in _VOICED.items() if v == ch)
    return reading[:i] + swapped + reading[i + 1:]


def _write_name(name: str, rng: random.Random) -> str:
    """How one municipality writes a name that the family register writes ``name``."""
    out = name
    standard = normalize_kanji(name)
    if standard != name and rng.random() < 0.5:
        out = standard  # the system has no 外字: 髙 becomes 高
    elif rng.random() < 0.02:
        out = _with_variant(name, rng)
    if any(ch in _CONFUSABLE for ch in out) and rng.random() < 0.15:
        out = "".join(rng.choice(_CONFUSABLE[ch]) if ch in _CONFUSABLE else ch for ch in out)
    r = rng.random()
    if r < 0.015:
        out = out + "　"
    elif r < 0.03 and len(out) >= 2:
        out = out[0] + rng.choice(" 　") + out[1:]
    return out


def _valid(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _birth_typo(birth: date, rng: random.Random) -> date:
    kind = rng.random()
    if kind < 0.4 and birth.day <= 12 and birth.day != birth.month:
        return date(birth.year, birth.day, birth.month)
    digits = list(birth.strftime("%Y%m%d"))
    for _ in range(20):
        trial = digits[:]
        if kind < 0.8:
            i = rng.choice((2, 3, 5, 6, 7))  # not the century
            trial[i] = rng.choice([d for d in "0123456789" if d != trial[i]])
        else:
            i = rng.choice((2, 4, 6))
            trial[i], trial[i + 1] = trial[i + 1], trial[i]
        s = "".join(trial)
        candidate = _valid(int(s[:4]), int(s[4:6]), int(s[6:]))
        if candidate and candidate != birth and candidate <= REFERENCE_DATE:
            return candidate
    return birth


def _write_address(a: _Address, rng: random.Random) -> str:
    if rng.random() < 0.04:
        return ""
    muni = municipalities()[a.lg]
    if a.chome is not None:
        parts = (a.chome, a.ban, a.go)
        official = f"{a.chome}丁目{a.ban}番{a.go}号"
        kanji = f"{_kanji_number(a.chome)}丁目{a.ban}番{a.go}号"
    else:
        parts = (a.ban,) if a.go is None else (a.ban, a.go)
        official = f"{a.ban}番地" + (f"{a.go}" if a.go is not None else "")
        kanji = f"{a.ban}番地" + (f"の{a.go}" if a.go is not None else "")
    hyphen = "-".join(str(p) for p in parts)
    if a.room:
        official += f" {a.room}号室"
        kanji += f"{a.room}号室"
        hyphen += f"-{a.room}"
    town = a.town
    if rng.random() < 0.02:  # a typo in the town name
        i = rng.randrange(len(town) - 1)
        town = town[:i] + rng.choice(_TOWN_HEADS) + town[i + 1:]
    r = rng.random()
    if r < 0.04:
        return muni.prefecture + muni.city + town  # 番地 left out
    if r < 0.36:
        text = muni.prefecture + muni.city + town + official
    elif r < 0.66:
        text = muni.city + town + hyphen
    elif r < 0.78:
        text = muni.prefecture + muni.city + town + hyphen.translate(_FULLWIDTH)
    elif r < 0.90:
        text = muni.prefecture + muni.city + town + kanji
    else:
        text = muni.prefecture + muni.city + "　" + town + hyphen
    if rng.random() < 0.02:  # one digit wrong
        positions = [i for i, ch in enumerate(text) if ch.isdigit() and ch.isascii()]
        if positions:
            i = rng.choice(positions)
            text = text[:i] + rng.choice([d for d in "123456789" if d != text[i]]) + text[i + 1:]
    return text


def _write_phone(p: _Person, rng: random.Random) -> str:
    options = [x for x in (p.mobile, p.landline) if x]
    if not options or rng.random() < 0.1:
        return ""
    phone = options[0] if len(options) == 1 or rng.random() < 0.6 else options[1]  # mobile or landline
    if rng.random() < 0.01:
        i = rng.choice([i for i, ch in enumerate(phone) if ch.isdigit()][3:])
        phone = phone[:i] + rng.choice([d for d in "0123456789" if d != phone[i]]) + phone[i + 1:]
    r = rng.random()
    if r < 0.5:
        return phone
    if r < 0.8:
        return phone.replace("-", "")
    if r < 0.9:
        return phone.translate(_FULLWIDTH)
    head, _, rest = phone.partition("-")
    middle, _, tail = rest.partition("-")
    return f"{head}({middle}){tail}"


def _registrations(p: _Person, people: _People, next_id) -> Iterator[dict]:
    rng = people.rng
    k = rng.choices(*_REGISTRATIONS_PER_PERSON)[0]
    chosen: list[str] = []
    home = p.address.lg
    if rng.random() < 0.6 and home in people.registering:
        chosen.append(home)
    pool = list(dict.fromkeys(p.destinations + people.registering))
    while len(chosen) < min(k, len(pool)):
        if rng.random() < 0.6:
            code = rng.choice(p.destinations)
        else:
            code = people.destinations.pick(rng)
        if code not in chosen:
            chosen.append(code)
    for registered_by in chosen:
        r = rng.random()
        style = "hiragana" if r < 0.45 else "katakana" if r < 0.85 else "halfwidth"
        lose_small = rng.random() < 0.08
        long_marks = style != "hiragana" and rng.random() < 0.25
        if rng.random() < 0.12:
            family_kana = given_kana = ""
        else:
            given_reading = _kana_typo(p.given_reading, rng) if rng.random() < 0.01 else p.given_reading
            family_kana = _render_kana(p.family_reading, style, rng, lose_small=lose_small, long_marks=long_marks)
            given_kana = _render_kana(given_reading, style, rng, lose_small=lose_small, long_marks=long_marks)
            if rng.random() < 0.02:
                given_kana = ""
        given = _write_name(p.given, rng)
        if rng.random() < 0.02:
            given = p.given_reading if rng.random() < 0.6 else jaconv.hira2kata(p.given_reading)
        if rng.random() < 0.03:
            birth = None
        else:
            birth = _birth_typo(p.birth, rng) if rng.random() < 0.04 else p.birth
        birth_value = birth if birth is None or int(registered_by) % 2 else birth.isoformat()
        sex: str | None = p.sex
        r = rng.random()
        if r < 0.03:
            sex = None
        elif r < 0.033:
            sex = "female" if p.sex == "male" else "male"
        yield {
            "record_id": next_id(registered_by),
            "family_name": _write_name(p.family, rng),
            "given_name": given,
            "family_kana": family_kana,
            "given_kana": given_kana,
            "birth_date": birth_value,
            "sex": sex,
            "home_lg_code": home,
            "home_address": _write_address(p.address, rng),
            "phone": _write_phone(p, rng),
            "registered_by": registered_by,
            "person_id": p.person_id,
            "household_id": p.household_id,
        }


def iter_registrations(n_registrations: int, *, seed: int,
                       affected_lg_codes: Sequence[str] | None = None,
                       registering_lg_codes: Sequence[str] | None = None) -> Iterator[dict]:
    """Yield ``n_registrations`` synthetic registrations (see the module docstring).

    Registrations of one person come out next to each other; their ``record_id`` does not
    reveal that (it is a scrambled serial number prefixed with the registering code).
    """
    if n_registrations < 0:
        raise ValueError("n_registrations must be >= 0")
    affected = _check_codes(affected_lg_codes or DEFAULT_AFFECTED, "affected_lg_codes")
    registering = _check_codes(registering_lg_codes or affected + DEFAULT_REGISTERING, "registering_lg_codes")
    rng = random.Random(seed)
    area = _Area(affected, expected_households=n_registrations / 2.05 / 2.4)
    people = _People(rng, area, registering)
    serial = 0
    scramble = (seed * 0x9E3779B1 + 0x5DEECE66D) % (1 << 40)

    def next_id(registered_by: str) -> str:
        nonlocal serial
        serial += 1
        return f"{registered_by}-{(serial * 0x5851F42D4C95 + scramble) % (1 << 40):010x}"

    produced = 0
    while produced < n_registrations:
        for person in people.household():
            for record in _registrations(person, people, next_id):
                yield record
                produced += 1
                if produced == n_registrations:
                    return


def generate(n_registrations: int, *, seed: int, affected_lg_codes: Sequence[str] | None = None,
             registering_lg_codes: Sequence[str] | None = None) -> list[dict]:
    """``n_registrations`` synthetic registrations as a list (see ``iter_registrations``)."""
    return list(iter_registrations(n_registrations, seed=seed, affected_lg_codes=affected_lg_codes,
                                   registering_lg_codes=registering_lg_codes))
