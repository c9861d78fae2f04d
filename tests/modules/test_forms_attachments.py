"""電子申請's attachments and repeating groups (issue #12 item 1): the field definitions and their
checks (pure), and over HTTP a resident attaching a file and filling rows, the file checked by
its content and size, kept across the confirmation, claimed by the submission, read by staff
(audited) on the page and through the API, never by another municipality, and purged when it
was never sent."""

from __future__ import annotations

import base64
from datetime import timedelta

from sqlalchemy import select

from kiban.core.audit.models import AuditEntry
from kiban.core.tenancy.context import unscoped
from kiban.kit.db import utcnow
from kiban.modules.forms import fields as fieldkit
from kiban.modules.forms import uploads
from kiban.modules.forms.models import FormSubmission, FormUpload
from tests.conftest import csrf_of
from tests.factories import HAKODATE, SAPPORO
from tests.modules.test_forms import _build, _hidden

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
FIELDS = [
    {"type": "text", "label": "お名前", "required": True},
    {"type": "group", "label": "同居のご家族", "required": True, "min_items": 1, "max_items": 3,
     "subfields": [{"label": "氏名", "type": "text", "required": True}, {"label": "生年月日", "type": "date"}]},
    {"type": "file", "label": "本人確認書類", "required": True, "max_mb": 1, "accept": ["pdf", "png"]},
]


# -- definitions and checks (pure) ------------------------------------------------------------------

def test_the_builder_reads_group_columns_from_lines_and_refuses_what_it_cannot_ask() -> None:
    field, problems = fieldkit.clean_field({"type": "group", "label": "家族", "subfields_text": "氏名 / 文字 / 必須\n生年月日 / 日付\n\n続柄",
                                            "min_items": "1", "max_items": "5"}, [])
    assert problems == []
    assert [(s["label"], s["type"], s["required"]) for s in field["subfields"]] == [
        ("氏名", "text", True), ("生年月日", "date", False), ("続柄", "text", False)]
    assert fieldkit.subfields_text(field) == "氏名 / 文字 / 必須\n生年月日 / 日付\n続柄 / 文字"
    _, problems = fieldkit.clean_field({"type": "group", "label": "家族", "subfields_text": "住所 / 住所",
                                        "min_items": "4", "max_items": "2"}, [])
    assert any("種類「住所」は使えません" in p for p in problems)
    assert any("行数は" in p for p in problems)
    _, problems = fieldkit.clean_field({"type": "file", "label": "書類", "max_mb": "50", "accept": ["exe"]}, [])
    assert any("1〜10 MB" in p for p in problems) and any("ファイルの種類" in p for p in problems)


def test_rows_are_checked_cell_by_cell_and_blank_rows_are_not_sent() -> None:
    group = fieldkit.clean_field(FIELDS[1], [])[0]
    answers, problems = fieldkit.validate([group], {group["key"]: [
        {"s1": "一宮 太郎", "s2": "2015-04-01"}, {"s1": "", "s2": ""}, {"s1": "", "s2": "2019-13-01"}]})
    assert answers[group["key"]][0] == {"s1": "一宮 太郎", "s2": "2015-04-01"}
    assert "「同居のご家族」2行目の「氏名」を入力してください" in problems[group["key"]]
    assert "2行目の「生年月日」" in problems[group["key"]]
    _, problems = fieldkit.validate([group], {group["key"]: []})
    assert problems[group["key"]] == "「同居のご家族」を1行以上入力してください。"
    too_many = [{"s1": f"家族{i}", "s2": ""} for i in range(4)]
    assert "3行まで" in fieldkit.validate([group], {group["key"]: too_many})[1][group["key"]]
    assert fieldkit.answer_text(group, [{"s1": "一宮 太郎", "s2": "2015-04-01"}]).startswith("1. 氏名: 一宮 太郎、生年月日: ")


def test_a_file_is_recognised_by_its_first_bytes_not_its_name() -> None:
    assert fieldkit.sniff(PDF[:16], ["pdf", "png"]) == "pdf"
    assert fieldkit.sniff(PNG[:16], ["pdf"]) is None
    assert fieldkit.sniff(b"MZ\x90\x00 this is a program", ["pdf", "png", "jpeg"]) is None
    assert uploads.content_disposition("本人確認書類.pdf").startswith('attachment; filename="')
    assert "filename*=UTF-8''%E6%9C%AC" in uploads.content_disposition("本人確認書類.pdf")


