"""JSON twins of the governance pages: public (needs without hidden figures, candidates with their
public assessment, meetings, rollout progress, open data) and a body's / the secretariat's."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, BeforeValidator, Field

from kiban.core.audit import service as audit
from kiban.core.identity.dependencies import PUBLIC, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.tenancy.dependencies import DbSession
from kiban.kit.openapi import problem_responses
from kiban.kit.validation import PlausibleDate
from kiban.modules.catalog import service as catalog
from kiban.modules.governance import opendata, service
from kiban.modules.governance.web import _audit_survey, secretariat_only

public = APIRouter(prefix="/api/v1/governance", tags=["共通化の進め方（公開）"], dependencies=[PUBLIC])
tenant = APIRouter(prefix="/api/v1/t/{lg_code}/governance", tags=["共通化の進め方（団体・事務局）"])
NeedReader = Annotated[StaffContext, require(Permission.governance_need_read)]


def _date_text_only(value: object) -> object:
    """A date is written as text (2027-03-31): a number is not read as seconds since 1970."""
    if value is not None and not isinstance(value, (str, date)):
        raise ValueError("日付は 2027-03-31 の形で入力してください。")
    return value


JsonDate = Annotated[PlausibleDate, BeforeValidator(_date_text_only)]
NeedWriter = Annotated[StaffContext, require(Permission.governance_need_write)]
Secretariat = Annotated[StaffContext, require(Permission.governance_process_manage)]


class FiguresWrite(BaseModel):
    hours_per_year: int | None = Field(None, strict=True, ge=0, le=10_000_000, description="年間の作業時間")
    annual_cost: int | None = Field(None, strict=True, ge=0, le=10**15 - 1, description="年間経費（円）")
    current_system: str = Field("", max_length=200)
    vendor: str = Field("", max_length=200)
    renewal_on: JsonDate | None = Field(None, description="現行システムの更改時期（1900-01-01〜2100-12-31）")
    volume: int | None = Field(None, strict=True, ge=0, le=1_000_000_000, description="年間件数")
    confidential: list[Literal["hours_per_year", "annual_cost", "current_system", "vendor", "renewal_on", "volume"]] = Field(
        [], description="非公開にする項目（自団体と事務局（デジタル庁）だけが見られる）")


NON_BLANK = r"\S"


class NeedWrite(FiguresWrite):
    title: str = Field(..., min_length=1, max_length=200, pattern=NON_BLANK)
    task: str = Field(..., min_length=1, max_length=100, pattern=NON_BLANK)
    description: str = Field(..., min_length=1, max_length=4000, pattern=NON_BLANK)
    problems: str = Field("", max_length=4000)


class EndorsementWrite(FiguresWrite):
    comment: str = Field("", max_length=2000)


def _form_of(body: BaseModel) -> dict:
    data = body.model_dump()
    if data.get("renewal_on"):
        data["renewal_on"] = data["renewal_on"].isoformat()
    return data


def _need(need, viewer: str | None) -> dict[str, Any]:
    f = service.figures(need, viewer)
    return {"lg_code": need.lg_code, "id": need.id, "title": need.title, "task": need.task,
            "description": need.description, "problems": need.problems, **f,
            "hidden_labels": [service.CONFIDENTIAL_FIELDS[h] for h in f["hidden"]], "created_at": need.created_at}


def _endorsement(row, viewer: str | None) -> dict[str, Any]:
    return {"lg_code": row.lg_code, "need_lg_code": row.need_lg_code, "need_id": row.need_id, "comment": row.comment,
            **service.figures(row, viewer), "created_at": row.created_at}


def _group(view, viewer: str | None) -> dict[str, Any]:
    return {"id": view.group.id, "title": view.group.title, "bodies": [b.__dict__ for b in view.bodies],
            "body_count": len(view.bodies), "population": view.population,
            "candidate_id": view.candidate.id if view.candidate else None,
            "needs": [_need(n, viewer) for n in view.needs],
            "endorsements": [_endorsement(e, viewer) for e in view.endorsements]}


def _figure(f) -> dict | None:
    return None if f is None else {"label": f.label, "value": f.value, "unit": f.unit, "source": f.source}


def _assessment(a) -> dict[str, Any]:
    c = a.candidate
    return {"id": c.id, "name": c.name, "status": c.status, "status_label": service.STATUS_LABELS.get(c.status, ""),
            "group_id": c.group_id, "bodies": a.bodies, "population": a.population,
            "current_total": _figure(a.current_total), "hours_total": _figure(a.hours_total),
            "hours_saved": _figure(a.hours_saved), "catalog": _figure(a.catalog_figure),
            "proposed_pattern": c.proposed_pattern, "saving": a.saving,
            "patterns": [{"pattern": p.pattern, "label": p.label, "total": p.total, "bodies_total": p.bodies_total,
                          "source": p.source, "fees": p.fees} for p in a.patterns],
            "feasibility": {"law": c.feasibility_law, "spec": c.feasibility_spec, "vendors": c.feasibility_vendors},
            "perspectives": [{"checked": getattr(c, f"perspective_{i}"), "evidence": getattr(c, f"perspective_{i}_evidence")}
                             for i in (1, 2, 3)],
            "judgement": c.judgement, "version": c.version, "rows": a.rows}


# -- public --------------------------------------------------------------------------------------------

@public.get("/needs", summary="課題とそのグループ（非公開の数値を除く）")
async def public_needs(session: DbSession) -> list[dict[str, Any]]:
    return [_group(v, None) for v in await service.group_views(session)]


@public.get("/candidates", summary="共通化の候補の比較（並べ替え可）", responses=problem_responses(422))
async def public_candidates(session: DbSession, sort: Annotated[str, Query(description="並べ替えの項目: " + "・".join(service.SORT_KEYS))] = "population",
                            order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc") -> list[dict[str, Any]]:
    return [_assessment(a) for a in await service.compare(session, None, sort, order != "asc")]


@public.get("/candidates/{candidate_id}", summary="共通化の候補と評価シート（公開分）")
async def public_candidate(candidate_id: str, session: DbSession) -> dict[str, Any]:
    candidate = await service.get_candidate(session, candidate_id)
    out = _assessment(await service.assess(session, candidate, None))
    out["decisions"] = [_decision(d) for d in await service.decisions(session, candidate_id=candidate.id)]
    out["tasks"] = [{"title": t.title, "owner": t.owner, "due_on": t.due_on, "document_title": t.document_title,
                     "document_url": "" if t.document_url.startswith("/t/") else t.document_url}
                    for t in await service.tasks_of(session, candidate.id)]
    out["survey"] = await _survey(session, candidate.id, manage=False)
    return out


async def _survey(session, candidate_id: str, *, manage: bool) -> dict[str, Any] | None:
    """The feasibility survey in modules/surveys, as the page shows it (the builder's address to
    the secretariat only; the results' once published)."""
    found = await service.feasibility_survey_status(session, candidate_id)
    if found is None:
        return None
    task, survey = found
    return {"title": survey.title, "deadline": survey.deadline, "sent": bool(survey.sent_version),
            "target_count": len(survey.target_codes or survey.target.get("codes", [])),
            "survey_url": task.document_url if manage else None,
            "results_url": f"/surveys/results/{service.SECRETARIAT}/{survey.id}" if survey.published_at else None}


def _decision(d) -> dict[str, Any]:
    return {"id": d.id, "meeting_id": d.meeting_id, "candidate_id": d.candidate_id, "outcome": d.outcome,
            "outcome_label": service.OUTCOMES[d.outcome], "reason": d.reason, "service_id": d.service_id,
            "pattern": d.pattern, "burden_category": d.burden_category, "lifecycle": d.lifecycle,
            "decided_at": d.decided_at}


@public.get("/meetings/{meeting_id}", summary="連絡協議会の会議（議題・資料・事前の意見・決定・議事録）")
async def public_meeting(meeting_id: str, session: DbSession) -> dict[str, Any]:
    m = await service.get_meeting(session, meeting_id)
    return {"id": m.id, "title": m.title, "held_on": m.held_on, "agenda": m.agenda, "documents": m.documents,
            "minutes": m.minutes if m.minutes_published_at else None, "minutes_published_at": m.minutes_published_at,
            "comments": [{"author": c.author, "body_code": c.body_code, "candidate_id": c.candidate_id, "text": c.text,
                          "created_at": c.created_at} for c in await service.comments_of(session, m.id)],
            "decisions": [_decision(d) for d in await service.decisions(session, meeting_id=m.id)]}


@public.get("/rollout/{service_id}", summary="展開の進み具合（年度別・都道府県別）")
async def public_rollout(service_id: str, session: DbSession) -> dict[str, Any]:
    plan = await service.get_plan(session, service_id)
    rows = await service.rollout_rows(session, plan)
    p = await service.progress(session, plan, rows)
    return {"service_id": plan.service_id, "service_name": p.service_name, "pilot_fy": plan.pilot_fy,
            "rollout_fy": plan.rollout_fy, "national_fy": plan.national_fy, "planned": p.planned, "moved": p.moved,
            "undisclosed": p.undisclosed,
            "by_year": [{"fiscal_year": y, "bodies": n} for y, n in p.by_year],
            "by_prefecture": [{"prefecture": k, "planned": n, "moved": m} for k, n, m in p.by_prefecture]}


@public.get("/data/{name}", summary="オープンデータ（needs・candidates・decisions）", responses=problem_responses(404))
async def public_data(name: str, session: DbSession) -> dict[str, Any]:
    if name not in opendata.DATASETS:
        from kiban.kit.errors import NotFound

        raise NotFound("お探しのオープンデータはありません。needs・candidates・decisions のいずれかです。")
    header, rows = await opendata.DATASETS[name](session)
    return {"columns": header, "rows": [[v.isoformat() if isinstance(v, date) else v for v in r] for r in rows]}


# -- a body --------------------------------------------------------------------------------------------

@tenant.get("", summary="自団体の課題・賛同と展開の見込み（更改年度・負担額）")
async def mine(staff: NeedReader, session: DbSession) -> dict[str, Any]:
    code = staff.tenant.lg_code
    return {"needs": [_need(n, code) for n in await service.needs_of_tenant(session)],
            "endorsements": [_endorsement(e, code) for e in await service.endorsements_of_tenant(session)],
            "rollout": [{"service_id": plan.service_id, "service_name": name, "move_fy": row.move_fy,
                         "phase": row.phase, "renewal_fy": row.renewal_fy, "renewal_source": row.renewal_source,
                         "current_cost": row.current_cost, "expected_fee": row.fee, "risk": row.risk}
                        for plan, name, row in await service.my_rollout(session, code)]}


@tenant.post("/needs", summary="課題の提出", status_code=201, responses=problem_responses(422))
async def submit_need(body: NeedWrite, staff: NeedWriter, session: DbSession) -> dict[str, Any]:
    values = service.parse_need(_form_of(body))
    need = await service.submit_need(session, staff.label, values)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.need.submitted", target_type="governance_need",
                       target_id=need.id, details={"title": need.title, "confidential": need.confidential})
    await session.commit()
    out = _need(need, staff.tenant.lg_code)
    out["group_id"] = await service.group_of_need(session, need)
    return out


