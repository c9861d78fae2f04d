"""Issue #9 item 2 over HTTP: the roster import reads the labels the registration form uses, says how
it reads a misnamed column, offers a template (CSV and .xlsx, which it also reads back), flags people
already registered, and registers a name written without a space only as staff confirmed its split."""

from __future__ import annotations

import csv
import io
import re

import openpyxl
from sqlalchemy import select

from kiban.core.tenancy.context import unscoped
from kiban.modules.disaster.fields import TEMPLATE_FIELDS
from kiban.modules.disaster.models import VictimRecord

ISHIKAWA, WAJIMA, KANAZAWA, HAKODATE = "170003", "172049", "172014", "012025"
LABELS = [f.label for f in TEMPLATE_FIELDS]


async def _disaster(staff) -> str:
    ishikawa = await staff(ISHIKAWA, "admin")
    response = await ishikawa.client.post(f"/t/{ISHIKAWA}/disasters", data={
        "name": "令和8年能登半島北部地震（名簿）", "kind": "地震", "occurred_on": "2026-11-01", "affected": WAJIMA,
        "relief_act_text": WAJIMA, "description": "", "csrf_token": ishikawa.csrf})
    assert response.status_code == 303, response.text
    return response.headers["location"].rsplit("/", 1)[1]


async def _shelter(person, disaster: str, name: str) -> None:
    response = await person.client.post(f"/t/{WAJIMA}/disasters/{disaster}/shelters", data={
        "name": name, "address": "石川県輪島市河井町1-1", "capacity": "200", "occupancy": "0", "is_open": "on",
        "needs": "", "csrf_token": person.csrf})
    assert response.status_code == 303, response.text


def _csv(header: list[str], rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header])
    return ("\ufeff" + buffer.getvalue()).encode()


async def _upload(person, disaster: str, content: bytes, filename: str = "名簿.csv") -> str:
    response = await person.client.post(f"/t/{WAJIMA}/disasters/{disaster}/imports", data={"csrf_token": person.csrf},
                                        files={"file": (filename, content, "application/octet-stream")})
    assert response.status_code == 303, response.text
    return response.headers["location"]


async def _records(session, disaster: str) -> list[VictimRecord]:
    async with unscoped(session, "test: what the import registered"):
        return list((await session.scalars(select(VictimRecord).where(VictimRecord.disaster_id == disaster)
                                           .order_by(VictimRecord.given_name))).all())


async def test_a_roster_with_the_forms_labels_is_read_column_by_column(staff, session) -> None:
    disaster = await _disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    await _shelter(wajima, disaster, "輪島中学校")
    page = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}/imports")
    help_text = page.text[page.text.index('id="columns-help"'):]
    for label in ("住所地の団体コード", "現在の居場所", "住家の被害", "広域避難先の団体コード", "連絡先の電話番号"):
        assert f"<dt>{label}" in help_text, label
    form = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}/records/new")
    for label in ("住所地の団体コード", "現在の居場所", "住家の被害", "広域避難先の団体コード", "連絡先の電話番号"):
        assert label in form.text, label

    roster = _csv(LABELS, [
        {"氏（漢字）": "輪島", "名（漢字）": "一郎", "氏（フリガナ）": "ワジマ", "名（フリガナ）": "イチロウ", "生年月日": "昭和30年4月1日",
         "住所地の団体コード": WAJIMA, "世帯人数": "2", "現在の居場所": "避難所", "避難所名": "輪島中学校", "住家の被害": "全壊",
         "罹災証明書": "申請中", "連絡先の電話番号": "0768-22-0001", "要配慮者": "高齢者"},
        {"氏（漢字）": "輪島", "名（漢字）": "花子", "生年月日": "1958-07-07", "住所地の団体コード": WAJIMA,
         "現在の居場所": "広域避難先", "広域避難先の団体コード": KANAZAWA, "住家の被害": "大規模半壊"},
    ])
    report = await wajima.client.get(await _upload(wajima, disaster, roster))
    assert "正しい行 2・誤りのある行 0" in report.text
    assert "alert--warning" not in report.text  # every column recognised: nothing dropped, nothing guessed
    accepted = await wajima.client.post(f"{report.url.path}/accept", data={"csrf_token": wajima.csrf})
    assert accepted.status_code == 303, accepted.text
    ichiro, hanako = await _records(session, disaster)
    assert (ichiro.whereabouts, ichiro.damage_level, ichiro.risai_status, ichiro.household_size) == ("shelter", "全壊", "申請中", 2)
    assert (ichiro.phone, ichiro.care_needs, ichiro.birth_date.year) == ("0768-22-0001", ["高齢者"], 1955)
    assert (hanako.whereabouts, hanako.wide_area_lg_code, hanako.current_lg_code, hanako.damage_level) == (
        "wide_area", KANAZAWA, KANAZAWA, "大規模半壊")


