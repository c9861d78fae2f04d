"""The public read path stays cheap without changing what it answers: a registry search answered
before is sent again from memory (same bytes and headers, validators for browsers and caches),
and the middlewares every request crosses keep their rules."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry.api import SearchAnswers
from kiban.kit.db import get_session
from kiban.kit.settings import Settings
from kiban.main import create_app

SEARCH = "/api/v1/organizations?q=%EF%BD%BB%EF%BD%AF%EF%BE%8E%EF%BE%9F%EF%BE%9B"  # ｻｯﾎﾟﾛ


@pytest.fixture
def served_app(test_database, app_engine):
    """An app as a server runs it: the registry cache serves from memory (ttl > 0)."""
    application = create_app(Settings(database_url=test_database.app_url, registry_cache_seconds=60),
                             engine=app_engine)
    return application


async def _get(app, url: str, **headers) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        return await client.get(url, headers=headers)


def _without_request_id(response: httpx.Response) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in response.headers.items() if k != "x-request-id")


async def test_a_search_answered_before_is_sent_again_without_the_route(served_app) -> None:
    first = await _get(served_app, SEARCH)
    assert first.status_code == 200
    assert "札幌市" in [item["name"] for item in first.json()["items"]]
    assert first.headers["etag"] and first.headers["cache-control"] == "public, max-age=60"

    async def no_database() -> AsyncSession:
        raise AssertionError("the route ran: the kept answer was not used")
        yield  # pragma: no cover

    served_app.dependency_overrides[get_session] = no_database
    again = await _get(served_app, SEARCH, **{"X-Request-ID": "kept-answer-01"})
    assert again.status_code == 200
    assert again.content == first.content
    assert _without_request_id(again) == _without_request_id(first)  # security headers and all
    assert again.headers["x-request-id"] == "kept-answer-01"
    # Another query is not kept yet: it reaches the route (and the database it needs)
    with pytest.raises(AssertionError, match="the route ran"):
        await _get(served_app, "/api/v1/organizations?q=%E9%87%91%E6%B2%A2")


async def test_a_matching_etag_gets_304_from_the_route_and_from_memory(served_app) -> None:
    first = await _get(served_app, SEARCH)
    etag = first.headers["etag"]
    for _ in range(2):  # the first 304 may come from the route or memory; the second from memory
        unchanged = await _get(served_app, SEARCH, **{"If-None-Match": f'W/{etag}, "other"'})
        assert unchanged.status_code == 304 and unchanged.content == b""
        assert unchanged.headers["etag"] == etag
        assert "content-security-policy" in unchanged.headers
    assert (await _get(served_app, SEARCH, **{"If-None-Match": '"stale"'})).status_code == 200


async def test_with_a_cache_checked_on_every_call_the_route_always_answers(app, client) -> None:
    # Tests run with registry_cache_seconds=0: their own registry changes must show at once
    first = await client.get(SEARCH)
    second = await client.get(SEARCH, headers={"If-None-Match": first.headers["etag"]})
    assert first.status_code == 200 and second.status_code == 304
    bad = await client.get("/api/v1/organizations?limit=0")
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")


def test_answers_are_kept_per_snapshot_and_within_their_budget() -> None:
    class Snapshot:
        def __init__(self, revision: int) -> None:
            self.revision = revision

    old, new = Snapshot(1), Snapshot(2)
    answers = SearchAnswers(max_bytes=100)
    kept = answers.put(old, b"q=a", b"x" * 40)
    assert answers.get(old, b"q=a") is kept
    assert answers.get(new, b"q=a") is None  # a registry change: nothing answered before counts
    answers.put(old, b"q=b", b"y" * 40)
    answers.get(old, b"q=a")  # used: kept longer than q=b
    answers.put(old, b"q=c", b"z" * 40)
    assert answers.get(old, b"q=b") is None and answers.get(old, b"q=a") is kept
    fresh = answers.put(new, b"q=a", b"x" * 40)
    assert fresh.etag != kept.etag and answers.get(old, b"q=a") is None


async def test_request_id_nul_guard_and_headers_keep_their_rules(client) -> None:
    # The last X-Request-ID wins (as before); an unacceptable one is replaced by 32 hex digits
    response = await client.get("/healthz", headers=[("X-Request-ID", "first-0001"), ("X-Request-ID", "second-0002")])
    assert response.headers["x-request-id"] == "second-0002"
    replaced = await client.get("/healthz", headers={"X-Request-ID": "short"})
    assert len(replaced.headers["x-request-id"]) == 32 and int(replaced.headers["x-request-id"], 16) >= 0
    # A NUL in a GET's query is refused before any route, under /api as problem+json
    refused = await client.get("/api/v1/organizations?q=a%00b")
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["x-content-type-options"] == "nosniff"
    # Only https responses carry HSTS
    assert "strict-transport-security" not in response.headers
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=client._transport.app),
                                 base_url="https://testserver") as secure:
        assert "max-age=" in (await secure.get("/healthz")).headers["strict-transport-security"]
