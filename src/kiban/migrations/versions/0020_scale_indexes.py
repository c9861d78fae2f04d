"""Indexes led by lg_code for national-scale data.

Measured on ``bench/national_data.py`` (1,796 tenants, 5.4 million audit entries, デジタル庁's chain
over half a million; figures in docs/scaling.md), the audit log's pages read every entry of a
chain for the filter form's choices and for deep pages. Each filter now has an index led by
``lg_code`` that ends with ``seq``, so a page's sequence numbers are found in the index in log
order (no rows read for the entries skipped) and the choices by skipping from value to value:

* ``(lg_code, action, seq)`` replaces ``(lg_code, action)``;
* ``(lg_code, outcome, seq)`` for 結果;
* ``(lg_code, actor_id, seq)`` for named actors only (``actor_kind`` not resident or business)
  replaces ``(actor_id)``, which no query asks without ``lg_code``.

On PostgreSQL the indexes are built and dropped CONCURRENTLY, outside the migration's
transaction: every request that changes something appends to ``audit_entry``, and a plain
CREATE INDEX would hold those appends for the minutes it takes on millions of rows. A build that
fails leaves an invalid index behind; running the migration again drops it first.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

NAMED_ACTOR_CONDITION = "actor_kind NOT IN ('resident', 'business')"
NEW = (
    ("ix_audit_entry_lg_code_action_seq", ["lg_code", "action", "seq"], None),
    ("ix_audit_entry_lg_code_outcome_seq", ["lg_code", "outcome", "seq"], None),
    ("ix_audit_entry_lg_code_named_actor", ["lg_code", "actor_id", "seq"], NAMED_ACTOR_CONDITION),
)
OLD = (
    ("ix_audit_entry_lg_code_action", ["lg_code", "action"]),
    ("ix_audit_entry_actor_id", ["actor_id"]),
)


def _create(name: str, columns: list[str], where: str | None, postgres: bool) -> None:
    if postgres:
        op.execute(sa.text(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"'))  # left invalid by a failed build
        op.create_index(name, "audit_entry", columns, unique=False, postgresql_concurrently=True,
                        postgresql_where=sa.text(where) if where else None)
    else:
        op.create_index(name, "audit_entry", columns, unique=False, sqlite_where=sa.text(where) if where else None)


def _drop(name: str, postgres: bool) -> None:
    if postgres:
        op.execute(sa.text(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"'))
    else:
        op.drop_index(name, table_name="audit_entry")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        with op.get_context().autocommit_block():
            for name, columns, where in NEW:
                _create(name, columns, where, postgres)
            for name, _ in OLD:
                _drop(name, postgres)
        return
    for name, columns, where in NEW:
        _create(name, columns, where, postgres)
    for name, _ in OLD:
        _drop(name, postgres)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"

    def run() -> None:
        for name, columns in OLD:
            if postgres:
                op.execute(sa.text(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"'))
            op.create_index(name, "audit_entry", columns, unique=False, postgresql_concurrently=postgres)
        for name, _, _ in NEW:
            _drop(name, postgres)

    if postgres:
        with op.get_context().autocommit_block():
            run()
    else:
        run()
