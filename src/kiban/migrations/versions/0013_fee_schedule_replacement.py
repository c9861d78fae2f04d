"""負担金: a schedule replacing another (差替), statement numbers, due dates, fixed shares, usage entries.

Fixed shares need no column: they are part of the method as submitted (``fee_schedule.method``).
Schedules decided before this revision get numbers in the order they were decided; where one
system and fiscal year already had several, the latest stays in force and each earlier one (and
its statements) is marked replaced by the next, so the one-in-force index can be built.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

MIGRATION_REASON = '差替の記録より前に同じ年度・システムで再度決定されたもの（移行時に記録）'


def upgrade() -> None:
    with op.batch_alter_table('fee_schedule', schema=None) as batch_op:
        batch_op.add_column(sa.Column('number', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('issuer', sa.String(length=300), server_default='', nullable=False))
        batch_op.add_column(sa.Column('due_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('replaces_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('replacement_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('replaced_by_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('replaced_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('fee_statement', schema=None) as batch_op:
        batch_op.add_column(sa.Column('document_no', sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column('issuer', sa.String(length=300), server_default='', nullable=False))
        batch_op.add_column(sa.Column('due_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('cancelled_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('replaced_by_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('cancel_reason', sa.Text(), nullable=True))

    _number_and_settle_existing_schedules()

    with op.batch_alter_table('fee_schedule', schema=None) as batch_op:
        batch_op.create_index('uq_fee_schedule_in_force', ['lg_code', 'consortium_id', 'service_id', 'fiscal_year'],
                              unique=True, sqlite_where=sa.text('replaced_by_id IS NULL'),
                              postgresql_where=sa.text('replaced_by_id IS NULL'))
        batch_op.create_index('uq_fee_schedule_number', ['lg_code', 'number'], unique=True)

    op.create_table('fee_usage',
    sa.Column('consortium_id', sa.String(length=60), nullable=False),
    sa.Column('service_id', sa.String(length=60), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('member_code', sa.String(length=6), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id', 'member_code'], ['consortium_member.consortium_id', 'consortium_member.member_code'], name=op.f('fk_fee_usage_consortium_id_member_code_consortium_member')),
    sa.PrimaryKeyConstraint('consortium_id', 'service_id', 'fiscal_year', 'member_code', name=op.f('pk_fee_usage'))
    )


def _number_and_settle_existing_schedules() -> None:
    """Runs as the table owner (row-level security does not apply to it)."""
    connection = op.get_bind()
    rows = connection.execute(sa.text(
        'SELECT lg_code, id, consortium_id, service_id, fiscal_year, created_at FROM fee_schedule '
        'ORDER BY lg_code, fiscal_year, created_at, id')).all()
    sequence: dict[tuple[str, int], int] = {}
    for lg_code, schedule_id, _consortium_id, _service_id, fiscal_year, _created_at in rows:
        key = (lg_code, fiscal_year)
        sequence[key] = sequence.get(key, 0) + 1
        number = f'{fiscal_year}-{sequence[key]:03d}'
        connection.execute(sa.text('UPDATE fee_schedule SET number = :number WHERE lg_code = :lg AND id = :id'),
                           {'number': number, 'lg': lg_code, 'id': schedule_id})
        connection.execute(sa.text("UPDATE fee_statement SET document_no = :number || '-' || lg_code "
                                   'WHERE schedule_id = :id'), {'number': number, 'id': schedule_id})
    groups: dict[tuple, list[str]] = {}
    decided_at = {}
    for lg_code, schedule_id, consortium_id, service_id, fiscal_year, created_at in rows:
        decided_at[schedule_id] = created_at
        groups.setdefault((lg_code, consortium_id, service_id, fiscal_year), []).append(schedule_id)
    for (lg_code, *_rest), ids in groups.items():
        for old, new in zip(ids, ids[1:]):  # each replaced by the next, as the app records it
            connection.execute(sa.text(
                'UPDATE fee_schedule SET replaced_by_id = :new, replaced_at = :at '
                'WHERE lg_code = :lg AND id = :old'), {'new': new, 'at': decided_at[new], 'lg': lg_code, 'old': old})
            connection.execute(sa.text(
                'UPDATE fee_schedule SET replaces_id = :old, replacement_reason = :reason '
                'WHERE lg_code = :lg AND id = :new'), {'old': old, 'new': new, 'lg': lg_code, 'reason': MIGRATION_REASON})
            connection.execute(sa.text(
                'UPDATE fee_statement SET replaced_by_id = :new, cancelled_at = :at, cancel_reason = :reason '
                'WHERE schedule_id = :old'), {'new': new, 'at': decided_at[new], 'old': old, 'reason': MIGRATION_REASON})


def downgrade() -> None:
    op.drop_table('fee_usage')
    with op.batch_alter_table('fee_schedule', schema=None) as batch_op:
        batch_op.drop_index('uq_fee_schedule_number')
        batch_op.drop_index('uq_fee_schedule_in_force')
    with op.batch_alter_table('fee_statement', schema=None) as batch_op:
        batch_op.drop_column('cancel_reason')
        batch_op.drop_column('replaced_by_id')
        batch_op.drop_column('cancelled_at')
        batch_op.drop_column('due_on')
        batch_op.drop_column('issuer')
        batch_op.drop_column('document_no')
    with op.batch_alter_table('fee_schedule', schema=None) as batch_op:
        batch_op.drop_column('replaced_at')
        batch_op.drop_column('replaced_by_id')
        batch_op.drop_column('replacement_reason')
        batch_op.drop_column('replaces_id')
        batch_op.drop_column('due_on')
        batch_op.drop_column('issuer')
        batch_op.drop_column('number')
