"""A business user signs in through an OpenID Connect provider in a real browser: the return
from the provider (another site) must still be bound to the browser that started it."""

from __future__ import annotations

import re

import httpx
import pytest
from oidc_provider_mock import run_server_in_thread
from playwright.async_api import expect

from kiban.core.identity import oidc
from kiban.core.registry.corporate_number import corporate_check_digit
from kiban.kit.settings import get_settings

CORPORATE_NUMBER = corporate_check_digit("987654321098") + "987654321098"


@pytest.fixture
def gbizid(monkeypatch):
    with run_server_in_thread() as server:
        provider = f"http://localhost:{server.server_port}"
        monkeypatch.setenv("KIBAN_GBIZID_ISSUER", provider)
        monkeypatch.setenv("KIBAN_GBIZID_CLIENT_ID", "kiban-browser-test")
        monkeypatch.setenv("KIBAN_GBIZID_CLIENT_SECRET", "secret")
        monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
        get_settings.cache_clear()
        oidc._discovery_cache.clear()
        oidc._jwks_cache.clear()
        httpx.put(f"{provider}/users/browser-biz", json={"name": "株式会社ブラウザ 担当",
                                                       "corporate_number": CORPORATE_NUMBER}).raise_for_status()
        yield provider
    get_settings.cache_clear()


async def test_business_user_signs_in_through_the_provider(page, gbizid) -> None:
    await page.goto("/signin/business")
    await expect(page).to_have_url(re.compile(r"^http://localhost:\d+/oauth2/authorize"))
    await page.locator('input[name="sub"]').fill("browser-biz")
    await page.get_by_role("button", name="Authorize").click()
    await expect(page).to_have_url(re.compile(r"/business$"))
    await expect(page.locator("#corporate-number")).to_have_text(CORPORATE_NUMBER)
    await expect(page.locator("main").get_by_text("株式会社ブラウザ 担当")).to_be_visible()
    await expect(page.locator("header").get_by_text("株式会社ブラウザ 担当")).to_be_visible()
