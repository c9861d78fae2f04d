"""共通化の進め方の画面. Public: /governance (candidates compared, decisions, minutes, rollout, open
data). A body's staff: /t/{lg_code}/governance (its needs, endorsing, its rollout year and fee).
The secretariat (デジタル庁 only): grouping, assessment, council, decisions, rollout plans.
JSON twins: api.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.audit import service as audit
from kiban.core.identity.dependencies import PUBLIC, StaffContext, current_web_session, require
from kiban.core.identity.permissions import Permission
from kiban.core.tenancy.dependencies import DbSession
from kiban.kit import export
from kiban.kit.csrf import verify_csrf
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.kit.templating import templates
from kiban.modules.catalog import service as catalog
from kiban.modules.catalog.models import BurdenCategory, Lifecycle, Pattern
from kiban.modules.governance import service

router = APIRouter(include_in_schema=False)
NeedReader = Annotated[StaffContext, require(Permission.governance_need_read)]
NeedWriter = Annotated[StaffContext, require(Permission.governance_need_write)]
Secretariat = Annotated[StaffContext, require(Permission.governance_process_manage)]
Commenter = Annotated[StaffContext, require(Permission.governance_comment_write)]
CSRF = [Depends(verify_csrf)]
LABELS = {"confidential_fields": service.CONFIDENTIAL_FIELDS, "outcomes": service.OUTCOMES,
          "member_kinds": service.MEMBER_KINDS, "status_labels": service.STATUS_LABELS,
          "patterns": list(Pattern), "burdens": list(BurdenCategory), "lifecycles": list(Lifecycle),
          "sort_keys": service.SORT_KEYS, "rule": service.CONFIDENTIALITY_RULE, "secretariat": service.SECRETARIAT}


def _page(request: Request, name: str, context: dict, status: int = 200) -> HTMLResponse:
    errs: dict[str, list[str]] = {}
    for e in context.get("errors") or []:
        errs.setdefault(e["field"], []).append(e["message"])
    return templates.TemplateResponse(request, f"governance/{name}", {**LABELS, "errs": errs, **context},
                                      status_code=status)


async def _form(request: Request) -> dict:
    submitted = await request.form()
    out: dict = {}
    for key in submitted.keys():
        if key == "csrf_token":
            continue
        values = submitted.getlist(key)
        out[key] = values if key in ("confidential", "agenda") else str(values[-1])
    return out


def _confirmed(form: dict, message: str) -> None:
    """Irreversible steps (a decision, a merge) ask for an explicit tick on the form."""
    if form.get("confirm") != "1":
        raise InvalidInput(message, errors=[{"field": "confirm", "message": message}])


def secretariat_only(staff: StaffContext) -> None:
    """The secretariat's pages act only at デジタル庁; anywhere else they do not exist (404)."""
    if staff.tenant.lg_code != service.SECRETARIAT:
        raise NotFound("ページが見つかりません。")


async def _viewer(request: Request, session) -> str | None:
    web_session = await current_web_session(request, session)
    if web_session is None or web_session.stage != "active":
        return None
    return web_session.acting_lg_code


def _base(lg_code: str) -> str:
    return f"/t/{lg_code}/governance"


# -- public ------------------------------------------------------------------------------------------------

@router.get("/governance", response_class=HTMLResponse, dependencies=[PUBLIC])
async def overview(request: Request, session: DbSession, sort: str = "population", order: str = "desc") -> HTMLResponse:
    compared = await service.compare(session, None, sort, order != "asc")
    plans = [(p, (await catalog.get_service(session, p.service_id)).name) for p in await service.plans(session)]
    return _page(request, "overview.html", {"compared": compared, "sort": sort, "order": order,
                                            "meetings": await service.meetings(session), "plans": plans})


@router.get("/governance/needs", response_class=HTMLResponse, dependencies=[PUBLIC])
async def public_needs(request: Request, session: DbSession) -> HTMLResponse:
    return _page(request, "public_needs.html", {"views": await service.group_views(session), "figures": service.figures,
                                                "viewer": None})


@router.get("/governance/candidates/{candidate_id}", response_class=HTMLResponse, dependencies=[PUBLIC])
async def public_candidate(candidate_id: str, request: Request, session: DbSession) -> HTMLResponse:
    candidate = await service.get_candidate(session, candidate_id)
    return _page(request, "candidate.html", {
        "questions": await service.questions_of(session, candidate.id), "answers": [],
        "a": await service.assess(session, candidate, None), "tasks": await service.tasks_of(session, candidate.id),
        "survey": await _survey_of(session, candidate.id),
        "decisions": await service.decisions(session, candidate_id=candidate.id), "manage": False,
        "meetings": {m.id: m for m in await service.meetings(session)}})


