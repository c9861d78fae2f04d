"""``commit_if_written``: a page that only read carries on in its transaction (a commit and the
next BEGIN were two round trips for nothing), and whatever wrote, by the ORM, by a Core statement
or by text, is committed at once and outlives a rollback after."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, insert, select, text

from kiban.kit.db import commit_if_written, make_sessionmaker, utcnow
from kiban.kit.shared import SharedGeneration


async def _exists(engine, name: str) -> bool:
    async with make_sessionmaker(engine)() as session:
        return await session.scalar(select(func.count()).where(SharedGeneration.name == name)) == 1


async def test_a_transaction_that_only_read_is_not_committed_on_postgresql(app_engine) -> None:
    """(SQLite commits it: a read transaction kept open would keep a snapshot that a later write of
    the same page may no longer use.)"""
    async with make_sessionmaker(app_engine)() as session:
        await session.scalar(select(func.count()).select_from(SharedGeneration))
        await session.execute(text("SELECT 1"))
        before = (await session.connection()).sync_connection.get_transaction()
        await commit_if_written(session)
        if app_engine.dialect.name == "sqlite":
            assert not session.in_transaction()
            return
        assert session.in_transaction()
        assert (await session.connection()).sync_connection.get_transaction() is before
        await commit_if_written(session)  # nothing else either: still the same transaction
        assert (await session.connection()).sync_connection.get_transaction() is before


async def test_every_kind_of_write_is_committed_and_survives_the_rollback_after(app_engine) -> None:
    names = [f"test-commit-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("orm", "core", "text", "later")]
    orm, core, textual, later = names
    try:
        async with make_sessionmaker(app_engine)() as session:
            await session.scalar(select(func.count()).select_from(SharedGeneration))
            session.add(SharedGeneration(name=orm, value=1, changed_at=utcnow()))  # pending, not flushed
            await commit_if_written(session)
            await session.execute(insert(SharedGeneration).values(name=core, value=1, changed_at=utcnow()))
            await commit_if_written(session)
            await (await session.connection()).execute(
                text("INSERT INTO shared_generation (name, value, changed_at) VALUES (:n, 1, :t)"),
                {"n": textual, "t": utcnow()})
            await commit_if_written(session)
            # A read after a commit starts a transaction that has written nothing yet.
            await session.scalar(select(func.count()).select_from(SharedGeneration))
            await commit_if_written(session)
            await session.execute(insert(SharedGeneration).values(name=later, value=1, changed_at=utcnow()))
            await session.rollback()  # what was not committed goes; what was, stays
        assert [await _exists(app_engine, n) for n in names] == [True, True, True, False]
    finally:
        async with make_sessionmaker(app_engine)() as session:
            await session.execute(delete(SharedGeneration).where(SharedGeneration.name.in_(names)))
            await session.commit()
