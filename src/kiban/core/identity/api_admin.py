"""JSON twins of the organisation administrators' pages: staff (職員の管理), API keys and access
grants (閲覧許可). Each route calls the same service function as its page, so the rules (who may
be stopped, which roles exist, what may be granted) live in one place.

Who may call: a staff member signed in with password and TOTP (the session cookie), or an API
key where the permission may be held by a key (reading the staff list). Managing people, keys
and grants is withheld from keys (``API_KEY_WITHHELD``).

Writes sent with the session cookie must be JSON (``JsonWrite``): a page on another site can
make a browser send a form, never ``application/json`` without a CORS preflight this app does
not grant, so the JSON rule does for these routes what the CSRF token does for forms.

Creating API keys stays on the page (/t/{lg_code}/apikeys): a key is shown once, to a person
who just signed in with two factors; an API that mints keys would either be reachable by keys
(a leaked key could make more) or duplicate that page for browsers only. Listing and revoking
are here, so an incident can be handled from a script.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request

from kiban.core.audit.service import Actor
from kiban.core.identity import apikeys, invitations, service
from kiban.core.identity.dependencies import DbSession, StaffContext, require
from kiban.core.identity.models import Membership, Principal, StaffCredential
from kiban.core.identity.permissions import (
    API_KEY_GRANTABLE,
    ROLE_LABELS,
    Permission,
    permission_label,
    role_label,
)
from kiban.core.identity.repository import MembershipRepository
from kiban.core.identity.schemas_admin import (
    ApiKeyList,
    ApiKeyRead,
    Choice,
    GrantCreate,
    GrantList,
    GrantRead,
    Invitation,
    InvitationStatus,
    InviteRequest,
    MemberRead,
    NoFields,
    RoleChange,
    StaffList,
)
from kiban.kit.errors import KibanError, NotFound
from kiban.kit.openapi import problem_responses

router = APIRouter(prefix="/api/v1/t/{lg_code}", tags=["職員・API キー・閲覧許可（団体管理者）"])
StaffReader = Annotated[StaffContext, require(Permission.identity_membership_read)]
Admin = Annotated[StaffContext, require(Permission.identity_membership_manage)]
KeyAdmin = Annotated[StaffContext, require(Permission.identity_apikey_manage)]
GrantAdmin = Annotated[StaffContext, require(Permission.tenancy_grant_manage)]


class NotJson(KibanError):
    status = 415
    title = "JSON で送ってください"
    type_slug = "json-required"


async def json_write(request: Request) -> None:
    """For API writes: with the session cookie, the request must say ``Content-Type:
    application/json`` (a cross-site form cannot); a request with an API key is not a browser's."""
    if request.headers.get("authorization", "").startswith("Bearer "):
        return
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return
    raise NotJson("変更の操作は Content-Type: application/json の本文で送ってください（空なら {}）。")


JsonWrite = Annotated[None, Depends(json_write)]
WRITE_ERRORS = problem_responses(415, s415="セッションで送る変更の操作が JSON ではありません")


# -- staff -----------------------------------------------------------------------------------------

def _member(membership: Membership, person: Principal, credential: StaffCredential | None) -> MemberRead:
    stopped = membership.revoked_at is not None
    return MemberRead(principal_id=person.id, display_name=person.display_name,
                      username=credential.username if credential else None, role=membership.role,
                      role_label=role_label(membership.role), state="stopped" if stopped else "active",
                      state_label="停止中" if stopped else "利用中", granted_by=membership.granted_by,
                      granted_at=membership.granted_at, stopped_at=membership.revoked_at)


async def _member_of(session, principal_id: str) -> MemberRead:
    found = await MembershipRepository(session).with_person(principal_id)
    if found is None:
        raise NotFound("その職員はこの団体に所属していません。")
    membership, person = found
    return _member(membership, person, await session.get(StaffCredential, principal_id))


@router.get("/staff", summary="職員の一覧（利用中と停止中）", response_model=StaffList)
async def staff_list(staff: StaffReader, session: DbSession) -> StaffList:
    members = MembershipRepository(session)
    return StaffList(lg_code=staff.tenant.lg_code,
                     members=[_member(*row) for row in await members.active_with_people()],
                     stopped=[_member(*row) for row in await members.stopped_with_people()],
                     roles=[Choice(value=r.value, label=label) for r, label in ROLE_LABELS.items()])


