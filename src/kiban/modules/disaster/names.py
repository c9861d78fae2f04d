"""Normalising Japanese names for 名寄せ (matching records of the same person).

The same person is written 「髙橋　ｻﾁｺ」 by one municipality and 「高橋 さちこ」 by another.
``normalize_kanji`` (from ``kiban.kit.textnorm``, where its rules are described) folds 異体字
to a standard form using the MJ縮退マップ / 法務省 tables and the National Tax Agency's JIS shrink
map (``data/kanji_variant_pairs.csv``): 髙→高, 﨑→崎, 齋→斎, 邊/邉→辺, 濵→浜, 𠮷→吉.
``normalize_kana`` folds width, katakana into hiragana, small kana into full size, and drops
long-vowel marks and spaces: ｻｯﾁｬﾝ, サッチャン, さっちゃん → さつちやん.
"""

from __future__ import annotations

import re
import unicodedata

import jaconv

# The 異体字 table and its folding are generic (the registry search uses them too), so they
# live in kit; re-exported here for the matcher and its tests.
from kiban.kit.textnorm import KANJI_VARIANTS_CSV as DATA  # noqa: F401
from kiban.kit.textnorm import normalize_kanji, variant_table  # noqa: F401

_SMALL_KANA = str.maketrans("ぁぃぅぇぉっゃゅょゎゕゖ", "あいうえおつやゆよわかけ")
_SPACES_AND_MARKS = re.compile(r"[\s\u3000ー－‐・･.]+")


def normalize_kana(text: str) -> str:
    folded = jaconv.kata2hira(unicodedata.normalize("NFKC", text or ""))
    for written, plain in (("ゔぁ", "ば"), ("ゔぃ", "び"), ("ゔぇ", "べ"), ("ゔぉ", "ぼ"), ("ゔ", "ぶ")):
        folded = folded.replace(written, plain)
    folded = folded.translate(_SMALL_KANA)
    return _SPACES_AND_MARKS.sub("", folded)


def normalize_name(text: str) -> str:
    """For a name that may mix kanji and kana: both foldings, spaces removed."""
    return _SPACES_AND_MARKS.sub("", normalize_kana(normalize_kanji(text)))
