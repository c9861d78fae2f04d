"""JSON twins of the 広域被災者データベース tenant pages: the disasters, opening and closing
one, shelters, the 被災者台帳 (list, detail, registration, update), 名寄せ (candidates, decisions,
answering a confirmation, 一括名寄せ), roster imports, and the situation dashboard (statistics
the moment records are written, for the systems of municipalities, prefectures and 内閣府)."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from kiban.core.audit import service as audit
from kiban.core.identity.api_admin import JsonWrite
from kiban.core.identity.dependencies import StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.identity.schemas_admin import NoFields
from kiban.core.registry import service as registry
from kiban.core.registry.snapshot import load_snapshot
from kiban.core.tenancy.dependencies import DbSession
from kiban.kit import csrf
from kiban.kit.db import commit_if_written
from kiban.kit.errors import InvalidInput, KibanError, NotFound
from kiban.kit.openapi import problem_responses
from kiban.modules.disaster import imports, matching, service
from kiban.modules.disaster.models import DISASTER_KINDS
from kiban.modules.disaster.roster import WHEREABOUTS
from kiban.modules.disaster.schemas import (
    AskerRecord,
    CandidateList,
    CandidateRead,
    Confirm,
    DecisionRead,
    DisasterList,
    DisasterOpen,
    DisasterRead,
    ImportAccept,
    ImportRead,
    ImportRow,
    LinkageRead,
    LinkagePair,
    LinkedRecord,
    MatchRequest,
    MatchWrite,
    RecordDetail,
    RecordList,
    RecordRead,
    RecordSummary,
    RecordUpdate,
    RecordWrite,
    ShelterList,
    ShelterRead,
    ShelterUpdate,
    ShelterWrite,
    SupportEstimate,
    Waiting,
)
from kiban.modules.disaster.support import SupportInputError, estimate

router = APIRouter(prefix="/api/v1/t/{lg_code}/disasters", tags=["広域被災者データベース"])
Reader = Annotated[StaffContext, require(Permission.disaster_record_read)]


class Row(BaseModel):
    label: str
    count: int | None = Field(description="登録件数（registrations と同じ。互換のため）。非表示のときは null")
    registrations: int | None = Field(description=f"登録件数。{service.SMALL_COUNT}人未満で非表示のときは null")
    people: int | None = Field(description="人数（名寄せ後: 同じ人と確認された記録を1人と数える）。"
                                           f"{service.SMALL_COUNT}人未満で非表示のときは null")


class CrowdedShelterRead(BaseModel):
    name: str
    municipality: str
    occupancy: int
    capacity: int
    percent: int = Field(description="収容率（%）")


class DashboardRead(BaseModel):
    disaster_id: str
    disaster_name: str
    scope: str = Field(description="municipality / prefecture / national")
    registrations: int
    people: int = Field(description="名寄せ後の人数")
    small_count_suppressed_below: int | None = Field(description="この人数未満の行を非表示にした基準。正確な集計では null")
    tables: dict[str, list[Row]]
    shelter_warning_percent: int = Field(description="避難所の混雑警告の基準（収容率 %、テナント設定）")
    crowded_shelters: list[CrowdedShelterRead]
    counted_at: datetime | None = Field(None, description="数えた時刻。登録の多い区域は最大30秒前の集計を返す")


@router.get("/{disaster_id}/dashboard", summary="状況把握（人数の集計。団体の範囲に応じて）", response_model=DashboardRead)
async def dashboard(disaster_id: str, staff: Reader, session: DbSession, view: str = "") -> DashboardRead:
    """``view=national``: the whole disaster (prefectures and national bodies)."""
    disaster = await service.get_disaster(session, disaster_id)
    board = await service.dashboard(session, staff.tenant, disaster_id, national=view == "national")
    await session.commit()  # a large area's recount, stored for every server process
    return DashboardRead(disaster_id=disaster.id, disaster_name=disaster.name, scope=board.scope,
                         registrations=board.total, people=board.people,
                         small_count_suppressed_below=None if board.exact else service.SMALL_COUNT,
                         tables={name: [Row(label=row.label, count=row.registrations, registrations=row.registrations,
                                            people=row.people) for row in rows]
                                 for name, rows in board.tables.items()},
                         shelter_warning_percent=board.warning_percent, counted_at=board.counted_at,
                         crowded_shelters=[CrowdedShelterRead(name=c.name, municipality=c.municipality, occupancy=c.occupancy,
                                                              capacity=c.capacity, percent=c.percent) for c in board.crowded])


# ==========================================================================================================
# JSON twins of the tenant pages (issue 10 item 6). Each route calls the same service functions as
# its page in web.py, so who may see, write or decide what is decided in one place. Writes sent with
# the session cookie must be JSON (``JsonWrite``); a roster upload (multipart) with the session
# cookie must carry the CSRF cookie's value in ``X-CSRF-Token`` (a page on another site cannot set
# a header without a CORS preflight this app does not grant). API keys may read and write records
# (被災者台帳の閲覧・登録・更新: a shelter's or a municipality's system registering people); opening
# and closing a disaster and 一括名寄せ stay with signed-in staff (API_KEY_WITHHELD).
# ==========================================================================================================

Writer = Annotated[StaffContext, require(Permission.disaster_record_write)]
Opener = Annotated[StaffContext, require(Permission.disaster_disaster_manage)]
DECISION_LABELS = {"confirmed": "同じ人", "rejected": "別の人", "auto": "同じ人（一括名寄せ）"}
ACTION_LABELS = {"link": "結び付ける", "borderline": "境界（結び付けない・職員が確認）", "kept": "判断済みのため変更しない"}
NOT_FOUND_OR_CLOSED = problem_responses(409, 415, s409="この災害の対応は終了しています（または先に更新されました）")


def _base(staff: StaffContext, disaster_id: str) -> str:
    return f"/api/v1/t/{staff.tenant.lg_code}/disasters/{disaster_id}"


async def _names(session, codes: set[str]) -> dict[str, str]:
    return await registry.names_by_code(session, {c for c in codes if c})


def _may_close(staff: StaffContext, disaster) -> bool:
    return (disaster.closed_at is None and staff.tenant.lg_code in (disaster.opened_by_code, service.CABINET_OFFICE)
            and staff.can(Permission.disaster_disaster_manage))


def _disaster(staff: StaffContext, disaster) -> DisasterRead:
    return DisasterRead(id=disaster.id, name=disaster.name, kind=disaster.kind, occurred_on=disaster.occurred_on,
                        description=disaster.description or "", opened_by_code=disaster.opened_by_code,
                        opened_by=disaster.opened_by, opened_at=disaster.opened_at, closed_at=disaster.closed_at,
                        state_label="対応終了" if disaster.closed_at else "対応中", may_close=_may_close(staff, disaster),
                        url=_base(staff, disaster.id))


@router.get("", summary="災害の一覧（対応中と終了）", response_model=DisasterList)
async def disasters(staff: Reader, session: DbSession) -> DisasterList:
    return DisasterList(items=[_disaster(staff, d) for d in await service.list_disasters(session)],
                        may_open=service.may_open_disasters(staff.tenant) and staff.can(Permission.disaster_disaster_manage),
                        kinds=list(DISASTER_KINDS))


@router.post("", summary="災害の開設（都道府県・内閣府）", response_model=DisasterRead, status_code=201,
             responses=problem_responses(415))
async def open_disaster(body: DisasterOpen, staff: Opener, _json: JsonWrite, session: DbSession) -> DisasterRead:
    errors: list[dict] = []
    try:
        occurred_on = service.parse_date(body.occurred_on, "発生日")
    except InvalidInput as exc:
        occurred_on = None
        errors.append({"field": "occurred_on", "message": exc.detail})
    affected = await service.resolve_codes(session, body.affected, "affected", "被害のある市町村", errors)
    relief_act = await service.resolve_codes(session, body.relief_act, "relief_act", "災害救助法を適用する市町村", errors)
    if errors:
        raise service.all_errors(errors)
    disaster = await service.open_disaster(session, staff.tenant, name=body.name, kind=body.kind, occurred_on=occurred_on,
                                           description=body.description, affected=affected, relief_act=relief_act,
                                           actor=staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.opened", target_type="disaster", target_id=disaster.id,
                       details={"name": disaster.name})
    await session.commit()
    return _disaster(staff, disaster)


@router.post("/{disaster_id}/close", summary="対応の終了（開設した団体・内閣府。confirm が必要）", response_model=DisasterRead,
             responses=problem_responses(409, 415, s409="この災害の対応はすでに終了しています"))
async def close_disaster(disaster_id: str, body: Confirm, staff: Opener, _json: JsonWrite, session: DbSession) -> DisasterRead:
    await service.close_disaster(session, staff.tenant, disaster_id, dry_run=True)
    if not body.confirm:
        raise InvalidInput("対応を終了する前に、確認のチェックを入れてください。",
                           errors=[{"field": "confirm", "message": "対応を終了する前に、確認のチェックを入れてください。"}])
    disaster = await service.close_disaster(session, staff.tenant, disaster_id)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.closed", target_type="disaster", target_id=disaster.id)
    await session.commit()
    return _disaster(staff, disaster)


# -- shelters ----------------------------------------------------------------------------------------------

def _shelter(staff: StaffContext, disaster_id: str, shelter, warning: int) -> ShelterRead:
    return ShelterRead(id=shelter.id, name=shelter.name, address=shelter.address, capacity=shelter.capacity,
                       occupancy=shelter.occupancy,
                       percent=shelter.occupancy * 100 // shelter.capacity if shelter.capacity else None,
                       crowded=service.is_crowded(shelter, warning), is_open=shelter.is_open, needs=shelter.needs,
                       version=shelter.version, updated_by=shelter.updated_by, updated_at=shelter.updated_at,
                       register_url=f"/t/{staff.tenant.lg_code}/disasters/{disaster_id}/shelters/{shelter.id}/register")


@router.get("/{disaster_id}/shelters", summary="この団体の避難所", response_model=ShelterList)
async def shelters(disaster_id: str, staff: Reader, session: DbSession) -> ShelterList:
    await service.get_disaster(session, disaster_id)
    warning = await service.shelter_warning_percent(session, staff.tenant)
    return ShelterList(items=[_shelter(staff, disaster_id, s, warning)
                              for s in await service.shelters_of_tenant(session, disaster_id)], warning_percent=warning)


async def _save_shelter(disaster_id: str, shelter_id: str | None, body: ShelterWrite, expected_version: int,
                        staff: StaffContext, session) -> ShelterRead:
    disaster = await service.get_disaster(session, disaster_id)
    if not service.is_municipality(staff.tenant):
        raise NotFound("ページが見つかりません。")
    if shelter_id and await service.get_shelter(session, disaster_id, shelter_id) is None:
        raise NotFound("避難所が見つかりません。")
    shelter = await service.save_shelter(
        session, disaster, shelter_id=shelter_id, name=body.name, address=body.address, capacity=str(body.capacity),
        occupancy=str(body.occupancy), is_open=body.is_open, needs=body.needs, expected_version=expected_version,
        actor=staff.label, over_capacity_confirmed=body.over_capacity_confirmed)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.shelter.saved", target_type="shelter", target_id=shelter.id,
                       details={"name": shelter.name, "occupancy": shelter.occupancy, "open": shelter.is_open})
    await session.commit()
    return _shelter(staff, disaster_id, shelter, await service.shelter_warning_percent(session, staff.tenant))


@router.post("/{disaster_id}/shelters", summary="避難所の開設（市区町村）。収容人数を超える避難者数は over_capacity_confirmed が必要",
             response_model=ShelterRead, status_code=201, responses=NOT_FOUND_OR_CLOSED)
async def create_shelter(disaster_id: str, body: ShelterWrite, staff: Writer, _json: JsonWrite,
                         session: DbSession) -> ShelterRead:
    return await _save_shelter(disaster_id, None, body, 0, staff, session)


@router.put("/{disaster_id}/shelters/{shelter_id}", summary="避難所の更新（expected_version が違えば 409）",
            response_model=ShelterRead, responses=NOT_FOUND_OR_CLOSED)
async def update_shelter(disaster_id: str, shelter_id: str, body: ShelterUpdate, staff: Writer, _json: JsonWrite,
                         session: DbSession) -> ShelterRead:
    return await _save_shelter(disaster_id, shelter_id, body, body.expected_version, staff, session)


# -- records ------------------------------------------------------------------------------------------------

def _summary(staff: StaffContext, disaster_id: str, record, names: dict[str, str]) -> dict:
    return {"id": record.id, "family_name": record.family_name, "given_name": record.given_name,
            "family_kana": record.family_kana, "given_kana": record.given_kana, "registered_by_code": record.lg_code,
            "registered_by": names.get(record.lg_code, record.lg_code), "whereabouts": record.whereabouts,
            "whereabouts_label": WHEREABOUTS.get(record.whereabouts, record.whereabouts),
            "current_lg_code": record.current_lg_code,
            "current_lg_name": names.get(record.current_lg_code, record.current_lg_code),
            "own": record.lg_code == staff.tenant.lg_code, "url": f"{_base(staff, disaster_id)}/records/{record.id}"}


def _record(staff: StaffContext, disaster_id: str, record, names: dict[str, str]) -> RecordRead:
    return RecordRead(**_summary(staff, disaster_id, record, names), birth_date=record.birth_date, sex=record.sex,
                      home_lg_code=record.home_lg_code, home_lg_name=names.get(record.home_lg_code, record.home_lg_code),
                      home_address=record.home_address, shelter_id=record.shelter_id,
                      wide_area_lg_code=record.wide_area_lg_code, phone=record.phone, household_key=record.household_key,
                      household_size=record.household_size, care_needs=list(record.care_needs or []),
                      damage_level=record.damage_level, risai_status=record.risai_status,
                      rebuild_plan=record.rebuild_plan, demolished=record.demolished,
                      long_term_evacuation=record.long_term_evacuation, supports=list(record.supports or []),
                      note=record.note, protected=record.protected, version=record.version, created_by=record.created_by,
                      created_at=record.created_at, updated_at=record.updated_at)


def _codes(record) -> set[str]:
    return {record.lg_code, record.current_lg_code, record.home_lg_code}


@router.get("/{disaster_id}/records", summary="被災者台帳（見てよい記録。氏名・かなで検索、100件ずつ）",
            response_model=RecordList)
async def records(disaster_id: str, staff: Reader, session: DbSession,
                  q: Annotated[str, Query(max_length=100, description="氏名またはかなの一部")] = "",
                  page: Annotated[int, Query(ge=1, le=1_000_000)] = 1) -> RecordList:
    await service.get_disaster(session, disaster_id)
    listed = await service.records_page(session, staff.tenant, audit.Actor.of_staff(staff), disaster_id, q=q, page=page)
    await commit_if_written(session)
    names = await _names(session, set().union(*(_codes(r) for r in listed.records)) if listed.records else set())
    return RecordList(total=listed.total, more=listed.more, page=listed.page, pages=listed.pages, page_size=service.PAGE_SIZE, q=q,
                      items=[RecordSummary(**_summary(staff, disaster_id, r, names)) for r in listed.records])


def _form(body: RecordWrite) -> service.FormValues:
    values = body.model_dump(exclude={"care_needs", "supports", "expected_version"})
    for flag in ("demolished", "long_term_evacuation", "protected"):
        values[flag] = "on" if values[flag] else ""
    values["household_size"] = str(body.household_size)
    return service.FormValues(values, {"care_needs": body.care_needs, "supports": body.supports})


@router.post("/{disaster_id}/records", summary="被災者の登録", response_model=RecordRead, status_code=201,
             responses=problem_responses(409, 415, s409="この災害の対応は終了しています"))
async def create_record(disaster_id: str, body: RecordWrite, staff: Writer, _json: JsonWrite,
                        session: DbSession) -> RecordRead:
    disaster = await service.get_disaster(session, disaster_id)
    record = await service.register(session, staff.tenant, disaster, await service.record_input(session, _form(body)),
                                    actor=staff.label)
    await service.record_registration(session, audit.Actor.of_staff(staff), "disaster.record.registered", record)
    await session.commit()
    return _record(staff, disaster_id, record, await _names(session, _codes(record)))


@router.put("/{disaster_id}/records/{record_id}", summary="記録の更新（この団体の記録。expected_version が違えば 409）",
            response_model=RecordRead, responses=problem_responses(409, 415, s409="ほかの職員が先に更新しました"))
async def update_record(disaster_id: str, record_id: str, body: RecordUpdate, staff: Writer, _json: JsonWrite,
                        session: DbSession) -> RecordRead:
    disaster = await service.get_disaster(session, disaster_id)
    await service.own_record(session, disaster_id, record_id)
    record = await service.update_record(session, staff.tenant, disaster, record_id,
                                         await service.record_input(session, _form(body)),
                                         expected_version=body.expected_version)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.record.updated", target_type="victim_record",
                       target_id=record.id, subject_id=record.resident_subject_id,
                       details={"version": record.version, "whereabouts": record.whereabouts, "protected": record.protected})
    await session.commit()
    return _record(staff, disaster_id, record, await _names(session, _codes(record)))


def _probability(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _decision(d, names: dict[str, str]) -> DecisionRead:
    if d.reverted_at:
        state = "取り消し済み"
    elif d.acceptance == service.PENDING:
        state = f"{names.get(d.awaiting_code, d.awaiting_code)}の受け入れ待ち"
    elif d.acceptance == "declined":
        state = "断られた（別の人）"
    else:
        state = "有効"
    return DecisionRead(id=d.id, record_ids=[d.record_a_id, d.record_b_id], decision=d.decision,
                        decision_label=DECISION_LABELS.get(d.decision, d.decision), probability=_probability(d.probability),
                        reasons=list(d.reasons or []), decided_by_code=d.decided_by_code, decided_by=d.decided_by,
                        decided_at=d.decided_at, acceptance=d.acceptance or "", state_label=state,
                        awaiting_code=d.awaiting_code, reverted_at=d.reverted_at)


def _other(d, record_id: str) -> str:
    return d.record_b_id if d.record_a_id == record_id else d.record_a_id


@router.get("/{disaster_id}/records/{record_id}", summary="記録の詳細（見てよい記録だけ。ほかの団体の記録の閲覧は監査ログへ）",
            response_model=RecordDetail)
async def record(disaster_id: str, record_id: str, staff: Reader, session: DbSession) -> RecordDetail:
    disaster = await service.get_disaster(session, disaster_id)
    actor = audit.Actor.of_staff(staff)
    found = await service.get_visible_record(session, staff.tenant, disaster_id, record_id, actor)
    await commit_if_written(session)  # each audited read at once (web.record_page)
    made = await service.decisions(session, disaster_id, {found.id})
    linked_ids = {_other(d, found.id) for d in made if service.links(d)}
    linked = await service.visible_records(session, staff.tenant, disaster_id, actor=actor,
                                           record_ids=sorted(linked_ids)) if linked_ids else []
    await commit_if_written(session)
    waiting = [d for d in made if d.acceptance == service.PENDING and d.reverted_at is None]
    asked = [d for d in waiting if service.may_answer(staff.tenant, d)]
    askers = await service.records_for_matching(session, disaster_id, {_other(d, found.id) for d in asked})
    if askers:
        await service.audit_reads(session, staff.tenant, actor, [r for r in askers.values() if r.lg_code != staff.tenant.lg_code],
                                  "disaster.record.match_viewed")
    await commit_if_written(session)
    mine = [d for d in waiting if d.decided_by_code == staff.tenant.lg_code]
    names = await _names(session, _codes(found) | {r.lg_code for r in linked} | {r.current_lg_code for r in linked}
                         | {d.awaiting_code for d in waiting} | {service.prefecture_code(d.awaiting_code) for d in waiting}
                         | {r.lg_code for r in askers.values()})
    try:
        estimate_ = estimate(found.damage_level, household_size=found.household_size, rebuild_plan=found.rebuild_plan,
                             demolished=found.demolished, long_term_evacuation=found.long_term_evacuation,
                             act_applies=await service.support_act_applies(session, disaster.id, found.home_lg_code)
                             ) if found.damage_level != "未調査" else None
        support = (SupportEstimate(available=False, message="住家の被害が未調査のため、見込みは出せません。") if estimate_ is None
                   else SupportEstimate(available=True, eligible=estimate_.eligible, total=estimate_.total,
                                        lines=list(estimate_.lines), message=estimate_.source))
    except SupportInputError as exc:
        support = SupportEstimate(available=False, message=str(exc))
    return RecordDetail(
        record=_record(staff, disaster_id, found, names),
        linked=[LinkedRecord(id=r.id, registered_by_code=r.lg_code, registered_by=names.get(r.lg_code, r.lg_code),
                             family_name=r.family_name, given_name=r.given_name,
                             whereabouts_label=WHEREABOUTS.get(r.whereabouts, r.whereabouts),
                             current_lg_name=names.get(r.current_lg_code, r.current_lg_code)) for r in linked],
        waiting=[Waiting(decision_id=d.id, awaiting_code=d.awaiting_code, awaiting_name=names.get(d.awaiting_code, d.awaiting_code),
                         contact=f"{names.get(d.awaiting_code, d.awaiting_code)}（または"
                                 f"{names.get(service.prefecture_code(d.awaiting_code), '都道府県')}）",
                         decided_by=d.decided_by, decided_at=d.decided_at) for d in mine],
        requests=[MatchRequest(decision_id=d.id, probability=_probability(d.probability), reasons=list(d.reasons or []),
                               decided_by=d.decided_by, decided_at=d.decided_at,
                               asker_record=AskerRecord(registered_by_code=r.lg_code,
                                                        registered_by=names.get(r.lg_code, r.lg_code),
                                                        family_name=r.family_name, given_name=r.given_name,
                                                        family_kana=r.family_kana, given_kana=r.given_kana,
                                                        birth_date=r.birth_date))
                  for d in asked if (r := askers.get(_other(d, found.id))) is not None],
        decisions=[_decision(d, names) for d in made], support=support)


@router.get("/{disaster_id}/records/{record_id}/candidates", summary="名寄せの候補（画面のカードと同じ最小限の内容）",
            response_model=CandidateList)
async def candidates(disaster_id: str, record_id: str, staff: Reader, session: DbSession) -> CandidateList:
    await service.get_disaster(session, disaster_id)
    actor = audit.Actor.of_staff(staff)
    found = await service.get_visible_record(session, staff.tenant, disaster_id, record_id, actor)
    await commit_if_written(session)  # each audited read at once (web.record_page)
    shown = await matching.candidates_for_viewer(session, staff.tenant, found)
    if shown:
        await service.audit_reads(session, staff.tenant, actor, [c.record for c in shown if c.record.lg_code != staff.tenant.lg_code],
                                  "disaster.record.match_viewed")
        await commit_if_written(session)
    made = await service.decisions(session, disaster_id, {found.id})
    decided = {_other(d, found.id): d for d in made if d.reverted_at is None}
    names = await _names(session, {c.record.lg_code for c in shown} | {d.awaiting_code for d in made})
    return CandidateList(record_id=found.id, items=[CandidateRead(
        record_id=c.record.id, family_name=c.record.family_name, given_name=c.record.given_name,
        family_kana=c.record.family_kana, given_kana=c.record.given_kana, registered_by_code=c.record.lg_code,
        registered_by=names.get(c.record.lg_code, c.record.lg_code), shared=c.shared,
        birth_date=c.record.birth_date if c.shared else None, probability=round(float(c.candidate.probability), 6),
        reasons=list(c.candidate.reasons),
        decision=_decision(decided[c.record.id], names) if c.record.id in decided else None) for c in shown])


# -- 名寄せ decisions ------------------------------------------------------------------------------------------

async def _decision_read(session, d) -> DecisionRead:
    return _decision(d, await _names(session, {d.awaiting_code or ""}))


@router.post("/{disaster_id}/matches", summary="名寄せの判断（confirmed: 同じ人 / rejected: 別の人）。"
             "ほかの団体の記録との統合は相手の受け入れ待ち", response_model=DecisionRead, status_code=201,
             responses=problem_responses(409, 415, 429, s429="1時間に確認できる件数を超えました"))
async def decide(disaster_id: str, body: MatchWrite, staff: Writer, _json: JsonWrite, session: DbSession) -> DecisionRead:
    match = await service.staff_decision(session, staff, disaster_id, body.record_id, body.other_id, body.decision)
    await session.commit()
    return await _decision_read(session, match)


@router.post("/{disaster_id}/matches/{decision_id}/accept", summary="確認の依頼を受け入れる（相手の記録の団体・その都道府県）",
             response_model=DecisionRead, responses=problem_responses(409, 415))
async def accept(disaster_id: str, decision_id: str, staff: Writer, _json: JsonWrite, session: DbSession,
        _body: Annotated[NoFields, Body()]) -> DecisionRead:
    match = await service.accept(session, staff.tenant, disaster_id, decision_id, staff.label)
    await service.answered(session, staff, match, "disaster.match.accepted")
    await session.commit()
    return await _decision_read(session, match)


@router.post("/{disaster_id}/matches/{decision_id}/decline", summary="確認の依頼を断る（別の人）",
             response_model=DecisionRead, responses=problem_responses(409, 415))
async def decline(disaster_id: str, decision_id: str, staff: Writer, _json: JsonWrite, session: DbSession,
        _body: Annotated[NoFields, Body()]) -> DecisionRead:
    match = await service.decline(session, staff.tenant, disaster_id, decision_id, staff.label)
    await service.answered(session, staff, match, "disaster.match.declined")
    await session.commit()
    return await _decision_read(session, match)


@router.post("/{disaster_id}/matches/{decision_id}/revert", summary="判断の取り消し・依頼の取り下げ",
             response_model=DecisionRead, responses=problem_responses(409, 415))
async def revert(disaster_id: str, decision_id: str, staff: Writer, _json: JsonWrite, session: DbSession,
        _body: Annotated[NoFields, Body()]) -> DecisionRead:
    match = await service.revert(session, staff.tenant, disaster_id, decision_id, staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.match.reverted", target_type="match_decision",
                       target_id=match.id, purpose=service.SHARE_PURPOSE, legal_basis=service.LEGAL_BASIS)
    await session.commit()
    return await _decision_read(session, match)


# -- 一括名寄せ (the prefecture or 内閣府) ------------------------------------------------------------------------------

async def _linkage(session, staff: StaffContext, disaster_id: str, batch) -> LinkageRead:
    shown = batch.pairs[:service.PREVIEW_LIMIT]
    visible = {r.id: r for r in await service.visible_records(
        session, staff.tenant, disaster_id, actor=audit.Actor.of_staff(staff),
        record_ids=sorted({p["a"] for p in shown} | {p["b"] for p in shown}))} if shown else {}
    await session.commit()

    def name(record_id: str) -> str | None:
        r = visible.get(record_id)
        return f"{r.family_name} {r.given_name}" if r else None

    return LinkageRead(
        id=batch.id, status=batch.status, records=batch.records, threshold=batch.threshold,
        counts={a: sum(1 for p in batch.pairs if p["action"] == a) for a in ("link", "borderline", "kept")},
        pairs=[LinkagePair(a=p["a"], b=p["b"], a_code=p["a_code"], b_code=p["b_code"], a_name=name(p["a"]), b_name=name(p["b"]),
                           probability=p["probability"], action=p["action"], action_label=ACTION_LABELS.get(p["action"], p["action"]),
                           reasons=list(p.get("reasons", []))) for p in shown],
        linked=batch.linked, undone=batch.undone, created_by=batch.created_by, created_at=batch.created_at,
        applied_by=batch.applied_by, applied_at=batch.applied_at, undone_by=batch.undone_by, undone_at=batch.undone_at)


@router.post("/{disaster_id}/linkage", summary="一括名寄せの試行（保存して確認。まだ結び付けません）",
             response_model=LinkageRead, status_code=201, responses=problem_responses(409, 415))
async def run_linkage(disaster_id: str, staff: Opener, _json: JsonWrite, session: DbSession,
        _body: Annotated[NoFields, Body()]) -> LinkageRead:
    batch = await service.preview_batch(session, staff.tenant, disaster_id, staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.linkage.previewed", target_type="linkage_batch",
                       target_id=batch.id, purpose=service.SHARE_PURPOSE, legal_basis=service.LEGAL_BASIS,
                       details={"disaster": disaster_id, "records": batch.records, "pairs": len(batch.pairs)})
    await session.commit()
    return await _linkage(session, staff, disaster_id, batch)


@router.get("/{disaster_id}/linkage/{batch_id}", summary="一括名寄せの結果", response_model=LinkageRead)
async def linkage(disaster_id: str, batch_id: str, staff: Opener, session: DbSession) -> LinkageRead:
    disaster = await service.get_disaster(session, disaster_id)
    if not await service.may_run_linkage(session, staff.tenant, disaster):
        raise NotFound("ページが見つかりません。")
    return await _linkage(session, staff, disaster_id, await service.get_batch(session, staff.tenant, disaster_id, batch_id))


@router.post("/{disaster_id}/linkage/{batch_id}/apply", summary="一括名寄せの反映", response_model=LinkageRead,
             responses=problem_responses(409, 415))
async def apply_linkage(disaster_id: str, batch_id: str, staff: Opener, _json: JsonWrite, session: DbSession,
        _body: Annotated[NoFields, Body()]) -> LinkageRead:
    batch = await service.apply_batch(session, staff.tenant, disaster_id, batch_id, staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.linkage.batch", target_type="linkage_batch",
                       target_id=batch.id, purpose=service.SHARE_PURPOSE, legal_basis=service.LEGAL_BASIS,
                       details={"disaster": disaster_id, "records": batch.records, "pairs": len(batch.pairs),
                                "linked": batch.linked})
    await session.commit()
    return await _linkage(session, staff, disaster_id, batch)


@router.post("/{disaster_id}/linkage/{batch_id}/undo", summary="一括名寄せの取り消し（confirm が必要）",
             response_model=LinkageRead, responses=problem_responses(409, 415))
async def undo_linkage(disaster_id: str, batch_id: str, body: Confirm, staff: Opener, _json: JsonWrite,
                       session: DbSession) -> LinkageRead:
    if not body.confirm:
        raise InvalidInput("取り消す前に、確認のチェックを入れてください。",
                           errors=[{"field": "confirm", "message": "取り消す前に、確認のチェックを入れてください。"}])
    batch = await service.undo_batch(session, staff.tenant, disaster_id, batch_id, staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "disaster.linkage.undone", target_type="linkage_batch",
                       target_id=batch.id, purpose=service.SHARE_PURPOSE, legal_basis=service.LEGAL_BASIS,
                       details={"disaster": disaster_id, "undone": batch.undone})
    await session.commit()
    return await _linkage(session, staff, disaster_id, batch)


# -- roster imports --------------------------------------------------------------------------------------------------

class UploadNotAllowed(KibanError):
    status = 403
    title = "送信元を確認できません"
    type_slug = "csrf"


async def upload_guard(request: Request) -> None:
    """A multipart upload with the session cookie must repeat the CSRF cookie in ``X-CSRF-Token``
    (a page on another site can post a file, never set that header); an API key's request is no
    browser's."""
    if request.headers.get("authorization", "").startswith("Bearer "):
        return
    sent, expected = request.headers.get("x-csrf-token", ""), request.cookies.get(csrf.COOKIE, "")
    if len(expected) < csrf.MIN_LENGTH or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise UploadNotAllowed("セッションでファイルを送るときは、X-CSRF-Token ヘッダーにCSRFトークンを入れてください。")


