"""Issue #9 item 3 over HTTP: a second fee schedule for the same system and year must say it
replaces the first (差替) and why; the replaced statements turn 取消 with a link to the new ones;
statements carry 文書番号, 発行日, 発行者, 納付期限 and embed their font; all of a schedule's
statements download as one ZIP; 利用量 per member; a prefecture's fixed share; formula-safe CSV."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import date, timedelta

from pypdf import PdfReader
from sqlalchemy import func, select

from kiban.core.audit.models import AuditEntry
from kiban.core.tenancy.context import unscoped
from kiban.kit.export import csv_bytes
from kiban.modules.costs.models import FeeSchedule, FeeStatement
from tests.factories import AICHI, ICHINOMIYA

TOYOTA = "232114"
TOBISHIMA = "234273"
CONSORTIUM = f"/t/{AICHI}/consortia/aichi-e-gov"
ALLOCATE = {"service": "aichi-e-shinsei", "amount": "10,000,000", "kind": "weighted", "ratio": "1.5",
            "equal_percent": "30", "rest": "weighted", "subsidy_percent": "0", "prefecture_share": "",
            "fiscal_year": "2026"}
DUE_ON = (date.today() + timedelta(days=45)).isoformat()


async def _decide(person, **values):
    return await person.client.post(f"{CONSORTIUM}/schedules",
                                    data={**ALLOCATE, "due_on": DUE_ON, "csrf_token": person.csrf, **values})


async def _count(session, model) -> int:
    async with unscoped(session, "test: count rows"):
        return await session.scalar(select(func.count()).select_from(model))


def _csv_values(response) -> dict[str, str]:
    return dict(row for row in csv.reader(io.StringIO(response.content.decode("utf-8-sig"))) if len(row) == 2)


async def test_a_second_schedule_must_say_it_replaces_the_first_and_why(staff, session) -> None:
    aichi = await staff(AICHI, "admin")
    first = await _decide(aichi)
    assert first.status_code == 303
    first_id = first.headers["location"].rsplit("/", 1)[1]

    # Deciding again for the same system and year, without saying so, is refused and changes nothing.
    again = await _decide(aichi, amount="12,000,000")
    assert again.status_code == 422
    assert "決定済みです" in again.text and "決定済みの算定を差し替える" in again.text
    assert 'id="replacement-notice"' in again.text and "2026-001" in again.text
    assert await _count(session, FeeSchedule) == 1 and await _count(session, FeeStatement) == 54

    # Every problem at once, and the input kept.
    several = await _decide(aichi, amount="12,000,000", due_on="", replace=first_id, reason="")
    assert several.status_code == 422
    assert "納付期限を入力してください" in several.text and "差替の理由を入力してください" in several.text
    assert "2件の問題があります" in several.text and 'value="12,000,000"' in several.text

    # A forged or stale replacement target is refused too.
    stale = await _decide(aichi, amount="12,000,000", replace="00000000-0000-0000-0000-000000000000", reason="誤り")
    assert stale.status_code == 409 and "既に別の算定に差し替えられています" in stale.text

    replaced = await _decide(aichi, amount="12,000,000", replace=first_id, reason="総経費の誤りを訂正")
    assert replaced.status_code == 303
    second_url = replaced.headers["location"]
    second_id = second_url.rsplit("/", 1)[1]
    assert await _count(session, FeeSchedule) == 2 and await _count(session, FeeStatement) == 108

    new_page = await aichi.client.get(second_url)
    assert "有効" in new_page.text and "文書番号 2026-001 の算定" in new_page.text and "総経費の誤りを訂正" in new_page.text
    old_page = await aichi.client.get(f"{CONSORTIUM}/schedules/{first_id}")
    assert "（取消）" in old_page.text and f'/schedules/{second_id}"' in old_page.text and "文書番号 2026-002" in old_page.text
    listing = await aichi.client.get(CONSORTIUM)
    assert "取消（差替え済み）" in listing.text and "有効" in listing.text

    # The member sees which one is in force, when each was issued, and the link from old to new.
    ichinomiya = await staff(ICHINOMIYA, "viewer")
    mine = await ichinomiya.client.get(f"/t/{ICHINOMIYA}/statements")
    old_row = re.search(rf'<tr id="statement-{first_id}" data-status="cancelled">(.*?)</tr>', mine.text, re.S)
    new_row = re.search(rf'<tr id="statement-{second_id}" data-status="in-force">(.*?)</tr>', mine.text, re.S)
    assert old_row and new_row
    assert f'href="#statement-{second_id}"' in old_row.group(1) and f"2026-002-{ICHINOMIYA}" in old_row.group(1)
    assert "総経費の誤りを訂正" in old_row.group(1) and "交付日時 令和" in new_row.group(1)

    old_pdf = await ichinomiya.client.get(f"/t/{ICHINOMIYA}/statements/{first_id}.pdf")
    text = PdfReader(io.BytesIO(old_pdf.content)).pages[0].extract_text().replace("\n", "")
    assert "負担金算定書（取消）" in text and f"2026-002-{ICHINOMIYA}" in text and "総経費の誤りを訂正" in text
    assert "_取消.pdf" in old_pdf.headers["content-disposition"].replace("%E5%8F%96%E6%B6%88", "取消")
    new_csv = _csv_values(await ichinomiya.client.get(f"/t/{ICHINOMIYA}/statements/{second_id}.csv"))
    assert new_csv["状態"] == "有効" and new_csv["文書番号"] == f"2026-002-{ICHINOMIYA}"

    async with unscoped(session, "test: audit"):
        actions = (await session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == second_id))).all()
    assert actions == ["costs.schedule.replaced"]


async def test_the_statement_pdf_embeds_its_japanese_font(staff) -> None:
    aichi = await staff(AICHI, "admin")
    decided = await _decide(aichi)
    pdf = await aichi.client.get(f"{decided.headers['location']}/members/{ICHINOMIYA}.pdf")
    page = PdfReader(io.BytesIO(pdf.content)).pages[0]
    fonts = [font.get_object() for font in page["/Resources"]["/Font"].values()]
    embedded = []
    for font in fonts:
        descendants = font.get("/DescendantFonts")
        for item in ([d.get_object() for d in descendants] if descendants else [font]):
            descriptor = item.get("/FontDescriptor")
            if descriptor is not None and "/FontFile2" in descriptor.get_object():
                embedded.append(str(item["/BaseFont"]))
    assert embedded and all("IPAexGothic" in name for name in embedded)
    assert len(pdf.content) < 200_000  # a subset, not the 6 MB font


async def test_every_members_statement_downloads_as_one_zip(staff) -> None:
    aichi = await staff(AICHI, "admin")
    decided = await _decide(aichi)
    archive = await aichi.client.get(f"{decided.headers['location']}/statements.zip")
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        names = zipped.namelist()
        assert len(names) == 54 and all(name.endswith(".pdf") for name in names)
        assert f"2026-001-{ICHINOMIYA}_一宮市.pdf" in names
        text = PdfReader(io.BytesIO(zipped.read(f"2026-001-{ICHINOMIYA}_一宮市.pdf"))).pages[0].extract_text()
    assert "一宮市 様" in text and f"文書番号 2026-001-{ICHINOMIYA}" in text
    ichinomiya = await staff(ICHINOMIYA, "admin")
    assert (await ichinomiya.client.get(f"{decided.headers['location']}/statements.zip")).status_code == 404


async def test_usage_is_entered_per_member_and_drives_usage_based_fees(staff) -> None:
    aichi = await staff(AICHI, "admin")
    await aichi.client.post(f"{CONSORTIUM}/systems/aichi-ai-ocr/users",
                            data={"members": [ICHINOMIYA, TOYOTA, TOBISHIMA], "csrf_token": aichi.csrf})
    usage_url = f"{CONSORTIUM}/systems/aichi-ai-ocr/usage"
    params = {**ALLOCATE, "service": "aichi-ai-ocr", "amount": "1000000", "kind": "usage"}
    missing = await aichi.client.get(f"{CONSORTIUM}/allocate", params=params)
    assert missing.status_code == 422 and "利用量が入力されていない団体があります（3団体" in missing.text

    page = await aichi.client.get(usage_url, params={"fiscal_year": "2026"})
    assert page.status_code == 200 and 'id="u-232033"' in page.text and "令和8年度の利用量" in page.text
    bad = await aichi.client.post(usage_url, data={"fiscal_year": "2026", f"units-{ICHINOMIYA}": "たくさん",
                                                   f"units-{TOYOTA}": "-3", f"units-{TOBISHIMA}": "100",
                                                   "csrf_token": aichi.csrf})
    assert bad.status_code == 422 and "2件の入力を確認してください" in bad.text
    assert "一宮市の利用量「たくさん」は0以上の整数" in bad.text and 'value="たくさん"' in bad.text
    assert "利用量が入力されていない" in (await aichi.client.get(f"{CONSORTIUM}/allocate", params=params)).text

    saved = await aichi.client.post(usage_url, data={"fiscal_year": "2026", f"units-{ICHINOMIYA}": "３００",
                                                     f"units-{TOYOTA}": "600", f"units-{TOBISHIMA}": "100",
                                                     "csrf_token": aichi.csrf})
    assert saved.status_code == 303
    assert "3 団体の利用量を保存しました" in (await aichi.client.get(saved.headers["location"])).text
    preview = await aichi.client.get(f"{CONSORTIUM}/allocate", params=params)
    assert preview.status_code == 200
    rows = dict(re.findall(r'<td>([^<]+)</td><td class="num">([\d,]+)</td><td>利用量', preview.text))
    assert rows == {"一宮市": "300,000", "豊田市": "600,000", "飛島村": "100,000"}
    other_year = await aichi.client.get(f"{CONSORTIUM}/allocate", params={**params, "fiscal_year": "2027"})
    assert other_year.status_code == 422  # usage belongs to its fiscal year

    ichinomiya = await staff(ICHINOMIYA, "admin")
    assert (await ichinomiya.client.get(usage_url)).status_code == 404


async def test_a_prefecture_can_carry_a_fixed_share_instead_of_its_double_counted_population(staff) -> None:
    aichi = await staff(AICHI, "admin")
    plain = await aichi.client.get(f"{CONSORTIUM}/allocate", params=ALLOCATE)
    half = await aichi.client.get(f"{CONSORTIUM}/allocate", params={**ALLOCATE, "prefecture_share": "１／２"})
    assert half.status_code == 200

    def fee(page, name):
        return int(re.search(rf'<td>{name}</td><td class="num">([\d,]+)</td>', page.text).group(1).replace(",", ""))

    assert fee(half, "愛知県") == 5_000_000 and fee(plain, "愛知県") != 5_000_000
    assert "固定割合 1/2 → 総額の 50.00%" in half.text
    assert "都道府県 1/2（固定割合）、残りを市町村で人口按分+重み係数" in half.text
    assert "負担金の合計 10,000,000 円（54 団体） — 負担する額と一致" in half.text
    bad = await aichi.client.get(f"{CONSORTIUM}/allocate", params={**ALLOCATE, "prefecture_share": "2"})
    assert bad.status_code == 422 and "0より大きく1未満" in bad.text

    decided = await _decide(aichi, prefecture_share="50%")
    assert decided.status_code == 303
    schedule_page = await aichi.client.get(decided.headers["location"])
    assert "都道府県 1/2（固定割合）" in schedule_page.text


async def test_csv_cells_that_could_run_as_formulas_are_neutralised(staff) -> None:
    assert csv_bytes([["=1+1", "+x", "-y", "@z", "\tt", "\rr", "ok", -5]], header=["a"]).decode("utf-8-sig") == \
        "a\r\n'=1+1,'+x,'-y,'@z,'\tt,\"'\rr\",ok,-5\r\n"
    aichi = await staff(AICHI, "admin")
    first = await _decide(aichi)
    first_id = first.headers["location"].rsplit("/", 1)[1]
    await _decide(aichi, replace=first_id, reason='=HYPERLINK("http://example.com","訂正")')
    ichinomiya = await staff(ICHINOMIYA, "viewer")
    old_csv = await ichinomiya.client.get(f"/t/{ICHINOMIYA}/statements/{first_id}.csv")
    cells = [cell for row in csv.reader(io.StringIO(old_csv.content.decode("utf-8-sig"))) for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert any("=HYPERLINK" in cell for cell in cells)
