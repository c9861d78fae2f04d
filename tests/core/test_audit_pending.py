"""Reads of other organisations' records are recorded as pending entries, with the request and
without the owner's chain head, and chained moments later: in order, once, verifiably.

Under load, a page that read many organisations' records held their chain heads locked until it
committed, and every other request appending to those chains queued behind it (bench/load.py,
issue #11). These tests commit (the lock and the chainers are about separate transactions), on
two tenants no other test writes to.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text

from kiban.core.audit import service as audit
from kiban.core.audit.models import AuditEntry, AuditPending
from kiban.core.jobs.runner import Runner
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import bind_tenant, unscoped
from kiban.kit.db import make_sessionmaker

OWNER, READER = "042021", "042030"  # 石巻市's records read by 塩竈市
READER_ACTOR = audit.Actor("staff", "塩竈市の職員", None)


@pytest.fixture
def sessions(app_engine):
    return make_sessionmaker(app_engine)


async def _pending_reads(sessions, n: int, subject: str | None = None) -> list[str]:
    async with sessions() as session:
        reader = await registry_service.tenant_for(session, READER)
        owner = await registry_service.tenant_for(session, OWNER)
        await bind_tenant(session, reader)
        made = await audit.record_pending(session, READER_ACTOR, "disaster.record.read",
                                          [(owner, audit.Target("victim_record", f"r{i}", subject)) for i in range(n)],
                                          purpose="テスト", legal_basis="災害対策基本法")
        await session.commit()
        return made


async def _chain_state(sessions, entry_ids: list[str]) -> tuple[int, int, list]:
    async with sessions() as session:
        async with unscoped(session, "test: audit pending"):
            pending = await session.scalar(select(func.count()).select_from(AuditPending)
                                           .where(AuditPending.entry_id.in_(entry_ids)))
            chained = await session.scalar(select(func.count()).select_from(AuditEntry)
                                           .where(AuditEntry.entry_id.in_(entry_ids)))
            _, problems = await audit.verify_chain(session, OWNER)
        return pending, chained, problems


async def test_a_read_is_kept_pending_then_chained_once_in_the_owners_log(sessions) -> None:
    ids = await _pending_reads(sessions, 3, subject="subject-pending-1")
    assert await _chain_state(sessions, ids) == (3, 0, [])

    # The person read sees it at once in 「わたしの情報の利用記録」, before it is chained.
    async with sessions() as session:
        about = await audit.entries_about(session, "subject-pending-1")
    assert {e.entry_id for e in about} == set(ids)

    async with sessions() as session:
        # (how many it chains is not asked: a live server's runner on this database may chain some first)
        await audit.chain_pending(session, OWNER)
        await session.commit()
    assert await _chain_state(sessions, ids) == (0, 3, [])
    async with sessions() as session:
        async with unscoped(session, "test"):
            entries = (await session.scalars(select(AuditEntry).where(AuditEntry.entry_id.in_(ids))
                                             .order_by(AuditEntry.seq))).all()
            about = await audit.entries_about(session, "subject-pending-1")
    # In the order they were read, one after the other, with what the reader recorded.
    assert [e.target_id for e in entries] == ["r0", "r1", "r2"]
    assert [e.seq for e in entries] == list(range(entries[0].seq, entries[0].seq + 3))
    assert all(e.details == {} and e.legal_basis == "災害対策基本法" and e.actor_label == "塩竈市の職員" for e in entries)
    assert sorted(e.entry_id for e in about) == sorted(ids)  # listed once, not twice

    async with sessions() as session:  # nothing left: a second chainer chains nothing
        assert await audit.chain_pending(session, OWNER) == 0


async def test_the_administrators_log_shows_pending_reads(sessions) -> None:
    ids = await _pending_reads(sessions, 2)
    async with sessions() as session:
        owner = await registry_service.tenant_for(session, OWNER)
        await bind_tenant(session, owner)
        repo = audit.AuditRepository(session)
        from kiban.core.audit.query import log_query

        query, _, _ = await log_query(repo, "", "", "", "disaster.record.read", "")
        shown = await repo.recent(limit=50, where=query.where)
    assert set(ids) <= {e.entry_id for e in shown}
    assert (await _chain_state(sessions, ids))[:2] == (0, 2)


async def test_the_job_runner_chains_what_is_pending(sessions) -> None:
    ids = await _pending_reads(sessions, 2)
    runner = Runner(sessions, kinds=[])
    await runner.tick()  # (a live server's runner on this database may be ticking too)
    assert await _chain_state(sessions, ids) == (0, 2, [])
    assert await runner.tick() == 0  # not due again within the second


async def test_two_chainers_at_once_chain_every_entry_once(sessions) -> None:
    ids = []
    for _ in range(4):
        ids += await _pending_reads(sessions, 25)

    async def chainer():
        async with sessions() as session:
            done = await audit.chain_pending(session, OWNER, limit=30)
            await session.commit()
            return done

    results = await asyncio.gather(*(chainer() for _ in range(4)))
    async with sessions() as session:
        # At most 100 between them: a live server's job runner (the browser tests' server on this
        # database, chaining every second) may be a fifth chainer and take some or all of them.
        assert await audit.chain_pending(session, OWNER) + sum(results) <= 100
        await session.commit()
    # Every entry chained exactly once, whoever chained it.
    assert await _chain_state(sessions, ids) == (0, 100, [])


async def test_a_pending_read_does_not_wait_for_a_locked_chain_head(sessions, app_engine) -> None:
    """The point of it all: while another transaction holds the owner's chain head (a write
    being appended), a read of the owner's record is recorded and committed at once; an entry
    appended to the chain must wait."""
    if app_engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time; the row lock is PostgreSQL's")
    await _pending_reads(sessions, 1)
    async with sessions() as session:  # make sure the head exists
        await audit.chain_pending(session, OWNER)
        await session.commit()
    async with app_engine.connect() as holder:
        transaction = await holder.begin()
        await holder.execute(text("SELECT set_config('kiban.unscoped', 'on', true)"))
        await holder.execute(text("UPDATE audit_chain_head SET seq = seq WHERE lg_code = :c"), {"c": OWNER})
        try:
            ids = await asyncio.wait_for(_pending_reads(sessions, 5), timeout=5)
            assert len(ids) == 5

            async def appended():
                async with sessions() as session:
                    owner = await registry_service.tenant_for(session, OWNER)
                    await bind_tenant(session, owner)
                    await audit.record_many(session, READER_ACTOR, "disaster.record.read",
                                            [audit.Target("victim_record", "x")])
                    await session.commit()

            with pytest.raises(TimeoutError):  # the chain head is really locked
                await asyncio.wait_for(appended(), timeout=1.5)
        finally:
            await transaction.rollback()
    async with sessions() as session:
        await audit.chain_pending(session, OWNER)
        await session.commit()
    assert (await _chain_state(sessions, ids))[:2] == (0, 5)


async def test_one_pass_chains_many_owners_and_leaves_a_held_chain_to_the_next(sessions, app_engine) -> None:
    """A prefecture's page reads records of many municipalities: one pass chains every owner's
    entries, each on its own chain in order, and a pass over every organisation leaves out a
    chain head another transaction holds (it is chained next time) instead of waiting for it."""
    other = "042056"  # 気仙沼市
    ids = await _pending_reads(sessions, 3)
    async with sessions() as session:
        reader = await registry_service.tenant_for(session, READER)
        second = await registry_service.tenant_for(session, other)
        await bind_tenant(session, reader)
        other_ids = await audit.record_pending(session, READER_ACTOR, "disaster.record.read",
                                               [(second, audit.Target("victim_record", f"k{i}")) for i in range(2)])
        await session.commit()
    postgresql = app_engine.dialect.name == "postgresql"

    async def one_pass():
        async with sessions() as session:
            await asyncio.wait_for(audit.chain_pending(session), timeout=5)
            await session.commit()

    if postgresql:  # OWNER's head held by a write in progress (SQLite has one writer at a time)
        async with app_engine.connect() as holder:
            transaction = await holder.begin()
            await holder.execute(text("SELECT set_config('kiban.unscoped', 'on', true)"))
            await holder.execute(text("UPDATE audit_chain_head SET seq = seq WHERE lg_code = :c"), {"c": OWNER})
            try:
                await one_pass()
            finally:
                await transaction.rollback()
    else:
        await one_pass()
    async with sessions() as session:
        async with unscoped(session, "test: audit pending"):
            chained_other = (await session.scalars(select(AuditEntry).where(AuditEntry.entry_id.in_(other_ids))
                                                   .order_by(AuditEntry.seq))).all()
            _, problems = await audit.verify_chain(session, other)
    assert [e.target_id for e in chained_other] == ["k0", "k1"] and {e.lg_code for e in chained_other} == {other}
    assert problems == []
    if postgresql:  # a live server's runner may have chained OWNER's since the holder let go
        assert (await _chain_state(sessions, ids))[0] in (0, 3)
    async with sessions() as session:
        await audit.chain_pending(session)
        await session.commit()
    assert await _chain_state(sessions, ids) == (0, 3, [])


async def test_a_tick_ends_while_entries_keep_arriving(monkeypatch) -> None:
    """While a prefecture reads its municipalities' records, pending entries keep arriving; the
    tick must still end (its job runner claims no job meanwhile), leaving the rest for the next."""
    passes = []

    async def always_more(session, lg_code=None, *, limit=audit.CHAIN_BATCH) -> int:
        if not isinstance(session, Session):
            # Another job runner's tick in this process (the browser tests' live server runs one
            # in its own thread) reached the patched function: not this tick's pass.
            return 0
        passes.append(1)
        await asyncio.sleep(0.01)
        return 3  # every pass finds new entries

    class Session:
        async def commit(self) -> None:
            pass

    monkeypatch.setattr(audit, "chain_pending", always_more)
    chained = await asyncio.wait_for(audit.chain_all_pending(Session(), budget_seconds=0.1), timeout=5)
    assert chained == 3 * len(passes) and 2 <= len(passes) < 50
