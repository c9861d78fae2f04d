"""Organisation administrators: invite staff, change roles, stop and reinstate staff, manage API
keys and access grants. Invitees accept through a one-time link.

Every destructive action (stopping a member, revoking a key or a grant) first shows a
confirmation page (``GET .../confirm``, ``identity/confirm.html``) saying exactly what will
happen, and works without JavaScript. The POST then redirects back with a query naming what was
done (``?done=stopped&who=...``, ``?revoked=...``); the page builds the result message from the
stored state, never from the query text, so a crafted link cannot put words on the screen.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from kiban.core.audit.service import Actor
from kiban.core.identity import invitations, service
from kiban.core.identity.dependencies import PUBLIC, DbSession, StaffContext, require
from kiban.core.identity.models import Principal
from kiban.core.identity.repository import MembershipRepository
from kiban.core.identity.permissions import ROLE_LABELS, Permission, Role, role_label
from kiban.kit.csrf import verify_csrf
from kiban.kit.errors import KibanError, NotFound
from kiban.kit.templating import templates

router = APIRouter(include_in_schema=False)
Admin = Annotated[StaffContext, require(Permission.identity_membership_manage)]
CsrfChecked = [Depends(verify_csrf)]


def _actor(staff: StaffContext) -> Actor:
    return Actor.of_staff(staff)


def _confirm(request: Request, staff: StaffContext, *, title: str, parent: tuple[str, str], summary: str,
             consequences: list[str], action: str | None, confirm_label: str = "",
             notice: str | None = None, status: int = 200) -> HTMLResponse:
    tenant = staff.tenant
    return templates.TemplateResponse(request, "identity/confirm.html", {
        "page_title": title, "breadcrumbs": [(tenant.name, f"/t/{tenant.lg_code}/"), parent],
        "summary": summary, "consequences": consequences, "action": action, "confirm_label": confirm_label,
        "back_url": parent[1], "notice": notice}, status_code=status)


async def _staff_result(session, staff: StaffContext, done: str | None, who: str | None) -> str | None:
    """What the last action did, as stored now: nothing when the query does not match the state."""
    if done not in ("stopped", "reinstated") or not who:
        return None
    found = await MembershipRepository(session).with_person(who)
    if found is None:
        return None
    membership, person = found
    if done == "stopped" and membership.revoked_at is not None:
        return (f"{person.display_name} さんを停止しました。{staff.tenant.name}の画面はもう使えません。"
                "下の「停止中の職員」からいつでも再開できます。")
    if done == "reinstated" and membership.revoked_at is None:
        return (f"{person.display_name} さんの利用を再開しました（役割: {role_label(membership.role)}）。"
                "本人がもう一度サインインすると使えます。")
    return None


def _problem(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def _errors_of(exc: KibanError, field: str) -> list[dict[str, str]]:
    """A service's refusal as form errors: its own per-field ``errors``, or its message on ``field``."""
    return list(exc.errors) or [_problem(field, exc.detail)]


async def _page(request: Request, session, staff: StaffContext, *, error: str | None = None,
                invite_link: str | None = None, result: str | None = None, status: int = 200,
                invite_errors: list[dict[str, str]] | None = None,
                invite_form: dict[str, str] | None = None, invite_mailed: str | None = None) -> HTMLResponse:
    members = MembershipRepository(session)
    return templates.TemplateResponse(request, "identity/staff_admin.html", {
        "tenant": staff.tenant, "staff": staff, "members": await members.active_with_people(),
        "stopped": await members.stopped_with_people(), "roles": ROLE_LABELS,
        "error": error, "invite_link": invite_link, "result": result, "invite_mailed": invite_mailed,
        "invitations": await invitations.open_invitations(session),
        "invite_errors": invite_errors or [], "invite_form": invite_form or {}}, status_code=status)


