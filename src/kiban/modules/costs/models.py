"""Saved allocations. A consortium's secretariat decides a fee schedule (tenant-owned by the
secretariat); each member receives its own 負担金算定書 (tenant-owned by the member), so a member
sees its own fee and nobody else's statement."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime


class FeeSchedule(TenantScoped, Base):
    """負担金の算定: inputs (amount, method, members with the populations used) and every
    member's fee with its explanation, as decided. ``lg_code`` is the secretariat."""

    __tablename__ = "fee_schedule"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    consortium_id: Mapped[str] = mapped_column(String(60), index=True)
    service_id: Mapped[str] = mapped_column(String(60))
    fiscal_year: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    subsidy_rate: Mapped[str] = mapped_column(String(20))
    subsidy: Mapped[int] = mapped_column(BigInteger)
    allocated: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[dict] = mapped_column(JSON)  # the MethodSpec as submitted
    method_label: Mapped[str] = mapped_column(String(200))
    lines: Mapped[list] = mapped_column(JSON)  # [{code, name, population, fee, percent, explanation}]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FeeStatement(TenantScoped, Base):
    """負担金算定書: one member's copy of a schedule (``lg_code`` is the member)."""

    __tablename__ = "fee_statement"

    schedule_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    secretariat_code: Mapped[str] = mapped_column(String(6))
    consortium_name: Mapped[str] = mapped_column(String(200))
    service_name: Mapped[str] = mapped_column(String(200))
    fiscal_year: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    subsidy: Mapped[int] = mapped_column(BigInteger)
    allocated: Mapped[int] = mapped_column(BigInteger)
    method_label: Mapped[str] = mapped_column(String(200))
    member_count: Mapped[int] = mapped_column(Integer)
    member_name: Mapped[str] = mapped_column(String(100))
    population: Mapped[int | None] = mapped_column(Integer)
    fee: Mapped[int] = mapped_column(BigInteger)
    percent: Mapped[str] = mapped_column(String(20))
    explanation: Mapped[str] = mapped_column(Text)
    issued_by: Mapped[str] = mapped_column(String(200))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
