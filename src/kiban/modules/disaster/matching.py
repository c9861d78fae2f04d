"""名寄せ on the registration screen: one in-memory ``linkage.Matcher`` per disaster and process,
kept current incrementally, so checking a new registration costs a lookup in the blocking
indexes, not a scan of the disaster.

Keeping every worker process's matcher current
    Whatever writes a victim record (a registration, an edit of a field the matcher compares,
    an import's chunk) bumps one of the disaster's generations ``matcher:<disaster id>:<shard>``
    in ``shared_generation`` just before it commits, in the same transaction, and notes the ids
    it wrote under the new value in ``matcher_change`` (an ORM hook below: no caller has to
    remember it). Before answering, a matcher reads the generations (one primary-key read) and
    only when one moved does it catch up: it reads the ``matcher_change`` entries past the
    generations it has seen, then those records. So a record registered through one worker is a
    candidate on every other worker at once, an idle disaster costs one small read per request,
    and a catch-up reads exactly what changed, whatever else was written meanwhile.

    Exact, because on one shard the values are consecutive and commit in order: a transaction
    bumping a shard waits for the previous bumper's commit (the row's lock; SQLite has one
    writer). So the entries a matcher can see on a shard always run without a gap from the
    oldest kept, and an entry it needs that is missing was pruned (``KEEP_CHANGES``): it builds
    again. (Until issue #11's session 15 the catch-up went by ``updated_at`` with a minute of
    overlap, since transactions may commit in another order than they stamp: while an import
    ran, every catch-up read again the (id, stamp) of the import's last minute, ~20,000 rows
    on the event loop, several times a second in each worker.)

    ``GENERATION_SHARDS`` rows, one taken at random by each writing transaction: on PostgreSQL
    a bumped row stays locked until the commit, and with one row per disaster every
    registration of the disaster queued for the one before it to commit (bench/load.py's mix at
    50 clients: 50 registrations a second, two or three waiting on that lock at any moment,
    each for as long as its worker took to send the other's COMMIT).

    A bulk write of victim records whose rows are not given (``update(VictimRecord).where(...)``)
    bumps ``ALL_DISASTERS``; every matcher then builds again.

Off the event loop
    Normalising rows into the indexes and scoring candidates are pure Python. A build (about
    20 s over a million registrations) streams the rows in chunks and indexes each in a worker
    thread (``asyncio.to_thread``), and scoring runs in one too, under the entry's lock, so the
    event loop keeps serving other requests. A catch-up (a few registrations, or an import's
    chunk of 500) indexes on the loop, yielding every ``SLICE`` rows: cheaper than handing it
    to a thread (``THREAD_THRESHOLD``).
"""

from __future__ import annotations

import asyncio
import gc
import random
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import and_, delete, event, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kiban.core.jobs.runner import register_ticker
from kiban.core.tenancy.context import unscoped
from kiban.kit.db import utcnow
from kiban.kit.shared import bump_generation, bump_generation_to, generations
from kiban.modules.disaster.linkage import Candidate, Matcher, explain_pair
from kiban.modules.disaster.models import Disaster, MatcherChange, VictimRecord
from kiban.modules.disaster.service import LEGAL_BASIS, record_mapping

