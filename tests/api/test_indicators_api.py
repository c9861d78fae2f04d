"""調査によらない指標 over HTTP: the public page, its JSON twin and the CSV show the same
disclosure-controlled figures to anyone (no sign-in), and a wrong parameter is refused in Japanese
(a 422 page keeping the input; problem+json naming each field)."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from kiban.modules.indicators import service
from tests.factories import HAKODATE, SAPPORO
from tests.modules.test_indicators import AOMORI, HACHINOHE, HIROSAKI, _adopt, _clean, _service

PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def _fresh_counts():
    service.clear_cache()
    yield
    service.clear_cache()


async def _data(session) -> str:
    await _clean(session)
    std = await _service(session, "standard")
    for code in (SAPPORO, HAKODATE):
        await _adopt(session, code, std, since=date(2025, 4, 1))
    for code in (AOMORI, HIROSAKI, HACHINOHE):
        await _adopt(session, code, std, since=date(2025, 5, 1))
    return std


async def test_the_json_twin_hides_the_prefecture_with_two_bodies_and_publishes_the_one_with_three(session, client) -> None:
    await _data(session)
    response = await client.get("/api/v1/indicators")
    assert response.status_code == 200
    body = response.json()
    assert body["scope"] == "全国" and [i["key"] for i in body["indicators"]] == list(service.DEFINITIONS)
    adoptions = body["indicators"][0]
    assert adoptions["min_contributors"] == 3 and adoptions["area"]["columns"] == [{"key": "standard", "label": "標準化"}]
    rows = {r["key"]: r for r in adoptions["area"]["rows"]}
    assert rows["01"]["label"] == "北海道" and rows["01"]["cells"][0] == {"value": None, "contributors": None,
                                                                         "suppressed": True, "empty": False}
    # with two rows, 青森県 (3) or the total must be hidden too, or 北海道 = total − 青森県
    assert rows["02"]["cells"][0]["suppressed"] or adoptions["area"]["total"]["suppressed"]
    one = await client.get("/api/v1/indicators/adoptions", params={"lg_code": SAPPORO, "grain": "month"})
    assert one.status_code == 200 and one.json()["scope"] == "札幌市" and one.json()["series_by_area"] is None
    assert one.json()["csv_url"] == f"/indicators/adoptions.csv?lg_code={SAPPORO}&grain=month"


async def test_the_page_shows_the_same_tables_with_charts_and_the_csv_says_hidden(session, client) -> None:
    await _data(session)
    page = await client.get("/indicators", params={"prefecture": "010006"})
    assert page.status_code == 200
    text = page.text
    assert "調査によらない指標（北海道）" in text and "秘匿" in text and "札幌市" in text
    assert 'id="adoptions-area"' in text and 'id="adoptions-series"' in text
    national = await client.get("/indicators")
    assert national.status_code == 200 and "<svg" in national.text and "青森県" in national.text
    download = await client.get("/indicators/adoptions.csv")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert download.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0] == ["都道府県", "標準化", "計"]
    assert rows[1][:2] == ["北海道", "秘匿"] and rows[-1][0] == "計"
    series = await client.get("/indicators/adoptions.csv", params={"view": "series", "grain": "month"})
    rows = list(csv.reader(io.StringIO(series.content.decode("utf-8-sig"))))
    assert rows[0][0] == "期間" and [r[0] for r in rows[1:-1]] == ["2025年4月", "2025年5月"]


async def test_wrong_parameters_are_refused_in_japanese_with_every_field_named(client) -> None:
    response = await client.get("/api/v1/indicators", params={"prefecture": "011002", "lg_code": "1" * 40,
                                                             "grain": "week"})
    assert response.status_code == 422 and response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert {e["field"] for e in problem["errors"]} == {"prefecture", "lg_code", "grain"}
    assert all(not e["message"].isascii() for e in problem["errors"])
    missing = await client.get("/api/v1/indicators/nothing")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)
    page = await client.get("/indicators", params={"lg_code": "12345", "grain": "month"})
    assert page.status_code == 422
    assert "団体は地方公共団体の6桁の団体コード" in page.text and 'value="12345"' in page.text
    assert 'value="month" selected' in page.text
    bad_view = await client.get("/indicators/adoptions.csv", params={"view": "all"})
    assert bad_view.status_code == 422 and "表の種類" in bad_view.text
    assert (await client.get("/indicators/nothing.csv")).status_code == 404


async def test_the_openapi_document_declares_the_twin_with_its_parameters_and_problems(app) -> None:
    document = app.openapi()
    operation = document["paths"]["/api/v1/indicators"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"prefecture", "lg_code", "grain"}
    assert operation["security"] == []
    assert operation["responses"]["422"]["content"][PROBLEM]
    one = document["paths"]["/api/v1/indicators/{key}"]["get"]
    assert {"404", "422"} <= set(one["responses"])


async def test_the_pages_are_japanese_only_without_dead_links_and_say_kaku_over_demo_figures(session, new_client) -> None:
    from kiban.modules.catalog.demo import load_demo
    from tests.core.test_japanese_only import Walk, read

    public = new_client()
    assert "架空" not in read(await public.get("/indicators"))[0]
    await load_demo(session)
    service.clear_cache()
    walk = Walk()
    for path in ("/indicators", "/indicators?prefecture=230006", f"/indicators?lg_code={SAPPORO}&grain=month",
                 "/indicators?grain=month"):
        text = await walk.visit("public", public, path)
        assert "架空" in text, path
    await walk.visit("public", public, "/indicators?prefecture=x&grain=y", expect=422)
    assert not walk.problems, "\n".join(walk.problems)
    assert (await public.get("/api/v1/indicators")).json()["demo_note"]
