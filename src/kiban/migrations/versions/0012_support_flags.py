"""被災者台帳: やむを得ず解体 and 長期避難 flags for the 被災者生活再建支援金 estimate.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('victim_record', schema=None) as batch_op:
        batch_op.add_column(sa.Column('demolished', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('long_term_evacuation', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('victim_record', schema=None) as batch_op:
        batch_op.drop_column('long_term_evacuation')
        batch_op.drop_column('demolished')
