"""電子申請 through HTTP: staff build and publish a form, a resident answers it without signing
in (every error at once, input kept, nothing stored; confirmation; a receipt number; one
submission per form token), the receipt reaches the resident over real SMTP, staff work the
inbox (status, assignment, comments, messages, CSV/xlsx), 一宮市 copies 豊田市's shared
template, and every route keeps to its tenant and permission."""

from __future__ import annotations

import html
import io
import re
from collections import Counter

import openpyxl
import pytest
from sqlalchemy import func, select

from kiban.core.audit.models import AuditEntry
from kiban.core.metering.models import UsageEventKey
from kiban.core.notify.models import Notification
from kiban.core.tenancy.context import unscoped
from kiban.modules.forms.models import FormSubmission, FormSubmissionEvent
from tests.conftest import csrf_of
from kiban.core.identity.devca import load_card
from tests.core.test_japanese_only import card_ca, foreign_words, read  # noqa: F401 - fixtures
from tests.core.test_notify import _runner, clock, smtp  # noqa: F401 - fixtures
from tests.factories import HAKODATE, ICHINOMIYA, SAPPORO

PROBLEM = "application/problem+json"
TOYOTA = "232114"

FIELDS = [
    {"type": "text", "label": "お名前", "required": True},
    {"type": "email", "label": "メールアドレス", "required": False},
    {"type": "choice", "label": "品目", "required": True, "options": ["自転車", "その他"]},
    {"type": "text", "label": "その他の内容", "required": True, "show_if": {"field": "q3", "equals": "その他"}},
    {"type": "number", "label": "点数", "required": True, "min": 1, "max": 10},
    {"type": "address", "label": "収集場所", "required": True},
]
GOOD = {"a_q1": "一宮 花子", "a_q2": "hanako@example.jp", "a_q3": "自転車", "a_q5": "2",
        "a_q6_postal": "491-0858", "a_q6_line": "1-2-3"}


async def _build(admin, lg_code: str, slug: str = "sodai", fields=FIELDS, **settings) -> dict:
    made = await admin.client.post(f"/api/v1/t/{lg_code}/forms", json={
        "title": "粗大ごみ収集の申込", "slug": slug, "contact": "ごみ減量推進課 0586-00-0000", "fields": fields,
        **settings})
    assert made.status_code == 201, made.text
    published = await admin.client.post(f"/api/v1/t/{lg_code}/forms/{made.json()['id']}/publish", json={})
    assert published.status_code == 200, published.text
    return published.json()


def _hidden(page: str) -> dict[str, str | list[str]]:
    """The confirmation page's hidden inputs, as a form post (a repeated name becomes a list)."""
    data: dict[str, str | list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page):
        name, value = html.unescape(name), html.unescape(value)
        if name in data:
            data[name] = [*([data[name]] if isinstance(data[name], str) else data[name]), value]
        else:
            data[name] = value
    return data


async def _confirm(client, lg_code: str, slug: str, data: dict):
    await client.get(f"/f/{lg_code}/{slug}")
    return await client.post(f"/f/{lg_code}/{slug}/confirm", data={**data, "csrf_token": csrf_of(client)})


async def _count(session, model, *where) -> int:
    async with unscoped(session, "test: counting rows"):
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)))


# -- residents ----------------------------------------------------------------------------------------

