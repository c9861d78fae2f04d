"""kit.shared: the counters every server process shares, on each store (this process's memory,
the database the run uses, and a real Redis at 127.0.0.1:6379 under a key prefix of the test's
own), and the cache generations that commit with the change they announce."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import pytest_asyncio
from sqlalchemy import delete

from kiban.kit.db import create_engine, make_sessionmaker
from kiban.kit.settings import Settings
from kiban.kit.shared import (
    DatabaseState,
    MemoryState,
    RedisState,
    SharedCounter,
    SharedStateUnavailable,
    backend_for,
    bump_generation,
    generations,
    open_shared_state,
)

REDIS_URL = os.environ.get("KIBAN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_REQUIRED = bool(os.environ.get("CI") or os.environ.get("KIBAN_REQUIRE_REDIS"))


async def redis_state(prefix: str | None = None) -> RedisState:
    """A Redis store under a prefix of its own (skipped when Redis is not running, except in CI)."""
    state = RedisState(REDIS_URL, prefix or f"kiban-test-{uuid.uuid4().hex[:12]}:")
    try:
        await state.ping()
    except SharedStateUnavailable as exc:
        await state.close()
        if REDIS_REQUIRED:
            pytest.fail(f"Redis at {REDIS_URL} is required here: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is not running")
    return state


@pytest_asyncio.fixture(loop_scope="session", params=["memory", "database", "redis"])
async def store(request, session):
    """(store, session to pass): each kind once; the database's counts are rolled back with the
    test, Redis's keys deleted after it."""
    if request.param == "memory":
        yield MemoryState(), None
    elif request.param == "database":
        yield DatabaseState(), session
    else:
        state = await redis_state()
        try:
            yield state, None
        finally:
            await state.clear_prefix()
            await state.close()


async def test_a_count_drains_at_its_rate_and_is_kept_as_counted(store) -> None:
    state, session = store
    for _ in range(3):
        count = await state.leak("k", now=100.0, rate=0.5, session=session)
    assert (count.level, count.at, count.admitted) == (3.0, 100.0, True)
    # Four seconds later two have drained away; this count adds one.
    count = await state.leak("k", now=104.0, rate=0.5, session=session)
    assert count.level == pytest.approx(2.0)
    peeked = await state.peek(["k", "never-counted"], session=session)
    assert list(peeked) == ["k"] and peeked["k"].level == pytest.approx(2.0) and peeked["k"].at == 104.0
    # Drained below zero is zero, not a credit.
    assert (await state.leak("k", now=1000.0, rate=0.5, session=session)).level == pytest.approx(1.0)
    await state.forget("k", session=session)
    assert await state.peek(["k"], session=session) == {}


async def test_a_capacity_refuses_without_counting_and_refills(store) -> None:
    """An API key's token bucket: 60 a minute is capacity 60 draining one a second."""
    state, session = store
    admitted = [(await state.leak("bucket", now=0.0, rate=1.0, capacity=60, session=session)).admitted
                for _ in range(61)]
    assert admitted == [True] * 60 + [False]
    refused = await state.leak("bucket", now=0.0, rate=1.0, capacity=60, session=session)
    assert not refused.admitted and refused.level == pytest.approx(60.0)  # a refusal adds nothing
    assert (await state.leak("bucket", now=1.0, rate=1.0, capacity=60, session=session)).admitted
    assert not (await state.leak("bucket", now=1.0, rate=1.0, capacity=60, session=session)).admitted


async def test_keys_are_separate(store) -> None:
    state, session = store
    await state.leak("a", now=0.0, rate=1.0, capacity=1, session=session)
    assert not (await state.leak("a", now=0.0, rate=1.0, capacity=1, session=session)).admitted
    assert (await state.leak("b", now=0.0, rate=1.0, capacity=1, session=session)).admitted


async def test_redis_keys_expire_once_drained() -> None:
    state = await redis_state()
    try:
        await state.leak("k", now=0.0, rate=0.1, amount=2.0, hold=30.0)  # drains in 20 s, held 30 more
        ttl = await state._client.pttl(state._key("k"))
        assert 50_000 <= ttl <= 51_000
    finally:
        await state.clear_prefix()
        await state.close()


async def test_concurrent_counts_admit_exactly_the_capacity(test_database) -> None:
    """Twenty requests at once, from as many connections, against a limit of 5: five get in,
    on Redis (one script per count) and on the database (the upsert locks the row)."""
    key = f"race-{uuid.uuid4().hex}"
    state = await redis_state()
    try:
        results = await asyncio.gather(*(state.leak(key, now=0.0, rate=0.01, capacity=5) for _ in range(20)))
        assert sum(r.admitted for r in results) == 5
    finally:
        await state.clear_prefix()
        await state.close()

    engine = create_engine(test_database.app_url)
    sessions = make_sessionmaker(engine)
    database = DatabaseState()

    async def one() -> bool:
        async with sessions() as session:
            count = await database.leak(key, now=0.0, rate=0.01, capacity=5, session=session)
            await session.commit()
            return count.admitted

    try:
        assert sum(await asyncio.gather(*(one() for _ in range(20)))) == 5
    finally:
        async with sessions() as session:
            await session.execute(delete(SharedCounter).where(SharedCounter.key == key))
            await session.commit()
        await engine.dispose()


async def test_an_unreachable_redis_refuses_rather_than_counting_nowhere() -> None:
    state = RedisState("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        with pytest.raises(SharedStateUnavailable) as refused:
            await state.leak("k", now=0.0, rate=1.0)
        assert refused.value.status == 503 and "Redis" in refused.value.detail
    finally:
        await state.close()


def test_the_store_follows_the_settings() -> None:
    assert backend_for(Settings(redis_url=None)) == "database"
    assert backend_for(Settings(redis_url="redis://127.0.0.1:6379/0")) == "redis"
    assert backend_for(Settings(redis_url="redis://127.0.0.1:6379/0", shared_state="database")) == "database"
    assert isinstance(open_shared_state(Settings(shared_state="memory")), MemoryState)
    with pytest.raises(ValueError, match="KIBAN_REDIS_URL"):
        backend_for(Settings(redis_url=None, shared_state="redis"))
    with pytest.raises(ValueError, match="いずれか"):
        backend_for(Settings(shared_state="memcached"))


async def test_a_generation_moves_only_when_its_transaction_commits(test_database) -> None:
    name = f"test:{uuid.uuid4().hex}"
    engine = create_engine(test_database.app_url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as session:
            assert await generations(session, [name, name + "-other"]) == (0, 0)
            await session.run_sync(lambda s: bump_generation(s.connection(), [name]))
            await session.rollback()
            assert await generations(session, [name]) == (0,)
            await session.run_sync(lambda s: bump_generation(s.connection(), [name, name]))  # once per name
            await session.commit()
        async with sessions() as other:  # another process's view
            assert await generations(other, [name, name + "-other"]) == (1, 0)
            await other.run_sync(lambda s: bump_generation(s.connection(), [name]))
            await other.commit()
            assert await generations(other, [name]) == (2,)
    finally:
        await engine.dispose()
