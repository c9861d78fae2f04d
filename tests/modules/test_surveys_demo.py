"""The surveys demo (`kiban demo`): one relayed survey from 総務省 through 宮城県, the population
question prefilled from the registry, answers at different stages, made through the service
functions, and nothing added the second time."""

from __future__ import annotations

from sqlalchemy import select

from kiban.core.registry.models import Organization
from kiban.core.tenancy.context import unscoped
from kiban.modules.surveys import demo
from kiban.modules.surveys.models import Survey, SurveyResponse, SurveyResponseEvent, SurveyVersion


async def test_the_demo_relays_one_survey_with_prefilled_population_and_answers_in_progress_once(session) -> None:
    assert await demo.load_demo(session) == 1
    assert await demo.load_demo(session) == 0
    async with unscoped(session, "test"):
        (survey,) = (await session.scalars(select(Survey).where(Survey.title == demo.TITLE))).all()
        assert survey.lg_code == demo.SOUMU and survey.relayed and survey.sent_version == 1
        assert "架空" in survey.description
        assert (await session.scalar(select(SurveyVersion.number).where(SurveyVersion.survey_id == survey.id))) == 1
        responses = {r.lg_code: r for r in (await session.scalars(
            select(SurveyResponse).where(SurveyResponse.survey_id == survey.id))).all()}
        events = (await session.scalars(select(SurveyResponseEvent.kind).where(
            SurveyResponseEvent.response_id == responses[demo.ISHINOMAKI].id))).all()
    assert set(responses) == {demo.SENDAI, demo.ISHINOMAKI, demo.SHIOGAMA, demo.KESENNUMA}
    assert {code: r.status for code, r in responses.items()} == {
        demo.ISHINOMAKI: "submitted", demo.SENDAI: "draft", demo.SHIOGAMA: "not_started", demo.KESENNUMA: "not_started"}
    assert all(r.prefecture_code == demo.MIYAGI for r in responses.values())
    assert sorted(events) == ["certified", "saved", "submitted"]
    sendai = await session.get(Organization, demo.SENDAI)
    assert responses[demo.SENDAI].prefill["q1"]["value"] == sendai.population
    assert responses[demo.SENDAI].answers["q1"].replace(",", "") == str(sendai.population)
    assert "基本台帳" in responses[demo.SENDAI].prefill["q1"]["source"]
    assert responses[demo.ISHINOMAKI].answers["q4"] == "48"