@tenant.get("/needs/{need_lg_code}/{need_id}", summary="課題の詳細（非公開の数値は提出団体と事務局のみ）")
async def get_need(need_lg_code: str, need_id: str, staff: NeedReader, session: DbSession) -> dict[str, Any]:
    need = await service.get_need(session, need_lg_code, need_id)
    code = staff.tenant.lg_code
    return {**_need(need, code), "group_id": await service.group_of_need(session, need),
            "endorsements": [_endorsement(e, code) for e in await service.endorsements_of(session, [(need.lg_code, need.id)])]}


@tenant.put("/needs/{need_lg_code}/{need_id}/endorsement", summary="課題への賛同（「うちも同じ」、自団体の数値つき）",
            responses=problem_responses(422))
async def endorse(need_lg_code: str, need_id: str, body: EndorsementWrite, staff: NeedWriter,
                  session: DbSession) -> dict[str, Any]:
    values = service.parse_endorsement(_form_of(body))
    row, created = await service.endorse(session, staff.tenant, need_lg_code, need_id, staff.label, values)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.need.endorsed", target_type="governance_need",
                       target_id=need_id, details={"need_of": need_lg_code, "created": created})
    await session.commit()
    return _endorsement(row, staff.tenant.lg_code)


# -- the secretariat ---------------------------------------------------------------------------------------

