"""Demo data of modules/governance for `kiban demo`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


async def load_demo(session: AsyncSession) -> int:
    """Adds the module's demo rows and returns how many; the caller commits."""
    return 0
