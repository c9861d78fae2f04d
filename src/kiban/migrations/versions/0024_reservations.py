"""施設予約 (modules/reservations): facilities, rooms, registered users, bookings, lotteries.

The partial unique index ``uq_booking_active_slot`` is what keeps a slot from being booked
twice under concurrency (one active booking per lg_code, room and start; cancelled ones free it).

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import kiban.kit.db
from kiban.core.tenancy import rls

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

TABLES = ['facility', 'facility_room', 'facility_booker', 'facility_booking', 'facility_lottery', 'facility_lottery_entry']


def upgrade() -> None:
    op.create_table('facility',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('address', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('eligibility', sa.String(length=20), nullable=False),
    sa.Column('slot_minutes', sa.Integer(), nullable=False),
    sa.Column('opening_hours', sa.JSON(), nullable=False),
    sa.Column('booking_window_days', sa.Integer(), nullable=False),
    sa.Column('cancel_deadline_hours', sa.Integer(), nullable=False),
    sa.Column('max_active_per_person', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('retired_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_facility_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_facility'))
    )
    op.create_table('facility_booker',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('principal_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('group_name', sa.String(length=100), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('approved_by', sa.String(length=200), nullable=True),
    sa.Column('approved_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('feed_version', sa.Integer(), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_facility_booker_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'principal_id', name=op.f('pk_facility_booker'))
    )
    op.create_table('facility_booking',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('facility_id', sa.String(length=36), nullable=False),
    sa.Column('room_id', sa.String(length=36), nullable=False),
    sa.Column('starts_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('principal_id', sa.String(length=36), nullable=False),
    sa.Column('booker_name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('fee_yen', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('lottery_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('cancelled_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancelled_by', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_facility_booking_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_facility_booking'))
    )
    with op.batch_alter_table('facility_booking', schema=None) as batch_op:
        batch_op.create_index('ix_facility_booking_facility_start', ['lg_code', 'facility_id', 'starts_at'], unique=False)
        batch_op.create_index('ix_facility_booking_person', ['lg_code', 'principal_id', 'status'], unique=False)
        batch_op.create_index('uq_booking_active_slot', ['lg_code', 'room_id', 'starts_at'], unique=True, sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))

    op.create_table('facility_lottery',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('facility_id', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('slots', sa.JSON(), nullable=False),
    sa.Column('closes_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('seed', sa.String(length=64), nullable=True),
    sa.Column('applicants', sa.Integer(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('drawn_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_facility_lottery_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_facility_lottery'))
    )
    op.create_table('facility_lottery_entry',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('lottery_id', sa.String(length=36), nullable=False),
    sa.Column('principal_id', sa.String(length=36), nullable=False),
    sa.Column('room_id', sa.String(length=36), nullable=False),
    sa.Column('starts_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('booking_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_facility_lottery_entry_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_facility_lottery_entry')),
    sa.UniqueConstraint('lg_code', 'lottery_id', 'principal_id', 'room_id', 'starts_at', name='uq_facility_lottery_entry_once')
    )
    with op.batch_alter_table('facility_lottery_entry', schema=None) as batch_op:
        batch_op.create_index('ix_facility_lottery_entry_lottery', ['lg_code', 'lottery_id'], unique=False)

    op.create_table('facility_room',
    sa.Column('lg_code', sa.String(length=6), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('facility_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=True),
    sa.Column('fee_yen', sa.Integer(), nullable=False),
    sa.Column('created_at', kiban.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lg_code'], ['organization.code'], name=op.f('fk_facility_room_lg_code_organization')),
    sa.PrimaryKeyConstraint('lg_code', 'id', name=op.f('pk_facility_room'))
    )
    with op.batch_alter_table('facility_room', schema=None) as batch_op:
        batch_op.create_index('ix_facility_room_facility', ['lg_code', 'facility_id'], unique=False)

    rls.enable_on(op.get_bind(), TABLES)


def downgrade() -> None:
    rls.disable_on(op.get_bind(), TABLES)
    for table in reversed(TABLES):
        op.drop_table(table)
