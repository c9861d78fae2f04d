"""State every server process must share: counters for rate limits, cache generations, and
snapshots of costly results.

With ``kiban serve --workers N`` each process has its own memory. What must not be counted
per process (sign-in failures, an API key's requests: otherwise an attacker gets N times the
guesses) goes through a ``SharedState``; what each process caches (the registry snapshot, the
名寄せ matcher) is checked against a generation that every change bumps.

Counters: leaky buckets
    One primitive serves both users. ``leak(key, rate=r, amount=1, capacity=c)`` drains the
    key's level by ``r`` per second since it was last counted, then adds ``amount`` unless that
    would exceed ``capacity`` (then ``admitted`` is False and nothing is added). The sign-in
    throttle counts failures with no capacity (``rate`` = one failure forgotten per period); an
    API key's token bucket is a leaky bucket whose capacity is its per-minute limit. A key is
    forgotten once its level has drained and ``hold`` more seconds have passed. Times are the
    caller's clock (seconds), so tests move time instead of waiting for it.

    Three stores, chosen by ``KIBAN_SHARED_STATE`` (``auto``: Redis when ``KIBAN_REDIS_URL`` is
    set, otherwise the database):

    - ``RedisState``: one Lua script per count, so a count is atomic across processes and
      machines; keys carry ``KIBAN_SHARED_STATE_PREFIX`` and expire by themselves.
    - ``DatabaseState``: the table ``shared_counter``, written **in the caller's session** (its
      transaction): on SQLite a second connection would wait for the write lock the request
      itself holds, and in the tests every count is rolled back with the test. The caller
      commits (``transactional`` tells it so). On PostgreSQL the upsert locks the key's row
      until that commit, so concurrent counts of one key queue instead of racing.
    - ``MemoryState``: this process only (one process: a test or a demo). ``kiban serve``
      refuses ``--workers`` above 1 with it.

Generations: always in the database
    ``shared_generation`` holds a counter per cache name. A change bumps it in the **same
    transaction** as the change (``bump_generation``), and a reader compares it with what it
    cached (``generations``: one primary-key read). Redis cannot take part in the database's
    transaction: a bump sent before the commit lets a reader cache the old rows under the new
    generation, one sent after it is lost if the process stops in between. So generations stay
    in the database whichever store counts. (The registry's own ``registry_revision`` is the
    same idea, older than this module.)

Snapshots: always in the database
    ``shared_snapshot`` holds a costly result under a name (a large disaster's dashboard
    counts), with when it was taken and how long that took, so that one process computes it for
    all. ``claim_snapshot`` takes the turn to compute it again, in the caller's transaction; on
    PostgreSQL the turn is the row's lock, which a second claimer skips rather than waits for,
    so it shows the previous result meanwhile. The caller decides when a snapshot is stale.

kit must not import core or modules: callers pass their keys, sessions and clocks.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import JSON, BigInteger, Boolean, Float, String, case, delete, literal, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from kiban.kit.db import Base, UTCDateTime, utcnow
from kiban.kit.errors import KibanError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncSession

    from kiban.kit.settings import Settings

log = logging.getLogger("kiban.shared")

BACKENDS = ("auto", "redis", "database", "memory")
LABELS = {"redis": "Redis", "database": "データベース（shared_counter 表）", "memory": "このプロセスのメモリ"}


class SharedStateUnavailable(KibanError):
    """The shared store did not answer. Refused rather than counted nowhere: an unreachable
    Redis must not switch the sign-in throttle off."""

    status = 503
    title = "ただいまサービスを利用できません"
    type_slug = "shared-state-unavailable"


class SharedCounter(Base):
    """A leaky-bucket counter shared by every server process (platform-wide, not tenant data:
    keys are hashes or ids, never what someone typed)."""

    __tablename__ = "shared_counter"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    level: Mapped[float] = mapped_column(Float)
    counted_at: Mapped[float] = mapped_column(Float)  # the caller's clock, seconds
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    admitted: Mapped[bool] = mapped_column(Boolean)  # whether the last count was admitted


class SharedGeneration(Base):
    """A cache's generation: bumped in the same transaction as every change the cache holds."""

    __tablename__ = "shared_generation"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SharedSnapshot(Base):
    """A costly result one process computes for all (a dashboard's counts over a million
    records), with when it was taken and how long taking it took. Platform-wide like the
    counters: the name says whose it is, and only the code that derived the name reads it."""

    __tablename__ = "shared_snapshot"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[Any | None] = mapped_column(JSON, nullable=True)  # None: never taken yet
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)  # what taking it cost


