"""core/notify over HTTP: staff's delivery status page and wording editor with their JSON twins,
and a resident's notices under /me/notices."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from kiban.core.audit.models import AuditEntry
from kiban.core.identity import service as identity_service
from kiban.core.identity.models import Principal
from kiban.core.notify import service as notify
from kiban.core.notify.models import Notification
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import bind_tenant
from kiban.kit.db import utcnow
from tests.core.test_notify import RECEIPT, _context
from tests.factories import HAKODATE, SAPPORO



async def _queue(session, lg_code: str, count: int, *, principal_id: str | None = None, start: int = 1) -> list:
    tenant = await registry_service.tenant_for(session, lg_code)
    await bind_tenant(session, tenant)
    made = []
    for i in range(start, start + count):
        made.append(await notify.send(session, tenant, template=RECEIPT.key,
                                      to=notify.Recipient(email=f"r{i}@example.jp", principal_id=principal_id),
                                      context=_context(i), service="aichi-e-shinsei", dedupe_key=f"web:{i}"))
    await session.commit()
    return made


async def _resident(session, new_client, name: str = "札幌 花子"):
    principal = Principal(id=str(uuid.uuid4()), kind="resident", display_name=name, created_at=utcnow())
    session.add(principal)
    await session.flush()
    started = await identity_service.start_session(session, principal.id, "active")
    await session.commit()
    client = new_client()
    client.cookies.set("kiban_session", started.token)
    return principal, client


async def test_staff_see_delivery_status_paged_and_filtered_with_why_mail_waits(session, staff) -> None:
    made = await _queue(session, SAPPORO, 55)
    clerk = await staff(SAPPORO, "viewer")
    page = await clerk.client.get(f"/t/{SAPPORO}/notify")
    assert page.status_code == 200
    assert page.text.count('data-state="queued"') == 50 and "1 / 2 ページ" in page.text
    assert "送信設定がありません" in page.text  # the test server has no SMTP server configured
    assert "r1@example.jp" not in page.text  # addresses are not listed
    second = await clerk.client.get(f"/t/{SAPPORO}/notify?page=2")
    assert second.text.count('data-state="queued"') == 5
    sent_only = await clerk.client.get(f"/t/{SAPPORO}/notify?state=sent")
    assert 'data-state="queued"' not in sent_only.text and "該当する通知はありません" in sent_only.text
    api = (await clerk.client.get(f"/api/v1/t/{SAPPORO}/notify/notifications?limit=10&state=queued")).json()
    assert api["total"] == 55 and len(api["items"]) == 10 and api["counts"]["queued"] == 55
    assert api["limits"]["configured"] is False and api["items"][0]["state_label"] == "待機中"
    assert api["items"][0]["wait_reason"].startswith("送信設定がありません")
    one = (await clerk.client.get(f"/api/v1/t/{SAPPORO}/notify/notifications/{made[0].id}")).json()
    assert one["message_id"] == made[0].message_id and one["channels"] == ["email"]
    assert (await clerk.client.get(f"/api/v1/t/{SAPPORO}/notify/notifications/{uuid.uuid4()}")).status_code == 404


async def test_another_municipalitys_staff_see_nothing_of_it(session, staff) -> None:
    made = await _queue(session, SAPPORO, 1)
    hakodate = await staff(HAKODATE, "admin")
    assert (await hakodate.client.get(f"/t/{SAPPORO}/notify")).status_code == 404
    own = (await hakodate.client.get(f"/api/v1/t/{HAKODATE}/notify/notifications")).json()
    assert own["total"] == 0
    assert (await hakodate.client.get(f"/api/v1/t/{HAKODATE}/notify/notifications/{made[0].id}")).status_code == 404


async def test_wording_errors_are_listed_at_once_in_japanese_and_the_input_is_kept(session, staff) -> None:
    clerk = await staff(SAPPORO, "staff")
    url = f"/t/{SAPPORO}/notify/templates/{RECEIPT.key}"
    form = (await clerk.client.get(url)).text
    assert RECEIPT.subject in form and "{receipt_no}" in form
    bad = await clerk.client.post(url, data={"subject": "{age}のお知らせ", "body": "受付 {receipt_no} {name.x",
                                             "action": "save", "csrf_token": clerk.csrf})
    assert bad.status_code == 422
    assert "件名: 差し込み項目 {age} はこのテンプレートでは使えません。" in bad.text
    assert "本文: " in bad.text and "{age}のお知らせ" in bad.text and "受付 {receipt_no} {name.x" in bad.text
    empty = await clerk.client.post(url, data={"subject": "", "body": "", "csrf_token": clerk.csrf})
    assert "件名を入力してください" in empty.text and "本文を入力してください" in empty.text


async def test_staff_preview_save_and_go_back_to_the_standard_wording(session, staff) -> None:
    clerk = await staff(SAPPORO, "staff")
    url = f"/t/{SAPPORO}/notify/templates/{RECEIPT.key}"
    shown = await clerk.client.post(url, data={"subject": "{title}の受付", "body": "{name}様\n番号 {receipt_no}",
                                               "action": "preview", "csrf_token": clerk.csrf})
    assert shown.status_code == 200 and "〈title〉の受付" in shown.text and "番号 〈receipt_no〉" in shown.text
    saved = await clerk.client.post(url, data={"subject": "{title}の受付", "body": "{name}様\n番号 {receipt_no}",
                                               "action": "save", "csrf_token": clerk.csrf})
    assert saved.status_code == 303
    n = (await _queue(session, SAPPORO, 1))[0]
    assert (n.subject, n.body) == ("粗大ごみ申込の受付", "札幌 花子様\n番号 R-0001")
    await bind_tenant(session, await registry_service.tenant_for(session, SAPPORO))
    actions = (await session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == RECEIPT.key))).all()
    assert "notify.template.updated" in actions
    unconfirmed = await clerk.client.post(f"{url}/reset", data={"csrf_token": clerk.csrf})
    assert unconfirmed.status_code == 422 and "確認のチェック" in unconfirmed.text
    reset = await clerk.client.post(f"{url}/reset", data={"confirm": "yes", "csrf_token": clerk.csrf})
    assert reset.status_code == 303
    again = (await _queue(session, SAPPORO, 1, start=2))[0]
    assert again.subject == "【札幌市】粗大ごみ申込を受け付けました"


async def test_a_viewer_may_read_but_not_edit_and_strangers_must_sign_in(staff, client) -> None:
    viewer = await staff(SAPPORO, "viewer")
    assert (await viewer.client.get(f"/t/{SAPPORO}/notify/templates")).status_code == 200
    assert (await viewer.client.get(f"/t/{SAPPORO}/notify/templates/{RECEIPT.key}")).status_code == 403
    put = await viewer.client.put(f"/api/v1/t/{SAPPORO}/notify/templates/{RECEIPT.key}",
                                  json={"subject": "x", "body": "y"})
    assert put.status_code == 403
    anonymous = await client.get(f"/t/{SAPPORO}/notify")
    assert anonymous.status_code in (303, 401)
    assert (await client.get(f"/api/v1/t/{SAPPORO}/notify/notifications")).status_code == 401


async def test_the_json_twins_edit_preview_and_reset_the_wording(staff) -> None:
    clerk = await staff(SAPPORO, "staff")
    base = f"/api/v1/t/{SAPPORO}/notify/templates"
    listed = (await clerk.client.get(base)).json()
    assert any(t["key"] == RECEIPT.key and t["overridden"] is False for t in listed)
    bad = await clerk.client.put(f"{base}/{RECEIPT.key}", json={"subject": "{age}", "body": "{oops"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert {e["field"] for e in bad.json()["errors"]} == {"subject", "body"}
    ok = await clerk.client.put(f"{base}/{RECEIPT.key}", json={"subject": "{title}", "body": "{receipt_no}"})
    assert ok.status_code == 200 and ok.json()["overridden"] is True and ok.json()["subject"] == "{title}"
    preview = await clerk.client.post(f"{base}/{RECEIPT.key}/preview", json={"subject": "{title}", "body": "b"})
    assert preview.json() == {"subject": "〈title〉", "body": "b"}
    form_post = await clerk.client.put(f"{base}/{RECEIPT.key}", data={"subject": "a", "body": "b"})
    assert form_post.status_code == 415
    reset = await clerk.client.delete(f"{base}/{RECEIPT.key}")
    assert reset.status_code == 200 and reset.json()["overridden"] is False
    assert (await clerk.client.get(f"{base}/no.such")).status_code == 404


async def test_staff_queue_a_test_message_and_see_it_waiting(staff) -> None:
    clerk = await staff(SAPPORO, "staff")
    bad = await clerk.client.post(f"/t/{SAPPORO}/notify/test", data={"email": "nope", "csrf_token": clerk.csrf})
    assert bad.status_code == 422 and "メールアドレスを正しく" in bad.text and 'value="nope"' in bad.text
    ok = await clerk.client.post(f"/t/{SAPPORO}/notify/test", data={"email": "me@example.jp",
                                                                  "csrf_token": clerk.csrf})
    assert ok.status_code == 303
    api = await clerk.client.post(f"/api/v1/t/{SAPPORO}/notify/test", json={"email": "me2@example.jp"})
    assert api.status_code == 202 and api.json()["template_label"] == "送信テスト"
    listed = (await clerk.client.get(f"/api/v1/t/{SAPPORO}/notify/notifications?template=notify.test")).json()
    assert listed["total"] == 2


async def test_a_resident_reads_their_own_notices_from_every_municipality(session, new_client) -> None:
    hanako, client = await _resident(session, new_client)
    taro, other = await _resident(session, new_client, "函館 太郎")
    await _queue(session, SAPPORO, 2, principal_id=hanako.id)
    await _queue(session, HAKODATE, 1, principal_id=hanako.id, start=10)
    await _queue(session, HAKODATE, 1, principal_id=taro.id, start=20)
    page = await client.get("/me/notices")
    assert page.status_code == 200
    assert page.text.count('data-read="no"') == 3 and "札幌市" in page.text and "函館市" in page.text
    assert "R-0020" not in page.text
    api = (await client.get("/api/v1/me/notices")).json()
    assert api["total"] == 3 and {i["organisation"] for i in api["items"]} == {"札幌市", "函館市"}
    notice = api["items"][0]
    read = await client.post(f"/me/notices/{notice['id']}/read",
                             data={"csrf_token": client.cookies.get("kiban_csrf")})
    assert read.status_code == 303
    assert (await client.get("/me/notices")).text.count('data-read="no"') == 2
    # 太郎 cannot mark 花子's notice, nor see it
    stolen = await other.post(f"/api/v1/me/notices/{notice['id']}/read", json={})
    assert stolen.status_code == 404
    assert (await other.get("/api/v1/me/notices")).json()["total"] == 1
    mine = await client.post(f"/api/v1/me/notices/{api['items'][1]['id']}/read", json={})
    assert mine.status_code == 200 and mine.json()["read_at"] is not None


async def test_notices_need_a_resident_signed_in(client, staff) -> None:
    assert (await client.get("/me/notices")).status_code in (303, 401)
    clerk = await staff(SAPPORO, "admin")
    assert (await clerk.client.get("/api/v1/me/notices")).status_code == 401