async def test_a_resident_sees_every_error_at_once_then_confirms_and_gets_one_receipt(session, staff, new_client) -> None:
    admin = await staff(ICHINOMIYA, "admin")
    form = await _build(admin, ICHINOMIYA)
    resident = new_client()
    page = await resident.get(f"/f/{ICHINOMIYA}/sodai")
    assert page.status_code == 200 and "粗大ごみ収集の申込" in page.text and 'name="a_q6_postal"' in page.text

    bad = await _confirm(resident, ICHINOMIYA, "sodai", {"a_q1": "", "a_q2": "ｘｘ", "a_q3": "その他", "a_q4": "",
                                                         "a_q5": "99", "a_q6_postal": "12", "a_q6_line": "1-2-3"})
    assert bad.status_code == 422
    for message in ("「お名前」を入力してください。", "「メールアドレス」はメールアドレスの形", "「その他の内容」を入力してください。",
                    "「点数」は 1〜10 の範囲", "「収集場所」の郵便番号は7桁"):
        assert message in bad.text, message
    assert "次の5点を直してください" in bad.text
    assert 'value="99"' in bad.text and 'value="1-2-3"' in bad.text  # input kept
    assert await _count(session, FormSubmission) == 0

    lookup = await resident.post(f"/f/{ICHINOMIYA}/sodai/confirm", data={**GOOD, "a_q6_line": "", "lookup": "q6",
                                                                         "csrf_token": csrf_of(resident)})
    assert lookup.status_code == 200 and 'value="一宮市"' in lookup.text and 'value="栄"' in lookup.text

    confirm = await _confirm(resident, ICHINOMIYA, "sodai", GOOD)
    assert confirm.status_code == 200 and "入力内容の確認" in confirm.text
    assert "〒491-0858 愛知県一宮市栄1-2-3" in confirm.text
    assert await _count(session, FormSubmission) == 0
    hidden = _hidden(confirm.text)
    first = await resident.post(f"/f/{ICHINOMIYA}/sodai/submit", data=hidden)
    again = await resident.post(f"/f/{ICHINOMIYA}/sodai/submit", data=hidden)  # the double submit
    assert first.status_code == again.status_code == 303 and first.headers["location"] == again.headers["location"]
    done = await resident.get(first.headers["location"])
    receipt = re.search(r'<strong id="receipt-no">([^<]+)</strong>', done.text).group(1)
    assert re.fullmatch(r"\d{8}-\d{4}-\d{4}", receipt)

    assert await _count(session, FormSubmission) == 1
    stored = (await admin.client.get(f"/api/v1/t/{ICHINOMIYA}/forms/{form['id']}/submissions/{receipt}")).json()
    assert stored["answers"]["q6"]["city"] == "一宮市" and "q4" not in stored["answers"] and stored["answers"]["q5"] == 2
    assert stored["version_number"] == 1 and stored["status"] == "received"
    assert await _count(session, Notification, Notification.template_key == "forms.receipt") == 1
    assert await _count(session, UsageEventKey, UsageEventKey.service_id == "aichi-e-shinsei",
                        UsageEventKey.event == "submission") == 1


async def test_the_receipt_and_the_completion_reach_the_resident_over_smtp(connection, session, staff, new_client,
                                                                           smtp, clock) -> None:
    admin = await staff(ICHINOMIYA, "admin")
    form = await _build(admin, ICHINOMIYA)
    resident = new_client()
    confirm = await _confirm(resident, ICHINOMIYA, "sodai", GOOD)
    done = await resident.get((await resident.post(f"/f/{ICHINOMIYA}/sodai/submit", data=_hidden(confirm.text))).headers["location"])
    receipt = re.search(r'<strong id="receipt-no">([^<]+)</strong>', done.text).group(1)
    clock.advance(60)  # the test's clock was set before signing in and building took a moment
    await _runner(connection, clock).run_until_idle()
    (mail,) = smtp.messages
    assert mail["To"].addresses[0].addr_spec == "hanako@example.jp"
    assert receipt in mail["Subject"] and "一宮市" in mail["Subject"]
    assert f"受付番号: {receipt}" in mail.get_content() and "ごみ減量推進課" in mail.get_content()

    base = f"/t/{ICHINOMIYA}/forms/{form['id']}/submissions/{receipt}"
    page = await admin.client.get(base)
    for status in ("reviewing", "completed"):
        version = re.search(r'name="expected_version" value="(\d+)"', page.text).group(1)
        moved = await admin.client.post(f"{base}/status", data={"status": status, "note": "収集日は12月5日です。",
                                                                "expected_version": version, "csrf_token": admin.csrf})
        assert moved.status_code == 303, moved.text
        page = await admin.client.get(base)
    clock.advance(60)
    await _runner(connection, clock).run_until_idle()
    assert len(smtp.messages) == 2  # 審査中 sends nothing; 完了 does
    assert "完了" in smtp.messages[1]["Subject"] and "収集日は12月5日です。" in smtp.messages[1].get_content()


