"""広域被災者データベース: disasters and areas, shelters, victim records and roster imports (tenant-owned), match decisions.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TENANT_TABLES = ['roster_import', 'shelter', 'victim_record']


def upgrade() -> None:
    op.create_table('disaster',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('occurred_on', sa.Date(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('opened_by_code', sa.String(length=6), nullable=False),
    sa.Column('opened_by', sa.String(length=200), nullable=False),
    sa.Column('opened_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['opened_by_code'], ['organization.code'], name=op.f('fk_disaster_opened_by_code_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disaster'))
    )
    op.create_table('disaster_area',
    sa.Column('disaster_id', sa.String(length=36), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('relief_act', sa.Boolean(), nullable=False),
    sa.Column('relief_act_from', sa.Date(), nullable=True),
    sa.Column('support_act', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['disaster_id'], ['disaster.id'], name=op.f('fk_disaster_area_disaster_id_disaster')),
    sa.ForeignKeyConstraint(['municipality_code'], ['organization.code'], name=op.f('fk_disaster_area_municipality_code_organization')),
    sa.PrimaryKeyConstraint('disaster_id', 'municipality_code', name=op.f('pk_disaster_area'))
    )
    with op.batch_alter_table('disaster_area', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_disaster_area_municipality_code'), ['municipality_code'], unique=False)

    op.create_table('match_decision',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('disaster_id', sa.String(length=36), nullable=False),
    sa.Column('record_a_code', sa.String(length=6), nullable=False),
    sa.Column('record_a_id', sa.String(length=36), nullable=False),
    sa.Column('record_b_code', sa.String(length=6), nullable=False),
    sa.Column('record_b_id', sa.String(length=36), nullable=False),
    sa.Column('decision', sa.String(length=20), nullable=False),
    sa.Column('probability', sa.String(length=20), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('decided_by_code', sa.String(length=6), nullable=False),
    sa.Column('decided_by', sa.String(length=200), nullable=False),
    sa.Column('decided_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reverted_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reverted_by', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['disaster_id'], ['disaster.id'], name=op.f('fk_match_decision_disaster_id_disaster')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_match_decision'))
    )
    with op.batch_alter_table('match_decision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_match_decision_disaster_id'), ['disaster_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_match_decision_record_a_id'), ['record_a_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_match_decision_record_b_id'), ['record_b_id'], unique=False)

    op.create_table('roster_import',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('disaster_id', sa.String(length=36), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('encoding', sa.String(length=20), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('imported_count', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['disaster_id'], ['disaster.id'], name=op.f('fk_roster_import_disaster_id_disaster')),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_roster_import_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_roster_import'))
    )
    op.create_table('shelter',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('disaster_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.Column('occupancy', sa.Integer(), nullable=False),
    sa.Column('needs', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['disaster_id'], ['disaster.id'], name=op.f('fk_shelter_disaster_id_disaster')),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_shelter_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_shelter'))
    )
    with op.batch_alter_table('shelter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shelter_disaster_id'), ['disaster_id'], unique=False)

    op.create_table('victim_record',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('disaster_id', sa.String(length=36), nullable=False),
    sa.Column('family_name', sa.String(length=100), nullable=False),
    sa.Column('given_name', sa.String(length=100), nullable=False),
    sa.Column('family_kana', sa.String(length=100), nullable=False),
    sa.Column('given_kana', sa.String(length=100), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('sex', sa.String(length=10), nullable=True),
    sa.Column('home_address', sa.String(length=300), nullable=False),
    sa.Column('home_lg_code', sa.String(length=6), nullable=False),
    sa.Column('home_pref_code', sa.String(length=6), nullable=False),
    sa.Column('whereabouts', sa.String(length=20), nullable=False),
    sa.Column('shelter_id', sa.String(length=36), nullable=True),
    sa.Column('wide_area_lg_code', sa.String(length=6), nullable=True),
    sa.Column('current_lg_code', sa.String(length=6), nullable=False),
    sa.Column('current_pref_code', sa.String(length=6), nullable=False),
    sa.Column('phone', sa.String(length=30), nullable=False),
    sa.Column('household_key', sa.String(length=60), nullable=False),
    sa.Column('household_size', sa.Integer(), nullable=False),
    sa.Column('care_needs', sa.JSON(), nullable=False),
    sa.Column('damage_level', sa.String(length=30), nullable=False),
    sa.Column('risai_status', sa.String(length=10), nullable=False),
    sa.Column('rebuild_plan', sa.String(length=20), nullable=False),
    sa.Column('supports', sa.JSON(), nullable=False),
    sa.Column('note', sa.String(length=400), nullable=False),
    sa.Column('resident_subject_id', sa.String(length=36), nullable=True),
    sa.Column('import_key', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['disaster_id'], ['disaster.id'], name=op.f('fk_victim_record_disaster_id_disaster')),
    sa.ForeignKeyConstraint(['home_lg_code'], ['organization.code'], name=op.f('fk_victim_record_home_lg_code_organization')),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_victim_record_lg_code_organization')),
    sa.ForeignKeyConstraint(['wide_area_lg_code'], ['organization.code'], name=op.f('fk_victim_record_wide_area_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_victim_record')),
    sa.UniqueConstraint('lg_code', 'disaster_id', 'import_key', name=op.f('uq_victim_record_lg_code_disaster_id_import_key'))
    )
    with op.batch_alter_table('victim_record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_victim_record_current_lg_code'), ['current_lg_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_victim_record_current_pref_code'), ['current_pref_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_victim_record_disaster_id'), ['disaster_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_victim_record_home_lg_code'), ['home_lg_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_victim_record_home_pref_code'), ['home_pref_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_victim_record_resident_subject_id'), ['resident_subject_id'], unique=False)

    rls.enable_on(op.get_bind(), TENANT_TABLES)


def downgrade() -> None:
    rls.disable_on(op.get_bind(), TENANT_TABLES)
    with op.batch_alter_table('victim_record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_victim_record_resident_subject_id'))
        batch_op.drop_index(batch_op.f('ix_victim_record_home_pref_code'))
        batch_op.drop_index(batch_op.f('ix_victim_record_home_lg_code'))
        batch_op.drop_index(batch_op.f('ix_victim_record_disaster_id'))
        batch_op.drop_index(batch_op.f('ix_victim_record_current_pref_code'))
        batch_op.drop_index(batch_op.f('ix_victim_record_current_lg_code'))

    op.drop_table('victim_record')
    with op.batch_alter_table('shelter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shelter_disaster_id'))

    op.drop_table('shelter')
    op.drop_table('roster_import')
    with op.batch_alter_table('match_decision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_match_decision_record_b_id'))
        batch_op.drop_index(batch_op.f('ix_match_decision_record_a_id'))
        batch_op.drop_index(batch_op.f('ix_match_decision_disaster_id'))

    op.drop_table('match_decision')
    with op.batch_alter_table('disaster_area', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_disaster_area_municipality_code'))

    op.drop_table('disaster_area')
    op.drop_table('disaster')