@dataclass(frozen=True, slots=True)
class Count:
    """A key's level: after a ``leak``, drained and counted; from ``peek``, as last stored."""

    level: float
    at: float  # when it was last counted (the caller's clock)
    admitted: bool = True


def _check(rate: float, amount: float, capacity: float | None) -> None:
    if not rate > 0 or not amount > 0 or (capacity is not None and capacity < 0):
        raise ValueError("rate and amount must be positive, capacity at least 0")


def _drain(level: float, at: float, now: float, rate: float, amount: float,
           capacity: float | None) -> tuple[float, bool]:
    level = max(0.0, level - max(0.0, now - at) * rate)
    if capacity is not None and level + amount > capacity:
        return level, False
    return level + amount, True


class SharedState(ABC):
    """Where counters live (see the module docstring). ``session`` is used by the database
    store only, and ignored by the others."""

    kind: ClassVar[str]
    #: Whether every process sees the same counts (``kiban serve --workers`` needs it).
    shared_across_processes: ClassVar[bool] = True
    #: Whether counts are written in the caller's transaction (the caller must commit them).
    transactional: ClassVar[bool] = False

    @property
    def label(self) -> str:
        return LABELS[self.kind]

    @abstractmethod
    async def leak(self, key: str, *, now: float, rate: float, amount: float = 1.0,
                   capacity: float | None = None, hold: float = 0.0,
                   session: AsyncSession | None = None) -> Count:
        """Drain ``key`` to ``now`` and count ``amount`` (unless over ``capacity``)."""

    @abstractmethod
    async def peek(self, keys: Sequence[str], *, session: AsyncSession | None = None) -> dict[str, Count]:
        """The stored counts of those keys that have one (not drained to now)."""

    @abstractmethod
    async def forget(self, key: str, *, session: AsyncSession | None = None) -> None:
        """Drop a key's count."""

    async def ping(self) -> None:
        """Raise ``SharedStateUnavailable`` when the store does not answer."""

    async def close(self) -> None:
        """Release connections (at application shutdown)."""


# -- this process only ------------------------------------------------------------------------

class MemoryState(SharedState):
    """Counts in this process's memory, the least recently counted dropped beyond
    ``max_entries``. Right for one process (tests, the demo), wrong for several."""

    kind = "memory"
    shared_across_processes = False

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._counts: OrderedDict[str, tuple[float, float, float]] = OrderedDict()  # level, at, expires

    async def leak(self, key, *, now, rate, amount=1.0, capacity=None, hold=0.0, session=None) -> Count:
        _check(rate, amount, capacity)
        level, at, _ = self._counts.pop(key, (0.0, now, now))
        level, admitted = _drain(level, at, now, rate, amount, capacity)
        self._counts[key] = (level, now, now + level / rate + hold)
        while len(self._counts) > self.max_entries:
            self._counts.popitem(last=False)
        return Count(level, now, admitted)

    async def peek(self, keys, *, session=None) -> dict[str, Count]:
        return {k: Count(v[0], v[1]) for k in keys if (v := self._counts.get(k)) is not None}

    async def forget(self, key, *, session=None) -> None:
        self._counts.pop(key, None)


# -- the database -----------------------------------------------------------------------------

