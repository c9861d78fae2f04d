"""The tenant a unit of work acts for, carried on the SQLAlchemy session.

A request resolves its tenant once, from the URL (``/t/{lg_code}/...``), and binds it to its
session with ``bind_tenant``. From then on the safety net (``safety.py``) scopes every ORM query
on a tenant-owned model to that tenant, and on PostgreSQL each transaction sets
``kiban.lg_code`` so that row-level security repeats the rule in the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kiban.kit.errors import KibanError

TENANT_KEY = "kiban.tenant"
UNSCOPED_KEY = "kiban.unscoped"
PG_TENANT_SETTING = "kiban.lg_code"
PG_UNSCOPED_SETTING = "kiban.unscoped"


class TenantContextMissing(KibanError):
    """A tenant-owned model was queried or written with no tenant bound: a programming error,
    refused rather than answered with every tenant's rows."""

    status = 500
    title = "テナントが特定できないため処理を中止しました"
    type_slug = "tenant-context-missing"


class TenantMismatch(KibanError):
    status = 500
    title = "別の自治体のデータへの書き込みを中止しました"
    type_slug = "tenant-mismatch"


@dataclass(frozen=True, slots=True)
class Tenant:
    lg_code: str
    name: str
    type: str
    prefecture_code: str | None

    @property
    def is_prefecture(self) -> bool:
        return self.prefecture_code == self.lg_code


def _sync(session: AsyncSession | Session) -> Session:
    return session.sync_session if isinstance(session, AsyncSession) else session


def current_tenant(session: AsyncSession | Session) -> Tenant | None:
    return _sync(session).info.get(TENANT_KEY)


def is_unscoped(session: AsyncSession | Session) -> bool:
    return bool(_sync(session).info.get(UNSCOPED_KEY))


async def _apply_to_open_transaction(session: AsyncSession) -> None:
    """Repeat the context in the database now if a transaction is already open (the
    ``after_begin`` hook covers transactions that start later)."""
    if session.bind.dialect.name != "postgresql" or not session.in_transaction():
        return
    tenant = current_tenant(session)
    await session.execute(
        text("SELECT set_config(:tk, :tv, true), set_config(:uk, :uv, true)"),
        {"tk": PG_TENANT_SETTING, "tv": tenant.lg_code if tenant else "",
         "uk": PG_UNSCOPED_SETTING, "uv": "on" if is_unscoped(session) else ""},
    )


async def bind_tenant(session: AsyncSession, tenant: Tenant) -> None:
    """Make ``tenant`` the one this session acts for (once per request)."""
    _sync(session).info[TENANT_KEY] = tenant
    await _apply_to_open_transaction(session)


@asynccontextmanager
async def as_tenant(session: AsyncSession, tenant: Tenant) -> AsyncIterator[None]:
    """Act for another tenant for a moment, e.g. to read the prefecture's settings that a
    municipality inherits. Every use is a deliberate cross-tenant read: keep them few."""
    info = _sync(session).info
    previous = info.get(TENANT_KEY)
    info[TENANT_KEY] = tenant
    await _apply_to_open_transaction(session)
    try:
        yield
    finally:
        if previous is None:
            info.pop(TENANT_KEY, None)
        else:
            info[TENANT_KEY] = previous
        await _apply_to_open_transaction(session)


@asynccontextmanager
async def unscoped(session: AsyncSession, reason: str) -> AsyncIterator[None]:
    """The one escape hatch from tenant scoping (national aggregates, operator tooling).

    ``reason`` is required so that every use says why; grep for ``unscoped(`` to review them.
    """
    if not reason.strip():
        raise ValueError("unscoped() needs a reason")
    info = _sync(session).info
    previous = info.get(UNSCOPED_KEY)
    info[UNSCOPED_KEY] = reason
    await _apply_to_open_transaction(session)
    try:
        yield
    finally:
        if previous is None:
            info.pop(UNSCOPED_KEY, None)
        else:
            info[UNSCOPED_KEY] = previous
        await _apply_to_open_transaction(session)
