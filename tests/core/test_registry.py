"""The base registry through HTTP, as a clerk or another system would use it."""

from __future__ import annotations

import csv
from datetime import date

import pytest
from sqlalchemy import select

from kiban.core.registry import service
from kiban.core.registry.codes import check_digit, lg_code_problem, normalize_lg_code
from kiban.core.registry.models import Organization
from kiban.core.registry.seed import DATA_DIR, seed_registry
from kiban.kit.errors import InvalidInput

PROBLEM_JSON = "application/problem+json"


async def _all(client, **params) -> dict:
    response = await client.get("/api/v1/organizations", params={"limit": 2000, **params})
    assert response.status_code == 200, response.text
    return response.json()


async def test_registry_lists_1741_municipalities_and_47_prefectures(client) -> None:
    municipalities = await _all(client, type=["政令市", "特別区", "市", "町", "村"])
    prefectures = await _all(client, type="都道府県")
    assert municipalities["total"] == 1741
    assert prefectures["total"] == 47
    assert (await _all(client))["total"] == 1741 + 47 + 8 + 3  # plus the national bodies and the three associations


async def test_tokyo_has_62_municipalities_including_23_special_wards(client) -> None:
    tokyo = await _all(client, prefecture="13", type=["特別区", "市", "町", "村"])
    assert tokyo["total"] == 62
    assert sum(1 for o in tokyo["items"] if o["type"] == "特別区") == 23


async def test_municipal_census_populations_sum_to_the_2020_total(client) -> None:
    municipalities = await _all(client, type=["政令市", "特別区", "市", "町", "村"])
    assert sum(o["population"] for o in municipalities["items"]) == 126_146_099
    prefectures = await _all(client, type="都道府県")
    assert sum(o["population"] for o in prefectures["items"]) == 126_146_099


async def test_designated_cities_have_their_175_wards(client) -> None:
    wards = await _all(client, type="行政区")
    assert wards["total"] == 175
    sapporo = (await client.get("/api/v1/organizations/011002")).json()
    assert sapporo["type"] == "政令市"
    assert len(sapporo["children"]) == 10
    assert "札幌市中央区" in {w["name"] for w in sapporo["children"]}


async def test_national_bodies_are_registered(client) -> None:
    names = {o["name"] for o in (await _all(client, type="府省庁"))["items"]}
    assert {"デジタル庁", "総務省", "内閣府", "こども家庭庁", "厚生労働省", "文部科学省", "国土交通省"} <= names


@pytest.mark.parametrize("query", ["さっぽろ", "サッポロ", "ｻｯﾎﾟﾛ", "札幌", "さっぽろし", " さっぽろ ", "北海道札幌"])
async def test_search_by_name_or_reading_in_any_width_or_kana_finds_sapporo(client, query) -> None:
    found = await _all(client, q=query)
    assert "札幌市" in [o["name"] for o in found["items"]]


@pytest.mark.parametrize(("query", "first"), [
    ("なは", "那覇市"), ("ナハ", "那覇市"), ("那覇", "那覇市"),
    ("かなざわ", "金沢市"), ("金沢", "金沢市"),
    ("府中", "府中市"), ("いちのみやし", "一宮市"), ("札幌", "札幌市"),
])
async def test_whole_names_and_readings_come_before_names_that_merely_contain_them(client, query, first) -> None:
    items = (await _all(client, q=query))["items"]
    assert items[0]["name"] == first, [o["name"] for o in items[:5]]


async def test_prefix_matches_come_before_substring_matches(client) -> None:
    names = [o["name"] for o in (await _all(client, q="なか"))["items"]]
    starts = [i for i, n in enumerate(names) if n.startswith(("中", "那珂", "長"))]
    inside = names.index("田中町") if "田中町" in names else None
    assert starts and (inside is None or max(starts) < inside)


@pytest.mark.parametrize(("query", "name"), [
    ("檜原村", "檜原村"), ("桧原村", "檜原村"), ("ひのはら", "檜原村"),
    ("梼原町", "梼原町"), ("檮原町", "梼原町"),
    ("竜ヶ崎", "龍ケ崎市"), ("龍が崎", "龍ケ崎市"), ("竜ケ崎市", "龍ケ崎市"), ("りゅうがさき", "龍ケ崎市"),
    ("関が原", "関ケ原町"), ("六ケ所", "六ヶ所村"), ("鯵ヶ沢", "鰺ヶ沢町"), ("金澤", "金沢市"),
])
async def test_search_folds_kanji_variants_and_ke(client, query, name) -> None:
    items = (await _all(client, q=query))["items"]
    assert items and items[0]["name"] == name, [o["name"] for o in items[:5]]