async def _import(session, staff: StaffContext, disaster_id: str, batch) -> imports.ImportReport:
    counts = await service.import_counts(session, staff.tenant, disaster_id, batch)
    report = batch.report
    job = await imports.job_of(session, batch) if batch.status != imports.STAGED else None
    return imports.ImportReport(
        id=batch.id, filename=batch.filename, encoding=batch.encoding, status=batch.status,
        status_label=imports.status_label(batch), imported_count=batch.imported_count, created_by=batch.created_by,
        created_at=batch.created_at, file_errors=list(report["file_errors"]), warnings=list(report["warnings"]),
        valid=counts.valid, invalid=counts.invalid, proposals=counts.proposals, progress=imports.progress_of(job),
        rows=[ImportRow(line=r["line"], errors=list(r["errors"]), warnings=list(r["warnings"]),
                        already_registered=r["line"] in counts.registered, values=r.get("values"),
                        proposal=r.get("proposal")) for r in report["rows"]])


@router.post("/{disaster_id}/imports", summary="名簿の読み込み（CSV・Excel。確認用の報告を返し、まだ登録しません）",
             response_model=ImportRead, status_code=201,
             responses=problem_responses(413, s413="ファイルが大きすぎます（5MB まで）"))
async def upload_roster(disaster_id: str, request: Request, staff: Writer, _guard: Annotated[None, Depends(upload_guard)],
                        file: UploadFile, session: DbSession) -> ImportRead:
    await service.get_disaster(session, disaster_id)
    data = await file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise TooLarge("ファイルが大きすぎます（5MB まで）。分けて取り込んでください。")
    snapshot = request.app.state.registry_cache.latest or await load_snapshot(session)
    batch = await service.stage_roster(session, staff.tenant, disaster_id, data, file.filename or "roster.csv", snapshot,
                                       actor=staff.label)
    await session.commit()
    await session.refresh(batch, ["report"])
    return await _import(session, staff, disaster_id, batch)


