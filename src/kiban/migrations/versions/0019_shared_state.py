"""State shared across server processes: rate-limit counters and cache generations.

Platform-wide tables (not tenant data, so no lg_code and no row-level security): counter keys
are hashes or ids, never anything a person typed. See kiban/kit/shared.py.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('shared_counter',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('level', sa.Float(), nullable=False),
    sa.Column('counted_at', sa.Float(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.Column('admitted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_shared_counter'))
    )
    op.create_index(op.f('ix_shared_counter_expires_at'), 'shared_counter', ['expires_at'], unique=False)
    op.create_table('shared_generation',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('changed_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_shared_generation'))
    )


def downgrade() -> None:
    op.drop_table('shared_generation')
    op.drop_index(op.f('ix_shared_counter_expires_at'), table_name='shared_counter')
    op.drop_table('shared_counter')