async def _invite_problems(session, *, username: str, display_name: str, role: str,
                           email: str = "") -> list[dict[str, str]]:
    """Every problem with the invitation form at once (the service stops at the first)."""
    from kiban.core.identity.repository import StaffRepository

    problems = []
    if not display_name:
        problems.append(_problem("display_name", "氏名を入力してください。"))
    elif len(display_name) > 200:
        problems.append(_problem("display_name", f"氏名は200文字以内で入力してください（いま{len(display_name)}文字）。"))
    if not username:
        problems.append(_problem("username", "ユーザー名を入力してください（本人がサインインするときに使います）。"))
    elif len(username) > 100:
        problems.append(_problem("username", f"ユーザー名は100文字以内で入力してください（いま{len(username)}文字）。"))
    elif await StaffRepository(session).by_username(username):
        problems.append(_problem("username", f"ユーザー名「{username}」はすでに使われています。別の名前にしてください。"))
    if role not in {r.value for r in Role}:
        problems.append(_problem("role", "役割は一覧から選んでください。"))
    try:
        invitations.clean_email(email)
    except KibanError as exc:
        problems.extend(exc.errors)
    return problems


@router.get("/t/{lg_code}/staff", response_class=HTMLResponse)
async def staff_admin(request: Request, session: DbSession, staff: Admin, done: str | None = None,
                      who: str | None = None) -> HTMLResponse:
    return await _page(request, session, staff, result=await _staff_result(session, staff, done, who))


@router.post("/t/{lg_code}/staff/invite", dependencies=CsrfChecked)
async def invite(request: Request, session: DbSession, staff: Admin, username: Annotated[str, Form()] = "",
                 display_name: Annotated[str, Form()] = "", role: Annotated[str, Form()] = Role.staff,
                 email: Annotated[str, Form()] = "") -> Response:
    username, display_name, email = username.strip(), display_name.strip(), email.strip()
    typed = {"username": username, "display_name": display_name, "role": role, "email": email}
    problems = await _invite_problems(session, username=username, display_name=display_name, role=role, email=email)
    if problems:
        return await _page(request, session, staff, invite_errors=problems, invite_form=typed, status=422)
    address = invitations.clean_email(email)
    try:
        invitation = await service.invite_staff(session, staff.label, _actor(staff), username=username,
                                                display_name=display_name, role=role, by_email=address is not None)
        link = str(request.url_for("accept_invitation_page", token=invitation.token))
        if address is not None:
            await invitations.mail_invitation(session, staff.tenant, invitation_id=invitation.invitation_id,
                                              email=address, display_name=display_name, inviter=staff.label,
                                              invite_url=link, expires_at=invitation.expires_at)
    except KibanError as exc:  # e.g. the user name taken a moment ago by someone else
        await session.rollback()
        return await _page(request, session, staff, invite_errors=_errors_of(exc, "username"), invite_form=typed,
                           status=exc.status)
    await session.commit()
    if address is None:
        return await _page(request, session, staff, invite_link=link)
    from kiban.core.jobs import runner as job_runner

    job_runner.wake(request.app)
    return await _page(request, session, staff, invite_mailed=display_name)


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


def _staff_url(staff: StaffContext, **query: str) -> str:
    from urllib.parse import urlencode

    base = f"/t/{staff.tenant.lg_code}/staff"
    return f"{base}?{urlencode(query)}" if query else base


@router.get("/t/{lg_code}/staff/{principal_id}/revoke/confirm", response_class=HTMLResponse)
async def revoke_confirm(principal_id: str, request: Request, session: DbSession, staff: Admin) -> HTMLResponse:
    found = await MembershipRepository(session).with_person(principal_id)
    if found is None:
        raise NotFound("その職員はこの団体に所属していません。")
    membership, person = found
    name, tenant = person.display_name, staff.tenant.name
    common = {"title": "職員の停止", "parent": ("職員の管理", _staff_url(staff)),
              "summary": f"{name} さんを停止します。"}
    if principal_id == staff.principal.id:
        return _confirm(request, staff, **common, consequences=[], action=None, status=422,
                        notice="自分自身の利用は停止できません。ほかの団体管理者に依頼してください。")
    if membership.revoked_at is not None:
        return _confirm(request, staff, **common, consequences=[], action=None,
                        notice=f"{name} さんはすでに停止されています。")
    return _confirm(request, staff, **common, action=f"/t/{staff.tenant.lg_code}/staff/{principal_id}/revoke",
                    confirm_label="停止する", consequences=[
                        f"{tenant}の職員としてサインインできなくなり、いま開いている画面もすぐに使えなくなります。",
                        f"いまの役割（{role_label(membership.role)}）は記録され、"
                        "「職員の管理」の「停止中の職員」からいつでも再開できます。",
                        "ほかの団体での所属には影響しません。",
                        "この操作は監査ログに残ります。"])


