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


def _context_statements(monkeypatch) -> list[tuple]:
    """The values of every set_config the hook sends (on a cursor of its own, which passes no
    engine event: the driver's cursor is watched instead)."""
    from sqlalchemy.dialects.postgresql import asyncpg as dialect

    from kiban.core.tenancy import context

    sent: list[tuple] = []
    execute = dialect.AsyncAdapt_asyncpg_cursor.execute

    def counting(self, operation, parameters=None):
        if operation == context._SET_CONTEXT_SQL:
            sent.append((parameters[1], parameters[3]))
        return execute(self, operation, parameters)

    monkeypatch.setattr(dialect.AsyncAdapt_asyncpg_cursor, "execute", counting)
    return sent


async def test_statements_on_shared_tables_set_no_context_and_tenant_tables_still_get_theirs(
        app_engine, monkeypatch) -> None:
    """A statement that names no tenant-owned table (the registry, here) runs without a
    set_config, whatever context is wanted; the next statement on a tenant-owned table runs under
    the context in force, so row-level security shows it the bound tenant's rows only, not those of
    the tenant whose context the database had last."""
    if app_engine.dialect.name != "postgresql":
        pytest.skip("the context in the database is PostgreSQL's (row-level security)")
    from sqlalchemy import func, select

    from kiban.core.registry.models import Organization
    from kiban.core.tenancy.settings_service import TenantSetting
    from kiban.kit.db import utcnow

    sent = _context_statements(monkeypatch)
    async with make_sessionmaker(app_engine)() as session:
        # A transaction that wants no tenant sets nothing: it begins with the context empty.
        assert await session.scalar(select(func.count()).select_from(Organization)) > 1000
        sapporo = await registry_service.tenant_for(session, SAPPORO)
        chiyoda = await registry_service.tenant_for(session, CHIYODA)
        assert sent == []
        await bind_tenant(session, sapporo)
        session.add(TenantSetting(lg_code=SAPPORO, key="disaster.shelter_warning_percent", value=70, version=1,
                                  updated_by="テスト", updated_at=utcnow()))
        await session.flush()
        async with as_tenant(session, chiyoda):
            session.add(TenantSetting(lg_code=CHIYODA, key="disaster.shelter_warning_percent", value=80, version=1,
                                      updated_by="テスト", updated_at=utcnow()))
            await session.flush()
        assert sent == [(SAPPORO, ""), (CHIYODA, "")]
        # The database has 千代田区's context; a registry read does not change it ...
        assert (await session.get(Organization, SAPPORO)).name == "札幌市"
        assert await session.scalar(select(Organization.name).where(Organization.code == CHIYODA)) == "千代田区"
        assert len(sent) == 2
        # ... and the next read of a tenant-owned table sets 札幌市's first: RLS and the ORM agree.
        assert set(await session.scalars(select(TenantSetting.lg_code))) == {SAPPORO}
        assert sent[-1] == (SAPPORO, "")
        assert set(await session.scalars(text("SELECT lg_code FROM tenant_setting"))) == {SAPPORO}
        assert len(sent) == 3
        await session.rollback()


async def test_after_a_savepoint_rolled_back_an_empty_context_is_set_again(app_engine) -> None:
    """The settings at a savepoint are not known to the hook: after rolling back to it, even the
    empty context is sent again before the next statement (else it would run under the tenant the
    savepoint had)."""
    if app_engine.dialect.name != "postgresql":
        pytest.skip("the context in the database is PostgreSQL's (row-level security)")
    async with make_sessionmaker(app_engine)() as session:
        chiyoda = await registry_service.tenant_for(session, CHIYODA)
        async with as_tenant(session, chiyoda):
            assert await _in_database(session) == (CHIYODA, "")
            nested = await session.begin_nested()
        assert await _in_database(session) == ("", "")
        await nested.rollback()  # back to the savepoint: the database has 千代田区 again
        assert await _in_database(session) == ("", "")
        await session.rollback()
