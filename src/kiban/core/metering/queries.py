"""Reading metered usage: a tenant's own months, and the one cross-tenant read a consortium's
secretariat makes (``usage_of_tenants``; its rule is checked by the caller, see
``kiban.modules.costs.metered.secretariat_may_read_usage``).

Counts are read from ``usage_counter`` only (``SUM(total)`` over the shards), never from events.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import column, func, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.metering.models import UsageCounter
from kiban.core.metering.service import JST
from kiban.core.tenancy.context import current_tenant, unscoped
from kiban.kit.errors import InvalidInput

# The events the platform counts, in the words screens use (an unknown one is shown as 「その他（code）」).
EVENT_LABELS: dict[str, str] = {
    "submission": "申請（電子申請の受付）",
    "booking": "予約",
    "cancellation": "予約の取消",
    "lottery_entry": "抽選への申込",
    "email": "メール送信",
    "notice": "アプリ内通知",
}

#: The longest period one page or allocation reads (months).
MAX_MONTHS = 36
#: A month as the JSON API takes it: every string this matches is a month ``parse_month`` accepts.
MONTH_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"


def event_label(event: str) -> str:
    """Screens never show the code itself (an event no module has named yet is 「その他の利用」)."""
    return EVENT_LABELS.get(event, "その他の利用")


def month_label(month: date) -> str:
    """「令和8年4月（2026年4月）」."""
    from kiban.kit.wareki import era_of

    era = era_of(month)
    seireki = f"{month.year}年{month.month}月"
    if era is None:
        return seireki
    name, year = era
    return f"{name}{'元' if year == 1 else year}年{month.month}月（{seireki}）"


_CATALOG = table("catalog_service", column("id"), column("name"))


async def service_names(session: AsyncSession, ids) -> dict[str, str]:
    """Catalog names of ``ids`` (core reads the catalog's public table; it never imports the module)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await session.execute(select(_CATALOG.c.id, _CATALOG.c.name).where(_CATALOG.c.id.in_(wanted)))
    names = dict(rows.all())
    return {i: names.get(i, "（カタログにないサービス）") for i in wanted}


def this_month() -> date:
    now = datetime.now(JST)
    return date(now.year, now.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + (month.month - 1) + n
    return date(index // 12, index % 12 + 1, 1)


def month_text(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


_MONTH = re.compile(r"^(\d{4})[-/.年](\d{1,2})月?$")


def parse_month(text: str, what: str = "月") -> date:
    """「2026-04」「2026/4」「2026年4月」 → date(2026, 4, 1); InvalidInput (Japanese) otherwise."""
    value = unicodedata.normalize("NFKC", text or "").strip()
    found = _MONTH.match(value)
    if not found or not 1 <= int(found.group(2)) <= 12 or not 2000 <= int(found.group(1)) <= 2100:
        raise InvalidInput(f"{what}「{text}」は「2026-04」のように西暦の年と月で入力してください。")
    return date(int(found.group(1)), int(found.group(2)), 1)


def period(month_from: date, month_to: date) -> tuple[date, date]:
    """The checked period (both ends included)."""
    if month_from > month_to:
        raise InvalidInput("期間の開始月が終了月より後になっています。")
    if add_months(month_from, MAX_MONTHS - 1) < month_to:
        raise InvalidInput(f"期間は{MAX_MONTHS}か月以内で指定してください。")
    return month_from, month_to


def months_between(month_from: date, month_to: date) -> list[date]:
    months, month = [], month_from
    while month <= month_to:
        months.append(month)
        month = add_months(month, 1)
    return months


@dataclass(frozen=True)
class UsageRow:
    lg_code: str
    month: date
    service_id: str
    event: str
    total: int


async def tenant_usage(session: AsyncSession, month_from: date, month_to: date) -> list[UsageRow]:
    """The bound tenant's counts per month, service and event (the safety net and RLS scope it)."""
    if current_tenant(session) is None:
        from kiban.core.tenancy.context import TenantContextMissing

        raise TenantContextMissing("利用実績はテナント（自治体）を指定して読み出してください。")
    rows = await session.execute(
        select(UsageCounter.lg_code, UsageCounter.month, UsageCounter.service_id, UsageCounter.event,
               func.sum(UsageCounter.total))
        .where(UsageCounter.month >= month_from, UsageCounter.month <= month_to)
        .group_by(UsageCounter.lg_code, UsageCounter.month, UsageCounter.service_id, UsageCounter.event)
        .order_by(UsageCounter.month.desc(), UsageCounter.service_id, UsageCounter.event))
    return [UsageRow(code, month, service, event, int(total)) for code, month, service, event, total in rows.all()]


async def usage_of_tenants(session: AsyncSession, lg_codes: list[str], service_id: str, month_from: date,
                           month_to: date, *, reason: str, event: str | None = None) -> list[UsageRow]:
    """Counts of ``service_id`` for the tenants ``lg_codes`` (one query, grouped by tenant, month and
    event). A deliberate cross-tenant read: the caller has checked who may read whose usage of
    which service and says why in ``reason`` (named in the ``unscoped()`` it opens)."""
    if not lg_codes:
        return []
    statement = (select(UsageCounter.lg_code, UsageCounter.month, UsageCounter.service_id, UsageCounter.event,
                        func.sum(UsageCounter.total))
                 .where(UsageCounter.service_id == service_id, UsageCounter.lg_code.in_(lg_codes),
                        UsageCounter.month >= month_from, UsageCounter.month <= month_to)
                 .group_by(UsageCounter.lg_code, UsageCounter.month, UsageCounter.service_id, UsageCounter.event)
                 .order_by(UsageCounter.lg_code, UsageCounter.month, UsageCounter.event))
    if event is not None:
        statement = statement.where(UsageCounter.event == event)
    async with unscoped(session, reason):
        rows = (await session.execute(statement)).all()
    return [UsageRow(code, month, service, ev, int(total)) for code, month, service, ev, total in rows]
