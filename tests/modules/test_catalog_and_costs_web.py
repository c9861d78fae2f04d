"""Issue #4 over HTTP: the seeded catalog and consortia, adoptions and who may see them, the
Aichi allocation from the secretariat's screen to each member's statement (PDF and CSV), the
simulator, cost visibility with small-group suppression, and the calculator API's errors."""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import date, timedelta

from pypdf import PdfReader
from sqlalchemy import func, select

from kiban.core.registry.models import Organization
from kiban.modules.catalog.models import (
    Adoption,
    CatalogService,
    ConsortiumMember,
    ConsortiumSystem,
)
from kiban.modules.costs.models import FeeSchedule, FeeStatement
from kiban.core.tenancy.context import unscoped
from kiban.kit import wareki
from tests.conftest import csrf_of
from tests.factories import AICHI, DIGITAL_AGENCY, HAKODATE, ICHINOMIYA, SAPPORO

NAGOYA = "231002"
TOYOTA = "232114"
TOBISHIMA = "234273"  # 飛島村, the smallest Aichi municipality


# -- seed ------------------------------------------------------------------------------------------

async def test_catalog_is_seeded_from_the_policy_documents(session) -> None:
    names = set((await session.scalars(select(CatalogService.name))).all())
    for expected in ("ワクチン接種記録システム（VRS）", "給付SaaS", "窓口DXSaaS", "広域被災者データベース",
                     "保活情報連携基盤", "GビズID", "ベース・レジストリ", "ガバメントクラウド", "AI-OCR",
                     "電子調達（CALS/EC）システム", "標準準拠システム（住民基本台帳）", "標準準拠システム（子ども・子育て支援）"):
        assert expected in names
    standard = await session.scalar(select(func.count()).select_from(CatalogService)
                                    .where(CatalogService.pattern == "standard"))
    assert standard == 20


async def test_aichi_consortium_is_the_prefecture_and_53_municipalities_without_nagoya(session) -> None:
    members = set((await session.scalars(select(ConsortiumMember.member_code)
                                         .where(ConsortiumMember.consortium_id == "aichi-e-gov"))).all())
    assert len(members) == 54
    assert AICHI in members and ICHINOMIYA in members and NAGOYA not in members
    published = dict((await session.execute(select(ConsortiumSystem.service_id, ConsortiumSystem.published_users)
                                            .where(ConsortiumSystem.consortium_id == "aichi-e-gov"))).all())
    assert published == {"aichi-e-shinsei": 54, "aichi-cals-ec": 54, "aichi-buppin": 54,
                         "aichi-shisetsu-yoyaku": 28, "aichi-ai-chatbot": 33, "aichi-ai-ocr": 47}
    robotics = await session.scalar(select(func.count()).select_from(ConsortiumMember)
                                    .where(ConsortiumMember.consortium_id == "aichi-ai-robotics"))
    assert robotics == 55


# -- public pages and API --------------------------------------------------------------------------------

async def test_public_catalog_pages(client) -> None:
    page = await client.get("/catalog")
    assert page.status_code == 200
    assert "窓口DXSaaS" in page.text and "共通化B" in page.text and "デジタル公共インフラ（DPI）" in page.text
    only_b = await client.get("/catalog", params={"pattern": "common_b"})
    assert "窓口DXSaaS" in only_b.text and "ワクチン接種記録システム" not in only_b.text
    bad = await client.get("/catalog", params={"pattern": "nonsense"})
    assert bad.status_code == 422 and "絞り込みの条件が正しくありません" in bad.text
    detail = await client.get("/catalog/vrs")
    assert "国がシステムを所有" in detail.text and "出典" in detail.text
    assert (await client.get("/catalog/no-such-service")).status_code == 404
    consortium = await client.get("/consortia/aichi-e-gov")
    assert "あいち電子自治体推進協議会" in consortium.text and "一宮市" in consortium.text and ">名古屋市<" not in consortium.text and ">北名古屋市<" in consortium.text