class DatabaseState(SharedState):
    """Counts in ``shared_counter``, in the caller's session: one upsert per count (``INSERT ...
    ON CONFLICT DO UPDATE ... RETURNING``, on SQLite and PostgreSQL alike), the draining done
    by the database on the row it locks. Expired rows are deleted by a count once every
    ``PURGE_EVERY`` seconds per process (never at random: a request's statements stay
    predictable, which the sign-in tests compare)."""

    kind = "database"
    transactional = True
    PURGE_EVERY = 600.0

    def __init__(self) -> None:
        self._next_purge = time.monotonic() + self.PURGE_EVERY

    async def leak(self, key, *, now, rate, amount=1.0, capacity=None, hold=0.0, session=None) -> Count:
        _check(rate, amount, capacity)
        session = _needs(session)
        table = SharedCounter.__table__
        c = table.c
        now_, rate_, amount_ = (literal(float(v), Float) for v in (now, rate, amount))
        elapsed = case((now_ > c.counted_at, now_ - c.counted_at), else_=literal(0.0, Float))
        drained = c.level - elapsed * rate_
        level = case((drained > 0, drained), else_=literal(0.0, Float))
        if capacity is None:
            fits = literal(True, Boolean)
            first_level, first_admitted = amount, True
        else:
            fits = level + amount_ <= literal(float(capacity), Float)
            first_admitted = amount <= capacity
            first_level = amount if first_admitted else 0.0
        new_level = case((fits, level + amount_), else_=level)
        insert = _insert_for(session)(table).values(
            key=key, level=first_level, counted_at=float(now), expires_at=float(now) + first_level / rate + hold,
            admitted=first_admitted)
        statement = insert.on_conflict_do_update(
            index_elements=[c.key],
            set_={"level": new_level, "counted_at": now_, "admitted": fits,
                  "expires_at": now_ + new_level / rate_ + literal(float(hold), Float)},
        ).returning(c.level, c.counted_at, c.admitted)
        row = (await session.execute(statement)).one()
        if time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + self.PURGE_EVERY
            await session.execute(delete(SharedCounter).where(SharedCounter.expires_at < float(now)))
        return Count(float(row.level), float(row.counted_at), bool(row.admitted))

    async def peek(self, keys, *, session=None) -> dict[str, Count]:
        if not keys:
            return {}
        rows = (await _needs(session).execute(
            select(SharedCounter.key, SharedCounter.level, SharedCounter.counted_at)
            .where(SharedCounter.key.in_(list(keys))))).all()
        return {r.key: Count(float(r.level), float(r.counted_at)) for r in rows}

    async def forget(self, key, *, session=None) -> None:
        await _needs(session).execute(delete(SharedCounter).where(SharedCounter.key == key))


def _needs(session: AsyncSession | None) -> AsyncSession:
    if session is None:
        raise TypeError("the database store counts in the caller's session: pass session=")
    return session


def _insert_for(bind):
    name = bind.get_bind().dialect.name if hasattr(bind, "get_bind") else bind.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - Kiban runs on these two
        raise RuntimeError(f"shared state needs SQLite or PostgreSQL, not {name}")
    return insert


# -- Redis ------------------------------------------------------------------------------------

# KEYS[1]; ARGV: now, rate, amount, capacity (negative: none), hold. Returns {level, admitted}.
_LEAK = """
local stored = redis.call('HMGET', KEYS[1], 'level', 'at')
local now, rate, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local capacity, hold = tonumber(ARGV[4]), tonumber(ARGV[5])
local level = tonumber(stored[1]) or 0
local at = tonumber(stored[2]) or now
local elapsed = now - at
if elapsed < 0 then elapsed = 0 end
level = level - elapsed * rate
if level < 0 then level = 0 end
local admitted = 1
if capacity >= 0 and level + amount > capacity then admitted = 0 else level = level + amount end
redis.call('HSET', KEYS[1], 'level', string.format('%.17g', level), 'at', ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil((level / rate + hold) * 1000) + 1000)
return {string.format('%.17g', level), admitted}
"""


