"""JSON twins of the 調査・照会 pages under ``/api/v1/t/{lg_code}/surveys`` (authoring, sending,
progress and aggregates, answering — systems answer with a scoped API key —, the relay), and the
public, disclosure-controlled results under ``/api/v1/surveys/results``. Errors are problem+json."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from kiban.core.audit import service as audit
from kiban.core.identity.dependencies import PUBLIC, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.tenancy.dependencies import DbSession, tenant_from_path
from kiban.kit.openapi import problem_responses
from kiban.modules.surveys import service
from kiban.modules.surveys.models import EVENT_LABELS, STATUS_LABELS

public = APIRouter(prefix="/api/v1/surveys", tags=["調査・照会（公開）"], dependencies=[PUBLIC])
tenant = APIRouter(prefix="/api/v1/t/{lg_code}/surveys", tags=["調査・照会（団体）"])
Manager = Annotated[StaffContext, require(Permission.surveys_survey_manage)]
Reader = Annotated[StaffContext, require(Permission.surveys_response_read)]
Writer = Annotated[StaffContext, require(Permission.surveys_response_write)]
Certifier = Annotated[StaffContext, require(Permission.surveys_response_certify)]
Reviewer = Annotated[StaffContext, require(Permission.surveys_relay_review)]
CONFLICT = problem_responses(409)


class Body(BaseModel):
    model_config = ConfigDict(strict=True)


class SurveyWrite(Body):
    title: str = Field(max_length=200)
    description: str = ""
    deadline: str = Field(description="回答期限（YYYY-MM-DD）")
    minutes: int = Field(30, description="1団体あたりの回答時間の見込み（分）")
    relayed: bool = Field(False, description="経由調査（都道府県を経由する）")
    target_kind: str = Field("municipalities", description="all / municipalities / prefectures / types / list")
    prefectures: list[str] = Field([], description="都道府県番号（01〜47）で絞り込む")
    types: list[str] = Field([], description="団体の種類（政令市・市・町・村・特別区・都道府県）")
    codes: list[str] = Field([], description="団体コードの一覧（target_kind=list）")
    questions: list[dict[str, Any]] | None = Field(None, description="質問（省略すると変えない）")
    rules: list[dict[str, Any]] = Field([], description='[{"kind": "sum_equals", "total": "q1", "parts": ["q2", "q3"]}]')
    expected_version: int | None = None


class SurveyRead(BaseModel):
    id: str
    title: str
    description: str
    deadline: str
    minutes: int
    relayed: bool
    target: dict[str, Any]
    targets: int
    burden_minutes: int
    burden: str
    definition: dict[str, Any]
    sent_version: int
    published: bool
    version: int
    duplicates: dict[str, list[dict[str, Any]]]


async def _survey(session, survey) -> SurveyRead:
    b = await service.burden(session, survey)
    dups = await service.duplicates(session, survey)
    return SurveyRead(id=survey.id, title=survey.title, description=survey.description, deadline=survey.deadline,
                      minutes=survey.minutes, relayed=survey.relayed, target=survey.target, targets=b.targets,
                      burden_minutes=b.total_minutes, burden=b.text, definition=survey.definition,
                      sent_version=survey.sent_version, published=survey.published_at is not None,
                      version=survey.version,
                      duplicates={k: [{"sender": d.sender, "survey_title": d.survey_title, "sent_on": d.sent_on.isoformat(),
                                       "label": d.label, "why": d.why, "answers": d.answers, "results_url": d.results_url}
                                      for d in v] for k, v in dups.items()})


class AddressedRead(BaseModel):
    response_id: str
    survey_title: str
    sender: str
    deadline: str
    relayed: bool
    status: str
    status_label: str
    version: int
    url: str


class SurveyList(BaseModel):
    received: list[AddressedRead]
    written: list[dict[str, Any]]
    relayed: list[dict[str, Any]]


def _addressed(staff, a) -> AddressedRead:
    return AddressedRead(response_id=a.response.id, survey_title=a.version.title, sender=a.sender,
                         deadline=a.version.deadline, relayed=a.relayed, status=a.response.status,
                         status_label=a.status_label, version=a.response.version,
                         url=f"/t/{staff.tenant.lg_code}/surveys/responses/{a.response.id}")


@tenant.get("", summary="調査の一覧（届いた調査・経由調査・作成した調査）", response_model=SurveyList)
async def list_surveys(session: DbSession, staff: Reader) -> SurveyList:
    written = await service.list_surveys(session) if staff.can(Permission.surveys_survey_manage) else []
    relayed = await service.relayed_surveys(session, staff.tenant) if staff.can(Permission.surveys_relay_review) else []
    return SurveyList(
        received=[_addressed(staff, a) for a in await service.inbox(session)],
        written=[{"id": s.id, "title": s.title, "deadline": s.deadline, "sent_version": s.sent_version,
                  "targets": len(s.target_codes)} for s in written],
        relayed=[{"sender_lg_code": s.lg_code, "id": s.id, "title": s.title, "counts": c} for s, c in relayed])


def _settings(body: SurveyWrite) -> service.Settings:
    return service.Settings(title=body.title, description=body.description, deadline=body.deadline,
                            minutes=str(body.minutes), relayed=body.relayed, target_kind=body.target_kind,
                            prefectures=body.prefectures, types=body.types, codes=" ".join(body.codes))


@tenant.post("", summary="調査の作成（下書き）", response_model=SurveyRead, status_code=201)
async def create_survey(body: SurveyWrite, session: DbSession, staff: Manager) -> SurveyRead:
    survey = await service.create_survey(session, _settings(body), actor=staff.label)
    if body.questions is not None:
        await service.replace_definition(session, survey, body.questions, body.rules, expected_version=None)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.survey.created", target_type="survey",
                       target_id=survey.id, details={"survey_title": survey.title})
    await session.commit()
    return await _survey(session, survey)


@tenant.get("/{survey_id}", summary="調査（下書き・負担の見込み・重複する質問）", response_model=SurveyRead)
async def get_survey(survey_id: str, session: DbSession, staff: Manager) -> SurveyRead:
    return await _survey(session, await service.get_survey(session, survey_id))


@tenant.put("/{survey_id}", summary="調査の変更（送付後は次の版の下書き）", response_model=SurveyRead, responses=CONFLICT)
async def put_survey(survey_id: str, body: SurveyWrite, session: DbSession, staff: Manager) -> SurveyRead:
    survey = await service.get_survey(session, survey_id)
    await service.update_settings(session, survey, _settings(body), expected_version=body.expected_version)
    if body.questions is not None:
        await service.replace_definition(session, survey, body.questions, body.rules, expected_version=None)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.survey.updated", target_type="survey",
                       target_id=survey.id, details={"survey_title": survey.title})
    await session.commit()
    return await _survey(session, survey)


class VersionRequest(Body):
    expected_version: int | None = None


@tenant.post("/{survey_id}/questions/{key}/avoid", response_model=SurveyRead, responses=CONFLICT,
             summary="重複照会の抑止: 1年以内にほかの調査で尋ねた質問を下書きから省く（記録し、指標に数える）")
async def avoid_question(survey_id: str, key: str, body: VersionRequest, session: DbSession, staff: Manager) -> SurveyRead:
    survey = await service.get_survey(session, survey_id)
    removed = await service.remove_question(session, survey, key, expected_version=body.expected_version,
                                            as_duplicate=True, actor=staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.question.avoided", target_type="survey",
                       target_id=survey.id, details={"survey_title": survey.title, "label": removed["label"]})
    await session.commit()
    return await _survey(session, survey)


@tenant.get("/{survey_id}/responses/{respondent_code}", summary="届いた回答（送付元が読む。届いていなければ 404）",
            response_model=dict[str, Any])
async def delivered_response(survey_id: str, respondent_code: str, session: DbSession, staff: Manager) -> dict[str, Any]:
    survey = await service.get_survey(session, survey_id)
    item, org = await service.delivered_response(session, survey, respondent_code)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.response.read", target_type="survey_response",
                       target_id=item.response.id, details={"survey_title": survey.title, "organization": org.name})
    await session.commit()
    r = item.response
    return {"lg_code": org.code, "name": org.name, "survey_version": r.version_number, "answers": r.answers,
            "prefill": r.prefill, "reasons": r.reasons, "status": r.status, "status_label": STATUS_LABELS[r.status],
            "certified_by": r.certified_by, "submitted_at": r.submitted_at, "delivered_at": r.delivered_at}


@tenant.post("/{survey_id}/send", summary="調査の送付（2回目からは新しい版として）", response_model=SurveyRead,
             responses=CONFLICT)
async def send_survey(survey_id: str, body: VersionRequest, session: DbSession, staff: Manager) -> SurveyRead:
    from kiban.modules.surveys import reminders

    survey = await service.get_survey(session, survey_id)
    version = await service.send(session, survey, actor=staff.label, expected_version=body.expected_version)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.survey.sent", target_type="survey",
                       target_id=survey.id, details={"survey_title": survey.title, "survey_version": version.number,
                                                     "count": len(survey.target_codes)})
    await reminders.schedule(session, survey)
    await session.commit()
    return await _survey(session, survey)


class ProgressRead(BaseModel):
    targets: int
    delivered: int
    rate: float
    prefectures: list[dict[str, Any]]
    aggregates: dict[str, Any]
    csv_url: str
    xlsx_url: str


@tenant.get("/{survey_id}/progress", summary="回答状況（都道府県別）と集計", response_model=ProgressRead)
async def progress(survey_id: str, session: DbSession, staff: Manager) -> ProgressRead:
    survey = await service.get_survey(session, survey_id)
    rows = await service.progress(session, survey)
    agg = await service.aggregates(session, survey)
    targets, delivered = sum(p.targets for p in rows), sum(p.delivered for p in rows)
    base = f"/t/{staff.tenant.lg_code}/surveys/{survey.id}/export"
    return ProgressRead(
        targets=targets, delivered=delivered, rate=delivered / targets if targets else 0.0,
        prefectures=[{"code": p.code, "name": p.name, "targets": p.targets, "submitted": p.submitted,
                      "delivered": p.delivered, "counts": p.counts} for p in rows],
        aggregates={"respondents": agg.delivered, "numbers": agg.numbers,
                    "choices": {k: [{"answer": t, "count": n} for t, n in v] for k, v in agg.choices.items()},
                    "by_type": {k: [{"type": t, "count": n, "sum": s} for t, n, s in v] for k, v in agg.by_type.items()},
                    "columns": agg.columns},
        csv_url=f"{base}.csv", xlsx_url=f"{base}.xlsx")


@tenant.post("/{survey_id}/publish", summary="調査結果の公表（秘匿処理した集計表）", response_model=SurveyRead)
async def publish(survey_id: str, body: VersionRequest, session: DbSession, staff: Manager) -> SurveyRead:
    survey = await service.get_survey(session, survey_id)
    await service.publish(session, survey)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.survey.published", target_type="survey",
                       target_id=survey.id, details={"survey_title": survey.title})
    await session.commit()
    return await _survey(session, survey)


# -- answering ------------------------------------------------------------------------------------------

class ResponseRead(BaseModel):
    id: str
    survey_title: str
    sender: str
    deadline: str
    survey_version: int
    definition: dict[str, Any]
    answers: dict[str, Any]
    prefill: dict[str, Any]
    reasons: dict[str, Any]
    status: str
    status_label: str
    review_comment: str
    certified_by: str
    submitted_at: datetime | None
    version: int
    problems: list[dict[str, str]]
    changes: list[dict[str, Any]]
    history: list[dict[str, Any]]


async def _response(session, item) -> ResponseRead:
    r = item.response
    return ResponseRead(
        id=r.id, survey_title=item.version.title, sender=item.sender, deadline=item.version.deadline,
        survey_version=r.version_number, definition=item.definition, answers=r.answers, prefill=r.prefill,
        reasons=r.reasons, status=r.status, status_label=STATUS_LABELS[r.status], review_comment=r.review_comment,
        certified_by=r.certified_by, submitted_at=r.submitted_at, version=r.version, problems=service.problems(item),
        changes=[{"version": n, "changes": c} for n, c in await service.changes_since_seen(session, item)],
        history=[{"kind": e.kind, "label": EVENT_LABELS.get(e.kind, ""), "body": e.body, "actor": e.actor_name,
                  "at": e.created_at.isoformat()} for e in await service.events(session, r.id)])


@tenant.get("/responses/{response_id}", summary="届いた調査への回答（下書き・状態・履歴）", response_model=ResponseRead)
async def get_response(response_id: str, session: DbSession, staff: Reader) -> ResponseRead:
    return await _response(session, await service.own_response(session, response_id))


class AnswersWrite(Body):
    answers: dict[str, Any] = Field(description="{質問番号: 値}（数値・日付・文字は文字列、複数選択は配列、表は行の配列）")
    reasons: dict[str, str] = Field({}, description="プラットフォームの値を直した理由 {質問番号: 理由}")
    contact_email: str | None = Field(None, description="お知らせを受け取る担当者のメールアドレス")
    expected_version: int | None = Field(None, description="読んだときの version（ほかの人が先に保存していれば 409）")


@tenant.put("/responses/{response_id}/answers", summary="回答の保存（下書き。誤りは problems に）",
            response_model=ResponseRead, responses=CONFLICT)
async def put_answers(response_id: str, body: AnswersWrite, session: DbSession, staff: Writer) -> ResponseRead:
    item = await service.own_response(session, response_id)
    await service.save_answers(session, item, body.answers, reasons=body.reasons, actor=staff.label,
                               expected_version=body.expected_version, contact_email=body.contact_email)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.response.saved", target_type="survey_response",
                       target_id=item.response.id, details={"survey_title": item.version.title})
    await session.commit()
    return await _response(session, item)


async def _act(session, staff, response_id, action, audit_action, **kwargs) -> ResponseRead:
    item = await service.own_response(session, response_id)
    await action(session, item, actor=staff.label, **kwargs)
    await audit.record(session, audit.Actor.of_staff(staff), audit_action, target_type="survey_response",
                       target_id=item.response.id, details={"survey_title": item.version.title})
    await session.commit()
    return await _response(session, item)


@tenant.post("/responses/{response_id}/certify", summary="回答の決裁（課長決裁。API キーでは行えない）",
             response_model=ResponseRead, responses=CONFLICT)
async def certify(response_id: str, body: VersionRequest, session: DbSession, staff: Certifier) -> ResponseRead:
    return await _act(session, staff, response_id, service.certify, "surveys.response.certified",
                      expected_version=body.expected_version)


@tenant.post("/responses/{response_id}/submit", summary="決裁済みの回答の提出（再送しても二重にならない）",
             response_model=ResponseRead, responses=CONFLICT)
async def submit(response_id: str, body: VersionRequest, session: DbSession, staff: Writer) -> ResponseRead:
    return await _act(session, staff, response_id, service.submit, "surveys.response.submitted",
                      expected_version=body.expected_version)


class ReopenRequest(Body):
    reason: str = Field(max_length=2000)
    expected_version: int | None = None


@tenant.post("/responses/{response_id}/reopen", summary="提出後の修正（回答を再開。履歴に残る）",
             response_model=ResponseRead, responses=CONFLICT)
async def reopen(response_id: str, body: ReopenRequest, session: DbSession, staff: Writer) -> ResponseRead:
    return await _act(session, staff, response_id, service.reopen, "surveys.response.reopened",
                      reason=body.reason, expected_version=body.expected_version)


# -- the relay ----------------------------------------------------------------------------------------------

class RelayRead(BaseModel):
    survey_title: str
    sender_lg_code: str
    deadline: str
    responses: list[dict[str, Any]]


@tenant.get("/relay/{survey_lg_code}/{survey_id}", summary="経由調査: 管内市町村の回答状況", response_model=RelayRead)
async def relay(survey_lg_code: str, survey_id: str, session: DbSession, staff: Reviewer) -> RelayRead:
    survey, version, rows = await service.relayed_survey(session, staff.tenant, survey_lg_code, survey_id)
    return RelayRead(survey_title=version.title, sender_lg_code=survey.lg_code, deadline=version.deadline,
                     responses=[{"lg_code": o.code, "name": o.name, "response_id": r.id, "status": r.status,
                                 "status_label": STATUS_LABELS[r.status], "forwarded": r.delivered_at is not None,
                                 "version": r.version} for r, o in rows])


class ReviewRequest(Body):
    comment: str = Field("", max_length=4000)
    expected_version: int | None = None


@tenant.get("/relay/responses/{respondent_code}/{response_id}", summary="経由調査: 管内市町村の回答",
            response_model=ResponseRead)
async def relay_response(respondent_code: str, response_id: str, session: DbSession, staff: Reviewer) -> ResponseRead:
    item, org = await service.relayed_response(session, staff.tenant, respondent_code, response_id)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.response.read", target_type="survey_response",
                       target_id=response_id, details={"survey_title": item.version.title, "organization": org.name})
    async with service.unscoped(session, service.RELAY_REASON):
        read = await _response(session, item)
    await session.commit()
    return read


async def _review(session, staff, respondent_code, response_id, action, audit_action, body: ReviewRequest) -> ResponseRead:
    item, org = await service.relayed_response(session, staff.tenant, respondent_code, response_id)
    await action(session, item, actor=staff.label, comment=body.comment, expected_version=body.expected_version)
    await audit.record(session, audit.Actor.of_staff(staff), audit_action, target_type="survey_response",
                       target_id=response_id, details={"survey_title": item.version.title, "organization": org.name})
    async with service.unscoped(session, service.RELAY_REASON):
        read = await _response(session, item)
    await session.commit()
    return read


@tenant.post("/relay/responses/{respondent_code}/{response_id}/return", summary="経由調査: 差戻し（理由は必須）",
             response_model=ResponseRead, responses=CONFLICT)
async def relay_return(respondent_code: str, response_id: str, body: ReviewRequest, session: DbSession,
                       staff: Reviewer) -> ResponseRead:
    return await _review(session, staff, respondent_code, response_id, service.send_back,
                         "surveys.response.returned", body)


@tenant.post("/relay/responses/{respondent_code}/{response_id}/approve", summary="経由調査: 確認",
             response_model=ResponseRead, responses=CONFLICT)
async def relay_approve(respondent_code: str, response_id: str, body: ReviewRequest, session: DbSession,
                        staff: Reviewer) -> ResponseRead:
    return await _review(session, staff, respondent_code, response_id, service.approve,
                         "surveys.response.approved", body)


class ForwardRead(BaseModel):
    forwarded: int


@tenant.post("/relay/{survey_lg_code}/{survey_id}/forward", summary="経由調査: 確認した回答を送付元へ送付",
             response_model=ForwardRead)
async def relay_forward(survey_lg_code: str, survey_id: str, body: VersionRequest, session: DbSession,
                        staff: Reviewer) -> ForwardRead:
    survey, version, _ = await service.relayed_survey(session, staff.tenant, survey_lg_code, survey_id)
    count = await service.forward(session, staff.tenant, survey, version, actor=staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "surveys.relay.forwarded", target_type="survey",
                       target_id=survey.id, details={"survey_title": survey.title, "count": count})
    await session.commit()
    return ForwardRead(forwarded=count)


# -- public results ---------------------------------------------------------------------------------------

class PublishedSurvey(BaseModel):
    sender_lg_code: str
    sender: str
    id: str
    title: str
    published_at: datetime
    url: str


@public.get("/results", summary="公表された調査結果の一覧", response_model=list[PublishedSurvey])
async def results_list(session: DbSession) -> list[PublishedSurvey]:
    from sqlalchemy import select

    from kiban.core.registry.service import organizations_by_code
    from kiban.core.tenancy.context import unscoped
    from kiban.modules.surveys.models import Survey

    async with unscoped(session, "公表済みの調査結果の一覧（オープンデータ）"):
        rows = (await session.scalars(select(Survey).where(Survey.published_at.is_not(None))
                                      .order_by(Survey.published_at.desc()).limit(200))).all()
    orgs = await organizations_by_code(session, list({s.lg_code for s in rows}))
    return [PublishedSurvey(sender_lg_code=s.lg_code, sender=orgs[s.lg_code].name if s.lg_code in orgs else "",
                            id=s.id, title=s.title, published_at=s.published_at,
                            url=f"/surveys/results/{s.lg_code}/{s.id}") for s in rows]


class PublicResults(BaseModel):
    survey_title: str
    sender: str
    question: dict[str, Any] | None
    questions: list[dict[str, str]]
    min_respondents: int
    rows: list[dict[str, Any]]
    columns: list[str]
    column_totals: dict[str, Any]
    total: Any


@public.get("/results/{lg_code}/{survey_id}", summary="公表された調査結果（3団体未満のセルと逆算できるセルは秘匿）",
            response_model=PublicResults)
async def results(lg_code: str, survey_id: str, session: DbSession, q: str | None = None) -> PublicResults:
    from kiban.modules.surveys import disclosure

    sender = await tenant_from_path(lg_code, session)
    survey, version = await service.published(session, survey_id)
    numbers = [x for x in version.definition.get("questions", []) if x["type"] == "number"]
    chosen = next((x for x in numbers if x["key"] == q), numbers[0] if numbers else None)
    if q is not None and (chosen is None or chosen["key"] != q):
        from kiban.kit.errors import InvalidInput

        raise InvalidInput("公表している数値の質問の番号を指定してください。",
                           errors=[{"field": "q", "message": "公表している数値の質問の番号を指定してください。"}])
    names = await service.prefecture_names(session)

    def shown(entry) -> dict[str, Any]:
        value = table.shown(entry)
        return {"suppressed": True} if value is None else {"value": value[0], "respondents": value[1]}

    table = await service.public_table(session, survey, chosen["key"]) if chosen else None
    rows = ([{"prefecture_code": r, "prefecture": names.get(r, ""),
              "cells": {c: shown(("cell", r, c)) for c in table.cols}, "total": shown(("row", r))}
             for r in table.rows] if table else [])
    return PublicResults(survey_title=version.title, sender=sender.name, question=chosen,
                         questions=[{"key": x["key"], "label": x["label"]} for x in numbers],
                         min_respondents=disclosure.MIN_RESPONDENTS, rows=rows, columns=table.cols if table else [],
                         column_totals={c: shown(("col", c)) for c in table.cols} if table else {},
                         total=shown(("total",)) if table else None)


