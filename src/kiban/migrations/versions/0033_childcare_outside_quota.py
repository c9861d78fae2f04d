"""保活: the places a facility's municipality offers to children of other municipalities
(管外受入枠, 広域利用), per age class; NULL means no separate limit (every place free is open to
them, as before).

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-01
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None

AGES = range(6)


def upgrade() -> None:
    with op.batch_alter_table('childcare_facility', schema=None) as batch_op:
        for age in AGES:
            batch_op.add_column(sa.Column(f'outside_quota_{age}', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('childcare_facility', schema=None) as batch_op:
        for age in reversed(AGES):
            batch_op.drop_column(f'outside_quota_{age}')
