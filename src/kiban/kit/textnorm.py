"""Normalisation of Japanese text for search keys and name matching.

A resident types 「さっぽろ」, a clerk pastes 「ｻｯﾎﾟﾛ」 from an old system, someone else types
「札幌」: all must find 札幌市. ``search_key`` folds width (NFKC: half-width katakana and
full-width alphanumerics become their standard forms), folds hiragana into katakana, drops
spaces, and folds what place names are written with interchangeably: ケ/ヶ/が (龍ケ崎・竜ヶ崎・
竜が崎) and 異体字 (檜/桧, 檮/梼, 龍/竜, 澤/沢 ...).

``normalize_kanji`` folds 異体字 to a standard form using the MJ縮退マップ / 法務省 tables and the
National Tax Agency's JIS shrink map (``kanji_variant_pairs.csv``): 髙→高, 﨑→崎, 齋→斎,
邊/邉→辺, 濵→浜, 𠮷→吉. It is what 名寄せ compares people's names with, so it is strict.

How a variant's target is chosen, when the tables offer several: pairs whose only basis is
「読み・字形による類推」 (the weakest) are ignored; a target backed by a 法務省 (family
register) table beats one backed only by the tax agency's map; then a JIS X 0208 target; then the
lowest code point. A JIS X 0208 character is folded only on a 法務省 basis, and two everyday
characters listed in both directions (功⇄切) are left apart: the tables allow them in place of
each other in some registers, which does not make one a variant of the other. Targets are followed to a fixed point
(邉→邊→辺); the rare cycle is represented by its lowest code point. Different standard
characters stay different: 斎 and 斉 are not merged.

Search is looser than 名寄せ: place names are also written with pairs that are both everyday
JIS X 0208 characters, which the tables (rightly, for people) do not fold: 檜原村 is written
桧原村, 梼原町 檮原町, 鰺ヶ沢町 鯵ヶ沢町. ``PLACE_NAME_VARIANTS`` adds those for search only.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import jaconv

# The table ships with the disaster module, which first needed it (its README carries the
# CC BY-SA attribution). Read by path, not imported: kit and core never import a module.
KANJI_VARIANTS_CSV = (Path(__file__).resolve().parent.parent / "modules" / "disaster" / "data"
                      / "kanji_variant_pairs.csv")
WEAK_BASIS = "mj_reading_glyph_inference"
MOJ_BASES = ("mj_moj_family_register_notices", "mj_moj_notice_582_table4", "mj_jis_incorporation_ucs_unification")

# variant → the form the search key uses; both sides of each pair are JIS X 0208, so the
# 名寄せ table leaves them apart. Only pairs seen in place names.
PLACE_NAME_VARIANTS = {
    "檜": "桧",  # 檜原村・檜枝岐村 (桧原村・桧枝岐村)
    "檮": "梼",  # 梼原町 (檮原町)
    "龍": "竜",  # 龍ケ崎市・龍郷町 / 竜王町 (the 名寄せ table has this one too)
    "鰺": "鯵",  # 鰺ヶ沢町 (鯵ヶ沢町)
    "淵": "渕",
    "藪": "薮",
    "鶯": "鴬",
    "壽": "寿",
    "眞": "真",
    "驒": "騨",  # 飛驒 / 飛騨市
}

# ケ in a place name is read が (龍ケ崎 りゅうがさき) and written ケ, ヶ or が (ガ once
# hiragana is folded into katakana). Folded on both sides, so readings stay comparable.
_KE = str.maketrans({"ヶ": "ケ", "ガ": "ケ"})
_SPACES = re.compile(r"[\s\u3000]+")


@lru_cache(maxsize=1)
def variant_table() -> dict[str, str]:
    """variant character → standard character for 名寄せ, resolved to a fixed point."""
    candidates: dict[str, list[tuple[tuple, str]]] = {}
    with KANJI_VARIANTS_CSV.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    pairs = {(row["variant"], row["target"]) for row in rows}
    for row in rows:
        bases = row["basis"].split(";")
        moj = any(b in MOJ_BASES for b in bases)
        if bases == [WEAK_BASIS]:
            continue
        everyday = row["variant_in_jisx0208"] == "1" and row["target_in_jisx0208"] == "1"
        if row["variant_in_jisx0208"] == "1" and not moj:
            continue  # an everyday character folded by the tax map alone: not a variant
        if everyday and (row["target"], row["variant"]) in pairs:
            continue  # listed both ways (功⇄切): interchangeable in some registers, not one's variant
        variant = unicodedata.normalize("NFKC", row["variant"])
        target = unicodedata.normalize("NFKC", row["target"])
        if variant == target:
            continue
        rank = (0 if moj else 1, 0 if row["target_in_jisx0208"] == "1" else 1, target)
        candidates.setdefault(variant, []).append((rank, target))
    direct = {variant: min(options)[1] for variant, options in candidates.items()}
    table: dict[str, str] = {}
    for variant in direct:
        path = [variant]
        current = direct[variant]
        while current in direct and current not in path:
            path.append(current)
            current = direct[current]
        if current in path:  # a cycle: its lowest code point stands for all of it
            cycle = path[path.index(current):]
            current = min(cycle)
        for node in path:
            if node != current:
                table.setdefault(node, current)
    return table


def normalize_kanji(text: str) -> str:
    table = variant_table()
    folded = unicodedata.normalize("NFKC", text or "")
    return "".join(table.get(ch, ch) for ch in folded)


@lru_cache(maxsize=1)
def _search_translation() -> dict[int, str]:
    """One ``str.translate`` table: 名寄せ variants, then place-name variants on top."""
    table = dict(variant_table())
    for variant, target in PLACE_NAME_VARIANTS.items():
        table[variant] = target
    # follow the added pairs through the 名寄せ table too (a variant of 檜 folds to 桧)
    resolved = {v: PLACE_NAME_VARIANTS.get(t, t) for v, t in table.items()}
    return str.maketrans(resolved)


def search_key(text: str | None) -> str:
    """The form both a query and the text searched are reduced to before comparing."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKC", text)
    folded = jaconv.hira2kata(folded)
    folded = folded.translate(_search_translation()).translate(_KE)
    return _SPACES.sub("", folded).lower()


def to_katakana(text: str) -> str:
    """Full-width katakana for display (source files carry half-width readings)."""
    return jaconv.hira2kata(unicodedata.normalize("NFKC", text))
