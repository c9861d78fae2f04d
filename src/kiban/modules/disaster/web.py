"""広域被災者データベース pages: public disaster and shelter status; municipal workspaces (shelters
from a phone, 被災者台帳, 名寄せ with reasons, CSV import); the situation dashboard; residents
registering themselves at a shelter with the My Number Card."""

from __future__ import annotations

from typing import Annotated

import segno
from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.audit import service as audit
from kiban.core.identity.dependencies import PUBLIC, CurrentResident, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.registry import service as registry
from kiban.core.registry.snapshot import load_snapshot
from kiban.core.tenancy.dependencies import CurrentTenant, DbSession
from kiban.kit.csrf import verify_csrf
from kiban.kit.db import commit_if_written
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.kit.export import attachment, csv_bytes
from kiban.kit.templating import templates
from kiban.modules.disaster import matching, service
from kiban.modules.disaster.models import DISASTER_KINDS, RosterImport, VictimRecord
from kiban.modules.disaster.fields import ROSTER_FIELDS
from kiban.modules.disaster.roster import (
    CARE_NEEDS,
    DAMAGE_LEVELS,
    RISAI_STATUSES,
    TEMPLATE_FILENAME,
    WHEREABOUTS,
    template_csv,
    template_xlsx,
)
from kiban.modules.disaster.support import REBUILD_PLANS, SupportInputError, estimate

router = APIRouter(include_in_schema=False)
Reader = Annotated[StaffContext, require(Permission.disaster_record_read)]
Writer = Annotated[StaffContext, require(Permission.disaster_record_write)]
Opener = Annotated[StaffContext, require(Permission.disaster_disaster_manage)]
MAX_UPLOAD = 5 * 1024 * 1024
PAGE_SIZE = service.PAGE_SIZE


RosterImportRepository = service.RosterImportRepository


_date = service.parse_date


CHOICES = {"whereabouts": WHEREABOUTS, "damage_levels": DAMAGE_LEVELS, "care_needs": CARE_NEEDS,
           "risai_statuses": RISAI_STATUSES, "rebuild_plans": REBUILD_PLANS, "supports": service.SUPPORT_KINDS,
           "kinds": DISASTER_KINDS}


# -- public ---------------------------------------------------------------------------------------

@router.get("/disasters", response_class=HTMLResponse, dependencies=[PUBLIC])
async def public_disasters(request: Request, session: DbSession) -> HTMLResponse:
    return templates.TemplateResponse(request, "disaster/public_list.html",
                                      {"disasters": await service.list_disasters(session)})


@router.get("/disasters/{disaster_id}", response_class=HTMLResponse, dependencies=[PUBLIC])
async def public_disaster(disaster_id: str, request: Request, session: DbSession) -> HTMLResponse:
    disaster = await service.get_disaster(session, disaster_id)
    return templates.TemplateResponse(request, "disaster/public_detail.html", {
        "disaster": disaster, "areas": await service.areas(session, disaster_id),
        "shelters": await service.open_shelters(session, disaster_id)})


# -- opening a disaster (prefecture or 内閣府) -------------------------------------------------------------

@router.get("/t/{lg_code}/disasters", response_class=HTMLResponse)
async def workspace_list(request: Request, session: DbSession, staff: Reader) -> HTMLResponse:
    return templates.TemplateResponse(request, "disaster/list.html", {
        "tenant": staff.tenant, "staff": staff, "disasters": await service.list_disasters(session),
        "may_open": service.may_open_disasters(staff.tenant) and staff.can(Permission.disaster_disaster_manage),
        "error": None, **CHOICES})


@router.post("/t/{lg_code}/disasters", dependencies=[Depends(verify_csrf)])
async def open_disaster(request: Request, session: DbSession, staff: Opener) -> Response:
    form = await request.form()
    affected_text = ",".join(str(v) for v in form.getlist("affected"))
    relief_text = ",".join(str(v) for v in [*form.getlist("relief_act"), form.get("relief_act_text", "")])
    errors: list[dict] = []
    try:
        occurred_on = _date(str(form.get("occurred_on", "")), "発生日")
    except InvalidInput as exc:
        occurred_on = None
        errors.append({"field": "occurred_on", "message": exc.detail})
    affected = await service.resolve_codes(session, service.split_list(affected_text), "affected", "被害のある市町村", errors)
    relief_act = await service.resolve_codes(session, service.split_list(relief_text), "relief_act",
                                             "災害救助法を適用する市町村", errors)
    try:
        if errors:
            raise service.all_errors(errors)
        disaster = await service.open_disaster(
            session, staff.tenant, name=str(form.get("name", "")), kind=str(form.get("kind", "")),
            occurred_on=occurred_on, description=str(form.get("description", "")),
            affected=affected, relief_act=relief_act, actor=staff.label)
    except InvalidInput as exc:
        await session.rollback()
        return templates.TemplateResponse(request, "disaster/list.html", {
            "tenant": staff.tenant, "staff": staff, "disasters": await service.list_disasters(session),
            "may_open": True, "error": exc.detail, "errors": exc.errors, "form": form,
            "affected_text": affected_text, "relief_text": relief_text, **CHOICES}, status_code=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.opened", target_type="disaster", target_id=disaster.id,
                       details={"name": disaster.name})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/disasters/{disaster.id}", status_code=303)


