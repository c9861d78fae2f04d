"""Staff invitations (tenant-owned, under row-level security).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('invitation',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('principal_id', sa.String(length=36), nullable=False),
    sa.Column('role', sa.String(length=40), nullable=False),
    sa.Column('invited_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('accepted_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_invitation_lg_code_organization')),
    sa.ForeignKeyConstraint(['principal_id'], ['principal.id'], name=op.f('fk_invitation_principal_id_principal')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_invitation'))
    )
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invitation_token_hash'), ['token_hash'], unique=False)


    rls.enable_on(op.get_bind(), ['invitation'])


def downgrade() -> None:
    rls.disable_on(op.get_bind(), ['invitation'])
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invitation_token_hash'))

    op.drop_table('invitation')