@router.post("/t/{lg_code}/staff/{principal_id}/revoke", dependencies=CsrfChecked)
async def revoke(principal_id: str, request: Request, session: DbSession, staff: Admin) -> Response:
    try:
        await service.revoke_membership(session, _actor(staff), principal_id)
    except NotFound:
        await session.rollback()
        if await MembershipRepository(session).stopped_for(principal_id) is None:
            raise
        # Sent twice (a double click, a reload): already stopped, so report that.
    except KibanError as exc:
        await session.rollback()
        return await _page(request, session, staff, error=exc.detail, status=exc.status)
    await session.commit()
    return RedirectResponse(_staff_url(staff, done="stopped", who=principal_id), status_code=303)


@router.get("/t/{lg_code}/staff/{principal_id}/reinstate/confirm", response_class=HTMLResponse)
async def reinstate_confirm(principal_id: str, request: Request, session: DbSession, staff: Admin) -> HTMLResponse:
    found = await MembershipRepository(session).with_person(principal_id)
    if found is None:
        raise NotFound("その職員はこの団体に所属していません。")
    membership, person = found
    name, tenant = person.display_name, staff.tenant.name
    common = {"title": "職員の利用の再開", "parent": ("職員の管理", _staff_url(staff)),
              "summary": f"{name} さんの利用を再開します。"}
    if membership.revoked_at is None:
        return _confirm(request, staff, **common, consequences=[], action=None,
                        notice=f"{name} さんは停止されていません。")
    return _confirm(request, staff, **common, action=f"/t/{staff.tenant.lg_code}/staff/{principal_id}/reinstate",
                    confirm_label="再開する", consequences=[
                        f"停止する前の役割（{role_label(membership.role)}）に戻ります。",
                        f"本人がもう一度サインインすると、{tenant}の画面を使えるようになります。",
                        "この操作は監査ログに残ります。"])


@router.post("/t/{lg_code}/staff/{principal_id}/reinstate", dependencies=CsrfChecked)
async def reinstate(principal_id: str, request: Request, session: DbSession, staff: Admin) -> Response:
    try:
        await service.reinstate_membership(session, _actor(staff), principal_id)
    except NotFound:
        await session.rollback()
        if await MembershipRepository(session).active_for(principal_id) is None:
            raise
        # Sent twice: already reinstated, so report that.
    await session.commit()
    return RedirectResponse(_staff_url(staff, done="reinstated", who=principal_id), status_code=303)


async def _invitation_page(request: Request, session, token: str, *, errors: list[dict[str, str]] | None = None,
                           status: int = 200) -> HTMLResponse:
    """The page for an invitation link: the invitee's name and the password form, or why the
    link cannot be used (410)."""
    try:
        invitation = await service.find_invitation(session, token)
    except KibanError as exc:
        return templates.TemplateResponse(request, "identity/invite.html",
                                          {"error": exc.detail, "token": None, "errors": []}, status_code=410)
    principal = await session.get(Principal, invitation.principal_id)
    return templates.TemplateResponse(request, "identity/invite.html", {
        "error": None, "token": token, "name": principal.display_name if principal else "",
        "errors": errors or []}, status_code=status)


@router.get("/invite/{token}", name="accept_invitation_page", response_class=HTMLResponse, dependencies=[PUBLIC])
async def accept_invitation_page(token: str, request: Request, session: DbSession) -> HTMLResponse:
    return await _invitation_page(request, session, token)


