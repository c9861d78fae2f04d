"""shared_snapshot: a costly result (a large disaster's dashboard counts) computed by one server
process for all, instead of by every process on its own.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-01
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db

revision = '0034'
down_revision = '0033'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'shared_snapshot',
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('value', sa.JSON(), nullable=True),
        sa.Column('taken_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('seconds', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_shared_snapshot')),
    )


def downgrade() -> None:
    op.drop_table('shared_snapshot')