@router.get("/governance/meetings/{meeting_id}", response_class=HTMLResponse, dependencies=[PUBLIC])
async def public_meeting(meeting_id: str, request: Request, session: DbSession) -> HTMLResponse:
    return await _meeting_page(request, session, meeting_id, None)


async def _meeting_page(request, session, meeting_id, staff, *, errors=(), error=None, form=None, status=200):
    meeting = await service.get_meeting(session, meeting_id)
    candidates = {c.id: c for c in await service.list_candidates(session)}
    return _page(request, "meeting.html", {
        "meeting": meeting, "candidates": candidates, "agenda": [candidates[c] for c in meeting.agenda if c in candidates],
        "decisions": await service.decisions(session, meeting_id=meeting.id),
        "comments": await service.comments_of(session, meeting.id), "staff": staff,
        "tenant": staff.tenant if staff else None, "errors": list(errors), "error": error, "form": form or {},
        "all_candidates": list(candidates.values())}, status)


@router.get("/governance/rollout/{service_id}", response_class=HTMLResponse, dependencies=[PUBLIC])
async def public_rollout(service_id: str, request: Request, session: DbSession) -> HTMLResponse:
    plan = await service.get_plan(session, service_id)
    rows = await service.rollout_rows(session, plan)
    return _page(request, "rollout.html", {"p": await service.progress(session, plan, rows), "rows": rows,
                                           "manage": False})


@router.get("/governance/data/{name}.csv", dependencies=[PUBLIC])
async def open_data(name: str, session: DbSession) -> Response:
    from kiban.modules.governance import opendata

    if name not in opendata.DATASETS:
        raise NotFound("お探しのオープンデータはありません。needs・candidates・decisions のいずれかです。")
    header, rows = await opendata.DATASETS[name](session)
    return export.attachment(export.csv_bytes(rows, header), f"governance_{name}.csv")


# -- a body's own pages -----------------------------------------------------------------------------------

@router.get("/t/{lg_code}/governance", response_class=HTMLResponse)
async def my_page(request: Request, session: DbSession, staff: NeedReader) -> HTMLResponse:
    notice = {"submitted": "課題を提出しました。似た課題のグループに入りました。", "endorsed": "賛同を登録しました。",
              "commented": "事前の意見を送りました。", "answered": "回答を送りました。"}.get(request.query_params.get("done", ""))
    views = await service.group_views(session)
    upcoming = [m for m in await service.meetings(session) if m.minutes_published_at is None]
    return _page(request, "mine.html", {
        "tenant": staff.tenant, "staff": staff, "needs": await service.needs_of_tenant(session),
        "endorsements": await service.endorsements_of_tenant(session), "views": views, "notice": notice,
        "rollout": await service.my_rollout(session, staff.tenant.lg_code),
        "council_body": await service.is_council_body(session, staff.tenant.lg_code), "upcoming": upcoming,
        "candidates": {c.id: c for c in await service.list_candidates(session)},
        "questions": await service.questions_for_body(session, staff.tenant.lg_code),
        "can_write": staff.can(Permission.governance_need_write),
        "is_secretariat": staff.tenant.lg_code == service.SECRETARIAT})


@router.get("/t/{lg_code}/governance/needs/new", response_class=HTMLResponse)
async def new_need(request: Request, staff: NeedWriter) -> HTMLResponse:
    return _page(request, "need_new.html", {"tenant": staff.tenant, "form": {}, "errors": []})


@router.post("/t/{lg_code}/governance/needs", dependencies=CSRF)
async def submit_need(request: Request, session: DbSession, staff: NeedWriter) -> Response:
    form = await _form(request)
    try:
        values = service.parse_need(form)
    except InvalidInput as exc:
        return _page(request, "need_new.html", {"tenant": staff.tenant, "form": form, "errors": exc.errors,
                                                "error": exc.detail}, 422)
    need = await service.submit_need(session, staff.label, values)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.need.submitted", target_type="governance_need",
                       target_id=need.id, details={"title": need.title, "confidential": need.confidential})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/needs/{need.lg_code}/{need.id}?done=submitted", status_code=303)


