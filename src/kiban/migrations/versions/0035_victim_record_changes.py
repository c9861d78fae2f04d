"""An index of a disaster's records by when they last changed, for the 名寄せ matchers' catch-up.

Every worker process keeps a matcher per disaster and, when the disaster's generation moves,
reads the records stamped since it last looked (``matching._catch_up``). Without an index led
by (disaster_id, updated_at), PostgreSQL answered that from the disaster's index: every record
of the disaster read, a million in bench/load.py's mix, on every catch-up of every process,
while residents registered at its shelters. ``id`` is in the index so that the catch-up's first
question (which ids changed since) is answered from the index alone.

On PostgreSQL the index is built CONCURRENTLY, outside the migration's transaction (as 0020):
registrations go on meanwhile. A build that fails leaves an invalid index; running the
migration again drops it first.

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-01
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0035'
down_revision = '0034'
branch_labels = None
depends_on = None

NAME = "ix_victim_record_changes"
COLUMNS = ["disaster_id", "updated_at", "id"]


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
