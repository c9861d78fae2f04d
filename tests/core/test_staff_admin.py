"""An organisation administrator invites staff, changes roles and revokes access."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from kiban.core.identity import credentials
from kiban.core.identity.models import StaffCredential
from tests.conftest import csrf_of, password_step
from tests.factories import HAKODATE, SAPPORO


async def test_invited_staff_set_a_password_enrol_totp_and_sign_in(staff, new_client, session) -> None:
    admin = await staff(SAPPORO, "admin", name="札幌 管理者")
    page = await admin.client.post(f"/t/{SAPPORO}/staff/invite", data={
        "display_name": "札幌 新人", "username": "sapporo-newcomer", "role": "staff", "csrf_token": admin.csrf})
    assert page.status_code == 200
    link = re.search(r'<code id="invite-link">([^<]+)</code>', page.text).group(1)
    path = link.replace("http://testserver", "")
    invitee = new_client()
    # Before accepting, the account cannot sign in.
    assert (await password_step(invitee, "sapporo-newcomer", "anything at all")).status_code == 401
    form = await invitee.get(path)
    assert "札幌 新人 さん" in form.text
    mismatch = await invitee.post(path, data={"password": "a long password 1", "confirm": "different",
                                              "csrf_token": csrf_of(invitee)})
    assert mismatch.status_code == 422 and "一致しません" in mismatch.text
    accepted = await invitee.post(path, data={"password": "a long password 1", "confirm": "a long password 1",
                                              "csrf_token": csrf_of(invitee)})
    assert accepted.status_code == 303
    assert (await invitee.get(path)).status_code == 410  # one use only
    first = await password_step(invitee, "sapporo-newcomer", "a long password 1")
    assert first.headers["location"] == "/signin/enrol"
    await invitee.get("/signin/enrol")
    credential = (await session.scalars(select(StaffCredential).where(StaffCredential.username == "sapporo-newcomer"))).one()
    await session.refresh(credential)
    secret = credentials.decrypt_secret(credential.totp_secret_encrypted)
    done = await invitee.post("/signin/enrol", data={"code": credentials.totp_code(secret), "csrf_token": csrf_of(invitee)})
    assert done.headers["location"] == f"/t/{SAPPORO}/"


async def test_role_change_and_revocation_take_effect_at_once(staff) -> None:
    admin = await staff(SAPPORO, "admin")
    clerk = await staff(SAPPORO, "staff")
    edit = {"value": "15", "expected_version": "0", "csrf_token": clerk.csrf}
    url = f"/t/{SAPPORO}/settings/childcare.application_deadline_day"
    assert (await clerk.client.post(url, data=edit)).status_code == 403
    promoted = await admin.client.post(f"/t/{SAPPORO}/staff/{clerk.principal_id}/role",
                                       data={"role": "admin", "csrf_token": admin.csrf})
    assert promoted.status_code == 303
    assert (await clerk.client.post(url, data=edit)).status_code == 303
    revoked = await admin.client.post(f"/t/{SAPPORO}/staff/{clerk.principal_id}/revoke",
                                      data={"csrf_token": admin.csrf})
    assert revoked.status_code == 303
    assert (await clerk.client.get(f"/api/v1/t/{SAPPORO}/settings/history")).status_code == 401


async def test_admins_manage_only_their_own_organisation(staff) -> None:
    sapporo_admin = await staff(SAPPORO, "admin")
    hakodate_clerk = await staff(HAKODATE, "staff")
    assert (await sapporo_admin.client.get(f"/t/{HAKODATE}/staff")).status_code == 404
    attempt = await sapporo_admin.client.post(f"/t/{SAPPORO}/staff/{hakodate_clerk.principal_id}/revoke",
                                              data={"csrf_token": sapporo_admin.csrf})
    assert attempt.status_code == 404  # not a member here: as if they did not exist
    assert (await hakodate_clerk.client.get(f"/api/v1/t/{HAKODATE}/settings/history")).status_code == 200
    clerk = await staff(SAPPORO, "staff")
    assert (await clerk.client.get(f"/t/{SAPPORO}/staff")).status_code == 403


async def test_an_admin_cannot_lock_themselves_out(staff) -> None:
    admin = await staff(SAPPORO, "admin")
    response = await admin.client.post(f"/t/{SAPPORO}/staff/{admin.principal_id}/revoke",
                                       data={"csrf_token": admin.csrf})
    assert response.status_code == 422 and "自分自身" in response.text


# -- stopping (停止) and reinstating (再開): confirmed first, reported after, audited ---------------

def _visible(html: str) -> str:
    """The page's text as a person reads it (tags and attribute values removed)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def _audited(session, lg_code: str, action: str, target_id: str):
    from kiban.core.audit.models import AuditEntry
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.context import as_tenant

    tenant = await registry_service.tenant_for(session, lg_code)
    async with as_tenant(session, tenant):
        return (await session.scalars(select(AuditEntry).where(AuditEntry.action == action,
                                                              AuditEntry.target_id == target_id))).all()


