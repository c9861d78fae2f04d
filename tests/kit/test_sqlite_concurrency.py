"""SQLite (kit/db.py) on a real file with real concurrent connections: reads of a safe request
never wait for the write lock, a GET that writes still answers when a writer got in first, and
writes keep queueing for the lock. A small app of its own (kit must work without core), on its
own database file, so the test's writers really commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from kiban.kit.db import ReadRetryMiddleware, create_engine, get_session, is_sqlite_lock_error, make_sessionmaker

Session = Annotated[AsyncSession, Depends(get_session)]


def _app(engine: AsyncEngine, *, retry: bool = True) -> FastAPI:
    app = FastAPI()
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.attempts = []
    app.state.between: Callable[[int], Awaitable[None]] | None = None

    @app.get("/count")
    async def count(session: Session) -> dict:
        return {"count": (await session.execute(text("SELECT count(*) FROM item"))).scalar_one()}

    @app.get("/count-and-log")
    async def count_and_log(request: Request, session: Session) -> dict:
        """A read that also writes (like the audit entry for reading another municipality's record)."""
        attempt = len(request.app.state.attempts) + 1
        request.app.state.attempts.append(request.scope.get("kiban.sqlite_read_mode"))
        seen = (await session.execute(text("SELECT count(*) FROM item"))).scalar_one()
        if request.app.state.between is not None:
            await request.app.state.between(attempt)
        await session.execute(text("INSERT INTO read_log (seen) VALUES (:seen)"), {"seen": seen})
        await session.commit()
        return {"count": seen}

    @app.post("/items")
    async def add(session: Session) -> dict:
        await session.execute(text("INSERT INTO item (name) VALUES ('posted')"))
        await session.commit()
        return {"ok": True}

    if retry:
        app.add_middleware(ReadRetryMiddleware)
    return app


@pytest.fixture
async def engine(tmp_path) -> AsyncIterator[AsyncEngine]:
    # A short busy timeout: a read that wrongly waited for the lock fails in 2 s instead of 30.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'concurrency.sqlite3'}", busy_timeout=2)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)"))
        await conn.execute(text("CREATE TABLE read_log (id INTEGER PRIMARY KEY, seen INTEGER)"))
        await conn.execute(text("INSERT INTO item (name) VALUES ('first')"))
    yield engine
    await engine.dispose()


async def _writer(engine: AsyncEngine) -> AsyncConnection:
    """A connection holding the write lock with an uncommitted row, like an import's chunk."""
    conn = await engine.connect()
    await conn.begin()
    await conn.execute(text("INSERT INTO item (name) VALUES ('uncommitted')"))
    return conn


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_reads_proceed_while_a_writer_holds_its_transaction(engine) -> None:
    writer = await _writer(engine)
    try:
        async with _client(_app(engine)) as client:
            answers = await asyncio.gather(*(client.get("/count") for _ in range(5)))
        # Every read answered from the last committed state while the write lock was held.
        assert [(a.status_code, a.json()) for a in answers] == [(200, {"count": 1})] * 5
    finally:
        await writer.rollback()
        await writer.close()


async def test_without_the_middleware_a_read_waits_for_the_writer_and_fails(engine) -> None:
    # The old behaviour, kept for writes and for apps without the middleware: BEGIN IMMEDIATE.
    writer = await _writer(engine)
    try:
        async with _client(_app(engine, retry=False)) as client:
            with pytest.raises(Exception) as failed:
                await client.get("/count")
        assert is_sqlite_lock_error(failed.value)
    finally:
        await writer.rollback()
        await writer.close()


async def test_a_get_that_writes_while_a_writer_holds_the_lock_is_run_again_and_answers(engine) -> None:
    app = _app(engine)
    writer = await _writer(engine)

    async def commit_when_the_retry_waits() -> None:
        while len(app.state.attempts) < 2:  # the first run failed at its write; the second queues
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await writer.commit()

    try:
        async with _client(app) as client:
            answer, _ = await asyncio.wait_for(asyncio.gather(client.get("/count-and-log"), commit_when_the_retry_waits()), 20)
    finally:
        await writer.close()
    assert answer.status_code == 200
    assert app.state.attempts == ["deferred", "immediate"]
    # The retry read again after the writer's commit: what it wrote is the fresh count.
    assert answer.json() == {"count": 2}
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT seen FROM read_log"))).scalars().all() == [2]


async def test_a_get_whose_snapshot_went_stale_before_it_writes_is_run_again(engine) -> None:
    app = _app(engine)

    async def another_writer_commits(attempt: int) -> None:
        if attempt == 1:  # after this request read, before it writes (SQLITE_BUSY_SNAPSHOT)
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO item (name) VALUES ('meanwhile')"))

    app.state.between = another_writer_commits
    async with _client(app) as client:
        answer = await client.get("/count-and-log")
    assert answer.status_code == 200 and answer.json() == {"count": 2}
    assert app.state.attempts == ["deferred", "immediate"]


async def test_a_get_that_writes_without_a_competing_writer_runs_once(engine) -> None:
    app = _app(engine)
    async with _client(app) as client:
        answer = await client.get("/count-and-log")
    assert answer.status_code == 200 and app.state.attempts == ["deferred"]


async def test_writes_still_queue_for_the_lock_instead_of_failing(engine) -> None:
    writer = await _writer(engine)
    async with _client(_app(engine)) as client:
        posted = asyncio.create_task(client.post("/items"))
        await asyncio.sleep(0.2)
        assert not posted.done()  # waiting for the lock (IMMEDIATE), not refused
        await writer.commit()
        await writer.close()
        assert (await asyncio.wait_for(posted, 20)).status_code == 200
        assert (await client.get("/count")).json() == {"count": 3}


async def test_a_lock_failure_is_retried_once_only(engine) -> None:
    import sqlite3

    app = _app(engine)

    async def locked(attempt: int) -> None:
        raise sqlite3.OperationalError("database is locked")

    app.state.between = locked
    async with _client(app) as client:
        with pytest.raises(sqlite3.OperationalError):
            await client.get("/count-and-log")
    assert app.state.attempts == ["deferred", "immediate"]


async def test_other_errors_are_not_retried(engine) -> None:
    app = _app(engine)

    async def broken(attempt: int) -> None:
        raise RuntimeError("not a lock")

    app.state.between = broken
    async with _client(app) as client:
        with pytest.raises(RuntimeError):
            await client.get("/count-and-log")
    assert app.state.attempts == ["deferred"]
