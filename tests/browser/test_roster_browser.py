"""Issue #9 item 2 in a real browser, at phone width: 室戸市 takes the labels from its registration
form, downloads the roster template (whose header is those labels), uploads a roster written with
them, confirms the split the page proposes for a name written without a space, imports, and sees the
same people flagged 登録済み when the roster comes again. 高知県 and 室戸市 hold data no other test reads."""

from __future__ import annotations

import csv
import io
import re

import pytest_asyncio
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import expect

from tests.browser.conftest import create_committed_staff, sign_in

KOCHI, MUROTO = "390003", "392022"


@pytest_asyncio.fixture(loop_scope="session")
async def cast(test_database) -> dict[str, tuple[str, bytes]]:
    return {code: await create_committed_staff(test_database, code, f"{name} 職員")
            for code, name in ((KOCHI, "高知県"), (MUROTO, "室戸市"))}


async def _signed_in(browser, live_server, account):
    context = await browser.new_context(base_url=live_server, locale="ja-JP", viewport={"width": 390, "height": 844},
                                        accept_downloads=True)
    page = await context.new_page()
    await sign_in(page, *account)
    await expect(page.get_by_role("button", name="サインアウト")).to_be_visible()
    return page


async def _label_text(page, input_id: str) -> str:
    """What the form calls a field: its label without the hint or the 必須 mark."""
    return (await page.locator(f'label[for="{input_id}"]').evaluate("el => el.childNodes[0].textContent")).strip()


async def test_a_roster_written_with_the_forms_labels_imports_with_a_confirmed_split(browser, live_server, cast) -> None:
    kochi = await _signed_in(browser, live_server, cast[KOCHI])
    await kochi.goto(f"/t/{KOCHI}/disasters")
    await kochi.get_by_label("名称").fill("令和8年室戸沖地震（名簿の試験）")
    await kochi.get_by_label("発生日").fill("2026-11-01")
    await kochi.get_by_label(re.compile("被害のある市町村の団体コード")).fill(MUROTO)
    await kochi.get_by_label(re.compile("災害救助法を適用する")).fill(MUROTO)
    await kochi.get_by_role("button", name="開設する").click()
    await expect(kochi.get_by_role("heading", level=1)).to_have_text("令和8年室戸沖地震（名簿の試験）")
    disaster_path = re.search(r"/disasters/[0-9a-f-]+", kochi.url).group(0)

    muroto = await _signed_in(browser, live_server, cast[MUROTO])
    await muroto.goto(f"/t/{MUROTO}{disaster_path}")
    await muroto.get_by_label("避難所の名称").fill("室戸中学校")
    await muroto.get_by_role("button", name="開設する").click()
    await expect(muroto.get_by_role("cell", name="室戸中学校", exact=True)).to_be_visible()

    # The labels of the registration form, as staff see them.
    await muroto.goto(f"/t/{MUROTO}{disaster_path}/records/new")
    family, given, home_code = [await _label_text(muroto, i) for i in ("r-family", "r-given", "r-home-code")]
    damage, wide = await _label_text(muroto, "r-damage"), await _label_text(muroto, "r-wide")
    whereabouts = await _label_text(muroto, "r-where")
    assert (family, given, home_code, whereabouts, damage) == (
        "氏（漢字）", "名（漢字）", "住所地の団体コードまたは団体名", "現在の居場所", "住家の被害")
    assert wide.startswith("広域避難先の団体コードまたは団体名")

    # The template's header is those labels.
    await muroto.goto(f"/t/{MUROTO}{disaster_path}/imports")
    async with muroto.expect_download() as info:
        await muroto.get_by_role("link", name="CSV のひな形をダウンロード").click()
    download = await info.value
    header = (await download.path()).read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    # The code columns are headed by the field's name; the form's longer label is read as it too.
    assert {family, given, "住所地の団体コード", whereabouts, damage, "広域避難先の団体コード"} <= set(header)

    # A roster written with the form's labels; one name written without a space, in the 氏 column.
    columns = [family, given, home_code, whereabouts, "避難所名", damage, "生年月日"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerow(["室戸", "一郎", MUROTO, "避難所", "室戸中学校", "全壊", "1950-03-03"])
    writer.writerow(["山田太郎", "", MUROTO, "在宅", "", "半壊", "1960-06-06"])
    roster = {"name": "名簿.csv", "mimeType": "text/csv", "buffer": ("\ufeff" + buffer.getvalue()).encode()}
    await muroto.get_by_label(re.compile("名簿のファイル")).set_input_files(roster)
    await muroto.get_by_role("button", name="読み込んで確認する").click()
    await expect(muroto.locator("p.result-summary")).to_contain_text("正しい行 2・誤りのある行 0")
    await expect(muroto.locator(".alert--warning")).to_have_count(0)  # every label read, none dropped
    await expect(muroto.locator("#line-3")).to_contain_text("山田 太郎 と分けて登録します（確認してください）")
    await expect(muroto.get_by_label("氏（3行目）")).to_have_value("山田")
    await expect(muroto.get_by_label("名（3行目）")).to_have_value("太郎")
    await _no_serious_violations(muroto)
    assert await muroto.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    # Accepting without confirming is refused and registers nothing; confirming registers both.
    await muroto.get_by_role("button", name="取り込む").click()
    await expect(muroto.get_by_role("alert")).to_contain_text("氏と名の分け方を確認していない行があります（3行目）")
    await muroto.get_by_label("この分け方で登録する（3行目）").check()
    await muroto.get_by_role("button", name="取り込む").click()
    await expect(muroto.locator("p.result-summary")).to_contain_text("新たに登録 2 人")
    await muroto.goto(f"/t/{MUROTO}{disaster_path}")
    await expect(muroto.get_by_role("link", name="山田 太郎")).to_be_visible()

    # The same roster again: both people are flagged 登録済み and nothing is proposed.
    await muroto.goto(f"/t/{MUROTO}{disaster_path}/imports")
    await muroto.get_by_label(re.compile("名簿のファイル")).set_input_files(roster)
    await muroto.get_by_role("button", name="読み込んで確認する").click()
    await expect(muroto.locator("p.result-summary")).to_contain_text("登録済み 2行は取り込みません")
    await expect(muroto.locator("#line-2")).to_contain_text("登録済み")
    await expect(muroto.locator("#line-3")).to_contain_text("登録済み")
    await expect(muroto.get_by_label("この分け方で登録する（3行目）")).to_have_count(0)
    for page in (kochi, muroto):
        await page.context.close()


async def _no_serious_violations(page) -> None:
    results = await Axe().run(page)
    blocking = [f"{v['id']} ({v['impact']}): {v['help']}" for v in results.response["violations"]
                if v["impact"] in {"serious", "critical"}]
    assert blocking == [], (page.url, blocking)
