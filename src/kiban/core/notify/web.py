"""Notification pages: staff see delivery status and edit their wording (/t/{lg_code}/notify);
residents read their notices (/me/notices). JSON twins in api.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.identity.dependencies import CurrentResident, DbSession, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.notify import service
from kiban.core.notify.models import STATE_LABELS, STATES
from kiban.core.registry import service as registry_service
from kiban.kit.csrf import verify_csrf
from kiban.kit.errors import InvalidInput
from kiban.kit.paging import PageNumber, offset_of
from kiban.kit.templating import templates

router = APIRouter(include_in_schema=False)
DeliveryReader = Annotated[StaffContext, require(Permission.notify_delivery_read)]
TemplateManager = Annotated[StaffContext, require(Permission.notify_template_manage)]
NoticeReader = Annotated[StaffContext, require(Permission.notify_notice_read)]


def _filter_value(value: str, allowed) -> str:
    return value if value in allowed else ""


@router.get("/t/{lg_code}/notify", response_class=HTMLResponse)
async def delivery_status(request: Request, session: DbSession, staff: DeliveryReader,
                          state: str = "", template: str = "", page: PageNumber = 1) -> HTMLResponse:
    state = _filter_value(state, STATES)
    template = _filter_value(template, service.TEMPLATES)
    found = await service.delivery_page(session, state=state, template_key=template,
                                        offset=offset_of(page, service.PAGE_SIZE))
    pages = max(1, -(-found.total // service.PAGE_SIZE))
    return templates.TemplateResponse(request, "notify/status.html", {
        "tenant": staff.tenant, "staff": staff, "found": found, "state": state, "template": template,
        "page": page, "pages": pages, "state_labels": STATE_LABELS, "states": STATES,
        "templates_by_key": service.TEMPLATES,
        "may_edit": staff.can(Permission.notify_template_manage)})


@router.get("/t/{lg_code}/notify/templates", response_class=HTMLResponse)
async def template_list(request: Request, session: DbSession, staff: DeliveryReader) -> HTMLResponse:
    return templates.TemplateResponse(request, "notify/templates.html", {
        "tenant": staff.tenant, "items": await service.template_list(session),
        "may_edit": staff.can(Permission.notify_template_manage),
        "sent_test": request.query_params.get("sent") == "test"})


async def _edit_page(request: Request, session, staff: StaffContext, key: str, *, subject: str | None = None,
                     body: str | None = None, errors=(), shown=None, saved: bool = False, reset: bool = False,
                     status: int = 200) -> HTMLResponse:
    definition = service.template_def_or_404(key)
    words = await service.wording(session, key)
    subject = words.subject if subject is None else subject
    body = words.body if body is None else body
    if shown is None and not errors:
        shown = service.preview(definition, subject, body)
    return templates.TemplateResponse(request, "notify/template_edit.html", {
        "tenant": staff.tenant, "definition": definition, "words": words, "subject": subject, "body": body,
        "errors": list(errors), "field_errors": {e["field"] for e in errors}, "shown": shown, "saved": saved,
        "reset": reset}, status_code=status)


@router.get("/t/{lg_code}/notify/templates/{key}", response_class=HTMLResponse)
async def template_edit(key: str, request: Request, session: DbSession, staff: TemplateManager) -> HTMLResponse:
    return await _edit_page(request, session, staff, key, saved=request.query_params.get("saved") == "1",
                            reset=request.query_params.get("reset") == "1")


@router.post("/t/{lg_code}/notify/templates/{key}", dependencies=[Depends(verify_csrf)])
async def template_save(key: str, request: Request, session: DbSession, staff: TemplateManager,
                        subject: Annotated[str, Form()] = "", body: Annotated[str, Form()] = "",
                        action: Annotated[str, Form()] = "save") -> Response:
    """「プレビュー」 shows the wording filled with sample values; 「保存」 stores it. Either way
    every problem is listed at once and the input is kept."""
    definition = service.template_def_or_404(key)
    errors = service.check_wording(definition, subject.strip(), body)
    if errors:
        return await _edit_page(request, session, staff, key, subject=subject, body=body, errors=errors, status=422)
    if action == "preview":
        return await _edit_page(request, session, staff, key, subject=subject, body=body,
                                shown=service.preview(definition, subject.strip(), body))
    try:
        await service.save_wording(session, staff, key, subject, body)
    except InvalidInput as exc:
        return await _edit_page(request, session, staff, key, subject=subject, body=body, errors=exc.errors,
                                status=422)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/notify/templates/{key}?saved=1", status_code=303)


@router.post("/t/{lg_code}/notify/templates/{key}/reset", dependencies=[Depends(verify_csrf)])
async def template_reset(key: str, request: Request, session: DbSession, staff: TemplateManager,
                         confirm: Annotated[str, Form()] = "") -> Response:
    service.template_def_or_404(key)
    if confirm != "yes":
        return await _edit_page(request, session, staff, key, errors=[{
            "field": "confirm", "message": "標準の文面に戻す前に、確認のチェックを入れてください。"}], status=422)
    await service.reset_wording(session, staff, key)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/notify/templates/{key}?reset=1", status_code=303)


@router.post("/t/{lg_code}/notify/test", dependencies=[Depends(verify_csrf)])
async def send_test(request: Request, session: DbSession, staff: TemplateManager,
                    email: Annotated[str, Form()] = "") -> Response:
    """A test e-mail to an address staff give, to check that mail reaches residents."""
    try:
        await service.send_test(session, staff, email)
    except InvalidInput as exc:
        return templates.TemplateResponse(request, "notify/templates.html", {
            "tenant": staff.tenant, "items": await service.template_list(session), "may_edit": True,
            "test_error": exc.detail, "test_email": email}, status_code=422)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/notify/templates?sent=test", status_code=303)


# -- residents -----------------------------------------------------------------------------

@router.get("/me/notices", response_class=HTMLResponse)
async def my_notices(request: Request, session: DbSession, resident: CurrentResident,
                     page: PageNumber = 1) -> HTMLResponse:
    """Notices to this resident from every municipality (receipts, booking results ...)."""
    size = 20
    notices, total = await service.notices_for(session, resident.principal.id, offset=offset_of(page, size),
                                               limit=size)
    orgs = await registry_service.organizations_by_code(session, sorted({n.lg_code for n in notices}))
    return templates.TemplateResponse(request, "notify/me_notices.html", {
        "resident": resident, "notices": notices, "orgs": orgs, "page": page,
        "pages": max(1, -(-total // size)), "total": total})


@router.post("/me/notices/{notice_id}/read", dependencies=[Depends(verify_csrf)])
async def read_notice(notice_id: str, session: DbSession, resident: CurrentResident,
                      page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    from kiban.kit.errors import NotFound

    if await service.mark_notice_read(session, resident.principal.id, notice_id) is None:
        raise NotFound("お探しのお知らせは見つかりませんでした。")
    await session.commit()
    return RedirectResponse(f"/me/notices?page={page}#notice-{notice_id}", status_code=303)


# -- staff: their own notices in the organisation -------------------------------------------------

@router.get("/t/{lg_code}/notices", response_class=HTMLResponse)
async def staff_notices(request: Request, session: DbSession, staff: NoticeReader, page: PageNumber = 1) -> HTMLResponse:
    """Notices to this staff member in this organisation (a 負担金算定書 issued to it ...)."""
    size = 20
    notices, total = await service.staff_notices(session, staff.principal.id, offset=offset_of(page, size), limit=size)
    return templates.TemplateResponse(request, "notify/staff_notices.html", {
        "tenant": staff.tenant, "staff": staff, "notices": notices, "page": page,
        "pages": max(1, -(-total // size)), "total": total})


@router.post("/t/{lg_code}/notices/{notice_id}/read", dependencies=[Depends(verify_csrf)])
async def staff_notice_read(notice_id: str, session: DbSession, staff: NoticeReader, page: PageNumber = 1) -> Response:
    if await service.mark_staff_notice_read(session, staff.principal.id, notice_id) is None:
        from kiban.kit.errors import NotFound

        raise NotFound("お探しのお知らせは見つかりませんでした。")
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/notices?page={page}", status_code=303)
