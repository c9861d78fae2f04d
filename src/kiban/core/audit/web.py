"""An organisation's audit log for its administrators: browse, and export for Excel."""

from __future__ import annotations

import csv
import io
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from kiban.core.audit.service import Actor, AuditRepository, record
from kiban.core.identity.dependencies import DbSession, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.kit.templating import templates
from kiban.kit.wareki import datetime_ja

router = APIRouter(prefix="/t/{lg_code}/audit", include_in_schema=False)
AuditReader = Annotated[StaffContext, require(Permission.audit_entry_read)]
PAGE_SIZE = 100
CSV_COLUMNS = ["番号", "日時", "操作者", "操作者の種別", "操作", "結果", "対象の種類", "対象", "本人",
               "利用目的", "法的根拠", "受付番号", "ハッシュ"]


@router.get("", response_class=HTMLResponse)
async def audit_log(request: Request, session: DbSession, staff: AuditReader,
                    page: Annotated[int, Query(ge=1)] = 1) -> HTMLResponse:
    entries = await AuditRepository(session).recent(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return templates.TemplateResponse(request, "audit/log.html", {
        "tenant": staff.tenant, "entries": entries, "page": page, "page_size": PAGE_SIZE})


@router.get(".csv")
async def audit_log_csv(session: DbSession, staff: AuditReader) -> Response:
    entries = await AuditRepository(session).in_order()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        writer.writerow([e.seq, datetime_ja(e.occurred_at), e.actor_label, e.actor_kind, e.action, e.outcome,
                         e.target_type or "", e.target_id or "", e.subject_id or "", e.purpose or "",
                         e.legal_basis or "", e.request_id or "", e.hash])
    # Exporting personal-data access records is itself an access worth recording.
    await record(session, Actor("staff", staff.principal.display_name, staff.principal.id),
                 "audit.log.exported", details={"entries": len(entries)})
    await session.commit()
    filename = f"audit-{staff.tenant.lg_code}.csv"
    return Response(("\ufeff" + buffer.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
