"""PostgreSQL row-level security for tenant-owned tables (defence in depth under the ORM).

The policy admits a row when its ``lg_code`` equals the transaction's ``kiban.lg_code`` or
when the transaction declared ``kiban.unscoped`` (the same named escape hatch as the ORM's).
With neither set, ``current_setting(..., true)`` is empty and no row is visible or writable:
fail closed. Policies bind the application role, which neither owns the tables nor has
BYPASSRLS; migrations run as the owner.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

POLICY_NAME = "tenant_isolation"

_PREDICATE = (
    "(lg_code = current_setting('kiban.lg_code', true)"
    " OR current_setting('kiban.unscoped', true) = 'on')"
)


def enable_statements(table: str) -> list[str]:
    return [
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
        f'DROP POLICY IF EXISTS {POLICY_NAME} ON "{table}"',
        f'CREATE POLICY {POLICY_NAME} ON "{table}" USING {_PREDICATE} WITH CHECK {_PREDICATE}',
    ]


def disable_statements(table: str) -> list[str]:
    return [
        f'DROP POLICY IF EXISTS {POLICY_NAME} ON "{table}"',
        f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY',
    ]


def enable_on(connection: Connection, tables: list[str]) -> None:
    if connection.dialect.name != "postgresql":
        return
    for table in tables:
        for statement in enable_statements(table):
            connection.execute(text(statement))


def disable_on(connection: Connection, tables: list[str]) -> None:
    if connection.dialect.name != "postgresql":
        return
    for table in tables:
        for statement in disable_statements(table):
            connection.execute(text(statement))


def role_exists(connection: Connection, role: str) -> bool:
    return bool(connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar())


def grant_app_role(connection: Connection, role: str) -> None:
    """Give the application role data access (never ownership) to every table and sequence."""
    quoted = connection.dialect.identifier_preparer.quote(role)
    connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {quoted}"))
    connection.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}"))
    connection.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}"))
    connection.execute(text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {quoted}"))
    connection.execute(text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {quoted}"))


def create_app_role(connection: Connection, role: str) -> None:
    """Create the application role if missing: may log in, is no superuser, has no BYPASSRLS.
    Set its password out of band in production (``ALTER ROLE ... PASSWORD``)."""
    if role_exists(connection, role):
        return
    quoted = connection.dialect.identifier_preparer.quote(role)
    connection.execute(text(f"CREATE ROLE {quoted} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"))
