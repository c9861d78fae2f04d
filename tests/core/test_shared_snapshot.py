"""kit.shared snapshots: a costly result computed by one server process for all. Two sessions
on their own connections play two processes; rows are committed, so each test uses a name of
its own and deletes it afterwards."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete

from kiban.kit.db import create_engine, make_sessionmaker
from kiban.kit.shared import SharedSnapshot, claim_snapshot, read_snapshot, store_snapshot

TAKEN = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
async def sessions(test_database):
    engine = create_engine(test_database.app_url)
    made = make_sessionmaker(engine)
    names: list[str] = []
    try:
        yield made, names
    finally:
        async with made() as session:
            await session.execute(delete(SharedSnapshot).where(SharedSnapshot.name.in_(names)))
            await session.commit()
        await engine.dispose()


async def test_a_stored_snapshot_is_read_by_another_process_once_committed(sessions, test_database) -> None:
    made, names = sessions
    name = f"test:{uuid.uuid4().hex}"
    names.append(name)
    async with made() as first, made() as second:
        assert await read_snapshot(first, name) is None
        assert await claim_snapshot(first, name) is None  # the turn, and nothing taken yet
        await store_snapshot(first, name, {"total": [[None, 3, 2]]}, taken_at=TAKEN, seconds=1.5)
        if test_database.is_postgres:  # (on SQLite a second session waits for the writer's commit)
            assert await read_snapshot(second, name) is None  # not before the commit
            await second.rollback()
        await first.commit()
        found = await read_snapshot(second, name)
    assert (found.value, found.taken_at, found.seconds) == ({"total": [[None, 3, 2]]}, TAKEN, 1.5)


async def test_a_rolled_back_claim_leaves_nothing(sessions) -> None:
    made, names = sessions
    name = f"test:{uuid.uuid4().hex}"
    names.append(name)
    async with made() as session:
        assert await claim_snapshot(session, name) is None
        await store_snapshot(session, name, {"n": 1}, taken_at=TAKEN, seconds=0.1)
        await session.rollback()
        assert await read_snapshot(session, name) is None


async def test_while_one_process_holds_the_turn_another_is_told_so(sessions, test_database) -> None:
    """PostgreSQL: the turn is the row's lock, skipped (not waited for) by a second claimer,
    and free again once the first commits; the second then sees what the first stored."""
    if not test_database.is_postgres:
        pytest.skip("row locks: SQLite has one writer and no row locks (one process serves it)")
    made, names = sessions
    name = f"test:{uuid.uuid4().hex}"
    names.append(name)
    async with made() as setup:
        await claim_snapshot(setup, name)
        await store_snapshot(setup, name, {"n": 1}, taken_at=TAKEN, seconds=0.1)
        await setup.commit()
    async with made() as first, made() as second:
        held = await claim_snapshot(first, name)
        assert held is not False and held.value == {"n": 1}
        assert await claim_snapshot(second, name) is False  # at once, not after the first's commit
        assert (await read_snapshot(second, name)).value == {"n": 1}  # the previous one stays readable
        await second.rollback()
        later = datetime(2026, 12, 1, 3, 1, tzinfo=UTC)
        await store_snapshot(first, name, {"n": 2}, taken_at=later, seconds=0.2)
        await first.commit()
        again = await claim_snapshot(second, name)
        assert again is not False and (again.value, again.taken_at) == ({"n": 2}, later)
        await second.rollback()
