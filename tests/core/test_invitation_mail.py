"""Staff invitations by e-mail through core/notify: the invitation goes through the outbox with
its body sealed (AES-GCM under a key derived from the deployment secret), reaches a real local
SMTP server (aiosmtpd) with a link that works, the outbox row never holds the token in clear,
and once delivered the body is gone. The administrator sees the delivery state; without an
address the link is shown once, as before; the address is in no audit entry."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import inspect, select

from kiban.core.audit.models import AuditEntry
from kiban.core.identity import invitations
from kiban.core.notify import sealing
from kiban.core.notify import service as notify
from kiban.core.notify.models import Notification
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import bind_tenant
from tests.conftest import csrf_of
from tests.core.test_notify import _runner, clock, smtp  # noqa: F401  (fixtures)
from tests.factories import HAKODATE, SAPPORO

PROBLEM = "application/problem+json"
ADDRESS = "shinnin.taro@example.jp"


def _columns(n: Notification) -> dict[str, str]:
    return {c.key: str(getattr(n, c.key)) for c in inspect(Notification).column_attrs}


async def _rows(session, lg_code: str = SAPPORO) -> list[Notification]:
    await bind_tenant(session, await registry_service.tenant_for(session, lg_code))
    session.expire_all()
    return list((await session.scalars(select(Notification).where(Notification.template_key == "identity.invitation")
                                       .order_by(Notification.created_at))).all())


def _body(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


async def test_an_invitation_mailed_through_the_outbox_arrives_with_a_working_link_and_is_wiped(
        connection, session, staff, new_client, smtp, clock) -> None:
    admin = await staff(SAPPORO, "admin")
    invited = await admin.client.post(f"/t/{SAPPORO}/staff/invite", data={
        "display_name": "新任 太郎", "username": "shinnin-mail", "role": "staff", "email": ADDRESS,
        "csrf_token": admin.csrf})
    assert invited.status_code == 200
    assert 'id="invite-link"' not in invited.text and "/invite/" not in invited.text  # no link on the screen
    assert "新任 太郎 さんを招待しました" in invited.text and "メール送信待ち" in invited.text
    assert "s***@example.jp" in invited.text and ADDRESS not in invited.text

    [row] = await _rows(session)
    before = _columns(row)
    assert sealing.is_sealed(row.body) and row.state == "queued" and row.email == ADDRESS
    assert "/invite/" not in " ".join(before.values())  # the link is nowhere in clear

    assert await _runner(connection, clock).run_until_idle() >= 1
    [message] = smtp.messages
    assert message["To"].addresses[0].addr_spec == ADDRESS and "職員アカウントへの招待" in message["Subject"]
    body = _body(message)
    link = re.search(r"http://testserver(/invite/[A-Za-z0-9_\-]+)", body)
    assert link and "新任 太郎 様" in body and "有効期限" in body
    token = link.group(1).rsplit("/", 1)[1]
    assert all(token not in value for value in before.values())  # never in any column before delivery

    [row] = await _rows(session)
    after = _columns(row)
    assert row.state == "sent" and row.body == sealing.WIPED_SENT
    assert all(token not in value for value in after.values())
    page = await admin.client.get(f"/t/{SAPPORO}/staff")
    assert "メールで送信済み" in page.text

    invitee = new_client()
    opened = await invitee.get(link.group(1))
    assert opened.status_code == 200 and "新任 太郎" in opened.text
    accepted = await invitee.post(link.group(1), data={"password": "a long enough passphrase",
                                                       "confirm": "a long enough passphrase",
                                                       "csrf_token": csrf_of(invitee)})
    assert accepted.status_code in (200, 303), accepted.text[:500]
    assert (await invitee.get(link.group(1))).status_code in (200, 404, 410)
    assert "招待中の職員" not in (await admin.client.get(f"/t/{SAPPORO}/staff")).text  # accepted: no longer open

    await bind_tenant(session, await registry_service.tenant_for(session, SAPPORO))  # the app's requests rebound it
    entries = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "identity.membership.invited")
                                     .order_by(AuditEntry.seq.desc()))).all()
    assert entries[0].details.get("method") == "メール"
    assert not [e for e in entries if ADDRESS in str(e.details) or ADDRESS in (e.actor_label or "")]


async def test_the_json_twin_mails_instead_of_returning_the_link_and_lists_delivery(
        connection, session, staff, smtp, clock) -> None:
    admin = await staff(SAPPORO, "admin")
    made = await admin.client.post(f"/api/v1/t/{SAPPORO}/staff", json={
        "username": "api-mail", "display_name": "API 花子", "role": "viewer", "email": "hanako@example.jp"})
    assert made.status_code == 201, made.text
    assert made.json()["invite_url"] is None and made.json()["email_state"] == "queued"
    listed = (await admin.client.get(f"/api/v1/t/{SAPPORO}/staff/invitations")).json()
    mine = next(i for i in listed if i["display_name"] == "API 花子")
    assert mine["channel"] == "email" and mine["email_state"] == "queued" and mine["email_masked"] == "h***@example.jp"
    assert "hanako@example.jp" not in str(listed)

    linked = await admin.client.post(f"/api/v1/t/{SAPPORO}/staff", json={
        "username": "api-link", "display_name": "API 次郎", "role": "staff"})
    assert linked.status_code == 201 and linked.json()["invite_url"].startswith("http://testserver/invite/")
    assert linked.json()["email_state"] is None

    await _runner(connection, clock).run_until_idle()
    assert len(smtp.messages) == 1
    listed = (await admin.client.get(f"/api/v1/t/{SAPPORO}/staff/invitations")).json()
    states = {i["display_name"]: (i["channel"], i["email_state"]) for i in listed}
    assert states["API 花子"] == ("email", "sent") and states["API 次郎"] == ("link", None)

    bad = await admin.client.post(f"/api/v1/t/{SAPPORO}/staff", json={
        "username": "api-bad", "display_name": "誤り", "role": "staff", "email": "not-an-address"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(PROBLEM)
    assert bad.json()["errors"][0]["field"] == "email" and "メールアドレスの形式" in bad.json()["detail"]
    names = [m["display_name"] for m in (await admin.client.get(f"/api/v1/t/{SAPPORO}/staff")).json()["members"]]
    assert "誤り" not in names  # nothing was created

    hakodate = await staff(HAKODATE, "admin")
    assert (await hakodate.client.get(f"/api/v1/t/{SAPPORO}/staff/invitations")).status_code in (403, 404)
    theirs = (await hakodate.client.get(f"/api/v1/t/{HAKODATE}/staff/invitations")).json()
    assert "API 花子" not in str(theirs)
    viewer = await staff(SAPPORO, "viewer")
    assert (await viewer.client.get(f"/api/v1/t/{SAPPORO}/staff/invitations")).status_code == 403


async def test_a_bad_address_is_refused_with_everything_kept_and_nothing_made(staff, session) -> None:
    admin = await staff(SAPPORO, "admin")
    bad = await admin.client.post(f"/t/{SAPPORO}/staff/invite", data={
        "display_name": "", "username": "kept-name", "role": "staff", "email": "taro@", "csrf_token": admin.csrf})
    assert bad.status_code == 422
    assert "氏名を入力してください" in bad.text and "メールアドレスの形式が正しくありません" in bad.text
    assert 'value="taro@"' in bad.text and 'value="kept-name"' in bad.text
    assert await _rows(session) == []


async def test_a_refused_address_fails_visibly_and_the_sealed_body_is_wiped(connection, session, staff, smtp,
                                                                           clock) -> None:
    smtp.refuse.add("nobody@example.jp")
    admin = await staff(SAPPORO, "admin")
    await admin.client.post(f"/t/{SAPPORO}/staff/invite", data={
        "display_name": "届かない 人", "username": "refused-mail", "role": "staff", "email": "nobody@example.jp",
        "csrf_token": admin.csrf})
    await _runner(connection, clock).run_until_idle()
    [row] = await _rows(session)
    assert row.state == "failed" and row.body == sealing.WIPED_FAILED
    page = await admin.client.get(f"/t/{SAPPORO}/staff")
    assert "メールを送信できませんでした" in page.text and "宛先が受け付けられませんでした" in page.text


def test_a_sealed_body_opens_only_for_its_own_row() -> None:
    sealed = sealing.seal("秘密のリンク https://x/invite/abc", "011002", "n-1")
    assert sealing.is_sealed(sealed) and "invite" not in sealed and "abc" not in sealed
    assert sealing.open_body(sealed, "011002", "n-1") == "秘密のリンク https://x/invite/abc"
    with pytest.raises(sealing.Unopenable):
        sealing.open_body(sealed, "011002", "n-2")  # copied onto another row
    with pytest.raises(sealing.Unopenable):
        sealing.open_body(sealed[:-4] + "AAAA", "011002", "n-1")
    assert sealing.shown(sealed) == sealing.PENDING_LABEL and sealing.shown("ふつう") == "ふつう"


async def test_a_sealed_message_cannot_be_an_in_app_notice(session) -> None:
    tenant = await registry_service.tenant_for(session, SAPPORO)
    with pytest.raises(ValueError):
        await notify.send(session, tenant, template="identity.invitation",
                          to=notify.Recipient(email="a@example.jp", principal_id="p-1"),
                          context={"municipality": "x", "name": "x", "inviter": "x", "invite_url": "x",
                                   "expires_at": "x"}, service=notify.PLATFORM_SERVICE, sealed=True)


def test_a_tenants_wording_must_keep_the_link() -> None:
    definition = notify.template_def("identity.invitation")
    errors = notify.check_wording(definition, "招待", "{name} 様\nリンクはありません。")
    assert [e["field"] for e in errors] == ["body"] and "{invite_url}" in errors[0]["message"]
    assert notify.check_wording(definition, "招待", "{name} 様\n{invite_url}") == []
    assert invitations.masked("taro@example.jp") == "t***@example.jp"


async def test_a_sealed_body_that_no_longer_opens_is_failed_not_sent_and_wiped(connection, session, staff, smtp,
                                                                              clock) -> None:
    admin = await staff(SAPPORO, "admin")
    await admin.client.post(f"/t/{SAPPORO}/staff/invite", data={
        "display_name": "鍵 変更", "username": "rekeyed-mail", "role": "staff", "email": "kagi@example.jp",
        "csrf_token": admin.csrf})
    [row] = await _rows(session)
    row.body = sealing.seal("別の行の本文", SAPPORO, "another-row")  # as if the key had changed
    await session.commit()
    await _runner(connection, clock).run_until_idle()
    assert smtp.messages == []
    [row] = await _rows(session)
    assert row.state == "failed" and row.body == sealing.WIPED_FAILED and "復号できませんでした" in row.last_error