@router.post("/staff", summary="職員の招待（招待リンクを一度だけ返します）", response_model=Invitation,
             status_code=201, responses=problem_responses(409, 415, s409="ユーザー名がすでに使われています"))
async def invite_staff(body: InviteRequest, request: Request, staff: Admin, _json: JsonWrite,
                       session: DbSession) -> Invitation:
    address = invitations.clean_email(body.email)
    invitation = await service.invite_staff(session, staff.label, Actor.of_staff(staff), username=body.username,
                                            display_name=body.display_name, role=body.role,
                                            by_email=address is not None)
    link = str(request.url_for("accept_invitation_page", token=invitation.token))
    mail = None
    if address is not None:
        mail = await invitations.mail_invitation(session, staff.tenant, invitation_id=invitation.invitation_id,
                                                 email=address, display_name=invitation.principal.display_name,
                                                 inviter=staff.label, invite_url=link,
                                                 expires_at=invitation.expires_at)
    await session.commit()
    if mail is not None:
        from kiban.core.jobs import runner as job_runner

        job_runner.wake(request.app)
    member = await _member_of(session, invitation.principal.id)
    # The invitation and the membership are written at the same instant.
    return Invitation(member=member, expires_at=member.granted_at + timedelta(days=service.INVITATION_DAYS),
                      invite_url=None if mail is not None else link,
                      email_state=mail.state if mail is not None else None,
                      notification_id=mail.id if mail is not None else None)


@router.get("/staff/invitations", summary="招待中の職員（まだパスワードを設定していない人）と招待メールの送信状況",
            response_model=list[InvitationStatus])
async def invitation_list(staff: Admin, session: DbSession) -> list[InvitationStatus]:
    return [InvitationStatus(principal_id=i.principal_id, display_name=i.display_name, username=i.username,
                             created_at=i.created_at, expires_at=i.expires_at, expired=i.expired, channel=i.channel,
                             email_state=i.state, state_label=i.state_label, email_masked=i.email_masked,
                             last_error=i.last_error, wait_reason=i.wait_reason, notification_id=i.notification_id)
            for i in await invitations.open_invitations(session)]


@router.put("/staff/{principal_id}/role", summary="職員の役割の変更", response_model=MemberRead,
            responses=WRITE_ERRORS)
async def change_role(principal_id: str, body: RoleChange, staff: Admin, _json: JsonWrite,
                      session: DbSession) -> MemberRead:
    await service.change_role(session, Actor.of_staff(staff), principal_id, body.role)
    await session.commit()
    return await _member_of(session, principal_id)


@router.post("/staff/{principal_id}/stop", summary="職員の利用の停止（すぐにサインインできなくなります。役割は残ります）",
             response_model=MemberRead, responses=WRITE_ERRORS)
async def stop_member(principal_id: str, staff: Admin, _json: JsonWrite, session: DbSession,
        _body: Annotated[NoFields, Body()]) -> MemberRead:
    try:
        await service.revoke_membership(session, Actor.of_staff(staff), principal_id)
    except NotFound:
        await session.rollback()
        if await MembershipRepository(session).stopped_for(principal_id) is None:
            raise
        # Sent twice: already stopped, which is what was asked.
    await session.commit()
    return await _member_of(session, principal_id)


@router.post("/staff/{principal_id}/reinstate", summary="停止中の職員の利用の再開（停止前の役割に戻ります）",
             response_model=MemberRead, responses=WRITE_ERRORS)
async def reinstate_member(principal_id: str, staff: Admin, _json: JsonWrite, session: DbSession,
        _body: Annotated[NoFields, Body()]) -> MemberRead:
    try:
        await service.reinstate_membership(session, Actor.of_staff(staff), principal_id)
    except NotFound:
        await session.rollback()
        if await MembershipRepository(session).active_for(principal_id) is None:
            raise
        # Sent twice: already active again.
    await session.commit()
    return await _member_of(session, principal_id)


# -- API keys --------------------------------------------------------------------------------------

def _kind_label(kind: str) -> str:
    return "本番" if kind == "live" else "テスト"


