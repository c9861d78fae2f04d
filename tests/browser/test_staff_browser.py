"""A municipal administrator signs in with password and TOTP in a real browser and changes a setting."""

from __future__ import annotations

import re
import pytest_asyncio
from playwright.async_api import expect

from kiban.core.identity import credentials
from tests.browser.conftest import STAFF_PASSWORD as PASSWORD
from tests.browser.conftest import create_committed_staff
MISATO = "054348"


@pytest_asyncio.fixture(loop_scope="session")
async def sapporo_admin(test_database):
    """A tenant no other test reads: 秋田県美郷町."""
    return await create_committed_staff(test_database, MISATO, "美郷 ブラウザ")


async def test_staff_sign_in_with_totp_and_change_a_setting(page, sapporo_admin) -> None:
    username, secret = sapporo_admin
    await page.goto(f"/t/{MISATO}/")
    await page.get_by_role("link", name="美郷町の職員としてサインイン").click()
    await page.get_by_label("ユーザー名").fill(username)
    await page.get_by_label("パスワード").fill(PASSWORD)
    await page.get_by_role("button", name="次へ").click()
    await expect(page.get_by_role("heading", name="確認コードの入力")).to_be_visible()
    await page.get_by_label("確認コード（6桁）").fill(credentials.totp_code(secret))
    await page.get_by_role("button", name="サインイン").click()
    await expect(page).to_have_url(re.compile(rf"/t/{MISATO}/$"))
    await expect(page.get_by_text("美郷 ブラウザ さん（美郷町・団体管理者）としてサインインしています")).to_be_visible()

    await page.get_by_role("link", name="テナント設定").click()
    await page.get_by_label("保育所等利用申込の締切日（毎月）の新しい値").fill("20")
    form = page.locator("form", has=page.get_by_label("保育所等利用申込の締切日（毎月）の新しい値"))
    await form.get_by_label("変更の理由").fill("区役所の受付体制に合わせる")
    await form.get_by_role("button", name="保存").click()
    await expect(page.get_by_role("status")).to_contain_text("保育所等利用申込の締切日（毎月）」を保存しました")
    await expect(page.get_by_role("cell", name="区役所の受付体制に合わせる")).to_be_visible()

    await page.get_by_role("link", name="美郷町", exact=True).first.click()
    await page.get_by_role("button", name="サインアウト").click()
    await expect(page).to_have_url(re.compile(r"/$"))