@tenant.get("/groups", summary="課題のグループ（事務局: 非公開の数値を含む）")
async def groups(staff: Secretariat, session: DbSession) -> list[dict[str, Any]]:
    secretariat_only(staff)
    return [_group(v, staff.tenant.lg_code) for v in await service.group_views(session)]


@tenant.post("/groups/{group_id}/candidate", summary="グループを共通化の候補にする（何度送っても1件）",
             responses=problem_responses(422))
async def make_candidate(group_id: str, staff: Secretariat, session: DbSession,
                         name: Annotated[str, Body(embed=True, max_length=200)] = "") -> dict[str, Any]:
    secretariat_only(staff)
    candidate, created = await service.create_candidate(session, group_id, name, staff.label)
    if created:
        await audit.record(session, audit.Actor.of_staff(staff), "governance.candidate.created",
                           target_type="governance_candidate", target_id=candidate.id, details={"title": candidate.name})
    await session.commit()
    return _assessment(await service.assess(session, candidate, staff.tenant.lg_code))


@tenant.get("/candidates/{candidate_id}", summary="評価シート（事務局: 非公開の数値を含む）")
async def candidate(candidate_id: str, staff: Secretariat, session: DbSession) -> dict[str, Any]:
    secretariat_only(staff)
    out = _assessment(await service.assess(session, await service.get_candidate(session, candidate_id),
                                           staff.tenant.lg_code))
    out["survey"] = await _survey(session, candidate_id, manage=True)
    return out


