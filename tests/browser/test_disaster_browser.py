"""Issue #5's story in a real browser: 石川県 opens the disaster; 輪島市 opens a shelter and
registers a family; 金沢市 registers one of them again with 髙 and half-width kana, sees the match
with its reasons and confirms it; 輪島市 accepts the confirmation and sees where he is now; an unrelated municipality gets 404;
内閣府's dashboard shows the counts. These tenants hold committed data no other test reads."""

from __future__ import annotations

import re

import pytest_asyncio
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import expect

from tests.browser.conftest import create_committed_staff, sign_in

ISHIKAWA, WAJIMA, KANAZAWA, TAKAOKA, CABINET_OFFICE = "170003", "172049", "172014", "162027", "000035"


@pytest_asyncio.fixture(loop_scope="session")
async def cast(test_database) -> dict[str, tuple[str, bytes]]:
    return {code: await create_committed_staff(test_database, code, f"{name} 職員") for code, name in (
        (ISHIKAWA, "石川県"), (WAJIMA, "輪島市"), (KANAZAWA, "金沢市"), (TAKAOKA, "高岡市"), (CABINET_OFFICE, "内閣府"))}


async def _signed_in(browser, live_server, account) -> object:
    context = await browser.new_context(base_url=live_server, locale="ja-JP", viewport={"width": 390, "height": 844})
    page = await context.new_page()
    await sign_in(page, *account)
    await expect(page.get_by_role("button", name="サインアウト")).to_be_visible()
    return page


async def _no_serious_violations(page) -> None:
    results = await Axe().run(page)
    blocking = [f"{v['id']} ({v['impact']}): {v['help']}" for v in results.response["violations"]
                if v["impact"] in {"serious", "critical"}]
    assert blocking == [], (page.url, blocking)


async def _register(page, fields: dict[str, str], shelter: str) -> None:
    await page.get_by_role("link", name="被災者を登録する").click()
    for label, value in fields.items():
        pattern = "^" + (re.escape(label[:-1]) + "$" if label.endswith("$") else re.escape(label))
        await page.get_by_label(re.compile(pattern)).fill(value)
    await page.get_by_label("性別").select_option(label="男" if fields.get("名（漢字）") in ("健太", "翔") else "女")
    await page.get_by_label("現在の居場所", exact=True).select_option(label="避難所")
    await page.get_by_label("避難所（居場所が避難所のとき）").select_option(label=shelter)
    await page.get_by_role("button", name="登録する").click()
    await expect(page.get_by_role("heading", level=2, name="名寄せの候補（同じ人かもしれない記録）")).to_be_visible()


