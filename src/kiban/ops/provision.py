"""Building a complete database from nothing: the real migrations, the application role on
PostgreSQL, and the registry and catalog seeds. Used by the test suite and the benchmarks."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry.seed import seed_registry
from kiban.core.tenancy import rls
from kiban.modules.catalog.seed import seed_catalog
from kiban.kit import migrate
from kiban.kit.db import create_engine


async def build_database(owner_url: str, *, app_role: str | None = None) -> None:
    await asyncio.to_thread(migrate.upgrade, owner_url)
    owner = create_engine(owner_url, pool=False)
    try:
        if app_role and owner.dialect.name == "postgresql":
            async with owner.begin() as connection:
                await connection.run_sync(rls.create_app_role, app_role)
                await connection.run_sync(rls.grant_app_role, app_role)
        async with AsyncSession(owner) as session:
            await seed_registry(session)
            await seed_catalog(session)
            await session.commit()
    finally:
        await owner.dispose()
