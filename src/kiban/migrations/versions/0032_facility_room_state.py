"""施設予約: a room can be closed for new bookings (受付停止) and removed (削除, kept for the
records of its past bookings).

Revision ID: 0032
Revises: 0031
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db

revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('facility_room', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('removed_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('facility_room', schema=None) as batch_op:
        batch_op.drop_column('removed_at')
        batch_op.drop_column('closed_at')
