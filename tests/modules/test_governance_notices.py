"""Issue #15 review: the bodies behind a candidate hear the council's decision (core/notify), and
the council's 採択 writes the catalog only through the catalog's ``save_service``.

Every body that submitted or endorsed a need in the candidate's group gets an in-app notice
(each of its active staff, once per decision) in the same transaction as the decision, with the
decision and its reason, read at /t/{lg_code}/notices; a body not behind the candidate gets none;
a later meeting's decision (a replacement) tells them again; a refused decision tells nobody."""

from __future__ import annotations

from sqlalchemy import select

from kiban.core.audit.models import AuditEntry
from kiban.core.notify.models import Notice, Notification
from kiban.core.tenancy.context import unscoped
from kiban.modules.catalog.models import CatalogService
from kiban.modules.governance.models import Decision
from tests.factories import DIGITAL_AGENCY, ICHINOMIYA, SAPPORO
from tests.modules.test_governance import ADOPT, TOYOTA, YAMAGUCHI, _candidate, _meeting, _story

TEMPLATE = "governance.decision_made"


async def _notices(session, principal_id: str) -> list[Notice]:
    async with unscoped(session, "test: the notices written"):
        return list((await session.scalars(
            select(Notice).join(Notification, Notification.id == Notice.notification_id)
            .where(Notice.principal_id == principal_id, Notification.template_key == TEMPLATE)
            .order_by(Notice.created_at))).all())


async def _decide(agency, meeting_id: str, data: dict):
    return await agency.client.post(f"/t/{DIGITAL_AGENCY}/governance/meetings/{meeting_id}/decisions",
                                    data={**data, "csrf_token": agency.csrf})


async def test_every_body_behind_the_candidate_hears_the_decision_once_and_again_on_a_replacement(staff, session) -> None:
    ichinomiya, toyota, yamaguchi, agency, need = await _story(staff)
    toyota_viewer = await staff(TOYOTA, "viewer", name="豊田 閲覧者")
    bystander = await staff(SAPPORO, "staff")  # 札幌市 neither submitted nor endorsed
    candidate_id = await _candidate(agency, need)
    first = await _meeting(agency, candidate_id, "2099-04-01")
    continued = {"outcome": "continued", "reason": "費用の見積を精査するため継続して検討する。", "confirm": "1",
                 "candidate_id": candidate_id}
    assert (await _decide(agency, first, continued)).status_code == 303
    assert (await _decide(agency, first, continued)).status_code == 409  # once per meeting: no second notice

    people = {ICHINOMIYA: [ichinomiya], TOYOTA: [toyota, toyota_viewer], YAMAGUCHI: [yamaguchi]}
    for code, persons in people.items():
        for person in persons:
            (notice,) = await _notices(session, person.principal_id)
            assert notice.lg_code == code
            assert "「継続検討」と決まりました" in notice.subject and "粗大ごみ受付（共通化・試験）" in notice.subject
            assert continued["reason"] in notice.body and "第1回連絡協議会（試験）（2099年4月1日）" in notice.body
            assert "カタログは変わりません" in notice.body
    assert await _notices(session, bystander.principal_id) == []
    assert await _notices(session, agency.principal_id) == []  # the secretariat decided; it is not behind the need

    page = await toyota.client.get(f"/t/{TOYOTA}/notices")
    assert page.status_code == 200 and "「継続検討」と決まりました" in page.text
    twin = (await toyota.client.get(f"/api/v1/t/{TOYOTA}/notify/notices")).json()["items"]
    assert [n for n in twin if "継続検討" in n["subject"]][0]["organisation"] == "豊田市"
    assert "継続検討" not in (await bystander.client.get(f"/t/{SAPPORO}/notices")).text

    # A later meeting decides again (採択): everyone behind the candidate is told again, once.
    second = await _meeting(agency, candidate_id, "2099-05-01")
    assert (await _decide(agency, second, {**ADOPT, "candidate_id": candidate_id})).status_code == 303
    decision = await session.scalar(select(Decision).where(Decision.meeting_id == second))
    item = await session.get(CatalogService, decision.service_id)
    for persons in people.values():
        for person in persons:
            told = await _notices(session, person.principal_id)
            assert len(told) == 2 and "「採択」と決まりました" in told[1].subject
            assert ADOPT["reason"] in told[1].body and f"「{item.name}」として共通サービスのカタログに載りました" in told[1].body