class RedisState(SharedState):
    """Counts in Redis (redis-py's asyncio client), one Lua script per count."""

    kind = "redis"

    def __init__(self, url: str, prefix: str = "kiban:") -> None:
        import redis.asyncio as redis

        self.url = url
        self.prefix = prefix
        self._client = redis.from_url(url, socket_connect_timeout=2, socket_timeout=2, health_check_interval=30)
        self._leak = self._client.register_script(_LEAK)

    @property
    def label(self) -> str:
        from sqlalchemy.engine import make_url

        try:
            shown = make_url(self.url.replace("rediss://", "redis://", 1)).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - only for display
            shown = "redis://…"
        return f"Redis（{shown}）"

    def _key(self, key: str) -> str:
        return f"{self.prefix}c:{key}"

    async def leak(self, key, *, now, rate, amount=1.0, capacity=None, hold=0.0, session=None) -> Count:
        _check(rate, amount, capacity)
        args = [repr(float(now)), repr(float(rate)), repr(float(amount)),
                repr(float(capacity)) if capacity is not None else "-1", repr(float(hold))]
        try:
            level, admitted = await self._leak(keys=[self._key(key)], args=args)
        except Exception as exc:  # noqa: BLE001 - every Redis failure means the same to a caller
            raise _unavailable(exc) from exc
        return Count(float(level), float(now), bool(int(admitted)))

    async def peek(self, keys, *, session=None) -> dict[str, Count]:
        keys = list(keys)
        if not keys:
            return {}
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(self._key(key), "level", "at")
                stored = await pipe.execute()
        except Exception as exc:  # noqa: BLE001
            raise _unavailable(exc) from exc
        return {k: Count(float(level), float(at)) for k, (level, at) in zip(keys, stored, strict=True)
                if level is not None and at is not None}

    async def forget(self, key, *, session=None) -> None:
        try:
            await self._client.delete(self._key(key))
        except Exception as exc:  # noqa: BLE001
            raise _unavailable(exc) from exc

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except Exception as exc:  # noqa: BLE001
            raise _unavailable(exc) from exc

    async def close(self) -> None:
        await self._client.aclose()

    async def clear_prefix(self) -> int:
        """Delete every key under this store's prefix (tests; a deployment's own namespace)."""
        deleted = 0
        async for key in self._client.scan_iter(match=f"{self.prefix}*", count=500):
            deleted += await self._client.delete(key)
        return deleted


def _unavailable(exc: Exception) -> SharedStateUnavailable:
    log.error("shared state (Redis) unavailable: %s: %s", type(exc).__name__, exc)
    return SharedStateUnavailable("共有の状態を保存するサーバー（Redis）に接続できないため、処理できませんでした。"
                                  "しばらくしてからもう一度お試しください。")


# -- choosing ---------------------------------------------------------------------------------

def backend_for(settings: Settings) -> str:
    """The store ``settings`` ask for, ``auto`` resolved: Redis when a URL is set, else the
    database. Raises ValueError with a Japanese message for an unusable combination."""
    chosen = (settings.shared_state or "auto").strip().lower()
    if chosen not in BACKENDS:
        raise ValueError(f"KIBAN_SHARED_STATE は {' / '.join(BACKENDS)} のいずれかです（「{settings.shared_state}」は使えません）。")
    if chosen == "auto":
        return "redis" if settings.redis_url else "database"
    if chosen == "redis" and not settings.redis_url:
        raise ValueError("KIBAN_SHARED_STATE=redis には KIBAN_REDIS_URL（例: redis://127.0.0.1:6379/0）が必要です。")
    return chosen


def open_shared_state(settings: Settings) -> SharedState:
    """The store for an application (one per process; Redis connects on first use)."""
    kind = backend_for(settings)
    if kind == "redis":
        return RedisState(settings.redis_url, settings.shared_state_prefix)
    if kind == "database":
        return DatabaseState()
    return MemoryState()


# -- generations (always the database; see the module docstring) ------------------------------

