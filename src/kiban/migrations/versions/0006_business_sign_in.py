"""Business sign-in through GビズID (OpenID Connect): pending logins and business identities.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('oidc_login',
    sa.Column('state', sa.String(length=64), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('code_verifier', sa.String(length=128), nullable=False),
    sa.Column('browser_hash', sa.String(length=64), nullable=False),
    sa.Column('redirect_uri', sa.String(length=500), nullable=False),
    sa.Column('next_url', sa.String(length=500), nullable=True),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('state', name=op.f('pk_oidc_login'))
    )
    op.create_table('business_identity',
    sa.Column('issuer', sa.String(length=300), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('principal_id', sa.String(length=36), nullable=False),
    sa.Column('corporate_number', sa.String(length=13), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_sign_in_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['principal_id'], ['principal.id'], name=op.f('fk_business_identity_principal_id_principal')),
    sa.PrimaryKeyConstraint('issuer', 'subject', name=op.f('pk_business_identity'))
    )
    with op.batch_alter_table('business_identity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_business_identity_corporate_number'), ['corporate_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_business_identity_principal_id'), ['principal_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('business_identity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_business_identity_principal_id'))
        batch_op.drop_index(batch_op.f('ix_business_identity_corporate_number'))

    op.drop_table('business_identity')
    op.drop_table('oidc_login')