async def _need_page(request, session, staff, need_lg_code, need_id, *, form=None, errors=(), error=None, status=200):
    need = await service.get_need(session, need_lg_code, need_id)
    group_id = await service.group_of_need(session, need)
    (view,) = await service.group_views(session, [group_id]) if group_id else [None]
    endorsements = await service.endorsements_of(session, [(need.lg_code, need.id)])
    mine = next((e for e in endorsements if e.lg_code == staff.tenant.lg_code), None)
    notice = {"submitted": "課題を提出しました。", "endorsed": "賛同を登録しました。"}.get(request.query_params.get("done", ""))
    return _page(request, "need.html", {
        "tenant": staff.tenant, "need": need, "view": view, "endorsements": endorsements, "mine": mine,
        "figures": service.figures, "viewer": staff.tenant.lg_code, "form": form or {}, "errors": list(errors),
        "error": error, "notice": notice, "can_write": staff.can(Permission.governance_need_write)}, status)


@router.get("/t/{lg_code}/governance/needs/{need_lg_code}/{need_id}", response_class=HTMLResponse)
async def need_page(need_lg_code: str, need_id: str, request: Request, session: DbSession, staff: NeedReader) -> HTMLResponse:
    return await _need_page(request, session, staff, need_lg_code, need_id)


@router.post("/t/{lg_code}/governance/needs/{need_lg_code}/{need_id}/endorse", dependencies=CSRF)
async def endorse(need_lg_code: str, need_id: str, request: Request, session: DbSession, staff: NeedWriter) -> Response:
    form = await _form(request)
    try:
        values = service.parse_endorsement(form)
        row, created = await service.endorse(session, staff.tenant, need_lg_code, need_id, staff.label, values)
    except InvalidInput as exc:
        await session.rollback()
        return await _need_page(request, session, staff, need_lg_code, need_id, form=form, errors=exc.errors,
                                error=exc.detail, status=422)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.need.endorsed", target_type="governance_need",
                       target_id=need_id, details={"need_of": need_lg_code, "created": created})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/needs/{need_lg_code}/{need_id}?done=endorsed", status_code=303)


@router.post("/t/{lg_code}/governance/questions/{question_id}/answer", dependencies=CSRF)
async def answer(question_id: str, request: Request, session: DbSession, staff: NeedWriter) -> Response:
    form = await _form(request)
    try:
        await service.answer(session, staff.tenant, question_id, form.get("answer", ""), staff.label)
    except InvalidInput as exc:
        await session.rollback()
        return _page(request, "message.html", {"tenant": staff.tenant, "title": "回答を送れませんでした",
                                               "message": exc.detail, "back": _base(staff.tenant.lg_code)}, exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.question.answered",
                       target_type="governance_candidate", target_id=question_id)
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}?done=answered", status_code=303)


@router.post("/t/{lg_code}/governance/meetings/{meeting_id}/comments", dependencies=CSRF)
async def comment(meeting_id: str, request: Request, session: DbSession, staff: Commenter) -> Response:
    form = await _form(request)
    try:
        await service.add_comment(session, meeting_id, form.get("candidate_id") or None, form.get("text", ""),
                                  staff.tenant.name, staff.tenant.lg_code)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        return _page(request, "message.html", {"tenant": staff.tenant, "title": "意見を送れませんでした",
                                               "message": exc.detail, "back": _base(staff.tenant.lg_code)}, exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.meeting.commented",
                       target_type="governance_meeting", target_id=meeting_id)
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}?done=commented", status_code=303)


# -- the secretariat ------------------------------------------------------------------------------------------

async def _groups_page(request, session, staff, *, error=None, status=200):
    return _page(request, "groups.html", {"tenant": staff.tenant, "views": await service.group_views(session),
                                          "error": error, "figures": service.figures, "viewer": staff.tenant.lg_code,
                                          "notice": {"merged": "グループを統合しました。", "split": "課題を切り離しました。"}
                                          .get(request.query_params.get("done", ""))}, status)


@router.get("/t/{lg_code}/governance/groups", response_class=HTMLResponse)
async def groups_page(request: Request, session: DbSession, staff: Secretariat) -> HTMLResponse:
    secretariat_only(staff)
    return await _groups_page(request, session, staff)