async def test_a_misnamed_column_says_what_it_looks_like_and_is_read_as_that(staff, session) -> None:
    disaster = await _disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    roster = _csv(["氏名", "住所地コード（6桁）", "被災状況", "居場所", "住宅の再建方法"],
                  [{"氏名": "輪島 一郎", "住所地コード（6桁）": WAJIMA, "被災状況": "x", "居場所": "在宅", "住宅の再建方法": "補修"}])
    report = await wajima.client.get(await _upload(wajima, disaster, roster))
    text = report.text
    assert "列「住所地コード（6桁）」（2列目）は「住所地の団体コード」のようです。「住所地の団体コード」として読み込みます。" in text
    assert "列「被災状況」（3列目）は名簿の項目にないため読み込みません。" in text
    assert "列「住宅の再建方法」（5列目）は名簿の取り込みでは読み込みません。" in text
    column_use = text[text.index('id="column-use"'):text.index('id="import-report"')]
    assert re.search(r"<td>住所地コード（6桁）</td><td>住所地の団体コード<br>", column_use)
    assert re.search(r"<td>居場所</td><td>現在の居場所</td>", column_use)
    assert "正しい行 1・誤りのある行 0" in text
    await wajima.client.post(f"{report.url.path}/accept", data={"csrf_token": wajima.csrf})
    (record,) = await _records(session, disaster)
    assert (record.home_lg_code, record.whereabouts) == (WAJIMA, "home")


async def test_the_template_downloads_as_csv_and_xlsx_and_reads_back(staff, session) -> None:
    disaster = await _disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    await _shelter(wajima, disaster, "輪島中学校")
    await _shelter(wajima, disaster, "=HYPERLINK(\"http://example.com\")")  # a name a spreadsheet would run
    base = f"/t/{WAJIMA}/disasters/{disaster}/imports"
    page = await wajima.client.get(base)
    assert f'href="{base}/template.xlsx"' in page.text and f'href="{base}/template.csv"' in page.text

    as_csv = await wajima.client.get(f"{base}/template.csv")
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    assert as_csv.content.decode("utf-8-sig").splitlines() == [",".join(LABELS)]

    as_xlsx = await wajima.client.get(f"{base}/template.xlsx")
    assert as_xlsx.status_code == 200 and "spreadsheetml" in as_xlsx.headers["content-type"]
    book = openpyxl.load_workbook(io.BytesIO(as_xlsx.content))
    sheet = book["名簿"]
    assert [c.value for c in sheet[1]] == LABELS
    choices = book["選択肢"]
    values = [cell.value for row in choices.iter_rows() for cell in row if cell.value]
    assert "輪島中学校" in values
    assert "'=HYPERLINK(\"http://example.com\")" in values  # text, never a formula
    assert not [v for v in values if isinstance(v, str) and v.startswith("=")]
    code_column = LABELS.index("住所地の団体コード") + 1
    assert sheet.cell(row=2, column=code_column).number_format == "@"  # 011002 keeps its leading zero

    # Staff fill the downloaded template in Excel and upload it as is.
    row = {"氏（漢字）": "輪島", "名（漢字）": "三郎", "生年月日": "1970-01-02", "住所地の団体コード": WAJIMA, "現在の居場所": "避難所",
           "避難所名": "輪島中学校", "住家の被害": "半壊"}
    for column, label in enumerate(LABELS, start=1):
        sheet.cell(row=2, column=column, value=row.get(label))
    buffer = io.BytesIO()
    book.save(buffer)
    report = await wajima.client.get(await _upload(wajima, disaster, buffer.getvalue(), "名簿.xlsx"))
    assert "ブック形式" in report.text and "正しい行 1・誤りのある行 0" in report.text
    await wajima.client.post(f"{report.url.path}/accept", data={"csrf_token": wajima.csrf})
    (record,) = await _records(session, disaster)
    assert (record.given_name, record.damage_level, record.whereabouts) == ("三郎", "半壊", "shelter")


