"""Demo data of modules/childcare for `kiban demo`: the licensed nurseries of 世田谷区, 目黒区 and
渋谷区 from the shipped slice of 東京都福祉保健局「社会福祉施設等一覧」 (data/SOURCES.md), and in each
of those municipalities an example rules version and an example 公定価格 table.

The source gives one 定員 per facility and nothing else: the split over age classes, the places
free and the hours are invented here, and every seeded record says so (架空). Idempotent: a
municipality that already has facilities from this list is left as it is.
"""

from __future__ import annotations

import csv
import hashlib
import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit import service as audit
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import as_tenant
from kiban.kit.db import utcnow
from kiban.modules.childcare import reports, rules as rulebook, service
from kiban.modules.childcare.models import ChildcareFacility, ChildcarePriceTable

DATA = Path(__file__).parent / "data" / "tokyo_licensed_nurseries_2017_slice.csv"
SOURCE = ("東京都福祉保健局「社会福祉施設等一覧」（2017年10月1日時点）の定員による。"
          "年齢別の内訳・空き数・開所時間は架空（デモ）")
DEMO_ACTOR = audit.Actor("system", "デモデータ（架空）")
RULE_PRESET = {"131121": "example_sum", "131105": "example_min", "131130": "example_sum"}
SHARES = (0.08, 0.16, 0.18, 0.19, 0.195, 0.195)  # an invented split of the 定員 over 0〜5歳児


def _split(capacity: int) -> list[int]:
    seats = [int(capacity * share) for share in SHARES]
    seats[5] += capacity - sum(seats)
    return seats


def _free(name: str, seats: list[int]) -> list[int]:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return [min(s, digest[i] % 4) if i < 3 else min(s, digest[i] % 3) for i, s in enumerate(seats)]


def rows() -> list[dict[str, str]]:
    with DATA.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


async def load_demo(session: AsyncSession) -> int:
    """Adds the demo rows that are missing and returns how many; the caller commits."""
    added = 0
    by_code: dict[str, list[dict[str, str]]] = {}
    for row in rows():
        by_code.setdefault(row["code"], []).append(row)
    now = utcnow()
    for code, facilities in sorted(by_code.items()):
        tenant = await registry_service.tenant_for(session, code)
        async with as_tenant(session, tenant):
            if any(f.source == SOURCE for f in await service.facilities_here(session)):
                continue
            for row in facilities:
                seats = _split(int(row["capacity"]))
                free = _free(row["name"], seats)
                service.FacilityRepository(session).add(ChildcareFacility(
                    id=str(uuid.uuid4()), name=row["name"], kind="licensed", address=row["address"], phone=row["phone"],
                    operator_name="", operator_type=row["operator_type"][:20], operator_corporate_number="",
                    opens_at="07:15", closes_at="18:15", extended_care=True, temporary_care=False,
                    **{f"capacity_{a}": seats[a] for a in range(6)}, **{f"vacancy_{a}": free[a] for a in range(6)},
                    source=SOURCE, version=1, updated_by="デモデータ（架空）", updated_at=now))
                added += 1
            if await service.current_rules(session) is None:
                chosen = rulebook.preset(RULE_PRESET.get(code, "example_sum"))
                await service.save_rules(session, DEMO_ACTOR, chosen["rules"], name=chosen["name"] + "（デモ）",
                                         based_on=chosen["based_on"])
                added += 1
            if await service.prices(session) is None:
                service.PriceRepository(session).add(ChildcarePriceTable(
                    number=1, name="例（架空の単価。実際の公定価格ではありません）", bands=reports.EXAMPLE_BANDS,
                    created_by="デモデータ（架空）", created_at=now))
                added += 1
            await session.flush()
    return added
