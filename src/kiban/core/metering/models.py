"""Metering tables (see ``kiban.core.metering.service`` for the design).

``usage_counter``: per tenant, catalog service, event and month (JST), a few shard rows whose
sum is the month's count. ``usage_event_key``: one row per keyed event, so that a retried event
with the same key counts once. Both are tenant-owned (``TenantScoped``; RLS on PostgreSQL).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime


class UsageCounter(TenantScoped, Base):
    """One shard of one month's count. Read ``SUM(total)`` over the shards."""

    __tablename__ = "usage_counter"
    __table_args__ = (
        Index("ix_usage_counter_service_month", "service_id", "month", "lg_code"),
    )

    service_id: Mapped[str] = mapped_column(String(60), primary_key=True)
    event: Mapped[str] = mapped_column(String(40), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)  # first day of the month (JST)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UsageEventKey(TenantScoped, Base):
    """A keyed event already counted (the idempotency record)."""

    __tablename__ = "usage_event_key"
    __table_args__ = (
        Index("ix_usage_event_key_month", "lg_code", "month"),
    )

    service_id: Mapped[str] = mapped_column(String(60), primary_key=True)
    event: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    month: Mapped[date] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(Integer)
    counted_at: Mapped[datetime] = mapped_column(UTCDateTime())