@router.post("/invite/{token}", dependencies=[PUBLIC, *CsrfChecked])
async def accept_invitation(token: str, request: Request, session: DbSession,
                            password: Annotated[str, Form()] = "", confirm: Annotated[str, Form()] = "") -> Response:
    from kiban.core.identity import credentials

    # Every problem at once; the passwords themselves are never sent back to the browser.
    problems = []
    if problem := credentials.password_problem(password):
        problems.append(_problem("password", problem))
    if password != confirm:
        problems.append(_problem("confirm", "確認用のパスワードが一致しません。同じパスワードをもう一度入力してください。"))
    if problems:
        return await _invitation_page(request, session, token, errors=problems, status=422)
    try:
        await service.accept_invitation(session, token, password, confirm)
    except KibanError as exc:
        await session.rollback()
        return await _invitation_page(request, session, token, errors=_errors_of(exc, "password"), status=422)
    await session.commit()
    return RedirectResponse("/signin", status_code=303)


KeyAdmin = Annotated[StaffContext, require(Permission.identity_apikey_manage)]


def _key_kind(kind: str) -> str:
    return "本番" if kind == "live" else "テスト"


async def _keys_page(request: Request, session, staff: StaffContext, *, errors: list[dict[str, str]] | None = None,
                     form: dict | None = None, new_token: str | None = None, result: str | None = None,
                     status: int = 200) -> HTMLResponse:
    from kiban.core.identity.apikeys import DEFAULT_RATE_LIMIT, ApiKeyRepository
    from kiban.core.identity.permissions import API_KEY_GRANTABLE

    return templates.TemplateResponse(request, "identity/api_keys.html", {
        "tenant": staff.tenant, "keys": await ApiKeyRepository(session).listed(),
        "grantable": API_KEY_GRANTABLE, "errors": errors or [], "new_token": new_token, "result": result,
        "form": form or {"kind": "test", "permissions": [], "rate_limit_per_minute": str(DEFAULT_RATE_LIMIT)}},
        status_code=status)


RATE_LIMIT_MAX = 10_000


def _key_problems(*, name: str, kind: str, permissions: list[str], rate: str) -> tuple[list[dict[str, str]], int]:
    """Every problem with the key form at once (the service stops at the first), and the
    per-minute limit as a number (full-width digits and 「1,000」 read as typed)."""
    from kiban.core.identity.apikeys import KINDS
    from kiban.core.identity.permissions import API_KEY_GRANTABLE

    problems = []
    if not name:
        problems.append(_problem("name", "キーの名前（用途が分かるもの）を入力してください。"))
    elif len(name) > 100:
        problems.append(_problem("name", f"キーの名前は100文字以内で入力してください（いま{len(name)}文字）。"))
    if kind not in KINDS:
        problems.append(_problem("kind", "種類は「本番」か「テスト」を選んでください。"))
    allowed = {p.value for p in API_KEY_GRANTABLE}
    if not permissions or any(p not in allowed for p in permissions):
        problems.append(_problem("permissions", "キーに与える権限を一つ以上、一覧から選んでください。"))
    limit = 0
    folded = unicodedata.normalize("NFKC", rate).strip().replace(",", "")
    if not folded.isascii() or not folded.isdigit():
        problems.append(_problem("rate_limit_per_minute",
                                 f"1分あたりの上限は、1〜{RATE_LIMIT_MAX}の数字で入力してください。"))
    elif not 1 <= (limit := int(folded)) <= RATE_LIMIT_MAX:
        problems.append(_problem("rate_limit_per_minute",
                                 f"1分あたりの上限は、1〜{RATE_LIMIT_MAX}の範囲で入力してください（いま{limit}）。"))
    return problems, limit


@router.get("/t/{lg_code}/apikeys", response_class=HTMLResponse)
async def api_keys(request: Request, session: DbSession, staff: KeyAdmin, revoked: str | None = None) -> HTMLResponse:
    from kiban.core.identity.apikeys import ApiKeyRepository

    result = None
    if revoked and (key := await ApiKeyRepository(session).by_id(revoked)) and key.revoked_at is not None:
        result = (f"API キー「{key.name}」（{_key_kind(key.kind)}）を失効させました。"
                  "このキーでの呼び出しは、これからすべて拒否されます。")
    return await _keys_page(request, session, staff, result=result)