async def _card_resident(new_client, ca, name: str):
    """A resident signed in with a virtual My Number Card (``kiban card``'s dev CA), and the card."""
    client = new_client()
    card = load_card(ca.issue(name))
    page = (await client.get("/signin/card")).text
    challenge_id = re.search(r'name="challenge_id" value="([^"]+)"', page).group(1)
    nonce = re.search(r'<code id="challenge">([^<]+)</code>', page).group(1)
    signed_in = await client.post("/signin/card", data={"challenge_id": challenge_id, "certificate": card.certificate_pem,
                                                        "signature": card.sign(nonce), "csrf_token": csrf_of(client)})
    assert signed_in.status_code == 303, signed_in.text
    return client, card


async def test_a_procedure_needing_identity_takes_a_card_signature_staff_verify_later(session, staff, new_client,
                                                                                     card_ca) -> None:
    admin = await staff(ICHINOMIYA, "admin")
    form = await _build(admin, ICHINOMIYA, slug="jyuminhyo", identity_required=True)
    anonymous = new_client()
    refused = await _confirm(anonymous, ICHINOMIYA, "jyuminhyo", GOOD)
    assert refused.status_code == 401 and "マイナンバーカードでサインイン" in refused.text
    proxy = await admin.client.post(f"/api/v1/t/{ICHINOMIYA}/forms/{form['id']}/submissions",
                                    json={"answers": {"q1": "代理"}, "form_token": "token-proxy-0123456789"})
    assert proxy.status_code == 422 and "代理送信はできません" in proxy.json()["detail"]

    resident, card = await _card_resident(new_client, card_ca, "forms-signer")
    _, other_card = await _card_resident(new_client, card_ca, "forms-someone-else")
    confirm = await _confirm(resident, ICHINOMIYA, "jyuminhyo", GOOD)
    assert confirm.status_code == 200
    to_sign = re.search(r'<code id="challenge">([^<]+)</code>', confirm.text).group(1)
    assert to_sign.startswith("kiban-forms-v1:")
    url = f"/f/{ICHINOMIYA}/jyuminhyo/submit"
    unsigned = await resident.post(url, data=_hidden(confirm.text))
    assert unsigned.status_code == 422 and "電子証明書と署名を貼り付けてください" in unsigned.text
    wrong_text = await resident.post(url, data={**_hidden(confirm.text), "certificate": card.certificate_pem,
                                                "signature": card.sign(to_sign + "x")})
    assert wrong_text.status_code == 422 and "電子署名を確認できませんでした" in wrong_text.text
    someone_else = await resident.post(url, data={**_hidden(confirm.text), "certificate": other_card.certificate_pem,
                                                  "signature": other_card.sign(to_sign)})
    assert someone_else.status_code == 422 and "サインインに使ったマイナンバーカード" in someone_else.text
    assert await _count(session, FormSubmission) == 0
    signed = await resident.post(url, data={**_hidden(confirm.text), "certificate": card.certificate_pem,
                                            "signature": card.sign(to_sign)})
    assert signed.status_code == 303, signed.text

    receipt = (await admin.client.get(f"/api/v1/t/{ICHINOMIYA}/forms/{form['id']}/submissions")).json()["items"][0]["receipt_no"]
    detail = await admin.client.get(f"/api/v1/t/{ICHINOMIYA}/forms/{form['id']}/submissions/{receipt}")
    assert detail.json()["signature"]["signed"] is True and detail.json()["signature"]["valid"] is True
    page = await admin.client.get(f"/t/{ICHINOMIYA}/forms/{form['id']}/submissions/{receipt}")
    assert "電子署名を検証しました" in page.text
    async with unscoped(session, "test: tampering with a stored answer"):
        stored = await session.scalar(select(FormSubmission).where(FormSubmission.receipt_no == receipt))
        assert stored.principal_id is not None
        stored.answers = {**stored.answers, "q5": 9}
        await session.commit()
    tampered = await admin.client.get(f"/api/v1/t/{ICHINOMIYA}/forms/{form['id']}/submissions/{receipt}")
    assert tampered.json()["signature"]["valid"] is False and "検証できません" in tampered.json()["signature"]["detail"]


