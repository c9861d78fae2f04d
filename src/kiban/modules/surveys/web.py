"""調査・照会 pages under ``/t/{lg_code}/surveys``: the sender writes and sends surveys and sees
progress and aggregates; the respondent answers (on screen with drafts saved as one types, or
through the .xlsx form), has it certified and submits; the prefecture checks relayed answers.
Public results (disclosure-controlled) are at ``/surveys/results``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.audit import service as audit
from kiban.core.identity.dependencies import PUBLIC, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.tenancy.dependencies import DbSession, tenant_from_path
from kiban.kit import export
from kiban.kit.csrf import verify_csrf
from kiban.kit.errors import Conflict, InvalidInput, KibanError
from kiban.kit.templating import templates
from kiban.modules.surveys import questions as qs
from kiban.modules.surveys import service, workbook
from kiban.modules.surveys.models import EVENT_LABELS, STATUS_LABELS

router = APIRouter(include_in_schema=False)
Manager = Annotated[StaffContext, require(Permission.surveys_survey_manage)]
Reader = Annotated[StaffContext, require(Permission.surveys_response_read)]
Writer = Annotated[StaffContext, require(Permission.surveys_response_write)]
Certifier = Annotated[StaffContext, require(Permission.surveys_response_certify)]
Reviewer = Annotated[StaffContext, require(Permission.surveys_relay_review)]


def _ctx(staff: StaffContext | None, **values) -> dict:
    return {"tenant": staff.tenant if staff else None, "staff": staff, "qs": qs, "status_labels": STATUS_LABELS,
            "event_labels": EVENT_LABELS, "question_types": qs.QUESTION_TYPES, "bindings": qs.BINDINGS,
            "target_kinds": service.TARGET_KINDS, "target_types": service.TARGET_TYPES, **values}


def _by_field(exc: KibanError) -> dict[str, str]:
    found: dict[str, str] = {}
    for e in getattr(exc, "errors", None) or []:
        found[e["field"]] = (found.get(e["field"], "") + " " + e["message"]).strip()
    return found


def _int(raw: str) -> int | None:
    return int(raw) if raw.strip().isdigit() else None


# -- the list: received, relayed, written -------------------------------------------------------------

async def _list_page(request, session, staff, *, errors=None, values=None, status=200) -> HTMLResponse:
    may_manage = staff.can(Permission.surveys_survey_manage)
    return templates.TemplateResponse(request, "surveys/list.html", _ctx(
        staff, received=await service.inbox(session),
        relayed=await service.relayed_surveys(session, staff.tenant) if staff.can(Permission.surveys_relay_review) else [],
        written=await service.list_surveys(session) if may_manage else [], may_manage=may_manage,
        prefectures=await service.prefecture_names(session), errors=errors or {}, values=values or {}),
        status_code=status)


@router.get("/t/{lg_code}/surveys", response_class=HTMLResponse)
async def surveys_page(request: Request, session: DbSession, staff: Reader) -> HTMLResponse:
    return await _list_page(request, session, staff)


def _settings(title, description, deadline, minutes, relayed, target_kind, prefectures, types, codes) -> service.Settings:
    return service.Settings(title=title, description=description, deadline=deadline, minutes=minutes,
                            relayed=bool(relayed), target_kind=target_kind, prefectures=prefectures, types=types,
                            codes=codes)


@router.post("/t/{lg_code}/surveys", dependencies=[Depends(verify_csrf)])
async def create_survey(request: Request, session: DbSession, staff: Manager,
                        title: Annotated[str, Form()] = "", description: Annotated[str, Form()] = "",
                        deadline: Annotated[str, Form()] = "", minutes: Annotated[str, Form()] = "30",
                        relayed: Annotated[str, Form()] = "", target_kind: Annotated[str, Form()] = "municipalities",
                        prefectures: Annotated[list[str], Form()] = [],  # noqa: B006
                        types: Annotated[list[str], Form()] = [],  # noqa: B006
                        codes: Annotated[str, Form()] = "") -> Response:
    data = _settings(title, description, deadline, minutes, relayed, target_kind, prefectures, types, codes)
    try:
        survey = await service.create_survey(session, data, actor=staff.label)
    except InvalidInput as exc:
        await session.rollback()
        return await _list_page(request, session, staff, errors=_by_field(exc), values=data.__dict__, status=422)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.survey.created", target_type="survey",
                       target_id=survey.id, details={"survey_title": survey.title})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/surveys/{survey.id}", status_code=303)


# -- authoring -----------------------------------------------------------------------------------------

async def _builder(request, session, staff, survey, *, errors=None, values=None, question_errors=None,
                   question_values=None, rule_errors=None, error=None, status=200) -> HTMLResponse:
    sent = await service.get_version(session, survey, survey.sent_version) if survey.sent_version else None
    changes = qs.changes_between(sent.definition, survey.definition) if sent else []
    if sent and sent.deadline != survey.deadline:
        changes.append(f"回答期限を {sent.deadline} から {survey.deadline} に変更しました。")
    return templates.TemplateResponse(request, "surveys/builder.html", _ctx(
        staff, survey=survey, sent=sent, changes=changes, burden=await service.burden(session, survey),
        unknown_codes=await service.unknown_codes(session, survey),
        duplicates=await service.duplicates(session, survey), prefectures=await service.prefecture_names(session),
        errors=errors or {}, values=values, question_errors=question_errors or [], question_values=question_values or {},
        rule_errors=rule_errors or [], error=error,
        numbers=[q for q in survey.definition.get("questions", []) if q["type"] == "number"],
        conditions=[q for q in survey.definition.get("questions", []) if q["type"] in ("choice", "yesno")]),
        status_code=status)


@router.get("/t/{lg_code}/surveys/{survey_id}", response_class=HTMLResponse)
async def builder_page(survey_id: str, request: Request, session: DbSession, staff: Manager) -> HTMLResponse:
    return await _builder(request, session, staff, await service.get_survey(session, survey_id))


def _back(staff, survey, anchor="") -> RedirectResponse:
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/surveys/{survey.id}{anchor}", status_code=303)


@router.post("/t/{lg_code}/surveys/{survey_id}/settings", dependencies=[Depends(verify_csrf)])
async def save_settings(survey_id: str, request: Request, session: DbSession, staff: Manager,
                        title: Annotated[str, Form()] = "", description: Annotated[str, Form()] = "",
                        deadline: Annotated[str, Form()] = "", minutes: Annotated[str, Form()] = "30",
                        relayed: Annotated[str, Form()] = "", target_kind: Annotated[str, Form()] = "municipalities",
                        prefectures: Annotated[list[str], Form()] = [],  # noqa: B006
                        types: Annotated[list[str], Form()] = [],  # noqa: B006
                        codes: Annotated[str, Form()] = "", expected_version: Annotated[str, Form()] = "") -> Response:
    survey = await service.get_survey(session, survey_id)
    data = _settings(title, description, deadline, minutes, relayed, target_kind, prefectures, types, codes)
    try:
        await service.update_settings(session, survey, data, expected_version=_int(expected_version))
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        survey = await service.get_survey(session, survey_id)
        return await _builder(request, session, staff, survey, errors=_by_field(exc), values=data.__dict__,
                              error=exc.detail, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.survey.updated", target_type="survey",
                       target_id=survey.id, details={"survey_title": survey.title})
    await session.commit()
    return _back(staff, survey, "#settings")


@router.post("/t/{lg_code}/surveys/{survey_id}/questions", dependencies=[Depends(verify_csrf)])
async def add_question(survey_id: str, request: Request, session: DbSession, staff: Manager,
                       type: Annotated[str, Form()] = "", label: Annotated[str, Form()] = "",  # noqa: A002
                       section: Annotated[str, Form()] = "", unit: Annotated[str, Form()] = "",
                       min: Annotated[str, Form()] = "", max: Annotated[str, Form()] = "",  # noqa: A002
                       options: Annotated[str, Form()] = "", columns: Annotated[str, Form()] = "",
                       required: Annotated[str, Form()] = "", binding: Annotated[str, Form()] = "",
                       show_if_q: Annotated[str, Form()] = "", show_if_equals: Annotated[str, Form()] = "",
                       expected_version: Annotated[str, Form()] = "") -> Response:
    survey = await service.get_survey(session, survey_id)
    raw = {"type": type, "label": label, "section": section, "unit": unit, "min": min, "max": max, "options": options,
           "columns": columns, "required": bool(required), "binding": binding, "show_if_q": show_if_q,
           "show_if_equals": show_if_equals}
    try:
        question = await service.add_question(session, survey, raw, expected_version=_int(expected_version))
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        survey = await service.get_survey(session, survey_id)
        return await _builder(request, session, staff, survey, question_values=raw,
                              question_errors=[e["message"] for e in exc.errors] or [exc.detail], status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.survey.updated", target_type="survey",
                       target_id=survey.id, details={"survey_title": survey.title, "label": question["label"]})
    await session.commit()
    return _back(staff, survey, f"#{question['key']}")


@router.post("/t/{lg_code}/surveys/{survey_id}/questions/{key}/delete", dependencies=[Depends(verify_csrf)])
async def delete_question(survey_id: str, key: str, request: Request, session: DbSession, staff: Manager,
                          confirm: Annotated[str, Form()] = "", expected_version: Annotated[str, Form()] = "",
                          duplicate: Annotated[str, Form()] = "") -> Response:
    survey = await service.get_survey(session, survey_id)
    question = next((q for q in survey.definition.get("questions", []) if q["key"] == key), None)
    as_duplicate = duplicate == "1"
    if confirm != "yes" and question is not None:
        repeated = (await service.duplicates(session, survey)).get(key, []) if as_duplicate else []
        return templates.TemplateResponse(request, "surveys/confirm_delete.html",
                                          _ctx(staff, survey=survey, question=question, as_duplicate=as_duplicate,
                                               repeated=repeated))
    try:
        removed = await service.remove_question(session, survey, key, expected_version=_int(expected_version),
                                                as_duplicate=as_duplicate, actor=staff.label)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        survey = await service.get_survey(session, survey_id)
        return await _builder(request, session, staff, survey, error=exc.detail, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff),
                       "surveys.question.avoided" if as_duplicate else "surveys.survey.updated", target_type="survey",
                       target_id=survey.id, details={"survey_title": survey.title, "label": removed["label"]})
    await session.commit()
    return _back(staff, survey, "#questions")


@router.post("/t/{lg_code}/surveys/{survey_id}/rules", dependencies=[Depends(verify_csrf)])
async def add_rule(survey_id: str, request: Request, session: DbSession, staff: Manager,
                   total: Annotated[str, Form()] = "", parts: Annotated[list[str], Form()] = [],  # noqa: B006
                   expected_version: Annotated[str, Form()] = "") -> Response:
    survey = await service.get_survey(session, survey_id)
    try:
        await service.add_rule(session, survey, {"total": total, "parts": parts}, expected_version=_int(expected_version))
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        survey = await service.get_survey(session, survey_id)
        return await _builder(request, session, staff, survey, rule_errors=[e["message"] for e in exc.errors] or [exc.detail],
                              status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.survey.updated", target_type="survey",
                       target_id=survey.id, details={"survey_title": survey.title})
    await session.commit()
    return _back(staff, survey, "#rules")


@router.post("/t/{lg_code}/surveys/{survey_id}/send", dependencies=[Depends(verify_csrf)])
async def send_survey(survey_id: str, request: Request, session: DbSession, staff: Manager,
                      confirm: Annotated[str, Form()] = "", expected_version: Annotated[str, Form()] = "") -> Response:
    survey = await service.get_survey(session, survey_id)
    if confirm != "yes":
        return await _builder(request, session, staff, survey, status=422,
                              error="送付する前に、送付先と負担の見込みを確認したことをチェックしてください。")
    try:
        version = await service.send(session, survey, actor=staff.label, expected_version=_int(expected_version))
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        survey = await service.get_survey(session, survey_id)
        return await _builder(request, session, staff, survey, error=exc.detail, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.survey.sent", target_type="survey",
                       target_id=survey.id, details={"survey_title": survey.title, "survey_version": version.number,
                                                     "count": len(survey.target_codes)})
    from kiban.modules.surveys import reminders

    await reminders.schedule(session, survey)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/surveys/{survey.id}/progress", status_code=303)


# -- progress and aggregates (the sender) ------------------------------------------------------------------

@router.get("/t/{lg_code}/surveys/{survey_id}/progress", response_class=HTMLResponse)
async def progress_page(survey_id: str, request: Request, session: DbSession, staff: Manager) -> HTMLResponse:
    survey = await service.get_survey(session, survey_id)
    if not survey.sent_version:
        return _back(staff, survey)
    version = await service.get_version(session, survey, survey.sent_version)
    rows = await service.progress(session, survey)
    return templates.TemplateResponse(request, "surveys/progress.html", _ctx(
        staff, survey=survey, version=version, progress=rows, aggregates=await service.aggregates(session, survey),
        targets=sum(p.targets for p in rows), delivered=sum(p.delivered for p in rows),
        grid={p.code: p for p in rows}, prefectures=await service.prefecture_names(session),
        responses=await service.responses_of(session, survey) if len(survey.target_codes) <= 200 else None))


@router.get("/t/{lg_code}/surveys/{survey_id}/export.{fmt}")
async def export_answers(survey_id: str, fmt: str, session: DbSession, staff: Manager) -> Response:
    survey = await service.get_survey(session, survey_id)
    if fmt not in ("csv", "xlsx") or not survey.sent_version:
        raise InvalidInput("書き出せるのは送付済みの調査の CSV かエクセルのファイルです。", errors=[{"field": "format", "message": "CSV かエクセルの形式を指定してください。"}])
    version = await service.get_version(session, survey, survey.sent_version)
    header, rows = await service.export_rows(session, survey, version)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.answers.exported", target_type="survey",
                       target_id=survey.id, details={"survey_title": survey.title, "count": len(rows)})
    await session.commit()
    name = f"{survey.title}_回答.{fmt}"
    if fmt == "csv":
        return export.attachment(export.csv_bytes(rows, header), name)
    book = export.workbook()
    sheet = book.active
    sheet.title = "回答"
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    return export.attachment(export.xlsx_bytes(book), name, export.XLSX_MEDIA_TYPE)


@router.post("/t/{lg_code}/surveys/{survey_id}/publish", dependencies=[Depends(verify_csrf)])
async def publish(survey_id: str, session: DbSession, staff: Manager) -> Response:
    survey = await service.get_survey(session, survey_id)
    await service.publish(session, survey)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.survey.published", target_type="survey",
                       target_id=survey.id, details={"survey_title": survey.title})
    await session.commit()
    return RedirectResponse(f"/surveys/results/{staff.tenant.lg_code}/{survey.id}", status_code=303)


@router.get("/t/{lg_code}/surveys/{survey_id}/responses/{respondent_code}", response_class=HTMLResponse)
async def sender_response(survey_id: str, respondent_code: str, request: Request, session: DbSession,
                          staff: Manager) -> HTMLResponse:
    survey = await service.get_survey(session, survey_id)
    item, org = await service.delivered_response(session, survey, respondent_code)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.response.read", target_type="survey_response",
                       target_id=item.response.id, details={"survey_title": survey.title, "organization": org.name})
    await session.commit()
    return templates.TemplateResponse(request, "surveys/review.html", _ctx(
        staff, item=item, org=org, survey=survey, events=[], may_review=False,
        back=f"/t/{staff.tenant.lg_code}/surveys/{survey.id}/progress"))


# -- answering (the respondent) ---------------------------------------------------------------------------

async def _answer_page(request, session, staff, item, *, errors=None, error=None, upload_errors=None,
                       status=200, notice=None) -> HTMLResponse:
    found = errors if errors is not None else service.problems(item)
    return templates.TemplateResponse(request, "surveys/answer.html", _ctx(
        staff, item=item, r=item.response, definition=item.definition, errors=_by_field_list(found),
        error_list=found, error=error, upload_errors=upload_errors or [], notice=notice,
        changes=await service.changes_since_seen(session, item), events=await service.events(session, item.response.id),
        may_write=staff.can(Permission.surveys_response_write),
        may_certify=staff.can(Permission.surveys_response_certify)), status_code=status)


def _by_field_list(found: list[dict]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in found:
        out[e["field"]] = (out.get(e["field"], "") + " " + e["message"]).strip()
    return out


@router.get("/t/{lg_code}/surveys/responses/{response_id}", response_class=HTMLResponse)
async def answer_page(response_id: str, request: Request, session: DbSession, staff: Reader) -> HTMLResponse:
    return await _answer_page(request, session, staff, await service.own_response(session, response_id))


async def _form_answers(request: Request, definition: dict) -> tuple[dict, dict]:
    form = await request.form()
    answers: dict = {}
    reasons: dict = {}
    for q in definition.get("questions", []):
        key = q["key"]
        if q["type"] == "multi":
            if f"{key}__present" in form:
                answers[key] = form.getlist(key)
        elif q["type"] == "table":
            if f"{key}__rows" in form:
                rows = []
                for i in range(int(form.get(f"{key}__rows") or 0)):
                    rows.append({c["key"]: str(form.get(f"{key}.{i}.{c['key']}", "")) for c in q["columns"]})
                answers[key] = rows
        elif key in form:
            answers[key] = str(form.get(key))
        if f"reason_{key}" in form:
            reasons[key] = str(form.get(f"reason_{key}"))
    return answers, reasons


@router.post("/t/{lg_code}/surveys/responses/{response_id}/answers", dependencies=[Depends(verify_csrf)])
async def save_answers(response_id: str, request: Request, session: DbSession, staff: Writer) -> Response:
    item = await service.own_response(session, response_id)
    answers, reasons = await _form_answers(request, item.definition)
    form = await request.form()
    autosave = request.headers.get("hx-request") == "true"
    try:
        found = await service.save_answers(session, item, answers, reasons=reasons, actor=staff.label,
                                           expected_version=_int(str(form.get("expected_version", ""))),
                                           kind="autosave" if autosave else "saved",
                                           contact_email=str(form["contact_email"]) if "contact_email" in form else None)
    except (Conflict, InvalidInput) as exc:
        await session.rollback()
        if autosave:
            return templates.TemplateResponse(request, "surveys/_autosave.html", _ctx(
                staff, r=None, error=exc.detail, found=[]), status_code=exc.status)
        item = await service.own_response(session, response_id)
        return await _answer_page(request, session, staff, item, error=exc.detail, status=exc.status)
    if not autosave:
        await audit.record(session, audit.Actor.of_staff(staff), "surveys.response.saved", target_type="survey_response",
                           target_id=item.response.id, details={"survey_title": item.version.title})
    await session.commit()
    if autosave:
        return templates.TemplateResponse(request, "surveys/_autosave.html", _ctx(staff, r=item.response, error=None,
                                                                                  found=found))
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/surveys/responses/{response_id}?saved=1", status_code=303)


@router.get("/t/{lg_code}/surveys/responses/{response_id}/form.xlsx")
async def download_form(response_id: str, session: DbSession, staff: Reader) -> Response:
    item = await service.own_response(session, response_id)
    r = item.response
    content = workbook.form_bytes(title=item.version.title, organization=staff.tenant.name, deadline=item.version.deadline,
                                  version=item.version.number, response_id=r.id, definition=item.definition,
                                  answers=r.answers, prefill=r.prefill, reasons=r.reasons)
    return export.attachment(content, f"{item.version.title}_{staff.tenant.name}.xlsx", export.XLSX_MEDIA_TYPE)


@router.post("/t/{lg_code}/surveys/responses/{response_id}/upload", dependencies=[Depends(verify_csrf)])
async def upload_form(response_id: str, request: Request, session: DbSession, staff: Writer,
                      file: Annotated[UploadFile | None, File()] = None,
                      expected_version: Annotated[str, Form()] = "") -> Response:
    item = await service.own_response(session, response_id)
    content = await file.read() if file is not None else b""
    try:
        answers, reasons = workbook.read(content, response_id=item.response.id, definition=item.definition,
                                         prefill=item.response.prefill)
        await service.save_answers(session, item, answers, reasons=reasons, actor=staff.label,
                                   expected_version=_int(expected_version), kind="uploaded")
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        item = await service.own_response(session, response_id)
        return await _answer_page(request, session, staff, item, error=exc.detail,
                                  upload_errors=[e["message"] for e in exc.errors], status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.response.uploaded", target_type="survey_response",
                       target_id=item.response.id, details={"survey_title": item.version.title})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/surveys/responses/{response_id}?uploaded=1", status_code=303)


async def _respondent_action(request, session, staff, response_id, action, audit_action, **kwargs) -> Response:
    item = await service.own_response(session, response_id)
    form = await request.form()
    try:
        await action(session, item, actor=staff.label, expected_version=_int(str(form.get("expected_version", ""))),
                     **{k: str(form.get(k, "")) for k in kwargs})
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        item = await service.own_response(session, response_id)
        return await _answer_page(request, session, staff, item, error=exc.detail, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), audit_action, target_type="survey_response",
                       target_id=item.response.id, details={"survey_title": item.version.title})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/surveys/responses/{response_id}", status_code=303)


@router.post("/t/{lg_code}/surveys/responses/{response_id}/certify", dependencies=[Depends(verify_csrf)])
async def certify(response_id: str, request: Request, session: DbSession, staff: Certifier) -> Response:
    return await _respondent_action(request, session, staff, response_id, service.certify, "surveys.response.certified")


@router.post("/t/{lg_code}/surveys/responses/{response_id}/submit", dependencies=[Depends(verify_csrf)])
async def submit(response_id: str, request: Request, session: DbSession, staff: Writer) -> Response:
    return await _respondent_action(request, session, staff, response_id, service.submit, "surveys.response.submitted")


@router.post("/t/{lg_code}/surveys/responses/{response_id}/reopen", dependencies=[Depends(verify_csrf)])
async def reopen(response_id: str, request: Request, session: DbSession, staff: Writer) -> Response:
    return await _respondent_action(request, session, staff, response_id, service.reopen, "surveys.response.reopened",
                                    reason=True)


# -- the relay (the prefecture) ----------------------------------------------------------------------------

@router.get("/t/{lg_code}/surveys/relay/{survey_lg_code}/{survey_id}", response_class=HTMLResponse)
async def relay_page(survey_lg_code: str, survey_id: str, request: Request, session: DbSession,
                     staff: Reviewer) -> HTMLResponse:
    survey, version, rows = await service.relayed_survey(session, staff.tenant, survey_lg_code, survey_id)
    return templates.TemplateResponse(request, "surveys/relay.html", _ctx(
        staff, survey=survey, version=version, rows=rows, error=None))


@router.get("/t/{lg_code}/surveys/relay/responses/{respondent_code}/{response_id}", response_class=HTMLResponse)
async def relay_response_page(respondent_code: str, response_id: str, request: Request, session: DbSession,
                              staff: Reviewer) -> HTMLResponse:
    item, org = await service.relayed_response(session, staff.tenant, respondent_code, response_id)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.response.read", target_type="survey_response",
                       target_id=response_id, details={"survey_title": item.version.title, "organization": org.name})
    async with service.unscoped(session, service.RELAY_REASON):
        history = await service.events(session, response_id)
    await session.commit()
    return templates.TemplateResponse(request, "surveys/review.html", _ctx(
        staff, item=item, org=org, survey=item.survey, events=history, may_review=True,
        back=f"/t/{staff.tenant.lg_code}/surveys/relay/{item.survey.lg_code}/{item.survey.id}"))


async def _relay_action(request, session, staff, respondent_code, response_id, action, audit_action) -> Response:
    item, org = await service.relayed_response(session, staff.tenant, respondent_code, response_id)
    form = await request.form()
    try:
        await action(session, item, actor=staff.label, comment=str(form.get("comment", "")),
                     expected_version=_int(str(form.get("expected_version", ""))))
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        item, org = await service.relayed_response(session, staff.tenant, respondent_code, response_id)
        return templates.TemplateResponse(request, "surveys/review.html", _ctx(
            staff, item=item, org=org, survey=item.survey, events=[], may_review=True, error=exc.detail,
            back=f"/t/{staff.tenant.lg_code}/surveys/relay/{item.survey.lg_code}/{item.survey.id}"),
            status_code=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), audit_action, target_type="survey_response",
                       target_id=response_id, details={"survey_title": item.version.title, "organization": org.name})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/surveys/relay/{item.survey.lg_code}/{item.survey.id}",
                            status_code=303)


@router.post("/t/{lg_code}/surveys/relay/responses/{respondent_code}/{response_id}/return",
             dependencies=[Depends(verify_csrf)])
async def relay_return(respondent_code: str, response_id: str, request: Request, session: DbSession,
                       staff: Reviewer) -> Response:
    return await _relay_action(request, session, staff, respondent_code, response_id, service.send_back,
                               "surveys.response.returned")


@router.post("/t/{lg_code}/surveys/relay/responses/{respondent_code}/{response_id}/approve",
             dependencies=[Depends(verify_csrf)])
async def relay_approve(respondent_code: str, response_id: str, request: Request, session: DbSession,
                        staff: Reviewer) -> Response:
    return await _relay_action(request, session, staff, respondent_code, response_id, service.approve,
                               "surveys.response.approved")


@router.post("/t/{lg_code}/surveys/relay/{survey_lg_code}/{survey_id}/forward", dependencies=[Depends(verify_csrf)])
async def relay_forward(survey_lg_code: str, survey_id: str, request: Request, session: DbSession,
                        staff: Reviewer) -> Response:
    survey, version, rows = await service.relayed_survey(session, staff.tenant, survey_lg_code, survey_id)
    try:
        count = await service.forward(session, staff.tenant, survey, version, actor=staff.label)
    except InvalidInput as exc:
        await session.rollback()
        survey, version, rows = await service.relayed_survey(session, staff.tenant, survey_lg_code, survey_id)
        return templates.TemplateResponse(request, "surveys/relay.html", _ctx(
            staff, survey=survey, version=version, rows=rows, error=exc.detail), status_code=422)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.relay.forwarded", target_type="survey",
                       target_id=survey.id, details={"survey_title": survey.title, "count": count})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/surveys/relay/{survey_lg_code}/{survey_id}?forwarded={count}",
                            status_code=303)


# -- public results ---------------------------------------------------------------------------------------

public_router = APIRouter(include_in_schema=False, dependencies=[PUBLIC])


@public_router.get("/surveys/results", response_class=HTMLResponse)
async def results_list(request: Request, session: DbSession) -> HTMLResponse:
    from kiban.core.tenancy.context import unscoped

    async with unscoped(session, "公表済みの調査結果の一覧（オープンデータ）"):
        from sqlalchemy import select

        from kiban.modules.surveys.models import Survey

        rows = (await session.scalars(select(Survey).where(Survey.published_at.is_not(None))
                                      .order_by(Survey.published_at.desc()).limit(200))).all()
    names = await service.prefecture_names(session)
    from kiban.core.registry.service import organizations_by_code

    orgs = await organizations_by_code(session, list({s.lg_code for s in rows}))
    return templates.TemplateResponse(request, "surveys/results_list.html", _ctx(
        None, surveys=rows, orgs=orgs, prefectures=names))


@public_router.get("/surveys/results/{lg_code}/{survey_id}", response_class=HTMLResponse)
async def results_page(lg_code: str, survey_id: str, request: Request, session: DbSession,
                       q: str | None = None) -> HTMLResponse:
    sender = await tenant_from_path(lg_code, session)
    survey, version = await service.published(session, survey_id)
    numbers = [x for x in version.definition.get("questions", []) if x["type"] == "number"]
    chosen = next((x for x in numbers if x["key"] == q), numbers[0] if numbers else None)
    table = await service.public_table(session, survey, chosen["key"]) if chosen else None
    return templates.TemplateResponse(request, "surveys/results.html", _ctx(
        None, sender=sender, survey=survey, version=version, numbers=numbers, chosen=chosen, table=table,
        prefectures=await service.prefecture_names(session)))
