"""Issue 10 item 6: the 広域被災者データベース tenant pages have JSON twins under
/api/v1/t/{lg_code}/disasters that call the same service functions as the pages: the disasters
(list, open, close), shelters (optimistic version, crowding confirmation), the 被災者台帳 (paging
and search as the workspace, detail with the record page's visibility and audit-on-read, create,
update with version), 名寄せ (the candidate card's minimum, decisions, accept/decline/withdraw,
一括名寄せ) and roster imports. For each: anonymous 401, a missing permission 403, another
organisation 404 (a non-sharing municipality gets 404 on another's record; a pending confirmation
reveals nothing), problem+json on bad input, the page's data. API keys may record victims; opening
and closing a disaster (and 一括名寄せ) stays with signed-in staff."""

from __future__ import annotations

import re

from sqlalchemy import select

from kiban.core.audit.models import AuditEntry
from kiban.core.audit.service import chain_pending
from kiban.core.tenancy.context import unscoped
from kiban.modules.disaster import matching
from kiban.modules.disaster.models import MatchDecision, VictimRecord
from tests.factories import HAKODATE, SAPPORO
from tests.modules.test_disaster_web import CABINET_OFFICE, ISHIKAWA, KANAZAWA, SUZU, WAJIMA, _open_disaster, _shelter
from tests.modules.test_roster_import_web import LABELS, _csv

PROBLEM = "application/problem+json"
SECRETS = ("0768-22-1234", "輪島市河井町2-3-4", "W-001", "輪島中学校")


def _api(code: str, disaster: str | None = None) -> str:
    return f"/api/v1/t/{code}/disasters" + (f"/{disaster}" if disaster else "")


def _problem(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:400])
    assert response.headers["content-type"].startswith(PROBLEM), response.headers["content-type"]
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body


def _fields(problem: dict) -> set[str]:
    return {e["field"] for e in problem.get("errors", [])}


async def _key(admin, lg_code: str, *permissions: str) -> dict[str, str]:
    page = await admin.client.post(f"/t/{lg_code}/apikeys", data={
        "name": "避難所システム", "kind": "live", "permissions": list(permissions), "rate_limit_per_minute": "600",
        "csrf_token": admin.csrf})
    assert page.status_code == 200, page.text
    token = re.search(r'<code id="new-api-key">([^<]+)</code>', page.text).group(1)
    return {"Authorization": f"Bearer {token}"}


def _person(**values) -> dict:
    body = {"family_name": "高橋", "given_name": "健太", "family_kana": "タカハシ", "given_kana": "ケンタ",
            "birth_date": "1980-05-12", "sex": "male", "home_lg_code": "輪島市", "home_address": "輪島市河井町2-3-4",
            "household_key": "W-001", "household_size": 3, "phone": "0768-22-1234", "whereabouts": "shelter",
            "damage_level": "全壊", "risai_status": "申請中", "rebuild_plan": "建設・購入"}
    body.update(values)
    return body


async def _victim(staff, client) -> tuple[str, str, str, object, dict]:
    """輪島市's shelter system registers 高橋 健太 with an API key holding 被災者台帳の登録・更新."""
    matching.forget()
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "admin")
    shelter = await _shelter(wajima, WAJIMA, disaster, "輪島中学校")
    key = await _key(wajima, WAJIMA, "disaster.record.read", "disaster.record.write")
    created = await client.post(f"{_api(WAJIMA, disaster)}/records", json=_person(shelter_id=shelter), headers=key)
    assert created.status_code == 201, created.text
    return disaster, created.json()["id"], shelter, wajima, key


# -- disasters ----------------------------------------------------------------------------------------

