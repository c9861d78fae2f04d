"""Audit entries as people read them: the action in Japanese, the actor and the target by name.

Entries store ids (a principal, an API key, a victim record); names are looked up when the log
is read, within the organisation whose log it is (the session's tenant), so a renamed person
shows their current name and nothing of another organisation is revealed. Targets of the
service modules are looked up by table name rather than by importing the modules: core does
not depend on modules, and a missing table only costs the name, never the page.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import column, select, table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit.labels import (
    action_label,
    actor_kind_label,
    details_text,
    outcome_label,
    target_type_label,
)
from kiban.core.audit.models import AuditEntry
from kiban.core.tenancy.context import current_tenant


@dataclass(frozen=True)
class EntryView:
    entry: AuditEntry
    action: str
    actor: str
    actor_kind: str
    target_type: str
    target: str
    details: str
    outcome: str


# target type -> (table, id column, name columns joined by a space). Tables with an lg_code
# are tenant-owned: only the log owner's own rows are named.
_NAMED_ROWS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "disaster": ("disaster", "id", ("name",)),
    "shelter": ("shelter", "id", ("name",)),
    "victim_record": ("victim_record", "id", ("family_name", "given_name")),
    "roster_import": ("roster_import", "id", ("filename",)),
    "catalog_service": ("catalog_service", "id", ("name",)),
    "catalog_adoption": ("catalog_service", "id", ("name",)),
    "catalog_vendor": ("catalog_vendor", "id", ("name",)),
}


_TENANT_OWNED = {"shelter", "victim_record", "roster_import"}


async def _rows(session: AsyncSession, table_name: str, id_column: str, name_columns: Sequence[str],
                ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows_table = table(table_name, column(id_column), column("lg_code"), *(column(c) for c in name_columns))
    statement = select(rows_table.c[id_column], *(rows_table.c[c] for c in name_columns)).where(
        rows_table.c[id_column].in_(wanted))
    if table_name in _TENANT_OWNED:
        tenant = current_tenant(session)
        if tenant is None:
            return {}
        statement = statement.where(rows_table.c.lg_code == tenant.lg_code)
    try:
        async with session.begin_nested():
            rows = (await session.execute(statement)).all()
    except SQLAlchemyError:
        return {}
    return {str(row[0]): " ".join(str(v) for v in row[1:] if v) for row in rows}


async def _principals(session: AsyncSession, ids: Iterable[str]) -> dict[str, str]:
    from kiban.core.identity.models import Principal

    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await session.execute(select(Principal.id, Principal.display_name).where(Principal.id.in_(wanted)))
    return dict(rows.all())


async def _api_keys(session: AsyncSession, ids: Iterable[str]) -> dict[str, str]:
    from kiban.core.identity.models import ApiKey

    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await session.execute(select(ApiKey.id, ApiKey.name).where(ApiKey.id.in_(wanted)))
    return dict(rows.all())


async def _grants(session: AsyncSession, ids: Iterable[str]) -> dict[str, str]:
    from kiban.core.identity.permissions import permission_label
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.grants_models import AccessGrant

    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = (await session.execute(select(AccessGrant.id, AccessGrant.grantee_code, AccessGrant.permission)
                                  .where(AccessGrant.id.in_(wanted)))).all()
    orgs = await registry_service.organizations_by_code(session, sorted({code for _, code, _ in rows}))
    return {grant_id: f"{orgs[code].name if code in orgs else code}へ（{permission_label(permission)}）"
            for grant_id, code, permission in rows}


def _setting_label(key: str) -> str | None:
    from kiban.core.tenancy.settings_definitions import DEFINITIONS

    definition = DEFINITIONS.get(key)
    return definition.label if definition else None


async def target_names(session: AsyncSession, entries: Sequence[AuditEntry]) -> dict[tuple[str, str], str]:
    """(target type, target id) -> the target's name, for the targets that can be named."""
    ids: dict[str, set[str]] = defaultdict(set)
    for e in entries:
        if e.target_type and e.target_id:
            ids[e.target_type].add(e.target_id)
    names: dict[tuple[str, str], str] = {}

    def keep(target_type: str, found: dict[str, str]) -> None:
        names.update({(target_type, key): value for key, value in found.items() if value})

    keep("principal", await _principals(session, ids.pop("principal", ())))
    keep("api_key", await _api_keys(session, ids.pop("api_key", ())))
    keep("access_grant", await _grants(session, ids.pop("access_grant", ())))
    for key in ids.pop("tenant_setting", ()):
        if label := _setting_label(key):
            names[("tenant_setting", key)] = label
    for path in ids.pop("route", ()):
        names[("route", path)] = path
    systems = ids.pop("consortium_system", set())
    fee_services = {str((e.details or {}).get("service")) for e in entries
                    if e.target_type == "fee_schedule" and (e.details or {}).get("service")}
    consortia = await _rows(session, "consortium", "id", ("name",), {s.split("/", 1)[0] for s in systems})
    services = await _rows(session, "catalog_service", "id", ("name",),
                           {s.split("/", 1)[-1] for s in systems} | fee_services)
    for system in systems:
        consortium_id, _, service_id = system.partition("/")
        if service_id in services:
            names[("consortium_system", system)] = " ".join(
                filter(None, [consortia.get(consortium_id), services[service_id]]))
    for e in entries:
        service_id = str((e.details or {}).get("service") or "")
        if e.target_type == "fee_schedule" and service_id in services:
            names[("fee_schedule", e.target_id)] = services[service_id]
    for target_type, wanted in ids.items():
        if target_type in _NAMED_ROWS:
            table_name, id_column, name_columns = _NAMED_ROWS[target_type]
            keep(target_type, await _rows(session, table_name, id_column, name_columns, wanted))
    return names


def _target_name(entry: AuditEntry, names: dict[tuple[str, str], str]) -> str:
    if not entry.target_type:
        return ""
    found = names.get((entry.target_type, entry.target_id or ""))
    if found:
        return found
    details = entry.details or {}
    for key in ("name", "label"):
        if isinstance(details.get(key), str) and details[key]:
            return details[key]
    return ""


async def describe(session: AsyncSession, entries: Sequence[AuditEntry]) -> list[EntryView]:
    names = await target_names(session, entries)
    return [EntryView(
        entry=e, action=action_label(e.action), actor=e.actor_label, actor_kind=actor_kind_label(e.actor_kind),
        target_type=target_type_label(e.target_type), target=_target_name(e, names),
        details=details_text(e.details), outcome=outcome_label(e.outcome),
    ) for e in entries]
