"""Issue #12's story in a real browser, end to end on the live server with a real SMTP server
(aiosmtpd on 127.0.0.1; the live server's job runner delivers the outbox to it):

1. 一宮市 builds its 粗大ごみ申込 form by copying 豊田市's shared template, and publishes it;
2. a resident fills it in on a phone and receives the e-mail receipt;
3. staff take it to 完了 and the resident is told by e-mail;
4. a resident books a 体育館 slot; another, whose page still showed the slot free, is refused
   with a clear message;
5. a lottery period for popular slots is drawn, and the draw is verified from its seed;
6. the あいち secretariat previews the 電子申請 allocation on metered usage, 一宮市's submission
   counted in it.

Tenants: 一宮市 (232033) forms and facilities made here under names no other test uses, and the
あいち secretariat (230006) only previews (nothing is decided, so no other test's schedules change).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import timedelta

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from playwright.async_api import expect

from kiban.core.identity.devca import DevCA
from kiban.core.notify import delivery
from kiban.modules.reservations import service as reservations
from kiban.kit.settings import get_settings
from tests.browser.conftest import create_committed_staff, sign_in
from tests.core.test_notify import Inbox, _free_port

ICHINOMIYA = "232033"
AICHI = "230006"
PHONE = {"width": 390, "height": 844}
RUN = uuid.uuid4().hex[:6]
GYM = f"一宮市総合体育館（試験{RUN}）"


@pytest.fixture
def smtp_inbox():
    """A real SMTP server the live server (same process) delivers to while this test runs."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    delivery.configure(delivery.DeliveryConfig(smtp_host="127.0.0.1", smtp_port=controller.port,
                                               smtp_from="noreply@city.ichinomiya.example.jp"))
    try:
        yield inbox
    finally:
        delivery.configure(None)
        controller.stop()


@pytest.fixture
def cards(tmp_path, monkeypatch):
    """Virtual My Number Cards from the development CA (the sign-in page signs with WebCrypto)."""
    monkeypatch.setenv("KIBAN_JPKI_DEV_CA_ENABLED", "1")
    monkeypatch.setenv("KIBAN_JPKI_DEV_CA_DIR", str(tmp_path / "dev-ca"))
    get_settings.cache_clear()
    ca = DevCA(tmp_path / "dev-ca")
    ca.init()
    yield ca
    get_settings.cache_clear()


@pytest_asyncio.fixture(loop_scope="session")
async def people(test_database):
    """Committed: 豊田市's shared template (the demo's), a 体育館 in 一宮市, and two staff."""
    from sqlalchemy.ext.asyncio import AsyncSession

    from kiban.core.audit import service as audit
    from kiban.core.registry import service as registry
    from kiban.core.tenancy.context import bind_tenant
    from kiban.kit.db import create_engine
    from kiban.modules.forms.demo import load_demo as load_toyota_template

    engine = create_engine(test_database.owner_url, pool=False)
    try:
        async with AsyncSession(engine) as session:
            await load_toyota_template(session)
            await session.commit()
        async with AsyncSession(engine) as session:
            await bind_tenant(session, await registry.tenant_for(session, ICHINOMIYA))
            await reservations.create_facility(session, audit.Actor("system", "ブラウザ試験"), {
                "name": GYM, "kind": "gym", "address": "一宮市本町（試験）", "description": "試験用の施設です。",
                "eligibility": "residents", "slot_minutes": 120, "booking_window_days": 30,
                "cancel_deadline_hours": 24, "max_active_per_person": 4,
                "opening_hours": {str(d): ["09:00", "21:00"] for d in range(7)}},
                rooms=[{"name": "アリーナ", "capacity": 300, "fee_yen": 4800}])
            await session.commit()
    finally:
        await engine.dispose()
    city = await create_committed_staff(test_database, ICHINOMIYA, "一宮 花子")
    secretariat = await create_committed_staff(test_database, AICHI, "愛知 太郎")
    return city, secretariat


@pytest_asyncio.fixture(loop_scope="session")
async def leave_no_trace(test_database):
    """After the story: the forms, facilities and bookings it committed in 一宮市 go. Unit tests
    count 一宮市's from zero in this same database."""
    yield
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession

    from kiban.kit.db import create_engine

    engine = create_engine(test_database.owner_url, pool=False)
    codes = {"a": ICHINOMIYA, "b": AICHI}
    tenants = "lg_code IN (:a, :b)"
    try:
        async with AsyncSession(engine) as session:
            # Notices, counts and delivery jobs go after every browser test (conftest.leave_no_counts);
            # 一宮市's forms and facilities go here: tests/modules/test_forms.py and test_reservations.py
            # count 一宮市's from zero (its copy of 豊田市's template, the demo's 体育館).
            for table in ("form_upload", "form_submission_event", "form_submission", "form_version", "form",
                          "facility_lottery_entry", "facility_lottery", "facility_booking", "facility_booker",
                          "facility_room", "facility"):
                await session.execute(text(f"DELETE FROM {table} WHERE {tenants}"), codes)
            # and 豊田市's shared template, which the demo loader test expects to create itself
            for table in ("form_version", "form"):
                await session.execute(text(f"DELETE FROM {table} WHERE lg_code = '232114'"))
            await session.commit()
    finally:
        await engine.dispose()