# -- the workspace ------------------------------------------------------------------------------------------

@router.get("/t/{lg_code}/disasters/{disaster_id}", response_class=HTMLResponse)
async def workspace(disaster_id: str, request: Request, session: DbSession, staff: Reader,
                    q: str = "", page: int = 1, closed: str = "") -> HTMLResponse:
    disaster = await service.get_disaster(session, disaster_id)
    listed = await service.records_page(session, staff.tenant, audit.Actor.of_staff(staff), disaster_id, q=q, page=page,
                                         page_size=PAGE_SIZE)
    records, total, page, pages = listed.records, listed.total, listed.page, listed.pages
    await commit_if_written(session)  # the audited reads of other organisations' records
    names = await registry.names_by_code(
        session, {r.lg_code for r in records} | {r.current_lg_code for r in records} | {r.home_lg_code for r in records})
    # Confirmations waiting for this organisation's answer, and (for a prefecture) the flags its
    # municipalities' staff raised by confirming unusually often.
    pending = await service.pending_for(session, staff.tenant, disaster_id)
    requests = [(d, d.record_a_id if d.record_a_code == d.awaiting_code else d.record_b_id) for d in pending]
    flags = await service.flags_of(session, staff.tenant, disaster_id) if staff.tenant.is_prefecture else []
    names.update(await registry.names_by_code(
        session, {d.decided_by_code for d in pending} | {d.awaiting_code for d in pending}))
    return templates.TemplateResponse(request, "disaster/workspace.html", {
        "tenant": staff.tenant, "staff": staff, "disaster": disaster, "records": records, "names": names, "q": q,
        "requests": requests, "flags": flags,
        "total": total, "page": page, "pages": pages, "more": listed.more, "max_page": service.MAX_PAGE,
        "areas": await service.areas(session, disaster_id),
        "shelters": await service.shelters_of_tenant(session, disaster_id),
        "warning_percent": await service.shelter_warning_percent(session, staff.tenant), "closed": closed,
        "is_municipality": service.is_municipality(staff.tenant),
        "may_write": staff.can(Permission.disaster_record_write),
        "may_link": staff.can(Permission.disaster_disaster_manage)
        and await service.may_run_linkage(session, staff.tenant, disaster),
        "may_close": disaster.closed_at is None and staff.tenant.lg_code in (disaster.opened_by_code, service.CABINET_OFFICE)
        and staff.can(Permission.disaster_disaster_manage),
        **CHOICES})


@router.post("/t/{lg_code}/disasters/{disaster_id}/shelters", dependencies=[Depends(verify_csrf)])
async def save_shelter(disaster_id: str, request: Request, session: DbSession, staff: Writer) -> Response:
    form = await request.form()
    disaster = await service.get_disaster(session, disaster_id)
    if not service.is_municipality(staff.tenant):
        raise NotFound("ページが見つかりません。")
    shelter_id = str(form.get("shelter_id", "")) or None
    version = str(form.get("expected_version", "0")).strip()
    try:
        shelter = await service.save_shelter(
            session, disaster, shelter_id=shelter_id, name=str(form.get("name", "")),
            address=str(form.get("address", "")), capacity=str(form.get("capacity", "0")),
            occupancy=str(form.get("occupancy", "0")), is_open=form.get("is_open") == "on",
            needs=str(form.get("needs", "")), expected_version=int(version) if version.isdigit() else 0,
            actor=staff.label, over_capacity_confirmed=form.get("confirm_over_capacity") == "yes")
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        disaster = await service.get_disaster(session, disaster_id)
        # Every error at once, the user's input kept, and still the same shelter (id and version).
        return templates.TemplateResponse(request, "disaster/shelter.html", {
            "tenant": staff.tenant, "disaster": disaster, "form": form, "error": exc.detail, "errors": exc.errors,
            "shelter": await service.get_shelter(session, disaster_id, shelter_id) if shelter_id else None,
            "expected_version": version, "warning_percent": await service.shelter_warning_percent(session, staff.tenant)},
            status_code=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.shelter.saved", target_type="shelter", target_id=shelter.id,
                       details={"name": shelter.name, "occupancy": shelter.occupancy, "open": shelter.is_open})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/disasters/{disaster_id}#shelters", status_code=303)


