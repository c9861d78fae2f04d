"""電子申請 (modules/forms): forms, versions, submissions, inbox, shared templates.

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

TENANT_TABLES = ['form', 'form_version', 'form_submission', 'form_submission_event']


def _lg_code(table: str) -> list:
    return [sa.Column('lg_code', sa.String(length=6), nullable=False),
            sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f(f'fk_{table}_lg_code_organization'))]


def upgrade() -> None:
    op.create_table('form',
    *_lg_code('form'),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('slug', sa.String(length=60), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('contact', sa.String(length=400), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('identity_required', sa.Boolean(), nullable=False),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.Column('published_version', sa.Integer(), nullable=False),
    sa.Column('shared', sa.Boolean(), nullable=False),
    sa.Column('shared_summary', sa.String(length=400), nullable=False),
    sa.Column('copied_from', sa.String(length=120), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_form')),
    sa.UniqueConstraint('lg_code', 'slug', name=op.f('uq_form_lg_code_slug'))
    )
    op.create_table('form_version',
    *_lg_code('form_version'),
    sa.Column('form_id', sa.String(length=36), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('contact', sa.String(length=400), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('identity_required', sa.Boolean(), nullable=False),
    sa.Column('published_by', sa.String(length=200), nullable=False),
    sa.Column('published_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('lg_code', 'form_id', 'number', name=op.f('pk_form_version'))
    )
    op.create_table('form_submission',
    *_lg_code('form_submission'),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('form_id', sa.String(length=36), nullable=False),
    sa.Column('version_number', sa.Integer(), nullable=False),
    sa.Column('receipt_no', sa.String(length=20), nullable=False),
    sa.Column('form_token', sa.String(length=64), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('principal_id', sa.String(length=36), nullable=True),
    sa.Column('signer_certificate', sa.Text(), nullable=True),
    sa.Column('signature', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('assignee_id', sa.String(length=36), nullable=True),
    sa.Column('assignee_name', sa.String(length=200), nullable=False),
    sa.Column('submitted_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_form_submission')),
    sa.UniqueConstraint('lg_code', 'form_token', name=op.f('uq_form_submission_lg_code_form_token')),
    sa.UniqueConstraint('lg_code', 'receipt_no', name=op.f('uq_form_submission_lg_code_receipt_no'))
    )
    with op.batch_alter_table('form_submission', schema=None) as batch_op:
        batch_op.create_index('ix_form_submission_inbox', ['lg_code', 'form_id', 'status', 'submitted_at'], unique=False)
        batch_op.create_index('ix_form_submission_form_time', ['lg_code', 'form_id', 'submitted_at'], unique=False)
    op.create_table('form_submission_event',
    *_lg_code('form_submission_event'),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('submission_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=False),
    sa.Column('to_status', sa.String(length=20), nullable=False),
    sa.Column('actor_name', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_form_submission_event'))
    )
    with op.batch_alter_table('form_submission_event', schema=None) as batch_op:
        batch_op.create_index('ix_form_submission_event_submission', ['lg_code', 'submission_id', 'created_at'], unique=False)
    rls.enable_on(op.get_bind(), TENANT_TABLES)


def downgrade() -> None:
    rls.disable_on(op.get_bind(), TENANT_TABLES)
    with op.batch_alter_table('form_submission_event', schema=None) as batch_op:
        batch_op.drop_index('ix_form_submission_event_submission')
    op.drop_table('form_submission_event')
    with op.batch_alter_table('form_submission', schema=None) as batch_op:
        batch_op.drop_index('ix_form_submission_form_time')
        batch_op.drop_index('ix_form_submission_inbox')
    op.drop_table('form_submission')
    op.drop_table('form_version')
    op.drop_table('form')
