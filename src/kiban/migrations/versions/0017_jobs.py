"""Durable background jobs (core/jobs): claimed with a lease, resumable after a restart; first user: chunked roster imports.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Tenant-owned (a job's payload may hold the tenant's personal data); the runner's claim
    # reads across tenants through the named unscoped() escape hatch, as RLS allows.
    op.create_table('job',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=80), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('cursor', sa.JSON(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('dedupe_key', sa.String(length=200), nullable=True),
    sa.Column('target_type', sa.String(length=60), nullable=True),
    sa.Column('target_id', sa.String(length=36), nullable=True),
    sa.Column('progress_done', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=True),
    sa.Column('message', sa.String(length=400), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('run_after', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('lease_until', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_job_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_job')),
    sa.UniqueConstraint('lg_code', 'kind', 'dedupe_key', name=op.f('uq_job_lg_code_kind_dedupe_key'))
    )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index('ix_job_state_run_after', ['state', 'run_after'], unique=False)
        batch_op.create_index('ix_job_lg_code_target_type_target_id', ['lg_code', 'target_type', 'target_id'], unique=False)
    rls.enable_on(op.get_bind(), ['job'])


def downgrade() -> None:
    rls.disable_on(op.get_bind(), ['job'])
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index('ix_job_lg_code_target_type_target_id')
        batch_op.drop_index('ix_job_state_run_after')
    op.drop_table('job')