async def _sign_in_again(client, member) -> "object":
    """Password, then a code of the next time step (the previous one was spent at first sign-in)."""
    import time

    await password_step(client, member.username, member.password)
    return await client.post("/signin/totp", data={"code": credentials.totp_code(member.totp_secret, time.time() + 30),
                                                   "csrf_token": csrf_of(client)})


async def test_stopping_asks_first_reports_what_happened_and_reinstating_restores_the_role(
        staff, new_client, session) -> None:
    admin = await staff(SAPPORO, "admin", name="札幌 管理者")
    clerk = await staff(SAPPORO, "viewer", name="山田 一郎")
    settings = f"/t/{SAPPORO}/settings"
    history = f"/api/v1/t/{SAPPORO}/settings/history"  # members only
    listing = await admin.client.get(f"/t/{SAPPORO}/staff")
    confirm_url = f"/t/{SAPPORO}/staff/{clerk.principal_id}/revoke/confirm"
    assert confirm_url in listing.text
    assert f'action="/t/{SAPPORO}/staff/{clerk.principal_id}/revoke"' not in listing.text  # no one-click stop

    confirm = await admin.client.get(confirm_url)
    assert confirm.status_code == 200
    text = _visible(confirm.text)
    assert "山田 一郎 さんを停止します。" in text
    assert "札幌市の職員としてサインインできなくなり" in text
    assert "いまの役割（閲覧者）は記録され" in text and "再開できます" in text
    assert f'action="/t/{SAPPORO}/staff/{clerk.principal_id}/revoke"' in confirm.text
    assert ">停止する</button>" in confirm.text and f'href="/t/{SAPPORO}/staff">戻る</a>' in confirm.text
    assert (await clerk.client.get(history)).status_code == 200  # looking changes nothing

    stopped = await admin.client.post(f"/t/{SAPPORO}/staff/{clerk.principal_id}/revoke",
                                      data={"csrf_token": admin.csrf})
    assert stopped.status_code == 303
    result = await admin.client.get(stopped.headers["location"])
    text = _visible(result.text)
    assert "山田 一郎 さんを停止しました。" in text
    assert "停止中の職員" in text and "閲覧者" in text
    assert (await clerk.client.get(history)).status_code == 401  # shut out at once
    again = await admin.client.post(f"/t/{SAPPORO}/staff/{clerk.principal_id}/revoke",
                                    data={"csrf_token": admin.csrf})
    assert again.status_code == 303  # a second click reports the same, and changes nothing
    assert len(await _audited(session, SAPPORO, "identity.membership.revoked", clerk.principal_id)) == 1

    reinstate_url = f"/t/{SAPPORO}/staff/{clerk.principal_id}/reinstate/confirm"
    assert reinstate_url in result.text
    confirm = await admin.client.get(reinstate_url)
    text = _visible(confirm.text)
    assert "山田 一郎 さんの利用を再開します。" in text and "停止する前の役割（閲覧者）に戻ります" in text
    reinstated = await admin.client.post(f"/t/{SAPPORO}/staff/{clerk.principal_id}/reinstate",
                                         data={"csrf_token": admin.csrf})
    assert reinstated.status_code == 303
    result = await admin.client.get(reinstated.headers["location"])
    assert "山田 一郎 さんの利用を再開しました（役割: 閲覧者）。" in _visible(result.text)

    person = new_client()
    signed_in = await _sign_in_again(person, clerk)
    assert signed_in.headers["location"] == f"/t/{SAPPORO}/"
    assert (await person.get(history)).status_code == 200
    edit = {"value": "15", "expected_version": "0", "csrf_token": csrf_of(person)}
    assert (await person.post(f"{settings}/childcare.application_deadline_day", data=edit)).status_code == 403

    entries = await _audited(session, SAPPORO, "identity.membership.reinstated", clerk.principal_id)
    assert len(entries) == 1
    assert entries[0].details["role"] == "viewer" and entries[0].actor_label.startswith("札幌 管理者")


