"""保活 through HTTP: an operator registers facilities, a resident of 札幌市 searches and applies to
two facilities in 札幌市 and one in 函館市, the employer certifies work, 札幌市 runs and publishes
the allocation, the parent reads the result and its reason; 函館市 sees only the referral for its
facility; the operator's one monthly report reaches each municipality for its own residents only.
Plus the refusals: anonymous, missing permission, another municipality, bad input, retries."""

from __future__ import annotations

import re
import uuid
from datetime import date
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oidc_provider_mock import run_server_in_thread

from kiban.core.identity import oidc
from kiban.core.identity.devca import DevCA, load_card
from kiban.core.registry.corporate_number import corporate_check_digit
from kiban.kit.settings import get_settings
from kiban.modules.childcare import service
from tests.conftest import csrf_of
from tests.core.test_japanese_only import foreign_words, read
from tests.factories import HAKODATE, SAPPORO

PROBLEM = "application/problem+json"
OPERATOR = corporate_check_digit("555555555555") + "555555555555"
EMPLOYER = corporate_check_digit("777777777777") + "777777777777"


@pytest.fixture(scope="module")
def provider():
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def gbizid(provider, monkeypatch):
    monkeypatch.setenv("KIBAN_GBIZID_ISSUER", provider)
    monkeypatch.setenv("KIBAN_GBIZID_CLIENT_ID", "kiban-childcare-test")
    monkeypatch.setenv("KIBAN_GBIZID_CLIENT_SECRET", "test-secret")
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    get_settings.cache_clear()
    oidc._discovery_cache.clear()
    oidc._jwks_cache.clear()
    yield provider
    get_settings.cache_clear()


@pytest.fixture
def ca(tmp_path, monkeypatch) -> DevCA:
    monkeypatch.setenv("KIBAN_JPKI_DEV_CA_ENABLED", "1")
    monkeypatch.setenv("KIBAN_JPKI_DEV_CA_DIR", str(tmp_path / "dev-ca"))
    get_settings.cache_clear()
    authority = DevCA(tmp_path / "dev-ca")
    authority.init()
    yield authority
    get_settings.cache_clear()


async def business(new_client, provider: str, name: str, number: str) -> httpx.AsyncClient:
    sub = f"cc-{uuid.uuid4().hex[:8]}"
    httpx.put(f"{provider}/users/{sub}", json={"name": name, "corporate_number": number}).raise_for_status()
    client = new_client()
    start = await client.get("/signin/business")
    approved = httpx.post(start.headers["location"], data={"sub": sub, "action": "allow"}, follow_redirects=False)
    back = urlsplit(approved.headers["location"])
    done = await client.get(back.path, params={k: v[0] for k, v in parse_qs(back.query).items()})
    assert done.status_code == 303, done.text[:300]
    return client


async def resident(new_client, ca: DevCA, name: str) -> httpx.AsyncClient:
    client = new_client()
    card = load_card(ca.issue(name))
    page = await client.get("/signin/card")
    challenge_id = re.search(r'name="challenge_id" value="([^"]+)"', page.text).group(1)
    nonce = re.search(r'<code id="challenge">([^<]+)</code>', page.text).group(1)
    signed_in = await client.post("/signin/card", data={
        "challenge_id": challenge_id, "certificate": card.certificate_pem, "signature": card.sign(nonce),
        "csrf_token": csrf_of(client)})
    assert signed_in.status_code == 303
    return client


def facility(name: str, municipality: str, seats: int) -> dict:
    return {"municipality": municipality, "name": name, "kind": "licensed", "opens_at": "07:00", "closes_at": "19:00",
            "capacity": [6, 6, 6, 6, 6, 6], "vacancy": [seats, seats, 0, 0, 0, 0]}


async def _facilities(operator) -> dict[str, dict]:
    made = {}
    for name, municipality, seats in ((f"ひかり保育園{uuid.uuid4().int % 10000:04d}", SAPPORO, 1),
                                      (f"みどり保育園{uuid.uuid4().int % 10000:04d}", SAPPORO, 1),
                                      (f"はこだて保育園{uuid.uuid4().int % 10000:04d}", HAKODATE, 2)):
        answer = await operator.post("/api/v1/business/childcare/facilities", json=facility(name, municipality, seats))
        assert answer.status_code == 201, answer.text
        made[name] = answer.json()
    return made