async def test_the_template_is_only_for_staff_of_the_municipality(staff, client) -> None:
    disaster = await _disaster(staff)
    path = f"/t/{WAJIMA}/disasters/{disaster}/imports/template.csv"
    anonymous = await client.get(path)
    assert anonymous.status_code in (303, 401) and "住所地の団体コード" not in anonymous.text
    viewer = await staff(WAJIMA, "viewer")
    assert (await viewer.client.get(path)).status_code == 403
    other = await staff(HAKODATE, "admin")
    assert (await other.client.get(path)).status_code == 404


async def test_people_already_registered_are_flagged_and_not_registered_again(staff, session) -> None:
    disaster = await _disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    # One person registered on the form, one by an earlier import.
    form = {"family_name": "輪島", "given_name": "一郎", "family_kana": "ワジマ", "given_kana": "イチロウ",
            "birth_date": "1955-04-01", "home_lg_code": WAJIMA, "whereabouts": "home", "household_size": "1",
            "damage_level": "未調査", "risai_status": "未申請", "rebuild_plan": "未定", "csrf_token": wajima.csrf}
    assert (await wajima.client.post(f"/t/{WAJIMA}/disasters/{disaster}/records", data=form)).status_code == 303
    header = ["氏名", "フリガナ", "生年月日", "住所地の団体コード", "現在の居場所"]
    first = {"氏名": "輪島 花子", "フリガナ": "ワジマ ハナコ", "生年月日": "1958-07-07", "住所地の団体コード": WAJIMA, "現在の居場所": "在宅"}
    earlier = await _upload(wajima, disaster, _csv(header, [first]))
    await wajima.client.post(f"{earlier}/accept", data={"csrf_token": wajima.csrf})

    roster = _csv(header, [
        {"氏名": "輪島　一郎", "フリガナ": "ﾜｼﾞﾏ ｲﾁﾛｳ", "生年月日": "昭和30年4月1日", "住所地の団体コード": WAJIMA, "現在の居場所": "在宅"},
        first,
        {"氏名": "輪島 次郎", "フリガナ": "ワジマ ジロウ", "生年月日": "1990-01-01", "住所地の団体コード": WAJIMA, "現在の居場所": "在宅"},
    ])
    report = await wajima.client.get(await _upload(wajima, disaster, roster))
    assert "正しい行 3・誤りのある行 0（正しい行のうち登録済み 2行は取り込みません）" in report.text
    for line, flagged in ((2, True), (3, True), (4, False)):
        row = report.text[report.text.index(f'id="line-{line}"'):].split("</tr>")[0]
        assert ("登録済み" in row) is flagged, line
    accepted = await wajima.client.post(f"{report.url.path}/accept", data={"csrf_token": wajima.csrf})
    assert accepted.status_code == 303
    assert "新たに登録 1 人" in (await wajima.client.get(report.url.path)).text
    assert [r.given_name for r in await _records(session, disaster)] == ["一郎", "次郎", "花子"]