def public_base_url(request: Request) -> str | None:
    """Where residents reach this server, for a URL printed on a poster (the shelter's QR code):
    ``KIBAN_PUBLIC_URL`` when set; otherwise the request's own address only when its Host is one
    of ``KIBAN_ALLOWED_HOSTS`` (default localhost and 127.0.0.1), never an address a client
    merely claims (a forged Host header would put the attacker's site on the poster)."""
    settings = request.app.state.settings
    if settings.public_url:
        return settings.public_url.rstrip("/")
    allowed = {h.strip().lower() for h in settings.allowed_hosts.split(",") if h.strip()}
    if (request.url.hostname or "").lower() in allowed:
        return str(request.base_url).rstrip("/")
    return None


@router.get("/t/{lg_code}/disasters/{disaster_id}/shelters/{shelter_id}", response_class=HTMLResponse)
async def shelter_page(disaster_id: str, shelter_id: str, request: Request, session: DbSession, staff: Writer) -> HTMLResponse:
    disaster = await service.get_disaster(session, disaster_id)
    shelter = await service.get_shelter(session, disaster_id, shelter_id)
    if shelter is None:
        raise NotFound("避難所が見つかりません。")
    base = public_base_url(request)
    register_url = qr = None
    if base is not None:
        register_url = f"{base}/t/{staff.tenant.lg_code}/disasters/{disaster_id}/shelters/{shelter_id}/register"
        qr = segno.make(register_url, error="m").svg_inline(scale=4, title=f"{shelter.name}で住民が自分で登録するためのQRコード")
    return templates.TemplateResponse(request, "disaster/shelter.html", {
        "tenant": staff.tenant, "disaster": disaster, "shelter": shelter, "form": None, "error": None,
        "register_url": register_url, "qr": qr, "register_unavailable": base is None,
        "warning_percent": await service.shelter_warning_percent(session, staff.tenant)})


# -- records ---------------------------------------------------------------------------------------------------

_record_input = service.record_input


@router.get("/t/{lg_code}/disasters/{disaster_id}/records/new", response_class=HTMLResponse)
async def new_record(disaster_id: str, request: Request, session: DbSession, staff: Writer) -> HTMLResponse:
    disaster = await service.get_disaster(session, disaster_id)
    return templates.TemplateResponse(request, "disaster/record_form.html", {
        "tenant": staff.tenant, "disaster": disaster, "form": {}, "error": None,
        "shelters": await service.shelters_of_tenant(session, disaster_id), **CHOICES})


@router.post("/t/{lg_code}/disasters/{disaster_id}/records", dependencies=[Depends(verify_csrf)])
async def create_record(disaster_id: str, request: Request, session: DbSession, staff: Writer) -> Response:
    form = await request.form()
    disaster = await service.get_disaster(session, disaster_id)
    try:
        record = await service.register(session, staff.tenant, disaster, await _record_input(session, form), actor=staff.label)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        disaster = await service.get_disaster(session, disaster_id)
        return templates.TemplateResponse(request, "disaster/record_form.html", {
            "tenant": staff.tenant, "disaster": disaster, "form": form, "error": exc.detail, "errors": exc.errors,
            "shelters": await service.shelters_of_tenant(session, disaster_id), **CHOICES}, status_code=exc.status)
    await service.record_registration(session, audit.Actor.of_staff(staff), "disaster.record.registered", record)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/disasters/{disaster_id}/records/{record.id}", status_code=303)


