"""Several worker processes, played by several applications (``create_app`` twice) on the same
database and Redis: what one worker counts or changes, the others see.

- sign-in failures on worker 1 throttle the next try on worker 2 (database and Redis stores;
  with the one-process memory store they would not, and the control shows the test can tell);
- an API key's requests count against one bucket whichever worker serves them;
- a registry change committed through worker 1 reaches worker 2's registry search;
- a record registered through worker 1 is a 名寄せ candidate on worker 2, whose matcher was
  already built: the generation committed with the record makes it catch up (the control,
  with the bump taken away, shows the stale matcher the test would otherwise miss).

The 名寄せ matchers live in a module dict per process; each played worker gets its own dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from kiban.core.identity.apikeys import RateLimited, RateLimiter
from kiban.core.identity.service import SignInThrottle
from kiban.core.registry.models import Organization
from kiban.core.registry.repository import OrganizationRepository
from kiban.kit.db import get_session
from kiban.kit.settings import Settings
from kiban.kit.shared import DatabaseState, MemoryState
from kiban.main import create_app
from kiban.modules.disaster import matching
from tests.conftest import password_step, session_on
from tests.core.test_shared_state import redis_state

ATTACKER = "198.51.100.77"


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture(loop_scope="session")
async def workers(test_database, app_engine, connection) -> AsyncIterator:
    """``await workers(n, **settings)``: n applications on the test's database (its rolled-back
    transaction, as the ``app`` fixture does) with those settings, sharing one throttle clock."""
    made = []

    async def make(n: int, **settings):
        clock = Clock()
        apps = []
        for _ in range(n):
            app = create_app(Settings(database_url=test_database.app_url, registry_cache_seconds=0, **settings),
                             engine=app_engine)

            async def test_session() -> AsyncIterator:
                async with session_on(connection) as s:
                    yield s

            app.dependency_overrides[get_session] = test_session
            app.state.sign_in_throttle = SignInThrottle(app.state.shared, clock=clock)
            apps.append(app)
        made.extend(apps)
        return apps

    yield make
    for app in made:
        await app.state.shared.close()


def _browser(app, address: str = ATTACKER) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 50000)),
                             base_url="http://testserver")


async def _guess_three_times_then_try_elsewhere(first, second) -> int:
    username = f"mw-{uuid.uuid4().hex[:8]}"
    async with _browser(first) as one, _browser(second) as two:
        for _ in range(3):
            assert (await password_step(one, username, "a wrong guess!!")).status_code == 401
        return (await password_step(two, username, "a wrong guess!!")).status_code


async def test_failures_on_one_worker_throttle_the_next_try_on_another(workers) -> None:
    first, second = await workers(2)  # no Redis URL: the database store
    assert isinstance(first.state.shared, DatabaseState)
    assert await _guess_three_times_then_try_elsewhere(first, second) == 429


async def test_failures_on_one_worker_throttle_the_next_try_on_another_through_redis(workers) -> None:
    prefix = (await redis_state()).prefix  # skipped without Redis; the two workers share this prefix
    first, second = await workers(2, redis_url="redis://127.0.0.1:6379/0", shared_state_prefix=prefix)
    try:
        assert first.state.shared.kind == "redis"
        assert await _guess_three_times_then_try_elsewhere(first, second) == 429
    finally:
        await first.state.shared.clear_prefix()


async def test_control_the_memory_store_counts_per_process(workers) -> None:
    first, second = await workers(2, shared_state="memory")
    assert await _guess_three_times_then_try_elsewhere(first, second) == 401


async def _spend(limiters: list[RateLimiter], limit: int, session=None) -> list[bool]:
    """Requests taking turns between the workers; True for each one let through."""
    through = []
    for n in range(limit + 2):
        try:
            await limiters[n % len(limiters)].hit("key-1", limit, session=session, now=100.0)
            through.append(True)
        except RateLimited as refused:
            assert refused.status == 429 and refused.extra["retry_after"] >= 1
            through.append(False)
    return through


async def test_an_api_keys_requests_count_once_across_workers(session) -> None:
    database = DatabaseState()
    assert await _spend([RateLimiter(database), RateLimiter(database)], 4, session) == [True] * 4 + [False] * 2
    redis = await redis_state()
    other_process = await redis_state(redis.prefix)
    try:
        assert await _spend([RateLimiter(redis), RateLimiter(other_process)], 4) == [True] * 4 + [False] * 2
    finally:
        await redis.clear_prefix()
        await redis.close()
        await other_process.close()
    # Control: each process's own memory lets each worker spend the whole limit.
    assert await _spend([RateLimiter(MemoryState()), RateLimiter(MemoryState())], 4) == [True] * 6


# -- the registry snapshot ----------------------------------------------------------------------

async def _total(client: httpx.AsyncClient, code: str) -> int:
    response = await client.get("/api/v1/organizations", params={"q": code})
    assert response.status_code == 200
    return response.json()["total"]


async def test_a_registry_change_through_one_worker_reaches_another(test_database) -> None:
    """Real commits (the registry cache reads through its own connections, as in production),
    undone at the end. Worker 2 checks the registry's revision at most every 0.05 s here
    (KIBAN_REGISTRY_CACHE_SECONDS, 1 s by default) and serves its snapshot meanwhile."""
    from kiban.core.registry import service

    town, city = "012360", "012025"
    settings = Settings(database_url=test_database.app_url, registry_cache_seconds=0.05)
    first, second = create_app(settings), create_app(settings)
    try:
        async with (httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://t") as two):
            assert await _total(two, town) == 1  # worker 2 has its snapshot
            async with first.state.sessionmaker() as session:
                await service.merge(session, town, city, __import__("datetime").date(2027, 4, 1), "編入")
                await session.commit()
            for _ in range(200):  # until worker 2 has revalidated (a few tries; 10 s at most)
                if await _total(two, town) == 0:
                    break
                await asyncio.sleep(0.05)
            assert await _total(two, town) == 0
    finally:
        async with first.state.sessionmaker() as session:
            org = (await session.scalars(select(Organization).where(Organization.code == town))).one()
            org.retired_on = org.successor_code = org.retirement_reason = None
            await session.flush()
            await OrganizationRepository(session).bump_revision()
            await session.commit()
        for app in (first, second):
            await app.state.shared.close()
            await app.state.engine.dispose()


# -- the 名寄せ matcher ------------------------------------------------------------------------

@contextlib.contextmanager
def _process(matchers: dict) -> Iterator[None]:
    """Run as a worker process whose matchers are ``matchers``."""
    saved = matching._MATCHERS
    matching._MATCHERS = matchers
    try:
        yield
    finally:
        matching._MATCHERS = saved


@pytest.mark.parametrize("bumped", [True, False], ids=["bumped", "control-without-bump"])
async def test_a_record_registered_on_one_worker_is_a_candidate_on_another(
        staff, app, workers, session, monkeypatch, bumped) -> None:
    from kiban.core.tenancy.context import unscoped
    from kiban.modules.disaster.models import VictimRecord
    from kiban.modules.disaster.service import record_mapping
    from tests.modules.test_disaster_web import KANAZAWA, WAJIMA, _open_disaster, _register

    if not bumped:
        monkeypatch.setattr(matching, "_note", lambda *a, **k: None)  # nothing noted, nothing bumped
    (second,) = await workers(1)
    one, two = {}, {}
    with _process(one):
        disaster = await _open_disaster(staff)  # on worker 1 (the ``app`` fixture)
        wajima = await staff(WAJIMA, "staff")
        kanazawa = await staff(KANAZAWA, "staff")
        again = await _register(kanazawa, KANAZAWA, disaster, whereabouts="relatives", family_name="髙橋",
                                family_kana="ﾀｶﾊｼ", given_kana="ｹﾝﾀ", phone="")
    page = f"/t/{KANAZAWA}/disasters/{disaster}/records/{again}"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://testserver",
                                 cookies=kanazawa.client.cookies) as kanazawa_on_two:
        with _process(two):
            before = await kanazawa_on_two.get(page)
            assert before.status_code == 200 and disaster in two  # worker 2's matcher is built
        with _process(one):
            father = await _register(wajima, WAJIMA, disaster, whereabouts="home")
        with _process(two):
            after = await kanazawa_on_two.get(page)
    assert f'name="other_id" value="{father}"' not in before.text
    assert (f'name="other_id" value="{father}"' in after.text) is bumped
    # The matcher reads columns, not ORM objects: the very mapping the service gives.
    async with unscoped(session, "test"):
        record = (await session.scalars(select(VictimRecord).where(VictimRecord.id == father))).one()
        row = (await session.execute(select(*matching._COLUMNS).where(VictimRecord.id == father))).one()
    assert row._asdict() == record_mapping(record)

