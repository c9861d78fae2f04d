"""JSON twins of the notification pages: delivery status and template wording for staff
(/api/v1/t/{lg_code}/notify/...), and a resident's notices (/api/v1/me/notices).

Writes sent with the session cookie must be JSON (``JsonWrite``), as elsewhere."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from kiban.core.identity.api_admin import WRITE_ERRORS, JsonWrite
from kiban.core.identity.dependencies import CurrentResident, DbSession, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.notify import service
from kiban.core.notify.models import STATE_LABELS, Notification
from kiban.core.registry import service as registry_service
from kiban.kit.errors import InvalidInput, NotFound
from kiban.kit.openapi import problem_responses
from kiban.kit.paging import Offset

router = APIRouter(prefix="/api/v1/t/{lg_code}/notify", tags=["通知"])
me_router = APIRouter(prefix="/api/v1/me", tags=["住民本人"])
DeliveryReader = Annotated[StaffContext, require(Permission.notify_delivery_read)]
TemplateManager = Annotated[StaffContext, require(Permission.notify_template_manage)]
State = Literal["queued", "sending", "sent", "failed"]


class NotificationRead(BaseModel):
    id: str
    template: str
    template_label: str
    service: str
    state: State
    state_label: str = Field(description="待機中 / 送信中 / 送信済み / 失敗")
    wait_reason: str | None = Field(None, description="待機中の理由（送信設定がない・上限・再送待ち）")
    channels: list[Literal["email", "notice"]]
    recipient_name: str | None
    subject: str
    message_id: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None
    failed_at: datetime | None


class DeliveryLimits(BaseModel):
    configured: bool = Field(description="メール送信サーバーが設定されているか")
    per_minute: int
    per_day: int
    sent_last_minute: int
    sent_today: int
    blocked_reason: str | None


class NotificationList(BaseModel):
    total: int
    offset: int
    limit: int
    counts: dict[str, int] = Field(description="状態ごとの件数")
    limits: DeliveryLimits
    items: list[NotificationRead]


class TemplateRead(BaseModel):
    key: str
    label: str
    placeholders: list[str]
    overridden: bool
    subject: str
    body: str
    default_subject: str
    default_body: str
    updated_at: datetime | None = None


class WordingWrite(BaseModel):
    subject: str = Field(max_length=1000)
    body: str = Field(max_length=20000)


class PreviewRead(BaseModel):
    subject: str
    body: str


class TestWrite(BaseModel):
    email: str = Field(max_length=300)


class NoticeRead(BaseModel):
    id: str
    lg_code: str
    organisation: str
    subject: str
    body: str
    created_at: datetime
    read_at: datetime | None


class NoticeList(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[NoticeRead]


def _read(n: Notification, reason: str | None = None) -> NotificationRead:
    t = service.TEMPLATES.get(n.template_key)
    return NotificationRead(
        id=n.id, template=n.template_key, template_label=t.label if t else "（廃止された種類）", service=n.service,
        state=n.state, state_label=STATE_LABELS.get(n.state, n.state), wait_reason=reason,
        channels=[c for c, on in (("email", bool(n.email)), ("notice", bool(n.principal_id))) if on],
        recipient_name=n.recipient_name, subject=n.subject, message_id=n.message_id, attempts=n.attempts,
        last_error=n.last_error, created_at=n.created_at,
        next_attempt_at=n.next_attempt_at if n.state == "queued" else None, sent_at=n.sent_at,
        failed_at=n.failed_at)


@router.get("/notifications", summary="通知の送信状況（新しい順）", response_model=NotificationList)
async def notifications(session: DbSession, staff: DeliveryReader, state: State | None = None,
                        template: Annotated[str | None, Query(max_length=80)] = None, offset: Offset = 0,
                        limit: Annotated[int, Query(ge=1, le=200)] = service.PAGE_SIZE) -> NotificationList:
    found = await service.delivery_page(session, state=state, template_key=template, offset=offset, limit=limit)
    st = found.status
    return NotificationList(
        total=found.total, offset=offset, limit=limit, counts=found.counts,
        limits=DeliveryLimits(configured=st.configured, per_minute=st.limits.per_minute, per_day=st.limits.per_day,
                              sent_last_minute=st.last_minute, sent_today=st.today, blocked_reason=st.blocked_reason),
        items=[_read(n, found.reasons[n.id]) for n in found.rows])


@router.get("/notifications/{notification_id}", summary="通知1件の送信状況", response_model=NotificationRead,
            responses=problem_responses(404))
async def notification(notification_id: str, session: DbSession, staff: DeliveryReader) -> NotificationRead:
    from kiban.core.notify import delivery

    n = await service.notification(session, notification_id)
    status = await delivery.tenant_status(session, staff.tenant.lg_code)
    return _read(n, service.wait_reason(n, status, status.now))


async def _template_read(session, key: str) -> TemplateRead:
    definition = service.template_def_or_404(key)
    override = await service.OverrideRepository(session).for_key(key)
    return TemplateRead(key=key, label=definition.label, placeholders=list(definition.placeholders),
                        overridden=override is not None, subject=override.subject if override else definition.subject,
                        body=override.body if override else definition.body, default_subject=definition.subject,
                        default_body=definition.body, updated_at=override.updated_at if override else None)


@router.get("/templates", summary="通知の文面の一覧", response_model=list[TemplateRead])
async def templates(session: DbSession, staff: DeliveryReader) -> list[TemplateRead]:
    return [await _template_read(session, t.key) for t, _ in await service.template_list(session)]


@router.get("/templates/{key}", summary="通知の文面", response_model=TemplateRead, responses=problem_responses(404))
async def template(key: str, session: DbSession, staff: DeliveryReader) -> TemplateRead:
    return await _template_read(session, key)


@router.put("/templates/{key}", summary="通知の文面を変更する（差し込み項目を検査）", response_model=TemplateRead,
            responses={**problem_responses(404), **WRITE_ERRORS})
async def save_template(key: str, body: WordingWrite, session: DbSession, staff: TemplateManager,
                        _json: JsonWrite) -> TemplateRead:
    await service.save_wording(session, staff, key, body.subject, body.body)
    await session.commit()
    return await _template_read(session, key)


@router.delete("/templates/{key}", summary="標準の文面に戻す", response_model=TemplateRead,
               responses=problem_responses(404))
async def reset_template(key: str, session: DbSession, staff: TemplateManager) -> TemplateRead:
    # no JSON rule: a page on another site cannot make a browser send DELETE (forms send GET and POST)
    await service.reset_wording(session, staff, key)
    await session.commit()
    return await _template_read(session, key)


@router.post("/templates/{key}/preview", summary="文面のプレビュー（保存しない）", response_model=PreviewRead,
             responses={**problem_responses(404), **WRITE_ERRORS})
async def preview_template(key: str, body: WordingWrite, staff: TemplateManager, _json: JsonWrite) -> PreviewRead:
    definition = service.template_def_or_404(key)
    errors = service.check_wording(definition, body.subject.strip(), body.body)
    if errors:
        raise InvalidInput("\n".join(e["message"] for e in errors), errors=errors)
    subject, text = service.preview(definition, body.subject.strip(), body.body)
    return PreviewRead(subject=subject, body=text)


@router.post("/test", summary="送信テストのメールを送信待ちに入れる", response_model=NotificationRead, status_code=202,
             responses=WRITE_ERRORS)
async def send_test(body: TestWrite, session: DbSession, staff: TemplateManager, _json: JsonWrite) -> NotificationRead:
    n = await service.send_test(session, staff, body.email)
    await session.commit()
    return _read(n)


@me_router.get("/notices", summary="わたしへのお知らせ（全団体、新しい順）", response_model=NoticeList)
async def my_notices(resident: CurrentResident, session: DbSession, offset: Offset = 0,
                     limit: Annotated[int, Query(ge=1, le=100)] = 20) -> NoticeList:
    notices, total = await service.notices_for(session, resident.principal.id, offset=offset, limit=limit)
    orgs = await registry_service.organizations_by_code(session, sorted({n.lg_code for n in notices}))
    return NoticeList(total=total, offset=offset, limit=limit, items=[NoticeRead(
        id=n.id, lg_code=n.lg_code, organisation=orgs[n.lg_code].name if n.lg_code in orgs else "（団体名不明）",
        subject=n.subject, body=n.body, created_at=n.created_at, read_at=n.read_at) for n in notices])


@me_router.post("/notices/{notice_id}/read", summary="お知らせを既読にする", response_model=NoticeRead,
                responses={**problem_responses(404), **WRITE_ERRORS})
async def read_notice(notice_id: str, resident: CurrentResident, session: DbSession, _json: JsonWrite) -> NoticeRead:
    n = await service.mark_notice_read(session, resident.principal.id, notice_id)
    if n is None:
        raise NotFound("お探しのお知らせは見つかりませんでした。")
    await session.commit()
    orgs = await registry_service.organizations_by_code(session, [n.lg_code])
    return NoticeRead(id=n.id, lg_code=n.lg_code,
                      organisation=orgs[n.lg_code].name if n.lg_code in orgs else "（団体名不明）",
                      subject=n.subject, body=n.body, created_at=n.created_at, read_at=n.read_at)


NoticeReader = Annotated[StaffContext, require(Permission.notify_notice_read)]


@router.get("/notices", summary="わたし（職員）へのこの団体でのお知らせ（新しい順）", response_model=NoticeList)
async def staff_notices(staff: NoticeReader, session: DbSession, offset: Offset = 0,
                        limit: Annotated[int, Query(ge=1, le=100)] = 20) -> NoticeList:
    notices, total = await service.staff_notices(session, staff.principal.id, offset=offset, limit=limit)
    return NoticeList(total=total, offset=offset, limit=limit, items=[NoticeRead(
        id=n.id, lg_code=n.lg_code, organisation=staff.tenant.name, subject=n.subject, body=n.body,
        created_at=n.created_at, read_at=n.read_at) for n in notices])


class MarkRead(BaseModel):
    """No fields: the request names the notice in its URL (send ``{}``)."""

    model_config = ConfigDict(extra="forbid")


@router.post("/notices/{notice_id}/read", summary="お知らせを既読にする（職員）", response_model=NoticeRead,
             responses={**problem_responses(404), **WRITE_ERRORS})
async def staff_notice_read(notice_id: str, body: MarkRead, staff: NoticeReader, session: DbSession,
                            _json: JsonWrite) -> NoticeRead:
    n = await service.mark_staff_notice_read(session, staff.principal.id, notice_id)
    if n is None:
        raise NotFound("お探しのお知らせは見つかりませんでした。")
    await session.commit()
    return NoticeRead(id=n.id, lg_code=n.lg_code, organisation=staff.tenant.name, subject=n.subject, body=n.body,
                      created_at=n.created_at, read_at=n.read_at)
