"""職員: reinstating stopped staff; audit entries for sign-ins.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # audit: the administrators' log filters by period and action (plain CREATE INDEX, not a
    # batch table rebuild, which on SQLite would drop the append-only triggers).
    op.create_index('ix_audit_entry_lg_code_occurred_at', 'audit_entry', ['lg_code', 'occurred_at'], unique=False)
    op.create_index('ix_audit_entry_lg_code_action', 'audit_entry', ['lg_code', 'action'], unique=False)


def downgrade() -> None:
    # audit
    op.drop_index('ix_audit_entry_lg_code_action', table_name='audit_entry')
    op.drop_index('ix_audit_entry_lg_code_occurred_at', table_name='audit_entry')
