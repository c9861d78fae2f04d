"""Bounds for what people type, checked where it is written, so stored data never breaks a page.

A date outside 1900-01-01..2100-12-31 is a typo (「0001-04-01」, 「20260-04-01」), and a page that
later computes a fiscal year or a 和暦 from it should never meet one. Numbers are bounded for
the same reason: a yen amount or a count beyond anything real overflows the database column, a
float or a chart. Every helper raises ``InvalidInput`` with a Japanese message naming the field
(``what``), or for schemas a ``ValueError`` that the API's problem+json shows as it is.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import AfterValidator

from kiban.kit.errors import InvalidInput

EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2100, 12, 31)
#: 1,000 兆円: more than any budget in the country; a bigger figure is a typo (or an attack).
MAX_YEN = 10**15 - 1
#: Longest free text a single-line field keeps.
MAX_TEXT = 1000

_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")
_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


def date_problem(value: date, what: str) -> str | None:
    """The Japanese message when ``value`` is outside the plausible range, else None."""
    if EARLIEST_DATE <= value <= LATEST_DATE:
        return None
    return (f"{what}は{EARLIEST_DATE.year}年1月1日から{LATEST_DATE.year}年12月31日までの日付で入力してください"
            f"（入力: {value.isoformat()}）。")


def check_date(value: date | None, what: str) -> date | None:
    """``value`` unchanged, or ``InvalidInput`` when it lies outside 1900..2100."""
    if value is not None and (problem := date_problem(value, what)):
        raise InvalidInput(problem)
    return value


def parse_date(text: str | None, what: str) -> date | None:
    """A typed date: 2026-04-01, 2026/4/1, 2026年4月1日, 20260401, in either width; empty → None.

    Raises ``InvalidInput`` naming ``what`` for anything else, and for dates outside 1900..2100."""
    folded = unicodedata.normalize("NFKC", text or "").strip()
    if not folded:
        return None
    match = _DATE.match(folded) or _COMPACT_DATE.match(folded)
    example = "例: 2026-04-01"
    if not match:
        raise InvalidInput(f"{what}「{_short(text)}」は日付（{example}）で入力してください。")
    try:
        value = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise InvalidInput(f"{what}「{_short(text)}」という日はありません。日付（{example}）で入力してください。") from None
    return check_date(value, what)


def parse_whole_number(text: str | int | None, what: str, *, minimum: int = 0, maximum: int,
                       unit: str = "") -> int | None:
    """A typed whole number between ``minimum`` and ``maximum``; empty → None. Commas and
    full-width digits are accepted; anything else (「1e9」「NaN」「-」) gets a Japanese message."""
    if text is None:
        return None
    if isinstance(text, int) and not isinstance(text, bool):
        number = text
    else:
        folded = unicodedata.normalize("NFKC", str(text)).strip().replace(",", "")
        folded = folded.removesuffix(unit).strip() if unit else folded
        if not folded:
            return None
        if not re.fullmatch(r"-?\d{1,30}", folded):
            raise InvalidInput(f"{what}「{_short(text)}」は整数（半角・全角の数字）で入力してください。")
        number = int(folded)
    if not minimum <= number <= maximum:
        raise InvalidInput(f"{what}は{minimum:,}{unit}以上{maximum:,}{unit}以下で入力してください。")
    return number


def finite_decimal(value: object, what: str, *, minimum: Decimal, maximum: Decimal) -> Decimal:
    """A decimal number (「1.5」「１．５」) that is finite and within bounds, else ``InvalidInput``."""
    try:
        number = value if isinstance(value, Decimal) else Decimal(unicodedata.normalize("NFKC", str(value)).strip())
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{what}「{_short(str(value))}」は数値で入力してください。") from None
    if not number.is_finite() or not minimum <= number <= maximum:
        raise InvalidInput(f"{what}は{minimum}以上{maximum}以下の数値で入力してください。")
    return number


def _short(text: object) -> str:
    shown = str(text)
    return shown if len(shown) <= 40 else shown[:40] + "…"


def _plausible(value: date) -> date:
    if problem := date_problem(value, "日付"):
        raise ValueError(problem)
    return value


def _finite(value: float) -> float:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("有限の数値を指定してください（NaN や Infinity は使えません）。")
    return value


#: A date field of a schema: refused (422, in Japanese) outside 1900-01-01..2100-12-31.
PlausibleDate = Annotated[date, AfterValidator(_plausible)]
