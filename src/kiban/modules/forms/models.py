"""電子申請: a form (the draft staff edit), its published versions (frozen; what residents
answer), submissions (each on the version it was made on), and the inbox's events (status
changes, assignments, internal comments and messages to the applicant)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime


class SubmissionStatus(enum.StrEnum):
    received = "received"
    reviewing = "reviewing"
    completed = "completed"
    returned = "returned"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]


STATUS_LABELS = {SubmissionStatus.received: "受付", SubmissionStatus.reviewing: "審査中",
                 SubmissionStatus.completed: "完了", SubmissionStatus.returned: "差戻し"}

# 受付 → 審査中 → 完了 / 差戻し; a returned application may be taken up again once corrected.
TRANSITIONS: dict[SubmissionStatus, tuple[SubmissionStatus, ...]] = {
    SubmissionStatus.received: (SubmissionStatus.reviewing, SubmissionStatus.returned),
    SubmissionStatus.reviewing: (SubmissionStatus.completed, SubmissionStatus.returned),
    SubmissionStatus.returned: (SubmissionStatus.reviewing,),
    SubmissionStatus.completed: (),
}


class Form(TenantScoped, Base):
    """The form staff edit (``fields`` is the draft). ``published_version`` is the newest
    published version's number (0: never published); the public URL ``/f/{lg_code}/{slug}``
    always serves that version."""

    __tablename__ = "form"
    __table_args__ = (UniqueConstraint("lg_code", "slug"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    slug: Mapped[str] = mapped_column(String(60))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    contact: Mapped[str] = mapped_column(String(400), default="")
    fields: Mapped[list] = mapped_column(JSON, default=list)
    identity_required: Mapped[bool] = mapped_column(Boolean, default=False)
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    published_version: Mapped[int] = mapped_column(Integer, default=0)
    # Shared as a template (共通化): others may copy the published version in one step.
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    shared_summary: Mapped[str] = mapped_column(String(400), default="")
    copied_from: Mapped[str] = mapped_column(String(120), default="")  # 「豊田市「粗大ごみ収集の申込」第2版」
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock of the draft
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FormVersion(TenantScoped, Base):
    """A published version, never changed afterwards: submissions point at it."""

    __tablename__ = "form_version"

    form_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    contact: Mapped[str] = mapped_column(String(400), default="")
    fields: Mapped[list] = mapped_column(JSON, default=list)
    identity_required: Mapped[bool] = mapped_column(Boolean, default=False)
    published_by: Mapped[str] = mapped_column(String(200))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FormSubmission(TenantScoped, Base):
    """One application. ``receipt_no`` (受付番号) is unique per tenant; ``form_token`` is the
    one-time token of the confirmation page, unique per tenant, so a double submit finds the
    first submission instead of making a second."""

    __tablename__ = "form_submission"
    __table_args__ = (
        UniqueConstraint("lg_code", "receipt_no"),
        UniqueConstraint("lg_code", "form_token"),
        # The inbox: one form's submissions, newest first, by status.
        Index("ix_form_submission_inbox", "lg_code", "form_id", "status", "submitted_at"),
        Index("ix_form_submission_form_time", "lg_code", "form_id", "submitted_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    form_id: Mapped[str] = mapped_column(String(36))
    version_number: Mapped[int] = mapped_column(Integer)
    receipt_no: Mapped[str] = mapped_column(String(20))
    form_token: Mapped[str] = mapped_column(String(64))
    answers: Mapped[dict] = mapped_column(JSON, default=dict)
    email: Mapped[str] = mapped_column(String(254), default="")
    principal_id: Mapped[str | None] = mapped_column(String(36))  # a resident signed in with the card
    # 本人確認が必要な手続き: the card's signature over ``signing.message`` of the answers, kept so
    # that staff can verify it later (certificate PEM, base64 signature).
    signer_certificate: Mapped[str | None] = mapped_column(Text)
    signature: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=SubmissionStatus.received.value)
    assignee_id: Mapped[str | None] = mapped_column(String(36))
    assignee_name: Mapped[str] = mapped_column(String(200), default="")
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)


class EventKind(enum.StrEnum):
    status = "status"
    assigned = "assigned"
    comment = "comment"  # internal: staff only
    message = "message"  # sent to the applicant

    @property
    def label(self) -> str:
        return {"status": "状況の変更", "assigned": "担当者の変更", "comment": "内部メモ",
                "message": "申請者へのメッセージ"}[self.value]


class FormSubmissionEvent(TenantScoped, Base):
    """The history of one submission in the inbox, oldest first."""

    __tablename__ = "form_submission_event"
    __table_args__ = (Index("ix_form_submission_event_submission", "lg_code", "submission_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text, default="")
    from_status: Mapped[str] = mapped_column(String(20), default="")
    to_status: Mapped[str] = mapped_column(String(20), default="")
    actor_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FormUpload(TenantScoped, Base):
    """An attachment a resident chose. Stored when the confirmation page is shown (so the page
    can say what will be sent), claimed by the submission it was sent with; one never claimed
    is deleted after a day (``uploads.purge_unclaimed``, run by the job runner's prune).
    ``kind`` was recognised from the file's first bytes, never from its name."""

    __tablename__ = "form_upload"
    __table_args__ = (
        Index("ix_form_upload_submission", "lg_code", "submission_id"),
        Index("ix_form_upload_unclaimed", "lg_code", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    form_id: Mapped[str] = mapped_column(String(36))
    field_key: Mapped[str] = mapped_column(String(10))
    submission_id: Mapped[str | None] = mapped_column(String(36))
    filename: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))
    media_type: Mapped[str] = mapped_column(String(60))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
