"""The shell every page shares, in a real browser: the header says who is signed in (staff,
resident) on public pages, tenant pages and error pages, with their organisation's pages and
sign-out; a phone 390 px wide never scrolls sideways and opens the menu without JavaScript."""

from __future__ import annotations

import re

import pytest
import pytest_asyncio
from playwright.async_api import expect

from kiban.core.identity.devca import DevCA
from kiban.kit.settings import get_settings
from tests.browser.conftest import create_committed_staff, sign_in

AMA = "325252"  # 島根県海士町: no other test reads it
PHONE = {"width": 390, "height": 844}
PUBLIC_PAGES = ["/", "/organizations", "/organizations/011002", "/organizations?q=さっぽろ", "/t/011002/",
                "/t/011002/settings", "/catalog", "/costs", "/consortia", "/t/232033/simulator",
                "/disasters", "/signin", "/signin/card", "/no/such/page"]


@pytest_asyncio.fixture(loop_scope="session")
async def ama_staff(test_database) -> tuple[str, bytes]:
    return await create_committed_staff(test_database, AMA, "海士 ヘッダー")


@pytest.fixture
def virtual_card(tmp_path, monkeypatch):
    monkeypatch.setenv("KIBAN_JPKI_DEV_CA_ENABLED", "1")
    monkeypatch.setenv("KIBAN_JPKI_DEV_CA_DIR", str(tmp_path / "dev-ca"))
    get_settings.cache_clear()
    ca = DevCA(tmp_path / "dev-ca")
    ca.init()
    yield ca.issue("header-resident")
    get_settings.cache_clear()


async def _new_page(browser, live_server, viewport=None):
    context = await browser.new_context(base_url=live_server, locale="ja-JP",
                                        viewport=viewport or {"width": 1280, "height": 900})
    return context, await context.new_page()


async def _no_sideways_scroll(page, path: str) -> None:
    width = await page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"{path} is {width}px wide at {PHONE['width']}px"


async def test_staff_header_on_public_tenant_and_error_pages(browser, live_server, ama_staff) -> None:
    context, page = await _new_page(browser, live_server)
    try:
        await sign_in(page, *ama_staff)
        await expect(page).to_have_url(re.compile(rf"/t/{AMA}/$"))
        header = page.locator("header")
        for path in ("/", "/organizations/011002", "/catalog", "/disasters", f"/t/{AMA}/settings",
                     "/organizations/011003", "/t/011002/staff", "/no/such/page"):
            await page.goto(path)
            await expect(header.get_by_text("サインイン中")).to_be_visible()
            await expect(header.get_by_text("海士 ヘッダー", exact=True)).to_be_visible()
            await expect(header.get_by_text("（海士町）")).to_be_visible()
            await expect(header.get_by_role("button", name="サインアウト")).to_be_visible()
        # The organisation's pages, from any page.
        await header.get_by_role("link", name="海士町のページ").click()
        await expect(page).to_have_url(re.compile(rf"/t/{AMA}/$"))
        await expect(page.get_by_role("heading", level=1, name="海士町")).to_be_visible()
        await header.get_by_role("button", name="サインアウト").click()
        await expect(page).to_have_url(re.compile(r"/$"))
        await expect(header.get_by_role("link", name="サインイン", exact=True)).to_be_visible()
        await expect(header.get_by_text("海士 ヘッダー")).to_have_count(0)
    finally:
        await context.close()


async def test_resident_signed_in_with_the_card_sees_it_in_the_header(browser, live_server, virtual_card) -> None:
    context, page = await _new_page(browser, live_server)
    try:
        await page.goto("/")
        await page.get_by_role("link", name=re.compile("マイナンバーカードでサインイン")).click()
        await expect(page).to_have_url(re.compile(r"/signin/card$"))
        await page.get_by_label("仮想カードのファイル").set_input_files(str(virtual_card))
        await expect(page.locator("#card-status")).to_contain_text("仮想カードで署名しました")
        await page.locator("main").get_by_role("button", name="サインイン").click()
        await expect(page).to_have_url(re.compile(r"/me$"))
        header = page.locator("header")
        for path in ("/organizations", "/costs", "/me"):
            await page.goto(path)
            await expect(header.get_by_text("住民（本人）")).to_be_visible()
            await expect(header.get_by_text("マイナンバーカード")).to_be_visible()
        await page.goto("/catalog")
        await header.get_by_role("link", name="わたしの情報の利用記録").click()
        await expect(page).to_have_url(re.compile(r"/me$"))
        await header.get_by_role("button", name="サインアウト").click()
        await expect(page).to_have_url(re.compile(r"/$"))
        await expect(header.get_by_text("住民（本人）")).to_have_count(0)
    finally:
        await context.close()


