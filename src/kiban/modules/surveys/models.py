"""Tables of modules/surveys (imported by kiban.models so Alembic and the isolation tests see them).

* ``survey`` and ``survey_version`` belong to the sender (総務省, a prefecture …): the draft
  definition, and each sent version (frozen; answers point at the version they were made on).
* ``survey_response`` and ``survey_response_event`` belong to the respondent: one response per
  target local government, created when the survey is sent, and its history. Who else may read
  a response is a named rule (``service.may_read_response``): the sender, and the respondent's
  prefecture when the survey is relayed (経由調査). Nobody else: 函館市 never sees 札幌市's answer.
* ``survey_value`` belongs to the sender: the answers delivered to it (on submission of a direct
  survey, on the prefecture's forwarding of a relayed one), one row per answered cell, so that
  the sender's aggregates are plain SQL over its own rows.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime


class ResponseStatus(enum.StrEnum):
    not_started = "not_started"
    draft = "draft"
    certified = "certified"
    submitted = "submitted"
    returned = "returned"
    approved = "approved"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.value]


STATUS_LABELS = {"not_started": "未着手", "draft": "作成中", "certified": "決裁済み（未提出）",
                 "submitted": "提出済み", "returned": "差戻し（修正待ち）", "approved": "都道府県確認済み"}


class Survey(TenantScoped, Base):
    """A survey its sender writes. ``definition`` is the draft (sections, questions, rules);
    ``sent_version`` the newest sent version (0: not sent yet)."""

    __tablename__ = "survey"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    definition: Mapped[dict] = mapped_column(JSON, default=dict)
    relayed: Mapped[bool] = mapped_column(Boolean, default=False)
    deadline: Mapped[str] = mapped_column(String(10))  # ISO date (the last day answers are due)
    minutes: Mapped[int] = mapped_column(Integer, default=30)  # burden estimate per respondent
    target: Mapped[dict] = mapped_column(JSON, default=dict)  # {"kind": ..., "prefectures": [...], ...}
    target_codes: Mapped[list] = mapped_column(JSON, default=list)  # resolved when sent
    sent_version: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # results as open data
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock of the draft
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SurveyVersion(TenantScoped, Base):
    """A sent version, never changed afterwards. ``changes`` lists, in Japanese, what changed
    from the previous version (shown to respondents)."""

    __tablename__ = "survey_version"

    survey_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    definition: Mapped[dict] = mapped_column(JSON, default=dict)
    deadline: Mapped[str] = mapped_column(String(10))
    changes: Mapped[list] = mapped_column(JSON, default=list)
    sent_by: Mapped[str] = mapped_column(String(200))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SurveyResponse(TenantScoped, Base):
    """The respondent's answer to one survey (owned by the respondent)."""

    __tablename__ = "survey_response"
    __table_args__ = (
        Index("ix_survey_response_survey", "lg_code", "survey_lg_code", "survey_id"),
        # the sender's and the prefecture's views (a named cross-tenant read, see service)
        Index("ix_survey_response_by_survey", "survey_id", "prefecture_code", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    survey_lg_code: Mapped[str] = mapped_column(String(6))
    survey_id: Mapped[str] = mapped_column(String(36))
    prefecture_code: Mapped[str] = mapped_column(String(6), default="")
    version_number: Mapped[int] = mapped_column(Integer, default=1)  # the survey version answered
    seen_version: Mapped[int] = mapped_column(Integer, default=0)
    answers: Mapped[dict] = mapped_column(JSON, default=dict)
    prefill: Mapped[dict] = mapped_column(JSON, default=dict)  # {key: {"value", "source", "as_of"}}
    reasons: Mapped[dict] = mapped_column(JSON, default=dict)  # {key: why the platform's value was corrected}
    status: Mapped[str] = mapped_column(String(20), default=ResponseStatus.not_started.value)
    contact_email: Mapped[str] = mapped_column(String(254), default="")
    certified_by: Mapped[str] = mapped_column(String(200), default="")
    certified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    review_comment: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock
    updated_by: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SurveyResponseEvent(TenantScoped, Base):
    """The history of one response, oldest first (append-only)."""

    __tablename__ = "survey_response_event"
    __table_args__ = (Index("ix_survey_response_event_response", "lg_code", "response_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    response_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text, default="")
    actor_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


EVENT_LABELS = {"saved": "保存", "uploaded": "エクセルから取り込み", "certified": "課長決裁", "submitted": "提出",
                "reopened": "提出後の修正（再開）", "returned": "都道府県からの差戻し", "approved": "都道府県の確認",
                "forwarded": "都道府県から国へ送付", "delivered": "送信元に到着", "comment": "コメント"}


class SurveyValue(TenantScoped, Base):
    """One delivered answer cell, owned by the sender (``lg_code``): a number in ``num`` or a
    choice / text in ``text``; table questions have one row per (row, column)."""

    __tablename__ = "survey_value"
    __table_args__ = (Index("ix_survey_value_question", "lg_code", "survey_id", "question_key", "text"),)

    survey_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    respondent_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    question_key: Mapped[str] = mapped_column(String(20), primary_key=True)
    row_no: Mapped[int] = mapped_column(Integer, primary_key=True, default=0)
    column_key: Mapped[str] = mapped_column(String(20), primary_key=True, default="")
    prefecture_code: Mapped[str] = mapped_column(String(6))
    org_type: Mapped[str] = mapped_column(String(10))
    num: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str] = mapped_column(String(400), default="")


# The audit log's words for this module's actions (core/audit/labels.py is the one table; this
# module adds its own rows when its models are imported, as kiban.models does at start-up).
def _audit_labels() -> None:
    from kiban.core.audit.labels import ACTION_LABELS, DETAIL_KEYS, TARGET_TYPE_LABELS

    ACTION_LABELS.update({
        "surveys.survey.created": "調査の作成",
        "surveys.survey.updated": "調査の変更",
        "surveys.question.avoided": "重複照会として質問を省略",
        "surveys.survey.sent": "調査の送付",
        "surveys.survey.published": "調査結果の公表",
        "surveys.answers.exported": "調査の回答の書き出し",
        "surveys.response.read": "調査の回答の閲覧（他団体）",
        "surveys.response.saved": "調査の回答の保存",
        "surveys.response.uploaded": "調査の回答の取り込み（エクセル）",
        "surveys.response.certified": "調査の回答の決裁",
        "surveys.response.submitted": "調査の回答の提出",
        "surveys.response.reopened": "提出した調査の回答の再開",
        "surveys.response.returned": "調査の回答の差戻し",
        "surveys.response.approved": "調査の回答の確認（都道府県）",
        "surveys.relay.forwarded": "経由調査の回答の送付",
    })
    TARGET_TYPE_LABELS.update({"survey": "調査", "survey_response": "調査の回答"})
    DETAIL_KEYS.update({"survey_title": "調査名", "survey_version": "版", "organization": "団体", "count": "件数"})


_audit_labels()
