"""The whole app on a SQLite file, with its own sessions (no test transaction): a signed-in page
answers while another connection holds the write lock, and a GET that has to write (the
session's idle clock, flushed by ``identity.service.load_session``) while a writer holds the lock
is run again and answers 200."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text, update

from kiban.core.identity import credentials
from kiban.core.identity import service as identity_service
from kiban.core.identity.models import WebSession
from kiban.kit.db import ReadRetryMiddleware, create_engine, make_sessionmaker, utcnow
from kiban.kit.settings import Settings
from kiban.main import create_app
from tests.factories import SAPPORO

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def file_app(test_database, tmp_path):
    if test_database.is_postgres:
        pytest.skip("SQLite's locking; PostgreSQL is not changed")
    path = tmp_path / "app.sqlite3"
    with sqlite3.connect(test_database.name) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url, busy_timeout=3)  # a read that wrongly waits fails in 3 s
    app = create_app(Settings(database_url=url, registry_cache_seconds=0), engine=engine)
    assert any(m.cls is ReadRetryMiddleware for m in app.user_middleware)
    yield app, engine
    await engine.dispose()


async def _signed_in(app, engine, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    secret = credentials.new_totp_secret()
    async with make_sessionmaker(engine)() as session:
        await identity_service.create_staff(session, username="sqlite-reader", display_name="札幌 読む人",
                                            password=PASSWORD, lg_code=SAPPORO, role="admin", granted_by="test",
                                            totp_secret=secret)
        await session.commit()
    # An unexpected error is answered (a page) and raised again for the server's log: a test that
    # reads the answer asks httpx not to raise it.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    await client.get("/signin")
    await client.post("/signin", data={"username": "sqlite-reader", "password": PASSWORD,
                                       "csrf_token": client.cookies.get("kiban_csrf")})
    done = await client.post("/signin/totp", data={"code": credentials.totp_code(secret),
                                                   "csrf_token": client.cookies.get("kiban_csrf")})
    assert done.status_code == 303, done.text
    return client


async def test_pages_answer_while_another_connection_holds_the_write_lock(file_app, caplog) -> None:
    app, engine = file_app
    client = await _signed_in(app, engine)
    writer = await engine.connect()
    await writer.begin()  # BEGIN IMMEDIATE: the write lock, held like an import's chunk
    try:
        with caplog.at_level(logging.INFO, logger="kiban.db"):
            for path in (f"/t/{SAPPORO}/settings", "/organizations/011002", f"/api/v1/t/{SAPPORO}/settings"):
                response = await client.get(path)
                assert response.status_code == 200, (path, response.text[:300])
        assert "running it again" not in caplog.text  # nothing here needed to write
    finally:
        await writer.rollback()
        await writer.close()
        await client.aclose()


async def test_a_page_that_must_write_while_a_writer_holds_the_lock_is_run_again_and_answers(file_app, caplog,
                                                                                        monkeypatch) -> None:
    from kiban.core.identity import dependencies

    app, engine = file_app
    client = await _signed_in(app, engine)
    # The idle clock written by the page itself, as on PostgreSQL: a write inside a GET.
    monkeypatch.setattr(dependencies, "reads_a_snapshot", lambda session: False)
    async with engine.begin() as conn:  # the session was last seen two minutes ago: the next page touches it
        await conn.execute(update(WebSession).values(last_seen_at=utcnow() - timedelta(minutes=2)))
    writer = await engine.connect()
    await writer.begin()
    await writer.execute(text("UPDATE organization SET name = name WHERE code = '011002'"))

    async def commit_once_the_retry_queues() -> None:
        for _ in range(500):
            if "running it again" in caplog.text:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await writer.commit()

    try:
        with caplog.at_level(logging.INFO, logger="kiban.db"):
            page, _ = await asyncio.gather(client.get(f"/t/{SAPPORO}/settings"), commit_once_the_retry_queues())
        assert page.status_code == 200 and "テナント設定" in page.text
        assert "running it again" in caplog.text
    finally:
        await writer.close()
        await client.aclose()


async def test_reading_pages_keeps_the_session_alive(file_app) -> None:
    """The idle clock a GET moves is committed: a clerk who only reads is not signed out."""
    app, engine = file_app
    client = await _signed_in(app, engine)
    stale = utcnow() - timedelta(minutes=20)
    try:
        async with engine.begin() as conn:
            await conn.execute(update(WebSession).values(last_seen_at=stale))
        assert (await client.get(f"/t/{SAPPORO}/settings")).status_code == 200
        await app.state.idle_clock.settle()
        async with engine.connect() as conn:
            seen = (await conn.execute(text("SELECT max(last_seen_at) FROM web_session"))).scalar_one()
        assert str(seen) > str(stale.replace(tzinfo=None))
    finally:
        await client.aclose()


async def test_the_idle_clock_is_moved_beside_a_reading_page_not_by_it(file_app, caplog) -> None:
    """A page whose session's idle clock is due, while another connection holds the write lock:
    it answers from its snapshot at once, without running again queued for the lock (all of
    bench/load.py's sessions fell due together: staff pages waited 7-10 s), and the clock is
    written once the lock is free."""
    app, engine = file_app
    client = await _signed_in(app, engine)
    stale = utcnow() - timedelta(minutes=2)
    async with engine.begin() as conn:
        await conn.execute(update(WebSession).values(last_seen_at=stale))
    writer = await engine.connect()
    await writer.begin()
    await writer.execute(text("UPDATE organization SET name = name WHERE code = '011002'"))
    try:
        with caplog.at_level(logging.INFO, logger="kiban.db"):
            page = await client.get(f"/t/{SAPPORO}/settings")
        assert page.status_code == 200 and "テナント設定" in page.text
        assert "running it again" not in caplog.text
        await writer.commit()
        await asyncio.wait_for(app.state.idle_clock.settle(), timeout=10)
        async with engine.connect() as conn:
            seen = (await conn.execute(text("SELECT max(last_seen_at) FROM web_session"))).scalar_one()
        assert str(seen) > str(stale.replace(tzinfo=None))
    finally:
        await writer.close()
        await client.aclose()


async def test_building_the_matchers_at_start_leaves_the_write_lock_to_others(file_app, monkeypatch) -> None:
    """The start-up build of the 名寄せ matchers reads for a minute on a million registrations: it
    must read a snapshot, not hold the write lock, or every sign-in meanwhile fails after the busy
    timeout (bench/load.py on SQLite: POST /signin 500 after 30 s)."""
    from kiban import main
    from kiban.modules.disaster import matching

    app, engine = file_app
    reading, written = asyncio.Event(), asyncio.Event()

    async def warm(session_factory) -> int:
        async with session_factory() as session:
            await session.execute(text("SELECT count(*) FROM organization"))  # in a transaction, as the build
            reading.set()
            await asyncio.wait_for(written.wait(), timeout=10)
        return 1

    monkeypatch.setattr(matching, "warm", warm)
    warming = asyncio.create_task(main._warm_matchers(app))
    await reading.wait()
    try:
        async with engine.begin() as conn:  # a sign-in's write, while the build reads
            await conn.execute(update(WebSession).where(WebSession.id == "none").values(last_seen_at=utcnow()))
    finally:
        written.set()
        await warming


async def test_a_write_that_does_not_get_the_lock_in_time_answers_503_and_changes_nothing(file_app) -> None:
    """A request that waits out the busy timeout for the write lock (another connection writing
    for longer) says so in Japanese, as 503 with Retry-After (problem+json on the API), not as
    an unexplained 500; nothing it asked for is saved."""
    from kiban.core.tenancy.settings_definitions import CONTACT_DESK

    app, engine = file_app
    client = await _signed_in(app, engine, raise_app_exceptions=False)
    token = client.cookies.get("kiban_csrf")
    writer = await engine.connect()
    await writer.begin()
    await writer.execute(text("UPDATE organization SET name = name WHERE code = '011002'"))
    try:
        api = await client.put(f"/api/v1/t/{SAPPORO}/settings/{CONTACT_DESK.key}",
                               json={"value": "混雑時の窓口", "expected_version": 0},
                               headers={"X-CSRF-Token": token, "Accept": "application/json"})
        assert api.status_code == 503, api.text[:300]
        assert api.headers["content-type"].startswith("application/problem+json")
        assert api.headers["retry-after"] == "5"
        body = api.json()
        assert body["title"] == "混み合っています" and "保存されていません" in body["detail"]
        page = await client.post(f"/t/{SAPPORO}/settings/{CONTACT_DESK.key}",
                                 data={"value": "混雑時の窓口", "csrf_token": token})
        assert page.status_code == 503 and page.headers["retry-after"] == "5"
        assert "混み合っています" in page.text and "text/html" in page.headers["content-type"]
    finally:
        await writer.rollback()
        await writer.close()
    try:
        shown = await client.get(f"/api/v1/t/{SAPPORO}/settings", headers={"Accept": "application/json"})
        assert shown.status_code == 200 and "混雑時の窓口" not in shown.text
    finally:
        await client.aclose()


async def _snapshot_reads_then_audits(engine, reader_code: str, owner_code: str, before_audit) -> list[str]:
    """A reading page's session (deferred, as ``get_session`` gives a GET): it reads, then
    ``before_audit()`` runs (another connection writes), then it records the audited reads."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from kiban.core.audit import service as audit
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.context import bind_tenant
    from kiban.kit.db import READ_MODE_KEY, deferred, reads_a_snapshot

    snapshots = async_sessionmaker(bind=deferred(engine), expire_on_commit=False, info={READ_MODE_KEY: "deferred"})
    async with snapshots() as session:
        assert reads_a_snapshot(session)
        reader = await registry_service.tenant_for(session, reader_code)
        owner = await registry_service.tenant_for(session, owner_code)
        await bind_tenant(session, reader)
        await session.execute(text("SELECT count(*) FROM organization"))  # the page's reads: a snapshot
        reading = (await session.connection()).sync_connection.connection.dbapi_connection
        await before_audit()
        made = await audit.record_pending(session, audit.Actor("staff", "読む人", None), "disaster.record.read",
                                          [(owner, audit.Target("victim_record", f"snap-{i}", None)) for i in range(3)],
                                          purpose="テスト", legal_basis="災害対策基本法")
        # The page kept its connection and its snapshot (not given back to the pool and queued for again).
        assert session.in_transaction()
        assert (await session.connection()).sync_connection.connection.dbapi_connection is reading
    # Committed before the page goes on (nothing for the page's end to commit or lose).
    async with engine.connect() as conn:
        found = (await conn.execute(text("SELECT count(*) FROM audit_pending WHERE entry_id IN ('"
                                         + "','".join(made) + "')"))).scalar_one()
    assert found == 3
    return made


async def test_an_audited_read_after_another_writer_committed_is_written_not_refused(file_app) -> None:
    """The page's snapshot is older than another connection's commit (SQLITE_BUSY_SNAPSHOT had it
    write from the snapshot): the entries are written in a short transaction of their own."""
    _, engine = file_app

    async def another_commits() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE organization SET name = name WHERE code = '011002'"))

    await _snapshot_reads_then_audits(engine, SAPPORO, "011002", another_commits)


async def test_an_audited_read_while_a_writer_holds_the_lock_waits_for_it_not_for_a_rerun(file_app) -> None:
    """Another connection holds the write lock when the page records its reads (as an import's
    chunk does): the entries' transaction queues for the lock and is written once it is free."""
    _, engine = file_app
    writer = await engine.connect()
    await writer.begin()
    await writer.execute(text("UPDATE organization SET name = name WHERE code = '011002'"))

    async def release_soon() -> None:
        async def later() -> None:
            await asyncio.sleep(0.3)
            await writer.commit()
        asyncio.get_running_loop().create_task(later())

    try:
        await _snapshot_reads_then_audits(engine, SAPPORO, "011002", release_soon)
    finally:
        await writer.close()
