"""施設予約の画面: staff define facilities and lotteries under /t/{lg_code}/facilities; anyone sees
availability under /t/{lg_code}/reservations; residents signed in with the card register, book,
apply and cancel there. JSON twins: api.py."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.audit import service as audit
from kiban.core.identity.dependencies import PUBLIC, CurrentResident, StaffContext, current_web_session, require
from kiban.core.identity.models import Principal
from kiban.core.identity.permissions import Permission
from kiban.core.jobs import runner as job_runner
from kiban.core.jobs import service as jobs
from kiban.core.tenancy.dependencies import CurrentTenant, DbSession
from kiban.kit.csrf import verify_csrf
from kiban.kit import export
from kiban.kit.errors import Conflict, InvalidInput, KibanError, NotFound
from kiban.kit.templating import templates
from kiban.modules.reservations import ical, lottery, service
from kiban.modules.reservations.models import ACTIVE

router = APIRouter(include_in_schema=False)
Manager = Annotated[StaffContext, require(Permission.reservations_facility_manage)]
Reader = Annotated[StaffContext, require(Permission.reservations_booking_read)]
CSRF = [Depends(verify_csrf)]
LABELS = {"kinds": service.KIND_LABELS, "eligibilities": service.ELIGIBILITY_LABELS, "weekdays": service.WEEKDAYS,
          "booker_kinds": service.BOOKER_KIND_LABELS, "booker_statuses": service.BOOKER_STATUS_LABELS,
          "statuses": service.STATUS_LABELS, "sources": service.SOURCE_LABELS,
          "lottery_statuses": lottery.STATUS_LABELS, "entry_labels": lottery.ENTRY_LABELS}


def _staff_url(lg_code: str, *parts: str) -> str:
    return "/".join([f"/t/{lg_code}/facilities", *parts])


def _public_url(lg_code: str, *parts: str) -> str:
    return "/".join([f"/t/{lg_code}/reservations", *parts])


def _page(request: Request, name: str, context: dict, status: int = 200) -> HTMLResponse:
    errs: dict[str, list[str]] = {}
    for e in context.get("errors") or []:
        errs.setdefault(e["field"], []).append(e["message"])
    return templates.TemplateResponse(request, f"reservations/{name}", {**LABELS, "errs": errs, **context},
                                      status_code=status)


def _form(submitted) -> dict:
    return {k: str(v) for k, v in submitted.items() if k != "csrf_token"}


# -- staff: facilities -------------------------------------------------------------------------------

@router.get("/t/{lg_code}/facilities", response_class=HTMLResponse)
async def facilities_page(request: Request, session: DbSession, staff: Reader) -> HTMLResponse:
    found = await service.facilities(session)
    counts = {f.id: await service.count_active(session, f.id) for f in found}
    notice = {"retired": "施設を削除しました。"}.get(request.query_params.get("done", ""))
    return _page(request, "facilities.html", {"tenant": staff.tenant, "staff": staff, "facilities": found,
                                             "counts": counts, "notice": notice,
                                             "can_manage": staff.can(Permission.reservations_facility_manage)})


async def _form_page(request, staff, *, form=None, errors=(), error=None, status=200) -> HTMLResponse:
    return _page(request, "facility_new.html", {"tenant": staff.tenant, "form": form or service.facility_form(None),
                                               "errors": list(errors), "error": error}, status)


@router.get("/t/{lg_code}/facilities/new", response_class=HTMLResponse)
async def new_facility_page(request: Request, staff: Manager) -> HTMLResponse:
    return await _form_page(request, staff)


@router.post("/t/{lg_code}/facilities", dependencies=CSRF)
async def create_facility(request: Request, session: DbSession, staff: Manager) -> Response:
    form = _form(await request.form())
    try:
        values = service.facility_values(form)
        rooms = [service.room_values({"name": form.get("room_name") or "全体", "capacity": form.get("room_capacity", ""),
                                      "fee_yen": form.get("room_fee_yen", "")})]
    except InvalidInput as exc:
        return await _form_page(request, staff, form=form, errors=exc.errors, error=exc.detail, status=422)
    facility = await service.create_facility(session, audit.Actor.of_staff(staff), values, rooms=rooms)
    await session.commit()
    return RedirectResponse(_staff_url(staff.tenant.lg_code, facility.id) + "?done=created", status_code=303)


async def _facility_page(request, session, staff, facility, *, form=None, errors=(), error=None, room_form=None,
                         lottery_form=None, section=None, status=200) -> HTMLResponse:
    rooms = await service.rooms_of(session, facility.id)
    upcoming = await service.bookings_of(session, facility.id, since=service.utcnow(), limit=200)
    notice = {"created": "施設を登録しました。部屋・区画を追加し、公開の画面で空き状況を確かめてください。",
              "updated": "施設の設定を保存しました。", "room": "部屋・区画を追加しました。",
              "cancelled": "予約を取り消しました。予約した方に通知しました。",
              "room_removed": "部屋・区画を削除しました。これまでの予約の記録は残っています。",
              "rooms_closed": "すべての部屋・区画の新しい予約の受付を停止しました。いまある予約はそのまま利用できます。",
              "lottery": "抽選の受付を始めました。"}.get(request.query_params.get("done", ""))
    first = service.today_jst() + timedelta(days=1)
    free_slots = [s for day in await service.availability(session, facility, first, 14)
                  for _room, slots in day.rooms for s in slots if s.state == "free"]
    return _page(request, "facility.html", {
        "tenant": staff.tenant, "facility": facility, "rooms": rooms, "rooms_by_id": {r.id: r for r in rooms},
        "bookings": upcoming, "lotteries": await lottery.lotteries_of(session, facility.id),
        "form": form or service.facility_form(facility), "errors": list(errors), "error": error, "section": section,
        "room_form": room_form or {}, "lottery_form": lottery_form or {}, "free_slots": free_slots[:200],
        "notice": notice, "can_manage": staff.can(Permission.reservations_facility_manage),
        "public_url": _public_url(staff.tenant.lg_code, "facilities", facility.id)}, status)


@router.get("/t/{lg_code}/facilities/{facility_id}", response_class=HTMLResponse)
async def facility_page(facility_id: str, request: Request, session: DbSession, staff: Reader) -> HTMLResponse:
    return await _facility_page(request, session, staff, await service.get_facility(session, facility_id))


@router.post("/t/{lg_code}/facilities/{facility_id}", dependencies=CSRF)
async def update_facility(facility_id: str, request: Request, session: DbSession, staff: Manager) -> Response:
    facility = await service.get_facility(session, facility_id)
    form = _form(await request.form())
    try:
        await service.update_facility(session, audit.Actor.of_staff(staff), facility, service.facility_values(form))
    except InvalidInput as exc:
        await session.rollback()
        facility = await service.get_facility(session, facility_id)
        return await _facility_page(request, session, staff, facility, form=form, errors=exc.errors, error=exc.detail,
                                    section="settings", status=422)
    await session.commit()
    return RedirectResponse(_staff_url(staff.tenant.lg_code, facility_id) + "?done=updated", status_code=303)


@router.post("/t/{lg_code}/facilities/{facility_id}/rooms", dependencies=CSRF)
async def add_room(facility_id: str, request: Request, session: DbSession, staff: Manager) -> Response:
    facility = await service.get_facility(session, facility_id)
    form = _form(await request.form())
    try:
        await service.add_room(session, audit.Actor.of_staff(staff), facility, service.room_values(form))
    except InvalidInput as exc:
        return await _facility_page(request, session, staff, facility, errors=exc.errors, error=exc.detail,
                                    room_form=form, section="rooms", status=422)
    await session.commit()
    return RedirectResponse(_staff_url(staff.tenant.lg_code, facility_id) + "?done=room#rooms", status_code=303)


# -- staff: rooms -------------------------------------------------------------------------------------

ROOM_NOTICES = {"updated": "部屋・区画の設定を保存しました。新しい使用料はこれからの予約に適用されます。",
                "closed": "新しい予約の受付を停止しました。いまある予約はそのまま利用できます。",
                "reopened": "新しい予約の受付を再開しました。"}


async def _room_page(request, session, staff, facility, room, *, form=None, errors=(), error=None,
                     status=200) -> HTMLResponse:
    bookings, held = await service.future_commitments(session, room)
    return _page(request, "room.html", {
        "tenant": staff.tenant, "facility": facility, "room": room, "form": form or service.room_form(room),
        "errors": list(errors), "error": error, "future_bookings": bookings, "held": held,
        "notice": ROOM_NOTICES.get(request.query_params.get("done", "")),
        "can_manage": staff.can(Permission.reservations_facility_manage)}, status)


async def _facility_room(session, facility_id: str, room_id: str):
    facility = await service.get_facility(session, facility_id)
    return facility, await service.get_room(session, facility.id, room_id)


@router.get("/t/{lg_code}/facilities/{facility_id}/rooms/{room_id}", response_class=HTMLResponse)
async def room_page(facility_id: str, room_id: str, request: Request, session: DbSession,
                    staff: Manager) -> HTMLResponse:
    facility, room = await _facility_room(session, facility_id, room_id)
    return await _room_page(request, session, staff, facility, room)


@router.post("/t/{lg_code}/facilities/{facility_id}/rooms/{room_id}", dependencies=CSRF)
async def update_room(facility_id: str, room_id: str, request: Request, session: DbSession, staff: Manager) -> Response:
    facility, room = await _facility_room(session, facility_id, room_id)
    form = _form(await request.form())
    try:
        values = service.room_values(form)
    except InvalidInput as exc:
        return await _room_page(request, session, staff, facility, room, form=form, errors=exc.errors,
                                error=exc.detail, status=422)
    await service.update_room(session, audit.Actor.of_staff(staff), facility, room, values)
    await session.commit()
    return RedirectResponse(_staff_url(staff.tenant.lg_code, facility_id, "rooms", room_id) + "?done=updated",
                            status_code=303)


@router.post("/t/{lg_code}/facilities/{facility_id}/rooms/{room_id}/close", dependencies=CSRF)
async def close_room(facility_id: str, room_id: str, session: DbSession, staff: Manager) -> Response:
    facility, room = await _facility_room(session, facility_id, room_id)
    await service.close_room(session, audit.Actor.of_staff(staff), facility, room)
    await session.commit()
    return RedirectResponse(_staff_url(staff.tenant.lg_code, facility_id, "rooms", room_id) + "?done=closed",
                            status_code=303)


@router.post("/t/{lg_code}/facilities/{facility_id}/rooms/{room_id}/reopen", dependencies=CSRF)
async def reopen_room(facility_id: str, room_id: str, session: DbSession, staff: Manager) -> Response:
    facility, room = await _facility_room(session, facility_id, room_id)
    await service.reopen_room(session, audit.Actor.of_staff(staff), facility, room)
    await session.commit()
    return RedirectResponse(_staff_url(staff.tenant.lg_code, facility_id, "rooms", room_id) + "?done=reopened",
                            status_code=303)


async def _room_in_use_page(request, staff, facility, room, reason: str, status: int) -> HTMLResponse:
    return _page(request, "room_in_use.html", {"tenant": staff.tenant, "facility": facility, "room": room,
                                              "reason": reason}, status)


@router.get("/t/{lg_code}/facilities/{facility_id}/rooms/{room_id}/delete/confirm", response_class=HTMLResponse)
async def room_delete_confirm(facility_id: str, room_id: str, request: Request, session: DbSession,
                              staff: Manager) -> HTMLResponse:
    facility, room = await _facility_room(session, facility_id, room_id)
    reason = service.in_use_reason(room, *await service.future_commitments(session, room))
    if reason:
        return await _room_in_use_page(request, staff, facility, room, reason, 200)
    return _confirm(request, staff.tenant, title="部屋・区画の削除", summary=f"{facility.name}の「{room.name}」を削除します。",
                    consequences=["空き状況の画面からなくなり、予約も抽選もできなくなります。",
                                  "これまでの予約の記録（部屋・区画の名前を含む）と監査ログは残ります。",
                                  "削除は元に戻せません。"],
                    action=_staff_url(staff.tenant.lg_code, facility.id, "rooms", room.id, "delete"),
                    confirm_label="削除する", back_url=_staff_url(staff.tenant.lg_code, facility.id, "rooms", room.id))


@router.post("/t/{lg_code}/facilities/{facility_id}/rooms/{room_id}/delete", dependencies=CSRF)
async def remove_room(facility_id: str, room_id: str, request: Request, session: DbSession, staff: Manager) -> Response:
    facility, room = await _facility_room(session, facility_id, room_id)
    try:
        await service.remove_room(session, audit.Actor.of_staff(staff), facility, room)
    except service.RoomInUse as exc:
        return await _room_in_use_page(request, staff, facility, room, exc.detail, 409)
    await session.commit()
    return RedirectResponse(_staff_url(staff.tenant.lg_code, facility_id) + "?done=room_removed#rooms", status_code=303)


# -- staff: bookings list and export ---------------------------------------------------------------------

FromDay = Annotated[str, Query(alias="from")]


@router.get("/t/{lg_code}/facilities/{facility_id}/bookings", response_class=HTMLResponse)
async def bookings_page(facility_id: str, request: Request, session: DbSession, staff: Reader, from_: FromDay = "",
                        to: str = "", status: str = "") -> HTMLResponse:
    facility = await service.get_facility(session, facility_id, include_retired=True)
    query = {"from": from_, "to": to, "status": status}
    context = {"tenant": staff.tenant, "facility": facility, "query": query, "bookings": [], "period": None,
               "errors": [], "error": None, "list_statuses": service.LIST_STATUSES,
               "rooms_by_id": await service.rooms_by_id(session, [facility.id]),
               "can_manage": staff.can(Permission.reservations_facility_manage)}
    try:
        period = service.booking_range(query)
        bookings = await service.bookings_between(session, facility, period)
    except InvalidInput as exc:
        return _page(request, "bookings.html", {**context, "errors": exc.errors, "error": exc.detail}, 422)
    from urllib.parse import urlencode

    return _page(request, "bookings.html", {
        **context, "period": period, "bookings": bookings, "total_fee": sum(b.fee_yen for b in bookings if b.status == ACTIVE),
        "query": {"from": period.first.isoformat(), "to": period.last.isoformat(), "status": period.status},
        "export_query": urlencode({"from": period.first.isoformat(), "to": period.last.isoformat(),
                                   "status": period.status})})


@router.get("/t/{lg_code}/facilities/{facility_id}/bookings.{fmt}")
async def export_bookings(facility_id: str, fmt: str, session: DbSession, staff: Reader, from_: FromDay = "",
                          to: str = "", status: str = "") -> Response:
    """The bookings list as CSV or .xlsx through the one export writer (kit/export), audited."""
    if fmt not in ("csv", "xlsx"):
        raise NotFound("この形式では書き出せません（CSV か xlsx）。")
    facility = await service.get_facility(session, facility_id, include_retired=True)
    period = service.booking_range({"from": from_, "to": to, "status": status})
    bookings = await service.bookings_between(session, facility, period)
    rows = service.export_rows(bookings, await service.rooms_by_id(session, [facility.id]))
    await service.record_export(session, audit.Actor.of_staff(staff), facility, period, len(rows), fmt)
    await session.commit()
    name = f"{facility.name}_予約一覧_{period.first:%Y%m%d}-{period.last:%Y%m%d}.{fmt}"
    if fmt == "csv":
        return export.attachment(export.csv_bytes(rows, service.EXPORT_HEADER), name)
    book = export.workbook()
    sheet = book.active
    sheet.title = "予約一覧"
    sheet.append(list(service.EXPORT_HEADER))
    for row in rows:
        sheet.append(list(row))
    return export.attachment(export.xlsx_bytes(book), name, export.XLSX_MEDIA_TYPE)


def _confirm(request, tenant, *, title, summary, consequences, action, confirm_label, back_url, notice=None,
             status=200) -> HTMLResponse:
    return templates.TemplateResponse(request, "identity/confirm.html", {
        "tenant": tenant, "page_title": title, "summary": summary, "consequences": consequences, "action": action,
        "confirm_label": confirm_label, "notice": notice, "back_url": back_url,
        "breadcrumbs": [(tenant.name, f"/t/{tenant.lg_code}/"), ("施設予約の管理", _staff_url(tenant.lg_code))]},
        status_code=status)


@router.get("/t/{lg_code}/facilities/{facility_id}/delete/confirm", response_class=HTMLResponse)
async def delete_confirm(facility_id: str, request: Request, session: DbSession, staff: Manager) -> HTMLResponse:
    facility = await service.get_facility(session, facility_id)
    upcoming = await service.bookings_of(session, facility.id, since=service.utcnow())
    rooms = await service.rooms_of(session, facility.id)
    return _page(request, "facility_delete.html", {
        "tenant": staff.tenant, "facility": facility, "upcoming": len(upcoming),
        "open_rooms": [r for r in rooms if r.closed_at is None],
        "consequences": [f"これからの予約{len(upcoming)}件はすべて取り消され、予約した方に通知されます。",
                         "公開の空き状況の画面からなくなり、予約も抽選の申込みもできなくなります。",
                         "これまでの予約の記録と監査ログは残ります。削除は元に戻せません。"]})


@router.post("/t/{lg_code}/facilities/{facility_id}/close-rooms", dependencies=CSRF)
async def close_all_rooms(facility_id: str, session: DbSession, staff: Manager) -> Response:
    facility = await service.get_facility(session, facility_id)
    await service.close_all_rooms(session, audit.Actor.of_staff(staff), facility)
    await session.commit()
    return RedirectResponse(_staff_url(staff.tenant.lg_code, facility_id) + "?done=rooms_closed#rooms", status_code=303)


@router.post("/t/{lg_code}/facilities/{facility_id}/delete", dependencies=CSRF)
async def delete_facility(facility_id: str, session: DbSession, staff: Manager) -> Response:
    facility = await service.get_facility(session, facility_id)
    await service.retire_facility(session, audit.Actor.of_staff(staff), facility)
    await session.commit()
    return RedirectResponse(_staff_url(staff.tenant.lg_code) + "?done=retired", status_code=303)


@router.get("/t/{lg_code}/facilities/{facility_id}/bookings/{booking_id}/cancel/confirm", response_class=HTMLResponse)
async def staff_cancel_confirm(facility_id: str, booking_id: str, request: Request, session: DbSession,
                               staff: Manager) -> HTMLResponse:
    facility = await service.get_facility(session, facility_id, include_retired=True)
    booking = await service.get_booking(session, booking_id)
    if booking.facility_id != facility.id:
        raise NotFound("お探しの予約は見つかりませんでした。")
    room = await service.get_room(session, facility.id, booking.room_id, include_removed=True)
    back = _staff_url(staff.tenant.lg_code, facility.id)
    common = {"title": "予約の取消", "summary": f"{facility.name}（{room.name}）{service.notices.slot_text(booking.starts_at, booking.ends_at)}の"
                                             f"予約（{booking.booker_name}）を取り消します。", "back_url": back}
    if booking.status != ACTIVE:
        return _confirm(request, staff.tenant, **common, consequences=[], action=None, confirm_label="",
                        notice="この予約はすでに取り消されています。")
    return _confirm(request, staff.tenant, **common, confirm_label="取り消す",
                    consequences=["予約した方に取消の通知が届きます。", "枠は空きに戻り、ほかの方が予約できるようになります。",
                                  "取消は元に戻せません。"],
                    action=_staff_url(staff.tenant.lg_code, facility.id, "bookings", booking.id, "cancel"))


@router.post("/t/{lg_code}/facilities/{facility_id}/bookings/{booking_id}/cancel", dependencies=CSRF)
async def staff_cancel(facility_id: str, booking_id: str, session: DbSession, staff: Manager) -> Response:
    booking = await service.get_booking(session, booking_id)
    if booking.facility_id != facility_id:
        raise NotFound("お探しの予約は見つかりませんでした。")
    await service.cancel(session, staff.tenant, booking, audit.Actor.of_staff(staff), by_staff=True)
    await session.commit()
    return RedirectResponse(_staff_url(staff.tenant.lg_code, facility_id) + "?done=cancelled", status_code=303)


# -- staff: lotteries ----------------------------------------------------------------------------------

@router.post("/t/{lg_code}/facilities/{facility_id}/lotteries", dependencies=CSRF)
async def open_lottery(facility_id: str, request: Request, session: DbSession, staff: Manager) -> Response:
    facility = await service.get_facility(session, facility_id)
    submitted = await request.form()
    form = {"title": str(submitted.get("title", "")), "closes_at": str(submitted.get("closes_at", "")),
            "slot": [str(s) for s in submitted.getlist("slot")]}
    try:
        values = lottery.lottery_values(submitted, facility, await service.rooms_of(session, facility.id,
                                                                                    bookable_only=True))
        found = await lottery.open_lottery(session, audit.Actor.of_staff(staff), facility, values)
    except InvalidInput as exc:
        await session.rollback()
        facility = await service.get_facility(session, facility_id)
        return await _facility_page(request, session, staff, facility, errors=exc.errors, error=exc.detail,
                                    lottery_form=form, section="lottery", status=422)
    await session.commit()
    return RedirectResponse(_staff_url(staff.tenant.lg_code, facility_id, "lotteries", found.id), status_code=303)


@router.get("/t/{lg_code}/facilities/{facility_id}/lotteries/{lottery_id}", response_class=HTMLResponse)
async def lottery_page(facility_id: str, lottery_id: str, request: Request, session: DbSession,
                       staff: Reader) -> HTMLResponse:
    facility = await service.get_facility(session, facility_id, include_retired=True)
    found = await lottery.get_lottery(session, lottery_id, facility.id)
    job = await jobs.get(session, found.job_id) if found.job_id else None
    entries = await lottery.entries_of(session, found.id)
    context = {"tenant": staff.tenant, "facility": facility, "lottery": found, "job": job,
               "percent": jobs.percent(job) if job else None, "entries": entries,
               "rooms_by_id": {r.id: r for r in await service.rooms_of(session, facility.id)},
               "can_manage": staff.can(Permission.reservations_facility_manage),
               "verified": lottery.verify(found, entries) if found.status == "drawn" else None,
               "slot_text": service.notices.slot_text, "parse": service.parse_start}
    if request.query_params.get("progress") and request.headers.get("HX-Request"):
        if found.status == "drawn":
            return HTMLResponse("", headers={"HX-Refresh": "true"})
        return _page(request, "_draw_progress.html", context)
    return _page(request, "lottery.html", context)


@router.post("/t/{lg_code}/facilities/{facility_id}/lotteries/{lottery_id}/draw", dependencies=CSRF)
async def draw(facility_id: str, lottery_id: str, request: Request, session: DbSession, staff: Manager) -> Response:
    facility = await service.get_facility(session, facility_id, include_retired=True)
    found = await lottery.get_lottery(session, lottery_id, facility.id)
    await lottery.start_draw(session, audit.Actor.of_staff(staff), found, facility)
    await session.commit()
    job_runner.wake(request.app)
    return RedirectResponse(_staff_url(staff.tenant.lg_code, facility_id, "lotteries", lottery_id), status_code=303)


# -- staff: registered users -------------------------------------------------------------------------------

@router.get("/t/{lg_code}/facility-users", response_class=HTMLResponse)
async def users_page(request: Request, session: DbSession, staff: Reader) -> HTMLResponse:
    return _page(request, "users.html", {"tenant": staff.tenant, "bookers": await service.bookers(session),
                                         "can_manage": staff.can(Permission.reservations_facility_manage),
                                         "notice": "団体を承認しました。" if request.query_params.get("done") else None})


@router.post("/t/{lg_code}/facility-users/{principal_id}/approve", dependencies=CSRF)
async def approve_user(principal_id: str, session: DbSession, staff: Manager) -> Response:
    await service.approve_booker(session, audit.Actor.of_staff(staff), principal_id)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/facility-users?done=approved", status_code=303)


# -- public: availability ---------------------------------------------------------------------------------

async def _resident_id(request: Request, session) -> str | None:
    """The signed-in resident's principal id, or None (public pages show more to them)."""
    web_session = await current_web_session(request, session)
    if web_session is None or web_session.stage != "active":
        return None
    principal = await session.get(Principal, web_session.principal_id)
    return principal.id if principal is not None and principal.kind == "resident" else None


