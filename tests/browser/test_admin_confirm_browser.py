"""An administrator on a phone (390 px, JavaScript off) stops a staff member: the button leads to a
page saying what will happen, 戻る changes nothing, 停止する reports what happened, and
再開する gives the person back their role so that they can sign in again."""

from __future__ import annotations

import re
import uuid

import pytest_asyncio
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import expect

from tests.browser.conftest import STAFF_PASSWORD, sign_in

HINOEMATA = "073644"  # 福島県檜枝岐村: no other test reads it
PHONE = {"width": 390, "height": 844}


async def _committed_member(test_database, role: str, display_name: str) -> tuple[str, bytes]:
    from sqlalchemy.ext.asyncio import AsyncSession

    from kiban.core.identity import credentials
    from kiban.core.identity import service as identity_service
    from kiban.kit.db import create_engine

    username = f"browser-{uuid.uuid4().hex[:8]}"
    secret = credentials.new_totp_secret()
    engine = create_engine(test_database.owner_url, pool=False)
    try:
        async with AsyncSession(engine) as session:
            await identity_service.create_staff(session, username=username, display_name=display_name,
                                                password=STAFF_PASSWORD, lg_code=HINOEMATA, role=role,
                                                granted_by="browser test", totp_secret=secret)
            await session.commit()
    finally:
        await engine.dispose()
    return username, secret


@pytest_asyncio.fixture(loop_scope="session")
async def cast(test_database):
    suffix = uuid.uuid4().hex[:4]
    admin = await _committed_member(test_database, "admin", f"檜枝岐 管理者{suffix}")
    clerk_name = f"山田 一郎{suffix}"
    clerk = await _committed_member(test_database, "staff", clerk_name)
    return admin, clerk, clerk_name


async def _fits_the_phone(page) -> None:
    width = await page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"sideways scroll on {page.url}: {width}"


async def _touch_target(locator) -> None:
    box = await locator.bounding_box()
    assert box is not None and box["height"] >= 48 and box["width"] >= 48, box


async def test_stop_confirm_result_reinstate_at_phone_width_without_javascript(browser, live_server, cast) -> None:
    (admin_user, admin_secret), (clerk_user, clerk_secret), clerk_name = cast
    context = await browser.new_context(base_url=live_server, locale="ja-JP", viewport=PHONE,
                                        java_script_enabled=False)
    page = await context.new_page()
    await sign_in(page, admin_user, admin_secret)
    await page.wait_for_url(f"**/t/{HINOEMATA}/")
    await page.goto(f"/t/{HINOEMATA}/staff")
    await _fits_the_phone(page)
    members = page.get_by_role("table", name="所属している職員")

    stop = page.get_by_role("link", name=f"{clerk_name} さんを停止する")
    await _touch_target(stop)
    await stop.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("職員の停止の確認")
    await expect(page.get_by_text(f"{clerk_name} さんを停止します。")).to_be_visible()
    await expect(page.get_by_text(re.compile("サインインできなくなり"))).to_be_visible()
    await _fits_the_phone(page)
    await _touch_target(page.get_by_role("button", name="停止する"))
    await _touch_target(page.get_by_role("link", name="戻る"))

    await page.get_by_role("link", name="戻る").click()  # changing one's mind changes nothing
    await expect(page).to_have_url(re.compile(rf"/t/{HINOEMATA}/staff$"))
    await expect(members).to_contain_text(clerk_name)

    await page.get_by_role("link", name=f"{clerk_name} さんを停止する").click()
    await page.get_by_role("button", name="停止する").click()
    await expect(page.locator("#result")).to_contain_text(f"{clerk_name} さんを停止しました。")
    await expect(members).not_to_contain_text(clerk_name)
    stopped = page.get_by_role("table", name="停止中の職員")
    await expect(stopped).to_contain_text(clerk_name)
    await _fits_the_phone(page)

    await stopped.get_by_role("link", name=f"{clerk_name} さんの利用を再開する").click()
    await expect(page.get_by_text(f"{clerk_name} さんの利用を再開します。")).to_be_visible()
    await expect(page.get_by_text("停止する前の役割（職員）に戻ります。")).to_be_visible()
    await _fits_the_phone(page)
    await page.get_by_role("button", name="再開する").click()
    await expect(page.locator("#result")).to_contain_text(f"{clerk_name} さんの利用を再開しました（役割: 職員）。")
    await expect(members).to_contain_text(clerk_name)
    await context.close()

    # The person signs in again and reaches the organisation's pages.
    context = await browser.new_context(base_url=live_server, locale="ja-JP", viewport=PHONE)
    page = await context.new_page()
    await sign_in(page, clerk_user, clerk_secret)
    await page.wait_for_url(f"**/t/{HINOEMATA}/")
    await context.close()


