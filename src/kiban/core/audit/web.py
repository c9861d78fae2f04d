"""An organisation's audit log for its administrators: browse by period, person, action and
result, page through it, and export what is shown for Excel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.audit.exports import AUDIT_LOG, CSV_COLUMNS, csv_rows, describe_filter, params_of
from kiban.core.audit.labels import OUTCOME_LABELS, action_label
from kiban.core.audit.query import PAGE_SIZE, log_query as _query
from kiban.core.audit.query import parse_day as _parse_day  # noqa: F401 - kept for callers of the old name
from kiban.core.audit.service import Actor, AuditRepository, record
from kiban.core.audit.views import describe
from kiban.core.identity.dependencies import DbSession, StaffContext, require
from kiban.core.exports import service as exports
from kiban.core.identity.permissions import Permission
from kiban.kit.csrf import verify_csrf
from kiban.kit.errors import InvalidInput
from kiban.kit.export import attachment, csv_bytes
from kiban.kit.paging import PageNumber
from kiban.kit.templating import templates

router = APIRouter(prefix="/t/{lg_code}/audit", include_in_schema=False)
AuditReader = Annotated[StaffContext, require(Permission.audit_entry_read)]

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
        "direct_limit": DIRECT_LIMIT,
    }, status_code=422 if query.errors else 200)


DIRECT_LIMIT = 10_000  # up to this many, the CSV is written while the administrator waits


class TooManyForDirectExport(InvalidInput):
    title = "件数が多すぎます"


@router.get(".csv")
async def audit_log_csv(session: DbSession, staff: AuditReader, since: Text = "", until: Text = "",
                        actor: Text = "", action: Text = "", outcome: Text = "") -> Response:
    repo = AuditRepository(session)
    query, _, _ = await _query(repo, since, until, actor, action, outcome)
    if query.errors:
        raise InvalidInput(" ".join(query.errors.values()))
    if await repo.count_matching(query.where) > DIRECT_LIMIT:
        raise TooManyForDirectExport(
            f"記録が {DIRECT_LIMIT:,} 件を超えるため、すぐには書き出せません。監査ログの画面の「背景で書き出す」を使ってください"
            "（できあがると「書き出したファイル」から受け取れます）。")
    rows = csv_rows(await describe(session, await repo.in_order(query.where)))
    body = csv_bytes(rows, CSV_COLUMNS)
    # Exporting personal-data access records is itself an access worth recording.
    await record(session, Actor("staff", staff.principal.display_name, staff.principal.id),
                 "audit.log.exported", details={"entries": len(rows)})
    await session.commit()
    return attachment(body, f"audit-{staff.tenant.lg_code}.csv")


@router.post("/exports", dependencies=[Depends(verify_csrf)])
async def audit_log_export(request: Request, session: DbSession, staff: AuditReader) -> Response:
    """Any number of records, written in the background (core/exports) with the filters shown."""
    form = await request.form()
    values = {name: str(form.get(name, "") or "")[:100] for name in ("since", "until", "actor", "action", "outcome")}
    repo = AuditRepository(session)
    query, _, _ = await _query(repo, **values)
    if query.errors:
        raise InvalidInput(" ".join(query.errors.values()))
    export, job = await exports.request_export(session, staff, AUDIT_LOG.name, params_of(query.where, await repo.head_seq()),
                                               description=describe_filter(query))
    await session.commit()
    await exports.start(request.app, session, job)
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/exports/{export.id}", status_code=303)
