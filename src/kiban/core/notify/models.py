"""Notification tables, all tenant-owned: a tenant's template overrides, the outbox of
notifications with their e-mail delivery state, and in-app notices for principals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime

QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"
STATES = (QUEUED, SENDING, SENT, FAILED)
STATE_LABELS = {QUEUED: "待機中", SENDING: "送信中", SENT: "送信済み", FAILED: "失敗"}


class TemplateOverride(TenantScoped, Base):
    """A tenant's own wording of a registered template (the template is common, the words local)."""

    __tablename__ = "notify_template_override"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(36))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Notification(TenantScoped, Base):
    """One message to one recipient, rendered when it was sent (the outbox row).

    Written in the caller's transaction, so it exists exactly when the event that caused it
    commits. ``state`` is the e-mail delivery state; a notification for an in-app notice only
    is ``sent`` at once. ``message_id`` is fixed at creation, so every SMTP attempt for this
    notification carries the same Message-ID and the same bytes (see service.py for why).
    ``claim_token``/``lease_until`` mark a batch a delivery job has taken (``sending``).
    """

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("lg_code", "dedupe_key"),
        Index("ix_notification_lg_code_state_next_attempt_at", "lg_code", "state", "next_attempt_at"),
        Index("ix_notification_lg_code_sent_at", "lg_code", "sent_at"),
        Index("ix_notification_lg_code_created_at", "lg_code", "created_at"),
        Index("ix_notification_lg_code_claim_token", "lg_code", "claim_token"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    template_key: Mapped[str] = mapped_column(String(80))
    service: Mapped[str] = mapped_column(String(80))
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    principal_id: Mapped[str | None] = mapped_column(String(36))
    recipient_name: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), default=QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(400))
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claim_token: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sending_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    @property
    def state_label(self) -> str:
        return STATE_LABELS.get(self.state, self.state)


class Notice(TenantScoped, Base):
    """An in-app notice for a principal (a resident), listed under /me/notices."""

    __tablename__ = "notify_notice"
    __table_args__ = (
        Index("ix_notify_notice_principal_id_created_at", "principal_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    notification_id: Mapped[str] = mapped_column(String(36))
    principal_id: Mapped[str] = mapped_column(ForeignKey("principal.id"))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