async def test_disasters_are_listed_opened_and_closed_like_the_pages(staff, client, session) -> None:
    ishikawa = await staff(ISHIKAWA, "admin")
    _problem(await client.get(_api(ISHIKAWA)), 401)
    _problem(await client.post(_api(ISHIKAWA), json={}), 401)
    # Opening: every mistake at once, nothing opened.
    bad = _problem(await ishikawa.client.post(_api(ISHIKAWA), json={
        "name": "令和8年能登半島北部地震", "kind": "地震", "occurred_on": "きのう", "affected": ["輪島市", "ありえない町"]}), 422)
    assert _fields(bad) == {"occurred_on", "affected"}
    _problem(await ishikawa.client.post(_api(ISHIKAWA), json={"name": ""}), 422)
    # With the session cookie a write must be JSON (a cross-site form cannot be).
    _problem(await ishikawa.client.post(_api(ISHIKAWA), data={"name": "x"}), 415)
    opened = await ishikawa.client.post(_api(ISHIKAWA), json={
        "name": "令和8年能登半島北部地震", "kind": "地震", "occurred_on": "2026-11-01", "affected": ["輪島市", SUZU],
        "relief_act": ["１７２０４９"]})
    assert opened.status_code == 201, opened.text
    disaster = opened.json()
    assert disaster["state_label"] == "対応中" and disaster["may_close"] is True
    page = await ishikawa.client.get(f"/t/{ISHIKAWA}/disasters/{disaster['id']}")
    assert page.status_code == 200 and "令和8年能登半島北部地震" in page.text
    async with unscoped(session, "test"):
        assert (await session.scalars(select(AuditEntry.action).where(
            AuditEntry.lg_code == ISHIKAWA, AuditEntry.target_id == disaster["id"]))).all() == ["disaster.opened"]

    listing = (await ishikawa.client.get(_api(ISHIKAWA))).json()
    assert listing["may_open"] is True and disaster["id"] in [d["id"] for d in listing["items"]]
    page = await ishikawa.client.get(f"/t/{ISHIKAWA}/disasters")
    assert all(d["name"] in page.text for d in listing["items"])
    # A municipality may read the list but neither open nor close.
    wajima = await staff(WAJIMA, "admin")
    assert (await wajima.client.get(_api(WAJIMA))).json()["may_open"] is False
    _problem(await wajima.client.post(_api(WAJIMA), json={"name": "x", "kind": "地震", "occurred_on": "2026-11-01"}), 404)
    _problem(await wajima.client.post(f"{_api(WAJIMA, disaster['id'])}/close", json={"confirm": True}), 404)
    viewer = await staff(ISHIKAWA, "viewer")
    _problem(await viewer.client.post(f"{_api(ISHIKAWA, disaster['id'])}/close", json={"confirm": True}), 403)
    # Another organisation's URL: 404.
    _problem(await ishikawa.client.get(_api(WAJIMA)), 404)
    # Closing asks for the confirmation, then closes once.
    assert _fields(_problem(await ishikawa.client.post(f"{_api(ISHIKAWA, disaster['id'])}/close", json={}), 422)) == {"confirm"}
    closed = await ishikawa.client.post(f"{_api(ISHIKAWA, disaster['id'])}/close", json={"confirm": True})
    assert closed.status_code == 200 and closed.json()["state_label"] == "対応終了" and closed.json()["closed_at"]
    _problem(await ishikawa.client.post(f"{_api(ISHIKAWA, disaster['id'])}/close", json={"confirm": True}), 409)


async def test_keys_may_record_victims_but_never_open_or_close_a_disaster(staff, client) -> None:
    ishikawa = await staff(ISHIKAWA, "admin")
    refused = await ishikawa.client.post(f"/t/{ISHIKAWA}/apikeys", data={
        "name": "管理用", "kind": "live", "permissions": ["disaster.disaster.manage"], "rate_limit_per_minute": "60",
        "csrf_token": ishikawa.csrf})
    assert refused.status_code == 422 and 'id="new-api-key"' not in refused.text
    reader = await _key(ishikawa, ISHIKAWA, "disaster.record.read", "disaster.record.write")
    assert (await client.get(_api(ISHIKAWA), headers=reader)).status_code == 200
    _problem(await client.post(_api(ISHIKAWA), json={"name": "x", "kind": "地震", "occurred_on": "2026-11-01"},
                               headers=reader), 403)
    other = await _key(ishikawa, ISHIKAWA, "tenancy.setting.read")
    _problem(await client.get(_api(ISHIKAWA), headers=other), 403)


