"""Recording and verifying the audit log.

``record`` writes in the caller's transaction, so an action and its audit entry commit or roll
back together. ``verify_chain`` recomputes every hash and names the first entry that does not
fit, and how: edited (hash), removed or reordered (sequence or link).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, literal_column, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit.models import UNNAMED_ACTOR_KINDS, AuditChainHead, AuditEntry, AuditPending
from kiban.core.jobs.runner import register_ticker
from kiban.core.tenancy.context import Tenant, as_tenant, current_tenant, unscoped
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow, writing_beside_snapshot
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


async def _advance_head(session: AsyncSession, lg_code: str, by: int = 1) -> tuple[int, str] | None:
    bumped = await session.execute(
        update(AuditChainHead).where(AuditChainHead.lg_code == lg_code)
        .values(seq=AuditChainHead.seq + by).returning(AuditChainHead.seq, AuditChainHead.hash)
    )
    return bumped.first()


async def _append(session, owner: Tenant, actor, action, target_type, target_id, subject_id,
                  purpose, legal_basis, outcome, details) -> AuditEntry:
    (entry,) = await _append_many(session, owner, actor, action, [Target(target_type, target_id, subject_id)],
                                  purpose, legal_basis, outcome, details)
    return entry


@dataclass(frozen=True)
class Target:
    """What one entry of ``record_many`` is about."""

    type: str | None
    id: str | None
    subject_id: str | None = None


async def record_many(session: AsyncSession, actor: Actor, action: str, targets: Sequence[Target], *,
                      purpose: str | None = None, legal_basis: str | None = None, outcome: str = "success",
                      details: dict[str, Any] | None = None, tenant: Tenant | None = None,
                      deferred: bool = False) -> list[AuditEntry] | list[str]:
    """One action by one actor on several targets, one entry each, appended to one chain in the
    order given, as ``record`` would one by one, but moving the chain head once: one UPDATE to
    lock and advance it, one INSERT of all the rows, one UPDATE of its hash (``record`` costs
    those three statements per entry). For a page that shows, and so records reading, a hundred
    records of another organisation.

    ``deferred``: the entries are written (in the caller's transaction, so they commit with it)
    as pending, without touching the chain head, and take their place in the chain moments later
    (``chain_pending``, run by every process's job runner and before the log is read). For reads
    of other organisations' records: a page that reads many organisations' records then holds
    no chain-head lock while it renders (the lock convoy bench/load.py found; docs/scaling.md)."""
    owner = tenant or current_tenant(session)
    if owner is None:
        raise ValueError("audit.record_many needs the organisation acted for")
    if not targets:
        return []
    if deferred:
        return await record_pending(session, actor, action, [(owner, target) for target in targets], purpose=purpose,
                                    legal_basis=legal_basis, outcome=outcome, details=details)
    if tenant is not None and tenant != current_tenant(session):
        async with as_tenant(session, tenant):
            return await _append_many(session, owner, actor, action, targets, purpose, legal_basis, outcome, details)
    return await _append_many(session, owner, actor, action, targets, purpose, legal_basis, outcome, details)


def _unchained_fields(owner: Tenant, actor: Actor, action: str, target: Target, purpose, legal_basis, outcome,
                      details, request_id) -> dict[str, Any]:
    return {
        "lg_code": owner.lg_code, "entry_id": str(uuid.uuid4()),
        "occurred_at": utcnow(), "actor_id": actor.id, "actor_kind": actor.kind,
        "actor_label": actor.label, "action": action, "target_type": target.type,
        "target_id": target.id, "subject_id": target.subject_id, "purpose": purpose,
        "legal_basis": legal_basis, "outcome": outcome, "request_id": request_id,
        "details": dict(details or {}),
    }


async def _lock_head(session: AsyncSession, lg_code: str, by: int) -> tuple[int, str]:
    """Lock the chain head before reading it (UPDATE first), so concurrent appends queue, and
    advance it by ``by``. The first entry of an organisation creates the head; two first entries
    at once must not both insert it, hence INSERT ... ON CONFLICT DO NOTHING and a second UPDATE."""
    row = await _advance_head(session, lg_code, by)
    if row is None:
        insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
        await session.execute(insert(AuditChainHead).values(lg_code=lg_code, seq=0, hash=GENESIS)
                              .on_conflict_do_nothing(index_elements=["lg_code"]))
        row = await _advance_head(session, lg_code, by)
    return row


async def _link(session: AsyncSession, lg_code: str, unchained: Sequence[dict[str, Any]]) -> list[AuditEntry]:
    """Give entries (their fields without ``seq`` and ``prev_hash``) the next places in
    ``lg_code``'s chain, in the order given. The head stays locked until the caller commits."""
    made = [AuditEntry(**fields) for fields in await _linked_rows(session, lg_code, unchained)]
    session.add_all(made)
    await session.flush()
    return made


async def _linked_rows(session: AsyncSession, lg_code: str, unchained: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``_link``'s chaining, as the rows' values (``seq``, ``prev_hash``, ``hash`` added), for
    the caller to insert; the head is advanced and its hash set."""
    last_seq, prev_hash = await _lock_head(session, lg_code, len(unchained))
    rows: list[dict[str, Any]] = []
    for seq, fields in enumerate(unchained, start=last_seq - len(unchained) + 1):
        fields = {**fields, "seq": seq, "prev_hash": prev_hash}
        fields["hash"] = prev_hash = entry_hash(fields)
        rows.append(fields)
    await session.execute(update(AuditChainHead).where(AuditChainHead.lg_code == lg_code)
                          .values(hash=prev_hash))
    return rows


async def _append_many(session, owner: Tenant, actor: Actor, action: str, targets: Sequence[Target], purpose,
                       legal_basis, outcome, details) -> list[AuditEntry]:
    request_id = current_request_id()
    return await _link(session, owner.lg_code, [
        _unchained_fields(owner, actor, action, target, purpose, legal_basis, outcome, details, request_id)
        for target in targets])


PENDING_REASON = "監査記録: 他団体の記録を読んだことを、その団体の監査ログ（連結待ち）に書く"
CHAIN_REASON = "監査ログの連結: 連結待ちの記録に各団体のチェーン上の位置とハッシュを付ける（内容は変えない）"
CHAIN_BATCH = 5_000
CHAIN_EVERY_SECONDS = 1.0
CHAIN_TICK_SECONDS = 2.0


async def record_pending(session: AsyncSession, actor: Actor, action: str, owned: Sequence[tuple[Tenant, Target]], *,
                         purpose: str | None = None, legal_basis: str | None = None, outcome: str = "success",
                         details: dict[str, Any] | None = None) -> list[str]:
    """``record_many(deferred=True)`` over several owners at once: one entry per (owner, target),
    each in its owner's log, chained moments later; one INSERT for all, no chain head touched.
    Returns the entries' ids."""
    request_id = current_request_id()
    pending = [_unchained_fields(owner, actor, action, target, purpose, legal_basis, outcome, details, request_id)
               for owner, target in owned]
    if not pending:
        return []
    # One INSERT of plain rows, not ORM objects: a prefecture's page of a hundred records read
    # writes a hundred entries, and building and flushing them as objects cost more than the page.
    # A reading page on SQLite writes them in a short transaction of its own, not from its snapshot.
    async with writing_beside_snapshot(session) as target, unscoped(session, PENDING_REASON):  # the owner's log
        await target.execute(insert(AuditPending.__table__), pending)
    return [fields["entry_id"] for fields in pending]


async def chain_pending(session: AsyncSession, lg_code: str | None = None, *, limit: int = CHAIN_BATCH) -> int:
    """Chain pending entries (of ``lg_code``, or of every organisation with any), oldest first,
    at most ``limit`` in all; returns how many. The caller commits: the entries move from pending
    to the chain in one transaction, so none is lost or chained twice.

    The chain heads are locked before the pending rows are read, so two chainers of one
    organisation never chain the same entries: ``settle`` (one organisation) waits for the
    head; the job runner's pass (every organisation) skips heads another transaction holds
    and chains them next time. However many organisations are pending, a pass costs the same
    handful of statements (lock the heads, read, insert, delete, move the heads): a prefecture's
    page reads records of a score of municipalities, and chaining them one organisation at a
    time cost six statements each (bench/load.py: a third of the database's statements)."""
    async with unscoped(session, CHAIN_REASON):
        if lg_code is None:
            codes = sorted((await session.scalars(select(AuditPending.lg_code).distinct())).all())
        else:
            codes = [lg_code]
        if not codes:
            return 0
        heads = await _lock_heads(session, codes, wait=lg_code is not None)
        if not heads:
            return 0
        columns = [getattr(AuditPending, name) for name in _PENDING_FIELDS]
        rows = [dict(row._mapping) for row in (await session.execute(
            select(*columns).where(AuditPending.lg_code.in_(sorted(heads)))
            .order_by(AuditPending.occurred_at, AuditPending.entry_id).limit(limit))).all()]
        if not rows:
            return 0
        linked: list[dict[str, Any]] = []
        for row in rows:  # oldest first; each organisation's entries in that order on its own chain
            seq, prev_hash = heads[row["lg_code"]]
            fields = {**row, "seq": seq + 1, "prev_hash": prev_hash}
            fields["hash"] = entry_hash(fields)
            heads[row["lg_code"]] = (seq + 1, fields["hash"])
            linked.append(fields)
        moved = sorted({row["lg_code"] for row in rows})
        await session.execute(insert(AuditEntry.__table__), linked)
        await session.execute(delete(AuditPending.__table__).where(
            AuditPending.__table__.c.lg_code.in_(moved),
            AuditPending.__table__.c.entry_id.in_([row["entry_id"] for row in rows])))
        head = AuditChainHead.__table__
        await session.execute(update(head).where(head.c.lg_code == bindparam("b_code"))
                              .values(seq=bindparam("b_seq"), hash=bindparam("b_hash")),
                              [{"b_code": code, "b_seq": heads[code][0], "b_hash": heads[code][1]} for code in moved])
    return len(linked)


async def _lock_heads(session: AsyncSession, codes: Sequence[str], *, wait: bool) -> dict[str, tuple[int, str]]:
    """Lock the chain heads of ``codes`` (created when missing) in one lock order, so that
    chainers never deadlock; ``wait=False`` leaves out heads another transaction holds. The
    organisations locked, with their heads' (seq, hash). SQLite has one writer at a time: an
    UPDATE takes its write lock before anything is read."""
    head = AuditChainHead.__table__
    if session.bind.dialect.name == "postgresql":
        locking = (select(head.c.lg_code, head.c.seq, head.c.hash).where(head.c.lg_code.in_(codes))
                   .order_by(head.c.lg_code).with_for_update(skip_locked=not wait))
    else:
        locking = (update(head).where(head.c.lg_code.in_(codes)).values(seq=head.c.seq)
                   .returning(head.c.lg_code, head.c.seq, head.c.hash))
    heads = {row.lg_code: (row.seq, row.hash) for row in (await session.execute(locking)).all()}
    if len(heads) < len(codes):  # absent (an organisation's first entries), or held by another
        absent = set(codes) - set(heads) - set((await session.scalars(
            select(head.c.lg_code).where(head.c.lg_code.in_(set(codes) - set(heads))))).all())
        if absent:
            for code in sorted(absent):
                await _lock_head(session, code, 0)  # creates it; two first entries at once insert it once
            heads.update(await _lock_heads(session, sorted(absent), wait=wait))
    return heads


async def has_pending(session: AsyncSession, lg_code: str) -> bool:
    async with unscoped(session, CHAIN_REASON):
        return (await session.execute(select(AuditPending.entry_id).where(AuditPending.lg_code == lg_code)
                                      .limit(1))).first() is not None


async def settle(session: AsyncSession, lg_code: str) -> int:
    """Before an organisation's log is read (its administrators' page, exports, API): chain
    what is pending and commit, so the log shows every recorded access. A read with nothing
    pending (almost always: the job runner chains within a second) writes nothing."""
    chained = 0
    while await has_pending(session, lg_code):
        done = await chain_pending(session, lg_code)
        await session.commit()
        chained += done
        if not done:
            break
    return chained


async def chain_all_pending(session: AsyncSession, *, budget_seconds: float = CHAIN_TICK_SECONDS) -> int:
    """The job runner's tick (every ``CHAIN_EVERY_SECONDS``): chain every organisation's
    pending entries; commits per batch. Returns once nothing is pending or after
    ``budget_seconds``: while a prefecture reads pages of its municipalities' records, entries
    keep arriving, and a tick that waited for none to be left never ended, so the job runner
    that ran it claimed no job (bench/load.py (f): an import accepted under load registered 0
    rows in 100 s). What is left is chained at the next tick, or by ``settle`` before a log is
    read."""
    total = 0
    started = time.monotonic()
    while True:
        done = await chain_pending(session)
        await session.commit()
        total += done
        if done == 0 or time.monotonic() - started >= budget_seconds:
            return total


_PENDING_FIELDS = ("lg_code", "entry_id", "occurred_at", "actor_id", "actor_kind", "actor_label", "action",
                   "target_type", "target_id", "subject_id", "purpose", "legal_basis", "outcome", "request_id",
                   "details")
register_ticker(chain_all_pending, CHAIN_EVERY_SECONDS)


def _named_actor():
    """The condition of the partial index ``ix_audit_entry_lg_code_named_actor`` (models.py), with
    the kinds written as constants, not parameters: a database uses a partial index only for a
    query whose condition it can see implies the index's. Residents and businesses
    (``UNNAMED_ACTOR_KINDS``) act for themselves under labels without names (住民（本人）) and at
    デジタル庁, whose chain holds every resident's sign-in, number hundreds of thousands: they are
    not offered as a choice of 操作者. Their entries stay in the log, and a resident reads them as
    「わたしの情報の利用記録」 (``entries_about``)."""
    return AuditEntry.actor_kind.not_in([literal_column(f"'{kind}'") for kind in UNNAMED_ACTOR_KINDS])


@dataclass(frozen=True)
class AuditFilter:
    """What a person narrows the log to: a period (UTC, ``until`` exclusive), one actor, one
    action, one outcome. Empty fields do not narrow."""

    since: datetime | None = None
    until: datetime | None = None
    actor_id: str | None = None
    action: str | None = None
    outcome: str | None = None

    @property
    def narrows(self) -> bool:
        return any(value is not None and value != "" for value in
                   (self.since, self.until, self.actor_id, self.action, self.outcome))

    def apply(self, statement):
        if self.since is not None:
            statement = statement.where(AuditEntry.occurred_at >= self.since)
        if self.until is not None:
            statement = statement.where(AuditEntry.occurred_at < self.until)
        if self.actor_id:
            # The actors one may choose are the named ones (``AuditRepository.actors``).
            statement = statement.where(AuditEntry.actor_id == self.actor_id, _named_actor())
        if self.action:
            statement = statement.where(AuditEntry.action == self.action)
        if self.outcome:
            statement = statement.where(AuditEntry.outcome == self.outcome)
        return statement


class AuditRepository(TenantRepository[AuditEntry]):
    """One organisation's log, read so that a page costs what it shows whatever the chain's
    length (デジタル庁's holds every platform sign-in: hundreds of thousands of entries):

    * unfiltered, a page is a range of sequence numbers counted back from the chain head (the
      chain is numbered 1..head without gaps; the head is also the count);
    * filtered, the page's sequence numbers are found first, in an index led by ``lg_code`` that
      holds them (no table rows read for the entries skipped), then only those rows are read;
    * the choices of the filter form (actions, actors) are found by skipping through an index
      from one distinct value to the next, not by reading every entry.
    """

    model = AuditEntry

    async def head_seq(self) -> int:
        head = await self.session.scalar(select(AuditChainHead.seq).where(AuditChainHead.lg_code == self.tenant.lg_code))
        return int(head or 0)

    async def recent(self, limit: int = 200, offset: int = 0,
                     where: AuditFilter = AuditFilter()) -> Sequence[AuditEntry]:
        if not where.narrows:
            newest = await self.head_seq() - offset
            return await self.all(self.select().where(AuditEntry.seq <= newest, AuditEntry.seq > newest - limit)
                                  .order_by(AuditEntry.seq.desc()))
        page = self.page_of_sequence_numbers(limit, offset, where)
        return await self.all(self.select().where(AuditEntry.seq.in_(page.scalar_subquery()))
                              .order_by(AuditEntry.seq.desc()))

    def page_of_sequence_numbers(self, limit: int, offset: int, where: AuditFilter):
        """The sequence numbers of a filtered page, newest first: answered from the filter's index
        (it holds seq), so the entries skipped are never read."""
        return (where.apply(select(AuditEntry.seq).where(AuditEntry.lg_code == self.tenant.lg_code))
                .order_by(AuditEntry.seq.desc()).limit(limit).offset(offset))

    async def count_matching(self, where: AuditFilter = AuditFilter()) -> int:
        if not where.narrows:
            return await self.head_seq()
        return await self.count(where.apply(self.select()))

    async def in_order(self, where: AuditFilter = AuditFilter()) -> Sequence[AuditEntry]:
        return await self.all(where.apply(self.select()).order_by(AuditEntry.seq))

    def _latest_per_value(self, column, *conditions):
        """(value, seq of its latest entry) for each distinct value of ``column`` among the
        tenant's entries, two index probes per value: a recursive query asks each time for the
        smallest value above the last one found (what ``SELECT DISTINCT`` would answer by reading
        every entry), then each value's highest sequence number. The pairs are MATERIALIZED, a
        table to join on: each entry is then one primary-key lookup. (Written as a subquery, in
        ``seq IN (...)`` or inlined, it made PostgreSQL read the whole chain to hash it: 2.6 s at
        デジタル庁, against under a millisecond this way.)"""
        own = (AuditEntry.lg_code == self.tenant.lg_code, column.is_not(None), *conditions)
        first = select(func.min(column).label("value")).select_from(AuditEntry).where(*own)
        found = first.cte("found", recursive=True)
        following = select(func.min(column)).select_from(AuditEntry).where(*own, column > found.c.value).scalar_subquery()
        found = found.union_all(select(following).where(found.c.value.is_not(None)))
        latest = select(func.max(AuditEntry.seq)).select_from(AuditEntry).where(*own, column == found.c.value).scalar_subquery()
        return (select(found.c.value, latest.label("seq")).where(found.c.value.is_not(None))
                .cte("latest").prefix_with("MATERIALIZED"))

    async def actors(self) -> list[tuple[str, str]]:
        """(actor id, latest label) of everyone named who appears in the log, by label: staff,
        operators, systems (API keys) and failed sign-ins of known accounts; not residents and
        businesses (``UNNAMED_ACTOR_KINDS``)."""
        rows = (await self.session.execute(self.latest_of_each_actor())).all()
        return sorted(((actor_id, label) for actor_id, label in rows), key=lambda item: (item[1], item[0]))

    def latest_of_each_actor(self):
        found = self._latest_per_value(AuditEntry.actor_id, _named_actor())
        return (select(AuditEntry.actor_id, AuditEntry.actor_label).join(found, AuditEntry.seq == found.c.seq)
                .where(AuditEntry.lg_code == self.tenant.lg_code))

    def latest_of_each_action(self):
        found = self._latest_per_value(AuditEntry.action)
        # occurred_at, unused, keeps SQLite from answering from the (lg_code, action, seq) index by
        # reading all of it: with a column that index lacks, it looks the rows up by primary key.
        return (select(AuditEntry.action, AuditEntry.occurred_at).join(found, AuditEntry.seq == found.c.seq)
                .where(AuditEntry.lg_code == self.tenant.lg_code))

    async def actions(self) -> list[str]:
        """The action codes that occur in the log."""
        rows = await self.session.execute(self.latest_of_each_action())
        return sorted(code for code, _ in rows.all())


@dataclass(frozen=True)
class ChainProblem:
    lg_code: str
    seq: int | None
    message: str


class _ChainCheck:
    """One organisation's chain checked entry by entry, so that a chain of millions is read in
    batches instead of held in memory."""

    def __init__(self, lg_code: str) -> None:
        self.lg_code = lg_code
        self.expected_prev = GENESIS
        self.expected_seq = 1
        self.problems: list[ChainProblem] = []

    def feed(self, entry) -> bool:
        """Check the next entry (an AuditEntry or a row with the same columns); False once a
        problem is found (the rest of the chain cannot be judged)."""
        if self.problems:
            return False
        lg_code, expected_seq = self.lg_code, self.expected_seq
        if entry.seq != expected_seq:
            missing = f"#{expected_seq}" if entry.seq == expected_seq + 1 else f"#{expected_seq}〜#{entry.seq - 1}"
            self.problems.append(ChainProblem(lg_code, entry.seq,
                                              f"記録 {missing} が欠落しています（削除された可能性があります）。" if entry.seq > expected_seq
                                              else f"記録 #{entry.seq} の順序が不正です（#{expected_seq} があるべき位置）。"))
            return False
        if entry.hash != entry_hash(_fields_of(entry)):
            self.problems.append(ChainProblem(lg_code, entry.seq,
                                              f"記録 #{entry.seq}（{entry.action}）の内容が記録後に変更されています。"))
            return False
        if entry.prev_hash != self.expected_prev:
            self.problems.append(ChainProblem(lg_code, entry.seq,
                                              f"記録 #{entry.seq} の前の記録とのつながりが切れています（並べ替えまたは差し替え）。"))
            return False
        self.expected_prev = entry.hash
        self.expected_seq += 1
        return True

    def finish(self, head: AuditChainHead | None) -> list[ChainProblem]:
        if self.problems:
            return self.problems
        last_seq = self.expected_seq - 1
        if head is not None and (head.seq != last_seq or head.hash != self.expected_prev):
            self.problems.append(ChainProblem(self.lg_code, head.seq,
                                              f"最後の記録 #{head.seq} が見つかりません（末尾が削除された可能性があります）。"
                                              if head.seq > last_seq else "チェーンの先頭情報が記録と一致しません。"))
        return self.problems

    @property
    def checked(self) -> int:
        return self.expected_seq - 1


def verify_entries(lg_code: str, entries: Sequence[AuditEntry], head: AuditChainHead | None) -> list[ChainProblem]:
    """Problems in one organisation's chain, earliest first ([] when intact)."""
    check = _ChainCheck(lg_code)
    for entry in entries:
        if not check.feed(entry):
            break
    return check.finish(head)


VERIFY_BATCH = 10_000
_VERIFIED_COLUMNS = (*HASHED_FIELDS, "hash")


async def _rows_in_chain_order(session: AsyncSession, lg_code: str | None = None, batch: int = VERIFY_BATCH):
    """Every entry's hashed columns (rows, not ORM objects: a fifth of the cost), by organisation
    and sequence, read in primary-key order a batch at a time (keyset, so each batch is an index
    range whatever the chain's length)."""
    columns = [getattr(AuditEntry, name) for name in _VERIFIED_COLUMNS]
    after: tuple[str, int] | None = None
    while True:
        statement = select(*columns).order_by(AuditEntry.lg_code, AuditEntry.seq).limit(batch)
        if lg_code is not None:
            statement = statement.where(AuditEntry.lg_code == lg_code)
            if after is not None:
                statement = statement.where(AuditEntry.seq > after[1])
        elif after is not None:
            statement = statement.where(tuple_(AuditEntry.lg_code, AuditEntry.seq) > tuple_(*after))
        rows = (await session.execute(statement)).all()
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = (rows[-1].lg_code, rows[-1].seq)


async def verify_chain(session: AsyncSession, lg_code: str) -> tuple[int, list[ChainProblem]]:
    """(entries checked, problems) of one organisation's chain: the tenant bound to ``session``
    or, for an operator, inside ``unscoped``."""
    head = await session.get(AuditChainHead, lg_code)
    check = _ChainCheck(lg_code)
    async for row in _rows_in_chain_order(session, lg_code):
        if not check.feed(row):
            break
    return check.checked, check.finish(head)


async def verify_all(session: AsyncSession) -> tuple[int, int, list[ChainProblem]]:
    """(organisations checked, entries checked, problems). Reads every chain, in batches (a
    national deployment's log does not fit in memory): operator use only, inside ``unscoped``."""
    heads = {h.lg_code: h for h in (await session.scalars(select(AuditChainHead))).all()}
    problems: list[ChainProblem] = []
    seen: set[str] = set()
    entries = 0
    check: _ChainCheck | None = None
    async for row in _rows_in_chain_order(session):
        entries += 1
        if check is None or row.lg_code != check.lg_code:
            if check is not None:
                problems.extend(check.finish(heads.get(check.lg_code)))
            check = _ChainCheck(row.lg_code)
            seen.add(row.lg_code)
        check.feed(row)
    if check is not None:
        problems.extend(check.finish(heads.get(check.lg_code)))
    for lg_code in sorted(set(heads) - seen):  # a head whose every entry is gone
        problems.extend(_ChainCheck(lg_code).finish(heads[lg_code]))
    problems.sort(key=lambda p: p.lg_code)
    return len(set(heads) | seen), entries, problems


ACCESS_LOG_LIMIT = 500


async def entries_about(session: AsyncSession, subject_id: str,
                        limit: int = ACCESS_LOG_LIMIT) -> list[AuditEntry | AuditPending]:
    """Every recorded access to one person's data, by any organisation, newest first (at most
    ``limit``): what a resident reads as 「わたしの情報の利用記録」. Reads across every
    organisation's chain by design, for the person the entries are about, and only by them.
    Entries not yet chained (``AuditPending``: reads moments ago) are listed too."""
    async with unscoped(session, "本人による自分の情報の利用記録の閲覧"):
        chained = (await session.scalars(
            select(AuditEntry).where(AuditEntry.subject_id == subject_id)
            .order_by(AuditEntry.occurred_at.desc()).limit(limit))).all()
        pending = (await session.scalars(
            select(AuditPending).where(AuditPending.subject_id == subject_id)
            .order_by(AuditPending.occurred_at.desc()).limit(limit))).all()
    return sorted([*chained, *pending], key=lambda e: e.occurred_at, reverse=True)[:limit]
