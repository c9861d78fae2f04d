"""The municipality's own usage page (``/t/{lg_code}/usage``) and its CSV; the JSON twin is in
``api.py``. A member sees its own counts only: the tenant comes from the URL and membership,
and the counters are read through the safety net (and RLS on PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from kiban.core.identity.dependencies import StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.metering import queries
from kiban.core.tenancy.dependencies import DbSession
from kiban.kit.errors import InvalidInput
from kiban.kit.export import attachment, csv_bytes
from kiban.kit.templating import templates

router = APIRouter(prefix="/t/{lg_code}", include_in_schema=False)
UsageReader = Annotated[StaffContext, require(Permission.metering_usage_read)]

CSV_HEADER = ("月", "サービス", "利用の種類", "件数", "サービスID", "種類コード")


@dataclass(frozen=True)
class UsageLine:
    month: date
    service_id: str
    service_name: str
    event: str
    event_label: str
    count: int


@dataclass(frozen=True)
class UsageReport:
    month_from: date
    month_to: date
    lines: list[UsageLine]
    totals: list[UsageLine]  # per service and event over the period (month = month_from)


def default_period() -> tuple[date, date]:
    last = queries.this_month()
    return queries.add_months(last, -11), last


def parse_period(month_from: str, month_to: str) -> tuple[tuple[date, date] | None, dict[str, str]]:
    """(period, errors by field): every problem at once, in Japanese."""
    errors: dict[str, str] = {}
    start = end = None
    default_from, default_to = default_period()
    try:
        start = queries.parse_month(month_from, "開始月") if month_from.strip() else default_from
    except InvalidInput as exc:
        errors["from"] = exc.detail
    try:
        end = queries.parse_month(month_to, "終了月") if month_to.strip() else default_to
    except InvalidInput as exc:
        errors["to"] = exc.detail
    if not errors:
        try:
            return queries.period(start, end), {}
        except InvalidInput as exc:
            errors["to"] = exc.detail
    return None, errors


async def usage_report(session, month_from: date, month_to: date) -> UsageReport:
    rows = await queries.tenant_usage(session, month_from, month_to)
    names = await queries.service_names(session, (r.service_id for r in rows))
    lines = [UsageLine(r.month, r.service_id, names[r.service_id], r.event, queries.event_label(r.event), r.total)
             for r in rows]
    sums: dict[tuple[str, str], int] = {}
    for line in lines:
        sums[(line.service_id, line.event)] = sums.get((line.service_id, line.event), 0) + line.count
    totals = [UsageLine(month_from, sid, names[sid], ev, queries.event_label(ev), n)
              for (sid, ev), n in sorted(sums.items())]
    return UsageReport(month_from, month_to, lines, totals)


@router.get("/usage", response_class=HTMLResponse)
async def usage_page(request: Request, session: DbSession, staff: UsageReader) -> HTMLResponse:
    raw_from = request.query_params.get("from", "")
    raw_to = request.query_params.get("to", "")
    found, errors = parse_period(raw_from, raw_to)
    report = await usage_report(session, *found) if found else None
    shown_from, shown_to = (found or default_period())
    return templates.TemplateResponse(request, "metering/usage.html", {
        "tenant": staff.tenant, "report": report, "errors": errors,
        "form": {"from": raw_from or queries.month_text(shown_from), "to": raw_to or queries.month_text(shown_to)},
        "month_label": queries.month_label}, status_code=422 if errors else 200)


@router.get("/usage.csv")
async def usage_csv(request: Request, session: DbSession, staff: UsageReader) -> Response:
    found, errors = parse_period(request.query_params.get("from", ""), request.query_params.get("to", ""))
    if errors:
        raise InvalidInput(" ".join(errors.values()))
    report = await usage_report(session, *found)
    rows = [(queries.month_text(line.month), line.service_name, line.event_label, line.count, line.service_id,
             line.event) for line in report.lines]
    name = f"利用実績_{staff.tenant.name}_{queries.month_text(report.month_from)}_{queries.month_text(report.month_to)}.csv"
    return attachment(csv_bytes(rows, CSV_HEADER), name)
