"""保活ワンストップと保育所の利用調整 (modules/childcare, issue #14).

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None

TENANT_TABLES = ['childcare_facility', 'childcare_rule_version', 'childcare_application', 'childcare_referral',
                 'childcare_employment_certificate', 'childcare_allocation_run', 'childcare_price_table',
                 'childcare_monthly_report', 'childcare_report_part']


def _lg_code(table: str) -> list:
    return [sa.Column('lg_code', sa.String(length=6), nullable=False),
            sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f(f'fk_{table}_lg_code_organization'))]


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, kiban.kit.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    age_columns = [sa.Column(f'{kind}_{age}', sa.Integer(), nullable=False)
                   for kind in ('capacity', 'vacancy') for age in range(6)]
    op.create_table('childcare_facility',
    *_lg_code('childcare_facility'),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('phone', sa.String(length=30), nullable=False),
    sa.Column('operator_name', sa.String(length=200), nullable=False),
    sa.Column('operator_type', sa.String(length=20), nullable=False),
    sa.Column('operator_corporate_number', sa.String(length=13), nullable=False),
    sa.Column('opens_at', sa.String(length=5), nullable=False),
    sa.Column('closes_at', sa.String(length=5), nullable=False),
    sa.Column('extended_care', sa.Boolean(), nullable=False),
    sa.Column('temporary_care', sa.Boolean(), nullable=False),
    *age_columns,
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    _at('updated_at'),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_childcare_facility'))
    )
    with op.batch_alter_table('childcare_facility', schema=None) as batch_op:
        batch_op.create_index('ix_childcare_facility_operator', ['lg_code', 'operator_corporate_number'], unique=False)
    op.create_table('childcare_rule_version',
    *_lg_code('childcare_rule_version'),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('based_on', sa.String(length=200), nullable=False),
    sa.Column('rules', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    _at('created_at'),
    sa.PrimaryKeyConstraint('lg_code', 'number', name=op.f('pk_childcare_rule_version'))
    )
    op.create_table('childcare_application',
    *_lg_code('childcare_application'),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('receipt_no', sa.String(length=20), nullable=False),
    sa.Column('form_token', sa.String(length=64), nullable=False),
    sa.Column('principal_id', sa.String(length=36), nullable=False),
    sa.Column('guardian_name', sa.String(length=100), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('children', sa.JSON(), nullable=False),
    sa.Column('preferences', sa.JSON(), nullable=False),
    sa.Column('household', sa.JSON(), nullable=False),
    sa.Column('same_facility', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('results', sa.JSON(), nullable=False),
    _at('submitted_at'),
    _at('updated_at'),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_childcare_application')),
    sa.UniqueConstraint('lg_code', 'form_token', name=op.f('uq_childcare_application_lg_code_form_token')),
    sa.UniqueConstraint('lg_code', 'receipt_no', name=op.f('uq_childcare_application_lg_code_receipt_no'))
    )
    with op.batch_alter_table('childcare_application', schema=None) as batch_op:
        batch_op.create_index('ix_childcare_application_principal', ['lg_code', 'principal_id'], unique=False)
    op.create_table('childcare_referral',
    *_lg_code('childcare_referral'),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('residence_lg_code', sa.String(length=6), nullable=False),
    sa.Column('residence_name', sa.String(length=100), nullable=False),
    sa.Column('receipt_no', sa.String(length=20), nullable=False),
    sa.Column('facility_id', sa.String(length=36), nullable=False),
    sa.Column('facility_name', sa.String(length=200), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('age_classes', sa.String(length=40), nullable=False),
    sa.Column('outcome', sa.String(length=200), nullable=False),
    _at('created_at'),
    _at('updated_at'),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_childcare_referral')),
    sa.UniqueConstraint('lg_code', 'residence_lg_code', 'receipt_no', 'facility_id',
                        name=op.f('uq_childcare_referral_lg_code_residence_lg_code_receipt_no_facility_id'))
    )
    op.create_table('childcare_employment_certificate',
    *_lg_code('childcare_employment_certificate'),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('application_id', sa.String(length=36), nullable=False),
    sa.Column('receipt_no', sa.String(length=20), nullable=False),
    sa.Column('guardian_index', sa.Integer(), nullable=False),
    sa.Column('guardian_name', sa.String(length=100), nullable=False),
    sa.Column('employer_corporate_number', sa.String(length=13), nullable=False),
    sa.Column('employer_name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('hours_per_week', sa.Integer(), nullable=True),
    sa.Column('days_per_week', sa.Integer(), nullable=True),
    sa.Column('employment_type', sa.String(length=40), nullable=False),
    sa.Column('certified_by', sa.String(length=200), nullable=False),
    _at('certified_at', nullable=True),
    _at('requested_at'),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_childcare_employment_certificate'))
    )
    with op.batch_alter_table('childcare_employment_certificate', schema=None) as batch_op:
        batch_op.create_index('ix_childcare_certificate_employer', ['lg_code', 'employer_corporate_number'], unique=False)
    op.create_table('childcare_allocation_run',
    *_lg_code('childcare_allocation_run'),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('rule_version', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=20), nullable=False),
    sa.Column('instance', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    _at('created_at'),
    sa.Column('published_by', sa.String(length=200), nullable=False),
    _at('published_at', nullable=True),
    sa.PrimaryKeyConstraint('lg_code', 'number', name=op.f('pk_childcare_allocation_run'))
    )
    op.create_table('childcare_price_table',
    *_lg_code('childcare_price_table'),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('bands', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    _at('created_at'),
    sa.PrimaryKeyConstraint('lg_code', 'number', name=op.f('pk_childcare_price_table'))
    )
    op.create_table('childcare_monthly_report',
    *_lg_code('childcare_monthly_report'),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('facility_id', sa.String(length=36), nullable=False),
    sa.Column('facility_name', sa.String(length=200), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('corporate_number', sa.String(length=13), nullable=False),
    sa.Column('submitted_by', sa.String(length=200), nullable=False),
    sa.Column('totals', sa.JSON(), nullable=False),
    sa.Column('staff_count', sa.Integer(), nullable=False),
    sa.Column('staffing', sa.JSON(), nullable=False),
    sa.Column('residences', sa.JSON(), nullable=False),
    sa.Column('receipt', sa.Text(), nullable=False),
    sa.Column('signature', sa.String(length=64), nullable=False),
    _at('submitted_at'),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_childcare_monthly_report')),
    sa.UniqueConstraint('lg_code', 'facility_id', 'month', name=op.f('uq_childcare_monthly_report_lg_code_facility_id_month'))
    )
    op.create_table('childcare_report_part',
    *_lg_code('childcare_report_part'),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('report_id', sa.String(length=36), nullable=False),
    sa.Column('facility_lg_code', sa.String(length=6), nullable=False),
    sa.Column('facility_id', sa.String(length=36), nullable=False),
    sa.Column('facility_name', sa.String(length=200), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('children', sa.JSON(), nullable=False),
    sa.Column('attendance_days', sa.Integer(), nullable=False),
    sa.Column('benefit_yen', sa.Integer(), nullable=True),
    sa.Column('benefit_detail', sa.JSON(), nullable=False),
    _at('submitted_at'),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_childcare_report_part')),
    sa.UniqueConstraint('lg_code', 'report_id', name=op.f('uq_childcare_report_part_lg_code_report_id'))
    )
    rls.enable_on(op.get_bind(), TENANT_TABLES)


def downgrade() -> None:
    rls.disable_on(op.get_bind(), TENANT_TABLES)
    with op.batch_alter_table('childcare_employment_certificate', schema=None) as batch_op:
        batch_op.drop_index('ix_childcare_certificate_employer')
    with op.batch_alter_table('childcare_application', schema=None) as batch_op:
        batch_op.drop_index('ix_childcare_application_principal')
    with op.batch_alter_table('childcare_facility', schema=None) as batch_op:
        batch_op.drop_index('ix_childcare_facility_operator')
    for table in reversed(TENANT_TABLES):
        op.drop_table(table)