# -- staff building forms ---------------------------------------------------------------------------------

async def test_staff_build_on_the_pages_and_a_new_version_leaves_old_submissions_on_theirs(session, staff, new_client) -> None:
    admin = await staff(SAPPORO, "admin")
    c, csrf = admin.client, admin.csrf
    bad = await c.post(f"/t/{SAPPORO}/forms", data={"title": "", "slug": "Bad Slug", "csrf_token": csrf})
    assert bad.status_code == 422 and "フォームの名前を" in bad.text and "半角の英小文字" in bad.text
    made = await c.post(f"/t/{SAPPORO}/forms", data={"title": "犬の登録", "slug": "inu", "csrf_token": csrf})
    assert made.status_code == 303
    builder_url = made.headers["location"]
    form_id = builder_url.rsplit("/", 1)[1]

    def version_of(page) -> str:
        return re.search(r'name="expected_version" value="(\d+)"', page.text).group(1)

    page = await c.get(builder_url)
    for field in ({"type": "text", "label": "飼い主のお名前", "required": "1"},
                  {"type": "choice", "label": "犬の種類", "options": "小型犬\n大型犬", "required": "1"},
                  {"type": "text", "label": "大型犬の名前", "show_if_field": "q2", "show_if_equals": "大型犬"}):
        added = await c.post(f"{builder_url}/fields", data={**field, "expected_version": version_of(page), "csrf_token": csrf})
        assert added.status_code == 303, added.text
        page = await c.get(builder_url)
    refused = await c.post(f"{builder_url}/fields", data={"type": "choice", "label": "", "options": "一つだけ",
                                                          "expected_version": version_of(page), "csrf_token": csrf})
    assert refused.status_code == 422 and "質問文を入力してください。" in refused.text and "選択肢を2つ以上" in refused.text
    assert 'value="一つだけ"' not in refused.text and "一つだけ" in refused.text  # kept in the textarea

    asked = await c.post(f"{builder_url}/fields/q1/delete", data={"expected_version": version_of(page), "csrf_token": csrf})
    assert asked.status_code == 200 and "質問を削除しますか" in asked.text
    published = await c.post(f"{builder_url}/publish", data={"expected_version": version_of(page), "csrf_token": csrf})
    assert published.status_code == 303
    page = await c.get(builder_url)
    assert "第1版を公開中" in page.text and f"/f/{SAPPORO}/inu" in page.text

    resident = new_client()
    confirm = await _confirm(resident, SAPPORO, "inu", {"a_q1": "札幌 次郎", "a_q2": "小型犬", "a_q3": "ポチ"})
    assert confirm.status_code == 200 and "ポチ" not in confirm.text  # not asked: small dog
    await resident.post(f"/f/{SAPPORO}/inu/submit", data=_hidden(confirm.text))

    edited = await c.post(f"{builder_url}/fields/q1", data={"type": "text", "label": "飼い主の氏名", "required": "1",
                                                            "expected_version": version_of(page), "csrf_token": csrf})
    assert edited.status_code == 303
    page = await c.get(builder_url)
    assert "公開後に変更があります" in page.text and "第2版として公開する" in page.text
    stale = await c.post(f"{builder_url}/publish", data={"expected_version": "1", "csrf_token": csrf})
    assert stale.status_code == 409 and "ほかの職員" in stale.text
    await c.post(f"{builder_url}/publish", data={"expected_version": version_of(page), "csrf_token": csrf})
    assert "飼い主の氏名" in (await resident.get(f"/f/{SAPPORO}/inu")).text
    confirm = await _confirm(resident, SAPPORO, "inu", {"a_q1": "札幌 三郎", "a_q2": "大型犬", "a_q3": "タロ"})
    await resident.post(f"/f/{SAPPORO}/inu/submit", data=_hidden(confirm.text))

    inbox = (await c.get(f"/api/v1/t/{SAPPORO}/forms/{form_id}/submissions")).json()
    assert sorted(i["version_number"] for i in inbox["items"]) == [1, 2]
    old = next(i for i in inbox["items"] if i["version_number"] == 1)
    detail = await c.get(f"/t/{SAPPORO}/forms/{form_id}/submissions/{old['receipt_no']}")
    assert "飼い主のお名前" in detail.text and "第1版" in detail.text  # shown with the questions it answered


