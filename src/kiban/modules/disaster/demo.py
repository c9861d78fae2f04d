"""Demo data for ``kiban demo`` only: a fictional disaster opened by 石川県 with shelters and
synthetic registrations (``synthetic.py``; nobody real), some of them the same person registered
by two municipalities, so that 名寄せ, sharing and the dashboard have something to show."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry import service as registry
from kiban.core.tenancy.context import as_tenant
from kiban.kit.db import utcnow
from kiban.modules.disaster import service
from kiban.modules.disaster.models import Disaster, Shelter
from kiban.modules.disaster.synthetic import generate

DEMO_NAME = "デモ: 能登北部地震（架空の災害）"
AFFECTED = ("172049", "172057", "173843", "174611", "174637")
REGISTERING = AFFECTED + ("172014", "172022")
DEMO_ACTOR = "デモデータ作成（架空）"  # shown as who registered: no command names on screens


async def load_demo(session: AsyncSession, registrations: int = 400) -> int:
    """Idempotent: does nothing when the demo disaster exists. Returns records added."""
    if await session.scalar(select(Disaster.id).where(Disaster.name == DEMO_NAME)):
        return 0
    ishikawa = await registry.tenant_for(session, "170003")
    disaster = await service.open_disaster(
        session, ishikawa, name=DEMO_NAME, kind="地震", occurred_on=date(2026, 11, 1),
        description="操作を試すために作った架空の災害です。登録されている人はすべて合成データで、実在の人ではありません。",
        affected=list(AFFECTED), relief_act=list(AFFECTED[:3]), actor=DEMO_ACTOR)
    shelters: dict[str, str] = {}
    for code in REGISTERING:
        tenant = await registry.tenant_for(session, code)
        async with as_tenant(session, tenant):
            shelter = await service.save_shelter(
                session, disaster, shelter_id=None, name=f"{tenant.name}総合体育館（デモ）", address="", capacity="300",
                occupancy="0", is_open=True, needs="毛布、飲料水", expected_version=0, actor=DEMO_ACTOR)
            shelters[code] = shelter.id
    added = 0
    for row in generate(registrations, seed=20261101, affected_lg_codes=AFFECTED, registering_lg_codes=REGISTERING):
        tenant = await registry.tenant_for(session, row["registered_by"])
        birth = row["birth_date"]
        data = service.RecordInput(
            family_name=row["family_name"], given_name=row["given_name"], family_kana=row["family_kana"] or "",
            given_kana=row["given_kana"] or "", birth_date=date.fromisoformat(birth) if isinstance(birth, str) else birth,
            sex=row["sex"], home_address=row["home_address"] or "", home_lg_code=row["home_lg_code"],
            whereabouts="shelter", shelter_id=shelters[tenant.lg_code], phone=row["phone"] or "",
            household_key=str(row.get("household_id", ""))[:60], import_key=f"demo:{row['record_id']}"[:64])
        async with as_tenant(session, tenant):
            await service.register(session, tenant, disaster, data, actor=DEMO_ACTOR)
        added += 1
    occupancy: dict[str, int] = {}
    for record in await service.all_records_for_matching(session, disaster.id):
        occupancy[record.lg_code] = occupancy.get(record.lg_code, 0) + 1
    for code, count in occupancy.items():
        tenant = await registry.tenant_for(session, code)
        async with as_tenant(session, tenant):
            shelter = await session.get(Shelter, (code, shelters[code]))
            shelter.occupancy, shelter.updated_at = count, utcnow()
            await session.flush()
    return added