# -- shelters ------------------------------------------------------------------------------------------

async def test_shelters_are_saved_with_versions_and_crowding_is_confirmed(staff, client) -> None:
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    base = f"{_api(WAJIMA, disaster)}/shelters"
    _problem(await client.get(base), 401)
    bad = _problem(await wajima.client.post(base, json={"name": "", "capacity": 10}), 422)
    assert "name" in _fields(bad)
    _problem(await wajima.client.post(base, json={"name": "x", "capacity": -1}), 422)
    created = await wajima.client.post(base, json={"name": "輪島中学校", "capacity": 100, "occupancy": 10, "needs": "毛布"})
    assert created.status_code == 201, created.text
    shelter = created.json()
    assert (shelter["version"], shelter["percent"], shelter["crowded"]) == (1, 10, False)
    # Over capacity: asked to confirm (nothing saved), then saved.
    over = _problem(await wajima.client.put(f"{base}/{shelter['id']}", json={
        "name": "輪島中学校", "capacity": 100, "occupancy": 120, "expected_version": 1}), 422)
    assert _fields(over) == {"over_capacity"}
    saved = await wajima.client.put(f"{base}/{shelter['id']}", json={
        "name": "輪島中学校", "capacity": 100, "occupancy": 120, "expected_version": 1, "over_capacity_confirmed": True})
    assert saved.status_code == 200 and saved.json()["version"] == 2 and saved.json()["crowded"] is True
    # Someone else saved first: 409, nothing changes.
    _problem(await wajima.client.put(f"{base}/{shelter['id']}", json={
        "name": "輪島中学校", "capacity": 100, "occupancy": 5, "expected_version": 1}), 409)
    listing = (await wajima.client.get(base)).json()
    assert [(s["name"], s["occupancy"], s["version"]) for s in listing["items"]] == [("輪島中学校", 120, 2)]
    page = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}")
    assert "輪島中学校" in page.text
    # Only a municipality has shelters; another tenant's shelter is not found; viewers may not write.
    ishikawa = await staff(ISHIKAWA, "admin")
    _problem(await ishikawa.client.post(f"{_api(ISHIKAWA, disaster)}/shelters", json={"name": "県の避難所"}), 404)
    suzu = await staff(SUZU, "admin")
    _problem(await suzu.client.put(f"{_api(SUZU, disaster)}/shelters/{shelter['id']}", json={
        "name": "乗っ取り", "expected_version": 2}), 404)
    assert (await suzu.client.get(f"{_api(SUZU, disaster)}/shelters")).json()["items"] == []
    viewer = await staff(WAJIMA, "viewer")
    _problem(await viewer.client.post(base, json={"name": "x"}), 403)


# -- records ------------------------------------------------------------------------------------------------

