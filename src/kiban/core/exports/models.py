"""An export file and its parts: built chunk by chunk by a job, kept for a week, handed only to
the staff member who asked for it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKeyConstraint, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime

BUILDING, READY, FAILED = "building", "ready", "failed"
STATE_LABELS = {BUILDING: "作成中", READY: "受け取れます", FAILED: "作成できませんでした"}


class ExportFile(TenantScoped, Base):
    """One requested export. Tenant-owned (it holds the tenant's data, often personal data);
    ``requested_by`` is the principal who asked: only they receive it."""

    __tablename__ = "export_file"
    __table_args__ = (Index("ix_export_file_lg_code_requested_by_created_at", "lg_code", "requested_by", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    exporter: Mapped[str] = mapped_column(String(80))
    title: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(120))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20))
    rows: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    parts: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(String(400))
    requested_by: Mapped[str] = mapped_column(String(80))  # a principal's id, or apikey:<key id>
    requested_by_label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))

    @property
    def state_label(self) -> str:
        return STATE_LABELS.get(self.state, "（不明）")


class ExportPart(TenantScoped, Base):
    """The bytes one chunk of the job wrote, in order (``seq`` from 0). The download streams them."""

    __tablename__ = "export_part"
    __table_args__ = (ForeignKeyConstraint(["lg_code", "export_id"], ["export_file.lg_code", "export_file.id"],
                                           ondelete="CASCADE"),)

    export_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
