"""Recording and verifying the audit log.

``record`` writes in the caller's transaction, so an action and its audit entry commit or roll
back together. ``verify_chain`` recomputes every hash and names the first entry that does not
fit, and how: edited (hash), removed or reordered (sequence or link).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit.models import AuditChainHead, AuditEntry
from kiban.core.tenancy.context import Tenant, as_tenant, current_tenant
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow
from kiban.kit.requestid import current_request_id

GENESIS = "0" * 64
HASHED_FIELDS = ("lg_code", "seq", "entry_id", "occurred_at", "actor_id", "actor_kind",
                 "actor_label", "action", "target_type", "target_id", "subject_id", "purpose",
                 "legal_basis", "outcome", "request_id", "details", "prev_hash")


@dataclass(frozen=True)
class Actor:
    """Who did it. ``kind``: resident / business / staff / operator / api_client / system /
    anonymous (e.g. a rejected sign-in)."""

    kind: str
    label: str
    id: str | None = None

    @classmethod
    def of_staff(cls, staff) -> Actor:
        """The actor for a ``StaffContext``: a staff member, or a system using an API key (by the
        key's id: its stand-in principal's ``apikey:<id>`` is longer than ``actor_id`` holds)."""
        if staff.api_key is not None:
            return cls("api_client", staff.label, staff.api_key.id)
        return cls("staff", staff.label, staff.principal.id)


SYSTEM = Actor(kind="system", label="Kiban")


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def entry_hash(fields: dict[str, Any]) -> str:
    payload = {name: _canonical(fields[name]) for name in HASHED_FIELDS}
    encoded = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _fields_of(entry: AuditEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in HASHED_FIELDS}


async def record(session: AsyncSession, actor: Actor, action: str, *, target_type: str | None = None,
                 target_id: str | None = None, subject_id: str | None = None,
                 purpose: str | None = None, legal_basis: str | None = None,
                 outcome: str = "success", details: dict[str, Any] | None = None,
                 tenant: Tenant | None = None) -> AuditEntry:
    """Append an entry to the chain of the organisation acted for (the bound tenant, or
    ``tenant``). Flushes; the caller's commit makes action and entry durable together."""
    owner = tenant or current_tenant(session)
    if owner is None:
        raise ValueError("audit.record needs the organisation acted for")
    if tenant is not None and tenant != current_tenant(session):
        async with as_tenant(session, tenant):
            return await _append(session, owner, actor, action, target_type, target_id, subject_id,
                                 purpose, legal_basis, outcome, details)
    return await _append(session, owner, actor, action, target_type, target_id, subject_id, purpose,
                         legal_basis, outcome, details)


async def _advance_head(session: AsyncSession, lg_code: str) -> tuple[int, str] | None:
    bumped = await session.execute(
        update(AuditChainHead).where(AuditChainHead.lg_code == lg_code)
        .values(seq=AuditChainHead.seq + 1).returning(AuditChainHead.seq, AuditChainHead.hash)
    )
    return bumped.first()


async def _append(session, owner: Tenant, actor, action, target_type, target_id, subject_id,
                  purpose, legal_basis, outcome, details) -> AuditEntry:
    # Lock the chain head before reading it (UPDATE first), so concurrent appends queue. The
    # first entry of an organisation creates the head; two first entries at once must not
    # both insert it, hence INSERT ... ON CONFLICT DO NOTHING and a second UPDATE.
    row = await _advance_head(session, owner.lg_code)
    if row is None:
        insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
        await session.execute(insert(AuditChainHead).values(lg_code=owner.lg_code, seq=0, hash=GENESIS)
                              .on_conflict_do_nothing(index_elements=["lg_code"]))
        row = await _advance_head(session, owner.lg_code)
    seq, prev_hash = row
    fields = {
        "lg_code": owner.lg_code, "seq": seq, "entry_id": str(uuid.uuid4()),
        "occurred_at": utcnow(), "actor_id": actor.id, "actor_kind": actor.kind,
        "actor_label": actor.label, "action": action, "target_type": target_type,
        "target_id": target_id, "subject_id": subject_id, "purpose": purpose,
        "legal_basis": legal_basis, "outcome": outcome, "request_id": current_request_id(),
        "details": details or {}, "prev_hash": prev_hash,
    }
    entry = AuditEntry(**fields, hash=entry_hash(fields))
    session.add(entry)
    await session.execute(update(AuditChainHead).where(AuditChainHead.lg_code == owner.lg_code)
                          .values(hash=entry.hash))
    await session.flush()
    return entry


@dataclass(frozen=True)
class AuditFilter:
    """What a person narrows the log to: a period (UTC, ``until`` exclusive), one actor, one
    action, one outcome. Empty fields do not narrow."""

    since: datetime | None = None
    until: datetime | None = None
    actor_id: str | None = None
    action: str | None = None
    outcome: str | None = None

    def apply(self, statement):
        if self.since is not None:
            statement = statement.where(AuditEntry.occurred_at >= self.since)
        if self.until is not None:
            statement = statement.where(AuditEntry.occurred_at < self.until)
        if self.actor_id:
            statement = statement.where(AuditEntry.actor_id == self.actor_id)
        if self.action:
            statement = statement.where(AuditEntry.action == self.action)
        if self.outcome:
            statement = statement.where(AuditEntry.outcome == self.outcome)
        return statement


