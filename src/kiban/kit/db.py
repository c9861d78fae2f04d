"""Database engine, sessions and the declarative base shared by every module."""

from __future__ import annotations

import logging
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import JSON, DateTime, MetaData, TypeDecorator, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("kiban.db")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _prepare_sqlite_file(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, *, echo: bool = False, pool: bool = True, busy_timeout: float = 30,
                  pool_size: int = 5, max_overflow: int = 10) -> AsyncEngine:
    """An async engine with the settings Kiban relies on for the given backend.

    SQLite: foreign keys on, WAL, and BEGIN emitted by SQLAlchemy rather than the driver so
    that SAVEPOINTs work (SQLAlchemy's documented pysqlite/aiosqlite workaround; tests rely on it
    to roll back every test). A transaction begins ``IMMEDIATE`` (it takes the write lock at
    once, and waits up to the busy timeout for it) unless its connection carries the execution
    option ``sqlite_deferred=True``: then it begins deferred and reads a WAL snapshot beside
    whoever is writing, taking no lock. A deferred transaction that then writes fails at once
    (``SQLITE_BUSY`` / ``SQLITE_BUSY_SNAPSHOT``, no busy timeout) when another writer holds the
    lock or committed since it began reading; ``get_session`` and ``ReadRetryMiddleware``
    give safe requests (GET, HEAD) deferred sessions and run such a request again, once, with
    an ``IMMEDIATE`` one. See docs/architecture.md, "SQLite: readers beside one writer".
    PostgreSQL is untouched by any of this.
    """
    if url.startswith("sqlite"):
        _prepare_sqlite_file(url)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": busy_timeout})

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection, _record) -> None:  # pragma: no cover - driver hook
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn) -> None:  # pragma: no cover - driver hook
            deferred = conn.get_execution_options().get("sqlite_deferred", False)
            conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

        return engine
    # No ping at each checkout: on asyncpg it is three round trips (BEGIN, a statement, ROLLBACK)
    # before every request's first query. A connection the server dropped fails its statement
    # instead; SQLAlchemy then discards the pool's connections, and the request is answered 503
    # (kit/errors.database_busy: try again, nothing was changed).
    # JIT off for every connection: PostgreSQL compiles a query whose estimated cost is high (the
    # sharing rule's per-row test makes every estimate over a large disaster high) with LLVM
    # first, 1.5 s of compiling for a query that runs in milliseconds. Set once per connection
    # rather than by a statement in every transaction that might need it.
    kwargs: dict = {"echo": echo, "connect_args": {"server_settings": {"jit": "off"}}}
    if not pool:
        kwargs["poolclass"] = NullPool
    else:
        kwargs.update(pool_size=pool_size, max_overflow=max_overflow)
    return create_async_engine(url, **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# -- commit only what was written ----------------------------------------------------------------

_WROTE = "kiban.wrote_in"  # connection.info: the transaction in which a statement last wrote
_NOT_WRITES = ("SELECT", "BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT")


@event.listens_for(Engine, "before_cursor_execute")
def _note_write(connection, _cursor, statement: str, _parameters, _context, _executemany) -> None:
    # Anything but a plain SELECT counts as a write (INSERT, UPDATE, DELETE, WITH ... INSERT, a
    # PRAGMA): a statement taken for a write costs a commit, a write taken for a read would be lost.
    if not statement.lstrip()[:9].upper().startswith(_NOT_WRITES):
        connection.info[_WROTE] = connection.get_transaction()


async def commit_if_written(session: AsyncSession) -> None:
    """Commit now if this transaction wrote anything (a page that only reads still records, e.g.
    the audited reads of other organisations' records, and what it recorded must outlive a failure
    later in the page); otherwise, on PostgreSQL, carry on in the same transaction: a commit with
    nothing to commit and the BEGIN after it were two round trips, and the tenant context set
    again a third. SQLite always commits: a read transaction kept open keeps its snapshot, and
    when the page then writes (an audited read after the 名寄せ candidates) a snapshot older than
    another writer's commit is refused (SQLITE_BUSY_SNAPSHOT), and the whole page runs again
    holding the write lock (bench/load.py (e) at 200 clients: every page waited 30 s)."""
    sync = session.sync_session
    if sync.new or sync.dirty or sync.deleted or sync.get_bind().dialect.name != "postgresql":
        await session.commit()
        return
    if not session.in_transaction():
        return
    connection = (await session.connection()).sync_connection
    if connection.info.get(_WROTE) is connection.get_transaction():
        await session.commit()


# -- SQLite: safe requests read without the write lock ----------------------------------------

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Set on the ASGI scope by ReadRetryMiddleware: "deferred" for the first run of a safe request,
# "immediate" for its one retry. Absent (no middleware, PostgreSQL, a write): IMMEDIATE as ever.
READ_MODE_KEY = "kiban.sqlite_read_mode"

_deferred_engines: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def deferred(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool) whose SQLite transactions begin deferred: they read a WAL
    snapshot and take no lock until they write."""
    found = _deferred_engines.get(engine)
    if found is None:
        found = _deferred_engines[engine] = engine.execution_options(sqlite_deferred=True)
    return found


def reads_a_snapshot(session: AsyncSession) -> bool:
    """Whether ``session`` is a safe request's deferred SQLite session (``get_session``): a
    write in it would make the whole request run again queued for the write lock, so what can
    be written beside it is (the idle clock, ``identity.idle_clock``)."""
    return session.info.get(READ_MODE_KEY) == "deferred"


_side_engines: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _side_engine(snapshot_engine: AsyncEngine) -> AsyncEngine:
    """One connection, in a pool of its own, for the short writes of reading pages."""
    found = _side_engines.get(snapshot_engine)
    if found is None:
        found = _side_engines[snapshot_engine] = create_engine(
            snapshot_engine.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    return found


async def dispose_side_engine(engine: AsyncEngine) -> None:
    """Close the connection ``writing_beside_snapshot`` keeps for ``engine`` (the server's stop)."""
    deferred_engine = _deferred_engines.get(engine)
    side = _side_engines.pop(deferred_engine, None) if deferred_engine is not None else None
    if side is not None:
        await side.dispose()


@asynccontextmanager
async def writing_beside_snapshot(session: AsyncSession) -> AsyncIterator[AsyncSession | AsyncConnection]:
    """Where a safe request makes a short write it must make (the audit entries for reading
    another municipality's records): ``session`` itself, except on a deferred SQLite session
    (``reads_a_snapshot``), where it is a connection of its own, in a transaction that queues
    for the write lock like any writer (``BEGIN IMMEDIATE``, the busy timeout) and commits when
    the block ends, while the page goes on reading its snapshot.

    Written from the snapshot, the entries were refused whenever another connection held the
    lock or had committed since the page began, and the whole page ran again holding the lock
    (``ReadRetryMiddleware``): bench/load.py on SQLite, 614 pages a minute run twice. Ending the
    page's snapshot to write on its own connection instead gave the connection back to the
    pool between its transactions, and at 200 clients the page queued behind the others for
    it again (pool timeouts). Here the pages' writes queue for one connection of a pool of their
    own, in order, which is as many as SQLite lets write at once. What is written must not be
    computed from the page's reads (appended entries are not). PostgreSQL and requests that
    write anyway: the write joins the request's transaction."""
    if not reads_a_snapshot(session):
        yield session
        return
    async with _side_engine(session.bind).begin() as connection:
        yield connection


def is_sqlite_lock_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it wraps) is SQLite refusing a lock: ``SQLITE_BUSY`` (another
    connection holds the write lock), ``SQLITE_BUSY_SNAPSHOT`` (a deferred transaction's
    snapshot is stale, so it may not write) or ``SQLITE_LOCKED``."""
    seen = 0
    while exc is not None and seen < 8:
        seen += 1
        if isinstance(exc, BaseExceptionGroup):
            return any(is_sqlite_lock_error(e) for e in exc.exceptions)
        orig = getattr(exc, "orig", None)
        if orig is not None and orig is not exc and is_sqlite_lock_error(orig):
            return True
        if isinstance(exc, sqlite3.OperationalError):
            name = getattr(exc, "sqlite_errorname", "") or ""
            return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in str(exc)
        exc = exc.__cause__ or exc.__context__
    return False


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request. Routes that write commit explicitly before answering, so an
    acknowledged change is durable by the time the client hears about it.

    On SQLite, a safe request run by ``ReadRetryMiddleware`` gets a session whose transactions
    begin deferred (``READ_MODE_KEY`` on the scope says so, and on the session's ``info``:
    ``reads_a_snapshot``); every other request keeps taking the write lock at BEGIN."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    engine: AsyncEngine | None = getattr(request.app.state, "engine", None)
    if request.scope.get(READ_MODE_KEY) == "deferred" and engine is not None and engine.dialect.name == "sqlite":
        session = sessionmaker(bind=deferred(engine), info={READ_MODE_KEY: "deferred"})
    else:
        session = sessionmaker()
    async with session:
        yield session


class ReadRetryMiddleware:
    """Lets GET/HEAD requests on SQLite read beside a writer, and still answer when they write.

    A safe request first runs with a deferred session (``get_session``): it reads a WAL snapshot
    and never waits for the write lock. Most never write; the idle clock and the audit entries
    for reading another municipality's records are written beside the snapshot
    (``identity.idle_clock``, ``writing_beside_snapshot``). The few others fail at their first write
    with ``SQLITE_BUSY``/``SQLITE_BUSY_SNAPSHOT`` if a writer holds the lock or has committed
    since their snapshot: SQLite cannot upgrade such a transaction, and the busy timeout does
    not apply. When that error escapes the app before the response has started, the request
    is run once more from the start with ``IMMEDIATE`` transactions (which queue for the lock),
    so it reads again what it writes from: no stale read is ever written back. The request's
    body (rare on a GET) is replayed. Anything else, a second failure, or a failure after the
    response started, propagates as before. Does nothing on PostgreSQL or for other methods.

    Install innermost (before the other ``add_middleware`` calls), so only routing is re-run.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def _applies(scope: Scope) -> bool:
        if scope["type"] != "http" or scope.get("method") not in SAFE_METHODS:
            return False
        engine = getattr(getattr(scope.get("app"), "state", None), "engine", None)
        return engine is not None and engine.dialect.name == "sqlite"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._applies(scope):
            await self.app(scope, receive, send)
            return
        state = dict(scope.get("state") or {})
        received: list[Message] = []
        started = False

        async def recording_receive() -> Message:
            message = await receive()
            received.append(message)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app({**scope, "state": dict(state), READ_MODE_KEY: "deferred"}, recording_receive, watching_send)
            return
        except Exception as exc:
            if started or not is_sqlite_lock_error(exc):
                raise
            log.info("read request met a writer (%s); running it again with the write lock: %s %s",
                     type(exc).__name__, scope.get("method"), scope.get("path"))
        replay = list(received)

        async def replaying_receive() -> Message:
            return replay.pop(0) if replay else await receive()

        await self.app({**scope, "state": dict(state), READ_MODE_KEY: "immediate"}, replaying_receive, send)


class UTCDateTime(TypeDecorator):
    """Timestamps stored in UTC and always read back timezone-aware, on SQLite too (which
    keeps no zone), so that 和暦 display and comparisons never mix naive and aware values."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class EncodedJSON(str):
    """A document already written as JSON text (``json.dumps``), e.g. by a work process
    (``kit.offload``): a ``JSONDocument`` column stores it as it is."""


class JSONDocument(TypeDecorator):
    """A JSON column that also takes an ``EncodedJSON``, stored without being encoded again on
    the event loop (a 20,000-row roster's report: 0.5 s of ``json.dumps`` at the flush). Read
    back, it is the decoded document, as from ``JSON``; same type in the database."""

    impl = JSON
    cache_ok = True

    # bind_processor, not process_bind_param: whatever process_bind_param returns, JSON's own
    # processor encodes after it (text would be stored as a JSON string of the text).
    def bind_processor(self, dialect):
        encode = self.impl_instance.bind_processor(dialect)

        def process(value):
            if isinstance(value, EncodedJSON):
                return str(value)
            return encode(value) if encode is not None else value

        return process


def utcnow() -> datetime:
    return datetime.now(UTC)
