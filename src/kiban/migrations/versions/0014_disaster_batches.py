"""広域被災者データベース: 一括名寄せ as a batch that is previewed before it is applied and can be undone as one.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Platform-wide like match_decision (no lg_code, so no RLS policy): it holds record ids,
    # owners and scores, never names, and is read only through the disaster's sharing rules.
    op.create_table('linkage_batch',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('disaster_id', sa.String(length=36), nullable=False),
    sa.Column('run_by_code', sa.String(length=6), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('threshold', sa.String(length=20), nullable=False),
    sa.Column('pairs', sa.JSON(), nullable=False),
    sa.Column('linked', sa.Integer(), nullable=False),
    sa.Column('undone', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('applied_by', sa.String(length=200), nullable=True),
    sa.Column('applied_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('undone_by', sa.String(length=200), nullable=True),
    sa.Column('undone_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['disaster_id'], ['disaster.id'], name=op.f('fk_linkage_batch_disaster_id_disaster')),
    sa.ForeignKeyConstraint(['run_by_code'], ['organization.code'], name=op.f('fk_linkage_batch_run_by_code_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_linkage_batch'))
    )
    with op.batch_alter_table('linkage_batch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_linkage_batch_disaster_id'), ['disaster_id'], unique=False)

    with op.batch_alter_table('match_decision', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_match_decision_batch_id'), ['batch_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('match_decision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_match_decision_batch_id'))
        batch_op.drop_column('batch_id')

    with op.batch_alter_table('linkage_batch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_linkage_batch_disaster_id'))

    op.drop_table('linkage_batch')
