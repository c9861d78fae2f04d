"""Issue 9 item 10 (shelter part) in a real browser at a 390 px phone width: the shelter page, its
error page, the workspace and the dashboard scroll only downwards; the shelter form shows every
error at once, keeps what was typed, and marks 必須. 福井県 and 福井市 hold committed data no other
test reads."""

from __future__ import annotations

import re
from datetime import date

import pytest_asyncio
from playwright.async_api import expect

from tests.browser.conftest import create_committed_staff, sign_in

FUKUI_PREF, FUKUI_CITY = "180009", "182010"
PHONE = {"width": 390, "height": 844}


@pytest_asyncio.fixture(loop_scope="session")
async def fukui(test_database) -> dict:
    from sqlalchemy.ext.asyncio import AsyncSession

    from kiban.core.registry import service as registry
    from kiban.kit.db import create_engine
    from kiban.modules.disaster import service

    engine = create_engine(test_database.owner_url, pool=False)
    try:
        async with AsyncSession(engine) as session:
            prefecture = await registry.tenant_for(session, FUKUI_PREF)
            disaster = await service.open_disaster(
                session, prefecture, name="令和8年福井豪雨（スマートフォン幅の試験）", kind="風水害",
                occurred_on=date(2026, 7, 1), description="", affected=[FUKUI_CITY], relief_act=[FUKUI_CITY],
                actor="browser test")
            disaster_id = disaster.id
            await session.commit()
    finally:
        await engine.dispose()
    return {"disaster": disaster_id, "account": await create_committed_staff(test_database, FUKUI_CITY, "福井市 職員")}


async def _scroll_width(page) -> int:
    return await page.evaluate("document.scrollingElement.scrollWidth")


async def test_the_shelter_page_fits_a_phone_and_reports_every_error_at_once(browser, live_server, fukui) -> None:
    context = await browser.new_context(base_url=live_server, locale="ja-JP", viewport=PHONE)
    page = await context.new_page()
    await sign_in(page, *fukui["account"])
    workspace = f"/t/{FUKUI_CITY}/disasters/{fukui['disaster']}"
    await page.goto(workspace)
    await page.get_by_label("避難所の名称").fill("福井市立足羽小学校体育館（第二避難所・要配慮者スペースあり）")
    await page.get_by_label("収容人数").fill("120")
    await page.get_by_role("button", name="開設する").click()
    assert await _scroll_width(page) <= 390, "workspace"
    await page.get_by_role("link", name=re.compile("^更新")).first.click()
    await expect(page.get_by_role("heading", level=2, name="住民の自己登録")).to_be_visible()
    assert await _scroll_width(page) <= 390, "shelter page with its QR code and self-registration address"

    # 必須 is marked on the required fields.
    for label in ("名称", "避難者数（人）", "収容人数（人）"):
        field = page.locator(".field").filter(has=page.get_by_label(label, exact=False).first).first
        await expect(field.locator(".required")).to_have_text("必須")

    # Three mistakes at once: all reported, the typed values kept, the page still phone-wide.
    await page.get_by_label("名称").fill("")
    await page.get_by_label("避難者数（人）").fill("たくさん")
    await page.get_by_label("収容人数（人）").fill("-5")
    await page.get_by_label("必要なもの（物資・人員など）").fill("毛布、飲料水、粉ミルク")
    await page.get_by_role("button", name="保存する").click()
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("入力内容を確認してください（3 件）")
    await expect(alert.get_by_role("listitem")).to_have_count(3)
    await expect(page.get_by_label("避難者数（人）")).to_have_value("たくさん")
    await expect(page.get_by_label("収容人数（人）")).to_have_value("-5")
    await expect(page.get_by_label("必要なもの（物資・人員など）")).to_have_value("毛布、飲料水、粉ミルク")
    await expect(page.get_by_label("名称")).to_have_attribute("aria-invalid", "true")
    assert await _scroll_width(page) <= 390, "shelter error page"

    # Over capacity asks for confirmation, then saves.
    await page.get_by_label("名称").fill("福井市立足羽小学校体育館")
    await page.get_by_label("避難者数（人）").fill("150")
    await page.get_by_label("収容人数（人）").fill("120")
    await page.get_by_role("button", name="保存する").click()
    await expect(page.get_by_role("alert")).to_contain_text("収容人数 120 人を超えています")
    await page.get_by_label("収容人数を超えていることを確認しました").check()
    await page.get_by_role("button", name="保存する").click()
    await expect(page.get_by_text("混雑（収容率 125%・超過）")).to_be_visible()
    assert await _scroll_width(page) <= 390, "workspace with a crowded shelter"
    await page.goto(f"{workspace}/dashboard")
    await expect(page.locator("#crowded")).to_contain_text("福井市立足羽小学校体育館")
    assert await _scroll_width(page) <= 390, "dashboard"
    await context.close()
