from datetime import UTC, date, datetime

import pytest

from kiban.kit.wareki import datetime_ja, wareki, wareki_with_seireki


@pytest.mark.parametrize(("day", "expected"), [
    (date(2025, 4, 1), "令和7年4月1日（2025年4月1日）"),
    (date(2019, 5, 1), "令和元年5月1日（2019年5月1日）"),
    (date(2019, 4, 30), "平成31年4月30日（2019年4月30日）"),
    (date(1989, 1, 8), "平成元年1月8日（1989年1月8日）"),
    (date(1989, 1, 7), "昭和64年1月7日（1989年1月7日）"),
    (date(1926, 12, 25), "昭和元年12月25日（1926年12月25日）"),
    (date(1912, 7, 30), "大正元年7月30日（1912年7月30日）"),
])
def test_dates_are_shown_in_both_calendars(day, expected) -> None:
    assert wareki_with_seireki(day) == expected


def test_timestamps_are_shown_in_japan_time() -> None:
    # 2025-03-31 15:30 UTC is already 1 April in Japan.
    assert datetime_ja(datetime(2025, 3, 31, 15, 30, tzinfo=UTC)) == "令和7年4月1日（2025年4月1日） 00:30"


def test_empty_values_render_as_nothing() -> None:
    assert wareki(None) == "" and wareki_with_seireki(None) == ""


def test_fiscal_year_labels_follow_official_usage() -> None:
    from kiban.kit.wareki import fiscal_year_label

    assert fiscal_year_label(2026) == "令和8年度"
    assert fiscal_year_label(2019) == "令和元年度"  # 令和 began on 1 May 2019
    assert fiscal_year_label(2018) == "平成30年度"
    assert fiscal_year_label(1988) == "昭和63年度"  # 平成 began in January 1989, within FY1988
    assert fiscal_year_label(1989) == "平成元年度"


def test_meiji_years_count_from_1868() -> None:
    from datetime import date

    from kiban.kit.wareki import wareki

    assert wareki(date(1900, 1, 1)) == "明治33年1月1日"
    assert wareki(date(1912, 7, 29)) == "明治45年7月29日"
