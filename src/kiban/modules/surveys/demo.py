"""Demo data of modules/surveys for `kiban demo`: one invented survey (its description says 架空)
that 総務省 relays through 宮城県 to four of its cities, with the population question prefilled
from the registry, and the answers at different stages — 石巻市 has submitted to the prefecture
(決裁 first), 仙台市 has a draft, 塩竈市 and 気仙沼市 have not started. Everything goes through
the service functions the pages use. Idempotent: when 総務省 already has a survey with this
title, nothing is added. Tenants far from the browser tests' (札幌市・函館市・北海道)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import as_tenant
from kiban.kit.db import utcnow
from kiban.modules.surveys import service
from kiban.modules.surveys.models import Survey, SurveyResponse

SOUMU = "000027"
MIYAGI = "040002"
SENDAI, ISHINOMAKI, SHIOGAMA, KESENNUMA = "041009", "042021", "042030", "042056"
TITLE = "【デモ】行政のデジタル化の取組状況に関する調査"
NOTE = "（架空のデモデータです。実在の調査ではありません）"
SENDER = "総務省 自治行政局 デモ担当（架空）"
QUESTIONS = [
    {"type": "number", "label": "住民基本台帳人口", "unit": "人", "binding": "registry.population", "section": "基本",
     "required": True},
    {"type": "number", "label": "情報システム担当の職員数", "unit": "人", "min": 0, "max": 10000, "required": True,
     "section": "体制"},
    {"type": "yesno", "label": "オンライン申請の受付を行っていますか", "required": True, "section": "取組"},
    {"type": "number", "label": "オンラインで受け付けている手続の数", "unit": "件", "min": 0, "max": 100000,
     "required": True, "section": "取組", "show_if": {"q": "q3", "equals": "はい"}},
]
ANSWERS = {
    ISHINOMAKI: {"q2": "12", "q3": "はい", "q4": "48"},  # submitted to 宮城県 after 決裁
    SENDAI: {"q2": "85"},  # a draft: the rest is still to come
}


async def load_demo(session: AsyncSession) -> int:
    """Adds the demo survey when 総務省 has none with its title; returns how many surveys (0 or 1)."""
    sender = await registry_service.tenant_for(session, SOUMU)
    async with as_tenant(session, sender):
        if await session.scalar(select(Survey.id).where(Survey.lg_code == SOUMU, Survey.title == TITLE)):
            return 0
        survey = await service.create_survey(session, service.Settings(
            title=TITLE, description="府省から都道府県を経由して市区町村に届く調査の例です。" + NOTE,
            deadline=(utcnow().date() + timedelta(days=30)).isoformat(), minutes=40, relayed=True,
            target_kind="list", codes=" ".join((SENDAI, ISHINOMAKI, SHIOGAMA, KESENNUMA))), actor=SENDER)
        await service.replace_definition(session, survey, [dict(q) for q in QUESTIONS], [], expected_version=None)
        await service.send(session, survey, actor=SENDER, expected_version=None)
    for code, answers in ANSWERS.items():
        tenant = await registry_service.tenant_for(session, code)
        actor = f"{tenant.name} 企画課 デモ担当（架空）"
        async with as_tenant(session, tenant):
            response_id = await session.scalar(select(SurveyResponse.id).where(
                SurveyResponse.lg_code == code, SurveyResponse.survey_id == survey.id))
            item = await service.own_response(session, response_id)
            await service.save_answers(session, item, answers, actor=actor, expected_version=None)
            if code == ISHINOMAKI:
                await service.certify(session, item, actor=f"{tenant.name} 企画課長（架空）", expected_version=None)
                await service.submit(session, item, actor=actor, expected_version=None)
            await session.flush()  # the history rows belong to the respondent: written while acting for it
    return 1
