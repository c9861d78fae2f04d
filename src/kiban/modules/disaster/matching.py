"""名寄せ on the registration screen: one in-memory ``linkage.Matcher`` per disaster and process,
kept current incrementally, so checking a new registration costs a lookup in the blocking
indexes, not a scan of the disaster.

Keeping every worker process's matcher current
    Whatever writes a victim record (a registration, an edit of a field the matcher compares,
    an import) bumps one of the disaster's generations ``matcher:<disaster id>:<shard>`` in
    ``shared_generation`` in the same transaction, just before it commits (an ORM hook below: no
    caller has to remember it). Before answering, a matcher reads them (one primary-key read)
    and only when one moved does it catch up: it reads the records stamped since it last
    looked. So a record registered through one worker is a candidate on every other worker at
    once, and an idle disaster costs one small read per request, not a query over its records.

    ``GENERATION_SHARDS`` rows, one taken at random by each writing transaction: on PostgreSQL
    a bumped row stays locked until the commit, and with one row per disaster every
    registration of the disaster queued for the one before it to commit (bench/load.py's mix at
    50 clients: 50 registrations a second, two or three waiting on that lock at any moment,
    each for as long as its worker took to send the other's COMMIT).

    Catching up goes by ``updated_at``, with an overlap: a transaction that stamped its rows
    earlier may commit after one that stamped later, and reading only from the newest stamp
    seen would skip its rows for good. A writer must commit within ``OVERLAP`` of stamping its
    rows (requests do; imports commit in chunks), so a row the matcher could not see when it
    last read, at time T, is stamped after T - ``OVERLAP``: the next catch-up reads the rows
    stamped from there on (``_Entry.floor``). Rows already indexed with the same stamp are
    skipped, so the overlap costs reading recent ids again, not re-indexing them. Counted from
    the read's time, not from the newest stamp seen: records bulk loaded an hour earlier, all
    stamped within a minute, were each read again by every worker's first catch-up after its
    build (150,000 ids on bench/load.py's database, the event loop blocked 2 s, issue #11).
    Stamps and read times are the application servers' clocks, which must agree to well within
    ``OVERLAP``.

Off the event loop
    Normalising rows into the indexes and scoring candidates are pure Python and can take from
    milliseconds to seconds (a first build over a million registrations, about 20 s); they run
    in a worker thread (``asyncio.to_thread``) under the entry's lock, so the event loop keeps
    serving other requests. A first build streams the rows in chunks and indexes each chunk in
    the thread while the next is read.
"""

from __future__ import annotations

import asyncio
import gc
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kiban.core.tenancy.context import unscoped
from kiban.kit.db import utcnow
from kiban.kit.shared import bump_generation, generations
from kiban.modules.disaster.linkage import Candidate, Matcher, explain_pair
from kiban.modules.disaster.models import Disaster, VictimRecord
from kiban.modules.disaster.service import LEGAL_BASIS, record_mapping

#: How long a writer may take from stamping its rows to committing them: a catch-up reads again
#: the rows stamped this long before the previous read began (see the module docstring).
OVERLAP = timedelta(seconds=60)
#: Rows read per chunk when a matcher is first built.
BUILD_CHUNK = 20_000
#: A chunk of a build at least this large is frozen out of the garbage collector's walks
#: (``_out_of_the_collectors_way``); a smaller matcher costs the collector little.
FREEZE_FROM = 5_000
#: Ids per query when a catch-up reads the records that changed.
CATCH_UP_CHUNK = 1_000
#: Catching up on more rows than this happens in a worker thread; fewer are indexed at once
#: (a handful of rows costs less than handing them to a thread). Scoring always uses a thread.
THREAD_THRESHOLD = 200
#: The generation every matcher also watches: bumped by a bulk write whose disaster is unknown.
ALL_DISASTERS = "matcher:*"
#: Rows a disaster's generation is spread over (see the module docstring); a matcher reads all.
GENERATION_SHARDS = 8