async def test_stop_and_reinstate_pages_are_for_this_organisations_admins_only(staff, session) -> None:
    sapporo_admin = await staff(SAPPORO, "admin")
    sapporo_clerk = await staff(SAPPORO, "staff")
    hakodate_admin = await staff(HAKODATE, "admin")
    hakodate_clerk = await staff(HAKODATE, "staff")
    for path in (f"/staff/{sapporo_clerk.principal_id}/revoke/confirm",
                 f"/staff/{sapporo_clerk.principal_id}/reinstate/confirm"):
        assert (await hakodate_admin.client.get(f"/t/{SAPPORO}{path}")).status_code == 404
        assert (await sapporo_clerk.client.get(f"/t/{SAPPORO}{path}")).status_code == 403
    # Another organisation's member under our URL: as if they did not exist.
    for path in (f"/staff/{hakodate_clerk.principal_id}/revoke/confirm",
                 f"/staff/{hakodate_clerk.principal_id}/reinstate/confirm"):
        assert (await sapporo_admin.client.get(f"/t/{SAPPORO}{path}")).status_code == 404
    assert (await sapporo_admin.client.post(f"/t/{SAPPORO}/staff/{hakodate_clerk.principal_id}/reinstate",
                                            data={"csrf_token": sapporo_admin.csrf})).status_code == 404
    assert (await hakodate_admin.client.post(f"/t/{SAPPORO}/staff/{sapporo_clerk.principal_id}/reinstate",
                                             data={"csrf_token": hakodate_admin.csrf})).status_code == 404
    assert (await sapporo_clerk.client.post(f"/t/{SAPPORO}/staff/{sapporo_admin.principal_id}/reinstate",
                                            data={"csrf_token": sapporo_clerk.csrf})).status_code == 403
    # An active member has nothing to reinstate (a repeated click lands here): no change, no entry.
    assert (await sapporo_admin.client.post(f"/t/{SAPPORO}/staff/{sapporo_clerk.principal_id}/reinstate",
                                            data={"csrf_token": sapporo_admin.csrf})).status_code == 303
    assert await _audited(session, SAPPORO, "identity.membership.reinstated", sapporo_clerk.principal_id) == []


async def test_an_admin_is_told_they_cannot_stop_themselves_before_trying(staff) -> None:
    admin = await staff(SAPPORO, "admin")
    page = await admin.client.get(f"/t/{SAPPORO}/staff/{admin.principal_id}/revoke/confirm")
    assert page.status_code == 422 and "自分自身の利用は停止できません" in page.text
    assert "<button" not in page.text.split("<main", 1)[1]


async def test_staff_screens_name_roles_in_japanese(staff, new_client, session) -> None:
    from kiban.core.identity.models import Membership
    from kiban.core.identity.repository import MembershipRepository
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.context import as_tenant
    from kiban.kit.db import utcnow

    admin = await staff(SAPPORO, "admin", name="札幌 太郎")
    page = _visible((await admin.client.get(f"/t/{SAPPORO}/staff")).text)
    assert "団体管理者" in page and "admin" not in page and "viewer" not in page
    async with as_tenant(session, await registry_service.tenant_for(session, HAKODATE)):
        MembershipRepository(session).add(Membership(principal_id=admin.principal_id, role="viewer",
                                                     granted_by="test", granted_at=utcnow()))
        await session.flush()
    await session.commit()
    person = new_client()
    await _sign_in_again(person, admin)
    choice = _visible((await person.get("/signin/organization")).text)
    assert "札幌市（団体管理者）" in choice and "函館市（閲覧者）" in choice