async def test_a_name_without_a_space_is_registered_only_as_staff_confirm_its_split(staff, session) -> None:
    disaster = await _disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    header = ["氏名", "フリガナ", "生年月日", "住所地の団体コード", "現在の居場所"]
    roster = _csv(header, [
        {"氏名": "山田太郎", "フリガナ": "ヤマダタロウ", "生年月日": "1980-01-01", "住所地の団体コード": WAJIMA, "現在の居場所": "在宅"},
        {"氏名": "長谷川一郎", "生年月日": "1981-01-01", "住所地の団体コード": WAJIMA, "現在の居場所": "在宅"},
        {"氏名": "佐藤花子", "生年月日": "1982-01-01", "住所地の団体コード": WAJIMA, "現在の居場所": "在宅"},
    ])
    url = (await wajima.client.get(await _upload(wajima, disaster, roster))).url.path
    report = await wajima.client.get(url)
    assert "山田 太郎（ヤマダ タロウ） と分けて登録します（確認してください）" in report.text
    assert "長谷川 一郎 と分けて登録します（確認してください）" in report.text
    assert "氏と名の分け方の確認が必要 3行" in report.text
    assert 'name="family_name-3" form="accept-form" value="長谷川"' in report.text

    # Accepting without confirming registers nothing and says which lines.
    refused = await wajima.client.post(f"{url}/accept", data={"csrf_token": wajima.csrf})
    assert refused.status_code == 422
    assert "氏と名の分け方を確認していない行があります（2行目、3行目、4行目）" in refused.text
    assert await _records(session, disaster) == []

    # A correction must keep the name as written; the page keeps what was typed.
    wrong = {"csrf_token": wajima.csrf, "confirm-2": "yes", "family_name-2": "山田", "given_name-2": "次郎",
             "family_kana-2": "ヤマダ", "given_kana-2": "タロウ", "confirm-3": "yes", "family_name-3": "長谷",
             "given_name-3": "川一郎", "skip_unconfirmed": "yes"}
    refused = await wajima.client.post(f"{url}/accept", data=wrong)
    assert refused.status_code == 422
    assert "2行目: 氏と名は「山田太郎」を二つに分けて入力してください" in refused.text
    assert 'value="次郎"' in refused.text and 'value="長谷"' in refused.text
    assert await _records(session, disaster) == []

    # 山田 太郎 confirmed as proposed, 長谷川 corrected to 長谷 川一郎, 佐藤花子 left unconfirmed and skipped.
    confirmed = await wajima.client.post(f"{url}/accept", data={**wrong, "given_name-2": "太郎"})
    assert confirmed.status_code == 303, confirmed.text
    records = await _records(session, disaster)
    assert sorted((r.family_name, r.given_name, r.family_kana, r.given_kana) for r in records) == [
        ("山田", "太郎", "ヤマダ", "タロウ"), ("長谷", "川一郎", "", "")]
    assert "新たに登録 2 人" in (await wajima.client.get(url)).text


# -- accepted imports are registered by a background job, in chunks (issue #11) ----------------------------

import dataclasses  # noqa: E402
from datetime import timedelta  # noqa: E402

from kiban.core.audit.models import AuditEntry  # noqa: E402
from kiban.core.jobs.kinds import KINDS  # noqa: E402
from kiban.core.jobs.runner import Runner  # noqa: E402
from kiban.kit.db import utcnow  # noqa: E402
from kiban.modules.disaster import imports, service  # noqa: E402
from kiban.modules.disaster.models import Disaster  # noqa: E402
from tests.conftest import session_on  # noqa: E402

PEOPLE = ["氏名", "フリガナ", "生年月日", "住所地の団体コード", "現在の居場所"]


def _people(count: int, family: str = "輪島") -> bytes:
    given = ["一郎", "二郎", "三郎", "四郎", "五郎", "六郎", "七郎"]
    return _csv(PEOPLE, [{"氏名": f"{family} {given[i]}", "フリガナ": "", "生年月日": f"19{60 + i}-01-0{1 + i % 9}",
                          "住所地の団体コード": WAJIMA, "現在の居場所": "在宅"} for i in range(count)])