@router.get("/{disaster_id}/imports/{batch_id}", summary="取り込みの報告と状態（反映中は進み具合）",
            response_model=imports.ImportReport)
async def roster_import(disaster_id: str, batch_id: str, staff: Writer, session: DbSession) -> imports.ImportReport:
    await service.get_disaster(session, disaster_id)
    return await _import(session, staff, disaster_id, await service.roster_batch(session, disaster_id, batch_id))


@router.post("/{disaster_id}/imports/{batch_id}/accept",
             summary="取り込みの反映（画面と同じ選択: 正しい行だけ・分け方の確認）。受け付けて、登録は順に進めます",
             description="選択を確かめて受け付け、すぐに 202 を返します。登録は背景で少しずつ進み（小さな名簿はこの応答までに終わります）、"
                         "Location の URL（取り込みの報告と状態）で status が imported または failed になるまで確かめられます。",
             status_code=202, response_model=imports.ImportAccepted,
             responses={202: {"description": "受け付けました（登録は順に進みます）", "headers": {"Location": {
                            "description": "取り込みの報告と状態の URL", "schema": {"type": "string"}}}},
                        **problem_responses(409, 415, s409="この取り込みはすでに反映済みです")})
async def accept_import(disaster_id: str, batch_id: str, body: ImportAccept, request: Request, response: Response,
                        staff: Writer, _json: JsonWrite, session: DbSession) -> imports.ImportAccepted:
    disaster = await service.get_disaster(session, disaster_id)
    batch = await service.roster_batch(session, disaster_id, batch_id)
    form: dict[str, str] = {"valid_only": "yes" if body.valid_only else "",
                            "skip_unconfirmed": "yes" if body.skip_unconfirmed else ""}
    for split in body.splits:
        form[f"confirm-{split.line}"] = "yes"
        for part in ("family_name", "given_name", "family_kana", "given_kana"):
            form[f"{part}-{split.line}"] = getattr(split, part)
    job = await imports.accept(session, staff, disaster, batch, form)
    await session.commit()
    await imports.start(request.app, session, job)  # a small roster now; a large one in the background
    location = f"{_base(staff, disaster_id)}/imports/{batch_id}"
    response.headers["Location"] = location
    status = await imports.status_of(session, disaster_id, batch_id)
    return imports.ImportAccepted(id=batch_id, status=status.status, status_label=status.status_label,
                                  imported_count=status.imported_count, progress=imports.progress_of(status.job),
                                  location=location)


class TooLarge(KibanError):
    status = 413
    title = "ファイルが大きすぎます"
    type_slug = "payload-too-large"


MAX_UPLOAD = 5 * 1024 * 1024