@router.get("/t/{lg_code}/disasters/{disaster_id}/records/{record_id}", response_class=HTMLResponse)
async def record_page(disaster_id: str, record_id: str, request: Request, session: DbSession, staff: Reader) -> HTMLResponse:
    disaster = await service.get_disaster(session, disaster_id)
    record = await service.get_visible_record(session, staff.tenant, disaster_id, record_id, audit.Actor.of_staff(staff))
    # Each read of another organisation's records is committed as soon as it is recorded, so that
    # the record of it outlives a failure later in the page (a page that recorded none carries on
    # in its transaction: kit.db.commit_if_written).
    await commit_if_written(session)
    # Candidate matches the viewer may be shown, with the reasons (never another municipality's
    # whereabouts or contact details, never a 支援措置対象 record outside its owner and prefecture).
    candidates = await matching.candidates_for_viewer(session, staff.tenant, record)
    if candidates:
        await service.audit_reads(session, staff.tenant, audit.Actor.of_staff(staff),
                                  [c.record for c in candidates if c.record.lg_code != staff.tenant.lg_code],
                                  "disaster.record.match_viewed")
        await commit_if_written(session)
    made = await service.decisions(session, disaster_id, {record.id})
    linked_ids = {d.record_b_id if d.record_a_id == record.id else d.record_a_id for d in made if service.links(d)}
    linked = await service.visible_records(session, staff.tenant, disaster_id, actor=audit.Actor.of_staff(staff),
                                           record_ids=sorted(linked_ids)) if linked_ids else []
    await commit_if_written(session)
    # Confirmations of this record waiting for an answer: those the viewer asked for (it sees only
    # whom it waits for) and those it is asked to answer (it sees what the asker registered, enough
    # to judge the match).
    waiting = [d for d in made if d.acceptance == service.PENDING and d.reverted_at is None]
    asked = [d for d in waiting if service.may_answer(staff.tenant, d)]
    askers = await service.records_for_matching(
        session, disaster_id, {d.record_b_id if d.record_a_id == record.id else d.record_a_id for d in asked})
    if askers:
        await service.audit_reads(session, staff.tenant, audit.Actor.of_staff(staff),
                                  [r for r in askers.values() if r.lg_code != staff.tenant.lg_code],
                                  "disaster.record.match_viewed")
    requests = [(d, askers[d.record_b_id if d.record_a_id == record.id else d.record_a_id]) for d in asked
                if (d.record_b_id if d.record_a_id == record.id else d.record_a_id) in askers]
    await commit_if_written(session)
    codes = {record.lg_code, record.home_lg_code, record.current_lg_code} | {c.record.lg_code for c in candidates} | {
        r.lg_code for r in linked} | {r.current_lg_code for r in linked} | {d.awaiting_code for d in waiting} | {
        r.lg_code for _, r in requests} | {service.prefecture_code(d.awaiting_code) for d in waiting}
    names = await registry.names_by_code(session, codes)
    try:
        support = estimate(record.damage_level, household_size=record.household_size, rebuild_plan=record.rebuild_plan,
                           demolished=record.demolished, long_term_evacuation=record.long_term_evacuation,
                           act_applies=await service.support_act_applies(session, disaster.id, record.home_lg_code)
                           ) if record.damage_level != "未調査" else None
    except SupportInputError as exc:
        support = exc
    decided = {"|".join(sorted((d.record_a_id, d.record_b_id))): d for d in made if d.reverted_at is None}
    return templates.TemplateResponse(request, "disaster/record.html", {
        "tenant": staff.tenant, "staff": staff, "disaster": disaster, "record": record, "names": names,
        "candidates": candidates, "decided": decided, "linked": linked, "decisions": made, "support": support,
        "waiting": [d for d in waiting if d.decided_by_code == staff.tenant.lg_code], "requests": requests,
        "prefecture_code": service.prefecture_code,
        "own": record.lg_code == staff.tenant.lg_code, "may_write": staff.can(Permission.disaster_record_write),
        **CHOICES})


def _form_of(record: VictimRecord) -> dict:
    """A record as the form's values (for editing)."""
    values = {k: getattr(record, k) or "" for k in (
        "family_name", "given_name", "family_kana", "given_kana", "sex", "home_address", "home_lg_code", "whereabouts",
        "shelter_id", "wide_area_lg_code", "phone", "household_key", "damage_level", "risai_status", "rebuild_plan", "note")}
    values["birth_date"] = record.birth_date.isoformat() if record.birth_date else ""
    values["household_size"] = str(record.household_size)
    values["demolished"] = "on" if record.demolished else ""
    values["long_term_evacuation"] = "on" if record.long_term_evacuation else ""
    values["protected"] = "on" if record.protected else ""
    return values


_Prefilled = service.FormValues


@router.get("/t/{lg_code}/disasters/{disaster_id}/records/{record_id}/edit", response_class=HTMLResponse)
async def edit_record_page(disaster_id: str, record_id: str, request: Request, session: DbSession,
                           staff: Writer) -> HTMLResponse:
    disaster = await service.get_disaster(session, disaster_id)
    record = await service.own_record(session, disaster_id, record_id)
    form = _Prefilled(_form_of(record), {"care_needs": record.care_needs or [], "supports": record.supports or []})
    return templates.TemplateResponse(request, "disaster/record_form.html", {
        "tenant": staff.tenant, "disaster": disaster, "form": form, "error": None, "record": record,
        "shelters": await service.shelters_of_tenant(session, disaster_id), **CHOICES})


