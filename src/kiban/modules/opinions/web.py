"""意見照会の画面. Public: /opinions (the published tables of comments and answers, CSV).
A consulted body's staff: /t/{lg_code}/opinions (the draft by section, its own comments).
The ministry (a national body only): writing and announcing a consultation, classifying and
answering comments, publishing the table. JSON twins: api.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.audit import service as audit
from kiban.core.identity.dependencies import PUBLIC, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.tenancy.dependencies import DbSession
from kiban.kit import export
from kiban.kit.csrf import verify_csrf
from kiban.kit.errors import Conflict, InvalidInput
from kiban.kit.templating import templates
from kiban.modules.opinions import notices, service

router = APIRouter(include_in_schema=False)
Reader = Annotated[StaffContext, require(Permission.opinions_comment_read)]
Writer = Annotated[StaffContext, require(Permission.opinions_comment_write)]
Manager = Annotated[StaffContext, require(Permission.opinions_consultation_manage)]
CSRF = [Depends(verify_csrf)]
LABELS = {"kinds": service.KINDS, "categories": service.CATEGORIES, "target_kinds": service.TARGET_KINDS,
          "status_labels": service.STATUS_LABELS, "read_rule": service.READ_RULE}
NOTICES = {"created": "意見照会を下書きとして保存しました。内容を確かめてから公開してください。",
           "saved": "意見照会を保存しました。", "announced": "意見照会を公開しました。照会先の団体の職員に知らせました。",
           "commented": "意見を提出しました。締切日までは直したり取り下げたりできます。", "edited": "意見を直しました。",
           "withdrawn": "意見を取り下げました。", "classified": "選んだ意見を分類し、回答を付けました。",
           "answer": "回答を直しました。", "published": "意見と回答の一覧を公表しました。"}


def _page(request: Request, name: str, context: dict, status: int = 200) -> HTMLResponse:
    errs: dict[str, list[str]] = {}
    for e in context.get("errors") or []:
        errs.setdefault(e["field"], []).append(e["message"])
    notice = NOTICES.get(request.query_params.get("done", ""))
    return templates.TemplateResponse(request, f"opinions/{name}", {**LABELS, "errs": errs, "notice": notice, **context},
                                      status_code=status)


async def _form(request: Request) -> dict:
    submitted = await request.form()
    out: dict = {}
    for key in submitted.keys():
        if key == "csrf_token":
            continue
        values = submitted.getlist(key)
        out[key] = [str(v) for v in values] if key == "refs" else str(values[-1])
    return out


def _version(form: dict) -> int | None:
    raw = (form.get("expected_version") or "").strip()
    return int(raw) if raw.isdigit() and len(raw) <= 7 else None


def _confirmed(form: dict, message: str) -> None:
    if form.get("confirm") != "1":
        raise InvalidInput(message, errors=[{"field": "confirm", "message": message}])


def _base(lg_code: str) -> str:
    return f"/t/{lg_code}/opinions"


def _draft(form: dict) -> service.Draft:
    return service.Draft(title=form.get("title", ""), description=form.get("description", ""),
                         sections=form.get("sections", ""), opens_on=form.get("opens_on", ""),
                         closes_on=form.get("closes_on", ""), target_kind=form.get("target_kind", "all"),
                         publish_names=form.get("publish_names") == "1")


# -- public ---------------------------------------------------------------------------------------------

@router.get("/opinions", response_class=HTMLResponse, dependencies=[PUBLIC])
async def public_list(request: Request, session: DbSession) -> HTMLResponse:
    rows = await service.published(session)
    return _page(request, "public_list.html", {"rows": rows,
                                               "names": await service.ministry_names(session, [r.lg_code for r in rows])})


@router.get("/opinions/{consultation_id}", response_class=HTMLResponse, dependencies=[PUBLIC])
async def public_table(consultation_id: str, request: Request, session: DbSession) -> HTMLResponse:
    table = await service.published_table(session, consultation_id)
    c = table.consultation
    return _page(request, "public_table.html", {
        "table": table, "c": c, "counts": table.counts(),
        "ministry": (await service.ministry_names(session, [c.lg_code])).get(c.lg_code, "")})


@router.get("/opinions/{consultation_id}/table.csv", dependencies=[PUBLIC])
async def public_csv(consultation_id: str, session: DbSession) -> Response:
    table = await service.published_table(session, consultation_id)
    return export.attachment(export.csv_bytes(service.csv_rows(table), service.CSV_HEADER),
                             f"意見と回答の一覧_{table.consultation.closes_on.isoformat()}.csv")


# -- a consulted body, and the ministry's list ------------------------------------------------------------

@router.get("/t/{lg_code}/opinions", response_class=HTMLResponse)
async def inbox(request: Request, session: DbSession, staff: Reader) -> HTMLResponse:
    received = await service.addressed(session, staff.tenant)
    national = service.is_national(staff.tenant)
    return _page(request, "list.html", {
        "tenant": staff.tenant, "received": received, "status_of": service.status_of,
        "names": await service.ministry_names(session, [r.lg_code for r in received]),
        "national": national, "written": await service.written(session) if national else [],
        "may_manage": national and staff.can(Permission.opinions_consultation_manage)})


async def _consultation_page(request, session, staff, consultation_id, *, form=None, errors=(), error=None, status=200,
                             section_key=None):
    c = await service.addressed_one(session, staff.tenant, consultation_id)
    own = c.lg_code == staff.tenant.lg_code
    comments = [] if own else await service.own_comments(session, c)
    by_section: dict[str, list] = {}
    for x in comments:
        by_section.setdefault(x.section_key, []).append(x)
    return _page(request, "consultation.html", {
        "tenant": staff.tenant, "c": c, "own": own, "status": service.status_of(c), "accepting": service.accepting(c),
        "ministry": (await service.ministry_names(session, [c.lg_code])).get(c.lg_code, ""),
        "by_section": by_section, "form": form or {}, "errors": list(errors), "error": error,
        "section_key": section_key, "can_write": staff.can(Permission.opinions_comment_write),
        "may_manage": own and staff.can(Permission.opinions_consultation_manage)}, status)


@router.get("/t/{lg_code}/opinions/new", response_class=HTMLResponse)
async def new(request: Request, staff: Manager) -> HTMLResponse:
    service.ministry_only(staff.tenant)
    return _page(request, "form.html", {"tenant": staff.tenant, "c": None, "form": {"target_kind": "all"}, "errors": []})


@router.post("/t/{lg_code}/opinions", dependencies=CSRF)
async def create(request: Request, session: DbSession, staff: Manager) -> Response:
    service.ministry_only(staff.tenant)
    form = await _form(request)
    try:
        row = await service.create_consultation(session, staff.tenant, _draft(form), actor=staff.label)
    except InvalidInput as exc:
        await session.rollback()
        return _page(request, "form.html", {"tenant": staff.tenant, "c": None, "form": form, "errors": exc.errors,
                                            "error": exc.detail}, 422)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.consultation.created",
                       target_type="opinion_consultation", target_id=row.id, details={"title": row.title})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/{row.id}?done=created", status_code=303)


@router.get("/t/{lg_code}/opinions/{consultation_id}", response_class=HTMLResponse)
async def consultation(consultation_id: str, request: Request, session: DbSession, staff: Reader) -> HTMLResponse:
    return await _consultation_page(request, session, staff, consultation_id)


@router.get("/t/{lg_code}/opinions/{consultation_id}/edit", response_class=HTMLResponse)
async def edit(consultation_id: str, request: Request, session: DbSession, staff: Manager) -> HTMLResponse:
    service.ministry_only(staff.tenant)
    c = await service.own_consultation(session, consultation_id)
    form = {"title": c.title, "description": c.description, "sections": service.sections_text(c.sections),
            "opens_on": c.opens_on.isoformat(), "closes_on": c.closes_on.isoformat(), "target_kind": c.target_kind,
            "publish_names": "1" if c.publish_names else "", "expected_version": str(c.version)}
    return _page(request, "form.html", {"tenant": staff.tenant, "c": c, "form": form, "errors": []})


@router.post("/t/{lg_code}/opinions/{consultation_id}/edit", dependencies=CSRF)
async def save(consultation_id: str, request: Request, session: DbSession, staff: Manager) -> Response:
    service.ministry_only(staff.tenant)
    c = await service.own_consultation(session, consultation_id)
    form = await _form(request)
    try:
        await service.update_consultation(session, c, _draft(form), expected_version=_version(form))
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        c = await service.own_consultation(session, consultation_id)
        return _page(request, "form.html", {"tenant": staff.tenant, "c": c, "form": form, "errors": exc.errors,
                                            "error": exc.detail}, exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.consultation.updated",
                       target_type="opinion_consultation", target_id=c.id, details={"version": c.version})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/{c.id}?done=saved", status_code=303)


@router.post("/t/{lg_code}/opinions/{consultation_id}/announce", dependencies=CSRF)
async def announce(consultation_id: str, request: Request, session: DbSession, staff: Manager) -> Response:
    service.ministry_only(staff.tenant)
    c = await service.own_consultation(session, consultation_id)
    form = await _form(request)
    try:
        _confirmed(form, "公開すると照会先のすべての団体に届き、本文は変えられなくなります。「公開を確認しました」に印を付けてください。")
        await service.announce(session, c, expected_version=_version(form))
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        return await _consultation_page(request, session, staff, consultation_id, errors=exc.errors, error=exc.detail,
                                        status=exc.status)
    sent = await notices.consultation_opened(session, staff.tenant, c)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.consultation.announced",
                       target_type="opinion_consultation", target_id=c.id, details={"target": c.target_kind, "notices": sent})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/{c.id}?done=announced", status_code=303)


@router.post("/t/{lg_code}/opinions/{consultation_id}/comments", dependencies=CSRF)
async def add_comment(consultation_id: str, request: Request, session: DbSession, staff: Writer) -> Response:
    c = await service.addressed_one(session, staff.tenant, consultation_id)
    form = await _form(request)
    try:
        row = await service.add_comment(session, staff.tenant, c, section_key=form.get("section_key", ""),
                                        kind=form.get("kind", ""), body=form.get("body", ""),
                                        proposal=form.get("proposal", ""), actor=staff.label)
    except InvalidInput as exc:
        await session.rollback()
        return await _consultation_page(request, session, staff, consultation_id, form=form, errors=exc.errors,
                                        error=exc.detail, status=422, section_key=form.get("section_key"))
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.comment.submitted", target_type="opinion_comment",
                       target_id=row.id, details={"consultation": c.id, "ministry": c.lg_code, "section": row.section_key,
                                                  "kind": row.kind})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/{c.id}?done=commented#{row.section_key}", status_code=303)


async def _comment_page(request, session, staff, consultation_id, comment_id, *, form=None, errors=(), error=None,
                        status=200):
    c = await service.addressed_one(session, staff.tenant, consultation_id)
    row = await service.own_comment(session, c, comment_id)
    values = form or {"section_key": row.section_key, "kind": row.kind, "body": row.body, "proposal": row.proposal,
                      "expected_version": str(row.version)}
    return _page(request, "comment.html", {
        "tenant": staff.tenant, "c": c, "row": row, "form": values, "errors": list(errors), "error": error,
        "accepting": service.accepting(c) and row.status == "submitted",
        "can_write": staff.can(Permission.opinions_comment_write)}, status)


@router.get("/t/{lg_code}/opinions/{consultation_id}/comments/{comment_id}", response_class=HTMLResponse)
async def comment(consultation_id: str, comment_id: str, request: Request, session: DbSession, staff: Reader) -> HTMLResponse:
    return await _comment_page(request, session, staff, consultation_id, comment_id)


@router.post("/t/{lg_code}/opinions/{consultation_id}/comments/{comment_id}", dependencies=CSRF)
async def edit_comment(consultation_id: str, comment_id: str, request: Request, session: DbSession,
                       staff: Writer) -> Response:
    c = await service.addressed_one(session, staff.tenant, consultation_id)
    row = await service.own_comment(session, c, comment_id)
    form = await _form(request)
    try:
        await service.edit_comment(session, c, row, section_key=form.get("section_key", ""), kind=form.get("kind", ""),
                                   body=form.get("body", ""), proposal=form.get("proposal", ""),
                                   expected_version=_version(form), actor=staff.label)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        return await _comment_page(request, session, staff, consultation_id, comment_id, form=form, errors=exc.errors,
                                   error=exc.detail, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.comment.edited", target_type="opinion_comment",
                       target_id=row.id, details={"consultation": c.id, "version": row.version})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/{c.id}?done=edited#{row.section_key}", status_code=303)


@router.post("/t/{lg_code}/opinions/{consultation_id}/comments/{comment_id}/withdraw", dependencies=CSRF)
async def withdraw_comment(consultation_id: str, comment_id: str, request: Request, session: DbSession,
                           staff: Writer) -> Response:
    c = await service.addressed_one(session, staff.tenant, consultation_id)
    row = await service.own_comment(session, c, comment_id)
    form = await _form(request)
    try:
        _confirmed(form, "取り下げた意見は元に戻せません。「取り下げを確認しました」に印を付けてください。")
        await service.withdraw_comment(session, c, row, expected_version=_version(form))
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        return await _comment_page(request, session, staff, consultation_id, comment_id, errors=exc.errors,
                                   error=exc.detail, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.comment.withdrawn", target_type="opinion_comment",
                       target_id=row.id, details={"consultation": c.id})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/{c.id}?done=withdrawn", status_code=303)


# -- the ministry: classifying, answering, publishing --------------------------------------------------------

async def _review_page(request, session, staff, consultation_id, *, form=None, errors=(), error=None, status=200,
                       only: str = ""):
    """The secretariat's list; viewing it is audited (it reads other bodies' comments). Re-shown
    after a refused change it is not audited again (the first view was)."""
    c = await service.own_consultation(session, consultation_id)
    table = await service.secretariat_table(session, c)
    if errors or error:
        return await _review_context(request, session, staff, c, table, form, errors, error, status, only)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.comments.read", target_type="opinion_consultation",
                       target_id=c.id, purpose=service.SECRETARIAT_REASON, details={"comments": len(table.rows)})
    await session.commit()
    return await _review_context(request, session, staff, c, table, form, errors, error, status, only)


async def _review_context(request, session, staff, c, table, form, errors, error, status, only):
    rows = table.rows
    if only == "unreviewed":
        rows = [r for r in rows if r.review is None]
    elif only in service.KINDS:
        rows = [r for r in rows if r.comment.kind == only]
    return _page(request, "review.html", {
        "tenant": staff.tenant, "c": c, "table": table, "rows": rows, "counts": table.counts(), "only": only,
        "answers": await service.answers_of(session, c), "status": service.status_of(c), "form": form or {},
        "errors": list(errors), "error": error}, status)


@router.get("/t/{lg_code}/opinions/{consultation_id}/review", response_class=HTMLResponse)
async def review(consultation_id: str, request: Request, session: DbSession, staff: Manager, only: str = "") -> HTMLResponse:
    service.ministry_only(staff.tenant)
    return await _review_page(request, session, staff, consultation_id, only=only if len(only) <= 20 else "")


@router.post("/t/{lg_code}/opinions/{consultation_id}/reviews", dependencies=CSRF)
async def classify(consultation_id: str, request: Request, session: DbSession, staff: Manager) -> Response:
    service.ministry_only(staff.tenant)
    c = await service.own_consultation(session, consultation_id)
    form = await _form(request)
    try:
        picked, answer = await service.classify(session, c, refs=form.get("refs") or [], category=form.get("category", ""),
                                                answer_text=form.get("answer_text", ""),
                                                answer_id=form.get("answer_id", ""), actor=staff.label)
    except InvalidInput as exc:
        await session.rollback()
        return await _review_page(request, session, staff, consultation_id, form=form, errors=exc.errors,
                                  error=exc.detail, status=422)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.comments.classified",
                       target_type="opinion_consultation", target_id=c.id,
                       details={"comments": [r.ref for r in picked], "category": form.get("category"),
                                "answer": answer.id if answer else None})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/{c.id}/review?done=classified", status_code=303)


@router.post("/t/{lg_code}/opinions/{consultation_id}/answers/{answer_id}", dependencies=CSRF)
async def edit_answer(consultation_id: str, answer_id: str, request: Request, session: DbSession,
                      staff: Manager) -> Response:
    service.ministry_only(staff.tenant)
    c = await service.own_consultation(session, consultation_id)
    form = await _form(request)
    try:
        answer = await service.edit_answer(session, c, answer_id, form.get("text", ""), expected_version=_version(form))
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        return await _review_page(request, session, staff, consultation_id, errors=exc.errors, error=exc.detail,
                                  status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.answer.edited", target_type="opinion_answer",
                       target_id=answer.id, details={"consultation": c.id, "version": answer.version})
    await session.commit()
    return RedirectResponse(f"{_base(staff.tenant.lg_code)}/{c.id}/review?done=answer", status_code=303)


@router.post("/t/{lg_code}/opinions/{consultation_id}/publish", dependencies=CSRF)
async def publish(consultation_id: str, request: Request, session: DbSession, staff: Manager) -> Response:
    service.ministry_only(staff.tenant)
    c = await service.own_consultation(session, consultation_id)
    form = await _form(request)
    try:
        _confirmed(form, "公表すると意見の受付を終え、一覧は誰でも読めるようになります。「公表を確認しました」に印を付けてください。")
        table = await service.publish(session, c, publish_names=form.get("publish_names") == "1",
                                      expected_version=_version(form))
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        return await _review_page(request, session, staff, consultation_id, errors=exc.errors, error=exc.detail,
                                  status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.consultation.published",
                       target_type="opinion_consultation", target_id=c.id,
                       details={"comments": len(table.rows), "publish_names": c.publish_names})
    await session.commit()
    return RedirectResponse(f"/opinions/{c.id}?done=published", status_code=303)
