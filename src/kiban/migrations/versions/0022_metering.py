"""Metering (core/metering): usage events per tenant and service.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

TENANT_TABLES = ['usage_counter', 'usage_event_key']


def upgrade() -> None:
    # Monthly counters (a few shard rows per tenant, service, event and month) and the
    # idempotency records of keyed events; see kiban.core.metering.service.
    op.create_table('usage_counter',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('service_id', sa.String(length=60), nullable=False),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('shard', sa.SmallInteger(), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_usage_counter_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'service_id', 'event', 'month', 'shard', name=op.f('pk_usage_counter'))
    )
    with op.batch_alter_table('usage_counter', schema=None) as batch_op:
        batch_op.create_index('ix_usage_counter_service_month', ['service_id', 'month', 'lg_code'], unique=False)
    op.create_table('usage_event_key',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('service_id', sa.String(length=60), nullable=False),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('counted_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_usage_event_key_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'service_id', 'event', 'key', name=op.f('pk_usage_event_key'))
    )
    with op.batch_alter_table('usage_event_key', schema=None) as batch_op:
        batch_op.create_index('ix_usage_event_key_month', ['lg_code', 'month'], unique=False)
    rls.enable_on(op.get_bind(), TENANT_TABLES)


def downgrade() -> None:
    rls.disable_on(op.get_bind(), TENANT_TABLES)
    with op.batch_alter_table('usage_event_key', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_event_key_month')
    op.drop_table('usage_event_key')
    with op.batch_alter_table('usage_counter', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_counter_service_month')
    op.drop_table('usage_counter')
