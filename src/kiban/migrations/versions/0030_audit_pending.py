"""Audit entries recorded now and chained moments later (core/audit: reads of other
organisations' records take no chain-head lock).

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_pending',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('entry_id', sa.String(length=36), nullable=False),
    sa.Column('occurred_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.String(length=36), nullable=True),
    sa.Column('actor_kind', sa.String(length=20), nullable=False),
    sa.Column('actor_label', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('target_type', sa.String(length=60), nullable=True),
    sa.Column('target_id', sa.String(length=100), nullable=True),
    sa.Column('subject_id', sa.String(length=36), nullable=True),
    sa.Column('purpose', sa.String(length=200), nullable=True),
    sa.Column('legal_basis', sa.String(length=200), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_audit_pending_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'entry_id', name=op.f('pk_audit_pending'))
    )
    with op.batch_alter_table('audit_pending', schema=None) as batch_op:
        batch_op.create_index('ix_audit_pending_lg_code_occurred_at', ['lg_code', 'occurred_at', 'entry_id'], unique=False)
        batch_op.create_index('ix_audit_pending_subject_id', ['subject_id'], unique=False)
    rls.enable_on(op.get_bind(), ['audit_pending'])


def downgrade() -> None:
    rls.disable_on(op.get_bind(), ['audit_pending'])
    with op.batch_alter_table('audit_pending', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_pending_subject_id')
        batch_op.drop_index('ix_audit_pending_lg_code_occurred_at')
    op.drop_table('audit_pending')
