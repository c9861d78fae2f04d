"""Tables of modules/opinions (意見照会, issue #13 item 8); kiban.models imports them.

* ``opinion_consultation`` belongs to the ministry that consults (デジタル庁, 総務省 …): the draft
  document split into sections, the period, who is consulted, and whether the published table
  names the bodies.
* ``opinion_comment`` belongs to the body that comments (a municipality, a prefecture): its
  意見 or 質問 on one section. Until the table of comments and answers is published, only the
  body itself and the consulting ministry read it (``service.READ_RULE``).
* ``opinion_review`` and ``opinion_answer`` belong to the ministry: how it classified each
  comment and the answer it gives (one answer may answer several similar comments).

Rows that point at another organisation's row carry ``consultation_lg_code`` / ``comment_lg_code``
(never ``lg_code``: that name is the owner of the row).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime


class Consultation(TenantScoped, Base):
    """意見照会: ``sections`` is a list of {"key", "number", "heading", "text"}; frozen once
    ``announced_at`` is set (the draft every body comments on must not move under them)."""

    __tablename__ = "opinion_consultation"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    sections: Mapped[list] = mapped_column(JSON, default=list)
    opens_on: Mapped[date] = mapped_column(Date)
    closes_on: Mapped[date] = mapped_column(Date)
    target_kind: Mapped[str] = mapped_column(String(20), default="all")
    publish_names: Mapped[bool] = mapped_column(Boolean, default=False)
    announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Comment(TenantScoped, Base):
    """A body's 意見 (``kind`` opinion) or 質問 (question) on one section, with an optional
    proposed revision. Withdrawn comments stay (status withdrawn) for the record."""

    __tablename__ = "opinion_comment"
    __table_args__ = (Index("ix_opinion_comment_consultation", "consultation_lg_code", "consultation_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    consultation_lg_code: Mapped[str] = mapped_column(String(6))
    consultation_id: Mapped[str] = mapped_column(String(36))
    section_key: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    proposal: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="submitted")
    version: Mapped[int] = mapped_column(Integer, default=1)
    submitted_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Answer(TenantScoped, Base):
    """The ministry's answer (考え方・回答); several comments may share one."""

    __tablename__ = "opinion_answer"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    consultation_id: Mapped[str] = mapped_column(String(36), index=True)
    text: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Review(TenantScoped, Base):
    """How the ministry classified one comment (``category``, see service.CATEGORIES) and the
    answer it gives it."""

    __tablename__ = "opinion_review"

    comment_lg_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    comment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    consultation_id: Mapped[str] = mapped_column(String(36), index=True)
    category: Mapped[str] = mapped_column(String(20))
    answer_id: Mapped[str | None] = mapped_column(String(36))
    reviewed_by: Mapped[str] = mapped_column(String(200))
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime())
