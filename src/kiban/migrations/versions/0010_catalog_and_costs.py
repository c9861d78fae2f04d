"""The common service catalog, adoptions (tenant-owned), consortia, fee schedules and statements (tenant-owned).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TENANT_TABLES = ['catalog_adoption', 'fee_schedule', 'fee_statement']


def upgrade() -> None:
    op.create_table('catalog_service',
    sa.Column('id', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('domain', sa.String(length=60), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('pattern', sa.String(length=20), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('burden_category', sa.String(length=20), nullable=False),
    sa.Column('lifecycle', sa.String(length=20), nullable=False),
    sa.Column('annual_cost', sa.BigInteger(), nullable=True),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.Column('seeded', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_catalog_service'))
    )
    with op.batch_alter_table('catalog_service', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_catalog_service_domain'), ['domain'], unique=False)
        batch_op.create_index(batch_op.f('ix_catalog_service_pattern'), ['pattern'], unique=False)

    op.create_table('catalog_vendor',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('service_id', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('note', sa.String(length=400), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['catalog_service.id'], name=op.f('fk_catalog_vendor_service_id_catalog_service')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_catalog_vendor')),
    sa.UniqueConstraint('service_id', 'name', name=op.f('uq_catalog_vendor_service_id_name'))
    )
    with op.batch_alter_table('catalog_vendor', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_catalog_vendor_service_id'), ['service_id'], unique=False)

    op.create_table('consortium',
    sa.Column('id', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('secretariat_code', sa.String(length=6), nullable=False),
    sa.Column('contract', sa.String(length=300), nullable=False),
    sa.Column('fee_rule', sa.String(length=300), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['secretariat_code'], ['organization.code'], name=op.f('fk_consortium_secretariat_code_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consortium'))
    )
    with op.batch_alter_table('consortium', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consortium_secretariat_code'), ['secretariat_code'], unique=False)

    op.create_table('fee_schedule',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('consortium_id', sa.String(length=60), nullable=False),
    sa.Column('service_id', sa.String(length=60), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('subsidy_rate', sa.String(length=20), nullable=False),
    sa.Column('subsidy', sa.BigInteger(), nullable=False),
    sa.Column('allocated', sa.BigInteger(), nullable=False),
    sa.Column('method', sa.JSON(), nullable=False),
    sa.Column('method_label', sa.String(length=200), nullable=False),
    sa.Column('lines', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_fee_schedule_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_fee_schedule'))
    )
    with op.batch_alter_table('fee_schedule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fee_schedule_consortium_id'), ['consortium_id'], unique=False)

    op.create_table('fee_statement',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('schedule_id', sa.String(length=36), nullable=False),
    sa.Column('secretariat_code', sa.String(length=6), nullable=False),
    sa.Column('consortium_name', sa.String(length=200), nullable=False),
    sa.Column('service_name', sa.String(length=200), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('subsidy', sa.BigInteger(), nullable=False),
    sa.Column('allocated', sa.BigInteger(), nullable=False),
    sa.Column('method_label', sa.String(length=200), nullable=False),
    sa.Column('member_count', sa.Integer(), nullable=False),
    sa.Column('member_name', sa.String(length=100), nullable=False),
    sa.Column('population', sa.Integer(), nullable=True),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('percent', sa.String(length=20), nullable=False),
    sa.Column('explanation', sa.Text(), nullable=False),
    sa.Column('issued_by', sa.String(length=200), nullable=False),
    sa.Column('issued_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_fee_statement_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'schedule_id', name=op.f('pk_fee_statement'))
    )
    op.create_table('catalog_adoption',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('service_id', sa.String(length=60), nullable=False),
    sa.Column('vendor_id', sa.String(length=36), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('since', sa.Date(), nullable=True),
    sa.Column('renewal_on', sa.Date(), nullable=True),
    sa.Column('replaced_annual_cost', sa.BigInteger(), nullable=True),
    sa.Column('annual_cost', sa.BigInteger(), nullable=True),
    sa.Column('note', sa.String(length=400), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_catalog_adoption_lg_code_organization')),
    sa.ForeignKeyConstraint(['service_id'], ['catalog_service.id'], name=op.f('fk_catalog_adoption_service_id_catalog_service')),
    sa.ForeignKeyConstraint(['vendor_id'], ['catalog_vendor.id'], name=op.f('fk_catalog_adoption_vendor_id_catalog_vendor')),
    sa.PrimaryKeyConstraint('lg_code', 'service_id', name=op.f('pk_catalog_adoption'))
    )
    with op.batch_alter_table('catalog_adoption', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_catalog_adoption_service_id'), ['service_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_catalog_adoption_status'), ['status'], unique=False)

    op.create_table('consortium_member',
    sa.Column('consortium_id', sa.String(length=60), nullable=False),
    sa.Column('member_code', sa.String(length=6), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortium.id'], name=op.f('fk_consortium_member_consortium_id_consortium')),
    sa.ForeignKeyConstraint(['member_code'], ['organization.code'], name=op.f('fk_consortium_member_member_code_organization')),
    sa.PrimaryKeyConstraint('consortium_id', 'member_code', name=op.f('pk_consortium_member'))
    )
    with op.batch_alter_table('consortium_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consortium_member_member_code'), ['member_code'], unique=False)

    op.create_table('consortium_system',
    sa.Column('consortium_id', sa.String(length=60), nullable=False),
    sa.Column('service_id', sa.String(length=60), nullable=False),
    sa.Column('group_name', sa.String(length=200), nullable=False),
    sa.Column('published_users', sa.Integer(), nullable=True),
    sa.Column('all_members', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortium.id'], name=op.f('fk_consortium_system_consortium_id_consortium')),
    sa.ForeignKeyConstraint(['service_id'], ['catalog_service.id'], name=op.f('fk_consortium_system_service_id_catalog_service')),
    sa.PrimaryKeyConstraint('consortium_id', 'service_id', name=op.f('pk_consortium_system'))
    )
    op.create_table('consortium_system_user',
    sa.Column('consortium_id', sa.String(length=60), nullable=False),
    sa.Column('service_id', sa.String(length=60), nullable=False),
    sa.Column('member_code', sa.String(length=6), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id', 'member_code'], ['consortium_member.consortium_id', 'consortium_member.member_code'], name=op.f('fk_consortium_system_user_consortium_id_member_code_consortium_member')),
    sa.ForeignKeyConstraint(['consortium_id', 'service_id'], ['consortium_system.consortium_id', 'consortium_system.service_id'], name=op.f('fk_consortium_system_user_consortium_id_service_id_consortium_system')),
    sa.PrimaryKeyConstraint('consortium_id', 'service_id', 'member_code', name=op.f('pk_consortium_system_user'))
    )

    rls.enable_on(op.get_bind(), TENANT_TABLES)


def downgrade() -> None:
    rls.disable_on(op.get_bind(), TENANT_TABLES)
    op.drop_table('consortium_system_user')
    op.drop_table('consortium_system')
    with op.batch_alter_table('consortium_member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consortium_member_member_code'))

    op.drop_table('consortium_member')
    with op.batch_alter_table('catalog_adoption', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_catalog_adoption_status'))
        batch_op.drop_index(batch_op.f('ix_catalog_adoption_service_id'))

    op.drop_table('catalog_adoption')
    op.drop_table('fee_statement')
    with op.batch_alter_table('fee_schedule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fee_schedule_consortium_id'))

    op.drop_table('fee_schedule')
    with op.batch_alter_table('consortium', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consortium_secretariat_code'))

    op.drop_table('consortium')
    with op.batch_alter_table('catalog_vendor', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_catalog_vendor_service_id'))

    op.drop_table('catalog_vendor')
    with op.batch_alter_table('catalog_service', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_catalog_service_pattern'))
        batch_op.drop_index(batch_op.f('ix_catalog_service_domain'))

    op.drop_table('catalog_service')
