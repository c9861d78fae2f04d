"""Identity (principals, staff credentials, memberships, web sessions) and the hash-chained audit log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


TENANT_TABLES = ['audit_chain_head', 'audit_entry', 'membership']


def upgrade() -> None:
    op.create_table('principal',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('disabled_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_principal'))
    )
    op.create_table('audit_chain_head',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_audit_chain_head_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', name=op.f('pk_audit_chain_head'))
    )
    op.create_table('audit_entry',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('entry_id', sa.String(length=36), nullable=False),
    sa.Column('occurred_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.String(length=36), nullable=True),
    sa.Column('actor_kind', sa.String(length=20), nullable=False),
    sa.Column('actor_label', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('target_type', sa.String(length=60), nullable=True),
    sa.Column('target_id', sa.String(length=100), nullable=True),
    sa.Column('subject_id', sa.String(length=36), nullable=True),
    sa.Column('purpose', sa.String(length=200), nullable=True),
    sa.Column('legal_basis', sa.String(length=200), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_audit_entry_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'seq', name=op.f('pk_audit_entry'))
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entry_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entry_subject_id'), ['subject_id'], unique=False)

    op.create_table('membership',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('principal_id', sa.String(length=36), nullable=False),
    sa.Column('role', sa.String(length=40), nullable=False),
    sa.Column('granted_by', sa.String(length=200), nullable=False),
    sa.Column('granted_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_membership_lg_code_organization')),
    sa.ForeignKeyConstraint(['principal_id'], ['principal.id'], name=op.f('fk_membership_principal_id_principal')),
    sa.PrimaryKeyConstraint('lg_code', 'principal_id', name=op.f('pk_membership'))
    )
    op.create_table('staff_credential',
    sa.Column('principal_id', sa.String(length=36), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('totp_secret_encrypted', sa.String(length=300), nullable=True),
    sa.Column('totp_confirmed_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_totp_step', sa.Integer(), nullable=True),
    sa.Column('failed_count', sa.Integer(), nullable=False),
    sa.Column('locked_until', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['principal_id'], ['principal.id'], name=op.f('fk_staff_credential_principal_id_principal')),
    sa.PrimaryKeyConstraint('principal_id', name=op.f('pk_staff_credential')),
    sa.UniqueConstraint('username', name=op.f('uq_staff_credential_username'))
    )
    op.create_table('web_session',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('principal_id', sa.String(length=36), nullable=False),
    sa.Column('stage', sa.String(length=10), nullable=False),
    sa.Column('acting_lg_code', sa.String(length=6), nullable=True),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['acting_lg_code'], ['organization.code'], name=op.f('fk_web_session_acting_lg_code_organization')),
    sa.ForeignKeyConstraint(['principal_id'], ['principal.id'], name=op.f('fk_web_session_principal_id_principal')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_session')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_web_session_token_hash'))
    )
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_session_principal_id'), ['principal_id'], unique=False)


    rls.enable_on(op.get_bind(), TENANT_TABLES)
    rls.make_append_only(op.get_bind(), ['audit_entry'])


def downgrade() -> None:
    rls.disable_on(op.get_bind(), TENANT_TABLES)
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_session_principal_id'))

    op.drop_table('web_session')
    op.drop_table('staff_credential')
    op.drop_table('membership')
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entry_subject_id'))
        batch_op.drop_index(batch_op.f('ix_audit_entry_actor_id'))

    op.drop_table('audit_entry')
    op.drop_table('audit_chain_head')
    op.drop_table('principal')