# What the matcher reads of a record: exactly ``service.record_mapping``'s keys, as columns, so
# building an index does not load a million ORM objects.
_COLUMNS = (VictimRecord.id.label("record_id"), VictimRecord.family_name, VictimRecord.given_name,
            VictimRecord.family_kana, VictimRecord.given_kana, VictimRecord.birth_date, VictimRecord.sex,
            VictimRecord.home_lg_code, VictimRecord.home_address, VictimRecord.phone,
            VictimRecord.lg_code.label("registered_by"))
#: The record's fields the matcher compares: editing another field (a shelter move, damage,
#: support, the person after 名寄せ) leaves the indexes as they are and bumps nothing.
MATCHED_FIELDS = frozenset(c.key for c in _COLUMNS) - {"record_id", "registered_by"}


def generation_name(disaster_id: str) -> str:
    """What a writer notes for the disaster; it bumps one shard of it (``_bump_before_commit``)."""
    return f"matcher:{disaster_id}"


def generation_names(disaster_id: str) -> tuple[str, ...]:
    """The rows a matcher of the disaster watches: every shard of its generation."""
    return tuple(f"{generation_name(disaster_id)}:{shard}" for shard in range(GENERATION_SHARDS))


@dataclass
class _Entry:
    matcher: Matcher = field(default_factory=Matcher)
    generation: tuple[int, ...] | None = None  # (the disaster's shards..., ALL_DISASTERS) when last caught up
    floor: datetime | None = None  # the next catch-up reads the rows stamped from here (None: build)
    recent: dict[str, datetime] = field(default_factory=dict)  # id -> updated_at, of those from floor
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


# This process's matchers, by disaster. (A test that plays two worker processes in one gives
# each its own dict.)
_MATCHERS: dict[str, _Entry] = {}


def _add_all(matcher: Matcher, mappings: list[dict]) -> None:
    if len(mappings) > 1:
        matcher.extend(mappings)
    else:
        for mapping in mappings:
            matcher.add(mapping)


async def _index(entry: _Entry, mappings: list[dict]) -> None:
    if len(mappings) > THREAD_THRESHOLD:
        await asyncio.to_thread(_add_all, entry.matcher, mappings)
    else:
        _add_all(entry.matcher, mappings)


def _remember(entry: _Entry, stamps: dict[str, datetime], read_at: datetime) -> None:
    """After a read that began at ``read_at``: the next catch-up reads from ``read_at`` - OVERLAP
    (a row not visible to this read was stamped after that), and the ids stamped from there on
    are kept, so that it skips those already indexed as they are."""
    floor = read_at - OVERLAP
    if entry.floor is None or floor > entry.floor:
        entry.floor = floor
    entry.recent = {i: t for i, t in {**entry.recent, **stamps}.items() if t >= entry.floor}


async def _build(session: AsyncSession, entry: _Entry, disaster_id: str) -> None:
    statement = (select(*_COLUMNS, VictimRecord.updated_at).where(VictimRecord.disaster_id == disaster_id)
                 .execution_options(yield_per=BUILD_CHUNK))
    read_at = utcnow()
    keep_from = read_at - OVERLAP  # only the stamps a catch-up may read again (_remember)
    stamps: dict[str, datetime] = {}
    result = await session.stream(statement)
    async for rows in result.partitions():
        mappings = []
        for row in rows:
            mapping = row._asdict()
            stamp = mapping.pop("updated_at")
            if stamp >= keep_from:
                stamps[mapping["record_id"]] = stamp
            mappings.append(mapping)
        await _index(entry, mappings)
        if len(mappings) >= FREEZE_FROM:
            _out_of_the_collectors_way()
    _remember(entry, stamps, read_at)


