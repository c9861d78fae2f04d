"""Issue #15 item 3 through modules/surveys: the secretariat starts the feasibility survey from
the candidate; it lives in the surveys module (a draft addressed to exactly the bodies behind the
candidate, the questionnaire's questions copied in), linked from the candidate, sent on the
surveys pages and answered there by those bodies only. Once per candidate; bad input refused
with every field named; only the secretariat may start it; audited."""

from __future__ import annotations

from sqlalchemy import select

from kiban.core.audit.models import AuditEntry
from kiban.core.tenancy.context import unscoped
from kiban.modules.governance.models import StudyTask
from tests.factories import DIGITAL_AGENCY, ICHINOMIYA, SAPPORO
from tests.modules.test_governance import TOYOTA, YAMAGUCHI, _candidate, _story

PROBLEM = "application/problem+json"


async def test_the_secretariat_starts_the_feasibility_survey_in_the_surveys_module(staff, session, client) -> None:
    ichinomiya, toyota, _, agency, need = await _story(staff)
    candidate_id = await _candidate(agency, need)
    base = f"/t/{DIGITAL_AGENCY}/governance/candidates/{candidate_id}"
    assert (await agency.client.post(f"{base}/questions", data={"question": "現行契約の残り期間は？",
                                                                 "csrf_token": agency.csrf})).status_code == 303
    started = await agency.client.post(f"{base}/survey", data={"deadline": "2099-03-31", "minutes": "20",
                                                                "csrf_token": agency.csrf})
    assert started.status_code == 303, started.text[:500]
    sheet = (await agency.client.get(f"/api/v1/t/{DIGITAL_AGENCY}/governance/candidates/{candidate_id}")).json()
    survey_url = sheet["survey"]["survey_url"]
    survey_id = survey_url.rsplit("/", 1)[1]
    assert sheet["survey"]["sent"] is False and sheet["survey"]["target_count"] == 3

    # The survey is the surveys module's own: a draft addressed to the three bodies, the question copied.
    draft = (await agency.client.get(f"/api/v1/t/{DIGITAL_AGENCY}/surveys/{survey_id}")).json()
    assert draft["target"]["kind"] == "list" and sorted(draft["target"]["codes"]) == sorted([ICHINOMIYA, TOYOTA, YAMAGUCHI])
    assert [q["label"] for q in draft["definition"]["questions"]] == ["現行契約の残り期間は？"]
    assert draft["deadline"] == "2099-03-31" and draft["minutes"] == 20 and draft["sent_version"] == 0
    page = await agency.client.get(base)
    assert f'href="{survey_url}"' in page.text and "準備中" in page.text

    # Asking again makes no second survey.
    again = await agency.client.post(f"/api/v1/t/{DIGITAL_AGENCY}/governance/candidates/{candidate_id}/survey",
                                     json={"deadline": "2099-04-30"})
    assert again.status_code == 200 and again.json()["survey_id"] == survey_id and again.json()["created"] is False
    tasks = (await session.scalars(select(StudyTask).where(StudyTask.candidate_id == candidate_id))).all()
    assert len(tasks) == 1

    # Sent on the surveys pages, it reaches the bodies behind the candidate and nobody else.
    sent = await agency.client.post(f"/api/v1/t/{DIGITAL_AGENCY}/surveys/{survey_id}/send",
                                    json={"expected_version": draft["version"]})
    assert sent.status_code == 200, sent.text
    received = (await toyota.client.get(f"/api/v1/t/{TOYOTA}/surveys")).json()["received"]
    assert [r["survey_title"] for r in received] == [draft["title"]]
    sapporo = await staff(SAPPORO, "staff")
    # (札幌市 may hold surveys committed by the browser tests in this database: only this one matters.)
    sapporo_received = (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/surveys")).json()["received"]
    assert draft["title"] not in [r["survey_title"] for r in sapporo_received]
    assert "送付しました" in (await agency.client.get(base)).text
    public = await client.get(f"/governance/candidates/{candidate_id}")
    assert public.status_code == 200 and draft["title"] in public.text and survey_url not in public.text
    public_json = (await client.get(f"/api/v1/governance/candidates/{candidate_id}")).json()
    assert public_json["survey"]["survey_url"] is None and public_json["survey"]["sent"] is True
    assert all(not t["document_url"].startswith("/t/") for t in public_json["tasks"])

    async with unscoped(session, "test"):
        actions = set((await session.scalars(select(AuditEntry.action).where(
            AuditEntry.lg_code == DIGITAL_AGENCY, AuditEntry.target_id.in_([candidate_id, survey_id])))).all())
    assert {"governance.survey.started", "surveys.survey.created"} <= actions


async def test_starting_the_survey_refuses_bad_input_and_anyone_but_the_secretariat(staff, session, client) -> None:
    _, toyota, _, agency, need = await _story(staff)
    candidate_id = await _candidate(agency, need)
    base = f"/t/{DIGITAL_AGENCY}/governance/candidates/{candidate_id}"
    refused = await agency.client.post(f"{base}/survey", data={"deadline": "いつか", "minutes": "0",
                                                                "csrf_token": agency.csrf})
    assert refused.status_code == 422 and "回答期限" in refused.text and "回答時間の見込み" in refused.text
    assert 'value="いつか"' in refused.text
    assert (await session.scalars(select(StudyTask).where(StudyTask.candidate_id == candidate_id))).all() == []
    api = f"/api/v1/t/{DIGITAL_AGENCY}/governance/candidates/{candidate_id}/survey"
    bad = await agency.client.post(api, json={"deadline": "2099-02-30", "minutes": 0})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(PROBLEM)
    assert {"deadline", "minutes"} <= {e["field"].split(".")[-1] for e in bad.json()["errors"]}

    assert (await client.post(api, json={"deadline": "2099-03-31"})).status_code == 401
    # 豊田市 holds the permission for its own organisation, but the secretariat's work is デジタル庁's only.
    assert (await toyota.client.post(f"/api/v1/t/{TOYOTA}/governance/candidates/{candidate_id}/survey",
                                     json={"deadline": "2099-03-31"})).status_code == 404
    assert (await toyota.client.post(api, json={"deadline": "2099-03-31"})).status_code == 404
    viewer = await staff(DIGITAL_AGENCY, "viewer")
    assert (await viewer.client.post(api, json={"deadline": "2099-03-31"})).status_code == 403
    assert (await agency.client.post(f"/api/v1/t/{DIGITAL_AGENCY}/governance/candidates/nothing/survey",
                                     json={"deadline": "2099-03-31"})).status_code == 404
