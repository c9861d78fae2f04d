"""Durable background jobs (core/jobs): claimed with a lease, resumable after a restart; first user: chunked roster imports.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # PLACEHOLDER: filled in by the #11 work item that owns this revision


def downgrade() -> None:
    pass  # PLACEHOLDER