async def test_records_are_registered_listed_read_and_updated_like_the_pages(staff, client, session) -> None:
    disaster, victim, shelter, wajima, key = await _victim(staff, client)
    base = f"{_api(WAJIMA, disaster)}/records"
    _problem(await client.get(base), 401)
    _problem(await client.get(f"{base}/{victim}"), 401)
    # Every mistake at once, named by field; nothing registered.
    bad = _problem(await client.post(base, json=_person(birth_date="昔", home_lg_code="ありえない町"), headers=key), 422)
    assert _fields(bad) == {"birth_date", "home_lg_code"}
    _problem(await client.post(base, json=_person(household_size=0), headers=key), 422)
    _problem(await client.post(base, json={**_person(), "unknown": 1}, headers=key), 422)
    await client.post(base, json=_person(given_name="美咲", given_kana="ミサキ", birth_date="1982-08-03", sex="female",
                                         shelter_id=shelter, care_needs=["妊産婦"]), headers=key)

    listing = (await wajima.client.get(base)).json()
    assert listing["total"] == 2 and listing["page"] == 1 and listing["pages"] == 1
    assert {f"{r['family_name']} {r['given_name']}" for r in listing["items"]} == {"高橋 健太", "高橋 美咲"}
    found = (await wajima.client.get(base, params={"q": "ミサキ"})).json()
    assert [r["given_name"] for r in found["items"]] == ["美咲"]
    page = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}", params={"q": "ミサキ"})
    assert "高橋 美咲" in page.text and "高橋 健太" not in page.text
    _problem(await wajima.client.get(base, params={"page": 0}), 422)
    _problem(await wajima.client.get(base, params={"q": "あ" * 101}), 422)

    detail = (await wajima.client.get(f"{base}/{victim}")).json()
    record = detail["record"]
    assert (record["phone"], record["home_lg_code"], record["registered_by"], record["whereabouts_label"]) == (
        "0768-22-1234", WAJIMA, "輪島市", "避難所")
    assert detail["support"]["available"] and detail["support"]["total"] == 3_000_000
    page = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}/records/{victim}")
    assert "3,000,000 円" in page.text and record["phone"] in page.text

    # Update with the version read; a stale version is 409.
    moved = await client.put(f"{base}/{victim}", json={**_person(whereabouts="relatives"), "expected_version": 1},
                             headers=key)
    assert moved.status_code == 200 and moved.json()["version"] == 2 and moved.json()["whereabouts_label"] == "親族・知人宅"
    _problem(await client.put(f"{base}/{victim}", json={**_person(), "expected_version": 1}, headers=key), 409)
    # Another municipality's record cannot be updated (404), even by its prefecture.
    ishikawa = await staff(ISHIKAWA, "admin")
    _problem(await ishikawa.client.put(f"{_api(ISHIKAWA, disaster)}/records/{victim}",
                                       json={**_person(), "expected_version": 2}), 404)
    # A key without 被災者台帳の登録・更新: 403.
    reader = await _key(wajima, WAJIMA, "disaster.record.read")
    _problem(await client.post(base, json=_person(), headers=reader), 403)
    # The prefecture reads it, and the read is audited on 輪島市's chain with the legal basis.
    prefecture = await ishikawa.client.get(f"{_api(ISHIKAWA, disaster)}/records/{victim}")
    assert prefecture.status_code == 200 and prefecture.json()["record"]["own"] is False
    await chain_pending(session, WAJIMA)
    await session.commit()
    async with unscoped(session, "test"):
        reads = (await session.scalars(select(AuditEntry).where(
            AuditEntry.lg_code == WAJIMA, AuditEntry.action == "disaster.record.read", AuditEntry.target_id == victim))).all()
    assert reads and reads[-1].legal_basis == "災害対策基本法 第90条の3・第90条の4"
    # Everyone else: 404, and nothing of the person in their list.
    for code in (SAPPORO, HAKODATE, SUZU, KANAZAWA, CABINET_OFFICE):
        outsider = await staff(code, "admin")
        _problem(await outsider.client.get(f"{_api(code, disaster)}/records/{victim}"), 404)
        _problem(await outsider.client.get(f"{_api(code, disaster)}/records/{victim}/candidates"), 404)
        assert (await outsider.client.get(f"{_api(code, disaster)}/records")).json()["items"] == [], code
    # Another tenant's URL with one's own session: 404.
    _problem(await ishikawa.client.get(f"{_api(WAJIMA, disaster)}/records/{victim}"), 404)


# -- 名寄せ ----------------------------------------------------------------------------------------------------