async def _mail_to(inbox: Inbox, address: str, count: int, timeout: float = 30.0) -> list:
    """The messages delivered to ``address``, waiting until there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in inbox.messages if address in str(m["To"])]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def _resident(browser, live_server, ca: DevCA, name: str, *, phone: bool = False):
    """A resident signed in with a virtual card and registered as a user of 一宮市's facilities."""
    context = await browser.new_context(base_url=live_server, locale="ja-JP", **({"viewport": PHONE} if phone else {}))
    tab = await context.new_page()
    await tab.goto("/signin/card")
    await tab.get_by_label("仮想カードのファイル").set_input_files(str(ca.issue(f"{name}-{RUN}")))
    await expect(tab.locator("#card-status")).to_contain_text("仮想カードで署名しました")
    await tab.get_by_role("button", name="サインイン").click()
    await expect(tab).to_have_url(re.compile(r"/me$"))
    await tab.goto(f"/t/{ICHINOMIYA}/reservations/register")
    await tab.get_by_label("市内在住・在勤").check()
    await tab.get_by_label("お名前").fill(f"{name} 様")
    await tab.get_by_label("メールアドレス").fill(f"{name}-{RUN}@example.jp")
    await tab.get_by_role("button", name="登録する").click()
    await expect(tab).to_have_url(re.compile(r"registered="))
    return context, tab


async def _open_gym(tab) -> None:
    await tab.goto(f"/t/{ICHINOMIYA}/reservations")
    await tab.get_by_role("link", name=GYM).click()
    await expect(tab.get_by_role("heading", level=1)).to_have_text(f"{GYM}の空き状況")