@router.post("/t/{lg_code}/governance/groups/{group_id}/merge", dependencies=CSRF)
async def merge(group_id: str, request: Request, session: DbSession, staff: Secretariat) -> Response:
    secretariat_only(staff)
    form = await _form(request)
    try:
        _confirmed(form, "統合してよいか確認のうえ、「統合を確認しました」に印を付けてください。")
        target = await service.merge_groups(session, group_id, form.get("into", ""))
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        return await _groups_page(request, session, staff, error=exc.detail, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.group.merged", target_type="governance_need_group",
                       target_id=target.id, details={"from": group_id})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/groups?done=merged", status_code=303)


@router.post("/t/{lg_code}/governance/groups/{group_id}/split", dependencies=CSRF)
async def split(group_id: str, request: Request, session: DbSession, staff: Secretariat) -> Response:
    secretariat_only(staff)
    form = await _form(request)
    need_lg_code, _, need_id = form.get("need", "").partition("/")
    try:
        group = await service.split_need(session, group_id, need_lg_code, need_id)
    except InvalidInput as exc:
        await session.rollback()
        return await _groups_page(request, session, staff, error=exc.detail, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.group.split", target_type="governance_need_group",
                       target_id=group.id, details={"from": group_id})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/groups?done=split", status_code=303)


@router.post("/t/{lg_code}/governance/groups/{group_id}/candidate", dependencies=CSRF)
async def make_candidate(group_id: str, request: Request, session: DbSession, staff: Secretariat) -> Response:
    secretariat_only(staff)
    form = await _form(request)
    try:
        candidate, created = await service.create_candidate(session, group_id, form.get("name", ""), staff.label)
    except InvalidInput as exc:
        await session.rollback()
        return await _groups_page(request, session, staff, error=exc.detail, status=exc.status)
    if created:
        await audit.record(session, audit.Actor.of_staff(staff), "governance.candidate.created",
                           target_type="governance_candidate", target_id=candidate.id, details={"title": candidate.name})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/candidates/{candidate.id}", status_code=303)


async def _survey_of(session, candidate_id: str):
    """(the linking task, the survey in modules/surveys) once the feasibility survey is started."""
    found = await service.feasibility_survey_status(session, candidate_id)
    if found is None:
        return None
    task, survey = found
    return {"task": task, "survey": survey, "url": task.document_url, "lg_code": service.SECRETARIAT}


async def _candidate_page(request, session, staff, candidate_id, *, form=None, errors=(), error=None, status=200,
                          section=None):
    candidate = await service.get_candidate(session, candidate_id)
    questions = await service.questions_of(session, candidate.id)
    return _page(request, "candidate.html", {
        "survey": await _survey_of(session, candidate.id),
        "questions": questions, "answers": await service.answers_to(session, [q.id for q in questions]),
        "tenant": staff.tenant, "a": await service.assess(session, candidate, staff.tenant.lg_code),
        "tasks": await service.tasks_of(session, candidate.id), "manage": True, "form": form, "errors": list(errors),
        "error": error, "section": section, "services": await catalog.list_services(session),
        "decisions": await service.decisions(session, candidate_id=candidate.id),
        "meetings": {m.id: m for m in await service.meetings(session)},
        "notice": {"saved": "評価を保存しました。", "task": "作業を追加しました。", "question": "質問を追加しました。",
                   "survey": "アンケートの下書きを調査・照会に作りました。質問を確かめてから送付してください。"}.get(
                       request.query_params.get("done", ""))},
        status)


@router.get("/t/{lg_code}/governance/candidates/{candidate_id}", response_class=HTMLResponse)
async def candidate_page(candidate_id: str, request: Request, session: DbSession, staff: Secretariat) -> HTMLResponse:
    secretariat_only(staff)
    return await _candidate_page(request, session, staff, candidate_id)


@router.post("/t/{lg_code}/governance/candidates/{candidate_id}", dependencies=CSRF)
async def save_assessment(candidate_id: str, request: Request, session: DbSession, staff: Secretariat) -> Response:
    secretariat_only(staff)
    form = await _form(request)
    try:
        candidate = await service.save_assessment(session, candidate_id, form, staff.label)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        return await _candidate_page(request, session, staff, candidate_id, form=form, errors=exc.errors,
                                     error=exc.detail, status=exc.status, section="assessment")
    await audit.record(session, audit.Actor.of_staff(staff), "governance.candidate.assessed",
                       target_type="governance_candidate", target_id=candidate.id, details={"version": candidate.version})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/candidates/{candidate.id}?done=saved", status_code=303)


