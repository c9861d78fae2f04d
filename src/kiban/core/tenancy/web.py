"""Tenant pages: a municipality's home and its settings. Effective settings are public (local
policy is public information); the change history and editing are for the tenant's staff."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.audit import service as audit
from kiban.core.identity.dependencies import PUBLIC, OptionalStaff, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.registry import service as registry_service
from kiban.core.tenancy import settings_service
from kiban.core.tenancy.dependencies import CurrentTenant, DbSession
from kiban.core.tenancy.settings_definitions import CONTACT_DESK, DEFINITIONS, get_definition
from kiban.kit.csrf import verify_csrf
from kiban.kit.errors import Conflict, InvalidInput
from kiban.kit.templating import templates

router = APIRouter(prefix="/t/{lg_code}", include_in_schema=False)
SettingEditor = Annotated[StaffContext, require(Permission.tenancy_setting_update)]


@router.get("/", response_class=HTMLResponse, dependencies=[PUBLIC])
async def tenant_home(tenant: CurrentTenant, request: Request, session: DbSession,
                      staff: OptionalStaff) -> HTMLResponse:
    org = await registry_service.get_detail(session, tenant.lg_code)
    desk = await settings_service.effective_value(session, tenant, CONTACT_DESK.key)
    return templates.TemplateResponse(request, "tenancy/home.html",
                                      {"tenant": tenant, "org": org, "desk": desk, "staff": staff})


async def _settings_page(request: Request, session, tenant, staff: StaffContext | None, *,
                         error: str | None = None, saved: str | None = None, status: int = 200) -> HTMLResponse:
    effective = await settings_service.effective_settings(session, tenant)
    may_read = staff is not None and staff.can(Permission.tenancy_setting_read)
    changes = await settings_service.history(session) if may_read else []
    return templates.TemplateResponse(request, "tenancy/settings.html", {
        "tenant": tenant, "settings": effective, "changes": changes, "definitions": DEFINITIONS,
        "staff": staff, "may_read": may_read,
        "may_edit": staff is not None and staff.can(Permission.tenancy_setting_update),
        "error": error, "saved": saved,
    }, status_code=status)


@router.get("/settings", response_class=HTMLResponse, dependencies=[PUBLIC])
async def tenant_settings_page(tenant: CurrentTenant, request: Request, session: DbSession,
                               staff: OptionalStaff, saved: str | None = None) -> HTMLResponse:
    return await _settings_page(request, session, tenant, staff,
                                saved=DEFINITIONS[saved].label if saved in DEFINITIONS else None)


@router.post("/settings/{key}", dependencies=[Depends(verify_csrf)])
async def update_setting(key: str, request: Request, session: DbSession, staff: SettingEditor,
                         value: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
                         expected_version: Annotated[int, Form()] = 0,
                         action: Annotated[str, Form()] = "set") -> Response:
    definition = get_definition(key)
    actor = f"{staff.principal.display_name}（{staff.tenant.name}）"
    try:
        if action == "clear":
            await settings_service.clear_setting(session, key, actor=actor, reason=reason)
        else:
            await settings_service.set_setting(session, key, value, actor=actor, reason=reason,
                                               expected_version=expected_version)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        return await _settings_page(request, session, staff.tenant, staff, error=exc.detail,
                                    status=exc.status)
    await audit.record(session, audit.Actor("staff", staff.principal.display_name, staff.principal.id),
                       "tenancy.setting.updated" if action != "clear" else "tenancy.setting.cleared",
                       target_type="tenant_setting", target_id=key,
                       details={"label": definition.label, "value": value if action != "clear" else None})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/settings?saved={key}", status_code=303)