async def test_catalog_api(client) -> None:
    services = (await client.get("/api/v1/catalog/services")).json()
    madoguchi = next(s for s in services if s["id"] == "madoguchi-dx-saas")
    assert madoguchi["pattern_label"] == "共通化B" and madoguchi["burden_label"] == "共通SaaS"
    assert "利用料等を負担することが原則" in madoguchi["burden_rule"]
    missing = await client.get("/api/v1/catalog/services/none")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")


# -- adoptions: own tenant only ----------------------------------------------------------------------------

def _adoption_form(client, **values) -> dict:
    form = {"status": "in_use", "since": "2025-04-01", "renewal_on": "2027-03-31",
            "replaced_annual_cost": "12,000,000", "annual_cost": "8000000", "note": "", "expected_version": "0",
            "csrf_token": csrf_of(client)}
    form.update(values)
    return form


async def test_a_municipality_records_its_adoption_and_nobody_else_sees_the_costs(staff, session) -> None:
    ichinomiya = await staff(ICHINOMIYA, "staff")
    saved = await ichinomiya.client.post(f"/t/{ICHINOMIYA}/adoptions/madoguchi-dx-saas", data=_adoption_form(ichinomiya.client))
    assert saved.status_code == 303
    page = await ichinomiya.client.get(f"/t/{ICHINOMIYA}/adoptions")
    assert "窓口DXSaaS" in page.text and "12,000,000" in page.text and "移行計画" in page.text
    own_api = await ichinomiya.client.get(f"/api/v1/t/{ICHINOMIYA}/adoptions")
    assert own_api.json()[0]["replaced_annual_cost"] == 12_000_000

    hakodate = await staff(HAKODATE, "admin")
    for path in (f"/t/{ICHINOMIYA}/adoptions", f"/t/{ICHINOMIYA}/adoptions/madoguchi-dx-saas",
                 f"/api/v1/t/{ICHINOMIYA}/adoptions"):
        response = await hakodate.client.get(path)
        assert response.status_code == 404, path
        assert "12,000,000" not in response.text and "12000000" not in response.text
    forged = await hakodate.client.post(f"/t/{ICHINOMIYA}/adoptions/madoguchi-dx-saas",
                                        data=_adoption_form(hakodate.client, annual_cost="1"))
    assert forged.status_code == 404
    async with unscoped(session, "test: check nothing changed"):
        rows = (await session.scalars(select(Adoption).where(Adoption.service_id == "madoguchi-dx-saas"))).all()
    assert [(a.lg_code, a.annual_cost) for a in rows] == [(ICHINOMIYA, 8_000_000)]


async def test_bad_adoption_input_is_refused_in_japanese_and_changes_nothing(staff, session) -> None:
    ichinomiya = await staff(ICHINOMIYA, "staff")
    cases = [({"annual_cost": "たくさん"}, "円単位の整数"), ({"annual_cost": "-5"}, "円単位の整数"),
             ({"since": "2026-04-01", "renewal_on": "2025-03-31"}, "更改時期が利用開始日より前"),
             ({"renewal_on": "2026-13-01"}, "日付（例: 2026-04-01）"), ({"status": "maybe"}, "状況は")]
    for values, message in cases:
        response = await ichinomiya.client.post(f"/t/{ICHINOMIYA}/adoptions/vrs", data=_adoption_form(ichinomiya.client, **values))
        assert response.status_code == 422, values
        assert message in response.text, values
    async with unscoped(session, "test: nothing was stored"):
        assert await session.scalar(select(func.count()).select_from(Adoption)) == 0
    viewer = await staff(ICHINOMIYA, "viewer")
    refused = await viewer.client.post(f"/t/{ICHINOMIYA}/adoptions/vrs", data=_adoption_form(viewer.client))
    assert refused.status_code == 403


async def test_a_stale_edit_is_refused(staff) -> None:
    a = await staff(ICHINOMIYA, "staff")
    await a.client.post(f"/t/{ICHINOMIYA}/adoptions/vrs", data=_adoption_form(a.client))
    first = await a.client.post(f"/t/{ICHINOMIYA}/adoptions/vrs", data=_adoption_form(a.client, expected_version="1", note="一回目"))
    assert first.status_code == 303
    stale = await a.client.post(f"/t/{ICHINOMIYA}/adoptions/vrs", data=_adoption_form(a.client, expected_version="1", note="古い画面から"))
    assert stale.status_code == 409 and "先にこの利用状況を更新しました" in stale.text