@router.post("/t/{lg_code}/governance/candidates/{candidate_id}/tasks", dependencies=CSRF)
async def add_task(candidate_id: str, request: Request, session: DbSession, staff: Secretariat) -> Response:
    secretariat_only(staff)
    form = await _form(request)
    try:
        task = await service.add_task(session, candidate_id, form)
    except InvalidInput as exc:
        await session.rollback()
        return await _candidate_page(request, session, staff, candidate_id, form=form, errors=exc.errors,
                                     error=exc.detail, status=exc.status, section="tasks")
    await audit.record(session, audit.Actor.of_staff(staff), "governance.task.added", target_type="governance_candidate",
                       target_id=candidate_id, details={"title": task.title})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/candidates/{candidate_id}?done=task", status_code=303)


@router.post("/t/{lg_code}/governance/candidates/{candidate_id}/survey", dependencies=CSRF)
async def start_survey(candidate_id: str, request: Request, session: DbSession, staff: Secretariat) -> Response:
    """The feasibility survey to the bodies behind the candidate, started in modules/surveys."""
    secretariat_only(staff)
    form = await _form(request)
    try:
        task, survey, created = await service.start_survey(session, candidate_id, form, staff.label,
                                                           f"{staff.tenant.name}（事務局）")
    except InvalidInput as exc:
        await session.rollback()
        return await _candidate_page(request, session, staff, candidate_id, form=form, errors=exc.errors,
                                     error=exc.detail, status=exc.status, section="survey")
    if created:
        await _audit_survey(session, staff, candidate_id, survey)
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/candidates/{candidate_id}?done=survey#survey", status_code=303)


async def _audit_survey(session, staff: StaffContext, candidate_id: str, survey) -> None:
    actor = audit.Actor.of_staff(staff)
    await audit.record(session, actor, "surveys.survey.created", target_type="survey", target_id=survey.id,
                       details={"survey_title": survey.title})
    await audit.record(session, actor, "governance.survey.started", target_type="governance_candidate",
                       target_id=candidate_id, details={"survey": survey.id, "targets": len(survey.target["codes"])})


@router.post("/t/{lg_code}/governance/candidates/{candidate_id}/questions", dependencies=CSRF)
async def add_question(candidate_id: str, request: Request, session: DbSession, staff: Secretariat) -> Response:
    secretariat_only(staff)
    form = await _form(request)
    try:
        question = await service.add_question(session, candidate_id, form.get("question", ""))
    except InvalidInput as exc:
        await session.rollback()
        return await _candidate_page(request, session, staff, candidate_id, form=form, errors=exc.errors,
                                     error=exc.detail, status=exc.status, section="questions")
    await audit.record(session, audit.Actor.of_staff(staff), "governance.question.added",
                       target_type="governance_candidate", target_id=candidate_id, details={"question": question.id})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/candidates/{candidate_id}?done=question", status_code=303)


async def _council_page(request, session, staff, *, form=None, errors=(), error=None, status=200):
    return _page(request, "council.html", {
        "tenant": staff.tenant, "members": await service.members(session), "meetings": await service.meetings(session),
        "candidates": await service.list_candidates(session), "form": form or {}, "errors": list(errors),
        "error": error}, status)


@router.get("/t/{lg_code}/governance/council", response_class=HTMLResponse)
async def council_page(request: Request, session: DbSession, staff: Secretariat) -> HTMLResponse:
    secretariat_only(staff)
    return await _council_page(request, session, staff)


@router.post("/t/{lg_code}/governance/council/members", dependencies=CSRF)
async def add_member(request: Request, session: DbSession, staff: Secretariat) -> Response:
    secretariat_only(staff)
    form = await _form(request)
    try:
        member = await service.add_member(session, form)
    except InvalidInput as exc:
        await session.rollback()
        return await _council_page(request, session, staff, form=form, errors=exc.errors, error=exc.detail, status=422)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.council.member_added",
                       target_type="governance_council_member", target_id=member.id, details={"body": member.body})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/council", status_code=303)


@router.post("/t/{lg_code}/governance/council/meetings", dependencies=CSRF)
async def create_meeting(request: Request, session: DbSession, staff: Secretariat) -> Response:
    secretariat_only(staff)
    form = await _form(request)
    try:
        meeting = await service.create_meeting(session, form)
    except InvalidInput as exc:
        await session.rollback()
        return await _council_page(request, session, staff, form=form, errors=exc.errors, error=exc.detail, status=422)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.meeting.created",
                       target_type="governance_meeting", target_id=meeting.id, details={"title": meeting.title})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/meetings/{meeting.id}", status_code=303)


