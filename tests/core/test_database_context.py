"""The tenant context in PostgreSQL (``kiban.lg_code``, ``kiban.unscoped``, which row-level
security reads) is set just before the statement that runs under it, not when it changes: every
statement runs under the context in force, including after a savepoint rolled back the settings."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import as_tenant, bind_tenant, unscoped
from kiban.kit.db import make_sessionmaker

SAPPORO, CHIYODA = "011002", "131016"


async def _in_database(session) -> tuple[str, str]:
    row = (await session.execute(text(
        "SELECT current_setting('kiban.lg_code', true), current_setting('kiban.unscoped', true)"))).one()
    return row[0] or "", row[1] or ""


async def test_every_statement_runs_under_the_context_in_force(app_engine) -> None:
    if app_engine.dialect.name != "postgresql":
        pytest.skip("the context in the database is PostgreSQL's (row-level security)")
    async with make_sessionmaker(app_engine)() as session:
        sapporo = await registry_service.tenant_for(session, SAPPORO)
        chiyoda = await registry_service.tenant_for(session, CHIYODA)
        await bind_tenant(session, sapporo)
        assert await _in_database(session) == (SAPPORO, "")
        async with unscoped(session, "test: the context in the database"):
            assert await _in_database(session) == (SAPPORO, "on")
            async with as_tenant(session, chiyoda):
                assert await _in_database(session) == (CHIYODA, "on")
            assert await _in_database(session) == (SAPPORO, "on")
        async with unscoped(session, "test: left with no statement"):
            pass
        assert await _in_database(session) == (SAPPORO, "")

        # A savepoint rolled back takes the settings back to what they were when it began;
        # the context still in force is set again before the next statement.
        async with unscoped(session, "test: a savepoint rolled back"):
            nested = await session.begin_nested()
            async with as_tenant(session, chiyoda):
                assert await _in_database(session) == (CHIYODA, "on")
                await nested.rollback()
                assert await _in_database(session) == (CHIYODA, "on")
        assert await _in_database(session) == (SAPPORO, "")

        await session.commit()  # the settings end with the transaction; the next sets them again
        assert await _in_database(session) == (SAPPORO, "")
        await session.rollback()


async def test_every_connection_runs_without_jit(app_engine) -> None:
    """JIT compiling made a millisecond query over a large disaster cost 1.5 s (kit.db): it is off
    for every connection the application opens, not per statement."""
    if app_engine.dialect.name != "postgresql":
        pytest.skip("JIT is PostgreSQL's")
    async with app_engine.connect() as connection:
        assert (await connection.execute(text("SHOW jit"))).scalar_one() == "off"