async def test_a_stopped_member_who_signs_in_is_told_why_there_is_nothing_to_open(staff, new_client) -> None:
    admin = await staff(SAPPORO, "admin")
    clerk = await staff(SAPPORO, "staff", name="山田 一郎")
    await admin.client.post(f"/t/{SAPPORO}/staff/{clerk.principal_id}/revoke", data={"csrf_token": admin.csrf})
    person = new_client()
    signed_in = await _sign_in_again(person, clerk)
    assert signed_in.headers["location"] == "/signin/organization"
    page = await person.get("/signin/organization")
    assert "いま所属している団体がありません" in page.text and "団体管理者に連絡してください" in page.text
    assert 'name="lg_code"' not in page.text


# -- the invitation forms: every error at once, the input kept ----------------------------------

def _field(html: str, name: str) -> str:
    return re.search(rf'<(?:input|select)[^>]*name="{name}"[^>]*>', html).group(0)


def _selected(html: str, element_id: str) -> str:
    select_html = re.search(rf'<select[^>]*id="{element_id}".*?</select>', html, flags=re.S).group(0)
    return re.search(r'<option value="([^"]+)"\s*selected', select_html).group(1)


async def test_the_invitation_form_shows_every_error_at_once_and_keeps_what_was_typed(staff, session) -> None:
    admin = await staff(SAPPORO, "admin", name="札幌 管理者")
    taken = await staff(SAPPORO, "staff", name="札幌 先輩")
    accounts = await session.scalar(select(func.count()).select_from(StaffCredential))
    # A taken user name and no name: both said at once, the role and the typed name kept.
    page = await admin.client.post(f"/t/{SAPPORO}/staff/invite", data={
        "display_name": "", "username": taken.username, "role": "viewer", "csrf_token": admin.csrf})
    assert page.status_code == 422
    assert "氏名を入力してください。" in page.text
    assert f"ユーザー名「{taken.username}」はすでに使われています。" in page.text
    assert f'value="{taken.username}"' in _field(page.text, "username")
    assert 'aria-invalid="true"' in _field(page.text, "display_name")
    assert _selected(page.text, "invite-role") == "viewer"  # the role-change lists have their own
    assert 'href="#invite-display_name"' in page.text and 'href="#invite-username"' in page.text

    # A name typed and no user name: the name stays, the user name is asked for.
    page = await admin.client.post(f"/t/{SAPPORO}/staff/invite", data={
        "display_name": "札幌 新人", "username": "  ", "role": "root", "csrf_token": admin.csrf})
    assert page.status_code == 422
    assert 'value="札幌 新人"' in _field(page.text, "display_name")
    assert "ユーザー名を入力してください" in page.text and "役割は一覧から選んでください。" in page.text
    # Nothing was created by either attempt.
    assert await session.scalar(select(func.count()).select_from(StaffCredential)) == accounts


async def test_accepting_an_invitation_says_every_password_problem_and_keeps_the_name(staff, new_client) -> None:
    admin = await staff(SAPPORO, "admin", name="札幌 管理者")
    page = await admin.client.post(f"/t/{SAPPORO}/staff/invite", data={
        "display_name": "札幌 新人", "username": "sapporo-both-wrong", "role": "staff", "csrf_token": admin.csrf})
    path = re.search(r'<code id="invite-link">([^<]+)</code>', page.text).group(1).replace("http://testserver", "")
    invitee = new_client()
    await invitee.get(path)
    both = await invitee.post(path, data={"password": "short", "confirm": "other", "csrf_token": csrf_of(invitee)})
    assert both.status_code == 422
    assert "12文字以上" in both.text and "一致しません" in both.text
    assert "札幌 新人 さん" in both.text  # the page still greets the invitee
    assert 'value="short"' not in both.text and 'value="other"' not in both.text  # passwords never sent back
