"""監査ログ: append-only, one hash chain per organisation acted for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime


#: Residents and businesses act for themselves under labels without names (住民（本人）); they are
#: not offered as a choice of 操作者, so the index by person leaves them out (see service.py).
UNNAMED_ACTOR_KINDS = ("resident", "business")
NAMED_ACTOR_CONDITION = "actor_kind NOT IN ('resident', 'business')"


class AuditEntry(TenantScoped, Base):
    """One recorded action. ``hash`` covers every other column and ``prev_hash`` links to the
    organisation's previous entry, so an edited, deleted or reordered row breaks the chain."""

    __tablename__ = "audit_entry"
    # The administrators' log, one organisation at a time, at any depth (migration 0020, measured
    # on bench/national_data.py: docs/scaling.md). Each filter has an index led by lg_code that
    # ends with seq, so a page's entries are found in the index in log order without reading the
    # rows skipped, and the filter form's choices are found by skipping from value to value.
    # By person: only named actors (not residents and businesses, who are hundreds of thousands
    # at デジタル庁), the condition written as AuditRepository's queries write it.
    __table_args__ = (
        Index("ix_audit_entry_lg_code_occurred_at", "lg_code", "occurred_at"),
        Index("ix_audit_entry_lg_code_action_seq", "lg_code", "action", "seq"),
        Index("ix_audit_entry_lg_code_outcome_seq", "lg_code", "outcome", "seq"),
        Index("ix_audit_entry_lg_code_named_actor", "lg_code", "actor_id", "seq",
              postgresql_where=text(NAMED_ACTOR_CONDITION), sqlite_where=text(NAMED_ACTOR_CONDITION)),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    entry_id: Mapped[str] = mapped_column(String(36))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[str | None] = mapped_column(String(36))
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_label: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str | None] = mapped_column(String(60))
    target_id: Mapped[str | None] = mapped_column(String(100))
    subject_id: Mapped[str | None] = mapped_column(String(36), index=True)
    purpose: Mapped[str | None] = mapped_column(String(200))
    legal_basis: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(20), default="success")
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[Any] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(TenantScoped, Base):
    """The last sequence number and hash of an organisation's chain. Appends lock this row
    first (an UPDATE), which serialises concurrent appends per organisation on both backends,
    and a deleted final entry is caught because the head still names it."""

    __tablename__ = "audit_chain_head"

    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class AuditPending(TenantScoped, Base):
    """An entry recorded but not yet chained: committed with the request that made it (nothing
    acknowledged is lost), given its place (``seq``) and ``hash`` in the owner's chain moments
    later by ``service.chain_pending``. Reads of another organisation's records are recorded
    this way, so that a page reading many organisations' records takes no chain-head lock
    (bench/load.py found the lock convoy: docs/scaling.md). Holds exactly the fields that the
    chained entry hashes, except ``seq`` and ``prev_hash``."""

    __tablename__ = "audit_pending"
    __table_args__ = (
        Index("ix_audit_pending_lg_code_occurred_at", "lg_code", "occurred_at", "entry_id"),
        Index("ix_audit_pending_subject_id", "subject_id"),
    )

    entry_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[str | None] = mapped_column(String(36))
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_label: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str | None] = mapped_column(String(60))
    target_id: Mapped[str | None] = mapped_column(String(100))
    subject_id: Mapped[str | None] = mapped_column(String(36))
    purpose: Mapped[str | None] = mapped_column(String(200))
    legal_basis: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(20), default="success")
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[Any] = mapped_column(JSON, default=dict)
