"""Staff sign-in as people experience it: password, then a TOTP code, lockout, sessions,
CSRF, and the tenant boundary (札幌市 staff see nothing of 函館市's)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from kiban.core.identity import credentials
from kiban.core.identity import service as identity_service
from kiban.core.identity.models import StaffCredential, WebSession
from kiban.kit.db import utcnow
from tests.conftest import csrf_of, password_step
from tests.factories import HAKODATE, SAPPORO

PASSWORD = "correct horse battery staple"


async def _account(session, lg_code=SAPPORO, role="admin", enrolled=True):
    secret = credentials.new_totp_secret()
    username = f"user-{lg_code}-{role}-{'e' if enrolled else 'n'}"
    await identity_service.create_staff(session, username=username, display_name="札幌 太郎",
                                        password=PASSWORD, lg_code=lg_code, role=role, granted_by="test",
                                        totp_secret=secret if enrolled else None)
    await session.commit()
    return username, secret


async def test_password_then_totp_signs_in_and_lands_on_the_tenant(session, new_client) -> None:
    username, secret = await _account(session)
    client = new_client()
    first = await password_step(client, username, PASSWORD)
    assert first.status_code == 303 and first.headers["location"] == "/signin/totp"
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    # The password alone opens nothing.
    assert (await client.get(f"/api/v1/t/{SAPPORO}/settings/history")).status_code == 401
    second = await client.post("/signin/totp", data={"code": credentials.totp_code(secret),
                                                     "csrf_token": csrf_of(client)})
    assert second.status_code == 303 and second.headers["location"] == f"/t/{SAPPORO}/"
    assert (await client.get(f"/api/v1/t/{SAPPORO}/settings/history")).status_code == 200
    home = await client.get(f"/t/{SAPPORO}/")
    assert "としてサインインしています" in home.text


def _alert(response) -> str:
    """The error shown on the sign-in page (the page is otherwise the same for everyone)."""
    import re

    found = re.search(r'<div class="alert alert--error" role="alert">(.*?)</div>', response.text, re.S)
    assert found, response.text
    return found.group(1)


async def test_wrong_password_and_unknown_user_get_the_same_answer(session, new_client) -> None:
    username, _ = await _account(session)
    wrong = await password_step(new_client(), username, "not the password")
    unknown = await password_step(new_client(), "nobody-at-all", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "ユーザー名またはパスワードが正しくありません" in _alert(wrong)
    assert _alert(wrong) == _alert(unknown)


async def test_a_locked_account_answers_like_an_unknown_user_name(session, new_client) -> None:
    """The lock (set by wrong codes at the second step) must not tell an attacker which user
    names exist: at the password step a locked account answers like any other."""
    username, _ = await _account(session)
    credential = (await session.scalars(select(StaffCredential).where(StaffCredential.username == username))).one()
    credential.failed_count = 5
    credential.locked_until = utcnow() + timedelta(minutes=30)
    await session.commit()
    locked_wrong = await password_step(new_client(), username, "wrong password!!")
    unknown = await password_step(new_client(), "nobody-at-all", "wrong password!!")
    assert locked_wrong.status_code == unknown.status_code == 401
    assert _alert(locked_wrong) == _alert(unknown)
    assert "までサインインできません" not in locked_wrong.text


async def test_wrong_passwords_never_lock_the_account(session, new_client) -> None:
    """Anyone can type a clerk's user name: failures at the password step slow the address
    that makes them (tests/core/test_sign_in_protection.py) and never lock the account."""
    username, secret = await _account(session)
    for _ in range(8):
        await password_step(new_client(), username, "wrong password!!")
    credential = (await session.scalars(select(StaffCredential).where(StaffCredential.username == username))).one()
    await session.refresh(credential)
    assert credential.failed_count == 0 and credential.locked_until is None


async def test_five_wrong_codes_lock_the_account_and_its_owner_is_told_until_when(session, new_client) -> None:
    """Whoever reaches the second step knows the password: there the lock stays, with backoff."""
    username, secret = await _account(session)
    client = new_client()
    await password_step(client, username, PASSWORD)
    for _ in range(5):
        refused = await client.post("/signin/totp", data={"code": "000000", "csrf_token": csrf_of(client)})
    assert refused.status_code == 401 and "までサインインできません" in refused.text
    right = await client.post("/signin/totp", data={"code": credentials.totp_code(secret), "csrf_token": csrf_of(client)})
    assert right.status_code == 401 and "までサインインできません" in right.text
    credential = (await session.scalars(select(StaffCredential).where(StaffCredential.username == username))).one()
    await session.refresh(credential)
    assert credential.failed_count == 5
    # Backoff grows: the sixth failure (after the lock ends) locks for longer.
    first_lock = credential.locked_until - utcnow()
    credential.locked_until = utcnow() - timedelta(seconds=1)
    await session.commit()
    await client.post("/signin/totp", data={"code": "000000", "csrf_token": csrf_of(client)})
    await session.refresh(credential)
    assert credential.locked_until - utcnow() > first_lock


async def test_wrong_totp_counts_as_a_failure_and_a_code_cannot_be_replayed(session, new_client) -> None:
    username, secret = await _account(session)
    client = new_client()
    await password_step(client, username, PASSWORD)
    bad = await client.post("/signin/totp", data={"code": "000000", "csrf_token": csrf_of(client)})
    assert bad.status_code == 401 and "確認コードが正しくない" in bad.text
    code = credentials.totp_code(secret)
    ok = await client.post("/signin/totp", data={"code": code, "csrf_token": csrf_of(client)})
    assert ok.status_code == 303
    other = new_client()
    await password_step(other, username, PASSWORD)
    replay = await other.post("/signin/totp", data={"code": code, "csrf_token": csrf_of(other)})
    assert replay.status_code == 401


async def test_first_sign_in_enrols_totp_with_a_qr_code(session, new_client) -> None:
    username, _ = await _account(session, enrolled=False)
    client = new_client()
    first = await password_step(client, username, PASSWORD)
    assert first.headers["location"] == "/signin/enrol"
    page = await client.get("/signin/enrol")
    assert "<svg" in page.text and 'id="totp-secret"' in page.text
    credential = (await session.scalars(select(StaffCredential).where(StaffCredential.username == username))).one()
    await session.refresh(credential)
    secret = credentials.decrypt_secret(credential.totp_secret_encrypted)
    assert credentials.secret_text(secret) in page.text
    assert "totp_secret" not in credential.totp_secret_encrypted  # stored encrypted, not base32
    done = await client.post("/signin/enrol", data={"code": credentials.totp_code(secret),
                                                    "csrf_token": csrf_of(client)})
    assert done.status_code == 303
    assert (await client.get(f"/api/v1/t/{SAPPORO}/settings/history")).status_code == 200


async def test_forms_without_the_csrf_token_are_refused(session, new_client) -> None:
    username, _ = await _account(session)
    client = new_client()
    await client.get("/signin")
    refused = await client.post("/signin", data={"username": username, "password": PASSWORD})
    assert refused.status_code == 403 and "ページを開き直して" in refused.text
    forged = await client.post("/signin", data={"username": username, "password": PASSWORD,
                                                "csrf_token": "x" * 43})
    assert forged.status_code == 403


async def test_sign_out_ends_the_session(staff) -> None:
    admin = await staff(SAPPORO)
    out = await admin.client.post("/signout", data={"csrf_token": admin.csrf})
    assert out.status_code == 303
    assert (await admin.client.get(f"/api/v1/t/{SAPPORO}/settings/history")).status_code == 401


async def test_idle_and_absolute_expiry_end_sessions(session, staff) -> None:
    admin = await staff(SAPPORO)
    web_session = (await session.scalars(select(WebSession).where(WebSession.principal_id == admin.principal_id,
                                                                  WebSession.revoked_at.is_(None)))).one()
    web_session.last_seen_at = utcnow() - timedelta(minutes=31)
    await session.commit()
    assert (await admin.client.get(f"/api/v1/t/{SAPPORO}/settings/history")).status_code == 401
    web_session.last_seen_at = utcnow()
    web_session.expires_at = utcnow() - timedelta(seconds=1)
    await session.commit()
    assert (await admin.client.get(f"/api/v1/t/{SAPPORO}/settings/history")).status_code == 401


async def test_anonymous_pages_redirect_to_sign_in_and_api_answers_401(client) -> None:
    api = await client.get(f"/api/v1/t/{SAPPORO}/settings/history")
    assert api.status_code == 401 and api.headers["content-type"].startswith("application/problem+json")
    await client.get("/signin")
    page = await client.post(f"/t/{SAPPORO}/settings/childcare.application_deadline_day",
                             data={"value": "20", "csrf_token": csrf_of(client)})
    assert page.status_code == 303
    assert page.headers["location"] == f"/signin?next=/t/{SAPPORO}/"


async def test_staff_of_sapporo_reading_hakodate_get_404_by_url_and_api(staff) -> None:
    sapporo_admin = await staff(SAPPORO)
    for url in (f"/api/v1/t/{HAKODATE}/settings/history",):
        response = await sapporo_admin.client.get(url)
        assert response.status_code == 404, url
    edit = await sapporo_admin.client.post(f"/t/{HAKODATE}/settings/childcare.application_deadline_day",
                                           data={"value": "3", "csrf_token": sapporo_admin.csrf})
    assert edit.status_code == 404
    page = await sapporo_admin.client.get(f"/t/{HAKODATE}/settings")
    assert "変更履歴は函館市の職員が" in page.text  # public view only, no history


async def test_staff_without_the_permission_get_403(staff) -> None:
    clerk = await staff(SAPPORO, "staff")
    edit = await clerk.client.post(f"/t/{SAPPORO}/settings/childcare.application_deadline_day",
                                   data={"value": "20", "csrf_token": clerk.csrf})
    assert edit.status_code == 403
    assert (await clerk.client.get(f"/api/v1/t/{SAPPORO}/settings/history")).status_code == 200


async def test_admin_changes_a_setting_through_the_form_and_it_is_audited(staff, client, session) -> None:
    from kiban.core.audit.models import AuditEntry
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.context import as_tenant

    admin = await staff(SAPPORO, "admin", name="札幌 花子")
    key = "childcare.application_deadline_day"
    saved = await admin.client.post(f"/t/{SAPPORO}/settings/{key}",
                                    data={"value": "２０", "reason": "区役所の体制", "expected_version": "0",
                                          "csrf_token": admin.csrf})
    assert saved.status_code == 303
    public = (await client.get(f"/api/v1/t/{SAPPORO}/settings")).json()
    assert next(i for i in public["items"] if i["key"] == key)["value"] == 20
    stale = await admin.client.post(f"/t/{SAPPORO}/settings/{key}",
                                    data={"value": "21", "expected_version": "0", "csrf_token": admin.csrf})
    assert stale.status_code == 409 and "ほかの人が先に変更しました" in stale.text
    invalid = await admin.client.post(f"/t/{SAPPORO}/settings/{key}",
                                      data={"value": "99", "expected_version": "1", "csrf_token": admin.csrf})
    assert invalid.status_code == 422 and "28以下" in invalid.text
    tenant = await registry_service.tenant_for(session, SAPPORO)
    async with as_tenant(session, tenant):
        entries = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "tenancy.setting.updated"))).all()
    assert [(e.actor_label, e.target_id) for e in entries] == [("札幌 花子", key)]


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil"])
async def test_sign_in_never_redirects_off_site(session, new_client, target) -> None:
    username, secret = await _account(session)
    client = new_client()
    await client.get("/signin")
    await client.post("/signin", data={"username": username, "password": PASSWORD, "next": target,
                                       "csrf_token": csrf_of(client)})
    done = await client.post("/signin/totp", data={"code": credentials.totp_code(secret), "next": target,
                                                   "csrf_token": csrf_of(client)})
    assert done.headers["location"] == f"/t/{SAPPORO}/"


async def test_staff_of_two_organisations_choose_one_to_act_for(session, new_client) -> None:
    from kiban.core.identity.models import Membership
    from kiban.core.identity.repository import MembershipRepository
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.context import as_tenant
    from tests.factories import HOKKAIDO

    username, secret = await _account(session)
    credential = (await session.scalars(select(StaffCredential).where(StaffCredential.username == username))).one()
    async with as_tenant(session, await registry_service.tenant_for(session, HOKKAIDO)):
        MembershipRepository(session).add(Membership(principal_id=credential.principal_id, role="viewer",
                                                     granted_by="test", granted_at=utcnow()))
        await session.flush()
    await session.commit()
    client = new_client()
    await password_step(client, username, PASSWORD)
    done = await client.post("/signin/totp", data={"code": credentials.totp_code(secret), "csrf_token": csrf_of(client)})
    assert done.headers["location"] == "/signin/organization"
    page = await client.get("/signin/organization")
    assert "札幌市" in page.text and "北海道" in page.text
    chosen = await client.post("/signin/organization", data={"lg_code": HOKKAIDO, "csrf_token": csrf_of(client)})
    assert chosen.headers["location"] == f"/t/{HOKKAIDO}/"
    # Acting for 北海道 now: 札幌市's staff pages are out of reach until they switch back.
    assert (await client.get(f"/api/v1/t/{HOKKAIDO}/settings/history")).status_code == 200
    assert (await client.get(f"/api/v1/t/{SAPPORO}/settings/history")).status_code == 404
    refused = await client.post("/signin/organization", data={"lg_code": HAKODATE, "csrf_token": csrf_of(client)})
    assert refused.status_code == 422
