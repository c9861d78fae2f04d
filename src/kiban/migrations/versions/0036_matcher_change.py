"""What each transaction wrote to a disaster's victim records, under the generation it bumped,
for the 名寄せ matchers' catch-up (``matching``): read past the generations a matcher has seen,
exactly, instead of the records stamped within a minute of its last look.

The index 0035 made for the old catch-up (victim_record by disaster and ``updated_at``) is
dropped: nothing reads it now, and every registration and edit paid for it. On PostgreSQL it
is dropped CONCURRENTLY, outside the migration's transaction (as 0035 built it); downgrading
builds it again the same way.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-02
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from kiban.kit.db import UTCDateTime

revision = '0036'
down_revision = '0035'
branch_labels = None
depends_on = None

OLD_INDEX = "ix_victim_record_changes"
OLD_COLUMNS = ["disaster_id", "updated_at", "id"]


def upgrade() -> None:
    op.create_table(
        "matcher_change",
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("generation", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("record_ids", sa.JSON(), nullable=False),
        sa.Column("changed_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "generation", name=op.f("pk_matcher_change")),
    )
    op.create_index(op.f("ix_matcher_change_changed_at"), "matcher_change", ["changed_at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.execute(sa.text(f'DROP INDEX CONCURRENTLY IF EXISTS "{OLD_INDEX}"'))
        return
    op.drop_index(OLD_INDEX, table_name="victim_record")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.execute(sa.text(f'DROP INDEX CONCURRENTLY IF EXISTS "{OLD_INDEX}"'))
            op.create_index(OLD_INDEX, "victim_record", OLD_COLUMNS, unique=False, postgresql_concurrently=True)
    else:
        op.create_index(OLD_INDEX, "victim_record", OLD_COLUMNS, unique=False)
    op.drop_index(op.f("ix_matcher_change_changed_at"), table_name="matcher_change")
    op.drop_table("matcher_change")