async def test_a_family_is_found_across_municipal_borders(browser, live_server, cast) -> None:
    # 石川県 opens the disaster.
    ishikawa = await _signed_in(browser, live_server, cast[ISHIKAWA])
    await ishikawa.goto(f"/t/{ISHIKAWA}/disasters")
    await ishikawa.get_by_label("名称").fill("令和8年能登北部地震（ブラウザ試験）")
    await ishikawa.get_by_label("発生日").fill("2026-11-01")
    await ishikawa.get_by_label(re.compile("被害のある市町村の団体コード")).fill(f"{WAJIMA}, 172057")
    await ishikawa.get_by_label(re.compile("災害救助法を適用する")).fill(WAJIMA)
    await ishikawa.get_by_role("button", name="開設する").click()
    await expect(ishikawa.get_by_role("heading", level=1)).to_have_text("令和8年能登北部地震（ブラウザ試験）")
    disaster_path = re.search(r"/disasters/[0-9a-f-]+", ishikawa.url).group(0)

    # 輪島市 opens a shelter from a phone-sized screen and registers a family.
    wajima = await _signed_in(browser, live_server, cast[WAJIMA])
    await wajima.goto(f"/t/{WAJIMA}{disaster_path}")
    await wajima.get_by_label("避難所の名称").fill("輪島中学校")
    await wajima.get_by_label("収容人数").fill("300")
    await wajima.get_by_role("button", name="開設する").click()
    await expect(wajima.get_by_role("cell", name="輪島中学校", exact=True)).to_be_visible()
    family = {"氏（漢字）": "高橋", "氏（フリガナ）": "タカハシ", "住所地の団体コード": WAJIMA, "住所$": "輪島市河井町2-3-4",
              "世帯番号": "W-1", "世帯人数": "3", "連絡先の電話番号": "0768-22-1234"}
    for given, kana, born in (("健太", "ケンタ", "1980-05-12"), ("美咲", "ミサキ", "1982-08-03"), ("翔", "ショウ", "2015-04-20")):
        await wajima.goto(f"/t/{WAJIMA}{disaster_path}")
        await _register(wajima, {**family, "名（漢字）": given, "名（フリガナ）": kana, "生年月日": born}, "輪島中学校")

    # 金沢市 registers 健太 again: 髙, half-width kana, in its own shelter.
    kanazawa = await _signed_in(browser, live_server, cast[KANAZAWA])
    await kanazawa.goto(f"/t/{KANAZAWA}{disaster_path}")
    await kanazawa.get_by_label("避難所の名称").fill("金沢市総合体育館")
    await kanazawa.get_by_role("button", name="開設する").click()
    await _register(kanazawa, {"氏（漢字）": "髙橋", "名（漢字）": "健太", "氏（フリガナ）": "ﾀｶﾊｼ", "名（フリガナ）": "ｹﾝﾀ",
                               "生年月日": "1980-05-12", "住所地の団体コード": WAJIMA, "住所$": "輪島市河井町2丁目3番4号"},
                    "金沢市総合体育館")
    candidate = kanazawa.locator("#candidates li.card").filter(has_text="輪島市が登録").first
    await expect(candidate).to_contain_text("高橋 健太")
    await expect(candidate).to_contain_text("異体字")
    await expect(candidate).to_contain_text("生年月日が一致")
    await candidate.get_by_role("button", name=re.compile("同じ人として統合")).click()
    # Across municipalities this only asks 輪島市: nothing of its record is shown until it accepts.
    await expect(kanazawa.locator("#waiting")).to_contain_text("輪島市が受け入れるまで、その記録の内容は表示されません")
    await expect(kanazawa.locator("#linked")).to_have_count(0)
    await _no_serious_violations(kanazawa)  # the record page with candidates, decisions and support

    # 輪島市 finds the request on its workspace and accepts it on its own record.
    await wajima.goto(f"/t/{WAJIMA}{disaster_path}")
    await wajima.get_by_role("link", name=re.compile("金沢市からの依頼")).click()
    await expect(wajima.locator("#requests")).to_contain_text("金沢市の記録: 髙橋 健太")
    await _no_serious_violations(wajima)  # the record page with a request to answer
    await wajima.get_by_role("button", name=re.compile("同じ人として受け入れる")).click()
    await expect(wajima.locator("#linked")).to_contain_text("金沢市が登録: 髙橋 健太 — 避難所（金沢市）")
    await kanazawa.reload()
    await expect(kanazawa.locator("#linked")).to_contain_text("輪島市が登録: 高橋 健太")

    # The home municipality sees where he is now.
    await wajima.goto(f"/t/{WAJIMA}{disaster_path}")
    await wajima.get_by_role("link", name="髙橋 健太").click()
    await expect(wajima.locator("#whereabouts")).to_have_text("避難所（金沢市）")
    await expect(wajima.get_by_role("note")).to_contain_text("金沢市が登録した記録です")
    record_path = wajima.url.split(live_server, 1)[1].replace(f"/t/{WAJIMA}", "")

    # An unrelated municipality: 404, and nothing in its list.
    takaoka = await _signed_in(browser, live_server, cast[TAKAOKA])
    response = await takaoka.goto(f"/t/{TAKAOKA}{record_path}")
    assert response.status == 404
    await expect(takaoka.get_by_role("heading", level=1)).to_contain_text("見つかりません")
    await takaoka.goto(f"/t/{TAKAOKA}{disaster_path}")
    await expect(takaoka.locator("p.result-summary")).to_have_text("0 件")

    # 内閣府: the national dashboard with the counts, small ones suppressed.
    cabinet = await _signed_in(browser, live_server, cast[CABINET_OFFICE])
    await cabinet.goto(f"/t/{CABINET_OFFICE}{disaster_path}/dashboard")
    await expect(cabinet.locator("#dashboard-total")).to_have_text("登録 4 件・3 人（名寄せ後）")
    await expect(cabinet.get_by_text("10未満").first).to_be_visible()
    await _no_serious_violations(cabinet)
    for path in ("", "/imports", "/records/new", "/dashboard"):  # workspace, import, registration form at phone width
        await wajima.goto(f"/t/{WAJIMA}{disaster_path}{path}")
        await _no_serious_violations(wajima)
    for page in (ishikawa, wajima, kanazawa, takaoka, cabinet):
        await page.context.close()
