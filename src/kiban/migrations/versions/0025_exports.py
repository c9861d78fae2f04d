"""Exports built in the background (core/exports): the file asked for and its parts.

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Tenant-owned: an export holds the tenant's data (an audit log names who read whose record).
    op.create_table('export_file',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('exporter', sa.String(length=80), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('media_type', sa.String(length=120), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('parts', sa.Integer(), nullable=False),
    sa.Column('message', sa.String(length=400), nullable=False),
    sa.Column('requested_by', sa.String(length=80), nullable=False),
    sa.Column('requested_by_label', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_export_file_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_export_file'))
    )
    with op.batch_alter_table('export_file', schema=None) as batch_op:
        batch_op.create_index('ix_export_file_lg_code_requested_by_created_at', ['lg_code', 'requested_by', 'created_at'],
                              unique=False)
    op.create_table('export_part',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('export_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['lg_code', 'export_id'], ['export_file.lg_code', 'export_file.id'],
                            name=op.f('fk_export_part_lg_code_export_file'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_export_part_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'export_id', 'seq', name=op.f('pk_export_part'))
    )
    rls.enable_on(op.get_bind(), ['export_file', 'export_part'])


def downgrade() -> None:
    rls.disable_on(op.get_bind(), ['export_file', 'export_part'])
    op.drop_table('export_part')
    with op.batch_alter_table('export_file', schema=None) as batch_op:
        batch_op.drop_index('ix_export_file_lg_code_requested_by_created_at')
    op.drop_table('export_file')
