"""The fail-closed safety net under the repositories.

Every ORM statement that touches a tenant-owned model gets ``lg_code = <bound tenant>``
added (``with_loader_criteria``, also on lazy loads and ORM updates/deletes). With no tenant
bound and no ``unscoped()`` in force, the statement is refused with ``TenantContextMissing``
instead of running across every tenant. Flushes refuse new or changed rows for a tenant other
than the bound one. On PostgreSQL every transaction sets ``kiban.lg_code`` for RLS before its first
statement (``context.note_database_context``).
"""

from __future__ import annotations

from sqlalchemy import Table, event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.sql.util import find_tables

from kiban.core.tenancy.context import (
    TENANT_KEY,
    UNSCOPED_KEY,
    TenantContextMissing,
    TenantMismatch,
    note_database_context,
)
from kiban.core.tenancy.models import TenantScoped, tenant_owned_tables


def _tenant_tables() -> frozenset[str]:
    global _TENANT_TABLE_NAMES
    if _TENANT_TABLE_NAMES is None:
        _TENANT_TABLE_NAMES = frozenset(tenant_owned_tables())
    return _TENANT_TABLE_NAMES


_TENANT_TABLE_NAMES: frozenset[str] | None = None


def _tenant_tables_in(state: ORMExecuteState) -> tuple[set[str], set[str]]:
    """(tenant tables the statement reads or writes, those reached through an ORM entity).

    Only the second kind can be scoped by ``with_loader_criteria``; a Core reference to a
    tenant table (``select(Model.__table__)``, ``text()`` aside) cannot, so it is refused.
    """
    names = _tenant_tables()
    referenced: set[str] = set()
    through_orm = {m.local_table.name for m in state.all_mappers if m.local_table.name in names}
    for table in find_tables(state.statement, include_crud=True, include_joins=True):
        if isinstance(table, Table) and table.name in names:
            referenced.add(table.name)
            if table._annotations.get("parententity") is not None:
                through_orm.add(table.name)
    return referenced | through_orm, through_orm


@event.listens_for(Session, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the criteria of the parent statement propagate to these
    info = state.session.info
    if info.get(UNSCOPED_KEY):
        # Nothing to add or refuse: asked first, since walking a large statement's tables cost
        # the disaster pages (unscoped, with unions of lookups) a third of their Python time.
        return
    referenced, through_orm = _tenant_tables_in(state)
    if not referenced:
        return
    tenant = info.get(TENANT_KEY)
    if tenant is None:
        raise TenantContextMissing(
            f"テナント（自治体）が指定されないまま {', '.join(sorted(referenced))} を参照しようとしました。"
        )
    if referenced - through_orm:
        raise TenantContextMissing(
            f"{', '.join(sorted(referenced - through_orm))} への Core 形式の問い合わせは自治体で絞り込めません。"
            "ORM のモデル経由で問い合わせるか、理由を添えて unscoped() を使ってください。"
        )
    lg_code = tenant.lg_code
    state.statement = state.statement.options(
        with_loader_criteria(TenantScoped, lambda cls: cls.lg_code == lg_code, include_aliases=True)
    )


@event.listens_for(Session, "before_flush")
def _check_writes(session: Session, _flush_context, _instances) -> None:
    if session.info.get(UNSCOPED_KEY):
        return
    tenant = session.info.get(TENANT_KEY)
    for obj in (*session.new, *session.dirty, *session.deleted):
        if not isinstance(obj, TenantScoped):
            continue
        if tenant is None:
            raise TenantContextMissing(
                f"テナント（自治体）が指定されないまま {type(obj).__name__} を書き込もうとしました。"
            )
        if obj.lg_code is None:
            obj.lg_code = tenant.lg_code
        if obj.lg_code != tenant.lg_code:
            raise TenantMismatch(
                f"{tenant.name}（{tenant.lg_code}）として処理中に、"
                f"別の団体（{obj.lg_code}）の {type(obj).__name__} を書き込もうとしました。"
            )


@event.listens_for(Session, "after_begin")
def _set_database_context(session: Session, _transaction, connection) -> None:
    note_database_context(session, connection)  # set before the transaction's first statement


# Noted again before each of the session's statements and flushes: sessions can share one
# connection (the tests' sessions over one outer transaction), and each statement must run under
# its own session's context, not the one another session noted last.
@event.listens_for(Session, "do_orm_execute")
def _context_before_statement(state: ORMExecuteState) -> None:
    if state.session.get_bind().dialect.name == "postgresql":  # (SQLite's transactions begin as they do)
        note_database_context(state.session, state.session.connection())


@event.listens_for(Session, "before_flush")
def _context_before_flush(session: Session, _flush_context, _instances) -> None:
    if session.get_bind().dialect.name == "postgresql":
        note_database_context(session, session.connection())
