"""The shell every page shares: Japanese, accessible basics, friendly errors, health."""

from __future__ import annotations

import re

from tests.factories import SAPPORO


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


# -- the header: who is signed in, for which organisation, and the way out ---------------------

def _header(html: str) -> str:
    return html[html.index('<header class="site-header">'):html.index("</header>")]


async def _session_for(session, kind: str, display_name: str) -> str:
    """A signed-in browser session for a resident or business principal (their sign-in pages
    have their own tests); returns the cookie's token."""
    import uuid

    from kiban.core.identity import service as identity_service
    from kiban.core.identity.models import Principal
    from kiban.kit.db import utcnow

    principal = Principal(id=str(uuid.uuid4()), kind=kind, display_name=display_name, created_at=utcnow())
    session.add(principal)
    await session.flush()
    started = await identity_service.start_session(session, principal.id, "active")
    await session.commit()
    return started.token


async def test_top_page_lists_what_exists_with_links_and_nothing_under_preparation(client) -> None:
    page = (await client.get("/")).text
    assert "準備中" not in page
    for link in ('href="/signin/card"', 'href="/signin"', 'href="/catalog"',
                 'href="/costs"', 'href="/consortia"', 'href="/disasters"', 'href="/t/232033/simulator"',
                 'href="/me"'):
        assert link in page, link


async def test_a_resident_finds_card_sign_in_on_the_sign_in_page(client) -> None:
    page = (await client.get("/signin")).text
    assert 'href="/signin/card"' in page and "マイナンバーカードでサインイン" in page
    # GビズID is not configured in the tests: no link that could only say so
    assert 'href="/signin/business"' not in page
    kept = (await client.get("/signin", params={"next": "/me"})).text
    assert 'href="/signin/card?next=/me"' in kept


async def test_signed_out_header_offers_sign_in_and_no_sign_out(client) -> None:
    header = _header((await client.get("/organizations")).text)
    assert 'href="/signin"' in header and "サインイン中" not in header and "/signout" not in header


async def test_staff_header_names_the_person_and_organisation_on_public_and_tenant_pages(staff) -> None:
    member = await staff("011002", "staff", name="札幌 花子")
    for path in ("/", "/organizations", "/organizations/011002", "/catalog", "/disasters", "/t/011002/",
                 "/t/011002/settings", "/signin"):
        response = await member.client.get(path)
        assert response.status_code == 200, path
        header = _header(response.text)
        assert "札幌 花子" in header and "（札幌市）" in header, path
        assert 'href="/t/011002/"' in header and "札幌市のページ" in header, path
        assert 'action="/signout"' in header and f'value="{member.csrf}"' in header, path
        assert 'href="/signin"' not in header, path


async def test_staff_header_shows_on_error_pages_too(staff) -> None:
    member = await staff("011002", "staff", name="札幌 花子")
    for path, status in (("/organizations/011003", 422),
                         ("/t/012025/staff", 404), ("/t/011002/staff", 403)):
        response = await member.client.get(path)
        assert response.status_code == status, path
        assert "札幌 花子" in _header(response.text), path


async def test_signing_out_from_the_header_ends_the_session(staff) -> None:
    member = await staff("011002", "admin", name="札幌 花子")
    out = await member.client.post("/signout", data={"csrf_token": member.csrf})
    assert out.status_code == 303
    header = _header((await member.client.get("/")).text)
    assert "札幌 花子" not in header and 'href="/signin"' in header


async def test_half_signed_in_staff_are_not_shown_as_signed_in(session, new_client) -> None:
    from kiban.core.identity import credentials
    from kiban.core.identity import service as identity_service
    from tests.conftest import password_step

    await identity_service.create_staff(session, username="header-half", display_name="途中 太郎",
                                        password="correct horse battery staple", lg_code="011002",
                                        role="staff", granted_by="test", totp_secret=credentials.new_totp_secret())
    await session.commit()
    client = new_client()
    assert (await password_step(client, "header-half", "correct horse battery staple")).status_code == 303
    header = _header((await client.get("/")).text)
    assert "途中 太郎" not in header and "サインイン中" not in header


async def test_resident_and_business_see_who_they_are_and_can_sign_out(session, new_client) -> None:
    for kind, name, shown, home in (("resident", "住民", "マイナンバーカード", 'href="/me"'),
                                    ("business", "株式会社ヘッダー 担当", "GビズID", 'href="/business"')):
        client = new_client()
        client.cookies.set("kiban_session", await _session_for(session, kind, name))
        for path in ("/", "/organizations", "/catalog"):
            header = _header((await client.get(path)).text)
            assert "サインイン中" in header and shown in header, (kind, path)
            assert home in header and 'action="/signout"' in header, (kind, path)
        if kind == "business":
            assert name in header


async def test_a_stale_or_forged_session_cookie_leaves_the_page_working_and_signed_out(new_client) -> None:
    client = new_client()
    client.cookies.set("kiban_session", "not-a-real-token")
    response = await client.get("/")
    assert response.status_code == 200
    assert 'href="/signin"' in _header(response.text)


async def test_a_header_that_fails_after_the_web_session_was_read_leaves_the_page_working(staff, monkeypatch) -> None:
    """The signed-in header fails (on SQLite: the write lock not had within the busy timeout)
    after it read the web session: it rolls back, which expires what it loaded. The page's own
    check of who is signed in then reads the web session again (it used the expired one: I/O
    outside an await, MissingGreenlet, 500)."""
    from kiban.web import viewer

    real = viewer._viewer

    async def header_fails_late(request, session):
        await real(request, session)  # the web session is read and kept for the request
        raise RuntimeError("database is locked")

    member = await staff(SAPPORO, "admin")
    monkeypatch.setattr(viewer, "_viewer", header_fails_late)
    response = await member.client.get(f"/t/{SAPPORO}/settings")
    assert response.status_code == 200, response.text[:300]
