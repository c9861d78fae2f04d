"""施設予約の記録. Every table is tenant-owned (``lg_code`` leads every key).

A slot is (room, start); its length is the facility's ``slot_minutes``. That a slot is never
booked twice is held by the database, not by a read-then-write check: the partial unique index
``uq_booking_active_slot`` admits one *active* booking per (lg_code, room, start), so two
requests committing at the same moment cannot both win, and a cancelled booking frees the slot
again (PostgreSQL and SQLite both have partial indexes)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime

ACTIVE, CANCELLED = "active", "cancelled"


class Facility(TenantScoped, Base):
    """体育館, 会議室, グラウンド ...: the rules every room in it is booked by.

    ``opening_hours`` maps a weekday ("0" = Monday … "6" = Sunday, Japan time) to
    ``["09:00", "21:00"]``; a weekday that is missing is closed. ``eligibility`` says who may
    book: ``residents`` (registered 市内在住・在勤 users and groups), ``groups`` (registered
    groups only) or ``anyone`` (every registered user)."""

    __tablename__ = "facility"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    eligibility: Mapped[str] = mapped_column(String(20))
    slot_minutes: Mapped[int] = mapped_column(Integer)
    opening_hours: Mapped[dict] = mapped_column(JSON)
    booking_window_days: Mapped[int] = mapped_column(Integer)
    cancel_deadline_hours: Mapped[int] = mapped_column(Integer)
    max_active_per_person: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # 廃止 (deleted): kept for its bookings


class Room(TenantScoped, Base):
    """A room or area of a facility (第1会議室, アリーナ全面 ...) with its fee per slot.

    ``closed_at``: 受付停止 — no new bookings or lotteries, the bookings it has stand and can be
    used and cancelled. ``removed_at``: 削除 — gone from every screen except the records of its
    past bookings (which keep their room name through this row); only a room without future
    bookings can be removed."""

    __tablename__ = "facility_room"
    __table_args__ = (Index("ix_facility_room_facility", "lg_code", "facility_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    facility_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(100))
    capacity: Mapped[int | None] = mapped_column(Integer)
    fee_yen: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Booker(TenantScoped, Base):
    """利用者登録: a resident signed in with the card who uses this municipality's facilities.

    ``kind``: ``resident`` (市内在住・在勤, declared), ``group`` (a group registered with the
    municipality: ``pending`` until staff approve it) or ``other``. ``email`` is where
    confirmations go. ``feed_version`` is part of the secret calendar URL; raising it revokes
    the old URL."""

    __tablename__ = "facility_booker"

    principal_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    group_name: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(20))
    approved_by: Mapped[str | None] = mapped_column(String(200))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    feed_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Booking(TenantScoped, Base):
    """One booked slot. ``status`` is ``active`` or ``cancelled``; only active ones hold it."""

    __tablename__ = "facility_booking"
    __table_args__ = (
        Index("uq_booking_active_slot", "lg_code", "room_id", "starts_at", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
        Index("ix_facility_booking_person", "lg_code", "principal_id", "status"),
        Index("ix_facility_booking_facility_start", "lg_code", "facility_id", "starts_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    facility_id: Mapped[str] = mapped_column(String(36))
    room_id: Mapped[str] = mapped_column(String(36))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    principal_id: Mapped[str] = mapped_column(String(36))
    booker_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=ACTIVE)
    fee_yen: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20), default="direct")  # direct | lottery
    lottery_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_by: Mapped[str | None] = mapped_column(String(200))


class Lottery(TenantScoped, Base):
    """抽選: chosen slots of one facility, applied for until ``closes_at``, then drawn.

    ``seed`` is fixed and audited when staff start the draw (before any result exists); with it
    and the applications anyone can re-run ``lottery.draw`` and get the same winners."""

    __tablename__ = "facility_lottery"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    facility_id: Mapped[str] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(200))
    slots: Mapped[list] = mapped_column(JSON)  # [{"room_id": ..., "starts_at": ISO-8601 UTC}]
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20))  # open | drawing | drawn
    seed: Mapped[str | None] = mapped_column(String(64))
    applicants: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[list | None] = mapped_column(JSON)  # [{"room_id", "starts_at", "entries", "winner_entry"}]
    job_id: Mapped[str | None] = mapped_column(String(36))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    drawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LotteryEntry(TenantScoped, Base):
    """A resident's application for one slot of a lottery: ``applied``, then ``won`` or ``lost``."""

    __tablename__ = "facility_lottery_entry"
    __table_args__ = (
        UniqueConstraint("lg_code", "lottery_id", "principal_id", "room_id", "starts_at",
                         name="uq_facility_lottery_entry_once"),
        Index("ix_facility_lottery_entry_lottery", "lg_code", "lottery_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    lottery_id: Mapped[str] = mapped_column(String(36))
    principal_id: Mapped[str] = mapped_column(String(36))
    room_id: Mapped[str] = mapped_column(String(36))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20), default="applied")
    booking_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
