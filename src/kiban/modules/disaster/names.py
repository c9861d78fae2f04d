"""Normalising Japanese names for 名寄せ (matching records of the same person).

The same person is written 「髙橋　ｻﾁｺ」 by one municipality and 「高橋 さちこ」 by another.
``normalize_kanji`` folds 異体字 to a standard form using the MJ縮退マップ / 法務省 tables and the
National Tax Agency's JIS shrink map (``data/kanji_variant_pairs.csv``): 髙→高, 﨑→崎, 齋→斎,
邊/邉→辺, 濵→浜, 𠮷→吉. ``normalize_kana`` folds width, katakana into hiragana, small kana into
full size, and drops long-vowel marks and spaces: ｻｯﾁｬﾝ, サッチャン, さっちゃん → さつちやん.

How a variant's target is chosen, when the tables offer several: pairs whose only basis is
「読み・字形による類推」 (the weakest) are ignored; a target backed by a 法務省 (family
register) table beats one backed only by the tax agency's map; then a JIS X 0208 target; then the
lowest code point. A JIS X 0208 character is folded only on a 法務省 basis, and two everyday
characters listed in both directions (功⇄切) are left apart: the tables allow them in place of
each other in some registers, which does not make one a variant of the other. Targets are followed to a fixed point
(邉→邊→辺); the rare cycle is represented by its lowest code point. Different standard
characters stay different: 斎 and 斉 are not merged.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import jaconv

DATA = Path(__file__).resolve().parent / "data" / "kanji_variant_pairs.csv"
WEAK_BASIS = "mj_reading_glyph_inference"
MOJ_BASES = ("mj_moj_family_register_notices", "mj_moj_notice_582_table4", "mj_jis_incorporation_ucs_unification")

_SMALL_KANA = str.maketrans("ぁぃぅぇぉっゃゅょゎゕゖ", "あいうえおつやゆよわかけ")
_SPACES_AND_MARKS = re.compile(r"[\s\u3000ー－‐・･.]+")


@lru_cache(maxsize=1)
def variant_table() -> dict[str, str]:
    """variant character → standard character, resolved to a fixed point."""
    candidates: dict[str, list[tuple[tuple, str]]] = {}
    with DATA.open(encoding="utf-8", newline="") as handle:
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


def normalize_kana(text: str) -> str:
    folded = jaconv.kata2hira(unicodedata.normalize("NFKC", text or ""))
    for written, plain in (("ゔぁ", "ば"), ("ゔぃ", "び"), ("ゔぇ", "べ"), ("ゔぉ", "ぼ"), ("ゔ", "ぶ")):
        folded = folded.replace(written, plain)
    folded = folded.translate(_SMALL_KANA)
    return _SPACES_AND_MARKS.sub("", folded)


def normalize_name(text: str) -> str:
    """For a name that may mix kanji and kana: both foldings, spaces removed."""
    return _SPACES_AND_MARKS.sub("", normalize_kana(normalize_kanji(text)))
