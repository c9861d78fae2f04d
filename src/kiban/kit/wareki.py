"""和暦 (Japanese era) formatting for screens. Storage and APIs always use ISO 8601 dates."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")

# First day of each era (the Gregorian calendar applies from 明治6年; earlier dates are shown
# in 西暦 only).
ERAS: tuple[tuple[str, date], ...] = (
    ("令和", date(2019, 5, 1)),
    ("平成", date(1989, 1, 8)),
    ("昭和", date(1926, 12, 25)),
    ("大正", date(1912, 7, 30)),
    ("明治", date(1873, 1, 1)),
)


# 明治元年 is 1868, although dates are shown in 和暦 only from the Gregorian calendar's adoption.
ERA_FIRST_YEAR = {name: (1868 if name == "明治" else start.year) for name, start in ERAS}


def era_of(day: date) -> tuple[str, int] | None:
    for name, start in ERAS:
        if day >= start:
            year = day.year - ERA_FIRST_YEAR[name] + 1
            return name, year
    return None


def _as_date(value: date | datetime) -> date:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(JST)
        return value.date()
    return value


def wareki(value: date | datetime | None) -> str:
    """``令和7年4月1日`` (year 1 is written 元年, as official documents do)."""
    if value is None:
        return ""
    day = _as_date(value)
    era = era_of(day)
    if era is None:
        return seireki(day)
    name, year = era
    year_text = "元" if year == 1 else str(year)
    return f"{name}{year_text}年{day.month}月{day.day}日"


def seireki(value: date | datetime | None) -> str:
    if value is None:
        return ""
    day = _as_date(value)
    return f"{day.year}年{day.month}月{day.day}日"


def wareki_with_seireki(value: date | datetime | None) -> str:
    """``令和7年4月1日（2025年4月1日）``: both calendars, as residents and systems each expect."""
    if value is None:
        return ""
    day = _as_date(value)
    if era_of(day) is None:
        return seireki(day)
    return f"{wareki(day)}（{seireki(day)}）"


def datetime_ja(value: datetime | None) -> str:
    """A timestamp in JST with both calendars: ``令和7年4月1日（2025年4月1日） 09:30``."""
    if value is None:
        return ""
    local = value.astimezone(JST) if value.tzinfo else value
    return f"{wareki_with_seireki(local)} {local:%H:%M}"


def fiscal_year_label(year: int) -> str:
    """``令和8年度`` for fiscal year 2026 (April 2026 to March 2027). A year in which the era
    changed takes the era in force on 1 May: FY2019 is 令和元年度 (令和 began on 1 May 2019),
    FY1988 stays 昭和63年度 (平成 began in January 1989)."""
    era = era_of(date(year, 5, 1))
    if era is None:
        return f"{year}年度"
    name = era[0]
    number = year - ERA_FIRST_YEAR[name] + 1
    return f"{name}{'元' if number == 1 else number}年度"
