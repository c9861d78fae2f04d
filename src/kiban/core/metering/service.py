"""Metering: every submission, booking and notification counted per tenant, service and month.

Other modules call one function, in the transaction of the event they count::

    await metering.count(session, tenant, "aichi-e-shinsei", "submission", key=submission.id)

Semantics
---------
* **Counted iff the event commits.** ``count`` only writes rows in the caller's session and
  transaction; it never commits. A rollback removes the count with the event.
* **Once per key.** With ``key``, the same (tenant, service, event, key) counts once however
  often it is retried (a worker redelivering, a double submit). The first call wins, also its
  ``quantity`` and month. Without ``key`` every call counts.
* **Month** is the calendar month in Japan time (JST) of ``at`` (default: now).

Storage (why it stays cheap for 1,788 tenants × many events)
-------------------------------------------------------------
* ``usage_counter`` holds the counts themselves: one row per (tenant, service, event, month,
  shard), incremented with ``INSERT ... ON CONFLICT DO UPDATE SET total = total + n`` (both
  databases). A month's count is ``SUM(total)`` over at most ``SHARDS`` rows, so reading a
  tenant's year or a consortium's month reads a few hundred rows, never the events. The shard
  (random per call) spreads concurrent writers of one busy tenant over ``SHARDS`` rows, so 200
  residents submitting at once do not queue on one row lock on PostgreSQL.
  Size: 1,788 tenants × ~10 (service, event) × 12 months × ≤8 shards ≈ 1.7 M rows a year at
  most, indexed by tenant first (``lg_code`` leads the primary key) and by (service, month).
* ``usage_event_key`` records each keyed event once (``INSERT ... ON CONFLICT DO NOTHING
  RETURNING``): only when the insert went in is the counter incremented. On PostgreSQL a
  concurrent transaction inserting the same key waits for the first to finish and then counts
  only if the first rolled back. Rows are only needed while a retry is possible: ``purge_keys``
  drops those of months before a cut-off (e.g. older than two months) without touching counts.

Who sees what (the rule, ``secretariat_may_read_usage`` in ``kiban.modules.costs.metered``)
------------------------------------------------------------------------------------------
A municipality sees its own usage only (``/t/{lg_code}/usage``: tenant scoping, and RLS on
PostgreSQL). A consortium's secretariat sees its members' usage of the consortium's shared
systems only — not other services, not non-members — checked by ``secretariat_may_read_usage``
before ``queries.usage_of_tenants``, the one deliberate cross-tenant read (a named
``unscoped()``). Counts say how many, never who: the read is not audited; fees decided from
them are (``costs.schedule.decided`` carries the basis).

Hot path
--------
One call is one or two single-row statements (no read-modify-write in Python): the idempotency
insert (if keyed) and the counter upsert. Call it late in the transaction (just before commit)
so the counter's row lock is held briefly.
"""

from __future__ import annotations

import random
import re
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any, AsyncIterator
from zoneinfo import ZoneInfo

from sqlalchemy import Date, DateTime, Integer, bindparam, column, delete, select, table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.metering.models import UsageCounter, UsageEventKey
from kiban.core.tenancy.context import Tenant, as_tenant, current_tenant, unscoped

JST = ZoneInfo("Asia/Tokyo")
SHARDS = 8
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,59}$")
_EVENT = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


class UnknownService(ValueError):
    """``count`` was given a service id that is not in the catalog (a programming error)."""


# The catalog's ids, read once per process and again on a miss (a service added since).
# core must not import a module's models, so the table is named here, read-only.
_CATALOG = table("catalog_service", column("id"))
_known_services: set[str] = set()


async def _check_service(session: AsyncSession, service: str) -> None:
    if service in _known_services:
        return
    _known_services.update((await session.scalars(select(_CATALOG.c.id))).all())
    if service not in _known_services:
        raise UnknownService(f"catalog service not found: {service!r}")


def month_of(at: datetime) -> date:
    """The first day of ``at``'s month in Japan time."""
    if at.tzinfo is None:
        raise ValueError("naive datetime given; use datetime.now(UTC)")
    local = at.astimezone(JST)
    return date(local.year, local.month, 1)


def _tenant_of(tenant: Any) -> Tenant:
    if isinstance(tenant, Tenant):
        return tenant
    if isinstance(tenant, str):
        return Tenant(lg_code=tenant, name=tenant, type="", prefecture_code=None)
    code = getattr(tenant, "lg_code", None) or getattr(tenant, "code", None)
    if not code:
        raise TypeError(f"not a tenant: {tenant!r}")
    return Tenant(lg_code=code, name=getattr(tenant, "name", code), type=getattr(tenant, "type", ""),
                  prefecture_code=getattr(tenant, "prefecture_code", None))


@asynccontextmanager
async def _acting_for(session: AsyncSession, tenant: Tenant) -> AsyncIterator[None]:
    bound = current_tenant(session)
    if bound is not None and bound.lg_code == tenant.lg_code:
        yield
        return
    # A worker (outbox delivery, a job) counts for the tenant of the row it handles.
    async with as_tenant(session, tenant):
        yield


