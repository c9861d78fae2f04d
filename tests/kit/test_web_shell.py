"""The shell every page shares: Japanese, accessible basics, friendly errors, health."""

from __future__ import annotations

import re


async def test_top_page_explains_the_platform_and_links_to_what_exists(client) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert '<html lang="ja">' in page.text
    assert "1,741" in page.text and "47" in page.text
    for link in ('href="/organizations"', 'href="/api/v1/docs"', 'href="/t/011002/settings"'):
        assert link in page.text
    assert "/static/vendor/design-tokens/tokens.css" in page.text
    assert "本文へ移動" in page.text  # skip link


async def test_design_tokens_are_vendored_with_their_licence(client) -> None:
    css = await client.get("/static/vendor/design-tokens/tokens.css")
    assert css.status_code == 200 and "--color-primitive-blue-900" in css.text
    licence = await client.get("/static/vendor/design-tokens/LICENSE")
    assert "デジタル庁" in licence.text


async def test_search_form_fields_have_labels(client) -> None:
    page = (await client.get("/organizations")).text
    for field_id in re.findall(r'<(?:input|select)[^>]*\bid="([^"]+)"', page):
        assert f'for="{field_id}"' in page, f"#{field_id} has no label"


async def test_htmx_search_returns_only_the_results_fragment(client) -> None:
    response = await client.get("/organizations", params={"q": "ｻｯﾎﾟﾛ"},
                                headers={"HX-Request": "true", "HX-Target": "results"})
    assert response.status_code == 200
    assert "<html" not in response.text
    assert "札幌市" in response.text


async def test_list_page_shows_a_japanese_error_for_a_bad_filter(client) -> None:
    response = await client.get("/organizations", params={"prefecture": "99"})
    assert response.status_code == 422
    assert "都道府県番号「99」が正しくありません" in response.text


async def test_unknown_page_is_a_friendly_japanese_404(client) -> None:
    response = await client.get("/no/such/page")
    assert response.status_code == 404
    assert "ページが見つかりません" in response.text
    assert response.headers["content-type"].startswith("text/html")


async def test_unknown_api_route_is_a_problem_json_404(client) -> None:
    response = await client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 404


async def test_detail_page_shows_population_households_area_and_wards(client) -> None:
    page = (await client.get("/organizations/011002")).text
    for text in ("1,973,395", "969,161", "1,121.26", "政令市", "北海道", "札幌市中央区"):
        assert text in page


async def test_detail_page_for_a_bad_code_explains_in_japanese(client) -> None:
    response = await client.get("/organizations/011003")
    assert response.status_code == 422
    assert "検査数字" in response.text and "<html" in response.text


async def test_health_and_readiness(client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = (await client.get("/readyz")).json()
    assert ready["status"] == "ok" and ready["revision"]


async def test_every_response_carries_a_request_id(client) -> None:
    response = await client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc12345-trace"})
    assert echoed.headers["x-request-id"] == "abc12345-trace"
    problem = (await client.get("/api/v1/organizations/011003", headers={"X-Request-ID": "abc12345-trace"})).json()
    assert problem["request_id"] == "abc12345-trace"


async def test_access_log_lines_carry_the_request_id(client, caplog) -> None:
    import logging

    from kiban.kit.requestid import RequestIdLogFilter

    caplog.handler.addFilter(RequestIdLogFilter())
    with caplog.at_level(logging.INFO, logger="kiban.access"):
        await client.get("/healthz", headers={"X-Request-ID": "trace-0001-abc"})
    records = [r for r in caplog.records if r.name == "kiban.access"]
    assert records and records[-1].request_id == "trace-0001-abc"
    assert "GET /healthz 200" in records[-1].getMessage()