@router.post("/t/{lg_code}/apikeys", dependencies=CsrfChecked)
async def create_api_key(request: Request, session: DbSession, staff: KeyAdmin,
                         name: Annotated[str, Form()] = "", kind: Annotated[str, Form()] = "test",
                         permissions: Annotated[list[str] | None, Form()] = None,
                         rate_limit_per_minute: Annotated[str, Form()] = "600") -> Response:
    from kiban.core.identity import apikeys

    name, permissions = name.strip(), permissions or []
    typed = {"name": name, "kind": kind, "permissions": permissions, "rate_limit_per_minute": rate_limit_per_minute}
    problems, limit = _key_problems(name=name, kind=kind, permissions=permissions, rate=rate_limit_per_minute)
    if problems:
        return await _keys_page(request, session, staff, errors=problems, form=typed, status=422)
    try:
        created = await apikeys.create_key(session, _actor(staff), name=name, kind=kind, permissions=permissions,
                                           rate_limit_per_minute=limit)
    except KibanError as exc:
        await session.rollback()
        return await _keys_page(request, session, staff, errors=_errors_of(exc, "name"), form=typed,
                                status=exc.status)
    await session.commit()
    return await _keys_page(request, session, staff, new_token=created.token)


@router.get("/t/{lg_code}/apikeys/{key_id}/revoke/confirm", response_class=HTMLResponse)
async def revoke_api_key_confirm(key_id: str, request: Request, session: DbSession, staff: KeyAdmin) -> HTMLResponse:
    from kiban.core.identity.apikeys import ApiKeyRepository

    key = await ApiKeyRepository(session).by_id(key_id)
    if key is None:
        raise NotFound("そのキーはありません。")
    common = {"title": "API キーの失効", "parent": ("API キー", f"/t/{staff.tenant.lg_code}/apikeys"),
              "summary": f"API キー「{key.name}」（{_key_kind(key.kind)}）を失効させます。"}
    if key.revoked_at is not None:
        return _confirm(request, staff, **common, consequences=[], action=None,
                        notice=f"API キー「{key.name}」はすでに失効しています。")
    return _confirm(request, staff, **common, action=f"/t/{staff.tenant.lg_code}/apikeys/{key.id}/revoke",
                    confirm_label="失効させる", consequences=[
                        "このキーを使っているシステムは、すぐに API を呼び出せなくなります。",
                        "失効したキーは元に戻せません。続けて使うには、新しいキーを作ってシステムに設定し直してください。",
                        "この操作は監査ログに残ります。"])


@router.post("/t/{lg_code}/apikeys/{key_id}/revoke", dependencies=CsrfChecked)
async def revoke_api_key(key_id: str, session: DbSession, staff: KeyAdmin) -> Response:
    from urllib.parse import quote

    from kiban.core.identity import apikeys

    await apikeys.revoke_key(session, _actor(staff), key_id)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/apikeys?revoked={quote(key_id)}", status_code=303)


GrantAdmin = Annotated[StaffContext, require(Permission.tenancy_grant_manage)]


async def _grants_page(request: Request, session, staff: StaffContext, *, errors: list[dict[str, str]] | None = None,
                       form: dict[str, str] | None = None, result: str | None = None,
                       status: int = 200) -> HTMLResponse:
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.grants import GRANTABLE, AccessGrantRepository

    grants = await AccessGrantRepository(session).listed()
    prefecture = staff.tenant.prefecture_code if staff.tenant.prefecture_code != staff.tenant.lg_code else None
    codes = {g.grantee_code for g in grants} | ({prefecture} if prefecture else set())
    orgs = await registry_service.organizations_by_code(session, sorted(codes))
    # A municipality usually grants to its prefecture: offer it by name (the field takes names).
    suggested = orgs[prefecture].name if prefecture in orgs else ""
    return templates.TemplateResponse(request, "identity/grants.html", {
        "tenant": staff.tenant, "grants": grants, "grantable": GRANTABLE,
        "names": {code: org.name for code, org in orgs.items()}, "errors": errors or [], "result": result,
        "form": form or {"grantee_code": suggested}}, status_code=status)


async def _grant_described(session, grant) -> tuple[str, str]:
    """(the grantee's name, what the grant lets it read), in the words screens use."""
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.grants import GRANTABLE

    orgs = await registry_service.organizations_by_code(session, [grant.grantee_code])
    org = orgs.get(grant.grantee_code)
    return (org.name if org else "（登録のない団体）"), GRANTABLE.get(grant.permission, "（不明な範囲）")