@pytest.mark.parametrize("query", ["472018", "４７２０１８", "47201", "４７２０１", "47201-8"])
async def test_search_by_a_six_or_five_digit_code(client, query) -> None:
    items = (await _all(client, q=query))["items"]
    assert [o["code"] for o in items] == ["472018"]


async def test_search_by_the_start_of_a_code_lists_that_prefecture(client) -> None:
    items = (await _all(client, q="４７"))["items"]
    assert items and all(o["code"].startswith("47") for o in items)
    assert items[0]["name"] == "沖縄県"


@pytest.mark.parametrize(("query", "code"), [("札幌市中央区", "011011"), ("北海道札幌市中央区", "011011"),
                                            ("011011", "011011"), ("名古屋市中区", "231061")])
async def test_search_finds_wards_by_name_or_code(client, query, code) -> None:
    items = (await _all(client, q=query))["items"]
    assert items and items[0]["code"] == code


async def test_a_ward_name_lists_the_special_ward_first_then_the_wards(client) -> None:
    items = (await _all(client, q="中央区"))["items"]
    assert items[0]["name"] == "中央区" and items[0]["type"] == "特別区"
    assert {"札幌市中央区", "千葉市中央区"} <= {o["name"] for o in items}


async def test_an_explicit_sort_still_orders_the_whole_answer(client) -> None:
    items = (await _all(client, q="なは", sort="code"))["items"]
    assert [o["code"] for o in items] == sorted(o["code"] for o in items)


async def test_the_search_page_lists_naha_first_for_its_reading(client) -> None:
    page = (await client.get("/organizations", params={"q": "なは"})).text
    first_row = page.split("<tbody>", 1)[1].split("</tr>", 1)[0]
    assert "那覇市" in first_row and "472018" in first_row


async def test_the_search_page_explains_a_code_with_a_wrong_check_digit(client) -> None:
    page = (await client.get("/organizations", params={"q": "０１１００３"})).text
    assert "6桁目は 2 です" in page


@pytest.mark.parametrize(("typed", "code"), [("金沢市", "172014"), ("石川県金沢市", "172014"),
                                            ("かなざわし", "172014"), ("17201", "172014"),
                                            ("１７２０１", "172014"), ("札幌市中央区", "011011"),
                                            ("桧原村", "133078")])
