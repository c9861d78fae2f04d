"""Alembic environment: one migration tree for SQLite and PostgreSQL, run asynchronously."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from kiban.kit.db import create_engine
from kiban.models import metadata

config = context.config
target_metadata = metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"), pool=False)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    given: Connection | None = config.attributes.get("connection")
    if given is not None:
        _run(given)
    else:
        asyncio.run(_run_online())
