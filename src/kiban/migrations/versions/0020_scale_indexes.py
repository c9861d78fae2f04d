"""Indexes led by lg_code for national-scale data.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # PLACEHOLDER: filled in by the #11 work item that owns this revision


def downgrade() -> None:
    pass  # PLACEHOLDER
