"""JSON twin of the audit log page (/t/{lg_code}/audit): the same filters, paging and
records, for the organisation's administrators and for API keys given 監査ログの閲覧."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from kiban.core.audit.exports import AUDIT_LOG, describe_filter, params_of
from kiban.core.audit.labels import OUTCOME_LABELS, action_label
from kiban.core.audit.query import PAGE_SIZE, log_query
from kiban.core.audit.schemas import AuditEntryRead, AuditFilters, AuditPage, Choice
from kiban.core.audit.service import AuditRepository
from kiban.core.audit.views import EntryView, describe
from kiban.core.exports import service as exports
from kiban.core.exports.api import api_base as exports_api_base
from kiban.core.exports.schemas import ExportRead, export_read
from kiban.core.identity.api_admin import WRITE_ERRORS, JsonWrite
from kiban.core.identity.dependencies import DbSession, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.kit.errors import InvalidInput

router = APIRouter(prefix="/api/v1/t/{lg_code}", tags=["監査ログ"])
AuditReader = Annotated[StaffContext, require(Permission.audit_entry_read)]
# A page past the last is empty, not an error; past this one it is refused before any query.
MAX_PAGE = 1_000_000
Text = Annotated[str, Query(max_length=100)]


def _entry(view: EntryView) -> AuditEntryRead:
    e = view.entry
    return AuditEntryRead(
        seq=e.seq, entry_id=e.entry_id, occurred_at=e.occurred_at, actor_id=e.actor_id, actor=view.actor,
        actor_kind=e.actor_kind, actor_kind_label=view.actor_kind, action=e.action, action_label=view.action,
        outcome=e.outcome, outcome_label=view.outcome, target_type=e.target_type,
        target_type_label=view.target_type, target_id=e.target_id, target=view.target, details=e.details or {},
        details_text=view.details, subject_id=e.subject_id, purpose=e.purpose, legal_basis=e.legal_basis,
        request_id=e.request_id, hash=e.hash)


@router.get("/audit", summary="監査ログ（期間・操作者・操作・結果で絞り込み、50件ずつ新しい順）",
            response_model=AuditPage)
async def audit_entries(staff: AuditReader, session: DbSession,
                        page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
                        since: Annotated[str, Query(max_length=100, description="開始日（例: 2026-04-01、日本時間）")] = "",
                        until: Annotated[str, Query(max_length=100, description="終了日（その日の終わりまで）")] = "",
                        actor: Annotated[str, Query(max_length=100, description="操作者の ID（filters.actors）")] = "",
                        action: Annotated[str, Query(max_length=100, description="操作のコード（filters.actions）")] = "",
                        outcome: Annotated[str, Query(max_length=100, description="success / failure")] = "",
                        ) -> AuditPage:
    repo = AuditRepository(session)
    query, actors, actions = await log_query(repo, since, until, actor, action, outcome)
    if query.errors:
        raise InvalidInput(" ".join(query.errors.values()),
                           errors=[{"field": name, "message": message} for name, message in query.errors.items()])
    total = await repo.count_matching(query.where)
    views = await describe(session, await repo.recent(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE,
                                                      where=query.where))
    filters = AuditFilters(
        actors=[Choice(value=k, label=v) for k, v in actors.items()],
        actions=sorted((Choice(value=code, label=action_label(code)) for code in actions), key=lambda c: c.label),
        outcomes=[Choice(value=k, label=v) for k, v in OUTCOME_LABELS.items()])
    csv_url = f"/t/{staff.tenant.lg_code}/audit.csv" + (f"?{query.query_string()}" if query.narrowed else "")
    return AuditPage(lg_code=staff.tenant.lg_code, total=total, page=page, page_size=PAGE_SIZE,
                     items=[_entry(v) for v in views], filters=filters, csv_url=csv_url)


class AuditExportRequest(BaseModel):
    """The same filters as the log (empty: everything)."""

    since: str = Field("", max_length=100, description="開始日（例: 2026-04-01、日本時間）")
    until: str = Field("", max_length=100, description="終了日（その日の終わりまで）")
    actor: str = Field("", max_length=100, description="操作者の ID（filters.actors）")
    action: str = Field("", max_length=100, description="操作のコード（filters.actions）")
    outcome: str = Field("", max_length=100, description="success / failure")


@router.post("/audit/exports", summary="監査ログの書き出しを依頼する（件数に上限なし。背景で作成）",
             description="受け付けて 202 を返します。Location の URL（書き出しの状態）で state が ready になったら、"
                         "download_url から受け取れます（依頼した本人だけ、7日間）。小さな書き出しはこの応答までにできあがります。",
             status_code=202, response_model=ExportRead,
             responses={202: {"description": "受け付けました", "headers": {"Location": {
                 "description": "書き出しの状態の URL", "schema": {"type": "string"}}}}, **WRITE_ERRORS})
async def export_audit_log(body: AuditExportRequest, request: Request, response: Response, staff: AuditReader,
                           _json: JsonWrite, session: DbSession) -> ExportRead:
    repo = AuditRepository(session)
    query, _, _ = await log_query(repo, body.since, body.until, body.actor, body.action, body.outcome)
    if query.errors:
        raise InvalidInput(" ".join(query.errors.values()),
                           errors=[{"field": name, "message": message} for name, message in query.errors.items()])
    export, job = await exports.request_export(session, staff, AUDIT_LOG.name, params_of(query.where, await repo.head_seq()),
                                               description=describe_filter(query))
    await session.commit()
    await exports.start(request.app, session, job)
    export = await exports.own(session, staff, export.id)
    read = export_read(export, await exports.job_of(session, export), exports_api_base(staff))
    response.headers["Location"] = read.location
    return read