async def test_a_confirmation_across_municipalities_reveals_nothing_until_the_owner_accepts(staff, client, session) -> None:
    disaster, victim, _, wajima, _ = await _victim(staff, client)
    sapporo = await staff(SAPPORO, "admin")
    mine = await sapporo.client.post(f"{_api(SAPPORO, disaster)}/records", json=_person(
        whereabouts="relatives", phone="", home_address="", household_key="S-1", damage_level="未調査",
        risai_status="未申請", rebuild_plan="未定"))
    assert mine.status_code == 201, mine.text
    mine = mine.json()["id"]

    # The candidate card: what the page shows and no more (no birth date, shelter, address, phone).
    cards = await sapporo.client.get(f"{_api(SAPPORO, disaster)}/records/{mine}/candidates")
    assert cards.status_code == 200
    [card] = [c for c in cards.json()["items"] if c["record_id"] == victim]
    assert (card["registered_by"], card["shared"], card["birth_date"]) == ("輪島市", False, None)
    assert card["probability"] >= 0.5 and not any(s in cards.text for s in SECRETS) and "1980" not in cards.text
    page = await sapporo.client.get(f"/t/{SAPPORO}/disasters/{disaster}/records/{mine}")
    assert f"一致の確からしさ {card['probability'] * 100:.1f}%" in page.text

    matches = f"{_api(SAPPORO, disaster)}/matches"
    _problem(await client.post(matches, json={"record_id": mine, "other_id": victim, "decision": "confirmed"}), 401)
    # "auto" belongs to 一括名寄せ: refused, nothing recorded.
    assert _fields(_problem(await sapporo.client.post(matches, json={
        "record_id": mine, "other_id": victim, "decision": "auto"}), 422)) == {"decision"}
    _problem(await sapporo.client.post(matches, json={"record_id": mine, "other_id": "nope", "decision": "confirmed"}), 404)
    asked = await sapporo.client.post(matches, json={"record_id": mine, "other_id": victim, "decision": "confirmed"})
    assert asked.status_code == 201, asked.text
    decision = asked.json()
    assert (decision["acceptance"], decision["awaiting_code"], decision["state_label"]) == ("pending", WAJIMA, "輪島市の受け入れ待ち")

    # Pending: 札幌市 learns only that the person is registered elsewhere and whom to ask.
    detail = await sapporo.client.get(f"{_api(SAPPORO, disaster)}/records/{mine}")
    assert detail.json()["linked"] == [] and detail.json()["waiting"][0]["contact"] == "輪島市（または石川県）"
    assert not any(s in detail.text for s in SECRETS)
    _problem(await sapporo.client.get(f"{_api(SAPPORO, disaster)}/records/{victim}"), 404)
    # Only the owner (or its prefecture) may answer; anyone else: 404.
    for code in (SAPPORO, KANAZAWA, CABINET_OFFICE):
        outsider = sapporo if code == SAPPORO else await staff(code, "admin")
        _problem(await outsider.client.post(f"{_api(code, disaster)}/matches/{decision['id']}/accept", json={}), 404)
    viewer = await staff(WAJIMA, "viewer")
    _problem(await viewer.client.post(f"{_api(WAJIMA, disaster)}/matches/{decision['id']}/accept", json={}), 403)

    # 輪島市 is asked on its record and sees what 札幌市 registered (enough to judge).
    own = (await wajima.client.get(f"{_api(WAJIMA, disaster)}/records/{victim}")).json()
    [request] = own["requests"]
    assert request["decision_id"] == decision["id"] and request["asker_record"]["registered_by"] == "札幌市"
    accepted = await wajima.client.post(f"{_api(WAJIMA, disaster)}/matches/{decision['id']}/accept", json={})
    assert accepted.status_code == 200 and accepted.json()["acceptance"] == "accepted"
    _problem(await wajima.client.post(f"{_api(WAJIMA, disaster)}/matches/{decision['id']}/accept", json={}), 404)
    now = (await sapporo.client.get(f"{_api(SAPPORO, disaster)}/records/{mine}")).json()
    assert [r["id"] for r in now["linked"]] == [victim]

    # Withdrawn by 札幌市: apart again, and 404 again.
    withdrawn = await sapporo.client.post(f"{_api(SAPPORO, disaster)}/matches/{decision['id']}/revert", json={})
    assert withdrawn.status_code == 200 and withdrawn.json()["reverted_at"]
    _problem(await sapporo.client.get(f"{_api(SAPPORO, disaster)}/records/{victim}"), 404)
    async with unscoped(session, "test"):
        actions = set((await session.scalars(select(AuditEntry.action).where(
            AuditEntry.lg_code == WAJIMA, AuditEntry.target_id == decision["id"]))).all())
        withdrawn_on = set((await session.scalars(select(AuditEntry.lg_code).where(
            AuditEntry.action == "disaster.match.reverted", AuditEntry.target_id == decision["id"]))).all())
    assert {"disaster.match.requested", "disaster.match.accepted"} <= actions and withdrawn_on == {SAPPORO}


