"""Demo data for ``kiban demo`` only: illustrative adoptions and costs, so the cost pages have
something to show. Nothing here is real: every adoption's note says 架空のデモデータ (and pages
showing figures built from them say 架空, see ``service.demo_service_ids``), costs are derived
from population by a fixed formula, and the Aichi systems' users beyond the 全団体事業 are picked
deterministically to match the published counts, not taken from the consortium's records."""

from __future__ import annotations

import hashlib
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry.models import Organization
from kiban.core.tenancy.context import unscoped
from kiban.kit.db import utcnow
from kiban.modules.catalog.models import Adoption, CatalogService, ConsortiumSystemUser
from kiban.modules.catalog.seed import AICHI_CONSORTIUM, MUNICIPAL_TYPES, AICHI_SYSTEMS
from kiban.modules.catalog.service import (
    DEMO_ACTOR,
    DEMO_NOTE,
    LEGACY_DEMO_ACTOR,
    LEGACY_DEMO_NOTE,
    consortium_members,
)

__all__ = ["DEMO_NOTE", "load_demo"]


def _pick(code: str, salt: str) -> int:
    return int(hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()[:8], 16)


async def load_demo(session: AsyncSession) -> int:
    """Idempotent: adds what is missing, returns the number of adoptions added."""
    now = utcnow()
    madoguchi = await session.get(CatalogService, "madoguchi-dx-saas")
    if madoguchi is not None and madoguchi.annual_cost is None:
        madoguchi.annual_cost = 520_000_000
        madoguchi.updated_by = DEMO_ACTOR
        madoguchi.updated_at = now
    municipalities = (await session.scalars(
        select(Organization).where(Organization.type.in_(MUNICIPAL_TYPES), Organization.population > 0,
                                   Organization.retired_on.is_(None)).order_by(Organization.code))).all()
    added = 0
    if madoguchi is not None and madoguchi.updated_by == LEGACY_DEMO_ACTOR:
        madoguchi.updated_by = DEMO_ACTOR
    async with unscoped(session, "kiban demo: デモ用の利用状況を各団体に登録"):
        # A demo database from before the markers said 架空 gets the current ones.
        await session.execute(update(Adoption).where(Adoption.note == LEGACY_DEMO_NOTE)
                              .values(note=DEMO_NOTE, updated_by=DEMO_ACTOR))
        existing = set((await session.execute(select(Adoption.lg_code, Adoption.service_id))).all())
        for org in municipalities:
            scale = org.population ** 0.6
            plans = []
            if _pick(org.code, "madoguchi") % 12 == 0:
                plans.append(("madoguchi-dx-saas", int(scale * 9_000) // 1000 * 1000, int(scale * 5_500) // 1000 * 1000))
            if _pick(org.code, "std") % 15 == 0:
                plans.append(("std-01", int(scale * 20_000) // 1000 * 1000, int(scale * 14_500) // 1000 * 1000))
            for service_id, replaced, current in plans:
                if (org.code, service_id) in existing:
                    continue
                renewal_year = 2026 + _pick(org.code, service_id) % 4
                session.add(Adoption(lg_code=org.code, service_id=service_id, status="in_use",
                                     since=date(2025, 4, 1), renewal_on=date(renewal_year + 1, 3, 31),
                                     replaced_annual_cost=replaced, annual_cost=current, note=DEMO_NOTE,
                                     version=1, updated_by=DEMO_ACTOR, updated_at=now))
                added += 1
        await session.flush()
    members = [m.code for m in await consortium_members(session, AICHI_CONSORTIUM)]
    for service_id, _group, published, everyone in AICHI_SYSTEMS:
        if everyone:
            continue
        present = set((await session.scalars(select(ConsortiumSystemUser.member_code).where(
            ConsortiumSystemUser.consortium_id == AICHI_CONSORTIUM, ConsortiumSystemUser.service_id == service_id))).all())
        if present:
            continue
        chosen = sorted(members, key=lambda code: _pick(code, service_id))[:published]
        session.add_all(ConsortiumSystemUser(consortium_id=AICHI_CONSORTIUM, service_id=service_id, member_code=code)
                        for code in chosen)
    await session.flush()
    return added
