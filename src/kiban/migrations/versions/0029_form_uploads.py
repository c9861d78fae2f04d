"""電子申請 attachments (modules/forms): the files residents attach to a submission.

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('form_upload',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('form_id', sa.String(length=36), nullable=False),
    sa.Column('field_key', sa.String(length=10), nullable=False),
    sa.Column('submission_id', sa.String(length=36), nullable=True),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('media_type', sa.String(length=60), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_form_upload_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_form_upload'))
    )
    with op.batch_alter_table('form_upload', schema=None) as batch_op:
        batch_op.create_index('ix_form_upload_submission', ['lg_code', 'submission_id'], unique=False)
        batch_op.create_index('ix_form_upload_unclaimed', ['lg_code', 'created_at'], unique=False)
    rls.enable_on(op.get_bind(), ['form_upload'])


def downgrade() -> None:
    rls.disable_on(op.get_bind(), ['form_upload'])
    with op.batch_alter_table('form_upload', schema=None) as batch_op:
        batch_op.drop_index('ix_form_upload_unclaimed')
        batch_op.drop_index('ix_form_upload_submission')
    op.drop_table('form_upload')
