"""Issue #4 in a real browser: a municipality tries the simulator before joining, and the
Aichi secretariat allocates a system's cost by 人口按分+重み係数."""

from __future__ import annotations

import re

import pytest_asyncio
from playwright.async_api import expect

from kiban.core.identity import credentials
from tests.browser.conftest import STAFF_PASSWORD as PASSWORD
from tests.browser.conftest import create_committed_staff

ICHINOMIYA = "232033"
AICHI = "230006"


async def test_simulator_shows_the_fee_for_each_method_and_a_chart(page) -> None:
    await page.goto(f"/t/{ICHINOMIYA}/")
    await page.get_by_role("link", name="負担額シミュレーター").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("参加前の負担額シミュレーター")
    await page.get_by_label("共通サービス").select_option(label="窓口DXSaaS")
    await page.get_by_label("年間総経費（円）").fill("100,000,000")
    await page.get_by_label("あと何団体が参加するか").fill("0")
    await page.get_by_role("button", name="試算する").click()
    alone = page.locator('[data-method="equal"]')
    await expect(alone).to_have_text("100,000,000 円")  # the first to join pays it all

    await page.get_by_label("あと何団体が参加するか").fill("30")
    await page.get_by_role("button", name="試算する").click()
    await expect(page.get_by_role("heading", name="窓口DXSaaS: あと 30 団体が参加すると")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"extra=30"))  # htmx keeps the URL shareable
    equal = int((await page.locator('[data-method="equal"]').inner_text()).replace(",", "").replace(" 円", ""))
    assert abs(equal - 100_000_000 / 31) < 1
    for method in ("population", "weighted"):
        text = await page.locator(f'[data-method="{method}"]').inner_text()
        assert int(text.replace(",", "").replace(" 円", "")) < 100_000_000
    chart = page.get_by_role("img", name="参加団体の増加と一宮市の負担額")
    await expect(chart).to_be_visible()
    assert await chart.locator("polyline").count() == 3

    await page.get_by_label("あと何団体が参加するか").fill("多数")
    await page.get_by_role("button", name="試算する").click()
    await expect(page.get_by_role("alert")).to_contain_text("0以上の整数で入力してください")


@pytest_asyncio.fixture(loop_scope="session")
async def aichi_secretariat(test_database):
    return await create_committed_staff(test_database, AICHI, "愛知 事務局")


async def test_aichi_secretariat_allocates_by_weighted_population(page, aichi_secretariat) -> None:
    username, secret = aichi_secretariat
    await page.goto("/consortia/aichi-e-gov")
    await page.get_by_role("link", name=re.compile("事務局の画面")).click()
    await page.get_by_label("ユーザー名").fill(username)
    await page.get_by_label("パスワード").fill(PASSWORD)
    await page.get_by_role("button", name="次へ").click()
    await page.get_by_label("確認コード（6桁）").fill(credentials.totp_code(secret))
    await page.get_by_role("button", name="サインイン").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("あいち電子自治体推進協議会: 負担金の算定")

    await page.get_by_label("システム").select_option(value="aichi-e-shinsei")
    await page.get_by_label("総経費（円）").fill("98765432")
    await page.get_by_label("配分の方法").select_option(label="人口按分+重み係数")
    await page.get_by_label("重み係数 r").fill("1.5")
    await page.get_by_role("button", name="算定する").click()
    await expect(page.locator("#allocation-total")).to_have_text(
        "負担金の合計 98,765,432 円（54 団体） — 負担する額と一致")
    rows = page.locator("#allocation-table tbody tr")
    await expect(rows).to_have_count(54)
    ichinomiya = rows.filter(has_text="一宮市")
    await expect(ichinomiya).to_contain_text(re.compile(r"人口 [\d,]+ 人 → 重み [\d,.]+ → 総額の \d+\.\d\d%"))
    fees = [int(t.replace(",", "")) for t in await page.locator("#allocation-table tbody td.num").all_inner_texts()]
    assert sum(fees) == 98_765_432
