"""Notifications (core/notify): templates, outbox, in-app notices, delivery status.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


TABLES = ['notify_template_override', 'notification', 'notify_notice']


def upgrade() -> None:
    T = kiban.kit.db.UTCDateTime(timezone=True)
    op.create_table('notify_template_override',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('updated_by', sa.String(length=36), nullable=False),
    sa.Column('updated_at', T, nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_notify_template_override_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'key', name=op.f('pk_notify_template_override'))
    )
    op.create_table('notification',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('template_key', sa.String(length=80), nullable=False),
    sa.Column('service', sa.String(length=80), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('principal_id', sa.String(length=36), nullable=True),
    sa.Column('recipient_name', sa.String(length=200), nullable=True),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('message_id', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=400), nullable=True),
    sa.Column('next_attempt_at', T, nullable=False),
    sa.Column('claim_token', sa.String(length=100), nullable=True),
    sa.Column('lease_until', T, nullable=True),
    sa.Column('created_at', T, nullable=False),
    sa.Column('sending_at', T, nullable=True),
    sa.Column('sent_at', T, nullable=True),
    sa.Column('failed_at', T, nullable=True),
    sa.Column('updated_at', T, nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_notification_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_notification')),
    sa.UniqueConstraint('lg_code', 'dedupe_key', name=op.f('uq_notification_lg_code_dedupe_key'))
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index('ix_notification_lg_code_state_next_attempt_at', ['lg_code', 'state', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_notification_lg_code_sent_at', ['lg_code', 'sent_at'], unique=False)
        batch_op.create_index('ix_notification_lg_code_created_at', ['lg_code', 'created_at'], unique=False)
        batch_op.create_index('ix_notification_lg_code_claim_token', ['lg_code', 'claim_token'], unique=False)
    op.create_table('notify_notice',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('notification_id', sa.String(length=36), nullable=False),
    sa.Column('principal_id', sa.String(length=36), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', T, nullable=False),
    sa.Column('read_at', T, nullable=True),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_notify_notice_lg_code_organization')),
    sa.ForeignKeyConstraint(['principal_id'], ['principal.id'], name=op.f('fk_notify_notice_principal_id_principal')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_notify_notice'))
    )
    with op.batch_alter_table('notify_notice', schema=None) as batch_op:
        batch_op.create_index('ix_notify_notice_principal_id_created_at', ['principal_id', 'created_at'], unique=False)
    rls.enable_on(op.get_bind(), TABLES)


def downgrade() -> None:
    rls.disable_on(op.get_bind(), TABLES)
    with op.batch_alter_table('notify_notice', schema=None) as batch_op:
        batch_op.drop_index('ix_notify_notice_principal_id_created_at')
    op.drop_table('notify_notice')
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_lg_code_claim_token')
        batch_op.drop_index('ix_notification_lg_code_created_at')
        batch_op.drop_index('ix_notification_lg_code_sent_at')
        batch_op.drop_index('ix_notification_lg_code_state_next_attempt_at')
    op.drop_table('notification')
    op.drop_table('notify_template_override')