class AuditRepository(TenantRepository[AuditEntry]):
    model = AuditEntry

    async def recent(self, limit: int = 200, offset: int = 0,
                     where: AuditFilter = AuditFilter()) -> Sequence[AuditEntry]:
        return await self.all(where.apply(self.select()).order_by(AuditEntry.seq.desc()).limit(limit).offset(offset))

    async def count_matching(self, where: AuditFilter = AuditFilter()) -> int:
        return await self.count(where.apply(self.select()))

    async def in_order(self, where: AuditFilter = AuditFilter()) -> Sequence[AuditEntry]:
        return await self.all(where.apply(self.select()).order_by(AuditEntry.seq))

    async def actors(self) -> list[tuple[str, str]]:
        """(actor id, latest label) of everyone who appears in the log, by label."""
        rows = (await self.session.execute(
            self.select().with_only_columns(AuditEntry.actor_id, AuditEntry.actor_label)
            .where(AuditEntry.actor_id.is_not(None)).order_by(AuditEntry.seq))).all()
        latest = {actor_id: label for actor_id, label in rows}
        return sorted(latest.items(), key=lambda item: (item[1], item[0]))

    async def actions(self) -> list[str]:
        """The action codes that occur in the log."""
        rows = await self.session.execute(
            self.select().with_only_columns(AuditEntry.action).distinct().order_by(None))
        return sorted(code for (code,) in rows.all())


@dataclass(frozen=True)
class ChainProblem:
    lg_code: str
    seq: int | None
    message: str


def verify_entries(lg_code: str, entries: Sequence[AuditEntry], head: AuditChainHead | None) -> list[ChainProblem]:
    """Problems in one organisation's chain, earliest first ([] when intact)."""
    problems: list[ChainProblem] = []
    expected_prev = GENESIS
    expected_seq = 1
    for entry in entries:
        if entry.seq != expected_seq:
            missing = f"#{expected_seq}" if entry.seq == expected_seq + 1 else f"#{expected_seq}〜#{entry.seq - 1}"
            problems.append(ChainProblem(lg_code, entry.seq,
                                         f"記録 {missing} が欠落しています（削除された可能性があります）。" if entry.seq > expected_seq
                                         else f"記録 #{entry.seq} の順序が不正です（#{expected_seq} があるべき位置）。"))
            return problems
        if entry.hash != entry_hash(_fields_of(entry)):
            problems.append(ChainProblem(lg_code, entry.seq,
                                         f"記録 #{entry.seq}（{entry.action}）の内容が記録後に変更されています。"))
            return problems
        if entry.prev_hash != expected_prev:
            problems.append(ChainProblem(lg_code, entry.seq,
                                         f"記録 #{entry.seq} の前の記録とのつながりが切れています（並べ替えまたは差し替え）。"))
            return problems
        expected_prev = entry.hash
        expected_seq += 1
    last_seq = expected_seq - 1
    if head is not None and (head.seq != last_seq or head.hash != expected_prev):
        problems.append(ChainProblem(lg_code, head.seq,
                                     f"最後の記録 #{head.seq} が見つかりません（末尾が削除された可能性があります）。"
                                     if head.seq > last_seq else "チェーンの先頭情報が記録と一致しません。"))
    return problems


async def verify_all(session: AsyncSession) -> tuple[int, int, list[ChainProblem]]:
    """(organisations checked, entries checked, problems). Reads every chain: operator use
    only, inside ``unscoped``."""
    heads = {h.lg_code: h for h in (await session.scalars(select(AuditChainHead))).all()}
    entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.lg_code, AuditEntry.seq))).all()
    by_org: dict[str, list[AuditEntry]] = {}
    for entry in entries:
        by_org.setdefault(entry.lg_code, []).append(entry)
    problems: list[ChainProblem] = []
    for lg_code in sorted(set(heads) | set(by_org)):
        problems.extend(verify_entries(lg_code, by_org.get(lg_code, []), heads.get(lg_code)))
    return len(set(heads) | set(by_org)), len(entries), problems


ACCESS_LOG_LIMIT = 500


async def entries_about(session: AsyncSession, subject_id: str, limit: int = ACCESS_LOG_LIMIT) -> Sequence[AuditEntry]:
    """Every recorded access to one person's data, by any organisation, newest first (at most
    ``limit``): what a resident reads as 「わたしの情報の利用記録」. Reads across every
    organisation's chain by design, for the person the entries are about, and only by them."""
    from kiban.core.tenancy.context import unscoped

    async with unscoped(session, "本人による自分の情報の利用記録の閲覧"):
        return (await session.scalars(
            select(AuditEntry).where(AuditEntry.subject_id == subject_id)
            .order_by(AuditEntry.occurred_at.desc()).limit(limit))).all()
