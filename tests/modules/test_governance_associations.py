"""Issue #15: the three associations of local governments (全国知事会, 全国市長会, 全国町村会) are
organisations on the platform. Their staff sign in, submit needs and endorse others' (a candidate
counts them as bodies, never as residents), and their representatives sit on the council. They are
not local governments: the registry's counts and the municipalities' lists leave them out."""

from __future__ import annotations

from kiban.core.registry import service as registry_service
from kiban.core.registry.models import OrgType
from tests.factories import DIGITAL_AGENCY
from tests.modules.test_governance import ICHINOMIYA, NEED, POPULATION, _endorse, _group_of, _meeting, _submit

CHIJIKAI, SHICHOKAI, CHOSONKAI = "000914", "000922", "000931"


async def test_the_registry_holds_the_three_associations_apart_from_local_governments(session, client) -> None:
    for code, name in ((CHIJIKAI, "全国知事会"), (SHICHOKAI, "全国市長会"), (CHOSONKAI, "全国町村会")):
        org = await registry_service.get_organization(session, code)
        assert (org.name, org.type, org.population) == (name, OrgType.association.value, None)
    summary = await registry_service.summary(session)
    assert (summary.prefectures, summary.municipalities) == (47, 1741)
    listed = await client.get("/api/v1/organizations", params={"type": OrgType.association.value})
    assert listed.status_code == 200
    assert sorted(o["code"] for o in listed.json()["items"]) == [CHIJIKAI, SHICHOKAI, CHOSONKAI]


async def test_an_association_submits_a_need_and_endorses_another(staff) -> None:
    chosonkai = await staff(CHOSONKAI, "staff", name="全国町村会 職員")
    ichinomiya = await staff(ICHINOMIYA, "staff", name="一宮 職員")
    agency = await staff(DIGITAL_AGENCY, "staff", name="デジタル庁 事務局")
    own = await _submit(chosonkai, CHOSONKAI, {**NEED, "title": "町村の経由調査の負担", "task": "経由調査への回答",
                                               "description": "府省の調査が県経由で届き、小規模町村ほど回答の負担が重い。",
                                               "confidential": []})
    assert own[0] == CHOSONKAI
    need = await _submit(ichinomiya, ICHINOMIYA)
    await _endorse(chosonkai, CHOSONKAI, need, comment="町村でも同じ課題があります")
    group = await _group_of(agency, need)
    assert {b["code"] for b in group["bodies"]} == {ICHINOMIYA, CHOSONKAI}
    # The association stands behind the need as a body; residents are counted by local governments only.
    assert group["body_count"] == 2 and group["population"] == POPULATION[ICHINOMIYA]
    page = await chosonkai.client.get(f"/t/{CHOSONKAI}/governance")
    assert page.status_code == 200 and "全国町村会" in page.text


async def test_an_association_representative_sits_on_the_council_and_comments(staff) -> None:
    chosonkai = await staff(CHOSONKAI, "staff", name="全国町村会 職員")
    ichinomiya = await staff(ICHINOMIYA, "staff", name="一宮 職員")
    agency = await staff(DIGITAL_AGENCY, "staff", name="デジタル庁 事務局")
    need = await _submit(ichinomiya, ICHINOMIYA)
    group = await _group_of(agency, need)
    made = await agency.client.post(f"/t/{DIGITAL_AGENCY}/governance/groups/{group['id']}/candidate",
                                    data={"name": "粗大ごみ受付（試験）", "csrf_token": agency.csrf})
    candidate_id = made.headers["location"].rsplit("/", 1)[1]
    meeting_id = await _meeting(agency, candidate_id)
    members = f"/api/v1/t/{DIGITAL_AGENCY}/governance/council/members"
    wrong = await agency.client.post(members, json={"name": "代表", "body": "全国町村会", "kind": "municipality",
                                                    "org_code": CHOSONKAI})
    assert wrong.status_code == 422 and [e["field"] for e in wrong.json()["errors"]] == ["org_code"]
    assert "全国的連合組織" in wrong.json()["errors"][0]["message"]
    added = await agency.client.post(members, json={"name": "全国町村会の代表", "body": "全国町村会",
                                                    "kind": "association", "org_code": CHOSONKAI})
    assert added.status_code == 201
    sent = await chosonkai.client.post(f"/api/v1/t/{CHOSONKAI}/governance/meetings/{meeting_id}/comments",
                                       json={"text": "町村の負担が軽くなるなら賛成です", "candidate_id": candidate_id})
    assert sent.status_code in (200, 201), sent.text
    meeting = (await chosonkai.client.get(f"/api/v1/governance/meetings/{meeting_id}")).json()
    assert [c["text"] for c in meeting["comments"]] == ["町村の負担が軽くなるなら賛成です"]
