"""The real migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from kiban.kit import migrate
from kiban.kit.db import create_engine
from kiban.models import metadata


def _differences(connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, metadata)


async def test_models_and_migrations_agree(test_database) -> None:
    engine = create_engine(test_database.owner_url, pool=False)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(_differences)
            revision = await connection.run_sync(migrate.current_revision)
    finally:
        await engine.dispose()
    assert diff == [], f"autogenerate found differences; write a migration: {diff}"
    assert revision == migrate.head_revision()


@pytest.fixture
async def scratch_url(test_database, tmp_path):
    """An empty database of the same backend for a full downgrade/upgrade cycle."""
    if not test_database.is_postgres:
        yield f"sqlite+aiosqlite:///{tmp_path / 'scratch.sqlite3'}"
        return
    from tests.conftest import _admin, _pg_url

    name = test_database.name + "_scratch"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url("postgres", name)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_migrations_downgrade_to_nothing_and_upgrade_again(scratch_url) -> None:
    from alembic import command

    await asyncio.to_thread(migrate.upgrade, scratch_url)
    await asyncio.to_thread(command.downgrade, migrate.alembic_config(scratch_url), "base")
    engine = create_engine(scratch_url, pool=False)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        assert set(tables) <= {"alembic_version"}
        await asyncio.to_thread(migrate.upgrade, scratch_url)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
            assert set(metadata.tables) <= set(tables)
            if connection.dialect.name == "postgresql":
                policies = (await connection.execute(text(
                    "SELECT tablename FROM pg_policies WHERE policyname = 'tenant_isolation'"))).scalars().all()
                from kiban.core.tenancy.models import tenant_owned_tables

                assert set(policies) == set(tenant_owned_tables())
    finally:
        await engine.dispose()
