"""Explicit access grants between organisations (tenant-owned by the grantor, under RLS).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_grant',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('grantee_code', sa.String(length=6), nullable=False),
    sa.Column('permission', sa.String(length=100), nullable=False),
    sa.Column('purpose', sa.String(length=200), nullable=False),
    sa.Column('legal_basis', sa.String(length=200), nullable=False),
    sa.Column('granted_by', sa.String(length=200), nullable=False),
    sa.Column('granted_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('revoked_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['grantee_code'], ['organization.code'], name=op.f('fk_access_grant_grantee_code_organization')),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_access_grant_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_access_grant'))
    )
    with op.batch_alter_table('access_grant', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_grant_grantee_code'), ['grantee_code'], unique=False)


    rls.enable_on(op.get_bind(), ['access_grant'])


def downgrade() -> None:
    rls.disable_on(op.get_bind(), ['access_grant'])
    with op.batch_alter_table('access_grant', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_grant_grantee_code'))

    op.drop_table('access_grant')
