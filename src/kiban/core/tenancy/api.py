"""JSON twins of the tenant pages (テナント設定)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from kiban.core.identity.dependencies import PUBLIC, StaffContext, require
from kiban.core.identity.api_admin import JsonWrite
from kiban.core.identity.permissions import Permission
from kiban.kit.openapi import problem_responses

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
SettingEditor = Annotated[StaffContext, require(Permission.tenancy_setting_update)]


@router.get("/settings", summary="テナント設定（実際に適用される値と、その決定元）",
            response_model=TenantSettings, dependencies=[PUBLIC])
async def tenant_settings(tenant: CurrentTenant, session: DbSession) -> TenantSettings:
    effective = await settings_service.effective_settings(session, tenant)
    return TenantSettings(lg_code=tenant.lg_code, name=tenant.name, items=[_effective(s) for s in effective])


def _effective(s) -> EffectiveSettingRead:
    return EffectiveSettingRead(key=s.definition.key, label=s.definition.label,
                                description=s.definition.description, value=s.value, source=s.source,
                                source_code=s.source_code, national_default=s.definition.default,
                                version=s.own_version)


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


# -- changing a setting (the settings page's form, as JSON) ----------------------------------------

class SettingWrite(BaseModel):
    value: Any = Field(description="新しい値（項目の種類に合わせて整数・文字列・真偽値）")
    reason: str = Field("", max_length=500, description="変更の理由（履歴に残ります）")
    expected_version: int = Field(0, ge=0, description="読み取った version（この団体の値がまだなければ 0）")


class SettingClear(BaseModel):
    reason: str = Field("", max_length=500, description="上位の値に戻す理由（履歴に残ります）")


async def _setting_changed(session: DbSession, staff: StaffContext, key: str, action: str, value: Any):
    from kiban.core.audit import service as audit
    from kiban.core.tenancy.settings_definitions import get_definition

    await audit.record(session, audit.Actor.of_staff(staff), action, target_type="tenant_setting", target_id=key,
                       details={"label": get_definition(key).label, "value": value})
    await session.commit()
    effective = await settings_service.effective_settings(session, staff.tenant)
    return _effective(next(s for s in effective if s.definition.key == key))


@router.put("/settings/{key}", summary="テナント設定の変更（version が読み取った後に変わっていれば 409）",
            response_model=EffectiveSettingRead, responses=problem_responses(409, 415))
async def put_setting(key: str, body: SettingWrite, staff: SettingEditor, _json: JsonWrite,
                      session: DbSession) -> EffectiveSettingRead:
    await settings_service.set_setting(session, key, body.value, actor=staff.label, reason=body.reason,
                                       expected_version=body.expected_version)
    return await _setting_changed(session, staff, key, "tenancy.setting.updated", body.value)


@router.post("/settings/{key}/clear", summary="この団体の値をやめ、都道府県または国の値に戻す",
             response_model=EffectiveSettingRead, responses=problem_responses(415))
async def clear_setting(key: str, body: SettingClear, staff: SettingEditor, _json: JsonWrite,
                        session: DbSession) -> EffectiveSettingRead:
    await settings_service.clear_setting(session, key, actor=staff.label, reason=body.reason)
    return await _setting_changed(session, staff, key, "tenancy.setting.cleared", None)