@router.get("/t/{lg_code}/reservations", response_class=HTMLResponse, dependencies=[PUBLIC])
async def public_list(tenant: CurrentTenant, request: Request, session: DbSession) -> HTMLResponse:
    return _page(request, "public_list.html", {"tenant": tenant, "facilities": await service.facilities(session)})


def _first_day(raw: str | None) -> date:
    today = service.today_jst()
    try:
        day = date.fromisoformat(raw) if raw else today
    except ValueError:
        day = today
    return min(max(day, today), today + timedelta(days=400))


async def _calendar(request, session, tenant, facility_id: str, *, error: KibanError | None = None,
                    first: date | None = None, principal_id: str | None = None) -> HTMLResponse:
    facility = await service.get_facility(session, facility_id)
    principal_id = principal_id or await _resident_id(request, session)
    first = first or _first_day(request.query_params.get("from"))
    days = await service.availability(session, facility, first, 7, principal_id=principal_id)
    booker = await service.get_booker(session, principal_id) if principal_id else None
    return _page(request, "calendar.html", {
        "tenant": tenant, "facility": facility, "days": days, "first": first, "is_resident": principal_id is not None,
        "booker": booker, "refusal": service.may_book(facility, booker) if principal_id else None,
        "previous": first - timedelta(days=7) if first > service.today_jst() else None, "next": first + timedelta(days=7),
        "lotteries": {lot.id: lot for lot in await lottery.open_lotteries(session, facility.id)},
        "error": error.detail if error else None, "ics_url": _public_url(tenant.lg_code, "facilities", facility.id, "calendar.ics"),
        "rooms": await service.rooms_of(session, facility.id)}, error.status if error else 200)


