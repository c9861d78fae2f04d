"""Resolving and changing テナント設定.

Effective value = the municipality's own value, else its prefecture's, else the national
default. Reading the prefecture's value is a deliberate cross-tenant read (``unscoped``, for the
municipality's and its prefecture's rows only): what a prefecture decides for its municipalities
is meant to be seen by them.
Every change writes a versioned history row in the same transaction; callers commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.tenancy.context import Tenant, unscoped
from kiban.core.tenancy.repository import TenantRepository
from kiban.core.tenancy.settings_definitions import DEFINITIONS, SettingDefinition, get_definition
from kiban.core.tenancy.settings_models import TenantSetting, TenantSettingChange
from kiban.kit.db import utcnow
from kiban.kit.errors import Conflict, InvalidInput

NATIONAL = "国の既定値"
PREFECTURE = "都道府県の設定"
OWN = "この団体の設定"


class TenantSettingRepository(TenantRepository[TenantSetting]):
    model = TenantSetting

    async def overrides(self) -> dict[str, TenantSetting]:
        return {row.key: row for row in await self.all(self.select())}

    async def for_key(self, key: str) -> TenantSetting | None:
        return await self.first(self.select().where(TenantSetting.key == key))


class TenantSettingChangeRepository(TenantRepository[TenantSettingChange]):
    model = TenantSettingChange

    async def recent(self, key: str | None = None, limit: int = 100) -> Sequence[TenantSettingChange]:
        statement = self.select()
        if key:
            statement = statement.where(TenantSettingChange.key == key)
        return await self.all(statement.order_by(TenantSettingChange.changed_at.desc(),
                                                 TenantSettingChange.version.desc()).limit(limit))

    async def last_version(self, key: str) -> int:
        latest = await self.first(self.select().where(TenantSettingChange.key == key)
                                  .order_by(TenantSettingChange.version.desc()))
        return latest.version if latest else 0


@dataclass(frozen=True)
class EffectiveSetting:
    definition: SettingDefinition
    value: Any
    source: str
    source_code: str | None
    own_value: Any | None
    own_version: int | None

    @property
    def display(self) -> str:
        return self.definition.display(self.value)


async def _own_and_inherited(session: AsyncSession, tenant: Tenant) -> tuple[dict[str, TenantSetting],
                                                                              dict[str, TenantSetting]]:
    """The tenant's own values and, for a municipality, its prefecture's: one statement for both
    (on every disaster page for the crowding warning, this was four round trips)."""
    prefecture = tenant.prefecture_code
    if prefecture is None or prefecture == tenant.lg_code:
        return await TenantSettingRepository(session).overrides(), {}
    async with unscoped(session, "a municipality's settings inherit its prefecture's values"):
        rows = (await session.scalars(
            select(TenantSetting).where(TenantSetting.lg_code.in_([tenant.lg_code, prefecture])))).all()
    return ({row.key: row for row in rows if row.lg_code == tenant.lg_code},
            {row.key: row for row in rows if row.lg_code == prefecture})


async def effective_settings(session: AsyncSession, tenant: Tenant) -> list[EffectiveSetting]:
    own, inherited = await _own_and_inherited(session, tenant)
    result = []
    for key, definition in DEFINITIONS.items():
        if key in own:
            value, source, code = own[key].value, OWN, tenant.lg_code
        elif key in inherited:
            value, source, code = inherited[key].value, PREFECTURE, tenant.prefecture_code
        else:
            value, source, code = definition.default, NATIONAL, None
        mine = own.get(key)
        result.append(EffectiveSetting(definition, value, source, code,
                                       mine.value if mine else None, mine.version if mine else None))
    return result


async def effective_value(session: AsyncSession, tenant: Tenant, key: str) -> Any:
    get_definition(key)
    for setting in await effective_settings(session, tenant):
        if setting.definition.key == key:
            return setting.value
    raise AssertionError("unreachable: definition exists")


async def _record(session: AsyncSession, key: str, old: Any, new: Any, actor: str, reason: str) -> int:
    changes = TenantSettingChangeRepository(session)
    version = await changes.last_version(key) + 1
    changes.add(TenantSettingChange(key=key, version=version, old_value=old, new_value=new,
                                    changed_by=actor, reason=reason, changed_at=utcnow()))
    return version


def _check_actor(actor: str) -> str:
    actor = (actor or "").strip()
    if not actor:
        raise InvalidInput("変更者を指定してください（設定の変更は誰が行ったか記録します）。")
    return actor


async def set_setting(session: AsyncSession, key: str, raw_value: Any, *, actor: str,
                      reason: str = "", expected_version: int | None = None) -> TenantSetting:
    """Set the bound tenant's own value for ``key``.

    ``expected_version`` (the version the person saw) guards against overwriting a change
    made in the meantime: 409 if it moved. Setting the same value again changes nothing.
    """
    definition = get_definition(key)
    value = definition.parse(raw_value)
    actor = _check_actor(actor)
    repo = TenantSettingRepository(session)
    current = await repo.for_key(key)
    current_version = current.version if current else None
    if expected_version is not None and expected_version != (current_version or 0):
        raise Conflict(f"「{definition.label}」はほかの人が先に変更しました。画面を更新して確認してください。")
    if current is not None and current.value == value:
        return current
    version = await _record(session, key, current.value if current else None, value, actor, reason)
    if current is None:
        current = repo.add(TenantSetting(key=key, value=value, version=version, updated_by=actor,
                                         updated_at=utcnow()))
    else:
        current.value, current.version = value, version
        current.updated_by, current.updated_at = actor, utcnow()
    await session.flush()
    return current


async def clear_setting(session: AsyncSession, key: str, *, actor: str, reason: str = "") -> bool:
    """Drop the bound tenant's own value so it inherits again. False if it had none."""
    definition = get_definition(key)
    actor = _check_actor(actor)
    repo = TenantSettingRepository(session)
    current = await repo.for_key(key)
    if current is None:
        return False
    await _record(session, definition.key, current.value, None, actor, reason)
    await session.delete(current)
    await session.flush()
    return True


async def history(session: AsyncSession, key: str | None = None) -> Sequence[TenantSettingChange]:
    if key:
        get_definition(key)
    return await TenantSettingChangeRepository(session).recent(key)
