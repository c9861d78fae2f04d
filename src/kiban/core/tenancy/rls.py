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


APPEND_ONLY_TABLES = ("audit_entry",)


def make_append_only(connection: Connection, tables: list[str]) -> None:
    """Refuse UPDATE and DELETE on ``tables`` for everyone but superusers: a trigger, so that
    even the owner must drop it (visibly) before rewriting history."""
    if connection.dialect.name == "sqlite":
        for table in tables:
            for op in ("UPDATE", "DELETE"):
                connection.execute(text(f'DROP TRIGGER IF EXISTS append_only_{op.lower()}_{table}'))
                connection.execute(text(
                    f'CREATE TRIGGER append_only_{op.lower()}_{table} BEFORE {op} ON "{table}" '
                    f"BEGIN SELECT RAISE(ABORT, 'append-only table {table}: {op} refused'); END"))
        return
    if connection.dialect.name != "postgresql":
        return
    connection.execute(text(
        "CREATE OR REPLACE FUNCTION kiban_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION 'append-only table %: % refused', TG_TABLE_NAME, TG_OP; END $$"))
    for table in tables:
        connection.execute(text(f'DROP TRIGGER IF EXISTS append_only ON "{table}"'))
        connection.execute(text(f'CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON "{table}" '
                                "FOR EACH ROW EXECUTE FUNCTION kiban_refuse_change()"))


def grant_app_role(connection: Connection, role: str) -> None:
    """Give the application role data access (never ownership) to every table and sequence;
    append-only tables get SELECT and INSERT only."""
    quoted = connection.dialect.identifier_preparer.quote(role)
    connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {quoted}"))
    connection.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}"))
    connection.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}"))
    connection.execute(text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {quoted}"))
    connection.execute(text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {quoted}"))
    for table in APPEND_ONLY_TABLES:
        if connection.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar():
            connection.execute(text(f'REVOKE UPDATE, DELETE, TRUNCATE ON "{table}" FROM {quoted}'))


def create_app_role(connection: Connection, role: str) -> None:
    """Create the application role if missing: may log in, is no superuser, has no BYPASSRLS.
    Set its password out of band in production (``ALTER ROLE ... PASSWORD``)."""
    if role_exists(connection, role):
        return
    quoted = connection.dialect.identifier_preparer.quote(role)
    connection.execute(text(f"CREATE ROLE {quoted} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"))
