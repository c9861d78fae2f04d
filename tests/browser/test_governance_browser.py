"""Issue #15 in a real browser, the "Done when" story: 一宮市 submits a need for 施設予約 with its
costs and 更改時期 (the cost marked 非公開); 豊田市 and 山口県 endorse it; the grouped candidate shows
three bodies and their population; the secretariat (デジタル庁) fills the assessment and the
computed effect uses the figures given; the council decides 採択 with a reason; the catalog shows
the new service; 一宮市 sees its rollout year and expected fee; the public pages show the decision
but not 一宮市's confidential cost."""

from __future__ import annotations

import re
import uuid
from datetime import date
from decimal import Decimal

import pytest_asyncio
from playwright.async_api import expect

from kiban.kit import wareki
from kiban.modules.costs.allocation import Member, WeightedPopulation, allocate
from tests.browser.conftest import create_committed_staff, sign_in

ICHINOMIYA, TOYOTA, YAMAGUCHI, DIGITAL_AGENCY = "232033", "232114", "350001", "000019"
POPULATION = {ICHINOMIYA: 380_073, TOYOTA: 422_330, YAMAGUCHI: 1_342_059}


@pytest_asyncio.fixture(loop_scope="session")
async def people(test_database):
    return {code: await create_committed_staff(test_database, code, f"共通化 {code}")
            for code in (ICHINOMIYA, TOYOTA, YAMAGUCHI, DIGITAL_AGENCY)}


async def _tab(browser, live_server, person=None):
    context = await browser.new_context(base_url=live_server, locale="ja-JP", viewport={"width": 390, "height": 844})
    tab = await context.new_page()
    if person:
        await sign_in(tab, *person)
    return context, tab


async def _no_sideways_scroll(tab) -> None:
    assert await tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


async def _endorse(browser, live_server, person, lg_code: str, need_path: str, cost: str, renewal: str | None) -> None:
    context, tab = await _tab(browser, live_server, person)
    await tab.goto(f"/t/{lg_code}{need_path}")
    await expect(tab.locator("#need-annual-cost")).to_have_text("非公開")
    await tab.get_by_label("年間経費（円）").fill(cost)
    if renewal:
        await tab.get_by_role("textbox", name="更改時期").fill(renewal)
    await tab.get_by_role("button", name="賛同する").click()
    await expect(tab.get_by_role("status")).to_contain_text("賛同を登録しました")
    await context.close()


