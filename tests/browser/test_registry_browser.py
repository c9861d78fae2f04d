"""A person looking for their municipality in a real browser."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import expect

BLOCKING_IMPACTS = {"serious", "critical"}


async def test_searching_by_hiragana_finds_sapporo_and_opens_its_page(page) -> None:
    await page.goto("/organizations")
    await page.get_by_label("名称・読み").fill("さっぽろ")
    await page.get_by_role("button", name="検索").click()
    link = page.get_by_role("link", name="札幌市", exact=True)
    await expect(link).to_be_visible()
    await link.click()
    await expect(page).to_have_url(re.compile(r"/organizations/011002$"))
    await expect(page.get_by_role("heading", level=1)).to_contain_text("札幌市")
    await expect(page.get_by_text("1,973,395 人")).to_be_visible()
    await expect(page.get_by_role("link", name="札幌市中央区")).to_be_visible()
    assert await page.locator("table tbody tr").count() == 10  # its ten wards


async def test_half_width_kana_typed_as_you_go_finds_sapporo(page) -> None:
    await page.goto("/organizations")
    await page.get_by_label("名称・読み").press_sequentially("ｻｯﾎﾟﾛ")
    # htmx searches while typing and keeps the URL shareable.
    await expect(page.get_by_role("link", name="札幌市", exact=True)).to_be_visible()
    await expect(page.locator("#result-count")).to_have_text("1 件")
    await expect(page).to_have_url(re.compile(r"q=%EF%BD%BB"))


async def test_filtering_tokyo_lists_its_62_municipalities(page) -> None:
    await page.goto("/organizations")
    await page.get_by_role("combobox", name="都道府県").select_option("13")
    for kind in ("特別区", "市", "町", "村"):
        await page.get_by_role("checkbox", name=kind, exact=True).check()
    await expect(page.locator("#result-count")).to_contain_text("62 件")


def _blocking(results) -> list[str]:
    report = []
    for violation in results.response["violations"]:
        if violation["impact"] in BLOCKING_IMPACTS:
            targets = "; ".join(", ".join(node["target"]) for node in violation["nodes"])
            report.append(f"{violation['id']} ({violation['impact']}): {violation['help']} -> {targets}")
    return report


@pytest.mark.parametrize("path", ["/", "/organizations", "/organizations?q=さっぽろ",
                                  "/organizations/011002", "/t/011002/settings", "/organizations/011003",
                                  "/signin", "/signin/card", "/t/011002/", "/invite/not-a-token",
                                  "/signin/business", "/catalog", "/catalog/madoguchi-dx-saas", "/costs",
                                  "/consortia", "/consortia/aichi-e-gov", "/disasters"])
async def test_pages_have_no_serious_accessibility_violations(page, path) -> None:
    await page.goto(path)
    results = await Axe().run(page)
    assert _blocking(results) == []


async def test_detail_page_fits_a_phone_screen(page, tmp_path) -> None:
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto("/organizations/011002")
    await page.screenshot(path=tmp_path / "sapporo-phone.png", full_page=True)
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1


async def test_typing_a_reading_lists_the_exact_match_first(page) -> None:
    await page.goto("/organizations")
    await page.get_by_label("名称・読み").press_sequentially("なは")
    first_link = page.locator("table tbody tr").first.get_by_role("link")
    await expect(first_link).to_have_text("那覇市")


@pytest.mark.parametrize(("typed", "name"), [("竜ヶ崎", "龍ケ崎市"), ("桧原", "檜原村"), ("札幌市中央区", "札幌市中央区"),
                                            ("０８２０８", "龍ケ崎市")])
async def test_variants_ward_names_and_codes_find_their_organisation(page, typed, name) -> None:
    await page.goto("/organizations")
    await page.get_by_label("名称・読み").fill(typed)
    await page.get_by_role("button", name="検索").click()
    await expect(page.locator("table tbody tr").first.get_by_role("link")).to_have_text(name)
