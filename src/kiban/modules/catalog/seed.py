"""Seeding the catalog and the consortia from the policy documents (idempotent).

Services come from ``data/services.csv`` (each row names its source). A service that デジタル庁
staff have edited (``updated_by`` is no longer ``seed``) is never overwritten. Consortia are
built from the registry: あいち電子自治体推進協議会 is 愛知県 and every Aichi municipality other
than 名古屋市 (seed 001). Systems every member uses (全団体事業) get every member as a user;
for the others the seed gives only the published count, and the members using them are left for
the secretariat to record.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry.models import Organization, OrgType
from kiban.kit.db import utcnow
from kiban.modules.catalog.models import (
    BurdenCategory,
    CatalogService,
    Consortium,
    ConsortiumMember,
    ConsortiumSystem,
    ConsortiumSystemUser,
    Lifecycle,
    Pattern,
)

DATA = Path(__file__).resolve().parent / "data" / "services.csv"
AICHI = "230006"
MUNICIPAL_TYPES = (OrgType.designated_city, OrgType.city, OrgType.town, OrgType.village, OrgType.special_ward)
NAGOYA = "231002"
AICHI_CONSORTIUM = "aichi-e-gov"
AICHI_ROBOTICS = "aichi-ai-robotics"
# Sources are shown on public pages as written here: the document's own title, never a file name.
SOURCE_001 = "国・地方デジタル共通基盤の整備・運用に向けた検討体制構築準備会合 第3回ワーキングチーム 一宮市資料（2024年4月17日）"

# (service, 部会, published users, every member uses it)
AICHI_SYSTEMS = (
    ("aichi-e-shinsei", "", 54, True),
    ("aichi-cals-ec", "", 54, True),
    ("aichi-buppin", "", 54, True),
    ("aichi-shisetsu-yoyaku", "", 28, False),
    ("aichi-ai-chatbot", "AIを活用した総合案内サービス共同利用推進部会", 33, False),
    ("aichi-ai-ocr", "AI-OCR共同利用 RPA推進部会", 47, False),
)


@dataclass
class CatalogSeedReport:
    services_added: int = 0
    services_updated: int = 0
    consortia_added: int = 0
    members_added: int = 0

    def summary(self) -> str:
        return (f"サービス 追加 {self.services_added}・更新 {self.services_updated}、"
                f"共同利用の枠組み 追加 {self.consortia_added}・構成団体 追加 {self.members_added}")


def service_rows() -> list[dict]:
    with DATA.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:  # fail loudly on a typo in the data file
        Pattern(row["pattern"]), BurdenCategory(row["burden_category"]), Lifecycle(row["lifecycle"])
        row["sort_order"] = int(row["sort_order"])
    return rows


async def seed_catalog(session: AsyncSession) -> CatalogSeedReport:
    report = CatalogSeedReport()
    existing = {s.id: s for s in (await session.scalars(select(CatalogService))).all()}
    now = utcnow()
    for row in service_rows():
        service = existing.get(row["id"])
        if service is None:
            session.add(CatalogService(**row, seeded=True, version=1, updated_by="seed", updated_at=now))
            report.services_added += 1
        elif service.updated_by == "seed" and any(getattr(service, k) != v for k, v in row.items()):
            for key, value in row.items():
                setattr(service, key, value)
            service.updated_at = now
            report.services_updated += 1
    await session.flush()

    aichi_municipalities = (await session.scalars(
        select(Organization.code).where(Organization.prefecture_number == "23", Organization.type.in_(MUNICIPAL_TYPES),
                                        Organization.retired_on.is_(None), Organization.code != NAGOYA)
        .order_by(Organization.code))).all()
    with_nagoya = (await session.scalars(
        select(Organization.code).where(Organization.prefecture_number == "23", Organization.type.in_(MUNICIPAL_TYPES),
                                        Organization.retired_on.is_(None)).order_by(Organization.code))).all()
    await _consortium(session, report, Consortium(
        id=AICHI_CONSORTIUM, name="あいち電子自治体推進協議会", secretariat_code=AICHI,
        contract="契約: 協議会／管理: 事務局（愛知県）／利用団体は負担金を事務局へ納付",
        fee_rule="人口按分+重み係数（人口が2倍になると負担金を1.5倍）", source=SOURCE_001),
        [AICHI, *aichi_municipalities], AICHI_SYSTEMS)
    await _consortium(session, report, Consortium(
        id=AICHI_ROBOTICS, name="あいちAIロボティクス連携共同研究会", secretariat_code=AICHI,
        contract="契約: 利用団体が事業者と契約／管理: 事務局（愛知県）／利用団体は利用料を事業者へ支払い",
        fee_rule="人口按分+重み係数", source=SOURCE_001),
        [AICHI, *with_nagoya], ())
    return report


async def _consortium(session: AsyncSession, report: CatalogSeedReport, consortium: Consortium,
                      members: list[str], systems) -> None:
    existing = await session.get(Consortium, consortium.id)
    if existing is None:
        session.add(consortium)
        report.consortia_added += 1
        await session.flush()
    elif existing.source != consortium.source:  # the source is seed-owned; nobody edits it on screen
        existing.source = consortium.source
    present = set((await session.scalars(
        select(ConsortiumMember.member_code).where(ConsortiumMember.consortium_id == consortium.id))).all())
    for code in members:
        if code not in present:
            session.add(ConsortiumMember(consortium_id=consortium.id, member_code=code))
            report.members_added += 1
    await session.flush()
    for service_id, group, published, everyone in systems:
        if await session.get(ConsortiumSystem, (consortium.id, service_id)) is None:
            session.add(ConsortiumSystem(consortium_id=consortium.id, service_id=service_id, group_name=group,
                                         published_users=published, all_members=everyone))
            await session.flush()
            if everyone:
                session.add_all(ConsortiumSystemUser(consortium_id=consortium.id, service_id=service_id,
                                                     member_code=code) for code in members)
    await session.flush()
