"""Issue #12 item 5 over HTTP: metered usage → fees. A municipality's own usage page (HTML, JSON,
CSV), the secretariat's usage page across its members for one shared system, and the
consortium allocation taking its 利用量割 basis from the metered counts, end to end: counted,
previewed, decided, shown with where the figures came from, summing exactly."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from kiban.core.audit.models import AuditEntry
from kiban.core.metering.service import count
from kiban.core.tenancy.context import unscoped
from kiban.modules.costs.models import FeeSchedule, FeeStatement
from tests.factories import AICHI, HAKODATE, ICHINOMIYA

TOYOTA = "232114"
NAGOYA = "231002"  # not a member of あいち電子自治体推進協議会
CONSORTIUM = f"/t/{AICHI}/consortia/aichi-e-gov"
SHINSEI = "aichi-e-shinsei"
APRIL = datetime(2025, 4, 15, 3, 0, tzinfo=UTC)
DUE_ON = (date.today() + timedelta(days=45)).isoformat()
METERED = {"service": SHINSEI, "amount": "1,000,000", "kind": "usage", "ratio": "1.5", "equal_percent": "30",
           "rest": "weighted", "subsidy_percent": "0", "prefecture_share": "", "fiscal_year": "2025",
           "usage_source": "metered", "usage_service": "", "usage_event": "submission", "usage_from": "2025-04",
           "usage_to": "2026-03"}


async def _usage(session) -> None:
    """In fiscal 2025, which nothing else writes to (browser tests meter what they submit now):
    一宮市 3 submissions and 2 bookings-notices in April 2025, 豊田市 7 submissions (one retried),
    名古屋市 (no member) 100, and counts outside the period or of other services that must not count."""
    for i in range(3):
        await count(session, ICHINOMIYA, SHINSEI, "submission", key=f"ichinomiya-{i}", at=APRIL)
    await count(session, ICHINOMIYA, SHINSEI, "submission", key="ichinomiya-0", at=APRIL)  # a retry
    await count(session, ICHINOMIYA, "kiban-notify", "email", quantity=2, at=APRIL)
    await count(session, TOYOTA, SHINSEI, "submission", quantity=6, at=APRIL)
    await count(session, TOYOTA, SHINSEI, "submission", key="toyota-x", at=datetime(2025, 9, 1, tzinfo=UTC))
    await count(session, TOYOTA, SHINSEI, "submission", quantity=50, at=datetime(2025, 3, 1, tzinfo=UTC))  # FY2024
    await count(session, NAGOYA, SHINSEI, "submission", quantity=100, at=APRIL)
    await session.commit()


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


# -- a municipality's own usage --------------------------------------------------------------------

async def test_a_municipality_sees_its_own_usage_by_month_service_and_event(staff, session) -> None:
    await _usage(session)
    viewer = await staff(ICHINOMIYA, "viewer")
    page = await viewer.client.get(f"/t/{ICHINOMIYA}/usage?from=2025-04&to=2025-04")
    assert page.status_code == 200, page.text
    assert "令和7年4月（2025年4月）" in page.text
    assert "電子申請・届出システム" in page.text and "申請（電子申請の受付）" in page.text
    assert "通知（メール・アプリ内通知）" in page.text and "メール送信" in page.text
    assert 'data-service="aichi-e-shinsei" data-event="submission"><td>電子申請・届出システム</td><td>申請（電子申請の受付）</td><td class="num">3</td>' in page.text
    assert ">100<" not in page.text and ">6<" not in page.text  # nobody else's counts

    api = await viewer.client.get(f"/api/v1/t/{ICHINOMIYA}/usage", params={"to": "2025-04", "months": 1})
    assert api.status_code == 200
    body = api.json()
    assert body["lg_code"] == ICHINOMIYA and body["month_from"] == "2025-04"
    assert {(m["service_id"], m["event"], m["count"]) for m in body["months"]} == {
        (SHINSEI, "submission", 3), ("kiban-notify", "email", 2)}
    csv_file = await viewer.client.get(body["csv_url"])
    assert csv_file.status_code == 200 and csv_file.headers["content-type"].startswith("text/csv")
    rows = _csv(csv_file)
    assert rows[0][:4] == ["月", "サービス", "利用の種類", "件数"]
    assert ["2025-04", "電子申請・届出システム", "申請（電子申請の受付）", "3", SHINSEI, "submission"] in rows


async def test_usage_period_errors_are_named_all_at_once_and_the_input_kept(staff) -> None:
    viewer = await staff(ICHINOMIYA, "viewer")
    page = await viewer.client.get(f"/t/{ICHINOMIYA}/usage?from=2026-13&to=そのうち")
    assert page.status_code == 422
    assert "開始月「2026-13」" in page.text and "終了月「そのうち」" in page.text and "2件の入力" in page.text
    assert 'value="2026-13"' in page.text
    backwards = await viewer.client.get(f"/t/{ICHINOMIYA}/usage?from=2027-01&to=2026-01")
    assert backwards.status_code == 422 and "開始月が終了月より後" in backwards.text
    # The API takes the last N months up to a month: whatever its schema admits is a valid period.
    for params in ({"to": "2026-13"}, {"to": "2026-4"}, {"months": 0}, {"months": 37}):
        api = await viewer.client.get(f"/api/v1/t/{ICHINOMIYA}/usage", params=params)
        assert api.status_code == 422 and api.headers["content-type"].startswith("application/problem+json"), params
    year = (await viewer.client.get(f"/api/v1/t/{ICHINOMIYA}/usage", params={"to": "2026-03", "months": 12})).json()
    assert (year["month_from"], year["month_to"]) == ("2025-04", "2026-03")


async def test_usage_needs_sign_in_and_is_never_another_municipalitys(staff, client) -> None:
    anonymous = await client.get(f"/api/v1/t/{ICHINOMIYA}/usage")
    assert anonymous.status_code == 401
    toyota = await staff(TOYOTA, "viewer")
    for url in (f"/t/{ICHINOMIYA}/usage", f"/t/{ICHINOMIYA}/usage.csv", f"/api/v1/t/{ICHINOMIYA}/usage"):
        assert (await toyota.client.get(url)).status_code == 404, url


# -- the secretariat's view across its members -------------------------------------------------------

async def test_the_secretariat_sees_its_members_usage_of_a_shared_system(staff, session) -> None:
    await _usage(session)
    aichi = await staff(AICHI, "admin")
    url = f"{CONSORTIUM}/systems/{SHINSEI}/metered-usage"
    page = await aichi.client.get(url, params={"from": "2025-04", "to": "2025-09"})
    assert page.status_code == 200, page.text
    assert f'<tr data-code="{ICHINOMIYA}"><th scope="row">一宮市</th><td>登録済み</td><td class="num">3</td>' in page.text
    assert f'<tr data-code="{TOYOTA}"><th scope="row">豊田市</th><td>登録済み</td><td class="num">7</td>' in page.text
    assert f'data-code="{NAGOYA}"' not in page.text  # not a member: never read
    assert "協議会の事務局は、その協議会が共同利用するシステムについてだけ" in page.text

    api = await aichi.client.get(f"/api/v1{CONSORTIUM}/systems/{SHINSEI}/metered-usage",
                                 params={"month": "2025-09", "months": 6})
    assert api.status_code == 200
    body = api.json()
    counts = {m["code"]: m["counts"] for m in body["members"]}
    assert len(counts) == 54 and NAGOYA not in counts
    assert counts[ICHINOMIYA] == {"submission": 3} and counts[TOYOTA] == {"submission": 7}
    assert body["totals"] == {"submission": 10}
    rows = _csv(await aichi.client.get(body["csv_url"]))
    assert [ICHINOMIYA, "一宮市", "はい", "申請（電子申請の受付）", "3", "2025-04", "2025-09", "submission"] in rows

    # Only the consortium's systems: notifications are not one of them, so 404 (as for any other id).
    for other in ("kiban-notify", "no-such-system"):
        assert (await aichi.client.get(f"{CONSORTIUM}/systems/{other}/metered-usage")).status_code == 404
        assert (await aichi.client.get(f"/api/v1{CONSORTIUM}/systems/{other}/metered-usage")).status_code == 404


async def test_a_member_cannot_read_the_consortiums_usage(staff) -> None:
    ichinomiya = await staff(ICHINOMIYA, "admin")
    for url in (f"/t/{ICHINOMIYA}/consortia/aichi-e-gov/systems/{SHINSEI}/metered-usage",
                f"/api/v1/t/{ICHINOMIYA}/consortia/aichi-e-gov/systems/{SHINSEI}/metered-usage",
                f"{CONSORTIUM}/systems/{SHINSEI}/metered-usage"):
        assert (await ichinomiya.client.get(url)).status_code == 404, url
    aichi_viewer = await staff(AICHI, "viewer")  # the secretariat's staff need the fee permission
    assert (await aichi_viewer.client.get(f"{CONSORTIUM}/systems/{SHINSEI}/metered-usage")).status_code == 403
    hakodate = await staff(HAKODATE, "admin")  # a secretariat of nothing
    assert (await hakodate.client.get(
        f"/t/{HAKODATE}/consortia/aichi-e-gov/systems/{SHINSEI}/metered-usage")).status_code == 404


# -- 利用量割 from metered usage, end to end -----------------------------------------------------------

async def test_the_secretariat_allocates_by_metered_usage_and_the_schedule_says_where_the_figures_came_from(
        staff, session) -> None:
    await _usage(session)
    aichi = await staff(AICHI, "admin")
    preview = await aichi.client.get(f"{CONSORTIUM}/allocate", params=METERED)
    assert preview.status_code == 200, preview.text
    assert 'id="usage-basis"' in preview.text
    assert "計測値: 電子申請・届出システムの「申請（電子申請の受付）」件数" in preview.text
    assert "令和7年4月（2025年4月）〜令和8年3月（2026年3月）" in preview.text and "合計 10" in preview.text
    assert "負担金の合計 1,000,000 円（54 団体）" in preview.text

    api = await aichi.client.get(f"/api/v1{CONSORTIUM}/allocation", params={**METERED, "amount": "1000000"})
    assert api.status_code == 200, api.text
    body = api.json()
    fees = {f["code"]: f["fee"] for f in body["fees"]}
    assert fees[ICHINOMIYA] == 300_000 and fees[TOYOTA] == 700_000  # 3 : 7; FY2024 and 名古屋市 not counted
    assert sum(fees.values()) == body["allocated"] == 1_000_000 and body["total"] == 1_000_000
    assert body["usage_basis"]["source"] == "metered" and body["usage_basis"]["units"][ICHINOMIYA] == 3
    assert body["usage_basis"]["month_from"] == "2025-04" and body["usage_basis"]["month_to"] == "2026-03"

    decided = await aichi.client.post(f"{CONSORTIUM}/schedules",
                                      data={**METERED, "due_on": DUE_ON, "csrf_token": aichi.csrf})
    assert decided.status_code == 303, decided.text
    schedule_page = await aichi.client.get(decided.headers["location"])
    assert "利用量の出典: 計測値" in schedule_page.text and "利用量は計測値（申請（電子申請の受付）" in schedule_page.text
    # The schedule this test decided (browser tests commit schedules of their own to the same
    # database, so nothing here may assume it is the only one).
    async with unscoped(session, "test: read the decided schedule"):
        schedule_id = decided.headers["location"].rstrip("/").rsplit("/", 1)[1]
        schedule = (await session.scalars(select(FeeSchedule).where(FeeSchedule.id == schedule_id))).one()
        statement = (await session.scalars(select(FeeStatement).where(
            FeeStatement.lg_code == ICHINOMIYA, FeeStatement.schedule_id == schedule.id))).one()
        entry = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "costs.schedule.decided",
                                                                AuditEntry.target_id == schedule.id))).one()
    assert schedule.method["usage_basis"]["units"][TOYOTA] == 7 and schedule.method["usage_source"] == "metered"
    assert sum(line["fee"] for line in schedule.lines) == 1_000_000
    assert statement.fee == 300_000 and "利用量 3" in statement.explanation and "計測値" in statement.method_label
    assert "計測値" in entry.details["method"]
    read = await aichi.client.get(f"/api/v1{CONSORTIUM}/schedules/{schedule.id}")
    assert read.json()["usage_basis"]["description"].startswith("計測値")

    # The member sees its own statement, saying the basis was metered.
    ichinomiya = await staff(ICHINOMIYA, "viewer")
    own = await ichinomiya.client.get(f"/api/v1/t/{ICHINOMIYA}/statements/{schedule.id}")
    assert own.status_code == 200 and own.json()["fee"] == 300_000 and "計測値" in own.json()["method_label"]


async def test_metered_usage_combines_with_an_equal_share_and_still_sums_exactly(staff, session) -> None:
    await _usage(session)
    aichi = await staff(AICHI, "admin")
    api = await aichi.client.get(f"/api/v1{CONSORTIUM}/allocation",
                                 params={**METERED, "amount": "1000003", "kind": "mixed", "rest": "usage",
                                         "equal_percent": "30", "subsidy_percent": "10"})
    assert api.status_code == 200, api.text
    body = api.json()
    assert sum(f["fee"] for f in body["fees"]) == body["allocated"] == body["total"]
    fees = {f["code"]: f["fee"] for f in body["fees"]}
    assert fees[TOYOTA] > fees[ICHINOMIYA] > fees["234273"] > 0  # 飛島村 pays only its equal share


async def test_hand_entered_usage_still_works_and_bad_metered_choices_are_explained(staff, session) -> None:
    await _usage(session)
    aichi = await staff(AICHI, "admin")
    entered = await aichi.client.get(f"{CONSORTIUM}/allocate", params={**METERED, "usage_source": "entered"})
    assert entered.status_code == 422 and "利用量が入力されていない団体があります" in entered.text

    nothing = await aichi.client.get(f"{CONSORTIUM}/allocate", params={**METERED, "usage_event": "booking"})
    assert nothing.status_code == 422 and "合計が0" in nothing.text  # nothing metered: no silent zero fees
    bad_month = await aichi.client.get(f"{CONSORTIUM}/allocate", params={**METERED, "usage_from": "来年"})
    assert bad_month.status_code == 422 and "計測値の開始月「来年」" in bad_month.text
    assert 'value="来年"' in bad_month.text  # the form keeps what was typed
    too_long = await aichi.client.get(f"{CONSORTIUM}/allocate", params={**METERED, "usage_from": "2020-01"})
    assert too_long.status_code == 422 and "36か月以内" in too_long.text
    not_shared = await aichi.client.get(f"/api/v1{CONSORTIUM}/allocation",
                                        params={**METERED, "amount": "1000000", "usage_service": "kiban-notify"})
    assert not_shared.status_code == 404
    assert not_shared.headers["content-type"].startswith("application/problem+json")

    # Hand entry, as before: 利用量を入力 for every user, then 利用量割 from the entered figures.
    users = (await aichi.client.get(f"/api/v1{CONSORTIUM}/systems/{SHINSEI}/usage",
                                    params={"fiscal_year": "2025"})).json()["members"]
    form = {f"units-{m['code']}": "1" for m in users}
    form[f"units-{ICHINOMIYA}"] = "5"
    saved = await aichi.client.post(f"{CONSORTIUM}/systems/{SHINSEI}/usage",
                                    data={**form, "fiscal_year": "2025", "csrf_token": aichi.csrf})
    assert saved.status_code == 303
    by_hand = await aichi.client.get(f"/api/v1{CONSORTIUM}/allocation",
                                     params={**METERED, "amount": "1000000", "usage_source": "entered"})
    assert by_hand.status_code == 200
    assert by_hand.json()["usage_basis"]["source"] == "entered"
    assert sum(f["fee"] for f in by_hand.json()["fees"]) == 1_000_000


# -- the pages speak Japanese and link only where the reader may go ----------------------------------

async def test_the_usage_pages_show_only_japanese_and_no_dead_links(staff, session) -> None:
    from tests.core.test_japanese_only import foreign_words, read

    await _usage(session)
    aichi = await staff(AICHI, "admin", name="愛知花子")
    ichinomiya = await staff(ICHINOMIYA, "viewer", name="一宮太郎")
    pages = [(ichinomiya, f"/t/{ICHINOMIYA}/usage?from=2025-04&to=2025-04"),
             (ichinomiya, f"/t/{ICHINOMIYA}/usage?from=2026-13"),
             (aichi, f"{CONSORTIUM}/systems/{SHINSEI}/metered-usage?from=2025-04&to=2025-04"),
             (aichi, f"{CONSORTIUM}/allocate?" + "&".join(f"{k}={v}" for k, v in METERED.items()))]
    for person, url in pages:
        response = await person.client.get(url)
        text, links = read(response)
        assert not foreign_words(text), (url, foreign_words(text))
        for link in links:
            if link.startswith("/t/") and "usage" in link:
                target = await person.client.get(link)
                assert target.status_code == 200, (url, link, target.status_code)
