"""JSON twin of the usage page: ``GET /api/v1/t/{lg_code}/usage`` (the tenant's own counts)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from kiban.core.identity.dependencies import StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.metering import queries
from kiban.core.metering.web import usage_report
from kiban.core.tenancy.dependencies import DbSession

router = APIRouter(prefix="/api/v1/t/{lg_code}", tags=["利用実績（計測）"])
UsageReader = Annotated[StaffContext, require(Permission.metering_usage_read)]


class UsageCount(BaseModel):
    month: str = Field(description="月（YYYY-MM、日本時間）")
    month_label: str
    service_id: str = Field(description="カタログのサービス ID")
    service_name: str
    event: str = Field(description="利用の種類のコード（submission, booking, email, notice ...）")
    event_label: str
    count: int


class UsageTotal(BaseModel):
    service_id: str
    service_name: str
    event: str
    event_label: str
    count: int = Field(description="期間の合計")


class TenantUsage(BaseModel):
    lg_code: str
    month_from: str
    month_to: str
    months: list[UsageCount] = Field(description="月・サービス・種類ごとの件数（新しい月から）")
    totals: list[UsageTotal]
    csv_url: str


@router.get("/usage", summary="利用実績（月・サービス・種類ごとの件数。自団体の分だけ）", response_model=TenantUsage)
async def usage(staff: UsageReader, session: DbSession,
                to: Annotated[str | None, Query(pattern=queries.MONTH_PATTERN, description="終了月（YYYY-MM、日本時間）。省略すると今月")] = None,
                months: Annotated[int, Query(ge=1, le=queries.MAX_MONTHS, description="終了月までの月数（1〜36）")] = 12,
                ) -> TenantUsage:
    """The page's period as the last ``months`` months up to ``to``: every well-formed query is a
    valid period (the page itself takes 開始月 and 終了月 as typed)."""
    end = queries.parse_month(to, "終了月") if to else queries.this_month()
    found = (queries.add_months(end, -(months - 1)), end)
    report = await usage_report(session, *found)
    start, end = queries.month_text(report.month_from), queries.month_text(report.month_to)
    lg_code = staff.tenant.lg_code

    def _month(d: date) -> str:
        return queries.month_text(d)

    return TenantUsage(
        lg_code=lg_code, month_from=start, month_to=end,
        months=[UsageCount(month=_month(x.month), month_label=queries.month_label(x.month), service_id=x.service_id,
                           service_name=x.service_name, event=x.event, event_label=x.event_label, count=x.count)
                for x in report.lines],
        totals=[UsageTotal(service_id=x.service_id, service_name=x.service_name, event=x.event,
                           event_label=x.event_label, count=x.count) for x in report.totals],
        csv_url=f"/t/{lg_code}/usage.csv?from={start}&to={end}")
