"""電子申請 pages: staff build, publish and share forms and work the inbox under
``/t/{lg_code}/forms``; residents answer a published form at ``/f/{lg_code}/{slug}`` without
signing in (form → confirmation → receipt number)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.audit import service as audit
from kiban.core.exports import service as exports_service
from kiban.core.identity.dependencies import PUBLIC, StaffContext, current_web_session, require
from kiban.core.identity.models import Principal
from kiban.core.identity.permissions import Permission
from kiban.core.tenancy.context import Tenant
from kiban.core.tenancy.dependencies import DbSession, tenant_from_path
from kiban.kit import export
from kiban.kit.csrf import verify_csrf
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.kit.paging import PageNumber
from kiban.kit.templating import templates
from kiban.modules.forms import fields as fieldkit
from kiban.modules.forms import exports as form_exports
from kiban.modules.forms import service, signing, uploads
from kiban.modules.forms.models import STATUS_LABELS, TRANSITIONS, EventKind, Form as FormModel, FormVersion, SubmissionStatus

DIRECT_EXPORT_LIMIT = 10_000  # up to this many, the file is written while staff wait

router = APIRouter(include_in_schema=False)
FormManager = Annotated[StaffContext, require(Permission.forms_form_manage)]
SubmissionReader = Annotated[StaffContext, require(Permission.forms_submission_read)]
SubmissionProcessor = Annotated[StaffContext, require(Permission.forms_submission_process)]


def _ctx(staff: StaffContext, **values) -> dict:
    return {"tenant": staff.tenant, "staff": staff, "statuses": list(SubmissionStatus),
            "field_types": fieldkit.FIELD_TYPES, "patterns": fieldkit.PATTERNS, "file_kinds": fieldkit.FILE_KINDS, **values}


def _errors_by_field(exc: InvalidInput) -> dict[str, str]:
    found: dict[str, str] = {}
    for e in exc.errors:
        found[e["field"]] = (found.get(e["field"], "") + " " + e["message"]).strip()
    return found


# -- the tenant's forms ---------------------------------------------------------------------------

async def _list_page(request, session, staff, *, errors=None, values=None, status=200) -> HTMLResponse:
    return templates.TemplateResponse(request, "forms/list.html", _ctx(
        staff, forms=await service.list_forms(session), errors=errors or {}, values=values or {},
        may_manage=staff.can(Permission.forms_form_manage)), status_code=status)


@router.get("/t/{lg_code}/forms", response_class=HTMLResponse)
async def forms_page(request: Request, session: DbSession, staff: SubmissionReader) -> HTMLResponse:
    return await _list_page(request, session, staff)


@router.post("/t/{lg_code}/forms", dependencies=[Depends(verify_csrf)])
async def create_form(request: Request, session: DbSession, staff: FormManager,
                      title: Annotated[str, Form()] = "", slug: Annotated[str, Form()] = "") -> Response:
    try:
        form = await service.create_form(session, service.FormSettings(title=title, slug=slug), actor=staff.label)
    except InvalidInput as exc:
        await session.rollback()
        return await _list_page(request, session, staff, errors=_errors_by_field(exc),
                                values={"title": title, "slug": slug}, status=422)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.form.created", target_type="form",
                       target_id=form.id, details={"form_title": form.title})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/forms/{form.id}", status_code=303)


# -- shared templates -------------------------------------------------------------------------------

async def _templates_page(request, session, staff, *, error=None, status=200) -> HTMLResponse:
    return templates.TemplateResponse(request, "forms/templates.html", _ctx(
        staff, templates=await service.shared_templates(session), error=error), status_code=status)


@router.get("/t/{lg_code}/forms/templates", response_class=HTMLResponse)
async def templates_page(request: Request, session: DbSession, staff: FormManager) -> HTMLResponse:
    return await _templates_page(request, session, staff)


@router.post("/t/{lg_code}/forms/templates/{source_lg_code}/{form_id}/copy", dependencies=[Depends(verify_csrf)])
async def copy_template(source_lg_code: str, form_id: str, request: Request, session: DbSession,
                        staff: FormManager) -> Response:
    try:
        form = await service.copy_template(session, source_lg_code, form_id, actor=staff.label)
    except InvalidInput as exc:
        await session.rollback()
        return await _templates_page(request, session, staff, error=exc.detail, status=422)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.form.copied", target_type="form",
                       target_id=form.id, details={"form_title": form.title, "name": form.copied_from})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/forms/{form.id}?copied=1", status_code=303)


# -- building a form --------------------------------------------------------------------------------

async def _builder(request, session, staff, form: FormModel, *, errors=None, values=None, field_values=None,
                   field_errors=None, error=None, status=200, copied=False) -> HTMLResponse:
    published = await service.get_version(session, form.id, form.published_version) if form.published_version else None
    return templates.TemplateResponse(request, "forms/builder.html", _ctx(
        staff, form=form, published=published, changed=service.has_unpublished_changes(form, published),
        errors=errors or {}, values=values, field_values=field_values or {}, field_errors=field_errors or [],
        error=error, copied=copied, public_url=f"/f/{staff.tenant.lg_code}/{form.slug}",
        choice_fields=[f for f in form.fields if f["type"] in ("choice", "checkboxes")]), status_code=status)


@router.get("/t/{lg_code}/forms/{form_id}", response_class=HTMLResponse)
async def builder_page(form_id: str, request: Request, session: DbSession, staff: FormManager,
                       copied: str | None = None) -> HTMLResponse:
    form = await service.get_form(session, form_id)
    return await _builder(request, session, staff, form, copied=bool(copied))


def _back(staff: StaffContext, form: FormModel, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/forms/{form.id}{anchor}", status_code=303)


@router.post("/t/{lg_code}/forms/{form_id}/settings", dependencies=[Depends(verify_csrf)])
async def save_settings(form_id: str, request: Request, session: DbSession, staff: FormManager,
                        title: Annotated[str, Form()] = "", slug: Annotated[str, Form()] = "",
                        description: Annotated[str, Form()] = "", contact: Annotated[str, Form()] = "",
                        identity_required: Annotated[str, Form()] = "", is_open: Annotated[str, Form()] = "",
                        shared_summary: Annotated[str, Form()] = "",
                        expected_version: Annotated[int, Form()] = 0) -> Response:
    form = await service.get_form(session, form_id)
    data = service.FormSettings(title=title, slug=slug or form.slug, description=description, contact=contact,
                                identity_required=bool(identity_required), is_open=bool(is_open),
                                shared_summary=shared_summary)
    try:
        await service.update_settings(session, form, data, actor=staff.label, expected_version=expected_version)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        form = await service.get_form(session, form_id)
        errors = _errors_by_field(exc) if isinstance(exc, InvalidInput) else {}
        return await _builder(request, session, staff, form, errors=errors, values=data.__dict__,
                              error=exc.detail, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.form.updated", target_type="form",
                       target_id=form.id, details={"form_title": form.title})
    await session.commit()
    return _back(staff, form)


def _field_raw(kind, label, hint, required, options, minimum, maximum, max_length, pattern, show_if_field,
               show_if_equals, extra: dict | None = None) -> dict:
    return {"type": kind, "label": label, "hint": hint, "required": required, "options": options,
            "min": minimum, "max": maximum, "max_length": max_length, "pattern": pattern,
            "show_if_field": show_if_field, "show_if_equals": show_if_equals, **(extra or {})}


async def _extra_inputs(request: Request) -> dict:
    """The inputs only a repeating group (its columns, row counts) or an attachment (size,
    kinds) has: read from the form as typed, checked by ``fields.clean_field``."""
    data = await request.form()
    return {"subfields_text": str(data.get("subfields_text") or ""), "min_items": str(data.get("min_items") or ""),
            "max_items": str(data.get("max_items") or ""), "max_mb": str(data.get("max_mb") or ""),
            "accept": [str(a) for a in data.getlist("accept")]}


FieldInput = dict  # for readability below


@router.post("/t/{lg_code}/forms/{form_id}/fields", dependencies=[Depends(verify_csrf)])
async def add_field(form_id: str, request: Request, session: DbSession, staff: FormManager,
                    type: Annotated[str, Form()] = "", label: Annotated[str, Form()] = "",  # noqa: A002
                    hint: Annotated[str, Form()] = "", required: Annotated[str, Form()] = "",
                    options: Annotated[str, Form()] = "", min: Annotated[str, Form()] = "",  # noqa: A002
                    max: Annotated[str, Form()] = "", max_length: Annotated[str, Form()] = "",  # noqa: A002
                    pattern: Annotated[str, Form()] = "", show_if_field: Annotated[str, Form()] = "",
                    show_if_equals: Annotated[str, Form()] = "", expected_version: Annotated[int, Form()] = 0) -> Response:
    form = await service.get_form(session, form_id)
    raw = _field_raw(type, label, hint, required, options, min, max, max_length, pattern, show_if_field, show_if_equals,
                     await _extra_inputs(request))
    try:
        field = await service.add_field(session, form, raw, actor=staff.label, expected_version=expected_version)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        form = await service.get_form(session, form_id)
        return await _builder(request, session, staff, form, field_values=raw,
                              field_errors=[e["message"] for e in exc.errors] or [exc.detail], status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.form.updated", target_type="form",
                       target_id=form.id, details={"form_title": form.title, "label": field["label"]})
    await session.commit()
    return _back(staff, form, "#fields")


async def _field_page(request, session, staff, form, field, *, values=None, errors=None, status=200) -> HTMLResponse:
    index = next(i for i, f in enumerate(form.fields) if f["key"] == field["key"])
    return templates.TemplateResponse(request, "forms/field_edit.html", _ctx(
        staff, form=form, field=field, values=values or {**field, **{
            "show_if_field": (field.get("show_if") or {}).get("field", ""),
            "show_if_equals": (field.get("show_if") or {}).get("equals", ""),
            "options": "\n".join(field.get("options") or []),
            "subfields_text": fieldkit.subfields_text(field)}},
        errors=errors or [], choice_fields=[f for f in form.fields[:index] if f["type"] in ("choice", "checkboxes")]),
        status_code=status)


def _field_of(form: FormModel, key: str) -> dict:
    field = next((f for f in form.fields if f["key"] == key), None)
    if field is None:
        raise NotFound("この項目は見つかりませんでした。")
    return field


@router.get("/t/{lg_code}/forms/{form_id}/fields/{key}", response_class=HTMLResponse)
async def field_page(form_id: str, key: str, request: Request, session: DbSession, staff: FormManager) -> HTMLResponse:
    form = await service.get_form(session, form_id)
    return await _field_page(request, session, staff, form, _field_of(form, key))


@router.post("/t/{lg_code}/forms/{form_id}/fields/{key}", dependencies=[Depends(verify_csrf)])
async def save_field(form_id: str, key: str, request: Request, session: DbSession, staff: FormManager,
                     type: Annotated[str, Form()] = "", label: Annotated[str, Form()] = "",  # noqa: A002
                     hint: Annotated[str, Form()] = "", required: Annotated[str, Form()] = "",
                     options: Annotated[str, Form()] = "", min: Annotated[str, Form()] = "",  # noqa: A002
                     max: Annotated[str, Form()] = "", max_length: Annotated[str, Form()] = "",  # noqa: A002
                     pattern: Annotated[str, Form()] = "", show_if_field: Annotated[str, Form()] = "",
                     show_if_equals: Annotated[str, Form()] = "", expected_version: Annotated[int, Form()] = 0) -> Response:
    form = await service.get_form(session, form_id)
    field = _field_of(form, key)
    raw = _field_raw(type, label, hint, required, options, min, max, max_length, pattern, show_if_field, show_if_equals,
                     await _extra_inputs(request))
    try:
        await service.update_field(session, form, key, raw, actor=staff.label, expected_version=expected_version)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        form = await service.get_form(session, form_id)
        return await _field_page(request, session, staff, form, field, values={**raw, "key": key},
                                 errors=[e["message"] for e in exc.errors] or [exc.detail], status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.form.updated", target_type="form",
                       target_id=form.id, details={"form_title": form.title, "label": label})
    await session.commit()
    return _back(staff, form, "#fields")


@router.post("/t/{lg_code}/forms/{form_id}/fields/{key}/delete", dependencies=[Depends(verify_csrf)])
async def delete_field(form_id: str, key: str, request: Request, session: DbSession, staff: FormManager,
                       confirm: Annotated[str, Form()] = "", expected_version: Annotated[int, Form()] = 0) -> Response:
    """Destructive: the first post shows what will go; only ``confirm=yes`` removes it."""
    form = await service.get_form(session, form_id)
    field = _field_of(form, key)
    if confirm != "yes":
        return templates.TemplateResponse(request, "forms/confirm_delete.html", _ctx(staff, form=form, field=field))
    try:
        await service.remove_field(session, form, key, actor=staff.label, expected_version=expected_version)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        form = await service.get_form(session, form_id)
        return await _builder(request, session, staff, form, error=exc.detail, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.form.updated", target_type="form",
                       target_id=form.id, details={"form_title": form.title, "label": field["label"]})
    await session.commit()
    return _back(staff, form, "#fields")


@router.post("/t/{lg_code}/forms/{form_id}/fields/{key}/move", dependencies=[Depends(verify_csrf)])
async def move_field(form_id: str, key: str, request: Request, session: DbSession, staff: FormManager,
                     direction: Annotated[str, Form()] = "", expected_version: Annotated[int, Form()] = 0) -> Response:
    form = await service.get_form(session, form_id)
    try:
        await service.move_field(session, form, key, direction, actor=staff.label, expected_version=expected_version)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        form = await service.get_form(session, form_id)
        return await _builder(request, session, staff, form, error=exc.detail, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.form.updated", target_type="form",
                       target_id=form.id, details={"form_title": form.title})
    await session.commit()
    return _back(staff, form, "#fields")


@router.post("/t/{lg_code}/forms/{form_id}/publish", dependencies=[Depends(verify_csrf)])
async def publish(form_id: str, request: Request, session: DbSession, staff: FormManager,
                  expected_version: Annotated[int, Form()] = 0) -> Response:
    form = await service.get_form(session, form_id)
    try:
        version = await service.publish(session, form, actor=staff.label, expected_version=expected_version)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        form = await service.get_form(session, form_id)
        return await _builder(request, session, staff, form, error=exc.detail, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.form.published", target_type="form",
                       target_id=form.id, details={"form_title": form.title, "form_version": version.number})
    await session.commit()
    return _back(staff, form)


@router.post("/t/{lg_code}/forms/{form_id}/share", dependencies=[Depends(verify_csrf)])
async def share(form_id: str, request: Request, session: DbSession, staff: FormManager,
                shared: Annotated[str, Form()] = "", expected_version: Annotated[int, Form()] = 0) -> Response:
    form = await service.get_form(session, form_id)
    try:
        await service.set_shared(session, form, shared == "1", actor=staff.label, expected_version=expected_version)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        form = await service.get_form(session, form_id)
        return await _builder(request, session, staff, form, error=exc.detail, status=exc.status)
    if form.shared:
        await audit.record(session, audit.Actor.of_staff(staff), "forms.form.shared", target_type="form",
                           target_id=form.id, details={"form_title": form.title})
    else:
        await audit.record(session, audit.Actor.of_staff(staff), "forms.form.unshared", target_type="form",
                           target_id=form.id, details={"form_title": form.title})
    await session.commit()
    return _back(staff, form)


# -- the inbox ------------------------------------------------------------------------------------

@router.get("/t/{lg_code}/forms/{form_id}/submissions", response_class=HTMLResponse)
async def inbox_page(form_id: str, request: Request, session: DbSession, staff: SubmissionReader,
                     page: PageNumber = 1, status: str | None = None) -> HTMLResponse:
    form = await service.get_form(session, form_id)
    chosen = service.parse_status(status)
    result = await service.inbox(session, form.id, status=chosen, page=page)
    return templates.TemplateResponse(request, "forms/inbox.html", _ctx(
        staff, form=form, result=result, chosen=chosen, status_labels=STATUS_LABELS))


@router.get("/t/{lg_code}/forms/{form_id}/submissions.{fmt}")
async def export_submissions(form_id: str, fmt: str, session: DbSession, staff: SubmissionReader,
                             status: str | None = None) -> Response:
    if fmt not in ("csv", "xlsx"):
        raise NotFound("この形式では書き出せません（CSV か xlsx）。")
    form = await service.get_form(session, form_id)
    if await service.export_count(session, form, service.parse_status(status)) > DIRECT_EXPORT_LIMIT:
        raise InvalidInput(f"申請が {DIRECT_EXPORT_LIMIT:,} 件を超えるため、すぐには書き出せません。"
                           "申請一覧の「背景で書き出す」を使ってください（できあがると「書き出したファイル」から受け取れます）。")
    header, rows = await service.export_table(session, form, status=service.parse_status(status))
    await audit.record(session, audit.Actor.of_staff(staff), "forms.submission.exported", target_type="form",
                       target_id=form.id, details={"form_title": form.title, "rows": len(rows)})
    await session.commit()
    name = f"{form.title}_申請一覧.{fmt}"
    if fmt == "csv":
        return export.attachment(export.csv_bytes(rows, header), name)
    book = export.workbook()
    sheet = book.active
    sheet.title = "申請一覧"
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    return export.attachment(export.xlsx_bytes(book), name, export.XLSX_MEDIA_TYPE)


@router.post("/t/{lg_code}/forms/{form_id}/submissions/exports", dependencies=[Depends(verify_csrf)])
async def export_submissions_later(form_id: str, request: Request, session: DbSession, staff: SubmissionReader) -> Response:
    """Any number of submissions, written in the background (core/exports) as CSV."""
    form = await service.get_form(session, form_id)
    status = service.parse_status(str((await request.form()).get("status") or "") or None)
    label = f"{form.title}" + (f"・{STATUS_LABELS[status]}" if status else "")
    export, job = await exports_service.request_export(
        session, staff, form_exports.SUBMISSIONS.name, {"form_id": form.id, "status": status.value if status else None},
        description=label)
    await session.commit()
    await exports_service.start(request.app, session, job)
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/exports/{export.id}", status_code=303)


async def _submission_page(request, session, staff, form, submission, *, errors=None, values=None,
                           status=200) -> HTMLResponse:
    version = await service.get_version(session, form.id, submission.version_number)
    return templates.TemplateResponse(request, "forms/submission.html", _ctx(
        staff, form=form, submission=submission, version=version,
        answers=[(f, fieldkit.answer_text(f, submission.answers.get(f["key"]))) for f in version.fields
                 if f["key"] in submission.answers],
        files={u.field_key: u for u in await uploads.files_of(session, submission.id)},
        events=await service.events_of(session, submission.id), members=await service.staff_members(session),
        next_statuses=TRANSITIONS[SubmissionStatus(submission.status)], current=SubmissionStatus(submission.status),
        may_process=staff.can(Permission.forms_submission_process), errors=errors or {}, values=values or {},
        event_kinds=EventKind, verdict=signing.verify_stored(staff.tenant.lg_code, submission)), status_code=status)


@router.get("/t/{lg_code}/forms/{form_id}/submissions/{receipt_no}", response_class=HTMLResponse)
async def submission_page(form_id: str, receipt_no: str, request: Request, session: DbSession,
                          staff: SubmissionReader) -> HTMLResponse:
    form = await service.get_form(session, form_id)
    submission = await service.get_submission(session, form.id, receipt_no)
    return await _submission_page(request, session, staff, form, submission)


@router.get("/t/{lg_code}/forms/{form_id}/submissions/{receipt_no}/files/{upload_id}")
async def attachment(form_id: str, receipt_no: str, upload_id: str, session: DbSession,
                     staff: SubmissionReader) -> Response:
    """An attachment of a submission, as a download (never shown inline), its reading audited."""
    form = await service.get_form(session, form_id)
    submission = await service.get_submission(session, form.id, receipt_no)
    found = await service.read_attachment(session, staff, submission, upload_id)
    await session.commit()
    return Response(found.data, media_type=found.media_type, headers={
        "Content-Disposition": uploads.content_disposition(found.filename), "Cache-Control": "no-store"})


def _to_submission(staff, form, submission) -> RedirectResponse:
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/forms/{form.id}/submissions/{submission.receipt_no}",
                            status_code=303)


@router.post("/t/{lg_code}/forms/{form_id}/submissions/{receipt_no}/status", dependencies=[Depends(verify_csrf)])
async def change_status(form_id: str, receipt_no: str, request: Request, session: DbSession, staff: SubmissionProcessor,
                        status: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "",
                        expected_version: Annotated[int, Form()] = 0) -> Response:
    form = await service.get_form(session, form_id)
    submission = await service.get_submission(session, form.id, receipt_no)
    before = submission.status
    try:
        await service.change_status(session, submission, status, actor=staff.label, note=note,
                                    expected_version=expected_version)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        form = await service.get_form(session, form_id)  # the rollback expired what was loaded
        submission = await service.get_submission(session, form.id, receipt_no)
        errors = _errors_by_field(exc) if exc.errors else {"status": exc.detail}
        return await _submission_page(request, session, staff, form, submission, errors=errors,
                                      values={"status": status, "note": note}, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.submission.status_changed",
                       target_type="form_submission", target_id=submission.id,
                       details={"receipt_no": receipt_no, "form_status": submission.status, "from": before})
    await session.commit()
    return _to_submission(staff, form, submission)


@router.post("/t/{lg_code}/forms/{form_id}/submissions/{receipt_no}/assign", dependencies=[Depends(verify_csrf)])
async def assign(form_id: str, receipt_no: str, request: Request, session: DbSession, staff: SubmissionProcessor,
                 assignee: Annotated[str, Form()] = "", expected_version: Annotated[int, Form()] = 0) -> Response:
    form = await service.get_form(session, form_id)
    submission = await service.get_submission(session, form.id, receipt_no)
    try:
        await service.assign(session, submission, assignee, actor=staff.label, expected_version=expected_version)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        form = await service.get_form(session, form_id)  # the rollback expired what was loaded
        submission = await service.get_submission(session, form.id, receipt_no)
        return await _submission_page(request, session, staff, form, submission,
                                      errors={"assignee": exc.detail}, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.submission.assigned", target_type="form_submission",
                       target_id=submission.id, details={"receipt_no": receipt_no, "name": submission.assignee_name})
    await session.commit()
    return _to_submission(staff, form, submission)


async def _note(form_id, receipt_no, request, session, staff, kind: EventKind, body: str) -> Response:
    form = await service.get_form(session, form_id)
    submission = await service.get_submission(session, form.id, receipt_no)
    try:
        await service.add_note(session, submission, kind, body, actor=staff.label)
    except InvalidInput as exc:
        await session.rollback()
        form = await service.get_form(session, form_id)  # the rollback expired what was loaded
        submission = await service.get_submission(session, form.id, receipt_no)
        return await _submission_page(request, session, staff, form, submission,
                                      errors={kind.value: exc.detail}, values={kind.value: body}, status=exc.status)
    if kind is EventKind.message:
        await audit.record(session, audit.Actor.of_staff(staff), "forms.submission.messaged",
                           target_type="form_submission", target_id=submission.id, details={"receipt_no": receipt_no})
    else:
        await audit.record(session, audit.Actor.of_staff(staff), "forms.submission.commented",
                           target_type="form_submission", target_id=submission.id, details={"receipt_no": receipt_no})
    await session.commit()
    return _to_submission(staff, form, submission)


@router.post("/t/{lg_code}/forms/{form_id}/submissions/{receipt_no}/comments", dependencies=[Depends(verify_csrf)])
async def comment(form_id: str, receipt_no: str, request: Request, session: DbSession, staff: SubmissionProcessor,
                  body: Annotated[str, Form()] = "") -> Response:
    return await _note(form_id, receipt_no, request, session, staff, EventKind.comment, body)


@router.post("/t/{lg_code}/forms/{form_id}/submissions/{receipt_no}/messages", dependencies=[Depends(verify_csrf)])
async def message(form_id: str, receipt_no: str, request: Request, session: DbSession, staff: SubmissionProcessor,
                  body: Annotated[str, Form()] = "") -> Response:
    return await _note(form_id, receipt_no, request, session, staff, EventKind.message, body)


# -- residents --------------------------------------------------------------------------------------

async def _resident_id(request: Request, session) -> str | None:
    """The resident signed in with the My Number Card, if any (answering needs no sign-in)."""
    web_session = await current_web_session(request, session)
    if web_session is None or web_session.stage != "active":
        return None
    principal = await session.get(Principal, web_session.principal_id)
    return principal.id if principal is not None and principal.kind == "resident" else None


async def respondent(request: Request, session: DbSession) -> tuple[Tenant, FormModel, FormVersion]:
    """Anyone may answer a published, open form: the tenant and the form come from the URL
    (404 for a form that is not published here). Writes need the page's CSRF token too."""
    tenant = await tenant_from_path(request.path_params["lg_code"], session)
    form, version = await service.published_form(session, request.path_params["slug"])
    return tenant, form, version


