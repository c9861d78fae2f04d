"""core/metering: count() counts once per key, only when the caller's transaction commits,
in the month (JST) of the event; reads go through the counters. On both databases."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from kiban.core.metering import queries
from kiban.core.metering.models import UsageCounter, UsageEventKey
from kiban.core.metering.service import SHARDS, UnknownService, count, month_of, purge_keys
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import TenantContextMissing, bind_tenant, unscoped
from kiban.kit.db import make_sessionmaker
from tests.factories import AICHI, ICHINOMIYA

TOYOTA = "232114"
SERVICE = "aichi-e-shinsei"


async def _bound(session: AsyncSession, code: str):
    tenant = await registry_service.tenant_for(session, code)
    await bind_tenant(session, tenant)
    return tenant


async def _total(session: AsyncSession, event: str, lg_code: str = ICHINOMIYA, service: str = SERVICE) -> int:
    async with unscoped(session, "test: read the counters"):
        value = await session.scalar(select(func.coalesce(func.sum(UsageCounter.total), 0)).where(
            UsageCounter.lg_code == lg_code, UsageCounter.service_id == service, UsageCounter.event == event))
    return int(value or 0)


async def test_the_same_key_counts_once_and_calls_without_a_key_count_each_time(session: AsyncSession) -> None:
    tenant = await _bound(session, ICHINOMIYA)
    for _ in range(3):
        await count(session, tenant, SERVICE, "submission", key="receipt-0001")
    await count(session, tenant, SERVICE, "submission", key="receipt-0002")
    await count(session, tenant, SERVICE, "submission")
    await count(session, tenant, SERVICE, "submission")
    await count(session, tenant, SERVICE, "submission", quantity=5, key="batch-1")
    await count(session, tenant, SERVICE, "submission", quantity=5, key="batch-1")
    assert await _total(session, "submission") == 2 + 2 + 5


async def test_a_key_is_per_service_and_event(session: AsyncSession) -> None:
    tenant = await _bound(session, ICHINOMIYA)
    await count(session, tenant, SERVICE, "submission", key="k")
    await count(session, tenant, SERVICE, "email", key="k")
    await count(session, tenant, "kiban-notify", "email", key="k")
    assert await _total(session, "submission") == 1
    assert await _total(session, "email") == 1
    assert await _total(session, "email", service="kiban-notify") == 1


async def test_a_rolled_back_event_is_not_counted_and_may_be_counted_again(session: AsyncSession) -> None:
    tenant = await _bound(session, ICHINOMIYA)
    savepoint = await session.begin_nested()
    await count(session, tenant, SERVICE, "booking", key="slot-1")
    assert await _total(session, "booking") == 1
    await savepoint.rollback()
    assert await _total(session, "booking") == 0
    await count(session, tenant, SERVICE, "booking", key="slot-1")  # the retry after the rollback counts
    assert await _total(session, "booking") == 1


async def test_the_month_is_japan_time() -> None:
    # 2026-03-31 15:30 UTC is 2026-04-01 00:30 in Japan: April, the new fiscal year.
    assert month_of(datetime(2026, 3, 31, 15, 30, tzinfo=UTC)) == date(2026, 4, 1)
    assert month_of(datetime(2026, 3, 31, 14, 59, tzinfo=UTC)) == date(2026, 3, 1)
    with pytest.raises(ValueError):
        month_of(datetime(2026, 3, 31))


async def test_counts_land_in_the_month_of_the_event_and_read_back_per_month(session: AsyncSession) -> None:
    tenant = await _bound(session, ICHINOMIYA)
    for i in range(20):  # spread over the shards, summed on read
        await count(session, tenant, SERVICE, "submission", at=datetime(2026, 4, 10, tzinfo=UTC))
    await count(session, tenant, SERVICE, "submission", quantity=3, at=datetime(2026, 5, 1, tzinfo=UTC))
    rows = await queries.tenant_usage(session, date(2026, 4, 1), date(2026, 5, 1))
    by_month = {(r.month, r.event): r.total for r in rows if r.service_id == SERVICE}
    assert by_month == {(date(2026, 4, 1), "submission"): 20, (date(2026, 5, 1), "submission"): 3}
    async with unscoped(session, "test: count shard rows"):
        shards = await session.scalar(select(func.count()).select_from(UsageCounter).where(
            UsageCounter.lg_code == ICHINOMIYA, UsageCounter.month == date(2026, 4, 1)))
    assert 1 <= shards <= SHARDS


async def test_bad_arguments_are_refused_before_anything_is_written(session: AsyncSession) -> None:
    tenant = await _bound(session, ICHINOMIYA)
    with pytest.raises(UnknownService):
        await count(session, tenant, "no-such-service", "submission")
    for kwargs in ({"quantity": 0}, {"quantity": -1}, {"quantity": True}, {"key": ""}, {"key": "x" * 201}):
        with pytest.raises(ValueError):
            await count(session, tenant, SERVICE, "submission", **kwargs)
    with pytest.raises(ValueError):
        await count(session, tenant, SERVICE, "Submission!")
    assert await _total(session, "submission") == 0


async def test_a_worker_without_a_bound_tenant_counts_for_the_tenant_it_names(session: AsyncSession) -> None:
    await count(session, ICHINOMIYA, "kiban-notify", "email", key="outbox-1")
    await count(session, ICHINOMIYA, "kiban-notify", "email", key="outbox-1")
    assert await _total(session, "email", service="kiban-notify") == 1
    with pytest.raises(TenantContextMissing):  # and its session is left unbound, as it was
        await session.scalar(select(UsageCounter))


async def test_a_tenant_reads_only_its_own_usage(session: AsyncSession) -> None:
    ichinomiya = await registry_service.tenant_for(session, ICHINOMIYA)
    await count(session, TOYOTA, SERVICE, "submission", quantity=7)
    await count(session, ichinomiya, SERVICE, "submission", quantity=2)
    await bind_tenant(session, ichinomiya)
    month = month_of(datetime.now(UTC))
    rows = await queries.tenant_usage(session, month, month)
    assert {r.lg_code for r in rows} == {ICHINOMIYA}
    assert sum(r.total for r in rows if r.event == "submission" and r.service_id == SERVICE) == 2
    assert all(r.lg_code == ICHINOMIYA for r in await session.scalars(select(UsageCounter)))
    assert all(r.lg_code == ICHINOMIYA for r in await session.scalars(select(UsageEventKey)))


async def test_purging_old_keys_keeps_the_counts(session: AsyncSession) -> None:
    tenant = await _bound(session, ICHINOMIYA)
    await count(session, tenant, SERVICE, "submission", key="old", at=datetime(2026, 1, 5, tzinfo=UTC))
    await count(session, tenant, SERVICE, "submission", key="new", at=datetime(2026, 6, 5, tzinfo=UTC))
    assert await purge_keys(session, tenant, before=date(2026, 4, 1)) == 1
    assert await _total(session, "submission") == 2
    keys = (await session.scalars(select(UsageEventKey.key))).all()
    assert keys == ["new"]


def test_months_are_parsed_in_japanese_formats_and_bad_ones_named() -> None:
    assert queries.parse_month("2026-04") == date(2026, 4, 1)
    assert queries.parse_month("２０２６／４") == date(2026, 4, 1)
    assert queries.parse_month("2026年12月") == date(2026, 12, 1)
    for bad in ("", "2026-13", "April", "1999-01", "2026-00"):
        with pytest.raises(Exception) as raised:
            queries.parse_month(bad, "開始月")
        assert "開始月" in str(raised.value)
    assert queries.add_months(date(2026, 11, 1), 3) == date(2027, 2, 1)
    assert len(queries.months_between(date(2026, 4, 1), date(2027, 3, 1))) == 12


# -- real transactions on their own connections (committed, then cleaned up) -------------------

@pytest.fixture
def sessions(app_engine: AsyncEngine):
    return make_sessionmaker(app_engine)


async def _cleanup(sessions, event: str) -> None:
    async with sessions() as s:
        async with unscoped(s, "test: clean up committed counts"):
            await s.execute(delete(UsageEventKey).where(UsageEventKey.event == event))
            await s.execute(delete(UsageCounter).where(UsageCounter.event == event))
        await s.commit()


async def _committed_total(sessions, event: str) -> int:
    async with sessions() as s:
        return await _total(s, event)


async def test_counted_if_and_only_if_the_event_commits(sessions) -> None:
    event = f"t-{uuid.uuid4().hex[:12]}"
    try:
        async with sessions() as s:
            tenant = await _bound(s, ICHINOMIYA)
            await count(s, tenant, SERVICE, event, key="a")
            await s.rollback()
        assert await _committed_total(sessions, event) == 0
        async with sessions() as s:
            tenant = await _bound(s, ICHINOMIYA)
            await count(s, tenant, SERVICE, event, key="a")
            await s.commit()
        async with sessions() as s:  # a retry in a later transaction
            tenant = await _bound(s, ICHINOMIYA)
            await count(s, tenant, SERVICE, event, key="a")
            await s.commit()
        assert await _committed_total(sessions, event) == 1
    finally:
        await _cleanup(sessions, event)


@pytest.mark.parametrize("first_commits", [True, False], ids=["first-commits", "first-rolls-back"])
async def test_two_transactions_counting_the_same_key_at_once_count_it_once(sessions, first_commits: bool) -> None:
    """The second waits for the first (a row lock on PostgreSQL, the write lock on SQLite) and
    counts only if the first rolled back."""
    event = f"t-{uuid.uuid4().hex[:12]}"
    try:
        first = sessions()
        tenant = await _bound(first, ICHINOMIYA)
        await count(first, tenant, SERVICE, event, key="same")

        async def second() -> None:
            async with sessions() as s:
                await count(s, await _bound(s, ICHINOMIYA), SERVICE, event, key="same")
                await s.commit()

        task = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert not task.done(), "the second transaction should wait for the first"
        await (first.commit() if first_commits else first.rollback())
        await first.close()
        await asyncio.wait_for(task, timeout=30)
        assert await _committed_total(sessions, event) == 1
    finally:
        await _cleanup(sessions, event)


async def test_concurrent_counts_without_keys_lose_nothing(sessions) -> None:
    event = f"t-{uuid.uuid4().hex[:12]}"

    async def one(i: int) -> None:
        async with sessions() as s:
            await count(s, await _bound(s, AICHI if i % 5 == 0 else ICHINOMIYA), SERVICE, event,
                        key=None if i % 2 else f"k{i}")
            await s.commit()

    try:
        await asyncio.gather(*(one(i) for i in range(40)))
        async with sessions() as s:
            assert await _total(s, event) + await _total(s, event, lg_code=AICHI) == 40
            assert await _total(s, event, lg_code=AICHI) == 8
    finally:
        await _cleanup(sessions, event)


async def test_the_operators_purge_drops_every_tenants_old_keys_only(session: AsyncSession) -> None:
    from kiban.core.metering.service import purge_all_keys

    await count(session, ICHINOMIYA, SERVICE, "submission", key="old-a", at=datetime(2026, 1, 5, tzinfo=UTC))
    await count(session, TOYOTA, SERVICE, "submission", key="old-b", at=datetime(2026, 2, 5, tzinfo=UTC))
    await count(session, TOYOTA, SERVICE, "submission", key="new-b", at=datetime(2026, 6, 5, tzinfo=UTC))
    assert await purge_all_keys(session, before=date(2026, 4, 1)) == 2
    async with unscoped(session, "test: read the keys"):
        assert (await session.scalars(select(UsageEventKey.key))).all() == ["new-b"]
    assert await _total(session, "submission", lg_code=TOYOTA) == 2


async def test_the_job_runner_prunes_keys_older_than_two_months(session: AsyncSession) -> None:
    from kiban.core.jobs.runner import PRUNERS
    from kiban.core.metering.service import key_cutoff, prune_keys

    assert prune_keys in PRUNERS
    assert key_cutoff(datetime(2026, 11, 30, 10, tzinfo=UTC)) == date(2026, 9, 1)
    assert key_cutoff(datetime(2026, 11, 30, 16, tzinfo=UTC)) == date(2026, 10, 1)  # already 12月1日 in Japan
    assert key_cutoff(datetime(2026, 1, 31, 16, tzinfo=UTC)) == date(2025, 12, 1)  # 2月1日 in Japan
    await count(session, ICHINOMIYA, SERVICE, "submission", key="aug", at=datetime(2026, 8, 31, 14, tzinfo=UTC))
    await count(session, ICHINOMIYA, SERVICE, "submission", key="sep", at=datetime(2026, 8, 31, 16, tzinfo=UTC))
    assert await prune_keys(session, datetime(2026, 11, 30, 10, tzinfo=UTC)) >= 1  # other tests may have left old keys
    async with unscoped(session, "test: read the keys"):
        assert (await session.scalars(select(UsageEventKey.key).where(UsageEventKey.key.in_(["aug", "sep"])))).all() == ["sep"]