#: How long ``matcher_change`` entries are kept (``prune_changes``): a matcher that has not
#: caught up for longer than this finds an entry it needs gone and builds again.
KEEP_CHANGES = timedelta(hours=1)
#: How often the jobs process deletes the entries older than that.
PRUNE_EVERY_SECONDS = 300
#: Rows read per chunk when a matcher is first built.
BUILD_CHUNK = 20_000
#: A chunk of a build at least this large is frozen out of the garbage collector's walks
#: (``_out_of_the_collectors_way``); a smaller matcher costs the collector little.
FREEZE_FROM = 5_000
#: Ids per query when a catch-up reads the records that changed.
CATCH_UP_CHUNK = 1_000
#: At most this many ids in one ``matcher_change`` entry (an import's chunk writes one or two).
IDS_PER_CHANGE = 1_000
#: More rows than this are indexed in a worker thread, all at once (``Matcher.extend``: a
#: build's chunks); fewer, on the event loop one by one (``Matcher.add``, ~30 us a row),
#: yielding every ``SLICE`` rows. ``extend`` costs ~2.5 ms a call before its first row: a
#: catch-up of a few registrations paid that. Not yielding more often: the entry's lock is held
#: meanwhile, and under 200 clients each yield waited a full turn of a crowded loop, so record
#: pages queued behind an import's catch-ups. Scoring always uses a thread.
THREAD_THRESHOLD = 5_000
SLICE = 1_000
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
    generation: tuple[int, ...] | None = None  # (the disaster's shards..., ALL_DISASTERS) seen; None: build
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


# This process's matchers, by disaster. (A test that plays two worker processes in one gives
# each its own dict.)
_MATCHERS: dict[str, _Entry] = {}


async def _index(entry: _Entry, mappings: list[dict]) -> None:
    if len(mappings) > THREAD_THRESHOLD:
        await asyncio.to_thread(entry.matcher.extend, mappings)
        return
    for n, mapping in enumerate(mappings):
        if n and not n % SLICE:
            await asyncio.sleep(0)  # let the other requests of the process run
        entry.matcher.add(mapping)


async def _build(session: AsyncSession, entry: _Entry, disaster_id: str) -> None:
    """Index every record of the disaster into a new matcher. Records committed after the
    generations were read may be read here and again at the next catch-up (indexing a record
    again replaces it)."""
    entry.matcher = Matcher()
    statement = select(*_COLUMNS).where(VictimRecord.disaster_id == disaster_id).execution_options(yield_per=BUILD_CHUNK)
    result = await session.stream(statement)
    async for rows in result.partitions():
        mappings = [row._asdict() for row in rows]
        await _index(entry, mappings)
        if len(mappings) >= FREEZE_FROM:
            _out_of_the_collectors_way()


async def _catch_up(session: AsyncSession, entry: _Entry, disaster_id: str, current: tuple[int, ...]) -> bool:
    """Index the records written by the transactions past the generations the matcher has seen,
    on the shards that moved. False, with nothing indexed, when an entry it needs was pruned
    (the caller builds again)."""
    names = generation_names(disaster_id)
    moved = {names[k]: entry.generation[k] for k in range(GENERATION_SHARDS) if current[k] > entry.generation[k]}
    if not moved:
        return True
    changes = (await session.execute(select(MatcherChange.name, MatcherChange.generation, MatcherChange.record_ids)
                                     .where(or_(*(and_(MatcherChange.name == name, MatcherChange.generation > seen)
                                                  for name, seen in moved.items())))
                                     .order_by(MatcherChange.name, MatcherChange.generation))).all()
    following = dict(moved)  # per shard, the last generation read so far: the next must follow it
    ids: set[str] = set()
    for name, generation, record_ids in changes:
        if generation != following[name] + 1:
            return False
        following[name] = generation
        ids.update(record_ids)
    if any(following[name] < current[names.index(name)] for name in moved):
        return False  # the entries up to the generation read were pruned meanwhile
    mappings = []
    ordered = sorted(ids)
    for start in range(0, len(ordered), CATCH_UP_CHUNK):
        mappings.extend(row._asdict() for row in (await session.execute(select(*_COLUMNS).where(
            VictimRecord.disaster_id == disaster_id, VictimRecord.id.in_(ordered[start:start + CATCH_UP_CHUNK])))).all())
    await _index(entry, mappings)
    return True


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
            if (entry.generation is None or current[-1] > entry.generation[-1]
                    or not await _catch_up(session, entry, disaster_id, current)):
                await _build(session, entry, disaster_id)
        # What was read covers every change committed up to ``current``; a generation seen
        # before that is further on one shard than ``current`` stays as seen.
        entry.generation = current if entry.generation is None else tuple(map(max, entry.generation, current))
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