Respondent = Annotated[tuple[Tenant, FormModel, FormVersion], Depends(respondent)]


def _public_ctx(tenant, form, version, **values) -> dict:
    return {"tenant": tenant, "form": form, "version": version, "fields": version.fields,
            "action": f"/f/{tenant.lg_code}/{form.slug}", "input_name": fieldkit.input_name,
            "has_files": any(f["type"] == "file" for f in version.fields), "extra_rows": {},
            "file_size": fieldkit.file_size_text, "accept_text": fieldkit.accept_text,
            "file_accept": lambda f: ",".join(fieldkit.FILE_KINDS[k][1] for k in f.get("accept") or []), **values}


async def _form_page(request, session, tenant, form, version, *, raw=None, problems=None, status=200,
                     notice=None, extra_rows=None) -> HTMLResponse:
    resident = await _resident_id(request, session)
    problems = problems or {}
    ordered = [(f, problems[f["key"]]) for f in version.fields if f["key"] in problems]
    return templates.TemplateResponse(request, "forms/public_form.html", _public_ctx(
        tenant, form, version, raw=raw or {}, problems=problems, ordered_problems=ordered, notice=notice,
        extra_rows=extra_rows or {},
        needs_card=version.identity_required and resident is None,
        card_url=f"/signin/card?next={quote(f'/f/{tenant.lg_code}/{form.slug}')}"), status_code=status)


