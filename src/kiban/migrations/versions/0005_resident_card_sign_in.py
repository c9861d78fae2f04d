"""Resident sign-in with the My Number Card: single-use challenges and pseudonymous identities.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('jpki_challenge',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('nonce', sa.String(length=100), nullable=False),
    sa.Column('browser_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jpki_challenge'))
    )
    op.create_table('resident_identity',
    sa.Column('pseudonym', sa.String(length=64), nullable=False),
    sa.Column('principal_id', sa.String(length=36), nullable=False),
    sa.Column('issuer', sa.String(length=300), nullable=False),
    sa.Column('not_after', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_sign_in_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['principal_id'], ['principal.id'], name=op.f('fk_resident_identity_principal_id_principal')),
    sa.PrimaryKeyConstraint('pseudonym', name=op.f('pk_resident_identity'))
    )
    with op.batch_alter_table('resident_identity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resident_identity_principal_id'), ['principal_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('resident_identity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resident_identity_principal_id'))

    op.drop_table('resident_identity')
    op.drop_table('jpki_challenge')