async def test_cost_visibility_shows_only_sums_over_three_or_more(staff, client) -> None:
    for i, code in enumerate((SAPPORO, HAKODATE)):
        person = await staff(code, "staff")
        await person.client.post(f"/t/{code}/adoptions/std-01", data=_adoption_form(
            person.client, replaced_annual_cost=str(10_000_003 + i), annual_cost=str(6_000_000 + i)))
    page = await client.get("/costs")
    assert "10,000,003" not in page.text and "3団体未満のため非表示" in page.text
    third = await staff(ICHINOMIYA, "staff")
    await third.client.post(f"/t/{ICHINOMIYA}/adoptions/std-01", data=_adoption_form(
        third.client, replaced_annual_cost="10000000", annual_cost="7000000"))
    page = await client.get("/costs")
    assert "30,000,007" in page.text  # 個別システムの合計 over the three
    assert "19,000,001" in page.text  # their current costs (no common cost published for std-01)
    assert re.search(r"36\.7% 削減", page.text)  # national 3割 figure: (30,000,007 − 19,000,001) / 30,000,007
    assert "<svg" in page.text
    own = await third.client.get(f"/t/{ICHINOMIYA}/adoptions")
    assert "30.0% 削減" in own.text and "目標達成" in own.text


# -- the Aichi example: secretariat allocates, members receive statements ---------------------------------

ALLOCATE = {"service": "aichi-e-shinsei", "amount": "123,456,789", "kind": "weighted", "ratio": "1.5",
            "equal_percent": "30", "rest": "weighted", "subsidy_percent": "0", "fiscal_year": "2026"}
DUE_ON = date.today() + timedelta(days=60)


