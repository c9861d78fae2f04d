"""Issue #13's story in a real browser: 総務省 writes a survey relayed through prefectures, with a
question bound to population (prefilled) and one repeating an earlier survey's question (the
duplicate is shown); 札幌市 staff answer by uploading the .xlsx with one wrong cell, see the
error, fix it, and a certifier signs off; 北海道 sends 函館市's answer back with a comment and
approves 札幌市's; 総務省 sees progress and aggregates at once and exports them; 函館市 never
sees 札幌市's answer (404); the public results suppress small cells. These tenants (000027,
010006, 011002, 012025) hold committed data no other browser test reads."""

from __future__ import annotations

import io
import re
import uuid
from datetime import date, timedelta

import openpyxl
import pytest_asyncio
from playwright.async_api import expect

from tests.browser.conftest import STAFF_PASSWORD, sign_in

SOUMU, HOKKAIDO, SAPPORO, HAKODATE = "000027", "010006", "011002", "012025"
DEADLINE = (date.today() + timedelta(days=14)).isoformat()


async def _committed_staff(test_database, lg_code: str, name: str, role: str) -> tuple[str, bytes]:
    from sqlalchemy.ext.asyncio import AsyncSession

    from kiban.core.identity import credentials
    from kiban.core.identity import service as identity_service
    from kiban.kit.db import create_engine

    username = f"browser-{uuid.uuid4().hex[:8]}"
    secret = credentials.new_totp_secret()
    engine = create_engine(test_database.owner_url, pool=False)
    try:
        async with AsyncSession(engine) as session:
            await identity_service.create_staff(session, username=username, display_name=name, password=STAFF_PASSWORD,
                                                lg_code=lg_code, role=role, granted_by="browser test", totp_secret=secret)
            await session.commit()
    finally:
        await engine.dispose()
    return username, secret


async def _earlier_survey(test_database) -> str:
    """Last month's survey that already asked for the number of information-system staff."""
    from sqlalchemy.ext.asyncio import AsyncSession

    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.context import bind_tenant
    from kiban.kit.db import create_engine
    from kiban.modules.surveys import service

    title = f"情報化の現況調査 {uuid.uuid4().int % 10000:04d}"  # digits: it stays in the database other tests read
    engine = create_engine(test_database.owner_url, pool=False)
    try:
        async with AsyncSession(engine) as session:
            await bind_tenant(session, await registry_service.tenant_for(session, SOUMU))
            survey = await service.create_survey(session, service.Settings(
                title=title, deadline=DEADLINE, target_kind="list", codes=f"{SAPPORO} {HAKODATE}"), actor="総務省 担当")
            await service.add_question(session, survey, {"type": "number", "label": "貴団体の情報システム担当職員数"},
                                       expected_version=None)
            await service.send(session, survey, actor="総務省 担当", expected_version=None)
            await session.commit()
    finally:
        await engine.dispose()
    return title


@pytest_asyncio.fixture(loop_scope="session")
async def cast(test_database) -> dict[str, tuple[str, bytes]]:
    return {"soumu": await _committed_staff(test_database, SOUMU, "総務省 調査担当", "staff"),
            "hokkaido": await _committed_staff(test_database, HOKKAIDO, "北海道 市町村課", "staff"),
            "clerk": await _committed_staff(test_database, SAPPORO, "札幌 情報担当", "staff"),
            "chief": await _committed_staff(test_database, SAPPORO, "札幌 情報課長", "admin"),
            "hakodate": await _committed_staff(test_database, HAKODATE, "函館 情報担当", "admin"),
            "earlier": await _earlier_survey(test_database)}


async def _as(browser, live_server, account) -> object:
    context = await browser.new_context(base_url=live_server, locale="ja-JP", viewport={"width": 390, "height": 844},
                                        accept_downloads=True)
    page = await context.new_page()
    await sign_in(page, *account)
    await expect(page.get_by_role("button", name="サインアウト")).to_be_visible()
    return page


async def _fits(page) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), page.url


