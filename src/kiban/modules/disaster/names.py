"""Normalising Japanese names for 名寄せ (matching records of the same person).

The same person is written 「髙橋　ｻﾁｺ」 by one municipality and 「高橋 さちこ」 by another.
``normalize_kanji`` (from ``kiban.kit.textnorm``, where its rules are described) folds 異体字
to a standard form using the MJ縮退マップ / 法務省 tables and the National Tax Agency's JIS shrink
map (``data/kanji_variant_pairs.csv``): 髙→高, 﨑→崎, 齋→斎, 邊/邉→辺, 濵→浜, 𠮷→吉.
``normalize_kana`` folds width, katakana into hiragana, small kana into full size, and drops
long-vowel marks and spaces: ｻｯﾁｬﾝ, サッチャン, さっちゃん → さつちやん.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

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


# -- search keys stored on every victim record ------------------------------------------------------
# The workspace searches and pages in SQL over these, so they are written with the record (see
# ``disaster.models``: every insert and every change of a name fills them) and never computed
# per query. A query is folded the same way (``search_key``) and found where it begins the
# folded full name, the given name, the full reading or the given reading (「高橋」, 「健太」,
# 「高橋けんた」, 「たかはし」, 「けんた」 all find 髙橋 健太 / ﾀｶﾊｼ ｹﾝﾀ): a beginning can be looked up
# in an index under PostgreSQL's row-level security, a substring cannot (LIKE is not leakproof,
# so no index may evaluate it before the tenant policy; every search would read every record
# the viewer may see). Latin letters are lower-cased, so 「smith」 finds SMITH.

SEARCH_KEY_LENGTH = 200


def search_key(text: str | None) -> str:
    """A name, a reading or a typed query as searched: 異体字 and kana folded, spaces and marks
    removed, lower case (「髙橋 ｹﾝﾀ」 → 「高橋けんた」)."""
    return normalize_name(text or "").lower()[:SEARCH_KEY_LENGTH]


def search_keys(family_name: str | None, given_name: str | None, family_kana: str | None,
                given_kana: str | None) -> dict[str, str]:
    """The four keys a victim record stores, by column name."""
    return {"name_key": search_key((family_name or "") + (given_name or "")),
            "given_key": search_key(given_name),
            "kana_key": search_key((family_kana or "") + (given_kana or "")),
            "given_kana_key": search_key(given_kana)}


def prefix_upper_bound(key: str) -> str | None:
    """The smallest string greater than every string that begins with ``key`` (code point
    order), so that ``key <= column < bound`` is "column begins with key" for a B-tree; None
    when there is none (a key ending in U+10FFFF)."""
    if not key:
        return None
    last = ord(key[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:  # surrogates are no characters: the next one is U+E000
        last = 0xE000
    return key[:-1] + chr(last) if last <= 0x10FFFF else None


def name_search_key(family_name: str | None, given_name: str | None) -> str:
    """``search_keys(...)["name_key"]`` (kept for callers that fill rows themselves)."""
    return search_key((family_name or "") + (given_name or ""))


def kana_search_key(family_kana: str | None, given_kana: str | None) -> str:
    """``search_keys(...)["kana_key"]``."""
    return search_key((family_kana or "") + (given_kana or ""))


def compute_import_key(values: Mapping[str, Any]) -> str:
    """sha256 (hex) of who the row is: folded name, birth date, folded kana, home code, household.
    A roster row's import key; every victim record stores its own as ``roster_key`` (a re-import
    finds who is already registered without normalising the whole 台帳 again).

    Width, hiragana/katakana, small kana and 異体字 (髙/高) do not change the key, so re-importing a
    file, or the same person written another way, gives the same key.
    """
    birth = values.get("birth_date")
    identity = [
        normalize_name(values["family_name"] + values["given_name"]),
        birth.isoformat() if birth else "",
        normalize_kana(values.get("family_kana", "") + values.get("given_kana", "")),
        values["home_lg_code"],
        values.get("household_key", ""),
    ]
    payload = json.dumps(identity, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
