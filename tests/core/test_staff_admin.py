"""An organisation administrator invites staff, changes roles and revokes access."""

from __future__ import annotations

import re

from sqlalchemy import select

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
