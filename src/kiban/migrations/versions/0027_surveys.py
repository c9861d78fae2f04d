"""調査・照会 (modules/surveys, issue #13).

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None

TENANT_TABLES = ['survey', 'survey_version', 'survey_response', 'survey_response_event', 'survey_value']


def _lg_code(table: str) -> list:
    return [sa.Column('lg_code', sa.String(length=6), nullable=False),
            sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f(f'fk_{table}_lg_code_organization'))]


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, kiban.kit.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table('survey',
    *_lg_code('survey'),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('relayed', sa.Boolean(), nullable=False),
    sa.Column('deadline', sa.String(length=10), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('target', sa.JSON(), nullable=False),
    sa.Column('target_codes', sa.JSON(), nullable=False),
    sa.Column('sent_version', sa.Integer(), nullable=False),
    _time('sent_at', True),
    _time('published_at', True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    _time('created_at'),
    _time('updated_at'),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_survey'))
    )
    op.create_table('survey_version',
    *_lg_code('survey_version'),
    sa.Column('survey_id', sa.String(length=36), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('deadline', sa.String(length=10), nullable=False),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('sent_by', sa.String(length=200), nullable=False),
    _time('sent_at'),
    sa.PrimaryKeyConstraint('lg_code', 'survey_id', 'number', name=op.f('pk_survey_version'))
    )
    op.create_table('survey_response',
    *_lg_code('survey_response'),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('survey_lg_code', sa.String(length=6), nullable=False),
    sa.Column('survey_id', sa.String(length=36), nullable=False),
    sa.Column('prefecture_code', sa.String(length=6), nullable=False),
    sa.Column('version_number', sa.Integer(), nullable=False),
    sa.Column('seen_version', sa.Integer(), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('prefill', sa.JSON(), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('contact_email', sa.String(length=254), nullable=False),
    sa.Column('certified_by', sa.String(length=200), nullable=False),
    _time('certified_at', True),
    _time('submitted_at', True),
    _time('delivered_at', True),
    sa.Column('review_comment', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    _time('updated_at'),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_survey_response'))
    )
    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.create_index('ix_survey_response_survey', ['lg_code', 'survey_lg_code', 'survey_id'], unique=False)
        batch_op.create_index('ix_survey_response_by_survey', ['survey_id', 'prefecture_code', 'status'], unique=False)
    op.create_table('survey_response_event',
    *_lg_code('survey_response_event'),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('response_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('actor_name', sa.String(length=200), nullable=False),
    _time('created_at'),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_survey_response_event'))
    )
    with op.batch_alter_table('survey_response_event', schema=None) as batch_op:
        batch_op.create_index('ix_survey_response_event_response', ['lg_code', 'response_id', 'created_at'], unique=False)
    op.create_table('survey_value',
    *_lg_code('survey_value'),
    sa.Column('survey_id', sa.String(length=36), nullable=False),
    sa.Column('respondent_code', sa.String(length=6), nullable=False),
    sa.Column('question_key', sa.String(length=20), nullable=False),
    sa.Column('row_no', sa.Integer(), nullable=False),
    sa.Column('column_key', sa.String(length=20), nullable=False),
    sa.Column('prefecture_code', sa.String(length=6), nullable=False),
    sa.Column('org_type', sa.String(length=10), nullable=False),
    sa.Column('num', sa.Float(), nullable=True),
    sa.Column('text', sa.String(length=400), nullable=False),
    sa.PrimaryKeyConstraint('lg_code', 'survey_id', 'respondent_code', 'question_key', 'row_no', 'column_key',
                            name=op.f('pk_survey_value'))
    )
    with op.batch_alter_table('survey_value', schema=None) as batch_op:
        batch_op.create_index('ix_survey_value_question', ['lg_code', 'survey_id', 'question_key', 'text'], unique=False)
    rls.enable_on(op.get_bind(), TENANT_TABLES)


def downgrade() -> None:
    rls.disable_on(op.get_bind(), TENANT_TABLES)
    with op.batch_alter_table('survey_value', schema=None) as batch_op:
        batch_op.drop_index('ix_survey_value_question')
    op.drop_table('survey_value')
    with op.batch_alter_table('survey_response_event', schema=None) as batch_op:
        batch_op.drop_index('ix_survey_response_event_response')
    op.drop_table('survey_response_event')
    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.drop_index('ix_survey_response_by_survey')
        batch_op.drop_index('ix_survey_response_survey')
    op.drop_table('survey_response')
    op.drop_table('survey_version')
    op.drop_table('survey')
