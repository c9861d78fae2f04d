"""Normalisation of Japanese text for search keys.

A resident types 「さっぽろ」, a clerk pastes 「ｻｯﾎﾟﾛ」 from an old system, someone else types
「札幌」: all must find 札幌市. We fold width (NFKC: half-width katakana and full-width
alphanumerics become their standard forms), fold hiragana into katakana and drop spaces.
"""

from __future__ import annotations

import re
import unicodedata

import jaconv

_SPACES = re.compile(r"[\s\u3000]+")


def search_key(text: str | None) -> str:
    if not text:
        return ""
    folded = unicodedata.normalize("NFKC", text)
    folded = jaconv.hira2kata(folded)
    return _SPACES.sub("", folded).lower()


def to_katakana(text: str) -> str:
    """Full-width katakana for display (source files carry half-width readings)."""
    return jaconv.hira2kata(unicodedata.normalize("NFKC", text))