async def test_a_declined_confirmation_stays_apart(staff, client, session) -> None:
    disaster, victim, _, wajima, _ = await _victim(staff, client)
    kanazawa = await staff(KANAZAWA, "staff")
    again = (await kanazawa.client.post(f"{_api(KANAZAWA, disaster)}/records", json=_person(
        family_name="髙橋", phone="", whereabouts="relatives", household_key="K-77"))).json()["id"]
    asked = (await kanazawa.client.post(f"{_api(KANAZAWA, disaster)}/matches", json={
        "record_id": again, "other_id": victim, "decision": "confirmed"})).json()
    declined = await wajima.client.post(f"{_api(WAJIMA, disaster)}/matches/{asked['id']}/decline", json={})
    assert declined.status_code == 200 and declined.json()["acceptance"] == "declined"
    _problem(await kanazawa.client.get(f"{_api(KANAZAWA, disaster)}/records/{victim}"), 404)
    async with unscoped(session, "test"):
        [match] = (await session.scalars(select(MatchDecision).where(MatchDecision.id == asked["id"]))).all()
    assert match.acceptance == "declined"


async def test_linkage_is_previewed_applied_and_undone_by_the_prefecture(staff, client) -> None:
    disaster, victim, _, wajima, key = await _victim(staff, client)
    kanazawa = await staff(KANAZAWA, "staff")
    again = await kanazawa.client.post(f"{_api(KANAZAWA, disaster)}/records", json=_person(
        family_name="髙橋", phone="", whereabouts="relatives", household_key="K-77"))
    assert again.status_code == 201
    ishikawa = await staff(ISHIKAWA, "admin")
    base = f"{_api(ISHIKAWA, disaster)}/linkage"
    _problem(await client.post(base, json={}), 401)
    _problem(await wajima.client.post(f"{_api(WAJIMA, disaster)}/linkage", json={}), 404)
    _problem(await (await staff(ISHIKAWA, "viewer")).client.post(base, json={}), 403)
    preview = await ishikawa.client.post(base, json={})
    assert preview.status_code == 201, preview.text
    batch = preview.json()
    assert batch["status"] == "previewed" and batch["pairs"] and batch["pairs"][0]["a_name"].endswith("橋 健太")
    pair = batch["pairs"][0]
    page = await ishikawa.client.get(f"/t/{ISHIKAWA}/disasters/{disaster}/linkage/{batch['id']}")
    assert pair["action_label"] in page.text and f"{pair['probability'] * 100:.1f}%" in page.text
    applied = await ishikawa.client.post(f"{base}/{batch['id']}/apply", json={})
    assert applied.status_code == 200 and applied.json()["status"] == "applied"
    assert applied.json()["linked"] == batch["counts"]["link"]
    assert _fields(_problem(await ishikawa.client.post(f"{base}/{batch['id']}/undo", json={}), 422)) == {"confirm"}
    undone = await ishikawa.client.post(f"{base}/{batch['id']}/undo", json={"confirm": True})
    assert undone.status_code == 200 and undone.json()["status"] == "undone"
    assert (await ishikawa.client.get(f"{base}/{batch['id']}")).json()["undone"] == batch["counts"]["link"]
    _problem(await (await staff(SAPPORO, "admin")).client.get(f"{_api(SAPPORO, disaster)}/linkage/{batch['id']}"), 404)