def _chunks_of(monkeypatch, rows: int, *, inline: int = 0) -> None:
    """Chunks of exactly ``rows`` rows (no time limit: a loaded machine must not change them), and
    rosters longer than ``inline`` rows left to the background."""
    monkeypatch.setattr(imports, "INLINE_ROWS", inline)
    monkeypatch.setattr(imports, "CHUNK_ROWS", rows)
    monkeypatch.setitem(KINDS, imports.KIND, dataclasses.replace(KINDS[imports.KIND], chunk_seconds=3600))


def _runner(connection, *, later: float = 0) -> Runner:
    """A job runner on the test's connection (a server process would use its own), whose clock
    runs ``later`` seconds ahead (leases lapse, backoffs pass)."""
    return Runner(lambda: session_on(connection), worker="test", kinds=[imports.KIND], pause_ratio=0,
                  clock=lambda: utcnow() + timedelta(seconds=later))


async def _poll(person, url: str):
    return await person.client.get(f"{url}?progress=1", headers={"HX-Request": "true"})


async def _import_audit(session, batch_id: str) -> list[AuditEntry]:
    async with unscoped(session, "test: the import's audit entries"):
        return list((await session.scalars(select(AuditEntry).where(
            AuditEntry.action == "disaster.roster.imported", AuditEntry.target_id == batch_id))).all())


async def test_a_large_roster_is_registered_in_the_background_chunk_by_chunk_with_progress(
        staff, session, connection, monkeypatch) -> None:
    _chunks_of(monkeypatch, 2, inline=3)  # more rows than 3: the background
    disaster = await _disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    url = await _upload(wajima, disaster, _people(5))
    accepted = await wajima.client.post(f"{url}/accept", data={"csrf_token": wajima.csrf})
    assert accepted.status_code == 303 and accepted.headers["location"] == url
    page = await wajima.client.get(url)
    assert "正しい行 5・誤りのある行 0 — 取り込み中" in page.text
    assert "登録の順番を待っています（0 / 5 件）" in page.text
    assert f'hx-get="{url}?progress=1" hx-trigger="every 2s"' in page.text
    assert 'id="accept-form"' not in page.text  # accepted once: no second button
    assert await _records(session, disaster) == []

    runner = _runner(connection)
    claim = await runner.claim()
    assert await runner.run(claim, max_chunks=1) == "running"  # one chunk committed; the job goes on
    poll = await _poll(wajima, url)
    assert poll.status_code == 200 and "hx-refresh" not in poll.headers
    assert "登録中: 2 / 5 件" in poll.text and '<progress max="5" value="2"' in poll.text
    assert "<html" not in poll.text  # the progress line only, not the 5-row report
    assert len(await _records(session, disaster)) == 2

    assert await runner.run(claim) == "done"
    poll = await _poll(wajima, url)
    assert poll.headers["hx-refresh"] == "true"  # ended: the page reloads with the result
    page = await wajima.client.get(url)
    assert "取り込み済み（新たに登録 5 人）" in page.text and "hx-get" not in page.text
    assert sorted(r.given_name for r in await _records(session, disaster)) == ["一郎", "三郎", "二郎", "五郎", "四郎"]
    (entry,) = await _import_audit(session, url.rsplit("/", 1)[1])  # one entry for the whole import
    assert (entry.outcome, entry.details["added"], entry.details["rows"]) == ("success", 5, 5)

    # A long roster's report lists the lines that need a look and the first 200 others, and counts the rest.
    rows = [{"氏名": f"珠洲 太{chr(0x4e00 + i)}", "生年月日": f"{1940 + i % 60}-0{1 + i % 9}-1{i % 10}",
             "住所地の団体コード": WAJIMA, "現在の居場所": "在宅"} for i in range(203)]
    rows.append({"氏名": "珠洲 花子", "生年月日": "1990-13-01", "住所地の団体コード": WAJIMA, "現在の居場所": "在宅"})
    long = await wajima.client.get(await _upload(wajima, disaster, _csv(PEOPLE, rows)))
    assert "正しい行 203・誤りのある行 1" in long.text
    assert 'id="line-201"' in long.text and 'id="line-202"' not in long.text and 'id="line-205"' in long.text
    assert "ほかに問題のない 3 行は、表に載せていません（取り込みの対象です）。" in long.text