@router.get("/f/{lg_code}/{slug}", response_class=HTMLResponse, dependencies=[PUBLIC])
async def public_form(lg_code: str, slug: str, request: Request, session: DbSession) -> HTMLResponse:
    tenant = await tenant_from_path(lg_code, session)
    form, version = await service.published_form(session, slug)
    return await _form_page(request, session, tenant, form, version)


def _closed(form: FormModel) -> None:
    if not form.is_open:
        raise InvalidInput("このフォームは現在受付を停止しています。")


# Public writes, by design: anyone may answer a published form (CSRF token from the form page;
# tests/core/test_route_permissions.py names these two as the only public writes besides sign-in).
@router.post("/f/{lg_code}/{slug}/confirm", dependencies=[PUBLIC, Depends(verify_csrf)])
async def public_confirm(request: Request, session: DbSession, answering: Respondent) -> Response:
    tenant, form, version = answering
    _closed(form)
    data = await request.form()
    raw = fieldkit.raw_from_form(version.fields, data)
    lookup = str(data.get("lookup") or "")
    if lookup:  # 「住所を検索」: fill prefecture, city and town from the postal code, then back to the form
        field = next((f for f in version.fields if f["key"] == lookup and f["type"] == "address"), None)
        notice = None
        if field is not None:
            found = fieldkit.lookup_postal(raw[lookup].get("postal", ""))
            if found is None:
                return await _form_page(request, session, tenant, form, version, raw=raw, status=422, problems={
                    lookup: f"「{field['label']}」の郵便番号が見つかりません。7桁の数字で入力してください（例: 491-0858）。"})
            raw[lookup] = fieldkit.fill_address(raw[lookup])
            notice = f"郵便番号から住所を入力しました: {found['prefecture']}{found['city']}{found['town']}"
        return await _form_page(request, session, tenant, form, version, raw=raw, notice=notice)
    # Files chosen are kept now (checked by their content), so the confirmation page can say what
    # will be sent and the resident need not choose them again after fixing another answer.
    raw = await uploads.store(session, form, version.fields, raw)
    await session.commit()
    add_row = str(data.get("add_row") or "")
    if add_row:  # 「行を追加する」 in a repeating group: the same page with one more empty row
        group = next((f for f in version.fields if f["key"] == add_row and f["type"] == "group"), None)
        return await _form_page(request, session, tenant, form, version, raw=raw,
                                extra_rows={add_row: 1} if group else None)
    answers, problems = fieldkit.validate(version.fields, raw)
    if problems:
        return await _form_page(request, session, tenant, form, version, raw=raw, problems=problems, status=422)
    if version.identity_required and await _resident_id(request, session) is None:
        return await _form_page(request, session, tenant, form, version, raw=raw, status=401)
    return _confirm_page(request, tenant, form, version, raw, answers, service.new_form_token())