@tenant.put("/candidates/{candidate_id}/assessment", summary="評価シートの保存（判断は人が書く）",
            responses=problem_responses(409, 422))
async def save_assessment(candidate_id: str, staff: Secretariat, session: DbSession,
                          body: Annotated[dict[str, Any], Body(description="評価シートの項目（画面と同じ名前）と expected_version")]) -> dict[str, Any]:
    secretariat_only(staff)
    form = {k: ("1" if v is True else "" if v is False else "" if v is None else str(v)) for k, v in body.items()}
    saved = await service.save_assessment(session, candidate_id, form, staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.candidate.assessed",
                       target_type="governance_candidate", target_id=saved.id, details={"version": saved.version})
    await session.commit()
    return _assessment(await service.assess(session, saved, staff.tenant.lg_code))


class DecisionWrite(BaseModel):
    candidate_id: str = Field(..., max_length=36)
    outcome: Literal["adopted", "continued", "rejected"] = Field(..., description="採択・継続検討・不採択")
    reason: str = Field(..., min_length=1, max_length=4000, pattern=NON_BLANK)
    pattern: Literal["common_a", "common_b", "standard", "individual"] | None = Field(None, description="採択のとき必須")
    burden_category: Literal["common_saas", "dpi", "infrastructure", "municipal"] | None = Field(None, description="採択のとき必須")
    lifecycle: Literal["candidate", "pilot", "rollout", "national"] | None = Field(None, description="採択のとき必須")


@tenant.post("/meetings/{meeting_id}/decisions", summary="連絡協議会の決定（採択でカタログに登録）", status_code=201,
             responses=problem_responses(409, 422))
async def decide(meeting_id: str, body: DecisionWrite, staff: Secretariat, session: DbSession) -> dict[str, Any]:
    secretariat_only(staff)
    decision = await service.decide(session, meeting_id, body.candidate_id,
                                    {k: v or "" for k, v in body.model_dump().items()}, staff.label,
                                    by=audit.Actor.of_staff(staff))
    await audit.record(session, audit.Actor.of_staff(staff), "governance.decision.made",
                       target_type="governance_candidate", target_id=decision.candidate_id, purpose="連絡協議会の決定",
                       details={"outcome": decision.outcome, "meeting": meeting_id, "service": decision.service_id,
                                "reason": decision.reason[:200]})
    await session.commit()
    return _decision(decision)