@router.get("/t/{lg_code}/reservations/facilities/{facility_id}", response_class=HTMLResponse, dependencies=[PUBLIC])
async def calendar_page(facility_id: str, tenant: CurrentTenant, request: Request, session: DbSession) -> HTMLResponse:
    return await _calendar(request, session, tenant, facility_id)


@router.get("/t/{lg_code}/reservations/facilities/{facility_id}/calendar.ics", dependencies=[PUBLIC])
async def facility_ics(facility_id: str, tenant: CurrentTenant, session: DbSession) -> Response:
    facility = await service.get_facility(session, facility_id)
    bookings = await service.bookings_of(session, facility.id, since=service.utcnow() - timedelta(days=30), limit=5000)
    body = ical.facility_feed(tenant.lg_code, facility, await service.rooms_by_id(session, [facility.id]), bookings)
    return Response(body, media_type="text/calendar; charset=utf-8")


@router.get("/t/{lg_code}/reservations/feed/{principal_id}/{token}.ics", dependencies=[PUBLIC])
async def personal_ics(principal_id: str, token: str, tenant: CurrentTenant, session: DbSession) -> Response:
    """A resident's own bookings, for their calendar app: the URL is the secret (HMAC of the
    deployment key), so a wrong token or one revoked by a new ``feed_version`` is 404."""
    booker = await service.get_booker(session, principal_id)
    if booker is None or not _same(token, service.feed_token(tenant.lg_code, principal_id, booker.feed_version)):
        raise NotFound("お探しのカレンダーは見つかりませんでした。")
    bookings = [b for b in await service.my_bookings(session, principal_id) if b.status == ACTIVE]
    body = ical.personal_feed(tenant.lg_code, tenant.name, bookings, await service.facilities_by_id(session),
                              await service.rooms_by_id(session))
    return Response(body, media_type="text/calendar; charset=utf-8", headers={"Cache-Control": "private, no-store"})