@router.get("/t/{lg_code}/governance/meetings/{meeting_id}", response_class=HTMLResponse)
async def meeting_page(meeting_id: str, request: Request, session: DbSession, staff: Secretariat) -> HTMLResponse:
    secretariat_only(staff)
    return await _meeting_page(request, session, meeting_id, staff)


@router.post("/t/{lg_code}/governance/meetings/{meeting_id}/decisions", dependencies=CSRF)
async def decide(meeting_id: str, request: Request, session: DbSession, staff: Secretariat) -> Response:
    secretariat_only(staff)
    form = await _form(request)
    try:
        _confirmed(form, "決定は取り消せません。内容を確認のうえ「内容を確認しました」に印を付けてください。")
        decision = await service.decide(session, meeting_id, form.get("candidate_id", ""), form, staff.label,
                                        by=audit.Actor.of_staff(staff))
    except (InvalidInput, Conflict, NotFound) as exc:
        await session.rollback()
        return await _meeting_page(request, session, meeting_id, staff, errors=getattr(exc, "errors", []),
                                   error=exc.detail, form=form, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.decision.made",
                       target_type="governance_candidate", target_id=decision.candidate_id,
                       purpose="連絡協議会の決定", details={"outcome": decision.outcome, "meeting": meeting_id,
                                                        "service": decision.service_id, "reason": decision.reason[:200]})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/meetings/{meeting_id}", status_code=303)


@router.post("/t/{lg_code}/governance/meetings/{meeting_id}/documents", dependencies=CSRF)
async def add_document(meeting_id: str, request: Request, session: DbSession, staff: Secretariat) -> Response:
    secretariat_only(staff)
    form = await _form(request)
    try:
        await service.add_document(session, meeting_id, form.get("title", ""), form.get("url", ""))
    except InvalidInput as exc:
        await session.rollback()
        return await _meeting_page(request, session, meeting_id, staff, errors=exc.errors, error=exc.detail,
                                   form=form, status=422)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.meeting.document_added",
                       target_type="governance_meeting", target_id=meeting_id)
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/meetings/{meeting_id}", status_code=303)


@router.post("/t/{lg_code}/governance/meetings/{meeting_id}/minutes", dependencies=CSRF)
async def publish_minutes(meeting_id: str, request: Request, session: DbSession, staff: Secretariat) -> Response:
    secretariat_only(staff)
    form = await _form(request)
    try:
        await service.publish_minutes(session, meeting_id, form.get("minutes", ""))
    except InvalidInput as exc:
        await session.rollback()
        return await _meeting_page(request, session, meeting_id, staff, errors=exc.errors, error=exc.detail,
                                   form=form, status=422)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.meeting.minutes_published",
                       target_type="governance_meeting", target_id=meeting_id)
    await session.commit()
    return RedirectResponse(f"/governance/meetings/{meeting_id}", status_code=303)


async def _rollout_page(request, session, staff, service_id, *, form=None, errors=(), error=None, status=200):
    plan = await service.get_plan(session, service_id)
    rows = await service.rollout_rows(session, plan)
    return _page(request, "rollout.html", {"p": await service.progress(session, plan, rows, public=False), "rows": rows,
                                           "manage": True, "tenant": staff.tenant, "form": form, "errors": list(errors),
                                           "error": error}, status)


@router.get("/t/{lg_code}/governance/rollout/{service_id}", response_class=HTMLResponse)
async def rollout_page(service_id: str, request: Request, session: DbSession, staff: Secretariat) -> HTMLResponse:
    secretariat_only(staff)
    return await _rollout_page(request, session, staff, service_id)


@router.post("/t/{lg_code}/governance/rollout/{service_id}", dependencies=CSRF)
async def save_rollout(service_id: str, request: Request, session: DbSession, staff: Secretariat) -> Response:
    secretariat_only(staff)
    form = await _form(request)
    try:
        plan = await service.save_plan(session, service_id, form, staff.label)
    except InvalidInput as exc:
        await session.rollback()
        return await _rollout_page(request, session, staff, service_id, form=form, errors=exc.errors,
                                   error=exc.detail, status=422)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.rollout.saved",
                       target_type="governance_rollout_plan", target_id=plan.service_id,
                       details={"pilot": plan.pilot_fy, "rollout": plan.rollout_fy, "national": plan.national_fy})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/rollout/{service_id}", status_code=303)
