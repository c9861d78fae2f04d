"""Tenant pages: a municipality's home and its settings (read-only until staff sign-in lands)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from kiban.core.registry import service as registry_service
from kiban.core.tenancy import settings_service
from kiban.core.tenancy.dependencies import CurrentTenant, DbSession
from kiban.core.tenancy.settings_definitions import CONTACT_DESK, DEFINITIONS
from kiban.kit.templating import templates

router = APIRouter(prefix="/t/{lg_code}", include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def tenant_home(tenant: CurrentTenant, request: Request, session: DbSession) -> HTMLResponse:
    org = await registry_service.get_detail(session, tenant.lg_code)
    desk = await settings_service.effective_value(session, tenant, CONTACT_DESK.key)
    return templates.TemplateResponse(request, "tenancy/home.html",
                                      {"tenant": tenant, "org": org, "desk": desk})


@router.get("/settings", response_class=HTMLResponse)
async def tenant_settings_page(tenant: CurrentTenant, request: Request, session: DbSession) -> HTMLResponse:
    effective = await settings_service.effective_settings(session, tenant)
    changes = await settings_service.history(session)
    return templates.TemplateResponse(request, "tenancy/settings.html", {
        "tenant": tenant, "settings": effective, "changes": changes, "definitions": DEFINITIONS,
    })
