"""負担金: a schedule replacing another (差替), statement numbers, due dates, fixed shares, usage entries.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