@router.post("/t/{lg_code}/disasters/{disaster_id}/records/{record_id}/edit", dependencies=[Depends(verify_csrf)])
async def edit_record(disaster_id: str, record_id: str, request: Request, session: DbSession, staff: Writer) -> Response:
    form = await request.form()
    disaster = await service.get_disaster(session, disaster_id)
    try:
        version = str(form.get("expected_version", "0"))
        record = await service.update_record(session, staff.tenant, disaster, record_id, await _record_input(session, form),
                                             expected_version=int(version) if version.isdigit() else 0)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        disaster = await service.get_disaster(session, disaster_id)
        return templates.TemplateResponse(request, "disaster/record_form.html", {
            "tenant": staff.tenant, "disaster": disaster, "form": form, "error": exc.detail, "errors": exc.errors,
            "record": {"id": record_id, "version": form.get("expected_version", "0")},
            "shelters": await service.shelters_of_tenant(session, disaster_id), **CHOICES}, status_code=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.record.updated", target_type="victim_record",
                       target_id=record.id, subject_id=record.resident_subject_id,
                       details={"version": record.version, "whereabouts": record.whereabouts, "protected": record.protected})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/disasters/{disaster_id}/records/{record_id}", status_code=303)


@router.post("/t/{lg_code}/disasters/{disaster_id}/matches", dependencies=[Depends(verify_csrf)])
async def decide_match(disaster_id: str, request: Request, session: DbSession, staff: Writer,
                       record_id: Annotated[str, Form()] = "", other_id: Annotated[str, Form()] = "",
                       decision: Annotated[str, Form()] = "") -> Response:
    await service.staff_decision(session, staff, disaster_id, record_id, other_id, decision)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/disasters/{disaster_id}/records/{record_id}", status_code=303)


@router.post("/t/{lg_code}/disasters/{disaster_id}/matches/{decision_id}/accept", dependencies=[Depends(verify_csrf)])
async def accept_match(disaster_id: str, decision_id: str, session: DbSession, staff: Writer) -> Response:
    """The owner of the other record (or its prefecture) agrees: the two are one person from now on."""
    match = await service.accept(session, staff.tenant, disaster_id, decision_id, staff.label)
    await service.answered(session, staff, match, "disaster.match.accepted")
    await session.commit()
    return RedirectResponse(_own_record_url(staff, disaster_id, match), status_code=303)


@router.post("/t/{lg_code}/disasters/{disaster_id}/matches/{decision_id}/decline", dependencies=[Depends(verify_csrf)])
async def decline_match(disaster_id: str, decision_id: str, session: DbSession, staff: Writer) -> Response:
    match = await service.decline(session, staff.tenant, disaster_id, decision_id, staff.label)
    await service.answered(session, staff, match, "disaster.match.declined")
    await session.commit()
    return RedirectResponse(_own_record_url(staff, disaster_id, match), status_code=303)


def _own_record_url(staff: StaffContext, disaster_id: str, match) -> str:
    record_id = match.record_a_id if match.record_a_code == match.awaiting_code else match.record_b_id
    return f"/t/{staff.tenant.lg_code}/disasters/{disaster_id}/records/{record_id}"


@router.post("/t/{lg_code}/disasters/{disaster_id}/matches/{decision_id}/revert", dependencies=[Depends(verify_csrf)])
async def revert_match(disaster_id: str, decision_id: str, session: DbSession, staff: Writer,
                       back: Annotated[str, Form()] = "") -> Response:
    match = await service.revert(session, staff.tenant, disaster_id, decision_id, staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.match.reverted", target_type="match_decision",
                       target_id=match.id, purpose=service.SHARE_PURPOSE, legal_basis=service.LEGAL_BASIS)
    await session.commit()
    target = back if back.startswith(f"/t/{staff.tenant.lg_code}/") else f"/t/{staff.tenant.lg_code}/disasters/{disaster_id}"
    return RedirectResponse(target, status_code=303)


@router.post("/t/{lg_code}/disasters/{disaster_id}/close", dependencies=[Depends(verify_csrf)])
async def close_disaster(disaster_id: str, session: DbSession, staff: Opener,
                         confirm: Annotated[str, Form()] = "") -> Response:
    await service.close_disaster(session, staff.tenant, disaster_id, dry_run=True)  # 404/409 before asking to confirm
    if confirm != "yes":
        raise InvalidInput("対応を終了する前に、確認のチェックを入れてください。")
    disaster = await service.close_disaster(session, staff.tenant, disaster_id)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.closed", target_type="disaster", target_id=disaster.id)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/disasters/{disaster_id}?closed=1", status_code=303)


