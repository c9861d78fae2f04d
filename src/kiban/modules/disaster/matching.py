"""名寄せ on the registration screen: one in-memory ``linkage.Matcher`` per disaster and process,
kept current incrementally (records written since it last looked are added; records are never
deleted, and an edited record replaces its old entry), so checking a new registration costs a
lookup in the blocking indexes, not a scan of the disaster."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.tenancy.context import unscoped
from kiban.modules.disaster.linkage import Candidate, Matcher, explain_pair
from kiban.modules.disaster.models import VictimRecord
from kiban.modules.disaster.service import LEGAL_BASIS, record_mapping


@dataclass
class _Entry:
    matcher: Matcher = field(default_factory=Matcher)
    seen_until: datetime | None = None
    seen_ids_at_edge: set[str] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


_MATCHERS: dict[str, _Entry] = {}


async def matcher_for(session: AsyncSession, disaster_id: str) -> Matcher:
    entry = _MATCHERS.setdefault(disaster_id, _Entry())
    async with entry.lock:
        statement = select(VictimRecord).where(VictimRecord.disaster_id == disaster_id)
        if entry.seen_until is not None:
            statement = statement.where(VictimRecord.updated_at >= entry.seen_until)
        async with unscoped(session, f"{LEGAL_BASIS}: 名寄せ（同じ人の重複登録の照合）"):
            rows = (await session.scalars(statement.order_by(VictimRecord.updated_at))).all()
        for record in rows:
            if record.updated_at == entry.seen_until and record.id in entry.seen_ids_at_edge:
                continue
            entry.matcher.add(record_mapping(record))
        if rows:
            edge = rows[-1].updated_at
            entry.seen_ids_at_edge = {r.id for r in rows if r.updated_at == edge} | (
                entry.seen_ids_at_edge if edge == entry.seen_until else set())
            entry.seen_until = edge
        return entry.matcher


def forget(disaster_id: str | None = None) -> None:
    """Drop cached matchers (tests roll back what the matcher has seen)."""
    if disaster_id is None:
        _MATCHERS.clear()
    else:
        _MATCHERS.pop(disaster_id, None)


async def candidates_for(session: AsyncSession, record: VictimRecord, limit: int = 10) -> list[Candidate]:
    matcher = await matcher_for(session, record.disaster_id)
    return [c for c in matcher.candidates(record_mapping(record), limit=limit + 1) if c.record_id != record.id][:limit]


def explain(a: VictimRecord, b: VictimRecord):
    return explain_pair(record_mapping(a), record_mapping(b))