async def test_the_confirmation_page_has_no_serious_accessibility_violations(browser, live_server, cast) -> None:
    (admin_user, admin_secret), _, clerk_name = cast
    context = await browser.new_context(base_url=live_server, locale="ja-JP", viewport=PHONE)
    page = await context.new_page()
    await sign_in(page, admin_user, admin_secret)
    await page.wait_for_url(f"**/t/{HINOEMATA}/")
    await page.goto(f"/t/{HINOEMATA}/staff")
    await page.get_by_role("link", name=f"{clerk_name} さんを停止する").click()
    results = await Axe().run(page)
    blocking = [f"{v['id']}: {v['help']}" for v in results.response["violations"]
                if v["impact"] in {"serious", "critical"}]
    assert blocking == []
    await context.close()


async def test_forms_with_several_mistakes_say_all_of_them_and_keep_the_input_on_a_phone(
        browser, live_server, cast) -> None:
    (admin_user, admin_secret), _, _ = cast
    context = await browser.new_context(base_url=live_server, locale="ja-JP", viewport=PHONE)
    page = await context.new_page()
    await sign_in(page, admin_user, admin_secret)
    await page.wait_for_url(f"**/t/{HINOEMATA}/")

    await page.goto(f"/t/{HINOEMATA}/grants")
    grantee = page.get_by_label("相手の団体（団体コードまたは団体名）")
    await expect(grantee).to_have_value("福島県")  # the prefecture, offered by name
    await page.get_by_label("利用目的").fill("")
    await page.get_by_label("法的根拠").fill("地方自治法第245条の4")
    await page.get_by_label("有効期限").fill("2020-04-01")
    await page.get_by_role("button", name="許可する").click()  # the browser does not stop at the first
    summary = page.get_by_role("alert")
    await expect(summary).to_contain_text("2点を直して")
    await expect(summary.get_by_role("link", name=re.compile("利用目的を入力してください"))).to_be_visible()
    await expect(summary.get_by_role("link", name=re.compile("有効期限が過去の日付です"))).to_be_visible()
    await expect(page.get_by_label("法的根拠")).to_have_value("地方自治法第245条の4")
    await expect(page.get_by_label("有効期限")).to_have_value("2020-04-01")
    await expect(page.get_by_label("利用目的")).to_have_attribute("aria-invalid", "true")
    await _fits_the_phone(page)
    await summary.get_by_role("link", name=re.compile("利用目的")).click()
    await expect(page.get_by_label("利用目的")).to_be_focused()  # the link leads to the field
    results = await Axe().run(page)
    assert [v["id"] for v in results.response["violations"] if v["impact"] in {"serious", "critical"}] == []

    await page.goto(f"/t/{HINOEMATA}/staff")
    await page.get_by_role("textbox", name="氏名", exact=True).fill("檜枝岐 新人")
    await page.get_by_role("combobox", name="役割", exact=True).select_option(label="閲覧者")
    await page.get_by_role("button", name="招待リンクを作る").click()
    await expect(page.get_by_role("alert")).to_contain_text("ユーザー名を入力してください")
    await expect(page.get_by_role("textbox", name="氏名", exact=True)).to_have_value("檜枝岐 新人")
    await expect(page.get_by_role("combobox", name="役割", exact=True)).to_have_value("viewer")
    await _fits_the_phone(page)
    results = await Axe().run(page)
    assert [v["id"] for v in results.response["violations"] if v["impact"] in {"serious", "critical"}] == []
    await context.close()
