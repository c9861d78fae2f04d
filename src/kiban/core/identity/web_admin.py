"""Organisation administrators: invite staff, change roles, revoke access. Invitees accept
through a one-time link."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from kiban.core.audit.service import Actor
from kiban.core.identity import service
from kiban.core.identity.dependencies import PUBLIC, DbSession, StaffContext, require
from kiban.core.identity.models import Principal
from kiban.core.identity.repository import MembershipRepository
from kiban.core.identity.permissions import ROLE_LABELS, Permission, Role
from kiban.kit.csrf import verify_csrf
from kiban.kit.errors import KibanError
from kiban.kit.templating import templates

router = APIRouter(include_in_schema=False)
Admin = Annotated[StaffContext, require(Permission.identity_membership_manage)]
CsrfChecked = [Depends(verify_csrf)]


def _actor(staff: StaffContext) -> Actor:
    return Actor("staff", staff.principal.display_name, staff.principal.id)


async def _page(request: Request, session, staff: StaffContext, *, error: str | None = None,
                invite_link: str | None = None, status: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, "identity/staff_admin.html", {
        "tenant": staff.tenant, "staff": staff, "members": await MembershipRepository(session).active_with_people(), "roles": ROLE_LABELS,
        "error": error, "invite_link": invite_link}, status_code=status)


@router.get("/t/{lg_code}/staff", response_class=HTMLResponse)
async def staff_admin(request: Request, session: DbSession, staff: Admin) -> HTMLResponse:
    return await _page(request, session, staff)


@router.post("/t/{lg_code}/staff/invite", dependencies=CsrfChecked)
async def invite(request: Request, session: DbSession, staff: Admin, username: Annotated[str, Form()] = "",
                 display_name: Annotated[str, Form()] = "", role: Annotated[str, Form()] = Role.staff) -> Response:
    try:
        invitation = await service.invite_staff(session, f"{staff.principal.display_name}（{staff.tenant.name}）",
                                                _actor(staff), username=username, display_name=display_name,
                                                role=role)
    except KibanError as exc:
        await session.rollback()
        return await _page(request, session, staff, error=exc.detail, status=exc.status)
    await session.commit()
    link = str(request.url_for("accept_invitation_page", token=invitation.token))
    return await _page(request, session, staff, invite_link=link)


@router.post("/t/{lg_code}/staff/{principal_id}/role", dependencies=CsrfChecked)
async def change_role(principal_id: str, request: Request, session: DbSession, staff: Admin,
                      role: Annotated[str, Form()] = "") -> Response:
    try:
        await service.change_role(session, _actor(staff), principal_id, role)
    except KibanError as exc:
        await session.rollback()
        return await _page(request, session, staff, error=exc.detail, status=exc.status)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/staff", status_code=303)


@router.post("/t/{lg_code}/staff/{principal_id}/revoke", dependencies=CsrfChecked)
async def revoke(principal_id: str, request: Request, session: DbSession, staff: Admin) -> Response:
    try:
        await service.revoke_membership(session, _actor(staff), principal_id)
    except KibanError as exc:
        await session.rollback()
        return await _page(request, session, staff, error=exc.detail, status=exc.status)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/staff", status_code=303)


@router.get("/invite/{token}", name="accept_invitation_page", response_class=HTMLResponse, dependencies=[PUBLIC])
async def accept_invitation_page(token: str, request: Request, session: DbSession) -> HTMLResponse:
    try:
        invitation = await service.find_invitation(session, token)
    except KibanError as exc:
        return templates.TemplateResponse(request, "identity/invite.html", {"error": exc.detail, "token": None},
                                          status_code=410)
    principal = await session.get(Principal, invitation.principal_id)
    return templates.TemplateResponse(request, "identity/invite.html",
                                      {"error": None, "token": token, "name": principal.display_name})


@router.post("/invite/{token}", dependencies=[PUBLIC, *CsrfChecked])
async def accept_invitation(token: str, request: Request, session: DbSession,
                            password: Annotated[str, Form()] = "", confirm: Annotated[str, Form()] = "") -> Response:
    try:
        await service.accept_invitation(session, token, password, confirm)
    except KibanError as exc:
        await session.rollback()
        return templates.TemplateResponse(request, "identity/invite.html",
                                          {"error": exc.detail, "token": token, "name": ""}, status_code=422)
    await session.commit()
    return RedirectResponse("/signin", status_code=303)


KeyAdmin = Annotated[StaffContext, require(Permission.identity_apikey_manage)]


async def _keys_page(request: Request, session, staff: StaffContext, *, error: str | None = None,
                     new_token: str | None = None, status: int = 200) -> HTMLResponse:
    from kiban.core.identity.apikeys import ApiKeyRepository
    from kiban.core.identity.permissions import API_KEY_GRANTABLE

    return templates.TemplateResponse(request, "identity/api_keys.html", {
        "tenant": staff.tenant, "keys": await ApiKeyRepository(session).listed(),
        "grantable": API_KEY_GRANTABLE, "error": error, "new_token": new_token}, status_code=status)


@router.get("/t/{lg_code}/apikeys", response_class=HTMLResponse)
async def api_keys(request: Request, session: DbSession, staff: KeyAdmin) -> HTMLResponse:
    return await _keys_page(request, session, staff)


@router.post("/t/{lg_code}/apikeys", dependencies=CsrfChecked)
async def create_api_key(request: Request, session: DbSession, staff: KeyAdmin,
                         name: Annotated[str, Form()] = "", kind: Annotated[str, Form()] = "test",
                         permissions: Annotated[list[str] | None, Form()] = None,
                         rate_limit_per_minute: Annotated[int, Form()] = 600) -> Response:
    from kiban.core.identity import apikeys

    try:
        created = await apikeys.create_key(session, _actor(staff), name=name, kind=kind,
                                           permissions=permissions or [],
                                           rate_limit_per_minute=rate_limit_per_minute)
    except KibanError as exc:
        await session.rollback()
        return await _keys_page(request, session, staff, error=exc.detail, status=exc.status)
    await session.commit()
    return await _keys_page(request, session, staff, new_token=created.token)


@router.post("/t/{lg_code}/apikeys/{key_id}/revoke", dependencies=CsrfChecked)
async def revoke_api_key(key_id: str, session: DbSession, staff: KeyAdmin) -> Response:
    from kiban.core.identity import apikeys

    await apikeys.revoke_key(session, _actor(staff), key_id)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/apikeys", status_code=303)


GrantAdmin = Annotated[StaffContext, require(Permission.tenancy_grant_manage)]


async def _grants_page(request: Request, session, staff: StaffContext, *, error: str | None = None,
                       status: int = 200) -> HTMLResponse:
    from kiban.core.tenancy.grants import GRANTABLE, AccessGrantRepository

    return templates.TemplateResponse(request, "identity/grants.html", {
        "tenant": staff.tenant, "grants": await AccessGrantRepository(session).listed(), "grantable": GRANTABLE,
        "error": error}, status_code=status)


@router.get("/t/{lg_code}/grants", response_class=HTMLResponse)
async def grants_page(request: Request, session: DbSession, staff: GrantAdmin) -> HTMLResponse:
    return await _grants_page(request, session, staff)


@router.post("/t/{lg_code}/grants", dependencies=CsrfChecked)
async def create_grant(request: Request, session: DbSession, staff: GrantAdmin,
                       grantee_code: Annotated[str, Form()] = "", permission: Annotated[str, Form()] = "",
                       purpose: Annotated[str, Form()] = "", legal_basis: Annotated[str, Form()] = "",
                       expires_on: Annotated[str, Form()] = "") -> Response:
    from datetime import date

    from kiban.core.tenancy import grants
    from kiban.kit.errors import InvalidInput

    try:
        try:
            until = date.fromisoformat(expires_on) if expires_on.strip() else None
        except ValueError:
            raise InvalidInput("有効期限は YYYY-MM-DD の形式で入力してください。") from None
        await grants.grant_access(session, _actor(staff), grantee_code=grantee_code, permission=permission,
                                  purpose=purpose, legal_basis=legal_basis, expires_on=until)
    except KibanError as exc:
        await session.rollback()
        return await _grants_page(request, session, staff, error=exc.detail, status=exc.status)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/grants", status_code=303)


@router.post("/t/{lg_code}/grants/{grant_id}/revoke", dependencies=CsrfChecked)
async def revoke_grant(grant_id: str, session: DbSession, staff: GrantAdmin) -> Response:
    from kiban.core.tenancy import grants

    await grants.revoke_grant(session, _actor(staff), grant_id)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/grants", status_code=303)
