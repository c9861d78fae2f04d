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


# Catching up on more rows than this happens in a worker thread (a first build over a million
# registrations takes ~20 s), so the event loop keeps serving other requests meanwhile.
THREAD_THRESHOLD = 2_000


def _add_all(matcher: Matcher, mappings: list[dict]) -> None:
    for mapping in mappings:
        matcher.add(mapping)


async def matcher_for(session: AsyncSession, disaster_id: str) -> _Entry:
    """The disaster's matcher, caught up with the database. Use it under ``entry.lock``: the
    matcher is not thread-safe and a catch-up may run in a worker thread."""
    entry = _MATCHERS.setdefault(disaster_id, _Entry())
    async with entry.lock:
        statement = select(VictimRecord).where(VictimRecord.disaster_id == disaster_id)
        if entry.seen_until is not None:
            statement = statement.where(VictimRecord.updated_at >= entry.seen_until)
        async with unscoped(session, f"{LEGAL_BASIS}: 名寄せ（同じ人の重複登録の照合）"):
            rows = (await session.scalars(statement.order_by(VictimRecord.updated_at))).all()
        fresh = [record_mapping(r) for r in rows
                 if not (r.updated_at == entry.seen_until and r.id in entry.seen_ids_at_edge)]
        if len(fresh) > THREAD_THRESHOLD:
            await asyncio.to_thread(_add_all, entry.matcher, fresh)
        else:
            _add_all(entry.matcher, fresh)
        if rows:
            edge = rows[-1].updated_at
            entry.seen_ids_at_edge = {r.id for r in rows if r.updated_at == edge} | (
                entry.seen_ids_at_edge if edge == entry.seen_until else set())
            entry.seen_until = edge
    return entry


def forget(disaster_id: str | None = None) -> None:
    """Drop cached matchers (tests roll back what the matcher has seen)."""
    if disaster_id is None:
        _MATCHERS.clear()
    else:
        _MATCHERS.pop(disaster_id, None)


async def candidates_for(session: AsyncSession, record: VictimRecord, limit: int = 10) -> list[Candidate]:
    entry = await matcher_for(session, record.disaster_id)
    async with entry.lock:
        found = entry.matcher.candidates(record_mapping(record), limit=limit + 1)
    return [c for c in found if c.record_id != record.id][:limit]


def explain(a: VictimRecord, b: VictimRecord):
    return explain_pair(record_mapping(a), record_mapping(b))