def _key(key) -> ApiKeyRead:
    return ApiKeyRead(id=key.id, name=key.name, kind=key.kind, kind_label=_kind_label(key.kind),
                      permissions=[Choice(value=str(p), label=permission_label(str(p))) for p in key.permissions],
                      rate_limit_per_minute=key.rate_limit_per_minute, created_by=key.created_by,
                      created_at=key.created_at, revoked_at=key.revoked_at, active=key.revoked_at is None)


@router.get("/apikeys", summary="API キーの一覧（名前・種類・権限・状態。秘密の値は返しません）",
            response_model=ApiKeyList)
async def api_key_list(staff: KeyAdmin, session: DbSession) -> ApiKeyList:
    keys = await apikeys.ApiKeyRepository(session).listed()
    return ApiKeyList(lg_code=staff.tenant.lg_code, items=[_key(k) for k in keys],
                      grantable=[Choice(value=p.value, label=permission_label(p)) for p in API_KEY_GRANTABLE],
                      create_url=f"/t/{staff.tenant.lg_code}/apikeys")


@router.post("/apikeys/{key_id}/revoke", summary="API キーの失効（元に戻せません）", response_model=ApiKeyRead,
             responses=WRITE_ERRORS)
async def revoke_api_key(key_id: str, staff: KeyAdmin, _json: JsonWrite, session: DbSession,
        _body: Annotated[NoFields, Body()]) -> ApiKeyRead:
    await apikeys.revoke_key(session, Actor.of_staff(staff), key_id)
    await session.commit()
    return _key(await apikeys.ApiKeyRepository(session).by_id(key_id))


# -- access grants -----------------------------------------------------------------------------------

async def _grants(session, grants) -> list[GrantRead]:
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.grants import GRANTABLE

    orgs = await registry_service.organizations_by_code(session, sorted({g.grantee_code for g in grants}))
    today = date.today()
    return [GrantRead(
        id=g.id, grantee_code=g.grantee_code,
        grantee_name=orgs[g.grantee_code].name if g.grantee_code in orgs else "（登録のない団体）",
        permission=g.permission, permission_label=GRANTABLE.get(g.permission, "（不明な範囲）"), purpose=g.purpose,
        legal_basis=g.legal_basis, granted_by=g.granted_by, granted_at=g.granted_at, expires_on=g.expires_on,
        revoked_at=g.revoked_at, active=g.revoked_at is None and (g.expires_on is None or g.expires_on >= today))
        for g in grants]


@router.get("/grants", summary="ほかの団体への閲覧許可の一覧", response_model=GrantList)
async def grant_list(staff: GrantAdmin, session: DbSession) -> GrantList:
    from kiban.core.tenancy.grants import GRANTABLE, AccessGrantRepository

    return GrantList(lg_code=staff.tenant.lg_code, items=await _grants(session, await AccessGrantRepository(session).listed()),
                     grantable=[Choice(value=k, label=v) for k, v in GRANTABLE.items()])


@router.post("/grants", summary="閲覧許可を出す（閲覧のたびに監査ログと本人の利用記録に残ります）",
             response_model=GrantRead, status_code=201, responses=WRITE_ERRORS)
async def create_grant(body: GrantCreate, staff: GrantAdmin, _json: JsonWrite, session: DbSession) -> GrantRead:
    from kiban.core.tenancy import grants

    grant = await grants.grant_access(session, Actor.of_staff(staff), grantee_code=body.grantee_code,
                                      permission=body.permission, purpose=body.purpose,
                                      legal_basis=body.legal_basis, expires_on=body.expires_on)
    await session.commit()
    (read,) = await _grants(session, [grant])
    return read


@router.post("/grants/{grant_id}/revoke", summary="閲覧許可の取り消し（元に戻せません）", response_model=GrantRead,
             responses=WRITE_ERRORS)
async def revoke_grant(grant_id: str, staff: GrantAdmin, _json: JsonWrite, session: DbSession,
        _body: Annotated[NoFields, Body()]) -> GrantRead:
    from kiban.core.tenancy import grants

    await grants.revoke_grant(session, Actor.of_staff(staff), grant_id)
    await session.commit()
    (read,) = await _grants(session, [await grants.AccessGrantRepository(session).by_id(grant_id)])
    return read
