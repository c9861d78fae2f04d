"""Issue 10 item 6: every tenant page has a JSON twin that answers the same data, by the same
rules, with problem+json errors: the audit log, staff, API keys, access grants, tenant settings,
a resident's /me, the consortia (public and the secretariat's), fee schedules, usage and each
member's 負担金算定書. For each: anonymous 401, a role without the permission 403, another
organisation 404, the behaviour, bad input, and the same data as the page."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from kiban.core.identity.devca import DevCA, load_card
from kiban.core.identity.models import Membership
from kiban.core.tenancy.context import unscoped
from kiban.kit.settings import get_settings
from kiban.modules.costs.models import FeeSchedule, FeeStatement
from tests.conftest import csrf_of
from tests.factories import AICHI, HAKODATE, ICHINOMIYA, SAPPORO

PROBLEM = "application/problem+json"
API = f"/api/v1/t/{SAPPORO}"


def _problem(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith(PROBLEM), response.headers["content-type"]
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body


def _fields(problem: dict) -> set[str]:
    return {e["field"] for e in problem.get("errors", [])}


async def _key(admin, lg_code: str, *permissions: str, kind: str = "live") -> dict[str, str]:
    page = await admin.client.post(f"/t/{lg_code}/apikeys", data={
        "name": "連携システム", "kind": kind, "permissions": list(permissions), "rate_limit_per_minute": "600",
        "csrf_token": admin.csrf})
    assert page.status_code == 200, page.text
    token = re.search(r'<code id="new-api-key">([^<]+)</code>', page.text).group(1)
    return {"Authorization": f"Bearer {token}"}


# -- 監査ログ ------------------------------------------------------------------------------------------

async def test_audit_twin_pages_and_filters_like_the_page_with_codes_and_labels(staff, client) -> None:
    admin = await staff(SAPPORO, "admin")
    for _ in range(2):
        await _key(admin, SAPPORO, "tenancy.setting.read")
    answer = await admin.client.get(f"{API}/audit")
    assert answer.status_code == 200
    log = answer.json()
    page = await admin.client.get(f"/t/{SAPPORO}/audit")
    assert f"{log['total']:,} 件中" in page.text
    first = log["items"][0]
    assert first["action"] == "identity.apikey.created" and first["action_label"] == "API キーの発行"
    assert first["actor_kind"] == "staff" and first["actor_kind_label"] == "職員"
    assert first["outcome"] == "success" and first["outcome_label"] == "成功"
    assert first["target"] == "連携システム" and first["target_type_label"] == "API キー"
    assert [i["seq"] for i in log["items"]] == sorted((i["seq"] for i in log["items"]), reverse=True)
    assert f'<td class="num" data-label="番号">{first["seq"]}</td>' in page.text
    assert {"value": "identity.apikey.created", "label": "API キーの発行"} in log["filters"]["actions"]

    narrowed = (await admin.client.get(f"{API}/audit", params={"action": "identity.apikey.created",
                                                                "since": date.today().isoformat()})).json()
    assert narrowed["total"] == 2 and {i["action"] for i in narrowed["items"]} == {"identity.apikey.created"}
    assert narrowed["csv_url"].startswith(f"/t/{SAPPORO}/audit.csv?") and "action=identity.apikey.created" in narrowed["csv_url"]
    beyond = (await admin.client.get(f"{API}/audit", params={"page": 999})).json()
    assert beyond["items"] == [] and beyond["total"] == log["total"] and beyond["page"] == 999


async def test_audit_twin_refuses_bad_filters_with_every_field_named(staff) -> None:
    admin = await staff(SAPPORO, "admin")
    bad = _problem(await admin.client.get(f"{API}/audit", params={"since": "きのう", "outcome": "maybe",
                                                                     "actor": "nobody"}), 422)
    assert _fields(bad) == {"since", "outcome", "actor"}
    assert "開始日は「2026-04-01」のように" in bad["detail"]
    for page in ("0", str(10**30), "abc"):
        _problem(await admin.client.get(f"{API}/audit", params={"page": page}), 422)


async def test_audit_twin_is_for_this_organisations_readers_only(staff, client) -> None:
    _problem(await client.get(f"{API}/audit"), 401)
    clerk = await staff(SAPPORO, "staff")
    assert _problem(await clerk.client.get(f"{API}/audit"), 403)["permission"] == "audit.entry.read"
    hakodate = await staff(HAKODATE, "admin")
    _problem(await hakodate.client.get(f"{API}/audit"), 404)
    admin = await staff(SAPPORO, "admin")
    reader = await _key(admin, SAPPORO, "audit.entry.read")
    assert (await client.get(f"{API}/audit", headers=reader)).status_code == 200
    _problem(await client.get(f"{API}/audit", headers=await _key(admin, SAPPORO, "tenancy.setting.read")), 403)


# -- 職員の管理 -------------------------------------------------------------------------------------------

async def test_staff_twin_invites_changes_roles_stops_and_reinstates(staff, session) -> None:
    admin = await staff(SAPPORO, "admin", name="札幌 管理者")
    listing = (await admin.client.get(f"{API}/staff")).json()
    me = next(m for m in listing["members"] if m["principal_id"] == admin.principal_id)
    assert me["role"] == "admin" and me["role_label"] == "団体管理者" and me["state"] == "active"
    assert me["username"] == admin.username
    assert {"value": "viewer", "label": "閲覧者"} in listing["roles"]

    invited = await admin.client.post(f"{API}/staff", json={"username": "yamada-json", "display_name": "山田 一郎",
                                                             "role": "staff"})
    assert invited.status_code == 201, invited.text
    body = invited.json()
    assert re.search(r"/invite/[\w-]{20,}$", body["invite_url"])
    person = body["member"]
    assert person["display_name"] == "山田 一郎" and person["role_label"] == "職員" and person["username"] == "yamada-json"
    page = await admin.client.get(f"/t/{SAPPORO}/staff")
    assert "山田 一郎" in page.text and body["invite_url"] not in page.text  # the link is shown once
    again = _problem(await admin.client.post(f"{API}/staff", json={"username": "yamada-json", "display_name": "別人"}),
                     409)
    assert "すでに使われています" in again["detail"]
    _problem(await admin.client.post(f"{API}/staff", json={"username": " ", "display_name": "", "role": "staff"}), 422)

    pid = person["principal_id"]
    changed = await admin.client.put(f"{API}/staff/{pid}/role", json={"role": "viewer"})
    assert changed.status_code == 200 and changed.json()["role_label"] == "閲覧者"
    refused = _problem(await admin.client.put(f"{API}/staff/{pid}/role", json={"role": "owner"}), 422)["detail"]
    assert "次のいずれかを指定してください: 'admin', 'staff', 'viewer'" in refused

    stopped = await admin.client.post(f"{API}/staff/{pid}/stop", json={})
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped" and stopped.json()["stopped_at"]
    twice = await admin.client.post(f"{API}/staff/{pid}/stop", json={})
    assert twice.status_code == 200 and twice.json()["state"] == "stopped"
    listing = (await admin.client.get(f"{API}/staff")).json()
    assert [m["display_name"] for m in listing["stopped"]] == ["山田 一郎"]
    reinstated = await admin.client.post(f"{API}/staff/{pid}/reinstate", json={})
    assert reinstated.json()["state"] == "active" and reinstated.json()["role"] == "viewer"

    myself = _problem(await admin.client.post(f"{API}/staff/{admin.principal_id}/stop", json={}), 422)
    assert "自分自身の利用は停止できません" in myself["detail"]
    _problem(await admin.client.post(f"{API}/staff/00000000-0000-4000-8000-000000000000/stop", json={}), 404)


async def test_staff_writes_with_the_session_must_be_json(staff, session) -> None:
    admin = await staff(SAPPORO, "admin")
    clerk = await staff(SAPPORO, "staff")
    # What a page on another site could make a browser send: a form, with the cookie.
    refused = await admin.client.post(f"{API}/staff/{clerk.principal_id}/stop", data={"x": "1"})
    _problem(refused, 415)
    _problem(await admin.client.post(f"{API}/staff/{clerk.principal_id}/stop"), 415)
    async with unscoped(session, "test: is the clerk still active"):
        membership = await session.scalar(select(Membership).where(Membership.principal_id == clerk.principal_id))
    assert membership.revoked_at is None


async def test_staff_twin_is_for_this_organisations_admins_and_keys_may_only_read_it(staff, client) -> None:
    _problem(await client.get(f"{API}/staff"), 401)
    _problem(await client.post(f"{API}/staff", json={"username": "x", "display_name": "x"}), 401)
    clerk = await staff(SAPPORO, "staff")
    _problem(await clerk.client.get(f"{API}/staff"), 403)
    _problem(await clerk.client.post(f"{API}/staff/{clerk.principal_id}/stop", json={}), 403)
    hakodate = await staff(HAKODATE, "admin")
    _problem(await hakodate.client.get(f"{API}/staff"), 404)
    _problem(await hakodate.client.post(f"{API}/staff/{clerk.principal_id}/stop", json={}), 404)
    admin = await staff(SAPPORO, "admin")
    key = await _key(admin, SAPPORO, "identity.membership.read")
    names = {m["display_name"] for m in (await client.get(f"{API}/staff", headers=key)).json()["members"]}
    assert clerk and f"{SAPPORO} staff" in names
    _problem(await client.post(f"{API}/staff/{clerk.principal_id}/stop", headers=key, json={}), 403)


# -- API キー -------------------------------------------------------------------------------------------

async def test_api_key_twin_lists_metadata_and_revokes(staff, client) -> None:
    admin = await staff(SAPPORO, "admin")
    key = await _key(admin, SAPPORO, "tenancy.setting.read", "audit.entry.read")
    token = key["Authorization"].removeprefix("Bearer ")
    answer = await admin.client.get(f"{API}/apikeys")
    assert answer.status_code == 200 and token.split("_")[-1] not in answer.text  # never the secret
    listing = answer.json()
    (item,) = listing["items"]
    assert item["id"] == token.split("_")[3] and item["kind"] == "live" and item["kind_label"] == "本番"
    assert item["permissions"] == [{"value": "tenancy.setting.read", "label": "テナント設定と変更履歴の閲覧"},
                                   {"value": "audit.entry.read", "label": "監査ログの閲覧"}]
    assert item["active"] and listing["create_url"] == f"/t/{SAPPORO}/apikeys"
    page = await admin.client.get(f"/t/{SAPPORO}/apikeys")
    assert "連携システム" in page.text and "監査ログの閲覧" in page.text

    _problem(await client.get(f"{API}/apikeys", headers=key), 403)  # a key never manages keys
    revoked = await admin.client.post(f"{API}/apikeys/{item['id']}/revoke", json={})
    assert revoked.status_code == 200 and revoked.json()["active"] is False and revoked.json()["revoked_at"]
    _problem(await client.get(f"{API}/settings/history", headers=key), 401)
    _problem(await admin.client.post(f"{API}/apikeys/nosuchkey/revoke", json={}), 404)
    _problem(await client.get(f"{API}/apikeys"), 401)
    _problem(await (await staff(SAPPORO, "staff")).client.get(f"{API}/apikeys"), 403)
    hakodate = await staff(HAKODATE, "admin")
    _problem(await hakodate.client.post(f"{API}/apikeys/{item['id']}/revoke", json={}), 404)


# -- 閲覧許可 ---------------------------------------------------------------------------------------------

async def test_grant_twin_creates_lists_and_revokes_like_the_page(staff, client) -> None:
    admin = await staff(SAPPORO, "admin")
    created = await admin.client.post(f"{API}/grants", json={
        "grantee_code": "北海道", "permission": "audit.entry.read", "purpose": "広域の監査",
        "legal_basis": "地方自治法第245条の4", "expires_on": (date.today() + timedelta(days=30)).isoformat()})
    assert created.status_code == 201, created.text
    grant = created.json()
    assert grant["grantee_code"] == "010006" and grant["grantee_name"] == "北海道"
    assert grant["permission_label"] == "監査ログの閲覧" and grant["active"]
    listing = (await admin.client.get(f"{API}/grants")).json()
    assert [g["id"] for g in listing["items"]] == [grant["id"]]
    assert {"value": "audit.entry.read", "label": "監査ログの閲覧"} in listing["grantable"]
    page = await admin.client.get(f"/t/{SAPPORO}/grants")
    assert "北海道" in page.text and "広域の監査" in page.text

    bad = _problem(await admin.client.post(f"{API}/grants", json={
        "grantee_code": SAPPORO, "permission": "identity.apikey.manage", "purpose": "", "legal_basis": "",
        "expires_on": "2001-01-01"}), 422)
    assert {"grantee_code", "permission", "purpose", "legal_basis", "expires_on"} <= _fields(bad)
    _problem(await admin.client.post(f"{API}/grants", json={"grantee_code": "010006", "permission": "audit.entry.read",
                                                             "purpose": "x", "legal_basis": "y",
                                                             "expires_on": "31/12/2030"}), 422)
    assert len((await admin.client.get(f"{API}/grants")).json()["items"]) == 1

    revoked = await admin.client.post(f"{API}/grants/{grant['id']}/revoke", json={})
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    _problem(await client.get(f"{API}/grants"), 401)
    _problem(await (await staff(SAPPORO, "staff")).client.get(f"{API}/grants"), 403)
    _problem(await (await staff(HAKODATE, "admin")).client.post(f"{API}/grants/{grant['id']}/revoke", json={}), 404)


# -- テナント設定 -------------------------------------------------------------------------------------------

async def test_setting_twin_changes_and_clears_with_versions(staff, client) -> None:
    admin = await staff(SAPPORO, "admin")
    url = f"{API}/settings/childcare.application_deadline_day"
    changed = await admin.client.put(url, json={"value": 15, "reason": "条例改正", "expected_version": 0})
    assert changed.status_code == 200, changed.text
    assert changed.json()["value"] == 15 and changed.json()["version"] == 1 and changed.json()["source_code"] == SAPPORO
    public = (await client.get(f"{API}/settings")).json()
    assert next(i for i in public["items"] if i["key"] == "childcare.application_deadline_day")["value"] == 15
    history = (await admin.client.get(f"{API}/settings/history")).json()["items"]
    assert history[0]["new_value"] == 15 and history[0]["reason"] == "条例改正"
    assert "15" in (await client.get(f"/t/{SAPPORO}/settings")).text

    stale = _problem(await admin.client.put(url, json={"value": 20, "expected_version": 0}), 409)
    assert "ほかの人が先に変更しました" in stale["detail"]
    bounds = _problem(await admin.client.put(url, json={"value": 99, "expected_version": 1}), 422)
    assert "28以下" in bounds["detail"] and _fields(bounds) == {"value"}
    _problem(await admin.client.put(f"{API}/settings/no.such.key", json={"value": 1}), 404)
    cleared = await admin.client.post(f"{url}/clear", json={"reason": "元に戻す"})
    assert cleared.status_code == 200 and cleared.json()["version"] is None and cleared.json()["value"] == 10

    _problem(await client.put(url, json={"value": 12}), 401)
    viewer = await staff(SAPPORO, "viewer")
    _problem(await viewer.client.put(url, json={"value": 12, "expected_version": 0}), 403)
    _problem(await (await staff(HAKODATE, "admin")).client.put(url, json={"value": 12}), 404)
    key = await _key(admin, SAPPORO, "tenancy.setting.update")
    assert (await client.put(url, headers=key, json={"value": 12, "expected_version": 0})).json()["value"] == 12
    # The change is audited with the key as actor (its id fits actor_id on PostgreSQL too).
    latest = (await admin.client.get(f"{API}/audit")).json()["items"][0]
    assert latest["action"] == "tenancy.setting.updated" and latest["actor_kind"] == "api_client"
    assert latest["actor"] == "連携システム（札幌市）" and latest["actor_id"] == key["Authorization"].split("_")[3]


# -- 住民本人 ---------------------------------------------------------------------------------------------

@pytest.fixture
def ca(tmp_path, monkeypatch) -> DevCA:
    monkeypatch.setenv("KIBAN_JPKI_DEV_CA_ENABLED", "1")
    monkeypatch.setenv("KIBAN_JPKI_DEV_CA_DIR", str(tmp_path / "dev-ca"))
    get_settings.cache_clear()
    authority = DevCA(tmp_path / "dev-ca")
    authority.init()
    yield authority
    get_settings.cache_clear()


async def _resident(new_client, ca: DevCA):
    client = new_client()
    card = load_card(ca.issue("hanako"))
    page = await client.get("/signin/card")
    challenge_id = re.search(r'name="challenge_id" value="([^"]+)"', page.text).group(1)
    nonce = re.search(r'<code id="challenge">([^<]+)</code>', page.text).group(1)
    signed_in = await client.post("/signin/card", data={
        "challenge_id": challenge_id, "certificate": card.certificate_pem, "signature": card.sign(nonce),
        "csrf_token": csrf_of(client)})
    assert signed_in.status_code == 303
    return client


async def test_me_twin_shows_the_resident_their_own_access_log(ca, new_client, client, staff) -> None:
    resident = await _resident(new_client, ca)
    me = await resident.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["kind"] == "resident" and me.json()["kind_label"] == "住民"
    log = (await resident.get("/api/v1/me/access-log")).json()
    entry = log["items"][0]
    assert entry["action"] == "identity.resident.sign_in"
    assert entry["action_label"] == "住民のサインイン（マイナンバーカード）" and entry["outcome_label"] == "成功"
    assert entry["organisation"] == "デジタル庁" and entry["purpose"] == "本人確認"
    page = await resident.get("/me")
    assert page.text.count('data-action="') == len(log["items"]) and entry["action_label"] in page.text

    _problem(await client.get("/api/v1/me"), 401)
    _problem(await client.get("/api/v1/me/access-log"), 401)
    clerk = await staff(SAPPORO, "admin")
    _problem(await clerk.client.get("/api/v1/me/access-log"), 401)  # staff are not the resident


# -- 共同利用（公開）と事務局 ---------------------------------------------------------------------------------

CONSORTIUM = f"/api/v1/t/{AICHI}/consortia/aichi-e-gov"
ALLOCATE = {"service": "aichi-e-shinsei", "amount": 123_456_789, "kind": "weighted", "ratio": "1.5",
            "equal_percent": "30", "rest": "weighted", "subsidy_percent": "0", "prefecture_share": "",
            "fiscal_year": 2026}
DUE_ON = (date.today() + timedelta(days=45)).isoformat()


async def test_public_consortia_twin_matches_the_pages(client) -> None:
    listing = (await client.get("/api/v1/consortia")).json()
    aichi = next(c for c in listing if c["id"] == "aichi-e-gov")
    assert aichi["member_count"] == 54 and aichi["secretariat_code"] == AICHI
    assert f"構成団体 {aichi['member_count']} 団体" in (await client.get("/consortia")).text
    detail = (await client.get("/api/v1/consortia/aichi-e-gov")).json()
    names = {m["name"] for m in detail["members"]}
    assert len(names) == 54 and "一宮市" in names and "名古屋市" not in names and "北名古屋市" in names
    assert detail["secretariat"]["name"] == "愛知県"
    published = {s["service_id"]: s["published_users"] for s in detail["systems"]}
    assert published["aichi-shisetsu-yoyaku"] == 28
    page = await client.get("/consortia/aichi-e-gov")
    assert all(s["service_name"] in page.text for s in detail["systems"])
    _problem(await client.get("/api/v1/consortia/no-such-consortium"), 404)


async def test_secretariat_twin_previews_decides_and_replaces_like_the_screen(staff, session) -> None:
    aichi = await staff(AICHI, "admin")
    screen = (await aichi.client.get(CONSORTIUM)).json()
    assert screen["consortium"]["name"] == "あいち電子自治体推進協議会" and len(screen["members"]) == 54
    assert screen["methods"]["weighted"] == "人口按分+重み係数" and screen["schedules"] == []

    preview = await aichi.client.get(f"{CONSORTIUM}/allocation", params=ALLOCATE)
    assert preview.status_code == 200, preview.text
    result = preview.json()
    assert len(result["fees"]) == 54 and sum(f["fee"] for f in result["fees"]) == result["total"] == 123_456_789
    assert result["current"] is None
    page = await aichi.client.get(f"/t/{AICHI}/consortia/aichi-e-gov/allocate",
                                  params={**ALLOCATE, "amount": "123,456,789"})
    table = page.text[page.text.index('id="allocation-table"'):]
    shown = [int(x.replace(",", "")) for x in re.findall(r'<td class="num">([\d,]+)</td><td>人口', table)]
    assert sorted(shown) == sorted(f["fee"] for f in result["fees"])  # the same fees as the screen
    assert await _count(session, FeeSchedule) == 0  # a preview saves nothing

    bad = _problem(await aichi.client.get(f"{CONSORTIUM}/allocation", params={**ALLOCATE, "ratio": "0"}), 422)
    assert "重み係数 r は0より大きい" in bad["detail"]
    _problem(await aichi.client.get(f"{CONSORTIUM}/allocation", params={**ALLOCATE, "amount": "-1"}), 422)
    _problem(await aichi.client.get(f"{CONSORTIUM}/allocation", params={**ALLOCATE, "service": "vrs"}), 404)

    late = _problem(await aichi.client.post(f"{CONSORTIUM}/schedules", json={**ALLOCATE, "due_on": "2001-01-01"}), 422)
    assert _fields(late) == {"due_on"} and await _count(session, FeeSchedule) == 0
    _problem(await aichi.client.post(f"{CONSORTIUM}/schedules", data={**ALLOCATE, "due_on": DUE_ON}), 415)

    decided = await aichi.client.post(f"{CONSORTIUM}/schedules", json={**ALLOCATE, "due_on": DUE_ON})
    assert decided.status_code == 201, decided.text
    first = decided.json()
    assert first["number"] == "2026-001" and first["in_force"] and first["total"] == 123_456_789
    assert {line["fee"] for line in first["lines"]} == {f["fee"] for f in result["fees"]}
    assert await _count(session, FeeStatement) == 54
    csv = await aichi.client.get(first["csv_url"])
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    line = next(line for line in first["lines"] if line["code"] == ICHINOMIYA)
    assert (await aichi.client.get(line["pdf_url"])).headers["content-type"] == "application/pdf"

    again = _problem(await aichi.client.post(f"{CONSORTIUM}/schedules", json={**ALLOCATE, "due_on": DUE_ON}), 422)
    assert "決定済みです" in again["detail"] and _fields(again) == {"replace"}
    no_reason = _problem(await aichi.client.post(f"{CONSORTIUM}/schedules", json={
        **ALLOCATE, "due_on": DUE_ON, "replace": first["id"]}), 422)
    assert _fields(no_reason) == {"reason"}
    replaced = await aichi.client.post(f"{CONSORTIUM}/schedules", json={
        **ALLOCATE, "amount": 100_000_000, "due_on": DUE_ON, "replace": first["id"], "reason": "総経費の訂正"})
    assert replaced.status_code == 201
    second = replaced.json()
    assert second["replaces_id"] == first["id"] and second["replacement_reason"] == "総経費の訂正"
    old = (await aichi.client.get(first["url"])).json()
    assert old["in_force"] is False and old["status_label"] == "取消（差替え済み）" and old["replaced_by_id"] == second["id"]
    listed = (await aichi.client.get(f"{CONSORTIUM}/schedules")).json()
    assert [s["id"] for s in listed] == [second["id"], first["id"]]
    stale = _problem(await aichi.client.post(f"{CONSORTIUM}/schedules", json={
        **ALLOCATE, "due_on": DUE_ON, "replace": first["id"], "reason": "古い画面から"}), 409)
    assert "差し替えられています" in stale["detail"]


async def test_secretariat_twin_sets_users_and_usage(staff) -> None:
    aichi = await staff(AICHI, "admin")
    system = f"{CONSORTIUM}/systems/aichi-ai-ocr"
    users = await aichi.client.put(f"{system}/users", json={"members": [AICHI, ICHINOMIYA]})
    assert users.status_code == 200 and users.json()["user_codes"] == sorted([AICHI, ICHINOMIYA])
    _problem(await aichi.client.put(f"{system}/users", json={"members": [SAPPORO]}), 422)
    saved = await aichi.client.put(f"{system}/usage", json={"fiscal_year": 2026, "units": {AICHI: 300, ICHINOMIYA: 100}})
    assert saved.status_code == 200
    assert {m["code"]: m["units"] for m in saved.json()["members"]} == {AICHI: 300, ICHINOMIYA: 100}
    page = await aichi.client.get(f"/t/{AICHI}/consortia/aichi-e-gov/systems/aichi-ai-ocr/usage",
                                  params={"fiscal_year": "2026"})
    assert 'value="300"' in page.text and 'value="100"' in page.text
    bad = _problem(await aichi.client.put(f"{system}/usage", json={"fiscal_year": 2026,
                                                                   "units": {AICHI: -5, ICHINOMIYA: 7}}), 422)
    assert _fields(bad) == {f"units.{AICHI}"} and "0以上の整数" in bad["errors"][0]["message"]
    assert (await aichi.client.get(f"{system}/usage", params={"fiscal_year": "2026"})).json()["members"][1]["units"] == 100
    _problem(await aichi.client.get(f"{system}/usage", params={"fiscal_year": "1999"}), 422)
    by_usage = await aichi.client.get(f"{CONSORTIUM}/allocation", params={
        **ALLOCATE, "service": "aichi-ai-ocr", "kind": "usage", "amount": 4000})
    assert {f["code"]: f["fee"] for f in by_usage.json()["fees"]} == {AICHI: 3000, ICHINOMIYA: 1000}


async def test_secretariat_twin_is_for_the_secretariat_only(staff, client) -> None:
    _problem(await client.get(CONSORTIUM), 401)
    _problem(await client.post(f"{CONSORTIUM}/schedules", json={**ALLOCATE, "due_on": DUE_ON}), 401)
    clerk = await staff(AICHI, "staff")
    _problem(await clerk.client.get(CONSORTIUM), 403)
    _problem(await clerk.client.get(f"{CONSORTIUM}/allocation", params=ALLOCATE), 403)
    ichinomiya = await staff(ICHINOMIYA, "admin")  # a member, not the secretariat
    _problem(await ichinomiya.client.get(f"/api/v1/t/{ICHINOMIYA}/consortia/aichi-e-gov"), 404)
    _problem(await ichinomiya.client.get(CONSORTIUM), 404)
    _problem(await ichinomiya.client.post(f"/api/v1/t/{ICHINOMIYA}/consortia/aichi-e-gov/schedules",
                                          json={**ALLOCATE, "due_on": DUE_ON}), 404)


# -- 負担金算定書（構成団体） ------------------------------------------------------------------------------

async def test_statement_twin_lists_a_members_own_statements_with_file_urls(staff, client) -> None:
    aichi = await staff(AICHI, "admin")
    first = (await aichi.client.post(f"{CONSORTIUM}/schedules", json={**ALLOCATE, "due_on": DUE_ON})).json()
    second = (await aichi.client.post(f"{CONSORTIUM}/schedules", json={
        **ALLOCATE, "amount": 100_000_000, "due_on": DUE_ON, "replace": first["id"], "reason": "総経費の訂正"})).json()
    fee = {line["code"]: line["fee"] for line in second["lines"]}

    ichinomiya = await staff(ICHINOMIYA, "viewer")
    base = f"/api/v1/t/{ICHINOMIYA}/statements"
    listing = (await ichinomiya.client.get(base)).json()
    assert [s["schedule_id"] for s in listing["items"]] == [second["id"], first["id"]]
    current, cancelled = listing["items"]
    assert current["fee"] == fee[ICHINOMIYA] and current["status_label"] == "有効"
    assert current["document_no"] == f"2026-002-{ICHINOMIYA}" and current["fiscal_year_label"] == "令和8年度"
    assert current["issuer"] == "あいち電子自治体推進協議会 事務局（愛知県）" and current["due_on"] == DUE_ON
    assert cancelled["status_label"] == "取消" and cancelled["replaced_by_id"] == second["id"]
    assert f"文書番号 2026-002-{ICHINOMIYA} の算定書に差し替えました" in cancelled["cancellation"]
    assert {"id": "aichi-e-gov", "name": "あいち電子自治体推進協議会", "url": "/api/v1/consortia/aichi-e-gov"} in listing["consortia"]
    page = await ichinomiya.client.get(f"/t/{ICHINOMIYA}/statements")
    assert f"{current['fee']:,}" in page.text and current["document_no"] in page.text
    assert current["pdf_url"] in page.text and current["csv_url"] in page.text
    pdf = await ichinomiya.client.get(current["pdf_url"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    detail = (await ichinomiya.client.get(current["url"])).json()
    assert detail == current

    _problem(await ichinomiya.client.get(f"{base}/00000000-0000-4000-8000-000000000000"), 404)
    _problem(await client.get(base), 401)
    toyota = await staff("232114", "admin")  # another member: its own statement only, under its own URL
    _problem(await toyota.client.get(f"{base}/{second['id']}"), 404)
    assert (await toyota.client.get(f"/api/v1/t/232114/statements/{second['id']}")).json()["member_name"] == "豊田市"
    hakodate = await staff(HAKODATE, "admin")
    _problem(await hakodate.client.get(f"/api/v1/t/{HAKODATE}/statements/{second['id']}"), 404)
    admin = await staff(ICHINOMIYA, "admin")
    _problem(await client.get(base, headers=await _key(admin, ICHINOMIYA, "catalog.adoption.read")), 403)
    reader = await _key(admin, ICHINOMIYA, "costs.statement.read")
    assert (await client.get(base, headers=reader)).json()["items"][0]["fee"] == fee[ICHINOMIYA]
    assert (await client.get(current["csv_url"], headers=reader)).status_code == 200


async def _count(session, model) -> int:
    async with unscoped(session, "test: count rows"):
        return await session.scalar(select(func.count()).select_from(model))