@router.post("/t/{lg_code}/disasters/{disaster_id}/linkage", dependencies=[Depends(verify_csrf)])
async def run_linkage(disaster_id: str, session: DbSession, staff: Opener) -> Response:
    """一括名寄せ, run by the prefecture or 内閣府 for the whole disaster: scores and shows a
    preview first; nothing is linked until the preview is applied."""
    batch = await service.preview_batch(session, staff.tenant, disaster_id, staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.linkage.previewed", target_type="linkage_batch",
                       target_id=batch.id, purpose=service.SHARE_PURPOSE, legal_basis=service.LEGAL_BASIS,
                       details={"disaster": disaster_id, "records": batch.records, "pairs": len(batch.pairs)})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/disasters/{disaster_id}/linkage/{batch.id}", status_code=303)


@router.get("/t/{lg_code}/disasters/{disaster_id}/linkage/{batch_id}", response_class=HTMLResponse)
async def linkage_page(disaster_id: str, batch_id: str, request: Request, session: DbSession, staff: Opener,
                       done: str = "") -> HTMLResponse:
    disaster = await service.get_disaster(session, disaster_id)
    if not await service.may_run_linkage(session, staff.tenant, disaster):
        raise NotFound("ページが見つかりません。")
    batch = await service.get_batch(session, staff.tenant, disaster_id, batch_id)
    shown = batch.pairs[:service.PREVIEW_LIMIT]
    # Names only of records the viewer may see anyway (its area); each such read is audited.
    visible = {r.id: r for r in await service.visible_records(
        session, staff.tenant, disaster_id, actor=audit.Actor.of_staff(staff),
        record_ids=sorted({p["a"] for p in shown} | {p["b"] for p in shown}))} if shown else {}
    await session.commit()
    names = await registry.names_by_code(session, {p["a_code"] for p in shown} | {p["b_code"] for p in shown})
    counts = {action: sum(1 for p in batch.pairs if p["action"] == action) for action in ("link", "borderline", "kept")}
    return templates.TemplateResponse(request, "disaster/linkage.html", {
        "tenant": staff.tenant, "disaster": disaster, "batch": batch, "pairs": shown, "visible": visible, "names": names,
        "counts": counts, "done": done, "limit": service.PREVIEW_LIMIT,
        "runs": await service.batches(session, staff.tenant, disaster_id)})


@router.post("/t/{lg_code}/disasters/{disaster_id}/linkage/{batch_id}/apply", dependencies=[Depends(verify_csrf)])
async def apply_linkage(disaster_id: str, batch_id: str, session: DbSession, staff: Opener) -> Response:
    batch = await service.apply_batch(session, staff.tenant, disaster_id, batch_id, staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.linkage.batch", target_type="linkage_batch",
                       target_id=batch.id, purpose=service.SHARE_PURPOSE, legal_basis=service.LEGAL_BASIS,
                       details={"disaster": disaster_id, "records": batch.records, "pairs": len(batch.pairs),
                                "linked": batch.linked})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/disasters/{disaster_id}/linkage/{batch_id}?done=applied",
                            status_code=303)


@router.post("/t/{lg_code}/disasters/{disaster_id}/linkage/{batch_id}/undo", dependencies=[Depends(verify_csrf)])
async def undo_linkage(disaster_id: str, batch_id: str, session: DbSession, staff: Opener,
                       confirm: Annotated[str, Form()] = "") -> Response:
    if confirm != "yes":
        raise InvalidInput("取り消す前に、確認のチェックを入れてください。")
    batch = await service.undo_batch(session, staff.tenant, disaster_id, batch_id, staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.linkage.undone", target_type="linkage_batch",
                       target_id=batch.id, purpose=service.SHARE_PURPOSE, legal_basis=service.LEGAL_BASIS,
                       details={"disaster": disaster_id, "undone": batch.undone})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/disasters/{disaster_id}/linkage/{batch_id}?done=undone",
                            status_code=303)


# -- dashboard ---------------------------------------------------------------------------------------------------------

@router.get("/t/{lg_code}/disasters/{disaster_id}/dashboard", response_class=HTMLResponse)
async def dashboard_page(disaster_id: str, request: Request, session: DbSession, staff: Reader,
                         view: str = "") -> HTMLResponse:
    disaster = await service.get_disaster(session, disaster_id)
    board = await service.dashboard(session, staff.tenant, disaster_id, national=view == "national")
    await session.commit()  # a large area's recount, stored for every server process
    template = "disaster/_dashboard.html" if request.headers.get("HX-Request") else "disaster/dashboard.html"
    return templates.TemplateResponse(request, template, {
        "tenant": staff.tenant, "disaster": disaster, "board": board, "small": service.SMALL_COUNT, "view": view,
        "may_see_national": service.may_see_national(staff.tenant)})


