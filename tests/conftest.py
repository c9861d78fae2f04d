"""The standing test database: built once per run by the real Alembic migrations, seeded with
the real registry, then every test runs inside a transaction that is rolled back.

Backend: ``KIBAN_TEST_DATABASE=sqlite`` (default) or ``postgresql``. On PostgreSQL the
migrations run as the owner (``postgres``) and the application connects as ``kiban_app``, a
role that owns nothing and has no BYPASSRLS, exactly as in production, so row-level security
is in force for every test. When PostgreSQL is unreachable the PostgreSQL run is skipped,
unless ``CI`` or ``KIBAN_REQUIRE_POSTGRES`` is set: then it fails.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from argon2 import PasswordHasher
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from kiban.core.identity import credentials
from kiban.kit.db import create_engine, get_session
from kiban.ops.provision import build_database
from kiban.kit.settings import Settings
from kiban.main import configure, create_app

# Real argon2id, with the cheapest parameters it allows: the suite signs staff in a few thousand
# times, and production's 0.1 s each cost CI several minutes. Production's parameters are checked
# in tests/core/test_password_hashing.py; the suite's hashes verify the same way.
credentials.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))

BACKEND = os.environ.get("KIBAN_TEST_DATABASE", "sqlite")
PG_HOST = os.environ.get("KIBAN_TEST_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("KIBAN_TEST_PG_PORT", "5432")
PG_ADMIN = os.environ.get("KIBAN_TEST_PG_ADMIN", "postgres")
APP_ROLE = "kiban_app"
POSTGRES_REQUIRED = bool(os.environ.get("CI") or os.environ.get("KIBAN_REQUIRE_POSTGRES"))


@dataclass(frozen=True)
class TestDatabase:
    backend: str
    owner_url: str
    app_url: str
    name: str

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgresql"


def pytest_report_header(config) -> str:
    return f"kiban test database: {BACKEND}"


def _pg_url(user: str, database: str) -> str:
    return f"postgresql+asyncpg://{user}@{PG_HOST}:{PG_PORT}/{database}"


async def _admin(sql: str) -> None:
    engine = create_engine(_pg_url(PG_ADMIN, "postgres"), pool=False)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


async def _create_postgres_database() -> TestDatabase:
    name = f"kiban_test_{uuid.uuid4().hex[:10]}"
    try:
        await asyncio.wait_for(_admin(f'CREATE DATABASE "{name}"'), timeout=15)
    except Exception as exc:  # noqa: BLE001 - reported as skip or failure below
        message = (f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable as {PG_ADMIN} "
                   f"({type(exc).__name__}: {exc})")
        if POSTGRES_REQUIRED:
            pytest.exit(f"{message}; the PostgreSQL run is required in CI", returncode=3)
        pytest.skip(message)
    return TestDatabase("postgresql", _pg_url(PG_ADMIN, name), _pg_url(APP_ROLE, name), name)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def test_database(tmp_path_factory) -> AsyncIterator[TestDatabase]:
    if BACKEND == "postgresql":
        database = await _create_postgres_database()
    elif BACKEND == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "kiban-test.sqlite3"
        url = f"sqlite+aiosqlite:///{path}"
        database = TestDatabase("sqlite", url, url, str(path))
    else:
        raise pytest.UsageError(f"KIBAN_TEST_DATABASE must be sqlite or postgresql, not {BACKEND!r}")
    try:
        await build_database(database.owner_url, app_role=APP_ROLE if database.is_postgres else None)
        yield database
    finally:
        if database.is_postgres:
            await _admin(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def app_engine(test_database: TestDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(test_database.app_url)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def connection(app_engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """The test's connection, inside a transaction that is rolled back afterwards."""
    async with app_engine.connect() as conn:
        transaction = await conn.begin()
        try:
            yield conn
        finally:
            if transaction.is_active:
                await transaction.rollback()


def session_on(conn: AsyncConnection) -> AsyncSession:
    """A session joined to the test transaction: its commits only release savepoints."""
    return AsyncSession(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest_asyncio.fixture(loop_scope="session")
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    async with session_on(connection) as s:
        yield s


_shared_app: list = []  # one application per run: FastAPI builds its routes' handlers once, not per test


@pytest.fixture
def app(test_database: TestDatabase, app_engine: AsyncEngine, connection: AsyncConnection):
    # The registry cache revalidates on every request here, so tests see their own changes.
    settings = Settings(database_url=test_database.app_url, registry_cache_seconds=0, shared_state="database")
    if not _shared_app:
        _shared_app.append(create_app(settings, engine=app_engine))
    application = _shared_app[0]
    # Each test starts from new state (settings, caches, counters, middleware), none overridden.
    configure(application, settings, engine=app_engine)

    async def test_session() -> AsyncIterator[AsyncSession]:
        async with session_on(connection) as s:
            yield s

    application.dependency_overrides[get_session] = test_session
    return application


@pytest_asyncio.fixture(loop_scope="session")
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


# -- the standing cast: staff who sign in through the real pages -----------------------------

@dataclass
class SignedIn:
    client: httpx.AsyncClient
    username: str
    password: str
    totp_secret: bytes
    principal_id: str

    @property
    def csrf(self) -> str:
        return self.client.cookies.get("kiban_csrf")


def csrf_of(client: httpx.AsyncClient) -> str:
    return client.cookies.get("kiban_csrf")


@pytest_asyncio.fixture(loop_scope="session")
async def new_client(app) -> AsyncIterator:
    """Makes clients with their own cookie jars (one per person in a test)."""
    clients: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()


async def password_step(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    await client.get("/signin")
    return await client.post("/signin", data={"username": username, "password": password,
                                              "csrf_token": csrf_of(client)})


@pytest_asyncio.fixture(loop_scope="session")
async def staff(session, new_client):
    """``await staff("011002", "admin")``: a staff member of that organisation, created and
    signed in with password and TOTP through the real pages."""
    from kiban.core.identity import credentials
    from kiban.core.identity import service as identity_service

    async def make(lg_code: str, role: str = "admin", *, name: str | None = None) -> SignedIn:
        username = f"{name or role}-{lg_code}-{uuid.uuid4().hex[:6]}"
        password = "correct horse battery staple"
        secret = credentials.new_totp_secret()
        principal = await identity_service.create_staff(
            session, username=username, display_name=name or f"{lg_code} {role}", password=password,
            lg_code=lg_code, role=role, granted_by="test", totp_secret=secret)
        await session.commit()
        client = new_client()
        response = await password_step(client, username, password)
        assert response.status_code == 303, response.text
        response = await client.post("/signin/totp", data={"code": credentials.totp_code(secret),
                                                           "csrf_token": csrf_of(client)})
        assert response.status_code == 303, response.text
        return SignedIn(client, username, password, secret, principal.id)

    return make
