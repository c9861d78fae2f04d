"""Saved allocations. A consortium's secretariat decides a fee schedule (tenant-owned by the
secretariat); each member receives its own 負担金算定書 (tenant-owned by the member), so a member
sees its own fee and nobody else's statement."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, ForeignKeyConstraint, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime


class FeeSchedule(TenantScoped, Base):
    """負担金の算定: inputs (amount, method, members with the populations used) and every
    member's fee with its explanation, as decided. ``lg_code`` is the secretariat.

    At most one schedule per system and fiscal year is in force (``replaced_by_id`` is null; a
    partial unique index holds it even under concurrent decisions). A later one must say that it
    replaces it (差替) and why; the replaced one keeps its rows, marked, and its statements are
    marked 取消."""

    __tablename__ = "fee_schedule"
    __table_args__ = (
        Index("uq_fee_schedule_in_force", "lg_code", "consortium_id", "service_id", "fiscal_year", unique=True,
              sqlite_where=text("replaced_by_id IS NULL"), postgresql_where=text("replaced_by_id IS NULL")),
        Index("uq_fee_schedule_number", "lg_code", "number", unique=True),
    )

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
    number: Mapped[str | None] = mapped_column(String(40))  # 文書番号 base: "2026-001"
    issuer: Mapped[str] = mapped_column(String(300), default="")
    due_on: Mapped[date | None] = mapped_column(Date)  # 納付期限
    replaces_id: Mapped[str | None] = mapped_column(String(36))
    replacement_reason: Mapped[str | None] = mapped_column(Text)
    replaced_by_id: Mapped[str | None] = mapped_column(String(36))
    replaced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def in_force(self) -> bool:
        return self.replaced_by_id is None


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
    document_no: Mapped[str | None] = mapped_column(String(60))  # 文書番号
    issuer: Mapped[str] = mapped_column(String(300), default="")
    due_on: Mapped[date | None] = mapped_column(Date)  # 納付期限
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # 取消 (replaced)
    replaced_by_id: Mapped[str | None] = mapped_column(String(36))  # the schedule now in force
    cancel_reason: Mapped[str | None] = mapped_column(Text)

    @property
    def in_force(self) -> bool:
        return self.cancelled_at is None


class FeeUsage(Base):
    """利用量: units a member used of a shared system in a fiscal year, entered by the
    consortium's secretariat for 利用量割. Consortium data like the list of a system's users
    (``consortium_system_user``), not one tenant's: only the secretariat's pages read or write it."""

    __tablename__ = "fee_usage"
    __table_args__ = (
        ForeignKeyConstraint(["consortium_id", "member_code"],
                             ["consortium_member.consortium_id", "consortium_member.member_code"]),
    )

    consortium_id: Mapped[str] = mapped_column(String(60), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(60), primary_key=True)
    fiscal_year: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    units: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
