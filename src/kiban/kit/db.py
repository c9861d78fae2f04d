"""Database engine, sessions and the declarative base shared by every module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool
from starlette.requests import Request

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


def create_engine(url: str, *, echo: bool = False, pool: bool = True) -> AsyncEngine:
    """An async engine with the settings Kiban relies on for the given backend.

    SQLite: foreign keys on, WAL, and BEGIN emitted by SQLAlchemy rather than the driver so
    that SAVEPOINTs work (SQLAlchemy's documented pysqlite/aiosqlite workaround; tests rely on it
    to roll back every test). Transactions begin IMMEDIATE: a deferred transaction that reads
    and then writes fails at once with "database is locked" when another writer committed in
    between (the busy timeout does not apply to that case); taking the write lock up front makes
    concurrent requests wait their turn instead. A connection that only reads may ask for a
    deferred transaction with the execution option ``sqlite_deferred=True``. The embedded database thus runs one
    transaction at a time, which suits a demo or a small office; production uses PostgreSQL.
    """
    if url.startswith("sqlite"):
        _prepare_sqlite_file(url)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})

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
    kwargs: dict = {"echo": echo, "pool_pre_ping": True}
    if not pool:
        kwargs["poolclass"] = NullPool
    return create_async_engine(url, **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request. Routes that write commit explicitly before answering, so an
    acknowledged change is durable by the time the client hears about it."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        yield session


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


def utcnow() -> datetime:
    return datetime.now(UTC)
