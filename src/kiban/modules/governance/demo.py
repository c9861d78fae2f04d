"""Demo data of modules/governance for `kiban demo`: a few invented needs (their text says 架空)
from municipalities far from the browser tests' tenants, endorsed by others, so the public pages
and the secretariat's grouping have something to show. Idempotent: a need already there (same
body and title) is left as it is. No candidate or decision is made: those are for people."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import as_tenant
from kiban.modules.governance import service
from kiban.modules.governance.models import Need

ACTOR = "デモデータ作成（架空）"
NOTE = "（架空のデモデータです。実在の団体の提出内容ではありません）"
# The descriptions carry the short mark: the long note, the same in every description, made the
# grouping's character n-grams find all three needs alike and put them in one group.
MARK = "（架空）"
SAPPORO, HAKODATE, HOKKAIDO, SENDAI = "011002", "012025", "010006", "041009"
CHOSONKAI = "000931"  # 全国町村会: the associations submit and endorse needs too (seed 003)

NEEDS = (
    (SAPPORO, {"title": "粗大ごみの受付が電話に集中する", "task": "粗大ごみ収集の受付",
               "description": "粗大ごみの収集申込を電話で受け付けており、繁忙期はつながらない。オンラインで申込と手数料の決済をしたい。" + MARK,
               "hours_per_year": 4200, "annual_cost": 15_000_000, "renewal_on": "2028-03-31", "confidential": ["annual_cost"]},
     [(HAKODATE, {"annual_cost": 4_000_000, "hours_per_year": 900}), (SENDAI, {"annual_cost": 11_000_000})]),
    (HAKODATE, {"title": "議会の会議録の作成に時間がかかる", "task": "会議録の作成",
                "description": "議会の会議録を反訳業者に委託し、公開まで3か月かかる。音声認識で会議録を作りたい。" + MARK,
                "hours_per_year": 600, "annual_cost": 3_000_000, "renewal_on": "2027-09-30", "confidential": []},
     [(HOKKAIDO, {"annual_cost": 8_000_000, "comment": "県議会でも同じ課題"})]),
    (SENDAI, {"title": "国の調査が県経由で何度も届く", "task": "経由調査への回答",
              "description": "府省からの調査が県を経由して届き、同じ数値を何度も表計算ソフトに入力している。" + MARK,
              "hours_per_year": 1500, "confidential": []},
     [(HOKKAIDO, {"hours_per_year": 3000}), (CHOSONKAI, {"comment": "小規模町村ほど負担が重い" + NOTE})]),
)


def _figures(values: dict) -> dict:
    form = {k: ("" if v is None else v) for k, v in values.items()}
    return service.parse_figures(form, {})


async def load_demo(session: AsyncSession) -> int:
    """Adds the demo needs that are missing (and their endorsements); returns how many needs."""
    added = 0
    for code, values, endorsements in NEEDS:
        tenant = await registry_service.tenant_for(session, code)
        async with as_tenant(session, tenant):
            exists = await session.scalar(select(Need.id).where(Need.lg_code == code, Need.title == values["title"]))
            if exists:
                continue
            need = await service.submit_need(session, ACTOR, service.parse_need(
                {k: ("" if v is None else str(v) if not isinstance(v, list) else v) for k, v in values.items()}))
        for other, figures in endorsements:
            figures = dict(figures)
            comment = figures.pop("comment", NOTE)
            endorser = await registry_service.tenant_for(session, other)
            async with as_tenant(session, endorser):
                await service.endorse(session, endorser, need.lg_code, need.id, ACTOR,
                                      {"comment": comment, **_figures(figures)})
        added += 1
    return added