async def test_card_sign_in_is_found_from_the_sign_in_page(page) -> None:
    await page.goto("/")
    await page.locator("header").get_by_role("link", name="サインイン", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/signin$"))
    await page.get_by_role("link", name="マイナンバーカードでサインイン").click()
    await expect(page.get_by_role("heading", level=1, name="マイナンバーカードでサインイン")).to_be_visible()


async def test_every_page_fits_a_phone_and_the_menu_opens_and_works(browser, live_server, ama_staff) -> None:
    context, page = await _new_page(browser, live_server, PHONE)
    try:
        for path in PUBLIC_PAGES:
            await page.goto(path)
            await _no_sideways_scroll(page, path)
        await sign_in(page, *ama_staff)
        await expect(page).to_have_url(re.compile(rf"/t/{AMA}/$"))
        await _no_sideways_scroll(page, f"/t/{AMA}/ (signed in)")
        for path in ("/", "/organizations/011002", "/t/011002/settings"):
            await page.goto(path)
            await _no_sideways_scroll(page, f"{path} (signed in)")

        # Who is signed in stays visible without opening the menu; the menu's links do not.
        header = page.locator("header")
        await expect(header.get_by_text("海士 ヘッダー", exact=True)).to_be_visible()
        await expect(header.get_by_role("button", name="サインアウト")).to_be_visible()
        menu = header.get_by_role("navigation", name="メインメニュー")
        await expect(menu.get_by_role("link", name="自治体一覧")).to_be_hidden()
        toggle = header.locator("summary", has_text="メニュー")
        await toggle.click()
        await expect(menu.get_by_role("link", name="自治体一覧")).to_be_visible()
        await _no_sideways_scroll(page, "menu open")
        for name in ("トップ", "共通サービス", "費用の見える化", "災害・避難所"):
            await expect(menu.get_by_role("link", name=name)).to_be_visible()
        await menu.get_by_role("link", name="自治体一覧").click()
        await expect(page).to_have_url(re.compile(r"/organizations$"))
        await expect(page.get_by_role("heading", level=1)).to_contain_text("自治体")
        await toggle.click()
        await menu.get_by_role("link", name="災害・避難所").click()
        await expect(page).to_have_url(re.compile(r"/disasters$"))

        # Touch targets in the header are at least 48 px tall.
        await toggle.click()
        for target in (toggle, header.get_by_role("button", name="サインアウト"),
                       header.get_by_role("link", name="海士町のページ"), menu.get_by_role("link", name="トップ")):
            box = await target.bounding_box()
            assert box is not None and box["height"] >= 48, (await target.inner_text(), box)
    finally:
        await context.close()


async def test_wide_screens_show_the_menu_links_without_a_toggle(page) -> None:
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.goto("/organizations")
    header = page.locator("header")
    await expect(header.locator("summary", has_text="メニュー")).to_be_hidden()
    menu = header.get_by_role("navigation", name="メインメニュー")
    await menu.get_by_role("link", name="共通サービス").click()
    await expect(page).to_have_url(re.compile(r"/catalog$"))


async def test_form_fields_are_48px_tall_and_required_ones_say_so(page) -> None:
    await page.set_viewport_size(PHONE)
    await page.goto("/signin")
    for label in ("ユーザー名", "パスワード"):
        field = page.get_by_label(label)
        box = await field.bounding_box()
        assert box is not None and box["height"] >= 48, (label, box)
        await expect(field).to_have_attribute("required", "")
        await expect(page.locator(f'label[for="{await field.get_attribute("id")}"] .required')).to_have_text("必須")
    box = await page.get_by_role("button", name="次へ").bounding_box()
    assert box is not None and box["height"] >= 48
