"""The tenant a unit of work acts for, carried on the SQLAlchemy session.

A request resolves its tenant once, from the URL (``/t/{lg_code}/...``), and binds it to its
session with ``bind_tenant``. From then on the safety net (``safety.py``) scopes every ORM query
on a tenant-owned model to that tenant, and on PostgreSQL each transaction sets
``kiban.lg_code`` so that row-level security repeats the rule in the database.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
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


# -- the context in the database (PostgreSQL) ------------------------------------------------------
#
# ``set_config(..., true)`` lasts until the transaction ends. The context wanted is noted on the
# connection whenever it changes (a transaction begins, a tenant is bound, ``as_tenant`` or
# ``unscoped`` is entered or left) and set just before the transaction's next statement, only if
# it differs from what the database has: a context entered and left with no statement between, or
# left just before the commit, costs no round trip. Setting it at once cost six of a workspace
# page's 25 statements (bench/load.py). Every statement on the connection passes the hook below
# (ORM queries, flushes, Core and text statements alike), so none runs under a stale context.
#
# Two more round trips are saved, each by a fact rather than a guess:
# - A transaction begins with the context empty: the settings are only ever set with ``true``
#   (for the transaction), so they go back to unset when it ends, and unset reads as empty to the
#   policy (``current_setting(..., true)`` is NULL, which admits no row). A transaction that wants
#   no tenant sets nothing.
# - Only the tenant-owned tables have row-level security (the isolation tests check that the two
#   lists are the same), so a statement that reads or writes none of them (the web session, the
#   registry, a disaster's header, the shared generations) returns the same rows under any
#   context: it runs without setting it, and the context is set before the next statement that
#   needs it. What counts as touching none is read from the compiled statement's SQL (no tenant
#   table's name in it), once per compiled statement; SQL sent to the driver directly is always
#   given the context. (No view or function of ours reads a tenant table behind its name.)
_WANTED = "kiban.db_context_wanted"    # connection.info: (root transaction, (lg_code, unscoped))
_APPLIED = "kiban.db_context_applied"  # connection.info: (root transaction, (lg_code, unscoped)) as set
_SET_CONTEXT_SQL = "SELECT set_config($1, $2, true), set_config($3, $4, true)"
# Not statements that run under the context (and a failed transaction accepts only these).
_TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK", "COMMIT", "BEGIN")
_EMPTY = ("", "")  # the context a transaction begins with
_UNKNOWN = (None, None)  # after a savepoint rolled back: equal to no wanted context
_NEEDS_KEY = "_kiban_needs_tenant_context"
_TENANT_SQL: re.Pattern | None = None


def note_database_context(session: Session, connection: Connection) -> None:
    """Note the session's context as the one its transaction on ``connection`` must run under."""
    if connection.dialect.name != "postgresql":
        return
    tenant = session.info.get(TENANT_KEY)
    values = (tenant.lg_code if tenant else "", "on" if session.info.get(UNSCOPED_KEY) else "")
    connection.info[_WANTED] = (connection.get_transaction(), values)


@event.listens_for(Engine, "before_cursor_execute")
def _set_noted_context(connection: Connection, _cursor, statement, _parameters, context, _executemany) -> None:
    wanted = connection.info.get(_WANTED)
    if wanted is None or statement.startswith(_TRANSACTION_CONTROL):
        return
    transaction = connection.get_transaction()
    if wanted[0] is not transaction:  # noted for a transaction that has ended
        connection.info.pop(_WANTED, None)
        return
    applied = connection.info.get(_APPLIED)
    in_force = applied[1] if applied is not None and applied[0] is transaction else _EMPTY
    if in_force == wanted[1] or not _needs_context(context):
        return
    cursor = connection.connection.cursor()  # its own cursor: the statement's is about to be used
    try:
        cursor.execute(_SET_CONTEXT_SQL, (PG_TENANT_SETTING, wanted[1][0], PG_UNSCOPED_SETTING, wanted[1][1]))
    finally:
        cursor.close()
    connection.info[_APPLIED] = wanted


@event.listens_for(Engine, "rollback_savepoint")
def _context_after_savepoint_rollback(connection: Connection, _name, _context) -> None:
    # The settings are back to what they were at the savepoint, which is not known here: set the
    # wanted ones again before the next statement that needs them (even if they are empty).
    connection.info[_APPLIED] = (connection.get_transaction(), _UNKNOWN)


def _needs_context(context) -> bool:
    """Whether a statement may read or write a tenant-owned table (row-level security)."""
    compiled = getattr(context, "compiled", None)
    if compiled is None:
        return True  # sent to the driver as a string: its tables are not known
    needs = compiled.__dict__.get(_NEEDS_KEY)
    if needs is None:
        needs = _touches_tenant_table(compiled.string)
        compiled.__dict__[_NEEDS_KEY] = needs
    return needs


def _touches_tenant_table(sql: str) -> bool:
    """By the statement's SQL: any tenant-owned table named in it (a FROM, a JOIN, a subquery, a
    text fragment), or the settings themselves read or set. A column or alias that happens to
    share a table's name only costs a round trip."""
    global _TENANT_SQL
    if _TENANT_SQL is None:
        import kiban.models  # noqa: F401 - every model mapped, so that none is missing from the list
        from kiban.core.tenancy.models import tenant_owned_tables

        names = sorted(tenant_owned_tables(), key=len, reverse=True)
        _TENANT_SQL = re.compile(r"\b(?:current_setting|set_config|" + "|".join(map(re.escape, names)) + r")\b",
                                 re.IGNORECASE)
    return _TENANT_SQL.search(sql) is not None


async def _apply_to_open_transaction(session: AsyncSession) -> None:
    """Note the changed context for an open transaction (the ``after_begin`` hook notes it for
    transactions that start later)."""
    if session.bind.dialect.name != "postgresql" or not session.in_transaction():
        return
    connection = await session.connection()
    note_database_context(session.sync_session, connection.sync_connection)


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