# -- roster imports ----------------------------------------------------------------------------------------------

async def test_a_roster_is_uploaded_previewed_and_accepted(staff, client, session) -> None:
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "admin")
    await _shelter(wajima, WAJIMA, disaster, "輪島中学校")
    key = await _key(wajima, WAJIMA, "disaster.record.write")
    base = f"{_api(WAJIMA, disaster)}/imports"
    roster = _csv(LABELS, [
        {"氏（漢字）": "輪島", "名（漢字）": "一郎", "氏（フリガナ）": "ワジマ", "名（フリガナ）": "イチロウ", "生年月日": "昭和30年4月1日",
         "住所地の団体コード": WAJIMA, "世帯人数": "2", "現在の居場所": "避難所", "避難所名": "輪島中学校", "住家の被害": "全壊"},
        {"氏（漢字）": "輪島", "名（漢字）": "花子", "生年月日": "1958-07-07", "住所地の団体コード": "ありえない町"},
    ])
    files = {"file": ("名簿.csv", roster, "text/csv")}
    _problem(await client.post(base, files=files), 401)
    # With the session cookie the upload must repeat the CSRF token in a header.
    _problem(await wajima.client.post(base, files=files), 403)
    staged = await client.post(base, files=files, headers=key)
    assert staged.status_code == 201, staged.text
    report = staged.json()
    assert (report["status"], report["valid"], report["invalid"]) == ("staged", 1, 1)
    assert report["rows"][1]["errors"]
    page = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}/imports/{report['id']}")
    assert "正しい行 1・誤りのある行 1" in page.text
    by_session = await wajima.client.post(base, files=files, headers={"X-CSRF-Token": wajima.csrf})
    assert by_session.status_code == 201

    # Rows in error: the same choice as the page, nothing registered until it is made.
    refused = _problem(await client.post(f"{base}/{report['id']}/accept", json={}, headers=key), 422)
    assert "正しい行だけ" in refused["detail"]
    # Accepted at once (202) with where to follow it; a roster this small is registered before the answer.
    done = await client.post(f"{base}/{report['id']}/accept", json={"valid_only": True}, headers=key)
    assert done.status_code == 202, done.text
    assert done.headers["location"] == f"{base}/{report['id']}" == done.json()["location"]
    assert (done.json()["status"], done.json()["imported_count"]) == ("imported", 1)
    assert (done.json()["progress"]["state"], done.json()["progress"]["done"], done.json()["progress"]["total"]) == ("done", 1, 1)
    _problem(await client.post(f"{base}/{report['id']}/accept", json={"valid_only": True}, headers=key), 409)
    status = (await client.get(done.headers["location"], headers=key)).json()
    assert (status["status_label"], status["progress"]["message"]) == ("反映済み", "登録が終わりました（新たに登録 1 人）")
    async with unscoped(session, "test"):
        names = (await session.scalars(select(VictimRecord.given_name).where(VictimRecord.disaster_id == disaster))).all()
    assert names == ["一郎"]
    # Another municipality's import: 404; a key without 登録・更新: 403.
    suzu = await staff(SUZU, "admin")
    _problem(await suzu.client.get(f"{_api(SUZU, disaster)}/imports/{report['id']}"), 404)
    reader = await _key(wajima, WAJIMA, "disaster.record.read")
    _problem(await client.get(f"{base}/{report['id']}", headers=reader), 403)


async def test_the_dashboard_twin_exists_and_needs_a_reader(staff, client) -> None:
    disaster, _, _, wajima, _ = await _victim(staff, client)
    _problem(await client.get(f"{_api(WAJIMA, disaster)}/dashboard"), 401)
    board = await wajima.client.get(f"{_api(WAJIMA, disaster)}/dashboard")
    assert board.status_code == 200 and board.json()["registrations"] == 1
