"""Tables of modules/governance (imported by kiban.models so Alembic and the isolation tests see them).

Needs and endorsements are tenant-owned: the figures a body gives (cost, vendor, 更改時期) are
its own business, and the fields it marks confidential are shown only to it and to the
secretariat (デジタル庁). Everything the council works on — groups, candidates and their
assessment, meetings, decisions, rollout plans — is national and public by default.
Rows that point at a need carry ``need_lg_code`` (never ``lg_code``: that name is reserved for
tenant-owned tables)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Date, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime


class Need(TenantScoped, Base):
    """課題: what a body (municipality, prefecture) finds hard, with its figures.

    ``confidential`` lists the figure fields the body marked 非公開 (see CONFIDENTIAL_FIELDS)."""

    __tablename__ = "governance_need"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text)
    problems: Mapped[str] = mapped_column(Text, default="")
    hours_per_year: Mapped[int | None] = mapped_column(Integer)
    annual_cost: Mapped[int | None] = mapped_column(BigInteger)
    current_system: Mapped[str] = mapped_column(String(200), default="")
    vendor: Mapped[str] = mapped_column(String(200), default="")
    renewal_on: Mapped[date | None] = mapped_column(Date)
    volume: Mapped[int | None] = mapped_column(Integer)
    confidential: Mapped[list] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Endorsement(TenantScoped, Base):
    """「うちも同じ」: another body stands behind a need, with its own figures (one per body and need)."""

    __tablename__ = "governance_endorsement"
    need_lg_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    need_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    hours_per_year: Mapped[int | None] = mapped_column(Integer)
    annual_cost: Mapped[int | None] = mapped_column(BigInteger)
    current_system: Mapped[str] = mapped_column(String(200), default="")
    vendor: Mapped[str] = mapped_column(String(200), default="")
    renewal_on: Mapped[date | None] = mapped_column(Date)
    volume: Mapped[int | None] = mapped_column(Integer)
    confidential: Mapped[list] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class NeedGroup(Base):
    """似た課題のまとまり (automatic, or fixed by the secretariat's merge and split)."""

    __tablename__ = "governance_need_group"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    merged_into: Mapped[str | None] = mapped_column(String(36))


class GroupMember(Base):
    """Which group a need is in. ``pinned``: placed by a clerk (merge/split), kept by regrouping."""

    __tablename__ = "governance_group_member"

    need_lg_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    need_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(36), index=True)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    similarity: Mapped[int | None] = mapped_column(Integer)  # ‰ to the group when placed automatically


class Candidate(Base):
    """共通化の候補 and its assessment sheet (①②③, perspectives i–iii). Judgement text is
    written by people; computed figures are computed on reading (service.assess)."""

    __tablename__ = "governance_candidate"
    __table_args__ = (UniqueConstraint("group_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str] = mapped_column(String(60), default="")
    status: Mapped[str] = mapped_column(String(20), default="assessing")
    # ② inputs the secretariat states (with where they come from)
    proposed_pattern: Mapped[str] = mapped_column(String(20), default="common_b")
    common_annual_cost: Mapped[int | None] = mapped_column(BigInteger)
    common_cost_source: Mapped[str] = mapped_column(String(300), default="")
    hours_reduction_percent: Mapped[int | None] = mapped_column(Integer)
    hours_reduction_source: Mapped[str] = mapped_column(String(300), default="")
    catalog_service_id: Mapped[str | None] = mapped_column(String(60))  # an existing service it would extend
    # ③ feasibility
    feasibility_law: Mapped[str] = mapped_column(Text, default="")
    feasibility_spec: Mapped[str] = mapped_column(Text, default="")
    feasibility_vendors: Mapped[str] = mapped_column(Text, default="")
    # perspectives i–iii: checks with evidence
    perspective_1: Mapped[bool] = mapped_column(Boolean, default=False)
    perspective_1_evidence: Mapped[str] = mapped_column(Text, default="")
    perspective_2: Mapped[bool] = mapped_column(Boolean, default=False)
    perspective_2_evidence: Mapped[str] = mapped_column(Text, default="")
    perspective_3: Mapped[bool] = mapped_column(Boolean, default=False)
    perspective_3_evidence: Mapped[str] = mapped_column(Text, default="")
    judgement: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StudyTask(Base):
    """実現可能性調査の作業: owner, due date and the document it produces."""

    __tablename__ = "governance_study_task"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    candidate_id: Mapped[str] = mapped_column(String(36), index=True)
    title: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(200))
    due_on: Mapped[date | None] = mapped_column(Date)
    document_title: Mapped[str] = mapped_column(String(200), default="")
    document_url: Mapped[str] = mapped_column(String(500), default="")
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CouncilMember(Base):
    """連絡協議会の構成員: 国, the three associations' representatives, designated bodies."""

    __tablename__ = "governance_council_member"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    org_code: Mapped[str | None] = mapped_column(String(6))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Meeting(Base):
    __tablename__ = "governance_meeting"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    held_on: Mapped[date] = mapped_column(Date)
    agenda: Mapped[list] = mapped_column(JSON, default=list)  # candidate ids, in order
    documents: Mapped[list] = mapped_column(JSON, default=list)  # [{"title": ..., "url": ...}]
    minutes: Mapped[str] = mapped_column(Text, default="")
    minutes_published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Comment(Base):
    """事前の意見: a council member body's comment on a meeting's candidate, before it is held."""

    __tablename__ = "governance_comment"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    meeting_id: Mapped[str] = mapped_column(String(36), index=True)
    candidate_id: Mapped[str | None] = mapped_column(String(36))
    author: Mapped[str] = mapped_column(String(200))
    body_code: Mapped[str] = mapped_column(String(6))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Decision(Base):
    """The council's decision on a candidate at a meeting (採択 / 継続検討 / 不採択) with reasons.
    One per (meeting, candidate); a later meeting may decide again."""

    __tablename__ = "governance_decision"
    __table_args__ = (UniqueConstraint("meeting_id", "candidate_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    meeting_id: Mapped[str] = mapped_column(String(36), index=True)
    candidate_id: Mapped[str] = mapped_column(String(36), index=True)
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    service_id: Mapped[str | None] = mapped_column(String(60))
    pattern: Mapped[str | None] = mapped_column(String(20))
    burden_category: Mapped[str | None] = mapped_column(String(20))
    lifecycle: Mapped[str | None] = mapped_column(String(20))
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RolloutPlan(Base):
    """段階的な展開 of an adopted service: the fiscal year each phase starts (実証 → 展開 → 全国),
    the service's expected annual cost to share, and when it is ready for a body to move."""

    __tablename__ = "governance_rollout_plan"

    service_id: Mapped[str] = mapped_column(String(60), primary_key=True)
    candidate_id: Mapped[str] = mapped_column(String(36))
    pilot_fy: Mapped[int] = mapped_column(Integer)
    rollout_fy: Mapped[int] = mapped_column(Integer)
    national_fy: Mapped[int] = mapped_column(Integer)
    annual_cost: Mapped[int | None] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StudyQuestion(Base):
    """A question of the simple feasibility questionnaire to the bodies behind a candidate
    (kept simple on purpose: the surveys module can replace it)."""

    __tablename__ = "governance_study_question"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    candidate_id: Mapped[str] = mapped_column(String(36), index=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StudyAnswer(TenantScoped, Base):
    """A body's answer to a questionnaire question (one per body and question; answering again updates it)."""

    __tablename__ = "governance_study_answer"

    question_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    answer: Mapped[str] = mapped_column(Text)
    answered_by: Mapped[str] = mapped_column(String(200))
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime())