async def test_forms_bookings_lottery_and_metered_fees_as_people_use_them(
        page, browser, live_server, people, smtp_inbox, cards, leave_no_trace) -> None:
    (city_user, city_secret), (aichi_user, aichi_secret) = people
    slug = f"sodai-{RUN}"

    # 1. 一宮市 copies 豊田市's shared form, gives it its own address and publishes it.
    await sign_in(page, city_user, city_secret)
    await page.goto(f"/t/{ICHINOMIYA}/forms/templates")
    toyota = page.locator("section.card").filter(has_text="豊田市").filter(has_text="粗大ごみ収集の申込")
    await toyota.get_by_role("button", name="このテンプレートをコピーして作る").click()
    await expect(page.get_by_label("フォームの名前")).to_have_value(re.compile("粗大ごみ収集の申込"))
    await page.get_by_label("URL に使う名前").fill(slug)
    await page.get_by_label("問い合わせ先").fill("一宮市 環境部 清掃対策課 0586-00-0000（試験）")
    await page.get_by_role("button", name="設定を保存する").click()
    await page.get_by_role("button", name="公開する").click()
    await expect(page.get_by_text(f"/f/{ICHINOMIYA}/{slug}").first).to_be_visible()

    # 2. A resident applies from a phone and gets the receipt by e-mail.
    phone = await browser.new_context(base_url=live_server, locale="ja-JP", viewport=PHONE)
    resident = await phone.new_page()
    await resident.goto(f"/f/{ICHINOMIYA}/{slug}")
    await resident.get_by_label("お名前").fill("一宮 次郎")
    await resident.get_by_label("フリガナ").fill("イチノミヤ ジロウ")
    await resident.get_by_label("電話番号").fill("0586-28-8100")
    address = f"jiro-{RUN}@example.jp"
    await resident.get_by_label("メールアドレス").fill(address)
    await resident.get_by_label("郵便番号（7桁）").fill("491-0858")
    await resident.get_by_role("button", name="郵便番号から住所を入力").click()
    await resident.get_by_text("郵便番号から住所を入力しました").wait_for()
    await resident.get_by_label("番地・建物名").fill("1-2-3")
    await resident.get_by_label("自転車").check()
    await resident.get_by_label("点数").fill("1")
    await resident.get_by_label("収集の希望日").fill("2027-01-15")
    await resident.get_by_role("button", name="入力内容を確認する").click()
    await resident.get_by_role("heading", name="入力内容の確認").wait_for()
    await resident.get_by_role("button", name="送信する").click()
    await resident.get_by_role("heading", name="申請を受け付けました").wait_for()
    receipt = await resident.locator("#receipt-no").inner_text()
    assert await resident.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    mails = await _mail_to(smtp_inbox, address, 1)
    assert len(mails) == 1, [m["To"] for m in smtp_inbox.messages]
    assert receipt in mails[0].get_content()
    await phone.close()

    # 3. Staff work the inbox to 完了; the resident is told, once.
    await page.goto(f"/t/{ICHINOMIYA}/forms")
    await page.get_by_role("link", name=re.compile("受付一覧.*粗大ごみ収集の申込")).click()
    await page.get_by_role("link", name=receipt).click()
    await page.get_by_label("審査中").check()
    await page.get_by_role("button", name="状況を変更する").click()
    await page.get_by_label("完了").check()
    await page.get_by_label("理由・申請者への連絡事項").fill("1月15日に収集します。")
    await page.get_by_role("button", name="状況を変更する").click()
    await expect(page.get_by_text("完了").first).to_be_visible()
    mails = await _mail_to(smtp_inbox, address, 2)
    assert len(mails) == 2 and "1月15日に収集します。" in mails[1].get_content()
    await asyncio.sleep(1.5)
    assert len(await _mail_to(smtp_inbox, address, 3, timeout=0)) == 2  # nothing sent twice

    # 4. Two residents see the same free slot; the first books it, the second is refused.
    first, first_tab = await _resident(browser, live_server, cards, "hanako", phone=True)
    second, second_tab = await _resident(browser, live_server, cards, "taro")
    await _open_gym(first_tab)
    await _open_gym(second_tab)
    await first_tab.get_by_role("button", name=re.compile("予約する")).first.click()
    await expect(first_tab).to_have_url(re.compile(r"/reservations/mine\?booked="))
    await expect(first_tab.get_by_text(GYM).first).to_be_visible()
    assert await first_tab.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    await second_tab.get_by_role("button", name=re.compile("予約する")).first.click()
    await expect(second_tab.get_by_role("alert")).to_contain_text(reservations.SLOT_TAKEN)

    # 5. Staff put two popular slots into a lottery; both residents apply; it is drawn and verified.
    await page.goto(f"/t/{ICHINOMIYA}/facilities")
    await page.get_by_role("link", name=GYM).click()
    await page.get_by_label("抽選の名前").fill("週末の抽選（試験）")
    today = reservations.today_jst()
    await page.get_by_label(re.compile("申込みの締切")).fill(f"{today + timedelta(days=1):%Y-%m-%d}T08:00")
    later = f"{today + timedelta(days=3):%Y-%m-%d}T"  # slots after the deadline
    values = await page.locator("#f-slot input[type=checkbox]").evaluate_all("els => els.map(e => e.value)")
    chosen = [v for v in values if v.split("|")[1].startswith(later)][:2]
    assert len(chosen) == 2, values[:5]
    for value in chosen:
        await page.locator(f'#f-slot input[value="{value}"]').check()
    await page.get_by_role("button", name="抽選の受付を始める").click()
    await expect(page.locator("#lottery-status")).to_contain_text("受付中")
    lottery_url = page.url
    for tab in (first_tab, second_tab):
        await _open_gym(tab)
        await tab.get_by_role("button", name=re.compile("抽選に申し込む")).first.click()
        await expect(tab).to_have_url(re.compile(r"applied=1"))
    await page.goto(lottery_url)
    await page.get_by_role("button", name="締め切って抽選する").click()
    await expect(page.locator("#lottery-status")).to_contain_text("抽選済み", timeout=30_000)
    await expect(page.locator("#lottery-verified")).to_contain_text("一致します")
    seed = await page.locator("#lottery-seed").inner_text()
    assert re.fullmatch(r"[0-9a-f]{16,}", seed.strip()), seed
    await first.close()
    await second.close()

    # 6. The あいち secretariat previews 電子申請's costs shared by metered usage: 一宮市's counted.
    secretariat = await browser.new_context(base_url=live_server, locale="ja-JP")
    aichi = await secretariat.new_page()
    await sign_in(aichi, aichi_user, aichi_secret)
    await aichi.goto(f"/t/{AICHI}/consortia/aichi-e-gov/systems/aichi-e-shinsei/metered-usage")
    row = aichi.locator(f'#metered-usage-table tr[data-code="{ICHINOMIYA}"]')
    await expect(row).to_be_visible()
    counted = int((await row.locator("td.num").last.inner_text()).replace(",", ""))
    assert counted >= 1
    await aichi.goto(f"/t/{AICHI}/consortia/aichi-e-gov")
    await aichi.get_by_label(re.compile("^システム")).select_option(value="aichi-e-shinsei")
    await aichi.get_by_label("総経費（円）").fill("12,000,000")
    today = reservations.today_jst()
    await aichi.get_by_label("年度（西暦）").fill(str(today.year if today.month >= 4 else today.year - 1))
    await aichi.get_by_label("配分の方法").select_option(label="利用量割")
    await aichi.get_by_label(re.compile("計測した利用実績")).check()
    await aichi.get_by_role("button", name="算定する").click()
    await expect(aichi.locator("#usage-basis")).to_contain_text("計測値")
    await expect(aichi.locator("#allocation-total")).to_contain_text("負担金の合計 12,000,000 円")
    await secretariat.close()