async def generations(session: AsyncSession, names: Sequence[str]) -> tuple[int, ...]:
    """The current generation of each name (0 for one never bumped): one primary-key read."""
    rows = dict((await session.execute(
        select(SharedGeneration.name, SharedGeneration.value).where(SharedGeneration.name.in_(list(names))))).all())
    return tuple(int(rows.get(name, 0)) for name in names)


def bump_generation(connection: Connection | Session, names: Iterable[str]) -> None:
    """Bump each name by one, in ``connection``'s (or a sync session's) transaction: the bump
    commits with the change it announces, or not at all. Synchronous, for ORM event hooks; from
    async code use ``await session.run_sync(lambda s: bump_generation(s, names))``. On
    PostgreSQL the row stays locked until that commit: bump just before committing (a
    ``before_commit`` hook), not at the start of a long transaction."""
    now = utcnow()
    for name in sorted(set(names)):  # one order everywhere: two bumpers never deadlock
        bump_generation_to(connection, name, now)


def bump_generation_to(connection: Connection | Session, name: str, now: datetime | None = None) -> int:
    """Bump one name by one, as ``bump_generation``, and return its new value: on a name bumped
    this way the values are consecutive, and on PostgreSQL they also commit in order (a second
    bumper waits for the first one's commit), so a value can label what its transaction wrote."""
    insert = _insert_for(connection)
    table = SharedGeneration.__table__
    now = now or utcnow()
    return int(connection.execute(insert(table).values(name=name, value=1, changed_at=now).on_conflict_do_update(
        index_elements=[table.c.name], set_={"value": table.c.value + 1, "changed_at": now})
        .returning(table.c.value)).scalar_one())


# -- snapshots (always the database, in the caller's transaction) ------------------------------

@dataclass(frozen=True, slots=True)
class Snapshot:
    value: Any
    taken_at: datetime
    seconds: float


async def read_snapshot(session: AsyncSession, name: str) -> Snapshot | None:
    """The snapshot last stored under ``name`` (one primary-key read), or None."""
    row = (await session.execute(select(SharedSnapshot.value, SharedSnapshot.taken_at, SharedSnapshot.seconds)
                                 .where(SharedSnapshot.name == name))).first()
    if row is None or row.taken_at is None:
        return None
    return Snapshot(row.value, row.taken_at, float(row.seconds or 0.0))


async def claim_snapshot(session: AsyncSession, name: str) -> Snapshot | None | bool:
    """Take the turn to compute ``name`` again, in the caller's transaction: False when another
    process holds it (it is computing now: use what there is); otherwise the snapshot as it is
    once the turn is taken (None if there is none), which the caller checks again: another
    process may have stored a fresh one while this one waited. On PostgreSQL the turn is the
    row's lock (``FOR UPDATE SKIP LOCKED``), held until the caller commits or rolls back, so a
    process that stops mid-count frees it. SQLite has one writer and no row locks: there the
    turn is always taken (``kiban serve`` runs one process on SQLite; within a process the
    caller makes concurrent requests wait for one computation)."""
    insert = _insert_for(session)
    await session.execute(insert(SharedSnapshot.__table__).values(name=name, value=None, taken_at=None, seconds=0.0)
                          .on_conflict_do_nothing(index_elements=["name"]))
    statement = select(SharedSnapshot.value, SharedSnapshot.taken_at, SharedSnapshot.seconds).where(
        SharedSnapshot.name == name)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    row = (await session.execute(statement)).first()
    if row is None:
        return False
    return None if row.taken_at is None else Snapshot(row.value, row.taken_at, float(row.seconds or 0.0))


async def store_snapshot(session: AsyncSession, name: str, value: Any, *, taken_at: datetime, seconds: float) -> None:
    """Store what the claimer computed (``claim_snapshot`` first); the caller commits."""
    await session.execute(update(SharedSnapshot).where(SharedSnapshot.name == name)
                          .values(value=value, taken_at=taken_at, seconds=float(seconds)))
