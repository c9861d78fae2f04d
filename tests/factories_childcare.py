"""Factories for modules/childcare's tenant-owned tables (tests/factories.py merges them into FACTORIES)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

FACTORIES: dict[type, Callable[[AsyncSession, str, str], Awaitable[object]]] = {}
APPEND_ONLY: set[type] = set()
