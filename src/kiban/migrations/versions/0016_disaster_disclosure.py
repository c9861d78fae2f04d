"""名寄せ without disclosure: confirmations across municipalities wait for the other owner's
acceptance; records marked 支援措置対象 (DV等); who decided, for the per-person limit.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('match_decision', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acceptance', sa.String(length=20), server_default='', nullable=False))
        batch_op.add_column(sa.Column('awaiting_code', sa.String(length=6), nullable=True))
        batch_op.add_column(sa.Column('accepted_by_code', sa.String(length=6), nullable=True))
        batch_op.add_column(sa.Column('accepted_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('accepted_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('decided_by_principal', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_match_decision_awaiting_code'), ['awaiting_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_match_decision_decided_by_principal'), ['decided_by_principal'], unique=False)
    with op.batch_alter_table('victim_record', schema=None) as batch_op:
        batch_op.add_column(sa.Column('protected', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('victim_record', schema=None) as batch_op:
        batch_op.drop_column('protected')
    with op.batch_alter_table('match_decision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_match_decision_decided_by_principal'))
        batch_op.drop_index(batch_op.f('ix_match_decision_awaiting_code'))
        batch_op.drop_column('decided_by_principal')
        batch_op.drop_column('accepted_at')
        batch_op.drop_column('accepted_by')
        batch_op.drop_column('accepted_by_code')
        batch_op.drop_column('awaiting_code')
        batch_op.drop_column('acceptance')
