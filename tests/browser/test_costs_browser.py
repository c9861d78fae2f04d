"""Issue #4 in a real browser: a municipality tries the simulator before joining, and the
Aichi secretariat allocates a system's cost by 人口按分+重み係数."""

from __future__ import annotations

import re

import pytest_asyncio
from playwright.async_api import expect

from tests.browser.conftest import create_committed_staff, sign_in

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
    # The public page offers the secretariat's screen only to the secretariat's staff (others would get 404).
    await page.goto("/consortia/aichi-e-gov")
    await expect(page.get_by_role("link", name=re.compile("事務局の画面"))).to_have_count(0)
    await sign_in(page, username, secret)
    await page.goto("/consortia/aichi-e-gov")
    await page.get_by_role("link", name=re.compile("事務局の画面")).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("あいち電子自治体推進協議会: 負担金の算定")

    await page.get_by_label(re.compile("^システム")).select_option(value="aichi-e-shinsei")
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


# -- 差替: a second schedule for the same system and year replaces the first ------------------------------

TOBISHIMA = "234273"
REPLACEMENT_YEAR = "2031"  # a year no other test decides, so counts elsewhere are not disturbed


@pytest_asyncio.fixture(loop_scope="session")
async def replacement_people(test_database):
    """A secretariat and a member (飛島村), committed; the schedules they leave are removed after."""
    secretariat = await create_committed_staff(test_database, AICHI, "愛知 事務局 差替")
    member = await create_committed_staff(test_database, TOBISHIMA, "飛島村 財政担当")
    yield secretariat, member
    from sqlalchemy import delete
    from sqlalchemy.ext.asyncio import AsyncSession

    from kiban.core.tenancy.context import unscoped
    from kiban.kit.db import create_engine
    from kiban.modules.costs.models import FeeSchedule, FeeStatement

    engine = create_engine(test_database.owner_url, pool=False)
    try:
        async with AsyncSession(engine) as session, unscoped(session, "test: remove the browser test's schedules"):
            await session.execute(delete(FeeStatement).where(FeeStatement.fiscal_year == int(REPLACEMENT_YEAR)))
            await session.execute(delete(FeeSchedule).where(FeeSchedule.fiscal_year == int(REPLACEMENT_YEAR)))
            await session.commit()
    finally:
        await engine.dispose()


async def _calculate(page, amount: str) -> None:
    await page.goto(f"/t/{AICHI}/consortia/aichi-e-gov")
    await page.get_by_label(re.compile("^システム")).select_option(value="aichi-cals-ec")
    await page.get_by_label("総経費（円）").fill(amount)
    await page.get_by_label("年度（西暦）").fill(REPLACEMENT_YEAR)
    await page.get_by_role("button", name="算定する").click()
    await expect(page.locator("#allocation-total")).to_contain_text(f"負担金の合計 {amount} 円（54 団体）")


async def test_a_secretariat_replaces_a_decided_schedule_and_the_member_sees_which_is_in_force(
        page, browser, live_server, replacement_people) -> None:
    (secretariat, secretariat_secret), (member, member_secret) = replacement_people
    await sign_in(page, secretariat, secretariat_secret)

    await _calculate(page, "30,000,000")
    await page.get_by_label("納付期限").fill(f"{REPLACEMENT_YEAR}-05-31")
    await page.get_by_role("button", name="この内容で決定し、算定書を交付する").click()
    await expect(page.locator("#schedule-status")).to_contain_text("有効")
    await expect(page.get_by_text(f"{REPLACEMENT_YEAR}-001（各団体の算定書は")).to_be_visible()

    # The same system and year again: the page says a schedule is in force and asks for 差替 and a reason.
    await _calculate(page, "27,000,000")
    await expect(page.locator("#replacement-notice")).to_contain_text(f"文書番号 {REPLACEMENT_YEAR}-001")
    await page.get_by_label("納付期限").fill(f"{REPLACEMENT_YEAR}-06-30")
    await page.get_by_role("button", name="差し替えて、新しい算定書を交付する").click()
    errors = page.get_by_role("alert")
    await expect(errors).to_contain_text("「決定済みの算定を差し替える」を選んでください")
    await expect(page.get_by_label("納付期限")).to_have_value(f"{REPLACEMENT_YEAR}-06-30")  # input kept

    await page.get_by_label(re.compile("決定済みの算定（文書番号")).check()
    await page.get_by_label("差替の理由").fill("契約変更により総経費を減額")
    await page.get_by_role("button", name="差し替えて、新しい算定書を交付する").click()
    await expect(page.locator("#schedule-status")).to_contain_text(f"文書番号 {REPLACEMENT_YEAR}-001 の算定を差し替えたもの")
    await expect(page.locator("#schedule-status")).to_contain_text("契約変更により総経費を減額")
    await page.locator("#schedule-status").get_by_role("link").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("（取消）")
    await expect(page.locator("#schedule-status").get_by_role("link")).to_contain_text(f"文書番号 {REPLACEMENT_YEAR}-002")

    # The member: the old statement is 取消 with a link to the new one, which is in force; both show 交付日時.
    context = await browser.new_context(base_url=live_server, locale="ja-JP")
    try:
        tab = await context.new_page()
        await sign_in(tab, member, member_secret)
        await tab.goto(f"/t/{TOBISHIMA}/statements")
        cancelled = tab.locator('#statement-table tr[data-status="cancelled"]').filter(
            has_text=f"{REPLACEMENT_YEAR}-001-{TOBISHIMA}")
        in_force = tab.locator('#statement-table tr[data-status="in-force"]').filter(
            has_text=f"{REPLACEMENT_YEAR}-002-{TOBISHIMA}")
        await expect(cancelled).to_contain_text("取消")
        await expect(cancelled).to_contain_text("契約変更により総経費を減額")
        await expect(in_force).to_contain_text("有効")
        await expect(in_force).to_contain_text("交付日時 令和")
        await cancelled.get_by_role("link", name=re.compile("差替後の算定書")).click()
        await expect(tab).to_have_url(re.compile(r"#statement-"))
        target = tab.url.rsplit("#", 1)[1]
        assert await in_force.get_attribute("id") == target
    finally:
        await context.close()
