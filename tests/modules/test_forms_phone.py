"""電子申請 in a real browser at a 390 px phone width: a resident opens a published form, sends it
empty and sees every error at once, fills in the address from the postal code, confirms and gets
a receipt number; no page scrolls sideways. The form is committed in 鳥羽市 under a slug no other
test uses (the live server reads committed data)."""

from __future__ import annotations

import re
import uuid

import pytest_asyncio

from tests.browser.conftest import browser, live_server  # noqa: F401 - fixtures

# A tenant no other test reads: a submission committed here is metered, and 一宮市's metered
# usage is what tests/modules/test_metered_costs.py sums.
TOBA = "242110"  # 鳥羽市
PHONE = {"width": 390, "height": 844}
FIELDS = [
    {"type": "text", "label": "お名前（全角で入力してください。長い質問文でも画面の幅に収まります）", "required": True},
    {"type": "email", "label": "メールアドレス", "required": False},
    {"type": "choice", "label": "品目", "required": True, "options": ["たんす・棚", "自転車", "その他"]},
    {"type": "text", "label": "その他の内容", "required": True, "show_if": {"field": "q3", "equals": "その他"}},
    {"type": "number", "label": "点数", "required": True, "min": 1, "max": 10},
    {"type": "date", "label": "収集の希望日", "required": True},
    {"type": "checkboxes", "label": "連絡方法", "options": ["電話", "メール"]},
    {"type": "address", "label": "収集場所の住所", "required": True},
    {"type": "textarea", "label": "連絡事項"},
    # A repeating group and an attachment (optional: the five errors above stay five) must fit too.
    {"type": "group", "label": "同居のご家族", "max_items": 3,
     "subfields": [{"label": "氏名", "type": "text"}, {"label": "生年月日", "type": "date"}]},
    {"type": "file", "label": "粗大ごみの写真", "accept": ["jpeg", "png"], "max_mb": 5},
]


@pytest_asyncio.fixture(loop_scope="session")
async def published(test_database) -> str:
    from sqlalchemy.ext.asyncio import AsyncSession

    from kiban.core.registry import service as registry
    from kiban.core.tenancy.context import bind_tenant
    from kiban.kit.db import create_engine
    from kiban.modules.forms import service

    slug = f"phone-{uuid.uuid4().hex[:8]}"
    engine = create_engine(test_database.owner_url, pool=False)
    try:
        async with AsyncSession(engine) as session:
            await bind_tenant(session, await registry.tenant_for(session, TOBA))
            form = await service.create_form(session, service.FormSettings(
                title="粗大ごみ収集の申込（スマートフォン幅の試験）", slug=slug, contact="鳥羽市 環境課 0599-00-0000"),
                actor="browser test")
            await service.replace_fields(session, form, FIELDS, actor="browser test", expected_version=None)
            await service.publish(session, form, actor="browser test", expected_version=None)
            await session.commit()
    finally:
        await engine.dispose()
    return slug


async def _scroll_width(page) -> int:
    return await page.evaluate("document.scrollingElement.scrollWidth")


async def test_a_resident_applies_from_a_phone_without_sideways_scrolling(browser, live_server, published) -> None:  # noqa: F811
    context = await browser.new_context(base_url=live_server, locale="ja-JP", viewport=PHONE)
    page = await context.new_page()
    await page.goto(f"/f/{TOBA}/{published}")
    assert await _scroll_width(page) <= PHONE["width"]

    await page.get_by_role("button", name="入力内容を確認する").click()
    summary = page.locator("#problems")
    await summary.wait_for()
    assert "次の5点を直してください" in await summary.inner_text()
    assert await page.locator(".field-error").count() == 5
    assert await _scroll_width(page) <= PHONE["width"]

    await page.get_by_label("お名前（全角で入力してください。長い質問文でも画面の幅に収まります）").fill("一宮 花子")
    await page.get_by_label("メールアドレス").fill("hanako@example.jp")
    await page.get_by_label("自転車").check()
    await page.get_by_label("点数").fill("2")
    await page.get_by_label("収集の希望日").fill("2027-01-15")
    await page.get_by_label("郵便番号（7桁）").fill("491-0858")
    await page.get_by_role("button", name="郵便番号から住所を入力").click()
    await page.get_by_text("郵便番号から住所を入力しました").wait_for()
    assert await page.get_by_label("市区町村").input_value() == "一宮市"
    assert await page.get_by_label("お名前（全角で入力してください。長い質問文でも画面の幅に収まります）").input_value() == "一宮 花子"
    await page.get_by_label("番地・建物名").fill("1-2-3 一宮ハイツ101号室")
    await page.get_by_role("button", name="行を追加する").click()  # a second row, what was typed kept
    await page.locator("#a_q10_1_s1").wait_for()
    assert await page.get_by_label("番地・建物名").input_value() == "1-2-3 一宮ハイツ101号室"
    await page.locator("#a_q10_0_s1").fill("一宮 太郎")
    await page.locator("#a_q10_1_s1").fill("一宮 次郎")
    assert await _scroll_width(page) <= PHONE["width"]
    await page.get_by_role("button", name="入力内容を確認する").click()

    await page.get_by_role("heading", name="入力内容の確認").wait_for()
    assert "〒491-0858 愛知県一宮市栄1-2-3 一宮ハイツ101号室" in await page.content()
    assert "2. 氏名: 一宮 次郎" in await page.content()
    assert await _scroll_width(page) <= PHONE["width"]
    await page.get_by_role("button", name="送信する").click()
    await page.get_by_role("heading", name="申請を受け付けました").wait_for()
    receipt = await page.locator("#receipt-no").inner_text()
    assert re.fullmatch(r"\d{8}-\d{4}-\d{4}", receipt)
    assert await _scroll_width(page) <= PHONE["width"]
    await context.close()