@router.get("/t/{lg_code}/disasters/{disaster_id}/dashboard.csv")
async def dashboard_csv(disaster_id: str, session: DbSession, staff: Reader, view: str = "") -> Response:
    disaster = await service.get_disaster(session, disaster_id)
    board = await service.dashboard(session, staff.tenant, disaster_id, national=view == "national")
    await session.commit()  # a large area's recount, stored for every server process

    def shown(count):
        return count if count is not None else f"{service.SMALL_COUNT}未満"

    rows = [["合計", "合計", board.total, board.people]]
    rows += [[name, row.label, shown(row.registrations), shown(row.people)]
             for name, table in board.tables.items() for row in table]
    return attachment(csv_bytes(rows, header=["区分", "項目", "登録件数", "人数（名寄せ後）"]),
                      f"状況_{disaster.name}_{staff.tenant.name}.csv")


# -- CSV import ----------------------------------------------------------------------------------------------------------

def _import_context(staff: StaffContext, disaster, **extra) -> dict:
    return {"tenant": staff.tenant, "disaster": disaster, "batch": None, "error": None, "fields": ROSTER_FIELDS, **extra}


@router.get("/t/{lg_code}/disasters/{disaster_id}/imports", response_class=HTMLResponse)
async def import_page(disaster_id: str, request: Request, session: DbSession, staff: Writer) -> HTMLResponse:
    disaster = await service.get_disaster(session, disaster_id)
    return templates.TemplateResponse(request, "disaster/import.html", _import_context(staff, disaster))


def _download(content: bytes, filename: str, media_type: str) -> Response:
    return attachment(content, filename, media_type)


@router.get("/t/{lg_code}/disasters/{disaster_id}/imports/template.csv")
async def roster_template_csv(disaster_id: str, session: DbSession, staff: Writer) -> Response:
    await service.get_disaster(session, disaster_id)
    return _download(template_csv(), f"{TEMPLATE_FILENAME}.csv", "text/csv; charset=utf-8")