# -- the inbox ---------------------------------------------------------------------------------------------

async def test_the_inbox_filters_assigns_comments_and_audits_every_status_change(session, staff, new_client) -> None:
    admin = await staff(SAPPORO, "admin")
    clerk = await staff(SAPPORO, "staff", name="札幌 花子")
    form = await _build(admin, SAPPORO, fields=[{"type": "text", "label": "お名前", "required": True},
                                                {"type": "email", "label": "メール"}])
    receipts = []
    for name in ("=1+1", "札幌 一郎", "札幌 二郎"):
        made = await admin.client.post(f"/api/v1/t/{SAPPORO}/forms/{form['id']}/submissions",
                                       json={"answers": {"q1": name, "q2": "r@example.jp"}, "form_token": f"token-{name}-0123456789"})
        assert made.status_code == 201, made.text
        receipts.append(made.json()["receipt_no"])
    base = f"/t/{SAPPORO}/forms/{form['id']}/submissions"
    c, csrf = clerk.client, clerk.csrf
    page = await c.get(f"{base}/{receipts[0]}")
    assert page.status_code == 200 and "=1+1" in page.text
    skip = await c.post(f"{base}/{receipts[0]}/status", data={"status": "completed", "expected_version": "1", "csrf_token": csrf})
    assert skip.status_code == 422 and "「受付」から「完了」には変えられません" in skip.text
    no_reason = await c.post(f"{base}/{receipts[0]}/status", data={"status": "returned", "expected_version": "1", "csrf_token": csrf})
    assert no_reason.status_code == 422 and "差戻しの理由を入力してください" in no_reason.text
    assert (await c.post(f"{base}/{receipts[0]}/status", data={"status": "reviewing", "expected_version": "1",
                                                               "csrf_token": csrf})).status_code == 303
    assert (await c.post(f"{base}/{receipts[0]}/status", data={"status": "returned", "note": "住所が不足しています",
                                                               "expected_version": "2", "csrf_token": csrf})).status_code == 303
    assert (await c.post(f"{base}/{receipts[0]}/assign", data={"assignee": clerk.principal_id, "expected_version": "3",
                                                               "csrf_token": csrf})).status_code == 303
    assert (await c.post(f"{base}/{receipts[0]}/comments", data={"body": "電話で確認済み", "csrf_token": csrf})).status_code == 303
    assert (await c.post(f"{base}/{receipts[0]}/messages", data={"body": "番地をお知らせください", "csrf_token": csrf})).status_code == 303
    detail = await c.get(f"{base}/{receipts[0]}")
    for text in ("差戻し", "住所が不足しています", "電話で確認済み", "番地をお知らせください", "担当 札幌 花子"):
        assert text in detail.text, text

    returned = await c.get(base, params={"status": "returned"})
    assert receipts[0] in returned.text and receipts[1] not in returned.text and "差戻し（1）" in returned.text
    assert (await c.get(base, params={"status": "nonsense"})).status_code == 422
    api = (await c.get(f"/api/v1/t/{SAPPORO}/forms/{form['id']}/submissions", params={"status": "received"})).json()
    assert api["total"] == 2 and api["counts"] == {"received": 2, "reviewing": 0, "completed": 0, "returned": 1}

    async with unscoped(session, "test"):
        actions = Counter((await session.scalars(select(AuditEntry.action).where(AuditEntry.lg_code == SAPPORO,
                                                                                  AuditEntry.action.like("forms.%")))).all())
        assert await session.scalar(select(func.count()).select_from(FormSubmissionEvent)) == 5
    assert actions["forms.submission.status_changed"] == 2
    assert actions["forms.submission.assigned"] == actions["forms.submission.commented"] == actions["forms.submission.messaged"] == 1
    assert await _count(session, Notification, Notification.template_key.in_(["forms.status", "forms.message"])) == 2

    csv = await c.get(f"{base}.csv")
    assert csv.status_code == 200 and csv.content.startswith("\ufeff".encode())
    text = csv.content.decode("utf-8-sig")
    assert text.splitlines()[0] == "受付番号,受付日時,版,状況,担当者,お名前,メール"
    assert "'=1+1" in text and "\n=1+1" not in text
    xlsx = await c.get(f"{base}.xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    values = [cell.value for row in sheet.iter_rows() for cell in row]
    assert "'=1+1" in values and "=1+1" not in values
    assert (await c.get(f"{base}.pdf")).status_code == 404


# -- shared templates ----------------------------------------------------------------------------------------

async def test_ichinomiya_copies_toyotas_sodai_gomi_template_in_one_step(session, staff, new_client) -> None:
    from kiban.modules.forms.demo import load_demo

    assert await load_demo(session) == 1 and await load_demo(session) == 0
    await session.commit()
    ichinomiya = await staff(ICHINOMIYA, "staff", name="一宮 三郎")
    listed = await ichinomiya.client.get(f"/t/{ICHINOMIYA}/forms/templates")
    assert listed.status_code == 200 and "粗大ごみ収集の申込" in listed.text and "豊田市" in listed.text
    action = re.search(rf'action="(/t/{ICHINOMIYA}/forms/templates/{TOYOTA}/[^"]+/copy)"', listed.text).group(1)
    copied = await ichinomiya.client.post(action, data={"csrf_token": ichinomiya.csrf})
    assert copied.status_code == 303
    builder = await ichinomiya.client.get(copied.headers["location"])
    assert "豊田市「粗大ごみ収集の申込」第1版" in builder.text
    version = re.search(r'name="expected_version" value="(\d+)"', builder.text).group(1)
    saved = await ichinomiya.client.post(copied.headers["location"].split("?")[0] + "/settings", data={
        "title": "粗大ごみ収集の申込（一宮市）", "slug": "sodai-gomi", "contact": "一宮市 環境部 清掃対策課",
        "is_open": "1", "expected_version": version, "csrf_token": ichinomiya.csrf})
    assert saved.status_code == 303
    builder = await ichinomiya.client.get(copied.headers["location"].split("?")[0])
    version = re.search(r'name="expected_version" value="(\d+)"', builder.text).group(1)
    published = await ichinomiya.client.post(copied.headers["location"].split("?")[0] + "/publish",
                                             data={"expected_version": version, "csrf_token": ichinomiya.csrf})
    assert published.status_code == 303, published.text
    resident = new_client()
    page = await resident.get(f"/f/{ICHINOMIYA}/sodai-gomi")
    assert page.status_code == 200, page.text
    assert "粗大ごみ収集の申込（一宮市）" in page.text and "一宮市 環境部 清掃対策課" in page.text
    assert "品目（その他の内容）" in page.text
    # 豊田市's own form is untouched, and its submissions stay its own.
    assert "豊田市 環境部" in (await resident.get(f"/f/{TOYOTA}/sodai-gomi")).text
    own = await ichinomiya.client.post(f"/api/v1/t/{ICHINOMIYA}/forms/templates/{ICHINOMIYA}/{action.split('/')[-2]}/copy", json={})
    assert own.status_code == 404


# -- access ----------------------------------------------------------------------------------------------------

async def test_every_route_keeps_to_its_tenant_and_permission(session, staff, new_client) -> None:
    admin = await staff(SAPPORO, "admin")
    form = await _build(admin, SAPPORO, fields=[{"type": "text", "label": "お名前", "required": True}])
    made = await admin.client.post(f"/api/v1/t/{SAPPORO}/forms/{form['id']}/submissions",
                                   json={"answers": {"q1": "札幌"}, "form_token": "token-access-0123456789"})
    receipt = made.json()["receipt_no"]
    anonymous = new_client()
    assert (await anonymous.get(f"/t/{SAPPORO}/forms")).status_code == 303
    assert (await anonymous.get(f"/api/v1/t/{SAPPORO}/forms")).status_code == 401
    viewer = await staff(SAPPORO, "viewer")
    assert (await viewer.client.get(f"/t/{SAPPORO}/forms/{form['id']}/submissions")).status_code == 200
    assert (await viewer.client.get(f"/t/{SAPPORO}/forms/{form['id']}")).status_code == 403
    forbidden = await viewer.client.post(f"/api/v1/t/{SAPPORO}/forms/{form['id']}/submissions/{receipt}/comments",
                                         json={"body": "x"})
    assert forbidden.status_code == 403 and forbidden.headers["content-type"].startswith(PROBLEM)
    hakodate = await staff(HAKODATE, "admin")
    for url in (f"/t/{HAKODATE}/forms/{form['id']}", f"/t/{HAKODATE}/forms/{form['id']}/submissions/{receipt}",
                f"/api/v1/t/{HAKODATE}/forms/{form['id']}", f"/t/{SAPPORO}/forms/{form['id']}/submissions/{receipt}",
                f"/api/v1/t/{SAPPORO}/forms/{form['id']}/submissions/{receipt}"):
        assert (await hakodate.client.get(url)).status_code == 404, url
    # The public URL belongs to its tenant: 札幌市's form is not at 函館市's address.
    assert (await anonymous.get(f"/f/{HAKODATE}/sodai")).status_code == 404
    assert (await anonymous.get(f"/api/v1/forms/{HAKODATE}/sodai")).status_code == 404
    confirm = await _confirm(anonymous, SAPPORO, "sodai", {"a_q1": "札幌"})
    hidden = _hidden(confirm.text)
    assert (await anonymous.post(f"/f/{HAKODATE}/sodai/submit", data=hidden)).status_code == 404
    assert (await anonymous.post(f"/f/{SAPPORO}/sodai/submit", data={n: v for n, v in hidden.items() if n != "csrf_token"})).status_code == 403


async def test_the_api_twins_answer_like_the_pages_with_problem_json(session, staff, new_client) -> None:
    admin = await staff(SAPPORO, "admin")
    bad = await admin.client.post(f"/api/v1/t/{SAPPORO}/forms", json={"title": "x", "slug": "ok-slug", "fields": [
        {"type": "choice", "label": "", "options": ["一つ"]}]})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(PROBLEM)
    assert "質問文を入力してください" in bad.json()["detail"] and "選択肢を2つ以上" in bad.json()["detail"]
    form = await _build(admin, SAPPORO)
    public = await new_client().get(f"/api/v1/forms/{SAPPORO}/sodai")
    assert public.status_code == 200 and public.json()["version"] == 1 and len(public.json()["fields"]) == 6
    assert public.json()["fields"][3]["show_if"] == {"field": "q3", "equals": "その他"}
    postal = await new_client().get("/api/v1/postal-codes/4910858")
    assert postal.json()["city"] == "一宮市" and postal.json()["town_kana"]
    assert (await new_client().get("/api/v1/postal-codes/0000000")).status_code == 404

    url = f"/api/v1/t/{SAPPORO}/forms/{form['id']}/submissions"
    invalid = await admin.client.post(url, json={"answers": {"q3": "その他", "q5": "0"}, "form_token": "t" * 20})
    assert invalid.status_code == 422
    assert {e["field"] for e in invalid.json()["errors"]} == {"answers.q1", "answers.q4", "answers.q5", "answers.q6"}
    assert await _count(session, FormSubmission) == 0
    body = {"answers": {"q1": "札幌 花子", "q3": "自転車", "q5": 3, "q6": {"postal": "0600001", "line": "1"}},
            "form_token": "t" * 20}
    first, second = await admin.client.post(url, json=body), await admin.client.post(url, json=body)
    assert first.status_code == second.status_code == 201 and first.json()["receipt_no"] == second.json()["receipt_no"]
    assert first.json()["answers"]["q6"]["prefecture"] == "北海道"
    receipt = first.json()["receipt_no"]
    moved = await admin.client.post(f"{url}/{receipt}/status", json={"status": "reviewing", "expected_version": 1})
    assert moved.status_code == 200 and moved.json()["status_label"] == "審査中" and moved.json()["events"][0]["to_status"] == "reviewing"
    stale = await admin.client.post(f"{url}/{receipt}/status", json={"status": "completed", "expected_version": 1})
    assert stale.status_code == 409 and stale.headers["content-type"].startswith(PROBLEM)
    detail = (await admin.client.get(f"/api/v1/t/{SAPPORO}/forms/{form['id']}")).json()
    renamed = await admin.client.put(f"/api/v1/t/{SAPPORO}/forms/{form['id']}", json={
        "title": "粗大ごみ", "slug": "other", "expected_version": detail["version"]})
    assert renamed.status_code == 422 and "URL は変えられません" in renamed.json()["detail"]
    shared = await admin.client.put(f"/api/v1/t/{SAPPORO}/forms/{form['id']}/shared",
                                    json={"shared": True, "expected_version": detail["version"]})
    assert shared.status_code == 200 and shared.json()["shared"] is True


async def test_the_pages_speak_japanese_and_keep_to_a_phone_width(session, staff, new_client) -> None:
    admin = await staff(SAPPORO, "admin", name="札幌 太郎")
    form = await _build(admin, SAPPORO)
    made = await admin.client.post(f"/api/v1/t/{SAPPORO}/forms/{form['id']}/submissions", json={
        "answers": {"q1": "札幌", "q3": "自転車", "q5": 1, "q6": {"postal": "0600001", "line": "1"}},
        "form_token": "token-japanese-0123456789"})
    base = f"/t/{SAPPORO}/forms/{form['id']}"
    resident = new_client()
    pages = [(admin.client, p) for p in (f"/t/{SAPPORO}/forms", base, f"{base}/fields/q1", f"{base}/submissions",
                                         f"{base}/submissions/{made.json()['receipt_no']}", f"/t/{SAPPORO}/forms/templates")]
    pages.append((resident, f"/f/{SAPPORO}/sodai"))
    for client, path in pages:
        response = await client.get(path)
        assert response.status_code == 200, path
        text, _ = read(response)
        assert not foreign_words(text), (path, foreign_words(text))
        assert 'name="viewport"' in response.text
        assert "style=" not in response.text  # no fixed widths: the shared layout decides
    confirm = await _confirm(resident, SAPPORO, "sodai", {"a_q1": "札幌", "a_q3": "自転車", "a_q5": "1",
                                                           "a_q6_postal": "0600001", "a_q6_line": "1"})
    assert not foreign_words(read(confirm)[0])