@tenant.get("/rollout/{service_id}", summary="展開計画と更改時期のリスク一覧（事務局）")
async def rollout(service_id: str, staff: Secretariat, session: DbSession) -> dict[str, Any]:
    secretariat_only(staff)
    plan = await service.get_plan(session, service_id)
    rows = await service.rollout_rows(session, plan)
    await catalog.get_service(session, service_id)
    return {"service_id": plan.service_id, "pilot_fy": plan.pilot_fy, "rollout_fy": plan.rollout_fy,
            "national_fy": plan.national_fy, "annual_cost": plan.annual_cost,
            "rows": [r.__dict__ for r in rows], "risks": [r.__dict__ for r in rows if r.risk]}


class MergeWrite(BaseModel):
    into: str = Field(..., max_length=36, description="統合先のグループ")


class SplitWrite(BaseModel):
    need_lg_code: str = Field(..., pattern=r"^\d{6}$")
    need_id: str = Field(..., max_length=36)


@tenant.post("/groups/{group_id}/merge", summary="グループの統合（事務局）", responses=problem_responses(409, 422))
async def merge(group_id: str, body: MergeWrite, staff: Secretariat, session: DbSession) -> dict[str, Any]:
    secretariat_only(staff)
    target = await service.merge_groups(session, group_id, body.into)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.group.merged", target_type="governance_need_group",
                       target_id=target.id, details={"from": group_id})
    await session.commit()
    (view,) = await service.group_views(session, [target.id])
    return _group(view, staff.tenant.lg_code)


@tenant.post("/groups/{group_id}/split", summary="課題をグループから切り離す（事務局）", status_code=201,
             responses=problem_responses(422))
async def split(group_id: str, body: SplitWrite, staff: Secretariat, session: DbSession) -> dict[str, Any]:
    secretariat_only(staff)
    group = await service.split_need(session, group_id, body.need_lg_code, body.need_id)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.group.split", target_type="governance_need_group",
                       target_id=group.id, details={"from": group_id})
    await session.commit()
    (view,) = await service.group_views(session, [group.id])
    return _group(view, staff.tenant.lg_code)


class TaskWrite(BaseModel):
    title: str = Field(..., min_length=1, max_length=200, pattern=NON_BLANK)
    owner: str = Field(..., min_length=1, max_length=200, pattern=NON_BLANK)
    due_on: JsonDate | None = None
    document_title: str = Field("", max_length=200)
    document_url: str = Field("", max_length=500, pattern=r"^(https?://.*)?$")


@tenant.post("/candidates/{candidate_id}/tasks", summary="実現可能性調査の作業の追加（事務局）", status_code=201,
             responses=problem_responses(422))
async def add_task(candidate_id: str, body: TaskWrite, staff: Secretariat, session: DbSession) -> dict[str, Any]:
    secretariat_only(staff)
    data = body.model_dump()
    data["due_on"] = data["due_on"].isoformat() if data["due_on"] else ""
    task = await service.add_task(session, candidate_id, data)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.task.added", target_type="governance_candidate",
                       target_id=candidate_id, details={"title": task.title})
    await session.commit()
    return {"id": task.id, "title": task.title, "owner": task.owner, "due_on": task.due_on,
            "document_title": task.document_title, "document_url": task.document_url}


@tenant.get("/council", summary="連絡協議会の構成員と会議（事務局）")
async def council(staff: Secretariat, session: DbSession) -> dict[str, Any]:
    secretariat_only(staff)
    return {"members": [{"id": m.id, "name": m.name, "body": m.body, "kind": m.kind,
                         "kind_label": service.MEMBER_KINDS[m.kind], "org_code": m.org_code}
                        for m in await service.members(session)],
            "meetings": [{"id": m.id, "title": m.title, "held_on": m.held_on, "agenda": m.agenda,
                          "minutes_published_at": m.minutes_published_at} for m in await service.meetings(session)]}


class MemberWrite(BaseModel):
    name: str = Field(..., min_length=1, max_length=100, pattern=NON_BLANK)
    body: str = Field(..., min_length=1, max_length=200, pattern=NON_BLANK)
    kind: Literal["national", "association", "prefecture", "municipality"]
    org_code: str | None = Field(None, pattern=r"^\d{6}$")


