"""Demo data for ``kiban demo`` only: 一宮市 (232033) with a 体育館 and a 会議室, so the 施設予約
pages have something to book. The facilities are invented (their description says 架空); no
bookings are made. Idempotent: a facility already there (by name) is left as it is.

Call it from the demo command beside the other modules' demo data::

    from kiban.modules.reservations.demo import load_demo as load_reservations_demo
    added += await load_reservations_demo(session)
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit import service as audit
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import bind_tenant
from kiban.modules.reservations import service

ICHINOMIYA = "232033"
DEMO_ACTOR = audit.Actor("system", "デモデータ（架空）")
NOTE = "架空のデモデータです。実在の施設ではありません。"

FACILITIES = (
    ({"name": "一宮市民体育館（デモ）", "kind": "gym", "address": "一宮市（架空の所在地）", "description": NOTE,
      "eligibility": "residents", "slot_minutes": 120, "booking_window_days": 60, "cancel_deadline_hours": 48,
      "max_active_per_person": 4, "opening_hours": {**{str(d): ["09:00", "21:00"] for d in range(6)}, "6": ["09:00", "17:00"]}},
     [{"name": "アリーナ全面", "capacity": 300, "fee_yen": 4800}, {"name": "アリーナ半面", "capacity": 150, "fee_yen": 2400}]),
    ({"name": "一宮市民会館 会議室（デモ）", "kind": "meeting", "address": "一宮市（架空の所在地）", "description": NOTE,
      "eligibility": "anyone", "slot_minutes": 60, "booking_window_days": 90, "cancel_deadline_hours": 24,
      "max_active_per_person": 6, "opening_hours": {str(d): ["09:00", "22:00"] for d in range(7) if d != 1}},
     [{"name": "第1会議室", "capacity": 30, "fee_yen": 800}, {"name": "第2会議室", "capacity": 12, "fee_yen": 400}]),
)


async def load_demo(session: AsyncSession) -> int:
    """Adds the demo facilities that are missing and commits; returns how many were added."""
    await bind_tenant(session, await registry_service.tenant_for(session, ICHINOMIYA))
    existing = {f.name for f in await service.facilities(session, include_retired=True)}
    added = 0
    for values, rooms in FACILITIES:
        if values["name"] in existing:
            continue
        await service.create_facility(session, DEMO_ACTOR, dict(values), rooms=[dict(r) for r in rooms])
        added += 1
    await session.commit()
    return added