async def test_adoption_writes_the_catalog_through_its_service_audited_as_the_council_decision(staff, session) -> None:
    _, _, _, agency, need = await _story(staff)
    candidate_id = await _candidate(agency, need)
    meeting_id = await _meeting(agency, candidate_id)
    assert (await _decide(agency, meeting_id, {**ADOPT, "candidate_id": candidate_id})).status_code == 303
    decision = await session.scalar(select(Decision).where(Decision.candidate_id == candidate_id))
    async with unscoped(session, "test"):
        (entry,) = (await session.scalars(select(AuditEntry).where(
            AuditEntry.action == "catalog.service.created", AuditEntry.target_id == decision.service_id))).all()
    assert entry.lg_code == DIGITAL_AGENCY and entry.purpose == "連絡協議会の決定（採択）"
    assert entry.details["pattern"] == "common_b" and entry.details["annual_cost"] == 20_000_000
    item = await session.get(CatalogService, decision.service_id)
    assert (item.seeded, item.version, item.source) == (False, 1, "国・地方デジタル共通基盤 連絡協議会の決定")


async def test_adopting_a_candidate_that_extends_a_service_reclassifies_it_and_keeps_its_name(staff, session) -> None:
    _, _, _, agency, need = await _story(staff)
    candidate_id = await _candidate(agency, need, catalog_service_id="aichi-shisetsu-yoyaku")
    item = await session.get(CatalogService, "aichi-shisetsu-yoyaku")
    name, description, version = item.name, item.description, item.version
    meeting_id = await _meeting(agency, candidate_id)
    decided = await _decide(agency, meeting_id, {**ADOPT, "lifecycle": "rollout", "candidate_id": candidate_id})
    assert decided.status_code == 303, decided.text[:500]
    await session.refresh(item)
    assert (item.name, item.description) == (name, description)
    assert (item.pattern, item.burden_category, item.lifecycle, item.version) == ("common_b", "common_saas", "rollout",
                                                                                   version + 1)
    async with unscoped(session, "test"):
        (entry,) = (await session.scalars(select(AuditEntry).where(
            AuditEntry.action == "catalog.service.classified", AuditEntry.target_id == item.id))).all()
    assert entry.details["changes"]["pattern"] == ["individual", "common_b"]


async def test_a_decision_that_breaks_the_cost_burden_rule_is_refused_and_tells_nobody(staff, session) -> None:
    ichinomiya, _, _, agency, need = await _story(staff)
    candidate_id = await _candidate(agency, need)
    meeting_id = await _meeting(agency, candidate_id)
    before = await session.scalar(select(CatalogService.id).order_by(CatalogService.id.desc()))
    refused = await _decide(agency, meeting_id, {**ADOPT, "pattern": "common_a", "burden_category": "municipal",
                                                 "reason": "", "candidate_id": candidate_id})
    assert refused.status_code == 422
    assert "共通のシステム" in refused.text and "理由" in refused.text  # both problems at once
    assert await session.scalar(select(Decision.id).where(Decision.candidate_id == candidate_id)) is None
    assert await session.scalar(select(CatalogService.id).order_by(CatalogService.id.desc())) == before
    assert await _notices(session, ichinomiya.principal_id) == []

    api = await agency.client.post(f"/api/v1/t/{DIGITAL_AGENCY}/governance/meetings/{meeting_id}/decisions", json={
        "candidate_id": candidate_id, "outcome": "adopted", "reason": "理由", "pattern": "standard",
        "burden_category": "common_saas", "lifecycle": "pilot"})
    assert api.status_code == 422 and api.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in api.json()["errors"]] == ["burden_category"]