async def _catch_up(session: AsyncSession, entry: _Entry, disaster_id: str) -> None:
    """Index what changed since the matcher last looked. First which ids changed (from the index
    ``ix_victim_record_changes`` alone: while residents register, the overlap holds a minute of
    registrations, thousands, nearly all indexed already), then the compared fields of those not
    yet indexed as they are now."""
    read_at = utcnow()
    changed = (await session.execute(select(VictimRecord.id, VictimRecord.updated_at).where(
        VictimRecord.disaster_id == disaster_id, VictimRecord.updated_at >= entry.floor))).all()
    stamps = {record_id: stamp for record_id, stamp in changed if entry.recent.get(record_id) != stamp}
    mappings = []
    ids = sorted(stamps)
    for start in range(0, len(ids), CATCH_UP_CHUNK):
        for row in (await session.execute(select(*_COLUMNS, VictimRecord.updated_at).where(
                VictimRecord.disaster_id == disaster_id, VictimRecord.id.in_(ids[start:start + CATCH_UP_CHUNK])))).all():
            mapping = row._asdict()
            stamps[mapping["record_id"]] = mapping.pop("updated_at")  # as read now, if changed again meanwhile
            mappings.append(mapping)
    await _index(entry, mappings)
    _remember(entry, stamps, read_at)


async def matcher_for(session: AsyncSession, disaster_id: str) -> _Entry:
    """The disaster's matcher, caught up with the database when its generation moved. Use it
    under ``entry.lock``: the matcher is not thread-safe and work on it runs in a thread."""
    entry = _MATCHERS.get(disaster_id) or _MATCHERS.setdefault(disaster_id, _Entry())  # no throwaway Matcher
    # Read before the records: a change committed after this read bumps again, so it is caught
    # up next time; one committed before it is in what is read below. Read before taking the
    # lock: a request holding the lock while it waits for a database connection would make every
    # record page of the process queue behind it (bench/load.py, 50 clients: 30-55 s pages).
    current = await generations(session, (*generation_names(disaster_id), ALL_DISASTERS))
    if _caught_up(entry, current):
        return entry
    async with entry.lock:
        # Another request caught up while this one waited, to this generation or a later one
        # (while residents register, the generation moves every few milliseconds: requesting
        # exactly the one read above, each waiting request would catch up again in turn).
        if _caught_up(entry, current):
            return entry
        async with unscoped(session, f"{LEGAL_BASIS}: 名寄せ（同じ人の重複登録の照合）"):
            if entry.floor is None:
                await _build(session, entry, disaster_id)
            else:
                await _catch_up(session, entry, disaster_id)
        entry.generation = current
    return entry


def _out_of_the_collectors_way() -> None:
    """Move what the process holds now, each chunk of a matcher being built above all, out of
    the cyclic garbage collector's sight (``gc.freeze``). A matcher of a million registrations
    is about 2.5 million objects, and each full collection walked them all: 1.9-2.4 s during
    which the process answered nothing (measured on bench/load.py's database); while it was
    being built, full collections every 2-3 s, each longer than the last (180 ms to 1 s). The
    young generations are collected first, so little garbage is frozen with it; the matcher
    lives as long as the process, so keeping it out of the collections loses nothing."""
    gc.collect(1)
    gc.freeze()


def _caught_up(entry: _Entry, current: tuple[int, ...]) -> bool:
    """Whether the matcher has seen at least what generation ``current`` announces (generations
    only grow)."""
    return entry.generation is not None and all(seen >= wanted for seen, wanted in zip(entry.generation, current))


async def warm(session_factory) -> int:
    """Build the matcher of every open disaster, one after another (the server's start, in the
    background: ``KIBAN_MATCHER_WARM``). Returns how many were built."""
    async with session_factory() as session:
        async with unscoped(session, f"{LEGAL_BASIS}: 名寄せの準備（受付中の災害の一覧）"):
            open_ids = list((await session.scalars(select(Disaster.id).where(Disaster.closed_at.is_(None))
                                                   .order_by(Disaster.opened_at))).all())
    for disaster_id in open_ids:
        async with session_factory() as session:
            await matcher_for(session, disaster_id)
    return len(open_ids)