async def test_a_detail_address_with_a_name_or_five_digits_opens_that_page(client, typed, code) -> None:
    response = await client.get(f"/organizations/{typed}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/organizations/{code}"


async def test_a_detail_address_with_an_ambiguous_name_lists_the_candidates(client) -> None:
    response = await client.get("/organizations/府中市")
    assert response.status_code == 422
    assert "府中市（東京都・132063）" in response.text and "府中市（広島県・342084）" in response.text


async def test_search_results_carry_the_documented_fields(client) -> None:
    item = (await _all(client, q="札幌市"))["items"][0]
    assert {"code", "name", "kana", "type", "prefecture", "population"} <= item.keys()
    assert item == item | {"code": "011002", "name": "札幌市", "kana": "サッポロシ", "type": "政令市",
                           "prefecture": "01", "population": 1_973_395}


async def test_filters_combine_and_sort_by_population(client) -> None:
    found = await _all(client, prefecture="01", type="村", sort="population_desc")
    assert found["total"] == 15
    populations = [o["population"] for o in found["items"]]
    assert populations == sorted(populations, reverse=True)
    largest = (await _all(client, sort="population_desc", type=["政令市", "特別区", "市", "町", "村"]))["items"][0]
    assert largest["name"] == "横浜市"


async def test_paging_with_limit_and_offset(client) -> None:
    first = (await client.get("/api/v1/organizations", params={"limit": 10, "offset": 0})).json()
    second = (await client.get("/api/v1/organizations", params={"limit": 10, "offset": 10})).json()
    assert len(first["items"]) == len(second["items"]) == 10
    assert not {o["code"] for o in first["items"]} & {o["code"] for o in second["items"]}
    assert first["total"] == second["total"]


@pytest.mark.parametrize(("code", "fragment"), [
    ("011003", "検査数字"),
    ("01100", "5桁"),
    ("0110022", "7桁"),
    ("01100a", "数字以外"),
    ("札幌市", "数字以外"),
])
async def test_malformed_codes_are_refused_with_a_japanese_reason(client, code, fragment) -> None:
    response = await client.get(f"/api/v1/organizations/{code}")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert fragment in body["detail"]
    assert body["status"] == 422 and body["errors"][0]["field"] == "code"


async def test_wrong_check_digit_message_names_the_right_digit(client) -> None:
    body = (await client.get("/api/v1/organizations/011003")).json()
    assert "6桁目は 2" in body["detail"]


async def test_full_width_digits_are_accepted(client) -> None:
    response = await client.get("/api/v1/organizations/０１１００２")
    assert response.status_code == 200
    assert response.json()["name"] == "札幌市"


async def test_unknown_but_well_formed_code_is_404_problem(client) -> None:
    code = "01999" + check_digit("01999")
    response = await client.get(f"/api/v1/organizations/{code}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert "登録されていません" in response.json()["detail"]


@pytest.mark.parametrize(("params", "field"), [
    ({"prefecture": "48"}, "prefecture"),
    ({"prefecture": "1"}, "prefecture"),
    ({"type": "県"}, "type"),
    ({"limit": 0}, "limit"),
    ({"limit": "abc"}, "limit"),
    ({"offset": -1}, "offset"),
])
async def test_bad_list_filters_are_422_problems_in_japanese(client, params, field) -> None:
    response = await client.get("/api/v1/organizations", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["errors"][0]["field"] == field
    assert not body["detail"].isascii()


def test_every_shipped_code_passes_the_check_digit() -> None:
    for name in ("lg_codes_kana.csv", "lg_population.csv", "designated_city_wards_population.csv",
                 "national_bodies.csv"):
        with (DATA_DIR / name).open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                assert lg_code_problem(row["code"]) is None, (name, row["code"])


def test_check_digit_rule_covers_remainders_zero_and_one() -> None:
    assert check_digit("01100") == "2"  # 札幌市 011002
    assert normalize_lg_code("131016") == "131016"  # 千代田区
    with pytest.raises(InvalidInput):
        normalize_lg_code("131017")


async def test_seeding_twice_changes_nothing(session) -> None:
    before = len((await session.scalars(select(Organization))).all())
    report = await seed_registry(session)
    assert (report.added, report.changed) == (0, 0)
    assert report.unchanged == before == 1974
    assert len((await session.scalars(select(Organization))).all()) == before


async def test_merge_keeps_history_and_a_retired_code_says_what_replaced_it(client, session) -> None:
    # 函館市 absorbing 北斗市 is fictional; it exercises the mechanism on real codes.
    await service.merge(session, "012360", "012025", date(2027, 4, 1), "編入")
    await session.commit()
    body = (await client.get("/api/v1/organizations/012360")).json()
    assert body["retired_on"] == "2027-04-01"
    assert body["successor_code"] == "012025"
    assert "函館市（012025）" in body["retirement"]["message"]
    assert "令和9年4月1日（2027年4月1日）" in body["retirement"]["message"]
    hakodate = (await client.get("/api/v1/organizations/012025")).json()
    assert [p["code"] for p in hakodate["predecessors"]] == ["012360"]
    listed = {o["code"] for o in (await _all(client, prefecture="01"))["items"]}
    assert "012360" not in listed
    with_retired = {o["code"] for o in (await _all(client, prefecture="01", include_retired=True))["items"]}
    assert "012360" in with_retired
    page = await client.get("/organizations/012360")
    assert "函館市" in page.text and "編入" in page.text
    # Seeding again does not undo the merge.
    await seed_registry(session)
    assert (await session.get(Organization, "012360")).retired_on == date(2027, 4, 1)


async def test_merge_into_itself_or_twice_is_refused(session) -> None:
    with pytest.raises(InvalidInput):
        await service.merge(session, "012025", "012025", date(2027, 4, 1))
    await service.merge(session, "012360", "012025", date(2027, 4, 1))
    with pytest.raises(Exception, match="すでに"):
        await service.merge(session, "012360", "011002", date(2028, 4, 1))


async def test_openapi_is_served_with_browsable_docs(client) -> None:
    spec = (await client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/organizations" in spec["paths"]
    assert "/api/v1/organizations/{code}" in spec["paths"]
    docs = await client.get("/api/v1/docs")
    assert docs.status_code == 200 and "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert (await client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")).status_code == 200


async def test_a_process_holding_the_registry_in_memory_sees_a_merge_recorded_elsewhere(client, session) -> None:
    before = {o["code"] for o in (await _all(client, prefecture="01"))["items"]}
    assert "012360" in before
    await service.merge(session, "012360", "012025", date(2027, 4, 1))  # e.g. from the CLI
    await session.commit()
    after = {o["code"] for o in (await _all(client, prefecture="01"))["items"]}
    assert before - after == {"012360"}


async def test_unknown_sort_is_refused(client) -> None:
    response = await client.get("/api/v1/organizations", params={"sort": "name; drop table"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "sort"