@tenant.post("/council/members", summary="連絡協議会の構成員の追加（事務局）", status_code=201, responses=problem_responses(422))
async def add_member(body: MemberWrite, staff: Secretariat, session: DbSession) -> dict[str, Any]:
    secretariat_only(staff)
    member = await service.add_member(session, body.model_dump())
    await audit.record(session, audit.Actor.of_staff(staff), "governance.council.member_added",
                       target_type="governance_council_member", target_id=member.id, details={"body": member.body})
    await session.commit()
    return {"id": member.id, "name": member.name, "body": member.body, "kind": member.kind, "org_code": member.org_code}


class MeetingWrite(BaseModel):
    title: str = Field(..., min_length=1, max_length=200, pattern=NON_BLANK)
    held_on: JsonDate
    agenda: list[str] = Field([], description="議題にする共通化の候補の id")


@tenant.post("/council/meetings", summary="連絡協議会の会議の登録（事務局）", status_code=201, responses=problem_responses(422))
async def create_meeting(body: MeetingWrite, staff: Secretariat, session: DbSession) -> dict[str, Any]:
    secretariat_only(staff)
    meeting = await service.create_meeting(session, {"title": body.title, "held_on": body.held_on.isoformat(),
                                                     "agenda": body.agenda})
    await audit.record(session, audit.Actor.of_staff(staff), "governance.meeting.created",
                       target_type="governance_meeting", target_id=meeting.id, details={"title": meeting.title})
    await session.commit()
    return await public_meeting(meeting.id, session)


class DocumentWrite(BaseModel):
    title: str = Field(..., min_length=1, max_length=200, pattern=NON_BLANK)
    url: str = Field(..., max_length=500, pattern=r"^https?://")


@tenant.post("/meetings/{meeting_id}/documents", summary="会議資料の追加（事務局）", status_code=201,
             responses=problem_responses(422))
async def add_document(meeting_id: str, body: DocumentWrite, staff: Secretariat, session: DbSession) -> dict[str, Any]:
    secretariat_only(staff)
    await service.add_document(session, meeting_id, body.title, body.url)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.meeting.document_added",
                       target_type="governance_meeting", target_id=meeting_id)
    await session.commit()
    return await public_meeting(meeting_id, session)


class MinutesWrite(BaseModel):
    minutes: str = Field(..., min_length=1, max_length=50_000, pattern=NON_BLANK)


@tenant.put("/meetings/{meeting_id}/minutes", summary="議事録の公開（事務局）", responses=problem_responses(422))
async def publish_minutes(meeting_id: str, body: MinutesWrite, staff: Secretariat, session: DbSession) -> dict[str, Any]:
    secretariat_only(staff)
    await service.publish_minutes(session, meeting_id, body.minutes)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.meeting.minutes_published",
                       target_type="governance_meeting", target_id=meeting_id)
    await session.commit()
    return await public_meeting(meeting_id, session)


class CommentWrite(BaseModel):
    text: str = Field(..., min_length=1, max_length=4000, pattern=NON_BLANK)
    candidate_id: str | None = Field(None, max_length=36)


Commenter = Annotated[StaffContext, require(Permission.governance_comment_write)]


@tenant.post("/meetings/{meeting_id}/comments", summary="連絡協議会への事前の意見（構成員の団体）", status_code=201,
             responses=problem_responses(409, 422))
async def comment(meeting_id: str, body: CommentWrite, staff: Commenter, session: DbSession) -> dict[str, Any]:
    added = await service.add_comment(session, meeting_id, body.candidate_id, body.text, staff.tenant.name,
                                      staff.tenant.lg_code)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.meeting.commented",
                       target_type="governance_meeting", target_id=meeting_id)
    await session.commit()
    return {"id": added.id, "meeting_id": added.meeting_id, "candidate_id": added.candidate_id, "text": added.text,
            "author": added.author}


