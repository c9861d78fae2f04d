"""The job table: one row per durable background job, owned by the tenant it works for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATES = (QUEUED, RUNNING, DONE, FAILED)
STATE_LABELS = {QUEUED: "待機中", RUNNING: "実行中", DONE: "完了", FAILED: "失敗"}


class Job(TenantScoped, Base):
    """A unit of background work of a registered ``kind``, run in chunks by whichever server
    process claims it. Tenant-owned: its payload may hold the tenant's personal data (names to
    register, recipients), so the safety net and row-level security cover it like any other
    tenant table; only the runner's claim looks across tenants (a named ``unscoped``).

    ``cursor`` is where the next chunk starts; it is written in the same transaction as the
    chunk's work, so a job taken up again after a crash continues where the last committed
    chunk ended. ``claimed_by`` holds the claim's token and ``lease_until`` when the claim
    lapses if the worker stops renewing it (every chunk renews it).
    """

    __tablename__ = "job"
    __table_args__ = (
        # an idempotent enqueue (an outbox event, "once per import"): the same key gives the same job
        UniqueConstraint("lg_code", "kind", "dedupe_key"),
        Index("ix_job_state_run_after", "state", "run_after"),
        Index("ix_job_lg_code_target_type_target_id", "lg_code", "target_type", "target_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(20), default=QUEUED)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cursor: Mapped[Any | None] = mapped_column(JSON)
    result: Mapped[Any | None] = mapped_column(JSON)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    target_type: Mapped[str | None] = mapped_column(String(60))
    target_id: Mapped[str | None] = mapped_column(String(36))
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(String(400), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)  # for operators (logs say more); screens show ``message``
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    @property
    def state_label(self) -> str:
        return STATE_LABELS.get(self.state, self.state)

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED)
