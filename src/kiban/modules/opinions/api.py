"""JSON twins of the 意見照会 pages: a consulted body's (read the draft, comment, edit, withdraw),
the ministry's (write, announce, classify, answer, publish) under ``/api/v1/t/{lg_code}/opinions``,
and the public table of comments and answers (open data) under ``/api/v1/opinions``.
Errors are problem+json."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from kiban.core.audit import service as audit
from kiban.core.identity.dependencies import PUBLIC, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.tenancy.dependencies import DbSession
from kiban.kit.openapi import problem_responses
from kiban.modules.opinions import notices, service
from kiban.modules.opinions.models import Comment, Consultation

public = APIRouter(prefix="/api/v1/opinions", tags=["意見照会（公表）"], dependencies=[PUBLIC])
tenant = APIRouter(prefix="/api/v1/t/{lg_code}/opinions", tags=["意見照会（団体・府省庁）"])
Reader = Annotated[StaffContext, require(Permission.opinions_comment_read)]
Writer = Annotated[StaffContext, require(Permission.opinions_comment_write)]
Manager = Annotated[StaffContext, require(Permission.opinions_consultation_manage)]
NON_BLANK = r"\S"
ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"


class ConsultationWrite(BaseModel):
    title: str = Field(..., min_length=1, max_length=200, pattern=NON_BLANK)
    description: str = Field("", max_length=service.MAX_TEXT)
    sections: str = Field(..., min_length=1, max_length=200_000,
                          description="本文。「# 1 見出し」の行で節が始まり、その下の行が節の本文")
    opens_on: str = Field(..., pattern=ISO_DATE, description="受付開始日（YYYY-MM-DD、日本時間）")
    closes_on: str = Field(..., pattern=ISO_DATE, description="締切日（YYYY-MM-DD、この日まで受け付ける）")
    target_kind: Literal["all", "municipalities", "prefectures"] = Field("all", description="照会先")
    publish_names: bool = Field(False, description="公表する一覧に団体名を載せる（既定: 団体種別だけ）")


class ConsultationEdit(ConsultationWrite):
    expected_version: int | None = Field(None, ge=1, le=1_000_000)


class VersionOnly(BaseModel):
    expected_version: int | None = Field(None, ge=1, le=1_000_000)


class CommentWrite(BaseModel):
    section_key: str = Field(..., min_length=1, max_length=20, description="節の key（s1 など）")
    kind: Literal["opinion", "question"] = Field(..., description="意見・質問")
    body: str = Field(..., min_length=1, max_length=service.MAX_TEXT, pattern=NON_BLANK)
    proposal: str = Field("", max_length=service.MAX_TEXT, description="修正案（意見のときだけ）")


class CommentEdit(CommentWrite):
    expected_version: int | None = Field(None, ge=1, le=1_000_000)


class ReviewWrite(BaseModel):
    refs: list[Annotated[str, Field(max_length=50)]] = Field(..., min_length=1, max_length=1000,
                                                             description="分類する意見（団体コード/意見の id）")
    category: Literal[tuple(service.CATEGORIES)] = Field(..., description="・".join(  # type: ignore[valid-type]
        f"{k}: {v}" for k, v in service.CATEGORIES.items()))
    answer_text: str = Field("", max_length=service.MAX_TEXT, description="新しい回答（選んだ意見すべてに付く）")
    answer_id: str = Field("", max_length=36, description="書いた回答から選ぶとき、その id")


class AnswerEdit(BaseModel):
    text: str = Field(..., min_length=1, max_length=service.MAX_TEXT, pattern=NON_BLANK)
    expected_version: int | None = Field(None, ge=1, le=1_000_000)


class PublishWrite(BaseModel):
    publish_names: bool = Field(False, description="一覧に団体名を載せる（既定: 団体種別だけ）")
    expected_version: int | None = Field(None, ge=1, le=1_000_000)


def _consultation(c: Consultation, ministry: str = "") -> dict[str, Any]:
    status = service.status_of(c)
    return {"id": c.id, "ministry_code": c.lg_code, "ministry": ministry, "title": c.title, "description": c.description,
            "sections": c.sections, "opens_on": c.opens_on.isoformat(), "closes_on": c.closes_on.isoformat(),
            "target_kind": c.target_kind, "target_label": service.TARGET_KINDS.get(c.target_kind, ""),
            "publish_names": c.publish_names, "status": status, "status_label": service.STATUS_LABELS[status],
            "announced_at": service.stamp(c.announced_at), "published_at": service.stamp(c.published_at),
            "version": c.version}


def _comment(c: Comment) -> dict[str, Any]:
    return {"id": c.id, "lg_code": c.lg_code, "consultation_id": c.consultation_id, "section_key": c.section_key,
            "kind": c.kind, "kind_label": service.KINDS.get(c.kind, ""), "body": c.body, "proposal": c.proposal,
            "status": c.status, "status_label": "取下げ済み" if c.status == "withdrawn" else "提出済み",
            "version": c.version, "submitted_by": c.submitted_by, "created_at": service.stamp(c.created_at),
            "updated_at": service.stamp(c.updated_at)}


def _row(r: service.Row) -> dict[str, Any]:
    return {"number": r.number, "ref": r.ref, "comment": _comment(r.comment), "section": r.section,
            "body_name": r.body_name, "body_kind": r.body_kind,
            "category": r.review.category if r.review else None, "category_label": r.category_label,
            "answer_id": r.answer.id if r.answer else None, "answer": r.answer.text if r.answer else None,
            "changed_since_review": r.changed_since_review}


def _draft(body: ConsultationWrite) -> service.Draft:
    return service.Draft(title=body.title, description=body.description, sections=body.sections,
                         opens_on=body.opens_on, closes_on=body.closes_on, target_kind=body.target_kind,
                         publish_names=body.publish_names)


# -- public ------------------------------------------------------------------------------------------

@public.get("", summary="公表した意見照会の一覧")
async def published_list(session: DbSession) -> list[dict[str, Any]]:
    rows = await service.published(session)
    names = await service.ministry_names(session, [r.lg_code for r in rows])
    return [_consultation(r, names.get(r.lg_code, "")) for r in rows]


@public.get("/{consultation_id}", summary="意見と回答の一覧（オープンデータ。団体名は府省庁が公表を選んだときだけ）",
            responses=problem_responses(404))
async def published_table(consultation_id: str, session: DbSession) -> dict[str, Any]:
    table = await service.published_table(session, consultation_id)
    c = table.consultation
    counts = table.counts()
    return {**_consultation(c, (await service.ministry_names(session, [c.lg_code])).get(c.lg_code, "")),
            "opinions": counts["opinions"], "questions": counts["questions"], "bodies": counts["bodies"],
            "columns": service.CSV_HEADER, "rows": [service.public_row(r, c.publish_names) for r in table.rows]}


# -- a consulted body (and the ministry's own list) ----------------------------------------------------------

@tenant.get("", summary="届いた意見照会（府省庁では作成した意見照会も）")
async def inbox(staff: Reader, session: DbSession) -> dict[str, Any]:
    received = await service.addressed(session, staff.tenant)
    names = await service.ministry_names(session, [r.lg_code for r in received])
    mine = await service.written(session) if service.is_national(staff.tenant) else []
    return {"received": [_consultation(r, names.get(r.lg_code, "")) for r in received],
            "written": [_consultation(r, staff.tenant.name) for r in mine]}


@tenant.get("/{consultation_id}", summary="意見照会の本文（節ごと）と自団体の意見", responses=problem_responses(404))
async def consultation(consultation_id: str, staff: Reader, session: DbSession) -> dict[str, Any]:
    c = await service.addressed_one(session, staff.tenant, consultation_id)
    names = await service.ministry_names(session, [c.lg_code])
    own = c.lg_code == staff.tenant.lg_code
    return {**_consultation(c, names.get(c.lg_code, "")), "accepting": service.accepting(c),
            "comments": [] if own else [_comment(x) for x in await service.own_comments(session, c)]}


@tenant.post("/{consultation_id}/comments", summary="意見・質問の提出（節ごと）", status_code=201,
             responses=problem_responses(404, 422))
async def add_comment(consultation_id: str, body: CommentWrite, staff: Writer, session: DbSession) -> dict[str, Any]:
    c = await service.addressed_one(session, staff.tenant, consultation_id)
    row = await service.add_comment(session, staff.tenant, c, section_key=body.section_key, kind=body.kind,
                                    body=body.body, proposal=body.proposal, actor=staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.comment.submitted", target_type="opinion_comment",
                       target_id=row.id, details={"consultation": c.id, "ministry": c.lg_code, "section": row.section_key,
                                                  "kind": row.kind})
    await session.commit()
    return _comment(row)


@tenant.get("/{consultation_id}/comments/{comment_id}", summary="自団体の意見", responses=problem_responses(404))
async def get_comment(consultation_id: str, comment_id: str, staff: Reader, session: DbSession) -> dict[str, Any]:
    c = await service.addressed_one(session, staff.tenant, consultation_id)
    return _comment(await service.own_comment(session, c, comment_id))


@tenant.put("/{consultation_id}/comments/{comment_id}", summary="自団体の意見の修正（締切日まで）",
            responses=problem_responses(404, 409, 422))
async def edit_comment(consultation_id: str, comment_id: str, body: CommentEdit, staff: Writer,
                       session: DbSession) -> dict[str, Any]:
    c = await service.addressed_one(session, staff.tenant, consultation_id)
    row = await service.own_comment(session, c, comment_id)
    await service.edit_comment(session, c, row, section_key=body.section_key, kind=body.kind, body=body.body,
                               proposal=body.proposal, expected_version=body.expected_version, actor=staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.comment.edited", target_type="opinion_comment",
                       target_id=row.id, details={"consultation": c.id, "version": row.version})
    await session.commit()
    return _comment(row)


@tenant.post("/{consultation_id}/comments/{comment_id}/withdraw", summary="自団体の意見の取下げ（締切日まで）",
             responses=problem_responses(404, 409, 422))
async def withdraw_comment(consultation_id: str, comment_id: str, body: VersionOnly, staff: Writer,
                           session: DbSession) -> dict[str, Any]:
    c = await service.addressed_one(session, staff.tenant, consultation_id)
    row = await service.own_comment(session, c, comment_id)
    await service.withdraw_comment(session, c, row, expected_version=body.expected_version)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.comment.withdrawn", target_type="opinion_comment",
                       target_id=row.id, details={"consultation": c.id})
    await session.commit()
    return _comment(row)


# -- the ministry -----------------------------------------------------------------------------------------

@tenant.post("", summary="意見照会の作成（府省庁、下書き）", status_code=201, responses=problem_responses(404, 422))
async def create(body: ConsultationWrite, staff: Manager, session: DbSession) -> dict[str, Any]:
    row = await service.create_consultation(session, staff.tenant, _draft(body), actor=staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.consultation.created",
                       target_type="opinion_consultation", target_id=row.id, details={"title": row.title})
    await session.commit()
    return _consultation(row, staff.tenant.name)


@tenant.put("/{consultation_id}", summary="意見照会の変更（公開後は締切日と団体名の公表だけ）",
            responses=problem_responses(404, 409, 422))
async def update(consultation_id: str, body: ConsultationEdit, staff: Manager, session: DbSession) -> dict[str, Any]:
    service.ministry_only(staff.tenant)
    row = await service.own_consultation(session, consultation_id)
    await service.update_consultation(session, row, _draft(body), expected_version=body.expected_version)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.consultation.updated",
                       target_type="opinion_consultation", target_id=row.id, details={"version": row.version})
    await session.commit()
    return _consultation(row, staff.tenant.name)


@tenant.post("/{consultation_id}/announce", summary="意見照会の公開（照会先の団体に届き、職員に知らせる）",
             responses=problem_responses(404, 409, 422))
async def announce(consultation_id: str, body: VersionOnly, staff: Manager, session: DbSession) -> dict[str, Any]:
    service.ministry_only(staff.tenant)
    row = await service.own_consultation(session, consultation_id)
    await service.announce(session, row, expected_version=body.expected_version)
    sent = await notices.consultation_opened(session, staff.tenant, row)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.consultation.announced",
                       target_type="opinion_consultation", target_id=row.id,
                       details={"target": row.target_kind, "notices": sent})
    await session.commit()
    return {**_consultation(row, staff.tenant.name), "notices": sent}


@tenant.get("/{consultation_id}/review", summary="届いた意見の一覧と分類・回答（府省庁）", responses=problem_responses(404))
async def review(consultation_id: str, staff: Manager, session: DbSession) -> dict[str, Any]:
    service.ministry_only(staff.tenant)
    row = await service.own_consultation(session, consultation_id)
    table = await service.secretariat_table(session, row)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.comments.read", target_type="opinion_consultation",
                       target_id=row.id, purpose=service.SECRETARIAT_REASON, details={"comments": len(table.rows)})
    await session.commit()
    return {**_consultation(row, staff.tenant.name), **table.counts(),
            "categories": service.CATEGORIES,
            "answers": [{"id": a.id, "text": a.text, "version": a.version} for a in await service.answers_of(session, row)],
            "rows": [_row(r) for r in table.rows]}


@tenant.post("/{consultation_id}/reviews", summary="意見の分類と回答（似た意見に1つの回答を付けられる）",
             responses=problem_responses(404, 422))
async def classify(consultation_id: str, body: ReviewWrite, staff: Manager, session: DbSession) -> dict[str, Any]:
    service.ministry_only(staff.tenant)
    row = await service.own_consultation(session, consultation_id)
    picked, answer = await service.classify(session, row, refs=body.refs, category=body.category,
                                            answer_text=body.answer_text, answer_id=body.answer_id, actor=staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.comments.classified",
                       target_type="opinion_consultation", target_id=row.id,
                       details={"comments": [r.ref for r in picked], "category": body.category,
                                "answer": answer.id if answer else None})
    await session.commit()
    return {"rows": [_row(r) for r in picked], "answer_id": answer.id if answer else None}


@tenant.put("/{consultation_id}/answers/{answer_id}", summary="回答の修正（府省庁）", responses=problem_responses(404, 409, 422))
async def edit_answer(consultation_id: str, answer_id: str, body: AnswerEdit, staff: Manager,
                      session: DbSession) -> dict[str, Any]:
    service.ministry_only(staff.tenant)
    row = await service.own_consultation(session, consultation_id)
    answer = await service.edit_answer(session, row, answer_id, body.text, expected_version=body.expected_version)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.answer.edited", target_type="opinion_answer",
                       target_id=answer.id, details={"consultation": row.id, "version": answer.version})
    await session.commit()
    return {"id": answer.id, "text": answer.text, "version": answer.version}


@tenant.post("/{consultation_id}/publish", summary="意見と回答の一覧の公表（受付を終える）",
             responses=problem_responses(404, 409, 422))
async def publish(consultation_id: str, body: PublishWrite, staff: Manager, session: DbSession) -> dict[str, Any]:
    service.ministry_only(staff.tenant)
    row = await service.own_consultation(session, consultation_id)
    table = await service.publish(session, row, publish_names=body.publish_names, expected_version=body.expected_version)
    await audit.record(session, audit.Actor.of_staff(staff), "opinions.consultation.published",
                       target_type="opinion_consultation", target_id=row.id,
                       details={"comments": len(table.rows), "publish_names": row.publish_names})
    await session.commit()
    return _consultation(row, staff.tenant.name)