class PlanWrite(BaseModel):
    pilot_fy: int = Field(..., strict=True, ge=2000, le=2100)
    rollout_fy: int = Field(..., strict=True, ge=2000, le=2100)
    national_fy: int = Field(..., strict=True, ge=2000, le=2100)
    annual_cost: int | None = Field(None, strict=True, ge=0, le=10**15 - 1)


@tenant.put("/rollout/{service_id}", summary="展開計画の保存（事務局）", responses=problem_responses(422))
async def save_rollout(service_id: str, body: PlanWrite, staff: Secretariat, session: DbSession) -> dict[str, Any]:
    secretariat_only(staff)
    plan = await service.save_plan(session, service_id, {k: "" if v is None else str(v) for k, v in body.model_dump().items()},
                                   staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.rollout.saved",
                       target_type="governance_rollout_plan", target_id=plan.service_id,
                       details={"pilot": plan.pilot_fy, "rollout": plan.rollout_fy, "national": plan.national_fy})
    await session.commit()
    return await rollout(service_id, staff, session)


class SurveyStart(BaseModel):
    deadline: JsonDate = Field(..., description="回答期限（1900-01-01〜2100-12-31。送付は期限前に限る）")
    minutes: int = Field(30, strict=True, ge=1, le=6000, description="1団体あたりの回答時間の見込み（分）")
    title: str = Field("", max_length=200, description="調査の名前（空なら「実現可能性調査: 候補名」）")
    description: str = Field("", max_length=4000)


@tenant.post("/candidates/{candidate_id}/survey", summary="実現可能性調査のアンケートを調査・照会に作る（事務局。何度送っても1件）",
             responses=problem_responses(422))
async def start_survey(candidate_id: str, body: SurveyStart, staff: Secretariat, session: DbSession) -> dict[str, Any]:
    secretariat_only(staff)
    form = {**body.model_dump(), "deadline": body.deadline.isoformat(), "minutes": str(body.minutes)}
    task, survey, created = await service.start_survey(session, candidate_id, form, staff.label,
                                                       f"{staff.tenant.name}（事務局）")
    if created:
        await _audit_survey(session, staff, candidate_id, survey)
    await session.commit()
    return {"candidate_id": candidate_id, "survey_id": survey.id, "survey_url": task.document_url,
            "title": survey.title, "deadline": survey.deadline, "target_codes": survey.target["codes"],
            "questions": len(survey.definition.get("questions", [])), "sent": bool(survey.sent_version),
            "created": created}


class QuestionWrite(BaseModel):
    question: str = Field(..., min_length=1, max_length=2000, pattern=NON_BLANK)


@tenant.post("/candidates/{candidate_id}/questions", summary="実現可能性調査の質問の追加（事務局）", status_code=201,
             responses=problem_responses(422))
async def add_question(candidate_id: str, body: QuestionWrite, staff: Secretariat, session: DbSession) -> dict[str, Any]:
    secretariat_only(staff)
    question = await service.add_question(session, candidate_id, body.question)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.question.added",
                       target_type="governance_candidate", target_id=candidate_id, details={"question": question.id})
    await session.commit()
    return {"id": question.id, "candidate_id": question.candidate_id, "text": question.text}


@tenant.get("/questions", summary="自団体への実現可能性調査の質問と自団体の回答")
async def my_questions(staff: NeedReader, session: DbSession) -> list[dict[str, Any]]:
    return [{"id": q.id, "candidate_id": c.id, "candidate_name": c.name, "text": q.text,
             "answer": a.answer if a else None} for c, q, a in await service.questions_for_body(session, staff.tenant.lg_code)]


class AnswerWrite(BaseModel):
    answer: str = Field(..., min_length=1, max_length=4000, pattern=NON_BLANK)


@tenant.put("/questions/{question_id}/answer", summary="実現可能性調査の質問への回答（何度送っても1件）",
            responses=problem_responses(422))
async def answer(question_id: str, body: AnswerWrite, staff: NeedWriter, session: DbSession) -> dict[str, Any]:
    row = await service.answer(session, staff.tenant, question_id, body.answer, staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "governance.question.answered",
                       target_type="governance_candidate", target_id=question_id)
    await session.commit()
    return {"question_id": row.question_id, "answer": row.answer, "answered_at": row.answered_at}
