"""共通化の進め方 (modules/governance, issue #15): needs and endorsements (tenant-owned, with
row-level security), groups, candidates, council, decisions and rollout plans (national, public).

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


TENANT_TABLES = ['governance_need', 'governance_endorsement', 'governance_study_answer']
TABLES = ['governance_candidate', 'governance_comment', 'governance_council_member', 'governance_decision',
          'governance_group_member', 'governance_meeting', 'governance_need_group', 'governance_rollout_plan',
          'governance_study_task', 'governance_study_question', *TENANT_TABLES]


def upgrade() -> None:
    op.create_table('governance_candidate',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('group_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('domain', sa.String(length=60), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('proposed_pattern', sa.String(length=20), nullable=False),
    sa.Column('common_annual_cost', sa.BigInteger(), nullable=True),
    sa.Column('common_cost_source', sa.String(length=300), nullable=False),
    sa.Column('hours_reduction_percent', sa.Integer(), nullable=True),
    sa.Column('hours_reduction_source', sa.String(length=300), nullable=False),
    sa.Column('catalog_service_id', sa.String(length=60), nullable=True),
    sa.Column('feasibility_law', sa.Text(), nullable=False),
    sa.Column('feasibility_spec', sa.Text(), nullable=False),
    sa.Column('feasibility_vendors', sa.Text(), nullable=False),
    sa.Column('perspective_1', sa.Boolean(), nullable=False),
    sa.Column('perspective_1_evidence', sa.Text(), nullable=False),
    sa.Column('perspective_2', sa.Boolean(), nullable=False),
    sa.Column('perspective_2_evidence', sa.Text(), nullable=False),
    sa.Column('perspective_3', sa.Boolean(), nullable=False),
    sa.Column('perspective_3_evidence', sa.Text(), nullable=False),
    sa.Column('judgement', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_governance_candidate')),
    sa.UniqueConstraint('group_id', name=op.f('uq_governance_candidate_group_id'))
    )
    op.create_table('governance_comment',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('meeting_id', sa.String(length=36), nullable=False),
    sa.Column('candidate_id', sa.String(length=36), nullable=True),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('body_code', sa.String(length=6), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_governance_comment'))
    )
    with op.batch_alter_table('governance_comment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_governance_comment_meeting_id'), ['meeting_id'], unique=False)

    op.create_table('governance_council_member',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('body', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('org_code', sa.String(length=6), nullable=True),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_governance_council_member'))
    )
    op.create_table('governance_decision',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('meeting_id', sa.String(length=36), nullable=False),
    sa.Column('candidate_id', sa.String(length=36), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('service_id', sa.String(length=60), nullable=True),
    sa.Column('pattern', sa.String(length=20), nullable=True),
    sa.Column('burden_category', sa.String(length=20), nullable=True),
    sa.Column('lifecycle', sa.String(length=20), nullable=True),
    sa.Column('decided_by', sa.String(length=200), nullable=False),
    sa.Column('decided_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_governance_decision')),
    sa.UniqueConstraint('meeting_id', 'candidate_id', name=op.f('uq_governance_decision_meeting_id_candidate_id'))
    )
    with op.batch_alter_table('governance_decision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_governance_decision_candidate_id'), ['candidate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_governance_decision_meeting_id'), ['meeting_id'], unique=False)

    op.create_table('governance_group_member',
    sa.Column('need_lg_code', sa.String(length=6), nullable=False),
    sa.Column('need_id', sa.String(length=36), nullable=False),
    sa.Column('group_id', sa.String(length=36), nullable=False),
    sa.Column('pinned', sa.Boolean(), nullable=False),
    sa.Column('similarity', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('need_lg_code', 'need_id', name=op.f('pk_governance_group_member'))
    )
    with op.batch_alter_table('governance_group_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_governance_group_member_group_id'), ['group_id'], unique=False)

    op.create_table('governance_meeting',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('held_on', sa.Date(), nullable=False),
    sa.Column('agenda', sa.JSON(), nullable=False),
    sa.Column('documents', sa.JSON(), nullable=False),
    sa.Column('minutes', sa.Text(), nullable=False),
    sa.Column('minutes_published_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_governance_meeting'))
    )
    op.create_table('governance_need_group',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('merged_into', sa.String(length=36), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_governance_need_group'))
    )
    op.create_table('governance_rollout_plan',
    sa.Column('service_id', sa.String(length=60), nullable=False),
    sa.Column('candidate_id', sa.String(length=36), nullable=False),
    sa.Column('pilot_fy', sa.Integer(), nullable=False),
    sa.Column('rollout_fy', sa.Integer(), nullable=False),
    sa.Column('national_fy', sa.Integer(), nullable=False),
    sa.Column('annual_cost', sa.BigInteger(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('service_id', name=op.f('pk_governance_rollout_plan'))
    )
    op.create_table('governance_study_task',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('candidate_id', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.Column('document_title', sa.String(length=200), nullable=False),
    sa.Column('document_url', sa.String(length=500), nullable=False),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_governance_study_task'))
    )
    with op.batch_alter_table('governance_study_task', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_governance_study_task_candidate_id'), ['candidate_id'], unique=False)

    op.create_table('governance_endorsement',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('need_lg_code', sa.String(length=6), nullable=False),
    sa.Column('need_id', sa.String(length=36), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('hours_per_year', sa.Integer(), nullable=True),
    sa.Column('annual_cost', sa.BigInteger(), nullable=True),
    sa.Column('current_system', sa.String(length=200), nullable=False),
    sa.Column('vendor', sa.String(length=200), nullable=False),
    sa.Column('renewal_on', sa.Date(), nullable=True),
    sa.Column('volume', sa.Integer(), nullable=True),
    sa.Column('confidential', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_governance_endorsement_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'need_lg_code', 'need_id', name=op.f('pk_governance_endorsement'))
    )
    op.create_table('governance_need',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('task', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('problems', sa.Text(), nullable=False),
    sa.Column('hours_per_year', sa.Integer(), nullable=True),
    sa.Column('annual_cost', sa.BigInteger(), nullable=True),
    sa.Column('current_system', sa.String(length=200), nullable=False),
    sa.Column('vendor', sa.String(length=200), nullable=False),
    sa.Column('renewal_on', sa.Date(), nullable=True),
    sa.Column('volume', sa.Integer(), nullable=True),
    sa.Column('confidential', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_governance_need_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_governance_need'))
    )
    op.create_table('governance_study_question',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('candidate_id', sa.String(length=36), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_governance_study_question'))
    )
    with op.batch_alter_table('governance_study_question', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_governance_study_question_candidate_id'), ['candidate_id'], unique=False)

    op.create_table('governance_study_answer',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('question_id', sa.String(length=36), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('answered_by', sa.String(length=200), nullable=False),
    sa.Column('answered_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_governance_study_answer_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'question_id', name=op.f('pk_governance_study_answer'))
    )

    rls.enable_on(op.get_bind(), TENANT_TABLES)


def downgrade() -> None:
    rls.disable_on(op.get_bind(), TENANT_TABLES)
    for table in reversed(TABLES):
        op.drop_table(table)