def _confirm_page(request, tenant, form, version, raw, answers, form_token, *, problem=None, status=200,
                  certificate="", signature="") -> HTMLResponse:
    shown = [(f, fieldkit.answer_text(f, answers[f["key"]])) for f in version.fields if f["key"] in answers]
    to_sign = signing.message(tenant.lg_code, form.id, version.number, answers, form_token) if version.identity_required else None
    return templates.TemplateResponse(request, "forms/public_confirm.html", _public_ctx(
        tenant, form, version, raw=raw, shown=shown, answered=set(answers), form_token=form_token, to_sign=to_sign,
        problem=problem, certificate=certificate, signature=signature), status_code=status)


@router.post("/f/{lg_code}/{slug}/submit", dependencies=[PUBLIC, Depends(verify_csrf)])
async def public_submit(request: Request, session: DbSession, answering: Respondent) -> Response:
    tenant, form, latest = answering
    _closed(form)
    data = await request.form()
    number = str(data.get("version") or "")
    version = await service.get_version(session, form.id, int(number)) if number.isdigit() else None
    version = version or latest
    raw = fieldkit.raw_from_form(version.fields, data)
    raw = await uploads.store(session, form, version.fields, raw)  # the files kept at the confirmation
    if data.get("edit"):
        return await _form_page(request, session, tenant, form, version, raw=raw)
    answers, problems = fieldkit.validate(version.fields, raw)
    if problems:
        return await _form_page(request, session, tenant, form, version, raw=raw, problems=problems, status=422)
    resident = await _resident_id(request, session)
    if version.identity_required and resident is None:
        return await _form_page(request, session, tenant, form, version, raw=raw, status=401)
    token = str(data.get("form_token") or "")
    certificate, signature = str(data.get("certificate") or ""), str(data.get("signature") or "")
    if version.identity_required and await service.submission_by_token(session, token) is None:
        try:
            await signing.check(session, signing.message(tenant.lg_code, form.id, version.number, answers, token),
                                certificate, signature, resident)
        except InvalidInput as exc:
            return _confirm_page(request, tenant, form, version, raw, answers, token, problem=exc.detail, status=422,
                                 certificate=certificate, signature=signature)
    submission, _ = await service.submit(session, tenant, form, version, answers, token, principal_id=resident,
                                         signer_certificate=certificate.strip() or None,
                                         signature=signature.strip() or None)
    await session.commit()
    return RedirectResponse(f"/f/{tenant.lg_code}/{form.slug}/done?token={submission.form_token}", status_code=303)


@router.get("/f/{lg_code}/{slug}/done", response_class=HTMLResponse, dependencies=[PUBLIC])
async def public_done(lg_code: str, slug: str, request: Request, session: DbSession, token: str = "") -> HTMLResponse:
    """The receipt: found by the confirmation's one-time token, which only the applicant holds."""
    tenant = await tenant_from_path(lg_code, session)
    form, _ = await service.published_form(session, slug)
    submission = await service.submission_by_token(session, token) if token else None
    if submission is None or submission.form_id != form.id:
        raise NotFound("受付の記録が見つかりませんでした。")
    version = await service.get_version(session, form.id, submission.version_number)
    return templates.TemplateResponse(request, "forms/public_done.html", _public_ctx(
        tenant, form, version, submission=submission))
