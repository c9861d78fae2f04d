"""JSON twins of the tenant pages (テナント設定)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from kiban.core.identity.dependencies import PUBLIC, StaffContext, require
from kiban.core.identity.permissions import Permission

from kiban.core.tenancy import settings_service
from kiban.core.tenancy.dependencies import CurrentTenant, DbSession
from kiban.core.tenancy.settings_schemas import (
    EffectiveSettingRead,
    SettingChangeRead,
    SettingHistory,
    TenantSettings,
)

router = APIRouter(prefix="/api/v1/t/{lg_code}", tags=["テナント（自治体）"])
SettingReader = Annotated[StaffContext, require(Permission.tenancy_setting_read)]


@router.get("/settings", summary="テナント設定（実際に適用される値と、その決定元）",
            response_model=TenantSettings, dependencies=[PUBLIC])
async def tenant_settings(tenant: CurrentTenant, session: DbSession) -> TenantSettings:
    effective = await settings_service.effective_settings(session, tenant)
    return TenantSettings(lg_code=tenant.lg_code, name=tenant.name, items=[
        EffectiveSettingRead(key=s.definition.key, label=s.definition.label,
                             description=s.definition.description, value=s.value, source=s.source,
                             source_code=s.source_code, national_default=s.definition.default,
                             version=s.own_version)
        for s in effective
    ])


@router.get("/settings/history", summary="テナント設定の変更履歴（誰が・いつ・何を何に。団体の職員のみ）",
            response_model=SettingHistory)
async def tenant_setting_history(staff: SettingReader, session: DbSession,
                                 key: str | None = None) -> SettingHistory:
    tenant = staff.tenant
    changes = await settings_service.history(session, key)
    return SettingHistory(lg_code=tenant.lg_code, items=[
        SettingChangeRead(key=c.key, version=c.version, old_value=c.old_value,
                          new_value=c.new_value, changed_by=c.changed_by, reason=c.reason,
                          changed_at=c.changed_at)
        for c in changes
    ])