@router.get("/t/{lg_code}/grants", response_class=HTMLResponse)
async def grants_page(request: Request, session: DbSession, staff: GrantAdmin,
                      revoked: str | None = None, granted: str | None = None) -> HTMLResponse:
    from kiban.core.tenancy.grants import AccessGrantRepository

    result = None
    if granted and (grant := await AccessGrantRepository(session).by_id(granted)) and grant.revoked_at is None:
        grantee, scope = await _grant_described(session, grant)
        result = f"{grantee}に「{scope}」を許可しました。閲覧のたびに利用目的と法的根拠が監査ログに残ります。"
    if revoked and (grant := await AccessGrantRepository(session).by_id(revoked)) and grant.revoked_at is not None:
        grantee, scope = await _grant_described(session, grant)
        result = (f"{grantee}への「{scope}」の許可を取り消しました。"
                  f"{grantee}の職員は、{staff.tenant.name}の記録をこの範囲ではもう閲覧できません。")
    return await _grants_page(request, session, staff, result=result)


@router.post("/t/{lg_code}/grants", dependencies=CsrfChecked)
async def create_grant(request: Request, session: DbSession, staff: GrantAdmin,
                       grantee_code: Annotated[str, Form()] = "", permission: Annotated[str, Form()] = "",
                       purpose: Annotated[str, Form()] = "", legal_basis: Annotated[str, Form()] = "",
                       expires_on: Annotated[str, Form()] = "") -> Response:
    from kiban.core.tenancy import grants

    try:  # a date input shows only 2027-03-31: 「2027/3/31」 is kept in that form
        day = grants.parse_expiry(expires_on)
        shown_expiry = day.isoformat() if day else ""
    except ValueError:
        shown_expiry = expires_on
    typed = {"grantee_code": grantee_code, "permission": permission, "purpose": purpose,
             "legal_basis": legal_basis, "expires_on": shown_expiry}
    try:
        grant = await grants.grant_access(session, _actor(staff), grantee_code=grantee_code, permission=permission,
                                          purpose=purpose, legal_basis=legal_basis, expires_on=expires_on)
    except KibanError as exc:
        await session.rollback()
        return await _grants_page(request, session, staff, errors=_errors_of(exc, "grantee_code"), form=typed,
                                  status=exc.status)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/grants?granted={grant.id}", status_code=303)


@router.get("/t/{lg_code}/grants/{grant_id}/revoke/confirm", response_class=HTMLResponse)
async def revoke_grant_confirm(grant_id: str, request: Request, session: DbSession,
                               staff: GrantAdmin) -> HTMLResponse:
    from kiban.core.tenancy.grants import AccessGrantRepository

    grant = await AccessGrantRepository(session).by_id(grant_id)
    if grant is None:
        raise NotFound("その許可はありません。")
    grantee, scope = await _grant_described(session, grant)
    tenant = staff.tenant.name
    common = {"title": "閲覧許可の取り消し", "parent": ("閲覧許可", f"/t/{staff.tenant.lg_code}/grants"),
              "summary": f"{grantee}への「{scope}」の許可を取り消します。"}
    if grant.revoked_at is not None:
        return _confirm(request, staff, **common, consequences=[], action=None,
                        notice="この許可はすでに取り消されています。")
    return _confirm(request, staff, **common, action=f"/t/{staff.tenant.lg_code}/grants/{grant.id}/revoke",
                    confirm_label="取り消す", consequences=[
                        f"{grantee}の職員は、すぐに{tenant}の記録をこの範囲で閲覧できなくなります。",
                        f"利用目的: {grant.purpose}",
                        "取り消した許可は元に戻せません。必要になったら、もう一度許可を出してください。",
                        "この操作は監査ログに残ります。"])


@router.post("/t/{lg_code}/grants/{grant_id}/revoke", dependencies=CsrfChecked)
async def revoke_grant(grant_id: str, session: DbSession, staff: GrantAdmin) -> Response:
    from urllib.parse import quote

    from kiban.core.tenancy import grants

    await grants.revoke_grant(session, _actor(staff), grant_id)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/grants?revoked={quote(grant_id)}", status_code=303)