def _insert(session: AsyncSession, model):
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(model)


_PG_KEYED = text(
    "WITH k AS (INSERT INTO usage_event_key (lg_code, service_id, event, key, month, quantity, counted_at)"
    " VALUES (:lg, :svc, :ev, :key, :month, :q, :now)"
    " ON CONFLICT (lg_code, service_id, event, key) DO NOTHING RETURNING 1)"
    " INSERT INTO usage_counter (lg_code, service_id, event, month, shard, total, updated_at)"
    " SELECT :lg, :svc, :ev, :month, :shard, :q, :now FROM k"
    " ON CONFLICT (lg_code, service_id, event, month, shard)"
    " DO UPDATE SET total = usage_counter.total + EXCLUDED.total, updated_at = EXCLUDED.updated_at"
).bindparams(bindparam("month", type_=Date()), bindparam("now", type_=DateTime(timezone=True)),
             bindparam("q", type_=Integer()), bindparam("shard", type_=Integer()))


async def count(session, tenant, service: str, event: str, *, quantity: int = 1, key: str | None = None,
                at: datetime | None = None) -> None:
    """Count ``quantity`` units of ``event`` of catalog service ``service`` for ``tenant``.

    Writes in the caller's transaction (counted iff it commits); the same
    (tenant, service, event, key) counts once. ``tenant``: a ``Tenant`` (or an lg_code)."""
    if not isinstance(service, str) or not _NAME.match(service):
        raise ValueError(f"service must be a catalog service id: {service!r}")
    if not isinstance(event, str) or not _EVENT.match(event):
        raise ValueError(f"event must be a short lower-case name: {event!r}")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise ValueError(f"quantity must be a positive integer: {quantity!r}")
    if key is not None and (not isinstance(key, str) or not key or len(key) > 200):
        raise ValueError("key must be a non-empty string of at most 200 characters")
    who = _tenant_of(tenant)
    now = datetime.now(UTC)
    month = month_of(at or now)
    await _check_service(session, service)
    async with _acting_for(session, who):
        if key is not None and session.get_bind().dialect.name == "postgresql":
            # One round trip: the counter is incremented only if the key went in.
            await session.execute(_PG_KEYED, {
                "lg": who.lg_code, "svc": service, "ev": event, "key": key, "month": month, "q": quantity,
                "now": now, "shard": random.randrange(SHARDS)})
            return
        if key is not None:
            stmt = _insert(session, UsageEventKey).values(
                lg_code=who.lg_code, service_id=service, event=event, key=key, month=month,
                quantity=quantity, counted_at=now,
            ).on_conflict_do_nothing(index_elements=["lg_code", "service_id", "event", "key"])
            inserted = (await session.execute(stmt.returning(UsageEventKey.key))).first()
            if inserted is None:
                return  # counted before (a retry)
        stmt = _insert(session, UsageCounter).values(
            lg_code=who.lg_code, service_id=service, event=event, month=month,
            shard=random.randrange(SHARDS), total=quantity, updated_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["lg_code", "service_id", "event", "month", "shard"],
            set_={"total": UsageCounter.__table__.c.total + stmt.excluded.total,
                  "updated_at": stmt.excluded.updated_at},
        )
        await session.execute(stmt)


async def purge_keys(session: AsyncSession, tenant, *, before: date) -> int:
    """Drop one tenant's idempotency records of months before ``before`` (counts stay)."""
    who = _tenant_of(tenant)
    async with _acting_for(session, who):
        result = await session.execute(
            delete(UsageEventKey).where(UsageEventKey.lg_code == who.lg_code, UsageEventKey.month < before)
        )
    return int(result.rowcount or 0)


async def purge_all_keys(session: AsyncSession, *, before: date) -> int:
    """Every tenant's idempotency records of months before ``before`` (operator housekeeping, e.g.
    a monthly job: retries come within minutes or days, never months). Counts stay."""
    async with unscoped(session, "利用実績: 再送判定用の古い記録を全団体分まとめて削除（件数は残す）"):
        result = await session.execute(delete(UsageEventKey).where(UsageEventKey.month < before))
    return int(result.rowcount or 0)


KEEP_KEY_MONTHS = 2


def key_cutoff(now: datetime) -> date:
    """The first month whose idempotency records are kept: this month and the two before it."""
    month = now.astimezone(JST).date().replace(day=1)
    index = month.year * 12 + month.month - 1 - KEEP_KEY_MONTHS
    return date(index // 12, index % 12 + 1, 1)


async def prune_keys(session: AsyncSession, now: datetime) -> int:
    """The job runner's hourly clean-up: idempotency records older than two months go."""
    return await purge_all_keys(session, before=key_cutoff(now))


def _register() -> None:
    from kiban.core.jobs.runner import register_pruner

    register_pruner(prune_keys)


_register()
