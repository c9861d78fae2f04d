"""Tenancy: テナント設定 and its history, with row-level security on PostgreSQL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


TABLES = ['tenant_setting', 'tenant_setting_change']


def upgrade() -> None:
    op.create_table('tenant_setting',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_tenant_setting_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'key', name=op.f('pk_tenant_setting'))
    )
    op.create_table('tenant_setting_change',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('old_value', sa.JSON(), nullable=True),
    sa.Column('new_value', sa.JSON(), nullable=True),
    sa.Column('changed_by', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('changed_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_tenant_setting_change_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'key', 'version', name=op.f('pk_tenant_setting_change'))
    )
    rls.enable_on(op.get_bind(), TABLES)


def downgrade() -> None:
    rls.disable_on(op.get_bind(), TABLES)
    op.drop_table('tenant_setting_change')
    op.drop_table('tenant_setting')
