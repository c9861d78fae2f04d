"""Metered usage for a consortium (core/metering → fees): the secretariat's usage page across its
members, and the 利用量割 basis taken from the counts instead of figures entered by hand.

The rule, named ``secretariat_may_read_usage`` (``kiban.core.metering.service`` repeats it):

    A municipality reads its own usage only. A consortium's secretariat reads its members'
    usage of the consortium's shared systems only: the URL's tenant must be the consortium's
    secretariat (else 404, as for any consortium page), the service must be one of the
    consortium's systems (else 404), and only the consortium's members' counters are read.
    Nothing else crosses a tenant boundary.

The read itself is ``kiban.core.metering.queries.usage_of_tenants`` inside a named ``unscoped()``.
Counts are not personal data (how many, never who), so the read is not written to the audit log;
deciding fees from them is (``costs.schedule.decided``, with the basis in its details).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.metering import queries as metering
from kiban.core.tenancy.context import Tenant
from kiban.kit.errors import InvalidInput, NotFound
from kiban.modules.catalog import service as catalog

SECRETARIAT_RULE = ("協議会の事務局は、その協議会が共同利用するシステムについてだけ、構成団体の利用実績を閲覧できます。"
                    "各団体は自団体の利用実績だけを閲覧できます。")


@dataclass(frozen=True)
class UsageScope:
    """What ``secretariat_may_read_usage`` allowed: one consortium, one of its systems, its members."""

    consortium: object
    shared: catalog.SharedSystem
    members: list  # Organization rows, by code


async def secretariat_may_read_usage(session: AsyncSession, tenant: Tenant, consortium_id: str,
                                     service_id: str) -> UsageScope:
    """The rule (see the module docstring). NotFound for anything it does not allow."""
    consortium = await catalog.get_consortium(session, consortium_id)
    if consortium.secretariat_code != tenant.lg_code:
        raise NotFound("共同利用の枠組みが見つかりません。")
    shared = await catalog.shared_system(session, consortium_id, service_id)
    members = await catalog.consortium_members(session, consortium_id)
    return UsageScope(consortium, shared, members)


async def _read(session: AsyncSession, tenant: Tenant, scope: UsageScope, codes: list[str], month_from: date,
                month_to: date, event: str | None = None) -> list[metering.UsageRow]:
    allowed = {m.code for m in scope.members}
    wanted = [code for code in codes if code in allowed]  # never more than the rule allows
    return await metering.usage_of_tenants(
        session, wanted, scope.shared.service.id, month_from, month_to, event=event,
        reason=f"協議会事務局（{tenant.name}）が構成団体の利用実績を参照: {scope.consortium.name}・{scope.shared.service.name}")


@dataclass
class MemberUsage:
    code: str
    name: str
    uses_system: bool
    counts: dict[str, int] = field(default_factory=dict)  # event → count

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class ConsortiumUsage:
    consortium: object
    service_id: str
    service_name: str
    month_from: date
    month_to: date
    events: list[str]
    members: list[MemberUsage]

    def event_total(self, event: str) -> int:
        return sum(m.counts.get(event, 0) for m in self.members)


async def consortium_usage(session: AsyncSession, tenant: Tenant, consortium_id: str, service_id: str,
                           month_from: date, month_to: date) -> ConsortiumUsage:
    """Every member's counts of one shared system over the months, by event."""
    scope = await secretariat_may_read_usage(session, tenant, consortium_id, service_id)
    month_from, month_to = metering.period(month_from, month_to)
    rows = await _read(session, tenant, scope, [m.code for m in scope.members], month_from, month_to)
    by_code = {m.code: MemberUsage(m.code, m.name, m.code in scope.shared.user_codes) for m in scope.members}
    events: set[str] = set()
    for row in rows:
        counts = by_code[row.lg_code].counts
        counts[row.event] = counts.get(row.event, 0) + row.total
        events.add(row.event)
    ordered = [e for e in metering.EVENT_LABELS if e in events] + sorted(events - set(metering.EVENT_LABELS))
    return ConsortiumUsage(scope.consortium, service_id, scope.shared.service.name, month_from, month_to, ordered,
                           list(by_code.values()))


@dataclass(frozen=True)
class MeteredBasis:
    """Where the 利用量割 figures came from (shown with the allocation and kept in the schedule)."""

    service_id: str
    service_name: str
    event: str
    month_from: date
    month_to: date
    units: dict[str, int]  # member code → count (0 when nothing was counted)

    @property
    def event_label(self) -> str:
        return metering.event_label(self.event)

    @property
    def total(self) -> int:
        return sum(self.units.values())

    def describe(self) -> str:
        return (f"計測値: {self.service_name}の「{self.event_label}」件数、"
                f"{metering.month_label(self.month_from)}〜{metering.month_label(self.month_to)}")

    def as_json(self) -> dict:
        return {"source": "metered", "service_id": self.service_id, "service_name": self.service_name,
                "event": self.event, "event_label": self.event_label,
                "month_from": metering.month_text(self.month_from), "month_to": metering.month_text(self.month_to),
                "total": self.total, "units": dict(self.units), "description": self.describe()}


async def metered_units(session: AsyncSession, tenant: Tenant, consortium_id: str, service_id: str, event: str,
                        month_from: date, month_to: date, codes: list[str]) -> MeteredBasis:
    """The counts of ``event`` of ``service_id`` per member in ``codes`` over the months: the
    利用量割 basis. A member with no count has 0 (metered: nothing used), unlike a hand-entered
    figure left blank (not yet known)."""
    scope = await secretariat_may_read_usage(session, tenant, consortium_id, service_id)
    month_from, month_to = metering.period(month_from, month_to)
    if not event:
        raise InvalidInput("利用量の基準にする利用の種類を選んでください。")
    rows = await _read(session, tenant, scope, codes, month_from, month_to, event=event)
    units = {code: 0 for code in codes}
    for row in rows:
        units[row.lg_code] += row.total
    return MeteredBasis(service_id, scope.shared.service.name, event, month_from, month_to, units)


def metered_period(raw_from: str, raw_to: str) -> tuple[tuple | None, dict[str, str]]:
    """Default: this month only. Every problem at once, by field."""
    errors: dict[str, str] = {}
    start = end = None
    try:
        start = metering.parse_month(raw_from, "開始月") if raw_from.strip() else metering.this_month()
    except InvalidInput as exc:
        errors["from"] = exc.detail
    try:
        end = metering.parse_month(raw_to, "終了月") if raw_to.strip() else start or metering.this_month()
    except InvalidInput as exc:
        errors["to"] = exc.detail
    if not errors:
        try:
            return metering.period(start, end), {}
        except InvalidInput as exc:
            errors["to"] = exc.detail
    return None, errors
