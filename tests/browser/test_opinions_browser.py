"""Issue #13 item 8 (意見照会) in a real browser: 内閣官房 writes a draft in sections and announces
it; 鶴岡市 and 会津若松市 comment on a 390 px phone (会津若松市 first sees its error with what it
typed kept); one cannot open the other's comment (404); the secretariat classifies and answers both
with one answer and publishes; the public table shows both comments with 市区町村, not the names.
Tenants no other test uses; what the story commits to the opinion tables is removed afterwards."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest_asyncio
from playwright.async_api import expect
from sqlalchemy import text

from kiban.modules.opinions import service
from tests.browser.conftest import create_committed_staff, sign_in

CABINET, TSURUOKA, AIZU = "000086", "062031", "072028"  # 内閣官房, 鶴岡市, 会津若松市


@pytest_asyncio.fixture(loop_scope="session")
async def people(test_database):
    made = {code: await create_committed_staff(test_database, code, f"意見照会 {code}")
            for code in (CABINET, TSURUOKA, AIZU)}
    yield made
    from sqlalchemy.ext.asyncio import AsyncSession

    from kiban.kit.db import create_engine

    engine = create_engine(test_database.owner_url, pool=False)
    try:
        async with AsyncSession(engine) as session:
            for table in ("opinion_review", "opinion_answer", "opinion_comment", "opinion_consultation"):
                await session.execute(text(f"DELETE FROM {table} WHERE lg_code IN (:a, :b, :c)"),
                                      {"a": CABINET, "b": TSURUOKA, "c": AIZU})
            await session.commit()
    finally:
        await engine.dispose()


async def _tab(browser, live_server, person, width: int = 390):
    context = await browser.new_context(base_url=live_server, locale="ja-JP",
                                        viewport={"width": width, "height": 844 if width < 500 else 900})
    tab = await context.new_page()
    await sign_in(tab, *person)
    return context, tab


async def _no_sideways_scroll(tab) -> None:
    assert await tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


async def test_a_draft_is_consulted_commented_on_a_phone_answered_and_published(browser, live_server, people) -> None:
    marker = f"{uuid.uuid4().int % 10**6:06d}"
    title = f"ブラウザ試験の基本方針案 {marker}"
    today = service.today()

    ministry_context, ministry = await _tab(browser, live_server, people[CABINET], width=1280)
    await ministry.goto(f"/t/{CABINET}/opinions")
    await ministry.get_by_role("link", name="意見照会を作る").click()
    await ministry.get_by_label("件名").fill(title)
    await ministry.get_by_label("本文").fill("# 1 基本的な考え方\n試験の総論。\n# 2(1) 共通化すべき業務・システムの基準\n試験の基準。")
    await ministry.get_by_label("受付開始日").fill((today - timedelta(days=1)).isoformat())
    await ministry.get_by_label("締切日（この日まで受け付けます）").fill((today + timedelta(days=14)).isoformat())
    await ministry.get_by_label("市区町村", exact=True).check()
    await ministry.get_by_role("button", name="下書きとして保存する").click()
    await expect(ministry.get_by_role("status")).to_contain_text("下書きとして保存しました")
    consultation_url = ministry.url.split("?")[0]
    consultation_id = consultation_url.rsplit("/", 1)[1]
    await ministry.get_by_role("checkbox", name="公開を確認しました").check()
    await ministry.get_by_role("button", name="公開する").click()
    await expect(ministry.get_by_role("status")).to_contain_text("意見照会を公開しました")

    # 鶴岡市 comments on 2(1) on a phone.
    tsuruoka_context, tab = await _tab(browser, live_server, people[TSURUOKA])
    await tab.goto(f"/t/{TSURUOKA}/opinions")
    await tab.get_by_role("link", name=title).click()
    # The consultation's own page, loaded, before its width is measured (measured mid-navigation,
    # the document can be gone: CI saw documentElement null under load).
    await expect(tab).to_have_url(re.compile(f"/opinions/{consultation_id}$"))
    await tab.wait_for_load_state()
    await _no_sideways_scroll(tab)
    section = tab.locator("#s2")
    await section.get_by_text("この節に意見・質問を出す").click()
    await section.get_by_label("意見・質問の内容").fill("対象を選ぶ前に、小規模な市町村の事務の実情を聴いてほしい。")
    await section.get_by_label("修正案（意見のとき）").fill("「地方の実情を丁寧に聴く」を加える。")
    await section.get_by_role("button", name="提出する").click()
    await expect(tab.get_by_role("status")).to_contain_text("意見を提出しました")
    await _no_sideways_scroll(tab)
    own_link = tab.locator("#s2").get_by_role("link", name=re.compile("意見: 対象を選ぶ前に"))
    tsuruoka_comment = (await own_link.get_attribute("href")).rsplit("/", 1)[1]

    # 会津若松市 forgets the text first: the error shows at once and what it typed stays.
    aizu_context, aizu = await _tab(browser, live_server, people[AIZU])
    await aizu.goto(f"/t/{AIZU}/opinions/{consultation_id}")
    section = aizu.locator("#s2")
    await section.get_by_text("この節に意見・質問を出す").click()
    await section.get_by_label("修正案（意見のとき）").fill("「町村の声を聴く」を加える。")
    await section.get_by_role("button", name="提出する").click()
    await expect(aizu.get_by_role("alert")).to_contain_text("意見・質問の内容を入力してください")
    await expect(aizu.locator("#s2").get_by_label("修正案（意見のとき）")).to_have_value("「町村の声を聴く」を加える。")
    await aizu.locator("#s2").get_by_label("意見・質問の内容").fill("町村の実情を聴いてから対象を選んでほしい。")
    await aizu.locator("#s2").get_by_role("button", name="提出する").click()
    await expect(aizu.get_by_role("status")).to_contain_text("意見を提出しました")
    await _no_sideways_scroll(aizu)
    # 会津若松市 never sees 鶴岡市's comment.
    response = await aizu.goto(f"/t/{AIZU}/opinions/{consultation_id}/comments/{tsuruoka_comment}")
    assert response.status == 404
    await expect(aizu.locator("body")).not_to_contain_text("小規模な市町村の事務の実情")
    await aizu_context.close()

    # The secretariat gives both comments one answer and publishes.
    await ministry.goto(f"{consultation_url}/review")
    await expect(ministry.locator("body")).to_contain_text("鶴岡市")
    await expect(ministry.locator("body")).to_contain_text("会津若松市")
    for box in await ministry.get_by_role("checkbox", name=re.compile("2\\(1\\)")).all():
        await box.check()
    await ministry.get_by_label("対応の分類").select_option(label="御意見を踏まえ修正")
    await ministry.get_by_label("新しい回答（考え方）").fill("御意見を踏まえ、地方の実情を丁寧に聴く旨を追記します。")
    await ministry.get_by_role("button", name="分類と回答を保存する").click()
    await expect(ministry.get_by_role("status")).to_contain_text("分類し、回答を付けました")
    await ministry.get_by_role("checkbox", name="公表を確認しました").check()
    await ministry.get_by_role("button", name="公表する").click()
    await expect(ministry.get_by_role("status")).to_contain_text("意見と回答の一覧を公表しました")
    await ministry_context.close()

    # The public table on a phone: both comments, the answer, 市区町村 and no names.
    await tab.goto(f"/opinions/{consultation_id}")
    body = tab.locator("main")
    await expect(body).to_contain_text("小規模な市町村の事務の実情")
    await expect(body).to_contain_text("町村の実情を聴いてから")
    await expect(body).to_contain_text("御意見を踏まえ修正")
    await expect(body).to_contain_text("市区町村")
    await expect(body).not_to_contain_text("鶴岡市")
    await expect(body).not_to_contain_text("会津若松市")
    await _no_sideways_scroll(tab)
    await tsuruoka_context.close()