# -- over HTTP --------------------------------------------------------------------------------------

async def _publish(staff):
    admin = await staff(SAPPORO, "admin")
    form = await _build(admin, SAPPORO, slug="kazoku", fields=FIELDS)
    return admin, form


def _text_fields(data: dict) -> dict:
    return {k: v for k, v in data.items() if not isinstance(v, tuple)}


async def test_a_resident_attaches_a_file_and_fills_rows_and_staff_read_it_audited(session, staff, new_client) -> None:
    admin, form = await _publish(staff)
    resident = new_client()
    page = await resident.get(f"/f/{SAPPORO}/kazoku")
    assert 'enctype="multipart/form-data"' in page.text and 'type="file"' in page.text
    assert "PDF・PNG 画像、1 MB まで。" in page.text

    # 「行を追加する」: the page again with a second row, what was typed kept.
    more = await resident.post(f"/f/{SAPPORO}/kazoku/confirm", data={
        "a_q1": "札幌 花子", "a_q2_0_s1": "札幌 太郎", "add_row": "q2", "csrf_token": csrf_of(resident)})
    assert more.status_code == 200 and 'name="a_q2_1_s1"' in more.text and 'value="札幌 太郎"' in more.text

    # A program renamed .pdf and a missing name: both refused at once, the rows kept, nothing sent.
    bad = await resident.post(f"/f/{SAPPORO}/kazoku/confirm", data={
        "a_q2_0_s1": "札幌 太郎", "a_q2_1_s1": "札幌 次郎", "csrf_token": csrf_of(resident)},
        files={"a_q3": ("本人確認書類.pdf", b"MZ\x90\x00not really a pdf", "application/pdf")})
    assert bad.status_code == 422
    assert "「本人確認書類」は PDF・PNG 画像 のファイルを選んでください" in bad.text and "「お名前」を入力してください" in bad.text
    assert 'value="札幌 次郎"' in bad.text
    async with unscoped(session, "test: nothing sent"):
        assert await session.scalar(select(FormSubmission.id).where(FormSubmission.form_id == form["id"])) is None

    too_big = await resident.post(f"/f/{SAPPORO}/kazoku/confirm", data={"a_q1": "札幌 花子", "csrf_token": csrf_of(resident),
                                                                         "a_q2_0_s1": "札幌 太郎"},
                                  files={"a_q3": ("scan.pdf", PDF + b"0" * (1024 * 1024), "application/pdf")})
    assert too_big.status_code == 422 and "1 MB 以下にしてください" in too_big.text

    confirm = await resident.post(f"/f/{SAPPORO}/kazoku/confirm", data={
        "a_q1": "札幌 花子", "a_q2_0_s1": "札幌 太郎", "a_q2_0_s2": "2015-04-01", "a_q2_1_s1": "札幌 次郎",
        "csrf_token": csrf_of(resident)}, files={"a_q3": ("本人確認書類.pdf", PDF, "application/octet-stream")})
    assert confirm.status_code == 200, confirm.text[:2000]
    assert "本人確認書類.pdf（1 KB）" in confirm.text and "2. 氏名: 札幌 次郎" in confirm.text
    hidden = _hidden(confirm.text)
    assert hidden["a_q2_1_s1"] == "札幌 次郎" and hidden["a_q3_upload"]

    # Back to fix the name: the file is shown as attached and need not be chosen again.
    back = await resident.post(f"/f/{SAPPORO}/kazoku/submit", data={**hidden, "edit": "1", "csrf_token": csrf_of(resident)})
    assert "添付済み: 本人確認書類.pdf" in back.text and f'value="{hidden["a_q3_upload"]}"' in back.text

    sent = await resident.post(f"/f/{SAPPORO}/kazoku/submit", data={**hidden, "csrf_token": csrf_of(resident)})
    assert sent.status_code == 303, sent.text[:1000]
    again = await resident.post(f"/f/{SAPPORO}/kazoku/submit", data={**hidden, "csrf_token": csrf_of(resident)})
    assert again.status_code == 303  # a double submit: the same submission
    async with unscoped(session, "test: the submission and its file"):
        submissions = (await session.scalars(select(FormSubmission).where(FormSubmission.form_id == form["id"]))).all()
        assert len(submissions) == 1
        submission = submissions[0]
        stored = (await session.scalars(select(FormUpload).where(FormUpload.submission_id == submission.id))).all()
    assert len(stored) == 1 and stored[0].data == PDF and stored[0].kind == "pdf" and stored[0].filename == "本人確認書類.pdf"
    assert submission.answers["q2"][1] == {"s1": "札幌 次郎", "s2": ""}
    assert submission.answers["q3"]["upload"] == stored[0].id

    # Staff: the page links the file; the download is an attachment, and the reading is audited.
    detail = await admin.client.get(f"/t/{SAPPORO}/forms/{form['id']}/submissions/{submission.receipt_no}")
    link = f"/t/{SAPPORO}/forms/{form['id']}/submissions/{submission.receipt_no}/files/{stored[0].id}"
    assert link in detail.text
    got = await admin.client.get(link)
    assert got.status_code == 200 and got.content == PDF and got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"].startswith("attachment;")
    api = await admin.client.get(f"/api/v1/t/{SAPPORO}/forms/{form['id']}/submissions/{submission.receipt_no}/files/{stored[0].id}")
    assert api.status_code == 200 and api.content == PDF
    async with unscoped(session, "test: audit"):
        reads = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "forms.attachment.read",
                                                                 AuditEntry.target_id == stored[0].id))).all()
    assert len(reads) == 2 and reads[0].details["sha256"] == stored[0].sha256

    # Another municipality's staff: 404 on the page and the API, as if nothing were there.
    hakodate = await staff(HAKODATE, "admin")
    assert (await hakodate.client.get(link.replace(SAPPORO, HAKODATE))).status_code == 404
    assert (await hakodate.client.get(f"/api/v1/t/{HAKODATE}/forms/{form['id']}/submissions/"
                                      f"{submission.receipt_no}/files/{stored[0].id}")).status_code == 404