async def test_a_need_becomes_a_common_service_decided_in_the_open(browser, live_server, people) -> None:
    marker = f"{uuid.uuid4().int % 10**6:06d}"  # digits: pages other tests walk show only Japanese
    service_name = f"施設予約（共通化・ブラウザ試験 {marker}）"

    # 一宮市 submits its need, marking its cost 非公開. (Its tab stays open for the end of the story:
    # signing in again within the same 30 seconds would reuse a TOTP code, which is refused.)
    ichinomiya_context, tab = await _tab(browser, live_server, people[ICHINOMIYA])
    await tab.goto(f"/t/{ICHINOMIYA}/")
    await tab.get_by_role("link", name="共通化の課題と展開").click()
    await tab.get_by_role("link", name="課題を提出する").click()
    await tab.get_by_label("件名").fill("施設予約の電話受付と紙の台帳")
    await tab.get_by_label("業務（例: 施設予約）").fill("施設予約")
    await tab.get_by_label("困っていること").fill(
        "体育館や公民館の予約を電話と窓口で受け付け、紙の台帳で管理している。空き状況の問合せが多く、二重予約も起きる。")
    await tab.get_by_label("年間の作業時間（時間）").fill("800")
    await tab.get_by_label("年間経費（円）").fill("9,000,000")
    await tab.get_by_role("textbox", name="更改時期").fill("2027-02-28")
    await tab.get_by_role("checkbox", name="年間経費を非公開にする").check()
    await _no_sideways_scroll(tab)
    await tab.get_by_role("button", name="提出する").click()
    await expect(tab.get_by_role("status")).to_contain_text("課題を提出しました")
    await expect(tab.locator("#need-annual-cost")).to_have_text("9,000,000 円")
    need_path = re.search(r"/governance/needs/\d{6}/[0-9a-f-]{36}", tab.url).group(0)
    ichinomiya_tab = tab

    # 豊田市 and 山口県 endorse with their own figures (they see 非公開 for 一宮市's cost).
    await _endorse(browser, live_server, people[TOYOTA], TOYOTA, need_path, "12000000", "2028-06-30")
    await _endorse(browser, live_server, people[YAMAGUCHI], YAMAGUCHI, need_path, "30000000", None)

    # The secretariat turns the group into a candidate: three bodies and their population.
    context, tab = await _tab(browser, live_server, people[DIGITAL_AGENCY])
    await tab.goto(f"/t/{DIGITAL_AGENCY}/governance/groups")
    group = tab.locator("section.card", has_text="施設予約の電話受付と紙の台帳")
    total = sum(POPULATION.values())
    await expect(group.locator(".group-summary")).to_have_text(f"3 団体・人口 {total:,} 人")
    await group.get_by_label("候補の名前").fill(service_name)
    await group.get_by_role("button", name="共通化の候補にする").click()
    await expect(tab.get_by_role("heading", level=1)).to_have_text(service_name)
    await expect(tab.locator("#bodies-figure")).to_contain_text(f"3 団体・人口 {total:,} 人")

    await tab.get_by_label("想定する共通化のパターン").select_option(label="共通化B")
    await tab.get_by_label("共通サービスの想定年間総経費（円）").fill("20000000")
    await tab.get_by_label("想定年間総経費の出典").fill("類似の共通SaaSの見積（試験用の架空の値）")
    await tab.get_by_label("作業時間の削減見込み（%）").fill("50")
    await tab.get_by_label("削減見込みの根拠").fill("オンライン予約を入れた団体の実績（試験用）")
    await tab.get_by_role("checkbox", name="当てはまる").first.check()
    await tab.locator("#f-perspective_1_evidence").fill("オンライン予約を導入した団体がまだ少ない")
    await tab.get_by_label("判断").fill("3団体の現在の経費の合計が共通化Bの想定経費を上回り、効果が見込める。")
    await tab.get_by_role("button", name="評価を保存する").click()
    await expect(tab.get_by_role("status")).to_contain_text("評価を保存しました")
    # The computed effect uses the figures given: 9,000,000 + 12,000,000 + 30,000,000.
    await expect(tab.locator("#computed-figures").get_by_role("row", name=re.compile("現在の年間経費の合計"))).to_contain_text("51,000,000 円")
    await expect(tab.locator("#pattern-costs").get_by_role("row", name=re.compile("共通化B"))).to_contain_text("20,000,000 円")
    candidate_url = tab.url.split("?")[0]
    candidate_id = candidate_url.rsplit("/", 1)[1]

    # The council meets and decides 採択 with a reason.
    await tab.goto(f"/t/{DIGITAL_AGENCY}/governance/council")
    await tab.get_by_label("会議の名前").fill(f"連絡協議会（ブラウザ試験 {marker}）")
    await tab.get_by_label("開催日").fill(date(date.today().year + 1, 4, 20).isoformat())
    await tab.get_by_role("checkbox", name=service_name).check()
    await tab.get_by_role("button", name="会議を登録する").click()
    await expect(tab.get_by_role("heading", level=1)).to_have_text(f"連絡協議会（ブラウザ試験 {marker}）")
    meeting_url = tab.url.replace(f"/t/{DIGITAL_AGENCY}", "")
    await tab.get_by_label("候補").select_option(label=service_name)
    await tab.get_by_label("決定", exact=True).select_option(label="採択")
    reason = "3団体・人口214万人のニーズがあり、共通化Bにより年間経費が下がる見込みのため。"
    await tab.get_by_label("理由").fill(reason)
    await tab.get_by_label("共通化のパターン").select_option(label="共通化B")
    await tab.get_by_label("費用負担の区分").select_option(label="共通SaaS")
    await tab.get_by_label("段階").select_option(label="実証")
    await tab.get_by_role("button", name="決定を記録する").click()
    await expect(tab.get_by_role("alert")).to_contain_text("取り消せません")  # not ticked: asked to confirm
    await tab.get_by_label("決定", exact=True).select_option(label="採択")
    await tab.get_by_label("理由").fill(reason)
    await tab.get_by_label(re.compile("内容を確認しました")).check()
    await tab.get_by_role("button", name="決定を記録する").click()
    await expect(tab.locator("#decisions")).to_contain_text(f"{service_name}: 採択")
    await context.close()

    # The catalog shows the new service.
    context, public = await _tab(browser, live_server)
    await public.goto("/catalog")
    await public.get_by_role("link", name=service_name).click()
    await expect(public.get_by_role("heading", level=1)).to_contain_text(service_name)

    # The public pages show the decision and the reason, never 一宮市's confidential cost.
    await public.goto(meeting_url)
    await expect(public.locator("#decisions")).to_contain_text("採択")
    await expect(public.locator("#decisions")).to_contain_text(reason)
    await public.goto(f"/governance/candidates/{candidate_id}")
    await expect(public.locator("#computed-figures").get_by_role("row", name=re.compile("現在の年間経費の合計"))).to_contain_text("42,000,000 円")
    for path in (f"/governance/candidates/{candidate_id}", "/governance/needs", meeting_url, "/governance"):
        await public.goto(path)
        assert "9,000,000" not in await public.content(), path
        await _no_sideways_scroll(public)
    await context.close()

    # 一宮市 sees its rollout year and its expected fee.
    expected = allocate(20_000_000, [Member(c, c, p) for c, p in POPULATION.items()], WeightedPopulation(Decimal("1.5")))
    this_fy = date.today().year if date.today().month >= 4 else date.today().year - 1
    move_fy = max(2026, this_fy + 1)  # its renewal (FY2026) or when 実証 starts, whichever is later
    tab = ichinomiya_tab
    await tab.goto(f"/t/{ICHINOMIYA}/governance")
    row = tab.locator("#my-rollout").get_by_role("row", name=re.compile(re.escape(service_name)))
    await expect(row).to_contain_text(wareki.fiscal_year_label(move_fy))
    await expect(row).to_contain_text(f"{expected.fee_of(ICHINOMIYA):,} 円")
    await expect(row).to_contain_text("9,000,000 円")  # its own current cost, shown to itself
    await _no_sideways_scroll(tab)
    await ichinomiya_context.close()
