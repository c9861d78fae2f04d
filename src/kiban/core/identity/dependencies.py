"""Who is asking, and may they: the dependencies every route uses.

``require(Permission.x)`` resolves the tenant from the URL, the signed-in staff member from the
session cookie, and their membership in that tenant. Not signed in: 401 (API) or a redirect to
sign-in (pages). Signed in but acting for another organisation, or no membership: 404, the
same as a tenant that does not exist. Member without the permission: 403.
``PUBLIC`` marks a route that anyone may use, explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.identity import apikeys, service
from kiban.core.identity.models import ApiKey, Principal, WebSession
from kiban.core.identity.permissions import Permission, permissions_of
from kiban.core.identity.repository import MembershipRepository
from kiban.core.tenancy.context import Tenant
from kiban.core.tenancy.dependencies import tenant_from_path
from kiban.kit.db import get_session, reads_a_snapshot, utcnow
from kiban.kit.errors import KibanError, NotFound

SESSION_COOKIE = "kiban_session"
DbSession = Annotated[AsyncSession, Depends(get_session)]


class SignInRequired(KibanError):
    status = 401
    title = "サインインが必要です"
    type_slug = "sign-in-required"


class Forbidden(KibanError):
    status = 403
    title = "この操作を行う権限がありません"
    type_slug = "forbidden"


@dataclass(frozen=True)
class StaffContext:
    """Who acts for the tenant: a signed-in staff member, or a system with an API key
    (``api_key`` set, ``web_session`` None)."""

    principal: Principal
    web_session: WebSession | None
    tenant: Tenant
    role: str
    permissions: frozenset[Permission]

    api_key: ApiKey | None = None

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    @property
    def label(self) -> str:
        """「氏名（団体名）」 (or the API key's name) for the records of who did something."""
        who = self.api_key.name if self.api_key else self.principal.display_name
        return f"{who}（{self.tenant.name}）"


async def _public() -> None:
    """Marks a route as deliberately open to anyone (the route walker looks for it)."""


PUBLIC = Depends(_public)


async def current_web_session(request: Request, session: DbSession) -> WebSession | None:
    cached = getattr(request.state, "web_session", False)
    if cached is not False:
        return cached
    before = utcnow()
    if reads_a_snapshot(session):
        # SQLite, a page that reads: the idle clock is written beside it, not by it (idle_clock).
        web_session = await service.load_session(session, request.cookies.get(SESSION_COOKIE), touch=False)
        if web_session is not None and service.touch_due(web_session, before):
            request.app.state.idle_clock.note(web_session.id, before)
    else:
        web_session = await service.load_session(session, request.cookies.get(SESSION_COOKIE))
    if web_session is not None and web_session.last_seen_at >= before:
        # The idle clock moved (at most once a minute): commit it now. Left to the route, a page
        # that only reads never committed it, so a clerk reading for half an hour was signed
        # out, and on SQLite the page held the write lock until it answered.
        await session.commit()
    request.state.web_session = web_session
    return web_session


async def optional_staff(request: Request, session: DbSession) -> StaffContext | None:
    """The signed-in staff member acting for the URL's tenant, or None (for pages that show
    more to members but are public)."""
    web_session = await current_web_session(request, session)
    if web_session is None or web_session.stage != "active":
        return None
    tenant = await tenant_from_path(request.path_params["lg_code"], session)
    if web_session.acting_lg_code != tenant.lg_code:
        return None
    membership = await MembershipRepository(session).active_for(web_session.principal_id)
    if membership is None:
        return None
    principal = await session.get(Principal, web_session.principal_id)
    return StaffContext(principal, web_session, tenant, membership.role, permissions_of(membership.role))


def _sign_in_required(request: Request) -> SignInRequired:
    # After sign-in the browser GETs ``next``: for a form post, come back to the tenant's page.
    back = request.url.path if request.method == "GET" else f"/t/{request.path_params.get('lg_code', '')}/"
    return SignInRequired("この画面を使うにはサインインしてください。",
                          extra={"sign_in_url": f"/signin?next={quote(back)}"})


def require(permission: Permission):
    """A dependency granting access to staff whose role in the URL's tenant holds ``permission``."""

    async def dependency(request: Request, session: DbSession) -> StaffContext:
        if request.headers.get("authorization", "").startswith("Bearer "):
            context = await api_key_context(request, session)
            if not apikeys.permission_allowed(context.api_key, permission):
                if context.api_key.kind == "test":
                    raise Forbidden("テスト用のキーでは本番のデータを扱えません。live のキーを使ってください。")
                raise Forbidden(f"このキーには「{permission}」の権限がありません。")
            return context
        web_session = await current_web_session(request, session)
        if web_session is None or web_session.stage != "active":
            raise _sign_in_required(request)
        tenant = await tenant_from_path(request.path_params["lg_code"], session)
        if web_session.acting_lg_code != tenant.lg_code:
            return await _through_grant(request, session, web_session, tenant, permission)
        membership = await MembershipRepository(session).active_for(web_session.principal_id)
        if membership is None:
            raise NotFound("お探しの情報は見つかりませんでした。")
        granted = permissions_of(membership.role)
        if permission not in granted:
            raise Forbidden(f"この操作には「{permission}」の権限が必要です。団体管理者に依頼してください。")
        principal = await session.get(Principal, web_session.principal_id)
        return StaffContext(principal, web_session, tenant, membership.role, granted)

    dependency.__kiban_permission__ = permission
    return Depends(dependency)


OptionalStaff = Annotated[StaffContext | None, Depends(optional_staff)]


async def _through_grant(request: Request, session: AsyncSession, web_session: WebSession, tenant: Tenant,
                         permission: Permission) -> StaffContext:
    """Staff acting for another organisation (e.g. the prefecture) reach this tenant's records
    only through an explicit, unexpired grant of exactly this permission, and every such read
    is audited on the tenant's chain with the grant's purpose and legal basis. Anything else
    is 404, as if the records did not exist."""
    from kiban.core.audit import service as audit
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.context import as_tenant
    from kiban.core.tenancy.grants import AccessGrantRepository

    not_found = NotFound("お探しの情報は見つかりませんでした。")
    if web_session.acting_lg_code is None:
        raise not_found
    grant = await AccessGrantRepository(session).active_for(web_session.acting_lg_code, str(permission))
    if grant is None:
        raise not_found
    acting = await registry_service.tenant_for(session, web_session.acting_lg_code)
    async with as_tenant(session, acting):
        membership = await MembershipRepository(session).active_for(web_session.principal_id)
    if membership is None:
        raise not_found
    if permission not in permissions_of(membership.role):
        raise Forbidden(f"この操作には「{permission}」の権限が必要です。")
    principal = await session.get(Principal, web_session.principal_id)
    await audit.record(session, audit.Actor("staff", f"{principal.display_name}（{acting.name}）", principal.id),
                       "tenancy.grant.used", target_type="route", target_id=request.url.path,
                       purpose=grant.purpose, legal_basis=grant.legal_basis,
                       details={"grantee": acting.lg_code, "grant": grant.id, "permission": str(permission)})
    await session.commit()  # the record of the read must survive even a read-only request
    return StaffContext(principal, web_session, tenant, f"grant:{acting.lg_code}", frozenset({permission}))


async def api_key_context(request: Request, session: AsyncSession) -> StaffContext:
    """A system calling with ``Authorization: Bearer kiban_...``: the key must belong to the
    URL's tenant (otherwise 401, as for any wrong key), be unrevoked, and be within its rate."""
    tenant = await tenant_from_path(request.path_params["lg_code"], session)
    token = request.headers["authorization"].removeprefix("Bearer ").strip()
    key = await apikeys.authenticate(session, token, tenant.lg_code)
    if key is None:
        raise ApiKeyRejected("API キーが正しくないか、失効しています。")
    await request.app.state.rate_limiter.hit(key.id, key.rate_limit_per_minute, session=session)
    principal = Principal(id=f"apikey:{key.id}", kind="api_client", display_name=f"API キー「{key.name}」",
                          created_at=key.created_at)
    granted = frozenset(Permission(p) for p in key.permissions) if key.kind == "live" else frozenset()
    return StaffContext(principal, None, tenant, f"api_key:{key.kind}", granted, key)


class ApiKeyRejected(KibanError):
    status = 401
    title = "API キーを確認できません"
    type_slug = "api-key-rejected"


async def _any_api_key(request: Request, session: DbSession) -> StaffContext:
    if not request.headers.get("authorization", "").startswith("Bearer "):
        raise ApiKeyRejected("Authorization: Bearer <API キー> を付けてください。")
    return await api_key_context(request, session)


_any_api_key.__kiban_permission__ = "identity.apikey.self"  # any valid key, test keys included
ApiClient = Annotated[StaffContext, Depends(_any_api_key)]


@dataclass(frozen=True)
class ResidentContext:
    principal: Principal
    web_session: WebSession


async def _current_resident(request: Request, session: DbSession) -> ResidentContext:
    web_session = await current_web_session(request, session)
    principal = await session.get(Principal, web_session.principal_id) if web_session else None
    if web_session is None or web_session.stage != "active" or principal is None or principal.kind != "resident":
        raise SignInRequired("マイナンバーカードでサインインしてください。",
                             extra={"sign_in_url": f"/signin/card?next={quote(request.url.path)}"})
    return ResidentContext(principal, web_session)


_current_resident.__kiban_permission__ = "identity.self.read"  # the resident, about themselves
CurrentResident = Annotated[ResidentContext, Depends(_current_resident)]
