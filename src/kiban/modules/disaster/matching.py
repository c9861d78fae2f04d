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


@dataclass(frozen=True)
class Shown:
    """A candidate as the viewer may see it: ``shared`` when the record is readable by the viewer
    anyway under the sharing rules (its card may show the birth date); otherwise only what is
    needed to judge the match (name, who registered it, the probability and the reasons), never
    a birth date, whereabouts or contact details, and only from ``MIN_CONFIRM_PROBABILITY`` up."""

    candidate: Candidate
    record: VictimRecord
    shared: bool


async def candidates_for_viewer(session: AsyncSession, viewer, record: VictimRecord, limit: int = 10) -> list[Shown]:
    """The candidates ``viewer`` may be shown for one of the records it can see. A record marked
    支援措置対象 is never a candidate outside its owner and the prefectures; another municipality's
    record the viewer cannot read is offered only when at least as probable as confirming needs,
    so the list is no search over the disaster by a name."""
    from kiban.modules.disaster import service

    found = await candidates_for(session, record, limit=max(limit, 50))
    others = await service.records_for_matching(session, record.disaster_id, {c.record_id for c in found})
    readable = {r.id for r in await service.visible_records(session, viewer, record.disaster_id,
                                                            record_ids=sorted(others))} if others else set()
    shown: list[Shown] = []
    for c in found:
        other = others.get(c.record_id)
        if other is None or (other.protected and not service.may_see_protected(viewer, other)):
            continue
        shared = other.id in readable
        if not shared and c.probability < service.MIN_CONFIRM_PROBABILITY:
            continue
        shown.append(Shown(c, other, shared))
        if len(shown) >= limit:
            break
    return shown
