"""Issue 9 follow-ups on the disaster pages: every code field (the record form's 住所地 and 広域避難先,
the municipalities of a disaster being opened, the roster's code columns) takes a name or
full-width digits as well as a 6-digit code, says which field is wrong and keeps what was typed;
the registration form's select is labelled 「現在の居場所」; the import help and the pages around it
are in Japanese."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from kiban.core.tenancy.context import unscoped
from kiban.modules.disaster.models import DisasterArea, VictimRecord
from tests.core.test_japanese_only import foreign_words, read
from tests.modules.test_roster_import_web import _csv, _disaster, _records, _shelter, _upload

ISHIKAWA, WAJIMA, SUZU, NOTO, KANAZAWA = "170003", "172049", "172057", "174637", "172014"


def _form(**values) -> dict:
    form = {"family_name": "能登", "given_name": "一郎", "family_kana": "ノト", "given_kana": "イチロウ",
            "birth_date": "1950-02-03", "home_lg_code": WAJIMA, "whereabouts": "home", "household_size": "1"}
    form.update(values)
    return form


async def test_the_record_form_takes_a_name_or_full_width_digits_for_its_code_fields(staff, session) -> None:
    disaster = await _disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    response = await wajima.client.post(f"/t/{WAJIMA}/disasters/{disaster}/records", data={
        **_form(home_lg_code="石川県輪島市", whereabouts="wide_area", wide_area_lg_code="金沢市"), "csrf_token": wajima.csrf})
    assert response.status_code == 303, response.text
    response = await wajima.client.post(f"/t/{WAJIMA}/disasters/{disaster}/records", data={
        **_form(given_name="二郎", given_kana="ジロウ", home_lg_code="１７２０４９"), "csrf_token": wajima.csrf})
    assert response.status_code == 303, response.text
    records = {r.given_name: r for r in await _records(session, disaster)}
    assert (records["一郎"].home_lg_code, records["一郎"].wide_area_lg_code, records["一郎"].current_lg_code) == (
        WAJIMA, KANAZAWA, KANAZAWA)
    assert records["二郎"].home_lg_code == WAJIMA


async def test_a_code_field_that_cannot_be_read_is_named_with_the_input_kept(staff, session) -> None:
    disaster = await _disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    response = await wajima.client.post(f"/t/{WAJIMA}/disasters/{disaster}/records", data={
        **_form(home_lg_code="府中市", whereabouts="wide_area", wide_area_lg_code="どこか村", birth_date="昨日"),
        "csrf_token": wajima.csrf})
    assert response.status_code == 422
    text = html.unescape(response.text)
    assert "住所地の団体コード「府中市」に当たる団体が2つあります" in text  # 東京都 and 広島県, both listed
    assert "広域避難先の団体コード「どこか村」に当たる団体が見つかりません" in text
    assert "生年月日「昨日」" in text and "入力内容を確認してください（3 件）" in text  # every error at once
    assert 'value="府中市"' in response.text and 'value="どこか村"' in response.text and 'value="能登"' in response.text
    assert await _records(session, disaster) == []
    # A prefecture is a local government but not where a person lives.
    response = await wajima.client.post(f"/t/{WAJIMA}/disasters/{disaster}/records", data={
        **_form(home_lg_code="石川県"), "csrf_token": wajima.csrf})
    assert response.status_code == 422 and "住所地の団体コード「石川県（170003）」は現存する市区町村ではありません" in response.text


async def test_the_registration_form_labels_its_code_fields_and_the_whereabouts(staff) -> None:
    disaster = await _disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    page = (await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}/records/new")).text
    assert re.search(r'<label for="r-home-code">住所地の団体コードまたは団体名', page)
    assert re.search(r'<label for="r-wide">広域避難先の団体コードまたは団体名', page)
    assert re.search(r'<label for="r-where">現在の居場所<', page)
    for name in ("home_lg_code", "wide_area_lg_code"):
        tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', page).group(0)
        assert "inputmode" not in tag, tag


async def test_opening_a_disaster_takes_names_and_reports_each_unreadable_entry(staff, session) -> None:
    ishikawa = await staff(ISHIKAWA, "admin")
    form = {"name": "令和8年能登豪雨（団体名）", "kind": "風水害", "occurred_on": "2026-09-21", "description": "",
            "affected": "輪島市、珠洲市，１７４６３７", "relief_act_text": "輪島市", "csrf_token": ishikawa.csrf}
    response = await ishikawa.client.post(f"/t/{ISHIKAWA}/disasters", data=form)
    assert response.status_code == 303, response.text
    disaster = response.headers["location"].rsplit("/", 1)[1]
    rows = (await session.scalars(select(DisasterArea).where(DisasterArea.disaster_id == disaster))).all()
    assert {(a.municipality_code, a.relief_act) for a in rows} == {(WAJIMA, True), (SUZU, False), (NOTO, False)}

    bad = {**form, "name": "令和8年能登豪雨（誤り）", "affected": "輪島市, 府中市, 172048", "relief_act_text": "どこか村"}
    response = await ishikawa.client.post(f"/t/{ISHIKAWA}/disasters", data=bad)
    assert response.status_code == 422
    text = html.unescape(response.text)
    assert "被害のある市町村「府中市」に当たる団体が2つあります" in text
    assert "被害のある市町村「172048」の検査数字" in text
    assert "災害救助法を適用する市町村「どこか村」に当たる団体が見つかりません" in text
    assert 'value="輪島市, 府中市, 172048"' in response.text and 'value="どこか村"' in response.text
    assert 'value="令和8年能登豪雨（誤り）"' in response.text
    label = re.search(r'<label for="d-affected">([^<]*)', response.text).group(1)
    assert label == "被害のある市町村の団体コードまたは団体名"


async def test_a_roster_may_name_municipalities_instead_of_coding_them(staff, session) -> None:
    disaster = await _disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    await _shelter(wajima, disaster, "輪島中学校")
    header = ["氏名", "生年月日", "住所地の団体コード", "現在の居場所", "広域避難先の団体コード"]
    location = await _upload(wajima, disaster, _csv(header, [
        {"氏名": "輪島 花子", "生年月日": "1958-07-07", "住所地の団体コード": "輪島市", "現在の居場所": "広域避難先",
         "広域避難先の団体コード": "石川県金沢市"},
        {"氏名": "輪島 次郎", "生年月日": "1960-01-01", "住所地の団体コード": "１７２０４９", "現在の居場所": "在宅"},
        {"氏名": "輪島 三郎", "生年月日": "1961-01-01", "住所地の団体コード": "府中市", "現在の居場所": "在宅"},
        {"氏名": "輪島 四郎", "生年月日": "1962-01-01", "住所地の団体コード": "石川県", "現在の居場所": "在宅"},
    ]))
    report = html.unescape((await wajima.client.get(location)).text)
    assert "正しい行 2・誤りのある行 2" in report
    assert "住所地の団体コード「府中市」に当たる団体が2つあります" in report
    assert "住所地の団体コード「石川県」（170003）は現存する市区町村ではありません" in report
    accepted = await wajima.client.post(f"{location}/accept", data={"valid_only": "yes", "csrf_token": wajima.csrf})
    assert accepted.status_code == 303, accepted.text
    records = {r.given_name: r for r in await _records(session, disaster)}
    assert set(records) == {"花子", "次郎"}
    assert (records["花子"].home_lg_code, records["花子"].wide_area_lg_code) == (WAJIMA, KANAZAWA)
    assert records["次郎"].home_lg_code == WAJIMA


async def test_the_import_and_workspace_pages_speak_japanese(staff, session) -> None:
    disaster = await _disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    await _shelter(wajima, disaster, "輪島中学校")
    location = await _upload(wajima, disaster, _csv(["氏名", "住所地の団体コード"], [{"氏名": "輪島 花子", "住所地の団体コード": WAJIMA}]),
                             filename="避難者名簿")  # the file's own name is shown as written
    for path in (f"/t/{WAJIMA}/disasters/{disaster}/imports", location, f"/t/{WAJIMA}/disasters/{disaster}",
                 f"/t/{WAJIMA}/disasters/{disaster}/records/new", f"/t/{WAJIMA}/disasters/{disaster}/dashboard"):
        response = await wajima.client.get(path)
        assert response.status_code == 200, path
        text, _ = read(response)
        # the test cast's display name (「… staff」 in the header) is not the page's wording
        assert foreign_words(text) - {"staff"} == set(), (path, foreign_words(text))
    broken = await _upload(wajima, disaster, b"\xff\xfe" + "氏名".encode("utf-16-le"), filename="名簿")
    text, _ = read(await wajima.client.get(broken))
    assert foreign_words(text) - {"staff"} == set() and "読めません" in text
