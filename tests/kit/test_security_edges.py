"""Headers every response carries and the body limit every request meets (issue #10: 3, 5)."""

from __future__ import annotations

import re

import httpx

from kiban.kit.security import BODY_LIMITS, CONTENT_SECURITY_POLICY


async def test_every_page_forbids_inline_script_and_framing(client) -> None:
    for path in ("/", "/organizations", "/no/such/page", "/api/v1/organizations?limit=1"):
        response = await client.get(path)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "'unsafe-inline'" not in re.search(r"script-src[^;]*", response.headers["content-security-policy"]).group()
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in response.headers  # plain HTTP here


async def test_hsts_only_over_https(app) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://kiban.test") as https:
        response = await https.get("/healthz")
    assert response.headers["strict-transport-security"].startswith("max-age=")


async def test_api_docs_allow_exactly_their_own_inline_script(client) -> None:
    response = await client.get("/api/v1/docs")
    policy = response.headers["content-security-policy"]
    assert re.search(r"script-src 'self' 'sha256-[A-Za-z0-9+/=]+'", policy)
    assert "'unsafe-inline'" not in re.search(r"script-src[^;]*", policy).group()


async def test_an_oversized_json_body_is_refused_before_it_is_read(client) -> None:
    too_big = b'{"x": "' + b"a" * (BODY_LIMITS["json"] + 10) + b'"}'
    response = await client.post("/api/v1/costs/allocations", content=too_big,
                                 headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "大きすぎます" in response.json()["title"]


async def test_an_oversized_chunked_form_is_refused_as_it_arrives(client) -> None:
    async def chunks():
        for _ in range(BODY_LIMITS["form"] // 65536 + 2):
            yield b"a" * 65536

    response = await client.post("/signin", content=chunks(),
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413, response.text[:3000]
    assert "送信された内容が大きすぎます" in response.text
    assert response.headers["content-type"].startswith("text/html")


async def test_a_body_within_the_limit_reaches_the_route(client) -> None:
    response = await client.post("/api/v1/costs/allocations", json={"nonsense": True})
    assert response.status_code == 422  # the route read it and explained what is wrong


async def test_a_nul_anywhere_in_what_is_typed_is_refused_before_any_route(client) -> None:
    cases = [
        client.get("/organizations", params={"q": "札幌\x00"}),
        client.get("/organizations/01%001002"),
        client.post("/api/v1/costs/allocations", content=b'{"total": 1, "note": "a\\u0000b"}',
                    headers={"content-type": "application/json"}),
        client.post("/signin", content=b"username=a%00b&password=x", headers={"content-type": "application/x-www-form-urlencoded"}),
    ]
    for pending in cases:
        response = await pending
        assert response.status_code == 422, response.request.url
        assert "NUL" in response.text
    api = await client.get("/api/v1/organizations", params={"q": "\x00"})
    assert api.status_code == 422 and api.headers["content-type"].startswith("application/problem+json")


async def test_json_and_forms_without_nul_pass_the_guard_unchanged(client) -> None:
    response = await client.post("/api/v1/costs/allocations", json={"nonsense": "\\u0000 written out"})
    assert response.status_code == 422 and "NUL" not in response.text  # the route itself explained


def test_only_real_permission_codes_are_replaced_by_their_names() -> None:
    from kiban.kit.errors import words_for_codes

    text, codes = words_for_codes("「tenancy.setting.update」の権限が必要です。設定項目「no.such.key」はありません。")
    assert "「no.such.key」" in text and "tenancy.setting.update" not in text and codes == ["tenancy.setting.update"]
