"""意見照会 (modules/opinions, issue #13 item 8): consultations on a draft (the ministry's),
comments on its sections (each commenting body's), and the ministry's classification and answers.
Every table is tenant-owned, with row-level security.

Revision ID: 0031
Revises: 0030
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls

revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None


TENANT_TABLES = ['opinion_consultation', 'opinion_comment', 'opinion_answer', 'opinion_review']


def _owner(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f(f'fk_{table}_lg_code_organization'))


def upgrade() -> None:
    op.create_table('opinion_consultation',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('sections', sa.JSON(), nullable=False),
    sa.Column('opens_on', sa.Date(), nullable=False),
    sa.Column('closes_on', sa.Date(), nullable=False),
    sa.Column('target_kind', sa.String(length=20), nullable=False),
    sa.Column('publish_names', sa.Boolean(), nullable=False),
    sa.Column('announced_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('published_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    _owner('opinion_consultation'),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_opinion_consultation'))
    )
    op.create_table('opinion_comment',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('consultation_lg_code', sa.String(length=6), nullable=False),
    sa.Column('consultation_id', sa.String(length=36), nullable=False),
    sa.Column('section_key', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('proposal', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('submitted_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    _owner('opinion_comment'),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_opinion_comment'))
    )
    with op.batch_alter_table('opinion_comment', schema=None) as batch_op:
        batch_op.create_index('ix_opinion_comment_consultation', ['consultation_lg_code', 'consultation_id'], unique=False)

    op.create_table('opinion_answer',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('consultation_id', sa.String(length=36), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    _owner('opinion_answer'),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_opinion_answer'))
    )
    with op.batch_alter_table('opinion_answer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_opinion_answer_consultation_id'), ['consultation_id'], unique=False)

    op.create_table('opinion_review',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('comment_lg_code', sa.String(length=6), nullable=False),
    sa.Column('comment_id', sa.String(length=36), nullable=False),
    sa.Column('consultation_id', sa.String(length=36), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('answer_id', sa.String(length=36), nullable=True),
    sa.Column('reviewed_by', sa.String(length=200), nullable=False),
    sa.Column('reviewed_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    _owner('opinion_review'),
    sa.PrimaryKeyConstraint('lg_code', 'comment_lg_code', 'comment_id', name=op.f('pk_opinion_review'))
    )
    with op.batch_alter_table('opinion_review', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_opinion_review_consultation_id'), ['consultation_id'], unique=False)

    rls.enable_on(op.get_bind(), TENANT_TABLES)


def downgrade() -> None:
    rls.disable_on(op.get_bind(), TENANT_TABLES)
    for table in reversed(TENANT_TABLES):
        op.drop_table(table)
