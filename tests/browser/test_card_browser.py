"""A resident signs in with a (virtual) My Number Card in a real browser: the page signs the
challenge with WebCrypto, as a card reader app would, and the server verifies it."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from kiban.core.identity.devca import DevCA
from kiban.kit.settings import get_settings


@pytest.fixture
def virtual_card(tmp_path, monkeypatch):
    monkeypatch.setenv("KIBAN_JPKI_DEV_CA_ENABLED", "1")
    monkeypatch.setenv("KIBAN_JPKI_DEV_CA_DIR", str(tmp_path / "dev-ca"))
    get_settings.cache_clear()
    ca = DevCA(tmp_path / "dev-ca")
    ca.init()
    yield ca.issue("browser-resident")
    get_settings.cache_clear()


async def test_resident_signs_in_with_a_virtual_card_and_sees_their_access_log(page, virtual_card) -> None:
    await page.goto("/signin/card")
    await expect(page.get_by_text("開発用", exact=True)).to_be_visible()  # marked development-only
    await page.get_by_label("仮想カードのファイル").set_input_files(str(virtual_card))
    await expect(page.locator("#card-status")).to_contain_text("仮想カードで署名しました")
    await page.get_by_role("button", name="サインイン").click()
    await expect(page).to_have_url(re.compile(r"/me$"))
    await expect(page.get_by_role("heading", name="わたしの情報の利用記録")).to_be_visible()
    await expect(page.get_by_role("cell", name="住民のサインイン（マイナンバーカード）")).to_be_visible()
    await expect(page.get_by_text("identity.resident.sign_in")).to_have_count(0)