async def test_the_api_takes_a_file_as_base64_and_an_unsent_file_is_purged_after_a_day(session, staff, new_client) -> None:
    admin, form = await _publish(staff)
    body = {"form_token": "api-attachment-1", "answers": {
        "q1": "札幌 花子", "q2": [{"s1": "札幌 太郎", "s2": "2015-04-01"}],
        "q3": {"name": "写真.png", "content_base64": base64.b64encode(PNG).decode()}}}
    bad = await admin.client.post(f"/api/v1/t/{SAPPORO}/forms/{form['id']}/submissions",
                                  json={**body, "answers": {**body["answers"], "q3": {"name": "x.png", "content_base64": "%%%"}}})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert "Base64" in bad.json()["detail"]
    async with unscoped(session, "test: nothing kept"):
        assert (await session.scalars(select(FormUpload).where(FormUpload.form_id == form["id"]))).all() == []
    made = await admin.client.post(f"/api/v1/t/{SAPPORO}/forms/{form['id']}/submissions", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["answers"]["q3"]["name"] == "写真.png" and made.json()["answers"]["q3"]["kind"] == "png"

    # A file chosen on the confirmation page and never sent is deleted a day later, not before.
    resident = new_client()
    await resident.get(f"/f/{SAPPORO}/kazoku")
    confirm = await resident.post(f"/f/{SAPPORO}/kazoku/confirm", data={"a_q1": "未送信", "a_q2_0_s1": "家族",
                                                                       "csrf_token": csrf_of(resident)},
                                  files={"a_q3": ("draft.pdf", PDF, "application/pdf")})
    upload_id = _hidden(confirm.text)["a_q3_upload"]
    assert await uploads.purge_unclaimed(session, utcnow()) == 0
    assert await uploads.purge_unclaimed(session, utcnow() + timedelta(days=1, minutes=1)) >= 1
    async with unscoped(session, "test: purged, the sent one kept"):
        left = {u.id: u.submission_id for u in (await session.scalars(
            select(FormUpload).where(FormUpload.form_id == form["id"]))).all()}
    assert upload_id not in left and len(left) == 1 and all(left.values())