def _same(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


# -- residents -------------------------------------------------------------------------------------------------

@router.post("/t/{lg_code}/reservations/facilities/{facility_id}/book", dependencies=CSRF)
async def book(facility_id: str, tenant: CurrentTenant, request: Request, session: DbSession,
               resident: CurrentResident) -> Response:
    form = await request.form()
    facility = await service.get_facility(session, facility_id)
    try:
        starts_at = service.parse_start(str(form.get("starts_at", "")))
        booking = await service.book(session, tenant, facility, str(form.get("room_id", "")), starts_at,
                                     resident.principal.id)
    except (InvalidInput, Conflict, NotFound) as exc:
        # Nothing was written: the rules refuse before the insert, and a lost slot rolls back
        # only its savepoint.
        first = None
        try:
            first = max(service.parse_start(str(form.get("starts_at", ""))).date(), service.today_jst())
        except InvalidInput:
            pass
        return await _calendar(request, session, tenant, facility_id, error=exc, first=first,
                               principal_id=resident.principal.id)
    await session.commit()
    return RedirectResponse(_public_url(tenant.lg_code, "mine") + f"?booked={booking.id}", status_code=303)


@router.post("/t/{lg_code}/reservations/lotteries/{lottery_id}/apply", dependencies=CSRF)
async def apply(lottery_id: str, tenant: CurrentTenant, request: Request, session: DbSession,
                resident: CurrentResident) -> Response:
    form = await request.form()
    found = await lottery.get_lottery(session, lottery_id)
    facility = await service.get_facility(session, found.facility_id)
    try:
        await lottery.apply(session, found, facility, resident.principal.id, str(form.get("room_id", "")),
                            service.parse_start(str(form.get("starts_at", ""))))
    except (InvalidInput, Conflict) as exc:
        return await _calendar(request, session, tenant, facility.id, error=exc, principal_id=resident.principal.id)
    await session.commit()
    return RedirectResponse(_public_url(tenant.lg_code, "mine") + "?applied=1", status_code=303)


def _register_page(request, tenant, booker, *, form=None, errors=(), error=None, next_url="", status=200) -> HTMLResponse:
    if form is None:
        form = ({"kind": booker.kind, "name": booker.name, "group_name": booker.group_name, "email": booker.email}
                if booker else {"kind": "resident"})
    return _page(request, "register.html", {"tenant": tenant, "booker": booker, "form": form, "errors": list(errors),
                                           "error": error, "next": next_url}, status)


def _safe_next(lg_code: str, value: str | None) -> str:
    prefix = f"/t/{lg_code}/reservations"
    return value if value and value.startswith(prefix) and "//" not in value else ""


@router.get("/t/{lg_code}/reservations/register", response_class=HTMLResponse)
async def register_page(tenant: CurrentTenant, request: Request, session: DbSession,
                        resident: CurrentResident) -> HTMLResponse:
    return _register_page(request, tenant, await service.get_booker(session, resident.principal.id),
                          next_url=_safe_next(tenant.lg_code, request.query_params.get("next")))


@router.post("/t/{lg_code}/reservations/register", dependencies=CSRF)
async def register(tenant: CurrentTenant, request: Request, session: DbSession, resident: CurrentResident) -> Response:
    form = _form(await request.form())
    try:
        booker = await service.register_booker(session, resident.principal.id, service.booker_values(form))
    except InvalidInput as exc:
        return _register_page(request, tenant, await service.get_booker(session, resident.principal.id), form=form,
                              errors=exc.errors, error=exc.detail, next_url=_safe_next(tenant.lg_code, form.get("next")),
                              status=422)
    await session.commit()
    target = _safe_next(tenant.lg_code, form.get("next")) or _public_url(tenant.lg_code, "mine")
    return RedirectResponse(target + ("&" if "?" in target else "?") + f"registered={booker.status}", status_code=303)


@router.get("/t/{lg_code}/reservations/mine", response_class=HTMLResponse)
async def mine(tenant: CurrentTenant, request: Request, session: DbSession, resident: CurrentResident) -> HTMLResponse:
    principal_id = resident.principal.id
    booker = await service.get_booker(session, principal_id)
    bookings = await service.my_bookings(session, principal_id)
    facilities = await service.facilities_by_id(session)
    feed = (_public_url(tenant.lg_code, "feed", principal_id,
                        service.feed_token(tenant.lg_code, principal_id, booker.feed_version) + ".ics") if booker else None)
    notice = None
    if request.query_params.get("booked"):
        notice = "予約しました。確認のお知らせを送りました。"
    elif request.query_params.get("applied"):
        notice = "抽選に申し込みました。結果は抽選の後にお知らせします。"
    elif request.query_params.get("cancelled"):
        notice = "予約を取り消しました。"
    elif request.query_params.get("registered"):
        notice = ("利用者登録をしました。" if request.query_params["registered"] == "active"
                  else "利用者登録を受け付けました。団体の登録は職員の承認後に予約できます。")
    return _page(request, "mine.html", {
        "tenant": tenant, "booker": booker, "bookings": bookings, "facilities": facilities,
        "rooms": await service.rooms_by_id(session), "entries": await lottery.entries_of_person(session, principal_id),
        "feed_url": feed, "notice": notice, "slot_text": service.notices.slot_text,
        "cancellable": {b.id: service.cancel_refusal(facilities[b.facility_id], b) is None
                        for b in bookings if b.facility_id in facilities}})


@router.get("/t/{lg_code}/reservations/mine/{booking_id}/cancel", response_class=HTMLResponse)
async def cancel_confirm(booking_id: str, tenant: CurrentTenant, request: Request, session: DbSession,
                         resident: CurrentResident) -> HTMLResponse:
    booking = await service.get_booking(session, booking_id, principal_id=resident.principal.id)
    facility = await service.get_facility(session, booking.facility_id, include_retired=True)
    room = await service.get_room(session, facility.id, booking.room_id, include_removed=True)
    back = _public_url(tenant.lg_code, "mine")
    summary = f"{facility.name}（{room.name}）{service.notices.slot_text(booking.starts_at, booking.ends_at)}の予約を取り消します。"
    refusal = service.cancel_refusal(facility, booking)
    crumbs = [(tenant.name, f"/t/{tenant.lg_code}/reservations"), ("わたしの予約", back)]
    return templates.TemplateResponse(request, "identity/confirm.html", {
        "page_title": "予約の取消", "summary": summary, "breadcrumbs": crumbs, "back_url": back,
        "consequences": ["取り消した枠は空きに戻り、ほかの方が予約できるようになります。", "取消は元に戻せません。"],
        "action": None if refusal else _public_url(tenant.lg_code, "mine", booking.id, "cancel"),
        "confirm_label": "取り消す", "notice": refusal}, status_code=422 if refusal else 200)


@router.post("/t/{lg_code}/reservations/mine/{booking_id}/cancel", dependencies=CSRF)
async def cancel(booking_id: str, tenant: CurrentTenant, request: Request, session: DbSession,
                 resident: CurrentResident) -> Response:
    booking = await service.get_booking(session, booking_id, principal_id=resident.principal.id)
    try:
        await service.cancel(session, tenant, booking, audit.Actor("resident", "本人", resident.principal.id))
    except InvalidInput:
        await session.rollback()
        return await cancel_confirm(booking_id, tenant, request, session, resident)
    await session.commit()
    return RedirectResponse(_public_url(tenant.lg_code, "mine") + "?cancelled=1", status_code=303)