def forget(disaster_id: str | None = None) -> None:
    """Drop cached matchers (tests roll back what the matcher has seen)."""
    if disaster_id is None:
        _MATCHERS.clear()
    else:
        _MATCHERS.pop(disaster_id, None)


async def candidates_for(session: AsyncSession, record: VictimRecord, limit: int = 10) -> list[Candidate]:
    entry = await matcher_for(session, record.disaster_id)
    async with entry.lock:
        found = await asyncio.to_thread(entry.matcher.candidates, record_mapping(record), limit + 1)
    return [c for c in found if c.record_id != record.id][:limit]


def explain(a: VictimRecord, b: VictimRecord):
    return explain_pair(record_mapping(a), record_mapping(b))


# -- the generation bump, whatever writes a record ---------------------------------------------

_PENDING = "kiban.matcher_generations"  # session.info: names to bump when this transaction commits


def _pending(session: Session) -> set[str]:
    return session.info.setdefault(_PENDING, set())


@event.listens_for(Session, "after_flush")
def _note_flushed_records(session: Session, _context) -> None:
    """Victim records flushed new, or with a compared field changed: their disasters' matchers
    must catch up once this transaction commits."""
    for obj in session.new:
        if isinstance(obj, VictimRecord):
            _pending(session).add(generation_name(obj.disaster_id))
    for obj in session.dirty:
        if isinstance(obj, VictimRecord) and _compared_field_changed(obj):
            _pending(session).add(generation_name(obj.disaster_id))


def _compared_field_changed(record: VictimRecord) -> bool:
    from sqlalchemy import inspect

    attrs = inspect(record).attrs
    return any(attrs[name].history.has_changes() for name in MATCHED_FIELDS | {"disaster_id"})


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_writes(state) -> None:
    """ORM bulk inserts and updates of victim records (``session.execute(insert(VictimRecord),
    rows)``, ``update(VictimRecord)...``) skip the flush: note them here. Their disasters come
    from the rows when given; otherwise every disaster's matcher catches up."""
    if not (state.is_insert or state.is_update):
        return
    mapper = state.bind_mapper
    if mapper is None or mapper.class_ is not VictimRecord:
        return
    if state.is_update and not _bulk_update_touches_compared_fields(state):
        return
    rows = state.parameters
    rows = rows if isinstance(rows, list) else [rows] if isinstance(rows, dict) else []
    disasters = {r.get("disaster_id") for r in rows}
    if rows and None not in disasters:
        _pending(state.session).update(generation_name(d) for d in disasters)
    else:
        _pending(state.session).add(ALL_DISASTERS)


def _bulk_update_touches_compared_fields(state) -> bool:
    statement = state.statement
    values = getattr(statement, "_values", None) or {}
    names = {getattr(k, "key", getattr(k, "name", k)) for k in values}
    rows = state.parameters
    for row in rows if isinstance(rows, list) else [rows] if isinstance(rows, dict) else []:
        names |= set(row)
    return not names or bool(names & (MATCHED_FIELDS | {"disaster_id"}))


@event.listens_for(Session, "before_commit")
def _bump_before_commit(session: Session) -> None:
    """Bump what this transaction changed, in it, as late as possible: on PostgreSQL the
    generation's row stays locked until the commit, so bumping at the first flush of a long
    transaction would make every other registration in the disaster wait for it."""
    session.flush()  # what the commit would flush anyway, so its records are noted too
    names = session.info.pop(_PENDING, None)
    if names:
        shard = random.randrange(GENERATION_SHARDS)  # one for the transaction: an import's chunk locks one row
        bump_generation(session.connection(), {n if n == ALL_DISASTERS else f"{n}:{shard}" for n in names})


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


# -- what a viewer is shown --------------------------------------------------------------------

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
