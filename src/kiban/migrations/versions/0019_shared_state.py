"""State shared across server processes: rate-limit counters and cache generations.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # PLACEHOLDER: filled in by the #11 work item that owns this revision


def downgrade() -> None:
    pass  # PLACEHOLDER