async def test_aichi_allocation_from_the_secretariat_screen_to_member_statements(staff, session) -> None:
    aichi = await staff(AICHI, "admin")
    screen = await aichi.client.get(f"/t/{AICHI}/consortia/aichi-e-gov")
    assert screen.status_code == 200 and "電子申請・届出システム" in screen.text
    preview = await aichi.client.get(f"/t/{AICHI}/consortia/aichi-e-gov/allocate", params=ALLOCATE)
    assert preview.status_code == 200
    table = preview.text[preview.text.index('id="allocation-table"'):]
    fees = [int(x.replace(",", "")) for x in re.findall(r'<td class="num">([\d,]+)</td><td>人口', table)]
    assert len(fees) == 54 and sum(fees) == 123_456_789
    assert "負担金の合計 123,456,789 円（54 団体） — 負担する額と一致" in preview.text
    assert re.search(r"人口 [\d,]+ 人 → 重み [\d,.]+ → 総額の \d+\.\d\d%", table)
    async with unscoped(session, "test"):
        assert await session.scalar(select(func.count()).select_from(FeeSchedule)) == 0  # a preview saves nothing

    decided = await aichi.client.post(f"/t/{AICHI}/consortia/aichi-e-gov/schedules",
                                      data={**ALLOCATE, "due_on": DUE_ON.isoformat(), "csrf_token": aichi.csrf})
    assert decided.status_code == 303
    schedule_url = decided.headers["location"]
    schedule_id = schedule_url.rsplit("/", 1)[1]
    listing = await aichi.client.get(schedule_url)
    assert "123,456,789" in listing.text

    # 人口按分+重み係数: a member twice as large pays 1.5 times as much (within a yen of rounding).
    pops = dict((await session.execute(select(Organization.code, Organization.population)
                                       .where(Organization.code.in_([ICHINOMIYA, TOYOTA, TOBISHIMA])))).all())
    schedule = await _schedule(session, schedule_id)
    fee = {line["code"]: line["fee"] for line in schedule.lines}
    expected_ratio = (pops[TOYOTA] / pops[TOBISHIMA]) ** math.log2(1.5)
    assert abs(fee[TOYOTA] / fee[TOBISHIMA] - expected_ratio) < 1e-3

    # The secretariat downloads the whole table as CSV for Excel.
    whole = await aichi.client.get(f"{schedule_url}.csv")
    assert whole.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(whole.content.decode("utf-8-sig"))))
    assert rows[-1][0] == "合計" and int(rows[-1][3]) == 123_456_789

    # 一宮市 reads its own statement, as PDF and CSV.
    ichinomiya = await staff(ICHINOMIYA, "viewer")
    mine = await ichinomiya.client.get(f"/t/{ICHINOMIYA}/statements")
    assert "電子申請・届出システム" in mine.text and f"{fee[ICHINOMIYA]:,}" in mine.text
    pdf = await ichinomiya.client.get(f"/t/{ICHINOMIYA}/statements/{schedule_id}.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert "負担金算定書" in text and "一宮市" in text and f"{fee[ICHINOMIYA]:,} 円" in text
    assert "人口按分+重み係数" in text and "令和8年度" in text
    assert f"文書番号 2026-001-{ICHINOMIYA}" in text and "発行日 令和" in text
    assert "あいち電子自治体推進協議会 事務局（愛知県）" in text
    assert f"納付期限 {wareki.wareki_with_seireki(DUE_ON)}" in text
    statement_csv = await ichinomiya.client.get(f"/t/{ICHINOMIYA}/statements/{schedule_id}.csv")
    assert statement_csv.content.startswith(b"\xef\xbb\xbf")
    values = dict(row for row in csv.reader(io.StringIO(statement_csv.content.decode("utf-8-sig"))) if len(row) == 2)
    assert values["団体名"] == "一宮市" and int(values["負担金額（円・数値）"]) == fee[ICHINOMIYA]
    assert "attachment" in statement_csv.headers["content-disposition"]

    # The secretariat's copy of 一宮市's statement is the same document.
    copy = await aichi.client.get(f"{schedule_url}/members/{ICHINOMIYA}.csv")
    assert copy.content.decode("utf-8-sig").split("交付日時")[0] == statement_csv.content.decode("utf-8-sig").split("交付日時")[0]

    # Nobody else: another member, a non-member, a member pretending to be the secretariat.
    toyota = await staff(TOYOTA, "admin")
    assert (await toyota.client.get(f"/t/{ICHINOMIYA}/statements/{schedule_id}.pdf")).status_code == 404
    hakodate = await staff(HAKODATE, "admin")
    assert (await hakodate.client.get(f"/t/{HAKODATE}/statements/{schedule_id}.pdf")).status_code == 404
    assert (await ichinomiya.client.get(f"/t/{AICHI}/consortia/aichi-e-gov")).status_code == 404
    assert (await ichinomiya.client.get(f"/t/{ICHINOMIYA}/consortia/aichi-e-gov")).status_code in (403, 404)
    async with unscoped(session, "test"):
        assert await session.scalar(select(func.count()).select_from(FeeStatement)) == 54


async def _schedule(session, schedule_id: str) -> FeeSchedule:
    async with unscoped(session, "test"):
        return await session.scalar(select(FeeSchedule).where(FeeSchedule.id == schedule_id))


async def test_allocation_input_errors_are_explained(staff, session) -> None:
    aichi = await staff(AICHI, "admin")
    cases = [({"amount": "-1"}, "円単位の整数"), ({"amount": ""}, "総経費（円）を入力"),
             ({"ratio": "0"}, "重み係数 r は0より大きい"), ({"kind": "mixed", "equal_percent": "120"}, "0%〜100%"),
             ({"subsidy_percent": "100"}, "0%以上100%未満"), ({"service": "aichi-ai-ocr"}, "利用する構成団体がまだ登録されていません"),
             ({"service": "vrs"}, "共同利用していません")]
    for values, message in cases:
        response = await aichi.client.get(f"/t/{AICHI}/consortia/aichi-e-gov/allocate", params={**ALLOCATE, **values})
        assert response.status_code in (404, 422), values
        assert message in response.text, values
    refused = await aichi.client.post(f"/t/{AICHI}/consortia/aichi-e-gov/schedules",
                                      data={**ALLOCATE, "ratio": "-2", "csrf_token": aichi.csrf})
    assert refused.status_code == 422
    async with unscoped(session, "test"):
        assert await session.scalar(select(func.count()).select_from(FeeStatement)) == 0


async def test_secretariat_records_which_members_use_a_system(staff) -> None:
    aichi = await staff(AICHI, "admin")
    users = [ICHINOMIYA, TOYOTA, TOBISHIMA]
    saved = await aichi.client.post(f"/t/{AICHI}/consortia/aichi-e-gov/systems/aichi-ai-ocr/users",
                                    data={"members": users, "csrf_token": aichi.csrf})
    assert saved.status_code == 303
    preview = await aichi.client.get(f"/t/{AICHI}/consortia/aichi-e-gov/allocate",
                                     params={**ALLOCATE, "service": "aichi-ai-ocr", "amount": "1000000", "kind": "equal"})
    assert "負担金の合計 1,000,000 円（3 団体）" in preview.text
    outsider = await aichi.client.post(f"/t/{AICHI}/consortia/aichi-e-gov/systems/aichi-ai-ocr/users",
                                       data={"members": [NAGOYA], "csrf_token": aichi.csrf})
    assert outsider.status_code == 422 and "構成団体ではない団体" in outsider.text


# -- simulator ---------------------------------------------------------------------------------------------

async def test_simulator_shows_the_fee_falling_as_others_join(client) -> None:
    base = {"service": "madoguchi-dx-saas", "amount": "100000000"}
    alone = await client.get(f"/t/{ICHINOMIYA}/simulator", params={**base, "extra": "0"})
    many = await client.get(f"/t/{ICHINOMIYA}/simulator", params={**base, "extra": "50"})
    assert alone.status_code == many.status_code == 200

    def fee(page, method):
        return int(re.search(rf'data-method="{method}">([\d,]+) 円', page.text).group(1).replace(",", ""))

    assert fee(alone, "equal") == 100_000_000  # the only adopter pays everything
    for method in ("equal", "population", "weighted"):
        assert fee(many, method) < fee(alone, method)
    assert abs(fee(many, "equal") - 100_000_000 / 51) < 1  # equal shares, the indivisible yen aside
    assert "あと 50 団体が参加すると" in many.text and "<svg" in many.text
    bad = await client.get(f"/t/{ICHINOMIYA}/simulator", params={**base, "extra": "たくさん"})
    assert bad.status_code == 422 and "0以上の整数" in bad.text
    unpublished = await client.get(f"/t/{ICHINOMIYA}/simulator", params={"service": "madoguchi-dx-saas", "extra": "3"})
    assert unpublished.status_code == 422 and "年間総経費は公表されていません" in unpublished.text


# -- デジタル庁 edits the catalog -----------------------------------------------------------------------------

async def test_only_the_platform_operator_edits_the_catalog(staff, session) -> None:
    digital = await staff(DIGITAL_AGENCY, "admin")
    page = await digital.client.get(f"/t/{DIGITAL_AGENCY}/catalog/madoguchi-dx-saas/edit")
    assert page.status_code == 200
    saved = await digital.client.post(f"/t/{DIGITAL_AGENCY}/catalog/madoguchi-dx-saas/edit", data={
        "lifecycle": "national", "description": "全国展開", "annual_cost": "5,000,000,000", "owner": "事業者",
        "expected_version": "1", "csrf_token": digital.csrf})
    assert saved.status_code == 303
    item = await session.get(CatalogService, "madoguchi-dx-saas")
    await session.refresh(item)
    assert (item.lifecycle, item.annual_cost, item.version) == ("national", 5_000_000_000, 2)
    vendor = await digital.client.post(f"/t/{DIGITAL_AGENCY}/catalog/madoguchi-dx-saas/vendors",
                                       data={"name": "事業者A", "csrf_token": digital.csrf})
    assert vendor.status_code == 303
    assert "事業者A" in (await digital.client.get("/catalog/madoguchi-dx-saas")).text
    wrong = await digital.client.post(f"/t/{DIGITAL_AGENCY}/catalog/vrs/vendors",
                                      data={"name": "事業者B", "csrf_token": digital.csrf})
    assert wrong.status_code == 422 and "共通化B" in wrong.text

    sapporo = await staff(SAPPORO, "admin")
    assert (await sapporo.client.get(f"/t/{SAPPORO}/catalog/vrs/edit")).status_code == 404
    assert (await sapporo.client.get(f"/t/{DIGITAL_AGENCY}/catalog/vrs/edit")).status_code == 404


# -- the calculator API ---------------------------------------------------------------------------------------

async def test_allocation_api_answers_and_refuses_in_japanese(client) -> None:
    members = [{"code": "a", "name": "大市", "population": 200_000}, {"code": "b", "name": "小町", "population": 100_000}]
    ok = await client.post("/api/v1/costs/allocations", json={"amount": 2_500_000, "members": members,
                                                                "method": {"kind": "weighted", "ratio": "1.5"}})
    assert ok.status_code == 200
    assert [f["fee"] for f in ok.json()["fees"]] == [1_500_000, 1_000_000]
    cases = [({"amount": -1, "members": members}, None),
             ({"amount": 100, "members": []}, "1つ以上"),
             ({"amount": 100, "members": [{"code": "x", "name": "人口なし町"}]}, "人口がありません"),
             ({"amount": 100, "members": members, "method": {"kind": "weighted", "ratio": 0}}, "重み係数"),
             ({"amount": 100, "members": members, "method": {"kind": "mixed", "equal_percent": 150}}, "割合"),
             ({"amount": 1.5, "members": members}, None)]
    for body, message in cases:
        response = await client.post("/api/v1/costs/allocations", json=body)
        assert response.status_code == 422, body
        assert response.headers["content-type"].startswith("application/problem+json")
        if message:
            assert message in response.json()["detail"], body


async def test_demo_data_is_idempotent_and_fills_the_cost_pages(session, client) -> None:
    from kiban.modules.catalog.demo import DEMO_NOTE, load_demo
    from kiban.modules.catalog.models import ConsortiumSystemUser

    added = await load_demo(session)
    assert added > 100
    assert await load_demo(session) == 0
    await session.commit()
    async with unscoped(session, "test"):
        notes = set((await session.scalars(select(Adoption.note))).all())
    assert notes == {DEMO_NOTE}
    users = dict((await session.execute(select(ConsortiumSystemUser.service_id, func.count())
                                        .group_by(ConsortiumSystemUser.service_id))).all())
    assert users["aichi-shisetsu-yoyaku"] == 28 and users["aichi-ai-chatbot"] == 33 and users["aichi-ai-ocr"] == 47
    page = await client.get("/costs")
    assert "3団体未満" not in page.text.split("サービスごとの比較")[1].split("窓口DXSaaS")[1].split("</tr>")[0]


async def test_adoption_api_writes_with_versions_and_refuses_bad_input(staff) -> None:
    ichinomiya = await staff(ICHINOMIYA, "staff")
    url = f"/api/v1/t/{ICHINOMIYA}/adoptions/gov-cloud"
    created = await ichinomiya.client.put(url, json={"status": "in_use", "renewal_on": "2028-03-31",
                                                     "replaced_annual_cost": 5_000_000, "annual_cost": 3_000_000})
    assert created.status_code == 200 and created.json()["version"] == 1
    stale = await ichinomiya.client.put(url, json={"status": "ended", "expected_version": 0})
    assert stale.status_code == 409 and stale.headers["content-type"].startswith("application/problem+json")
    bad = await ichinomiya.client.put(url, json={"status": "in_use", "annual_cost": -1, "expected_version": 1})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    backwards = await ichinomiya.client.put(url, json={"status": "in_use", "since": "2029-01-01",
                                                       "renewal_on": "2028-03-31", "expected_version": 1})
    assert backwards.status_code == 422 and "更改時期が利用開始日より前" in backwards.json()["detail"]
    listed = await ichinomiya.client.get(f"/api/v1/t/{ICHINOMIYA}/adoptions")
    assert [(a["service_id"], a["status"], a["version"]) for a in listed.json()] == [("gov-cloud", "in_use", 1)]
