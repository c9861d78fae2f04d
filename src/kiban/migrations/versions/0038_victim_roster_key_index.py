"""An index of each municipality's records of a disaster by roster key.

A roster's preview and acceptance ask which of its rows' keys are in the 台帳 already
(``service.registered_keys``). Without this index PostgreSQL answered each batch of keys by
reading every record of the municipality in the disaster (輪島市 in bench/load.py: 79,000, about
0.2 s per batch of 5,000 keys, four batches for a 20,000-row roster).

On PostgreSQL the index is built CONCURRENTLY, outside the migration's transaction (as 0035):
registrations go on meanwhile. A build that fails leaves an invalid index; running the
migration again drops it first.

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-02
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0038'
down_revision = '0037'
branch_labels = None
depends_on = None

NAME = "ix_victim_record_roster_key"
COLUMNS = ["lg_code", "disaster_id", "roster_key"]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.execute(sa.text(f'DROP INDEX CONCURRENTLY IF EXISTS "{NAME}"'))
            op.create_index(NAME, "victim_record", COLUMNS, unique=False, postgresql_concurrently=True)
        return
    op.create_index(NAME, "victim_record", COLUMNS, unique=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.execute(sa.text(f'DROP INDEX CONCURRENTLY IF EXISTS "{NAME}"'))
        return
    op.drop_index(NAME, table_name="victim_record")