async def test_a_relayed_survey_from_writing_to_published_results(browser, live_server, cast) -> None:
    title = f"自治体DXの推進状況調査 {uuid.uuid4().int % 10000:04d}"
    # -- 総務省 writes the survey ------------------------------------------------------------------
    soumu = await _as(browser, live_server, cast["soumu"])
    await soumu.goto(f"/t/{SOUMU}/surveys")
    await soumu.get_by_label("調査の名前").fill(title)
    await soumu.get_by_label("回答期限").fill(DEADLINE)
    await soumu.get_by_label("1団体あたりの回答時間の見込み（分）").fill("40")
    await soumu.get_by_label(re.compile("経由調査")).check()
    await soumu.get_by_label("団体コードの一覧", exact=True).check()
    await soumu.get_by_label(re.compile("団体コードの一覧（")).fill(f"{SAPPORO} {HAKODATE}")
    await soumu.get_by_role("button", name="下書きを作る").click()
    await expect(soumu.get_by_role("heading", level=1)).to_have_text(title)
    await expect(soumu.locator("#burden-text")).to_contain_text("2 団体 × 40 分 ＝ 延べ 80 分")

    await soumu.get_by_label("質問文").fill("人口")
    await soumu.get_by_label(re.compile("プラットフォームのデータと連携")).select_option(label="人口（基本台帳）")
    await soumu.get_by_role("button", name="質問を追加する").click()
    await expect(soumu.locator("#q1")).to_contain_text("入力済みで届けます")
    await soumu.get_by_label("質問文").fill("情報システム担当職員数")
    await soumu.get_by_label("種類", exact=True).select_option(label="数値")
    await soumu.get_by_label("単位（数値・表）").fill("人")
    await soumu.get_by_label("最大値").fill("1000")
    await soumu.get_by_label("必須", exact=True).check()
    await soumu.get_by_role("button", name="質問を追加する").click()
    duplicate = soumu.locator("#q2 .duplicate")
    await expect(duplicate).to_contain_text("重複照会のおそれ")
    await expect(duplicate).to_contain_text(cast["earlier"])
    await _fits(soumu)
    await soumu.get_by_label(re.compile("送付先と負担の見込み.*を確認しました")).check()
    await soumu.get_by_role("button", name="送付する").click()
    await expect(soumu.locator("#response-rate")).to_contain_text("届いた回答 0 / 2 団体")

    # -- 札幌市 answers with the .xlsx form, a wrong cell first --------------------------------------
    clerk = await _as(browser, live_server, cast["clerk"])
    await clerk.goto(f"/t/{SAPPORO}/surveys")
    await clerk.get_by_role("link", name=title).click()
    sapporo_url = clerk.url.removeprefix(live_server)
    await expect(clerk.locator(".prefill")).to_contain_text("プラットフォームの値: 1,973,395")
    async with clerk.expect_download() as info:
        await clerk.get_by_role("link", name="回答様式（エクセル）をダウンロード").click()
    book = openpyxl.load_workbook(io.BytesIO((await (await info.value).path()).read_bytes()))
    assert book["回答"]["E6"].value == 1973395  # prefilled
    book["回答"]["E7"] = "約20"
    wrong = io.BytesIO()
    book.save(wrong)
    upload = {"name": "回答.xlsx", "mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
    await clerk.get_by_label("入力した回答様式").set_input_files({**upload, "buffer": wrong.getvalue()})
    await clerk.get_by_role("button", name="取り込む").click()
    await expect(clerk.get_by_role("alert")).to_contain_text("何も変更していません")
    await expect(clerk.locator(".upload-errors")).to_contain_text(
        "セル E7: 「情報システム担当職員数」は数値で入力してください（入力: 「約20」）。")
    await expect(clerk.get_by_label(re.compile("q2. 情報システム担当職員数"))).to_have_value("")
    book["回答"]["E7"] = 20
    right = io.BytesIO()
    book.save(right)
    await clerk.get_by_label("入力した回答様式").set_input_files({**upload, "buffer": right.getvalue()})
    await clerk.get_by_role("button", name="取り込む").click()
    await expect(clerk.get_by_text("エクセルの内容を取り込みました。")).to_be_visible()
    await expect(clerk.get_by_label(re.compile("q2. 情報システム担当職員数"))).to_have_value("20")
    await expect(clerk.get_by_role("button", name="この内容で決裁する")).to_have_count(0)  # staff cannot certify
    await _fits(clerk)

    chief = await _as(browser, live_server, cast["chief"])
    await chief.goto(sapporo_url)
    await chief.get_by_role("button", name="この内容で決裁する").click()
    await expect(chief.locator("#status")).to_have_text("決裁済み（未提出）")
    await chief.get_by_role("button", name="都道府県へ提出する").click()
    await expect(chief.locator("#status")).to_have_text("提出済み")

    # -- 函館市 answers on the page and never sees 札幌市's answer ----------------------------------------
    hakodate = await _as(browser, live_server, cast["hakodate"])
    rid = sapporo_url.rsplit("/", 1)[1]
    for url in (f"/t/{SAPPORO}/surveys/responses/{rid}", f"/t/{HAKODATE}/surveys/responses/{rid}"):
        assert (await hakodate.goto(url)).status == 404
    await hakodate.goto(f"/t/{HAKODATE}/surveys")
    await hakodate.get_by_role("link", name=title).click()
    await hakodate.get_by_label(re.compile("q2. 情報システム担当職員数")).fill("5")
    await expect(hakodate.locator("#autosave")).to_contain_text("下書きを保存しました")  # htmx, as one types
    await hakodate.get_by_role("button", name="この内容で決裁する").click()
    await hakodate.get_by_role("button", name="都道府県へ提出する").click()
    await expect(hakodate.locator("#status")).to_have_text("提出済み")

    # -- 北海道 returns 函館市's answer and approves 札幌市's ------------------------------------------------
    hokkaido = await _as(browser, live_server, cast["hokkaido"])
    await hokkaido.goto(f"/t/{HOKKAIDO}/surveys")
    await hokkaido.get_by_role("link", name=title).click()
    await hokkaido.locator(f'tr[data-lg-code="{HAKODATE}"]').get_by_role("link", name="函館市").click()
    await hokkaido.get_by_role("button", name="差し戻す").click()  # no comment: refused by the browser
    await hokkaido.get_by_label(re.compile("差し戻す理由")).fill("担当職員数に兼務の職員を含めてください。")
    await hokkaido.get_by_role("button", name="差し戻す").click()
    await expect(hokkaido.locator(f'tr[data-lg-code="{HAKODATE}"]')).to_contain_text("差戻し（修正待ち）")
    await hokkaido.locator(f'tr[data-lg-code="{SAPPORO}"]').get_by_role("link", name="札幌市").click()
    await hokkaido.get_by_role("button", name=re.compile("確認した")).click()
    await expect(hokkaido.locator(f'tr[data-lg-code="{SAPPORO}"]')).to_contain_text("都道府県確認済み")
    await hokkaido.get_by_role("button", name="確認した回答を送付元へ送る").click()
    await expect(hokkaido.get_by_text("1 団体の回答を送付元へ送りました。")).to_be_visible()

    await hakodate.reload()
    await expect(hakodate.get_by_text("都道府県から差し戻されました: 担当職員数に兼務の職員を含めてください。")).to_be_visible()

    # -- 総務省 sees progress and aggregates at once, exports, publishes ---------------------------------
    await soumu.reload()
    await expect(soumu.locator("#response-rate")).to_contain_text("届いた回答 1 / 2 団体")
    await expect(soumu.locator('tr[data-prefecture="010006"]')).to_contain_text("北海道")
    await expect(soumu.locator('[data-aggregate="q2"]')).to_contain_text("合計 20人")
    await expect(soumu.locator('[data-aggregate="q1"]')).to_contain_text("合計 1973395")
    async with soumu.expect_download() as info:
        await soumu.get_by_role("link", name="CSV で書き出す").click()
    lines = (await (await info.value).path()).read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("全国地方公共団体コード,団体名") and lines[1].startswith(f"{SAPPORO},札幌市,北海道")
    await _fits(soumu)
    await soumu.get_by_role("button", name="結果を公表する").click()
    await expect(soumu.get_by_role("heading", level=1)).to_have_text(f"{title}の結果")

    # -- the public results suppress small cells --------------------------------------------------------
    public = await browser.new_context(base_url=live_server, locale="ja-JP")
    anyone = await public.new_page()
    await anyone.goto(soumu.url.removeprefix(live_server) + "?q=q2")
    table = anyone.locator("#results-table")
    await expect(table).to_contain_text("秘匿")
    assert "20" not in (await table.inner_text()).replace("2026", "")
    for page in (soumu, clerk, chief, hakodate, hokkaido, anyone):
        await page.context.close()