async def test_an_import_resumes_after_a_crash_and_a_failed_chunk_and_stops_with_its_reason_when_it_cannot_go_on(
        staff, session, connection, monkeypatch) -> None:
    _chunks_of(monkeypatch, 2)
    disaster = await _disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    url = await _upload(wajima, disaster, _people(5))
    batch_id = url.rsplit("/", 1)[1]
    api = f"/api/v1/t/{WAJIMA}/disasters/{disaster}/imports/{batch_id}"
    accepted = await wajima.client.post(f"{api}/accept", json={})
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["location"] == api == accepted.json()["location"]
    body = accepted.json()
    assert (body["status"], body["status_label"], body["imported_count"]) == ("importing", "取り込み中", 0)
    assert (body["progress"]["state"], body["progress"]["done"], body["progress"]["total"]) == ("queued", 0, 5)

    crashed = _runner(connection)
    assert await crashed.run(await crashed.claim(), max_chunks=1) == "running"  # then the process dies
    assert await _runner(connection).run_until_idle() == 0  # its lease still holds the job

    # Another process takes it up once the lease lapses; its next chunk fails half-way once.
    new_record, calls = service.new_record, []

    async def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("connection reset")
        return await new_record(*args, **kwargs)

    monkeypatch.setattr(service, "new_record", flaky)
    assert await _runner(connection, later=61).run_until_idle() == 1
    status = (await wajima.client.get(api)).json()
    assert (status["status"], status["imported_count"], status["progress"]["state"]) == ("importing", 2, "queued")
    assert status["progress"]["message"].startswith("一時的な問題のため中断しました")
    assert len(await _records(session, disaster)) == 2  # the failed chunk's first row was rolled back

    assert await _runner(connection, later=61 + 10).run_until_idle() == 1
    status = (await wajima.client.get(api)).json()
    assert (status["status"], status["status_label"], status["imported_count"]) == ("imported", "反映済み", 5)
    assert (status["progress"]["state"], status["progress"]["done"], status["progress"]["attempts"]) == ("done", 5, 3)
    records = await _records(session, disaster)
    assert len(records) == len({r.import_key for r in records}) == 5
    assert [e.details["added"] for e in await _import_audit(session, batch_id)] == [5]

    # A second roster cannot go on: the prefecture closes the disaster after its first chunk.
    monkeypatch.setattr(service, "new_record", new_record)
    url = await _upload(wajima, disaster, _people(5, family="珠洲"))
    await wajima.client.post(f"{url}/accept", data={"csrf_token": wajima.csrf})
    runner = _runner(connection, later=100)
    claim = await runner.claim()
    await runner.run(claim, max_chunks=1)
    closing = await session.get(Disaster, disaster)
    closing.closed_at = utcnow()
    await session.commit()
    assert await runner.run(claim) == "failed"
    page = await wajima.client.get(url)
    assert "取り込みを中止（新たに登録 2 人）" in page.text
    assert "取り込みを途中で中止しました。4行目: この災害の対応は終了しています。" in page.text
    assert "hx-get" not in page.text
    assert len(await _records(session, disaster)) == 7
    (entry,) = await _import_audit(session, url.rsplit("/", 1)[1])
    assert (entry.outcome, entry.details["added"], entry.details["reason"]) == (
        "failure", 2, "4行目: この災害の対応は終了しています。")
    assert (await wajima.client.post(f"{url}/accept", data={"csrf_token": wajima.csrf})).status_code == 409
