"""Base registry of organisations (local governments, designated-city wards, national bodies).

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('organization',
    sa.Column('code', sa.String(length=6), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kana', sa.String(length=200), nullable=True),
    sa.Column('type', sa.String(length=10), nullable=False),
    sa.Column('prefecture_number', sa.String(length=2), nullable=True),
    sa.Column('prefecture_name', sa.String(length=10), nullable=True),
    sa.Column('parent_code', sa.String(length=6), nullable=True),
    sa.Column('population', sa.Integer(), nullable=True),
    sa.Column('households', sa.Integer(), nullable=True),
    sa.Column('population_source', sa.String(length=60), nullable=True),
    sa.Column('area_km2', sa.Float(), nullable=True),
    sa.Column('habitable_area_km2', sa.Float(), nullable=True),
    sa.Column('search_key', sa.String(length=400), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.Column('retired_on', sa.Date(), nullable=True),
    sa.Column('successor_code', sa.String(length=6), nullable=True),
    sa.Column('retirement_reason', sa.String(length=200), nullable=True),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['parent_code'], ['organization.code'], name=op.f('fk_organization_parent_code_organization')),
    sa.ForeignKeyConstraint(['successor_code'], ['organization.code'], name=op.f('fk_organization_successor_code_organization')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_organization'))
    )
    with op.batch_alter_table('organization', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_organization_parent_code'), ['parent_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_organization_prefecture_number'), ['prefecture_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_organization_type'), ['type'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('organization', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_organization_type'))
        batch_op.drop_index(batch_op.f('ix_organization_prefecture_number'))
        batch_op.drop_index(batch_op.f('ix_organization_parent_code'))
    op.drop_table('organization')