@router.get("/t/{lg_code}/disasters/{disaster_id}/imports/template.xlsx")
async def roster_template_xlsx(disaster_id: str, session: DbSession, staff: Writer) -> Response:
    await service.get_disaster(session, disaster_id)
    shelters = [s.name for s in await service.shelters_of_tenant(session, disaster_id)]
    return _download(template_xlsx(shelters), f"{TEMPLATE_FILENAME}.xlsx",
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@router.post("/t/{lg_code}/disasters/{disaster_id}/imports", dependencies=[Depends(verify_csrf)])
async def upload_roster(disaster_id: str, request: Request, session: DbSession, staff: Writer,
                        file: UploadFile) -> Response:
    disaster = await service.get_disaster(session, disaster_id)
    data = await file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        return templates.TemplateResponse(request, "disaster/import.html", _import_context(
            staff, disaster, error="ファイルが大きすぎます（5MB まで）。分けて取り込んでください。"), status_code=413)
    # One registry snapshot for the whole file: a code column may hold names (輪島市) too.
    snapshot = request.app.state.registry_cache.latest or await load_snapshot(session)
    batch = await service.stage_roster(session, staff.tenant, disaster_id, data, file.filename or "roster.csv", snapshot,
                                       actor=staff.label)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/disasters/{disaster_id}/imports/{batch.id}", status_code=303)


_batch = service.roster_batch


async def _preview(request: Request, session, staff: StaffContext, disaster, batch: RosterImport, *,
                   error: str | None = None, posted=None, status_code: int = 200) -> HTMLResponse:
    from kiban.modules.disaster import imports

    counts = await service.import_counts(session, staff.tenant, disaster.id, batch)
    job = await imports.job_of(session, batch) if batch.status != imports.STAGED else None
    return templates.TemplateResponse(request, "disaster/import.html", _import_context(
        staff, disaster, batch=batch, error=error, registered=counts.registered, posted=posted or {},
        valid=counts.valid, invalid=counts.invalid, proposals=counts.proposals, job=job,
        progress=imports.progress_of(job)), status_code=status_code)


@router.get("/t/{lg_code}/disasters/{disaster_id}/imports/{batch_id}", response_class=HTMLResponse)
async def import_report(disaster_id: str, batch_id: str, request: Request, session: DbSession, staff: Writer,
                        progress: str = "") -> HTMLResponse:
    """The import's report; while it registers, the page polls ``?progress=1`` (htmx), which
    answers only the progress line, cheaply, and asks for a reload once the import has ended."""
    from kiban.modules.disaster import imports

    if progress and request.headers.get("HX-Request"):
        status = await imports.status_of(session, disaster_id, batch_id)
        response = templates.TemplateResponse(request, "disaster/_import_progress.html", {
            "tenant": staff.tenant, "disaster_id": disaster_id, "batch_id": batch_id, "status": status,
            "progress": imports.progress_of(status.job)})
        if status.status != imports.IMPORTING:
            response.headers["HX-Refresh"] = "true"
        return response
    disaster = await service.get_disaster(session, disaster_id)
    batch = await _batch(session, disaster_id, batch_id)
    return await _preview(request, session, staff, disaster, batch)


@router.post("/t/{lg_code}/disasters/{disaster_id}/imports/{batch_id}/accept", dependencies=[Depends(verify_csrf)])
async def accept_import(disaster_id: str, batch_id: str, request: Request, session: DbSession, staff: Writer) -> Response:
    """Register the rows staff accepted (``imports.accept``: registered in the background, in
    chunks, unless the roster is small). A row whose import key is already registered is skipped; a
    name split guessed from the surname list is registered only as staff confirmed (or corrected)
    it on the preview; anything wrong re-shows the preview with every problem and what was typed."""
    from kiban.modules.disaster import imports

    form = await request.form()
    disaster = await service.get_disaster(session, disaster_id)
    batch = await _batch(session, disaster_id, batch_id)
    try:
        job = await imports.accept(session, staff, disaster, batch, form)
    except service.ImportNotAccepted as exc:
        return await _preview(request, session, staff, disaster, batch, error="\n".join(exc.problems), posted=form,
                              status_code=422)
    await session.commit()
    await imports.start(request.app, session, job)  # a small roster now; a large one in the background
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/disasters/{disaster_id}/imports/{batch_id}", status_code=303)


# -- residents register themselves at a shelter ---------------------------------------------------------------------------------

@router.get("/t/{lg_code}/disasters/{disaster_id}/shelters/{shelter_id}/register", response_class=HTMLResponse)
async def self_register_page(disaster_id: str, shelter_id: str, tenant: CurrentTenant, request: Request,
                             session: DbSession, resident: CurrentResident) -> HTMLResponse:
    disaster = await service.get_disaster(session, disaster_id)
    shelter = await service.get_shelter(session, disaster_id, shelter_id, open_only=True)
    if shelter is None:
        raise NotFound("開設中の避難所が見つかりません。")
    return templates.TemplateResponse(request, "disaster/self_register.html", {
        "tenant": tenant, "disaster": disaster, "shelter": shelter, "form": {}, "error": None, "done": None, **CHOICES})


@router.post("/t/{lg_code}/disasters/{disaster_id}/shelters/{shelter_id}/register",
             dependencies=[Depends(verify_csrf)])
async def self_register(disaster_id: str, shelter_id: str, tenant: CurrentTenant, request: Request,
                        session: DbSession, resident: CurrentResident) -> Response:
    disaster = await service.get_disaster(session, disaster_id)
    form = await request.form()
    shelter = await service.get_shelter(session, disaster_id, shelter_id, open_only=True)
    if shelter is None:
        raise NotFound("開設中の避難所が見つかりません。")
    values = {**{k: form.get(k, "") for k in form.keys()}, "whereabouts": "shelter", "shelter_id": shelter.id}
    lists = {key: form.getlist(key) for key in ("care_needs", "supports")}
    try:
        data = await _record_input(session, _Prefilled(values, lists), resident_subject_id=resident.principal.id)
        data.import_key = f"resident:{resident.principal.id}"  # registering twice changes nothing
        record = await service.register(session, tenant, disaster, data, actor="本人（マイナンバーカード）")
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        disaster = await service.get_disaster(session, disaster_id)
        shelter = await service.get_shelter(session, disaster_id, shelter_id)
        return templates.TemplateResponse(request, "disaster/self_register.html", {
            "tenant": tenant, "disaster": disaster, "shelter": shelter, "form": form, "error": exc.detail, "errors": exc.errors, "done": None,
            **CHOICES}, status_code=exc.status)
    await service.record_registration(session, audit.Actor("resident", "本人", resident.principal.id),
                                      "disaster.record.self_registered", record)
    await session.commit()
    return templates.TemplateResponse(request, "disaster/self_register.html", {
        "tenant": tenant, "disaster": disaster, "shelter": shelter, "form": {}, "error": None, "done": record, **CHOICES})
