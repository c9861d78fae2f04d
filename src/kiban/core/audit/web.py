"""An organisation's audit log for its administrators: browse by period, person, action and
result, page through it, and export what is shown for Excel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from kiban.core.audit.labels import OUTCOME_LABELS, action_label
from kiban.core.audit.query import PAGE_SIZE, log_query as _query
from kiban.core.audit.query import parse_day as _parse_day  # noqa: F401 - kept for callers of the old name
from kiban.core.audit.service import Actor, AuditRepository, record
from kiban.core.audit.views import describe
from kiban.core.identity.dependencies import DbSession, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.kit.export import attachment, csv_bytes
from kiban.kit.paging import PageNumber
from kiban.kit.templating import templates
from kiban.kit.wareki import JST

router = APIRouter(prefix="/t/{lg_code}/audit", include_in_schema=False)
AuditReader = Annotated[StaffContext, require(Permission.audit_entry_read)]
CSV_COLUMNS = ["番号", "日時（日本時間）", "操作者", "操作者の種別", "操作", "結果", "対象の種類", "対象", "詳細",
               "本人", "利用目的", "法的根拠", "受付番号", "ハッシュ"]

Text = Annotated[str, Query()]


@router.get("", response_class=HTMLResponse)
async def audit_log(request: Request, session: DbSession, staff: AuditReader,
                    page: PageNumber = 1, since: Text = "", until: Text = "",
                    actor: Text = "", action: Text = "", outcome: Text = "") -> HTMLResponse:
    repo = AuditRepository(session)
    query, actors, actions = await _query(repo, since, until, actor, action, outcome)
    entries, total = [], 0
    if not query.errors:
        total = await repo.count_matching(query.where)
        entries = await describe(session, await repo.recent(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE,
                                                            where=query.where))
    action_choices = sorted(((code, action_label(code)) for code in actions), key=lambda c: c[1])
    return templates.TemplateResponse(request, "audit/log.html", {
        "tenant": staff.tenant, "entries": entries, "page": page, "page_size": PAGE_SIZE, "total": total,
        "query": query, "actors": actors, "action_choices": action_choices, "outcomes": OUTCOME_LABELS,
        "first": (page - 1) * PAGE_SIZE + 1, "last": (page - 1) * PAGE_SIZE + len(entries),
    }, status_code=422 if query.errors else 200)


def _csv_datetime(value: datetime) -> str:
    """``2026-04-01 09:30:15`` in JST: Excel reads it as a date-time value, not as text."""
    return value.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")


@router.get(".csv")
async def audit_log_csv(session: DbSession, staff: AuditReader, since: Text = "", until: Text = "",
                        actor: Text = "", action: Text = "", outcome: Text = "") -> Response:
    repo = AuditRepository(session)
    query, _, _ = await _query(repo, since, until, actor, action, outcome)
    if query.errors:
        from kiban.kit.errors import InvalidInput

        raise InvalidInput(" ".join(query.errors.values()))
    views = await describe(session, await repo.in_order(query.where))
    rows = [[v.entry.seq, _csv_datetime(v.entry.occurred_at), v.actor, v.actor_kind, v.action, v.outcome,
             v.target_type, v.target, v.details, v.entry.subject_id or "", v.entry.purpose or "",
             v.entry.legal_basis or "", v.entry.request_id or "", v.entry.hash] for v in views]
    body = csv_bytes(rows, CSV_COLUMNS)
    # Exporting personal-data access records is itself an access worth recording.
    await record(session, Actor("staff", staff.principal.display_name, staff.principal.id),
                 "audit.log.exported", details={"entries": len(rows)})
    await session.commit()
    return attachment(body, f"audit-{staff.tenant.lg_code}.csv")