def one_year_old() -> str:
    """A birth date in the 1歳児 class of the April the application is for."""
    return date(service.entry_april(date.today()).year - 2, 6, 1).isoformat()


def _apply_form(client, picks: list[str], *, name: str, employer: str = EMPLOYER) -> dict:
    form = {"csrf_token": csrf_of(client), "form_token": uuid.uuid4().hex, "residence": "札幌市",
            "guardian_name": name, "child1_name": f"{name}の子", "child1_birth": one_year_old(),
            "guardian1_situation": "employed", "guardian1_hours": "40", "guardian1_employer_number": employer,
            "guardian1_employer_name": "株式会社つとめさき", "guardian2_situation": "employed", "guardian2_hours": "40",
            "guardian2_employer_number": employer, "guardian2_employer_name": "株式会社つとめさき",
            "pick": picks}
    for n in range(len(picks)):
        form[f"rank_{n}"] = str(n + 1)
    return form


async def test_the_story_from_search_to_published_result_across_two_municipalities(
        staff, new_client, gbizid, ca) -> None:
    operator = await business(new_client, gbizid, "社会福祉法人ひかり会 担当", OPERATOR)
    made = await _facilities(operator)
    (hikari, h), (midori, m), (hako, k) = made.items()
    sapporo = await staff(SAPPORO, "admin", name="札幌 太郎")
    hakodate = await staff(HAKODATE, "admin", name="函館 次郎")
    await sapporo.client.post(f"/t/{SAPPORO}/childcare/rules/preset",
                              data={"preset": "example_sum", "csrf_token": sapporo.csrf})

    parent = await resident(new_client, ca, "保護者 花子")
    search = await parent.get("/childcare", params={"municipality": "札幌市、函館市", "age": "1", "vacancy_only": "1"})
    assert search.status_code == 200 and hikari in search.text and hako in search.text
    assert not foreign_words(read(search)[0])
    picks = [f"{SAPPORO}:{h['id']}", f"{SAPPORO}:{m['id']}", f"{HAKODATE}:{k['id']}"]
    form = _apply_form(parent, picks, name="保護者 花子")
    sent = await parent.post("/me/childcare/apply", data=form)
    assert sent.status_code == 303, sent.text[:2000]
    receipt_no = sent.headers["location"].rsplit("/", 1)[-1]
    again = await parent.post("/me/childcare/apply", data=form)  # a retried submit makes no second application
    assert again.headers["location"].endswith(receipt_no)
    # A rival with the same points, applying later (受付順), for the first choice only.
    rival = await resident(new_client, ca, "保護者 次郎")
    assert (await rival.post("/me/childcare/apply", data=_apply_form(rival, picks[:1], name="保護者 次郎"))).status_code == 303

    access_log = await parent.get("/me")  # the parent sees that 函館市 received their application's referral
    assert "広域利用の協議の受付" in access_log.text and "函館市" in access_log.text
    assert 'href="/me/childcare"' in access_log.text and 'href="/childcare"' in access_log.text  # /me leads to 保活
    assert not foreign_words(read(access_log)[0])
    status = await parent.get(f"/me/childcare/{receipt_no}")
    assert "勤務先の提出を待っています" in status.text and not foreign_words(read(status)[0])

    employer = await business(new_client, gbizid, "株式会社つとめさき 人事", EMPLOYER)
    home = await employer.get("/business")  # the business page leads to the 就労証明書 and facilities
    assert 'href="/business/childcare#certificates"' in home.text and 'href="/business/childcare"' in home.text
    assert not foreign_words(read(home)[0])
    mine = (await employer.get("/api/v1/business/childcare")).json()
    requests = [c for c in mine["certificates"] if c["status"] == "requested"]
    assert len(requests) == 4
    for request in requests:
        page = await employer.post(f"/business/childcare/certificates/{request['lg_code']}/{request['id']}", data={
            "hours_per_week": "40", "days_per_week": "5", "employment_type": "regular", "csrf_token": csrf_of(employer)})
        assert page.status_code == 303, page.text[:500]
    again = await employer.post(f"/api/v1/business/childcare/certificates/{SAPPORO}/{requests[0]['id']}",
                                json={"hours_per_week": 40, "days_per_week": 5, "employment_type": "regular"})
    assert again.status_code == 409 and again.headers["content-type"].startswith(PROBLEM)

    # 函館市 sees the referral for its facility, never the application itself
    overview = (await hakodate.client.get(f"/api/v1/t/{HAKODATE}/childcare")).json()
    assert [r["receipt_no"] for r in overview["referrals"]] == [receipt_no]
    assert overview["referrals"][0]["rank"] == 3 and overview["applications"] == []
    assert (await hakodate.client.get(f"/t/{HAKODATE}/childcare/applications/{receipt_no}")).status_code == 404
    assert "保護者 花子" not in (await hakodate.client.get(f"/t/{HAKODATE}/childcare")).text

    points = (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/childcare/applications/{receipt_no}")).json()["points"]
    assert points["total"] == 40
    run = await sapporo.client.post(f"/t/{SAPPORO}/childcare/allocation",
                                    data={"rule_version": "1", "mode": "default", "csrf_token": sapporo.csrf})
    assert run.status_code == 303, run.text[:1000]
    number = run.headers["location"].rsplit("/", 1)[-1]
    # A draft tells nobody
    assert "内定" not in (await parent.get(f"/me/childcare/{receipt_no}")).text
    ask = await sapporo.client.post(f"/t/{SAPPORO}/childcare/allocation/{number}/publish", data={"csrf_token": sapporo.csrf})
    assert "公開を確定する" in ask.text
    published = await sapporo.client.post(f"/t/{SAPPORO}/childcare/allocation/{number}/publish",
                                          data={"csrf_token": sapporo.csrf, "confirm": "yes"})
    assert published.status_code == 303
    twice = await sapporo.client.post(f"/api/v1/t/{SAPPORO}/childcare/allocation/{number}/publish", json={})
    assert twice.status_code == 409

    result = await parent.get(f"/me/childcare/{receipt_no}")
    assert f"{hikari}に内定（第1希望）" in result.text and not foreign_words(read(result)[0])
    rival_view = (await rival.get("/api/v1/me/childcare")).json()[0]
    assert rival_view["status"] == "waiting"
    reasons = " ".join(next(iter(rival_view["results"].values()))["reasons"])
    assert "40" in reasons, reasons  # 「第1希望は指数 40 の方で定員に達しました」
    notices = await parent.get("/api/v1/me/notices")
    assert any("利用調整の結果" in n["subject"] for n in notices.json()["items"])

    referral = (await hakodate.client.get(f"/api/v1/t/{HAKODATE}/childcare")).json()["referrals"][0]
    assert referral["outcome"] == "この施設には内定しませんでした"
    waiting = (await new_client().get(f"/api/v1/t/{SAPPORO}/childcare/waiting")).json()
    assert sum(r["waiting"] for r in waiting["rows"]) == 1 and waiting["rows"][1]["placed"] == 1
    csv = await new_client().get(f"/t/{SAPPORO}/childcare/waiting.csv")
    assert csv.status_code == 200 and "待機児童数" in csv.content.decode("utf-8-sig")

    for who, path in ((sapporo, f"/t/{SAPPORO}/childcare"), (sapporo, f"/t/{SAPPORO}/childcare/applications/{receipt_no}"),
                      (sapporo, f"/t/{SAPPORO}/childcare/allocation"), (sapporo, f"/t/{SAPPORO}/childcare/allocation/{number}"),
                      (sapporo, f"/t/{SAPPORO}/childcare/reports"), (sapporo, f"/t/{SAPPORO}/childcare/prices"),
                      (sapporo, f"/t/{SAPPORO}/childcare/waiting"), (hakodate, f"/t/{HAKODATE}/childcare"),
                      (parent, "/me/childcare"), (parent, "/childcare"), (employer, "/business/childcare"),
                      (operator, "/business/childcare"), (operator, f"/business/childcare/facilities/{SAPPORO}/{h['id']}")):
        page = await who.client.get(path) if hasattr(who, "client") else await who.get(path)
        assert page.status_code == 200, path
        assert not foreign_words(read(page)[0]), (path, foreign_words(read(page)[0]))
    twin = (await operator.get(f"/api/v1/business/childcare/facilities/{SAPPORO}/{h['id']}")).json()
    assert (twin["name"], twin["vacancy"][1]) == (hikari, 0)  # the first choice's seat was taken by the publication
    assert (await employer.get(f"/api/v1/business/childcare/facilities/{SAPPORO}/{h['id']}")).status_code == 404


async def test_one_monthly_report_reaches_each_municipality_for_its_own_residents_only(staff, new_client, gbizid) -> None:
    operator = await business(new_client, gbizid, "社会福祉法人ひかり会 担当", OPERATOR)
    made = await _facilities(operator)
    hako = list(made.values())[2]
    sapporo = await staff(SAPPORO, "admin")
    hakodate = await staff(HAKODATE, "viewer")
    await sapporo.client.post(f"/t/{SAPPORO}/childcare/prices", data={
        "name": "令和8年度（例）", "bands": "100,200000,150000,150000,80000,70000,70000", "csrf_token": sapporo.csrf})
    form = {"month": "2026-10", "staff_count": "1", "residence1": "函館市", "age1_0": "2", "age1_1": "3",
            "attendance1": "100", "residence2": "札幌市", "age2_1": "1", "attendance2": "20", "csrf_token": csrf_of(operator)}
    sent = await operator.post(f"/business/childcare/facilities/{HAKODATE}/{hako['id']}/report", data=form)
    assert sent.status_code == 303, sent.text[:1500]
    receipt = await operator.get(sent.headers["location"])
    assert "Kiban が署名したもので" in receipt.text and "札幌市" in receipt.text
    assert "配置基準を満たしていません" in receipt.text  # 0歳 2/3 + 1・2歳 4/6 → 1.2 → 2 (and never fewer than 2)
    twice = await operator.post(f"/business/childcare/facilities/{HAKODATE}/{hako['id']}/report",
                                data={**form, "staff_count": "3"})
    assert twice.status_code == 409 and "すでに提出されています" in twice.text

    mine = (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/childcare/reports")).json()
    assert [p["children"]["1"] for p in mine["parts"]] == [1] and mine["parts"][0]["benefit_yen"] == 150000
    assert mine["facilities"] == []  # the facility stands in 函館市
    theirs = (await hakodate.client.get(f"/api/v1/t/{HAKODATE}/childcare/reports")).json()
    assert [p["children"]["0"] for p in theirs["parts"]] == [2] and theirs["parts"][0]["benefit_yen"] is None
    assert theirs["facilities"][0]["totals"]["1"] == 4  # the location sees totals and staffing, not others' parts


async def test_rules_are_versioned_previewed_and_every_wrong_field_is_named(staff) -> None:
    sapporo = await staff(SAPPORO, "staff", name="札幌 花子")
    page = await sapporo.client.get(f"/t/{SAPPORO}/childcare/rules")
    assert page.status_code == 200 and "例A" in page.text and not foreign_words(read(page)[0])
    base = {"combine": "sum", "employment": "40=20\n20=10", "absent": "20", "sibling_policy": "together_only",
            "tie_breaks": ["single_parent"], "residents_first": "1", "require_certificate": "1",
            **{f"situation_{k}": "10" for k in ("illness", "disability", "care", "pregnancy", "job_seeking", "study",
                                                  "disaster")},
            **{f"adjustment_{k}": "1" for k in ("single_parent", "sibling_enrolled", "waiting_long", "welfare",
                                                   "childcare_worker", "grandparent_nearby")}}
    preview = await sapporo.client.post(f"/t/{SAPPORO}/childcare/rules", data={
        **base, "action": "preview", "csrf_token": sapporo.csrf})
    assert "まだ保存していません" in preview.text and "40点" in preview.text
    assert (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/childcare/rules")).json()["versions"] == []
    bad = await sapporo.client.post(f"/t/{SAPPORO}/childcare/rules", data={
        **base, "employment": "たくさん", "absent": "x", "name": "", "action": "save", "csrf_token": sapporo.csrf})
    assert bad.status_code == 422 and "「週の時間=点数」" in bad.text and "たくさん" in bad.text
    for name in ("第一版", "第二版"):
        saved = await sapporo.client.post(f"/t/{SAPPORO}/childcare/rules", data={
            **base, "name": name, "action": "save", "csrf_token": sapporo.csrf})
        assert saved.status_code == 303
    versions = (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/childcare/rules")).json()["versions"]
    assert [(v["number"], v["name"]) for v in versions] == [(2, "第二版"), (1, "第一版")]
    assert versions[0]["rules"]["sibling_policy"] == "together_only"
    problem = await sapporo.client.post(f"/api/v1/t/{SAPPORO}/childcare/rules", json={"name": "x", "fields": {}})
    assert problem.status_code == 422 and problem.headers["content-type"].startswith(PROBLEM)
    assert {"combine", "employment", "sibling_policy"} <= {e["field"] for e in problem.json()["errors"]}


async def test_who_may_see_what(staff, new_client, ca) -> None:
    anonymous = new_client()
    assert (await anonymous.get(f"/api/v1/t/{SAPPORO}/childcare")).status_code == 401
    assert (await anonymous.get("/api/v1/me/childcare")).status_code == 401
    assert (await anonymous.get("/api/v1/business/childcare")).status_code == 401
    assert (await anonymous.get("/childcare")).status_code == 200
    viewer = await staff(SAPPORO, "viewer")
    assert (await viewer.client.get(f"/t/{SAPPORO}/childcare")).status_code == 200
    assert (await viewer.client.get(f"/t/{SAPPORO}/childcare/rules")).status_code == 403
    assert (await viewer.client.post(f"/api/v1/t/{SAPPORO}/childcare/allocation", json={"rule_version": 1})).status_code == 403
    other = await staff(HAKODATE, "admin")
    assert (await other.client.get(f"/t/{SAPPORO}/childcare")).status_code == 404
    assert (await other.client.get(f"/api/v1/t/{SAPPORO}/childcare/reports")).status_code == 404
    parent = await resident(new_client, ca, "保護者 三郎")
    bad = await parent.post("/me/childcare/apply", data={"csrf_token": csrf_of(parent), "residence": "どこでもない町",
                                                          "guardian_name": "保護者 三郎", "child1_birth": "きのう",
                                                          "form_token": uuid.uuid4().hex})
    assert bad.status_code == 422
    for words in ("お住まいの市区町村", "生年月日", "希望する施設", "保護者1の保育を必要とする事由"):
        assert words in bad.text, words
    assert 'value="保護者 三郎"' in bad.text
    assert (await parent.get("/me/childcare/HK000000-000000")).status_code == 404


async def test_the_facilitys_municipality_sets_an_outside_quota_that_the_allocation_keeps(
        staff, new_client, gbizid, ca) -> None:
    """広域利用: 函館市 offers one 1歳児 place of its facility to children of other municipalities;
    two 札幌市 children want it, one is placed, the other is told why, and publishing lowers
    both the places free and the outside quota."""
    operator = await business(new_client, gbizid, "社会福祉法人ひかり会 担当", OPERATOR)
    made = await _facilities(operator)
    hako = list(made.values())[2]
    page = f"/t/{HAKODATE}/childcare/facilities/{hako['id']}"
    api = f"/api/v1/t/{HAKODATE}/childcare/facilities/{hako['id']}"
    hakodate = await staff(HAKODATE, "admin", name="函館 次郎")
    viewer = await staff(HAKODATE, "viewer")
    sapporo = await staff(SAPPORO, "admin", name="札幌 太郎")

    # who may: anonymous, a viewer (reads, cannot set), another municipality (404 either way)
    assert (await new_client().get(api)).status_code == 401
    assert (await viewer.client.get(page)).status_code == 200
    assert "管外受入枠を変えられるのは" in (await viewer.client.get(page)).text
    refused = await viewer.client.post(page, data={"outside_quota_1": "0", "csrf_token": viewer.csrf})
    assert refused.status_code == 403
    assert (await viewer.client.put(f"{api}/outside-quota", json={"outside_quota": [None] * 6})).status_code == 403
    assert (await sapporo.client.get(page)).status_code == 404
    assert (await sapporo.client.get(f"/t/{SAPPORO}/childcare/facilities/{hako['id']}")).status_code == 404
    assert (await sapporo.client.put(f"/api/v1/t/{SAPPORO}/childcare/facilities/{hako['id']}/outside-quota",
                                     json={"outside_quota": [1] * 6})).status_code == 404

    # bad input: every wrong class named in Japanese, nothing saved
    bad = await hakodate.client.post(page, data={"outside_quota_0": "たくさん", "outside_quota_1": "7",
                                                 "csrf_token": hakodate.csrf})
    assert bad.status_code == 422
    assert "0歳児の管外受入枠は 0 から 6 までの整数で入力してください" in bad.text
    assert "1歳児の管外受入枠は 0 から 6 までの整数で入力してください" in bad.text and 'value="たくさん"' in bad.text
    assert not foreign_words(read(bad)[0])
    problem = await hakodate.client.put(f"{api}/outside-quota", json={"outside_quota": [None, -1, None, None, None, None]})
    assert problem.status_code == 422 and problem.headers["content-type"].startswith(PROBLEM)
    assert [e["field"] for e in problem.json()["errors"]] == ["outside_quota_1"]
    assert (await hakodate.client.get(api)).json()["outside_quota"] == [None] * 6

    saved = await hakodate.client.post(page, data={"outside_quota_1": "1", "csrf_token": hakodate.csrf})
    assert saved.status_code == 303
    shown = await hakodate.client.get(saved.headers["location"])
    assert "管外受入枠を保存しました" in shown.text and not foreign_words(read(shown)[0])
    assert (await hakodate.client.get(api)).json()["outside_quota"] == [None, 1, None, None, None, None]
    overview = await hakodate.client.get(f"/t/{HAKODATE}/childcare")
    assert f'href="{page}"' in overview.text
    search = await new_client().get("/childcare", params={"municipality": "函館市", "age": "1"})
    assert "ほかの市区町村にお住まいの方の受入枠: 1歳児 1人" in search.text

    # two 札幌市 children want the 函館市 facility's two free 1歳児 places: only one is offered to them
    await sapporo.client.post(f"/t/{SAPPORO}/childcare/rules/preset", data={"preset": "example_sum", "csrf_token": sapporo.csrf})
    receipts = []
    for name in ("保護者 一郎", "保護者 二郎"):
        parent = await resident(new_client, ca, name)
        sent = await parent.post("/me/childcare/apply", data=_apply_form(parent, [f"{HAKODATE}:{hako['id']}"], name=name))
        assert sent.status_code == 303, sent.text[:1000]
        receipts.append((parent, sent.headers["location"].rsplit("/", 1)[-1]))
    for mode in ("exact", "default"):
        run = await sapporo.client.post(f"/api/v1/t/{SAPPORO}/childcare/allocation", json={"rule_version": 1, "mode": mode})
        assert run.status_code == 201, run.text
        assert run.json()["summary"]["placed"] == 1 and run.json()["summary"]["blocking"] == 0, mode
    cutoff = next(c for c in run.json()["result"]["cutoffs"] if c["facility_id"] == hako["id"] and c["age_class"] == 1)
    assert (cutoff["capacity"], cutoff["placed"], cutoff["outside_quota"], cutoff["outside_placed"]) == (2, 1, 1, 1)
    number = run.json()["number"]
    # 函館市 closes the class to other municipalities after the trial: publishing it is refused,
    # nothing changes, and a new trial follows the new quota
    await hakodate.client.put(f"{api}/outside-quota", json={"outside_quota": [None, 0, None, None, None, None]})
    stale = await sapporo.client.post(f"/t/{SAPPORO}/childcare/allocation/{number}/publish",
                                      data={"csrf_token": sapporo.csrf, "confirm": "yes"})
    assert stale.status_code == 409 and "この試行のあとに減りました" in stale.text
    assert (await hakodate.client.get(api)).json()["vacancy"][1] == 2
    assert all(o["status"] == "submitted" for o in [(await p.get("/api/v1/me/childcare")).json()[0] for p, _ in receipts])
    closed = await sapporo.client.post(f"/api/v1/t/{SAPPORO}/childcare/allocation", json={"rule_version": 1})
    assert closed.json()["summary"]["placed"] == 0
    await hakodate.client.put(f"{api}/outside-quota", json={"outside_quota": [None, 1, None, None, None, None]})
    published = await sapporo.client.post(f"/api/v1/t/{SAPPORO}/childcare/allocation/{number}/publish", json={})
    assert published.status_code == 200
    outcomes = [(await parent.get("/api/v1/me/childcare")).json()[0] for parent, _ in receipts]
    assert sorted(o["status"] for o in outcomes) == ["placed", "waiting"]
    waiting = next(o for o in outcomes if o["status"] == "waiting")
    reasons = " ".join(next(iter(waiting["results"].values()))["reasons"])
    assert "管外からの受入枠に達しました" in reasons, reasons
    after = (await hakodate.client.get(api)).json()
    assert after["vacancy"][1] == 1 and after["outside_quota"][1] == 0


async def test_every_staff_route_of_childcare_answers_another_municipality_with_404(app, staff, session) -> None:
    """Walks every /t/{lg_code}/childcare route (page and JSON twin, every method) as 函館市's
    administrator against 札幌市's code, with the ids of rows 札幌市 really has, so a route added
    later is covered too; and 札幌市's own URLs with 函館市's ids answer 404 (not yours = missing)."""
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.context import as_tenant
    from kiban.modules.childcare.models import ChildcareApplication, ChildcareFacility
    from tests.factories import FACTORIES

    ids: dict[str, dict[str, str]] = {}
    for code in (SAPPORO, HAKODATE):
        async with as_tenant(session, await registry_service.tenant_for(session, code)):
            facility = await FACTORIES[ChildcareFacility](session, code, f"区域{code}")
            application = await FACTORIES[ChildcareApplication](session, code, f"R{uuid.uuid4().hex[:12]}")
            session.add_all([facility, application])
            await session.flush()
        ids[code] = {"facility_id": facility.id, "receipt_no": application.receipt_no, "number": "1"}
    hakodate = await staff(HAKODATE, "admin")
    sapporo = await staff(SAPPORO, "admin")
    from tests.core.test_route_permissions import api_routes

    routes = [r for r in api_routes(app) if r.path.startswith(("/t/{lg_code}/childcare", "/api/v1/t/{lg_code}/childcare"))
              and "/waiting" not in r.path]  # 待機児童 is open data, public by design
    assert len(routes) >= 25
    walked = 0
    for route in routes:
        for method in sorted(route.methods - {"HEAD"}):
            params = {"lg_code": SAPPORO, **ids[SAPPORO]}
            url = route.path.format(**{k: v for k, v in params.items() if "{" + k + "}" in route.path})
            body = {"json": {}} if url.startswith("/api/") else {"data": {"csrf_token": hakodate.csrf, "confirm": "yes"}}
            answer = await hakodate.client.request(method, url, **(body if method != "GET" else {}))
            assert answer.status_code == 404, (method, url, answer.status_code)
            walked += 1
    assert walked >= 28
    for url in (f"/t/{SAPPORO}/childcare/applications/{ids[HAKODATE]['receipt_no']}",
                f"/api/v1/t/{SAPPORO}/childcare/applications/{ids[HAKODATE]['receipt_no']}",
                f"/t/{SAPPORO}/childcare/facilities/{ids[HAKODATE]['facility_id']}",
                f"/api/v1/t/{SAPPORO}/childcare/facilities/{ids[HAKODATE]['facility_id']}"):
        assert (await sapporo.client.get(url)).status_code == 404, url
    assert (await sapporo.client.get(f"/t/{SAPPORO}/childcare/applications/{ids[SAPPORO]['receipt_no']}")).status_code == 200
