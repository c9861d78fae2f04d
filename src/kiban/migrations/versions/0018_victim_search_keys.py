"""Normalised search keys on victim records (kana folded, 異体字 folded), written at registration, for paging and searching in SQL.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # PLACEHOLDER: filled in by the #11 work item that owns this revision


def downgrade() -> None:
    pass  # PLACEHOLDER