_PENDING = "kiban.matcher_changes"  # session.info: disaster id (or ALL_DISASTERS) -> ids written


def _pending(session: Session) -> dict[str, set[str]]:
    return session.info.setdefault(_PENDING, {})


def _note(session: Session, disaster_id: str, record_id: str) -> None:
    _pending(session).setdefault(disaster_id, set()).add(record_id)


@event.listens_for(Session, "after_flush")
def _note_flushed_records(session: Session, _context) -> None:
    """Victim records flushed new, or with a compared field changed: their disasters' matchers
    must catch up on them once this transaction commits."""
    for obj in session.new:
        if isinstance(obj, VictimRecord):
            _note(session, obj.disaster_id, obj.id)
    for obj in session.dirty:
        if isinstance(obj, VictimRecord) and _compared_field_changed(obj):
            _note(session, obj.disaster_id, obj.id)


def _compared_field_changed(record: VictimRecord) -> bool:
    from sqlalchemy import inspect

    attrs = inspect(record).attrs
    return any(attrs[name].history.has_changes() for name in MATCHED_FIELDS | {"disaster_id"})


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_writes(state) -> None:
    """ORM bulk inserts and updates of victim records (``session.execute(insert(VictimRecord),
    rows)``, ``session.execute(update(VictimRecord), rows)``) skip the flush: note them here,
    from their rows. A bulk write whose rows do not say the record and its disaster
    (``update(VictimRecord).where(...)``) makes every disaster's matcher build again."""
    if not (state.is_insert or state.is_update):
        return
    mapper = state.bind_mapper
    if mapper is None or mapper.class_ is not VictimRecord:
        return
    if state.is_update and not _bulk_update_touches_compared_fields(state):
        return
    rows = state.parameters
    rows = rows if isinstance(rows, list) else [rows] if isinstance(rows, dict) else []
    if rows and all(r.get("disaster_id") and r.get("id") for r in rows):
        for row in rows:
            _note(state.session, row["disaster_id"], row["id"])
    else:
        _pending(state.session)[ALL_DISASTERS] = set()


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
    """Bump what this transaction changed, in it, as late as possible (on PostgreSQL the
    generation's row stays locked until the commit, so bumping at the first flush of a long
    transaction would make every other registration in the disaster wait for it), and note the
    ids written under the new generation."""
    session.flush()  # what the commit would flush anyway, so its records are noted too
    written = session.info.pop(_PENDING, None)
    if not written:
        return
    shard = random.randrange(GENERATION_SHARDS)  # one for the transaction: an import's chunk locks one row
    connection = session.connection()
    now = utcnow()
    for key in sorted(written):  # one order everywhere: two writers never deadlock
        if key == ALL_DISASTERS:
            bump_generation(connection, [ALL_DISASTERS])
            continue
        name = f"{generation_name(key)}:{shard}"
        generation = bump_generation_to(connection, name, now)
        ids = sorted(written[key])
        # Consecutive generations, one entry each: a long list takes generations of its own.
        for start in range(0, len(ids), IDS_PER_CHANGE):
            if start:
                generation = bump_generation_to(connection, name, now)
            connection.execute(insert(MatcherChange.__table__).values(
                name=name, generation=generation, record_ids=ids[start:start + IDS_PER_CHANGE], changed_at=now))


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


async def prune_changes(session: AsyncSession) -> int:
    """The jobs process's tick: delete the ``matcher_change`` entries older than
    ``KEEP_CHANGES``. Returns how many."""
    removed = (await session.execute(delete(MatcherChange).where(
        MatcherChange.changed_at < utcnow() - KEEP_CHANGES))).rowcount or 0
    await session.commit()
    return removed


register_ticker(prune_changes, PRUNE_EVERY_SECONDS)


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
