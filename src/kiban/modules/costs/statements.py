"""負担金算定書 as files: CSV for Excel (UTF-8 with BOM, CRLF) and PDF (A4, Japanese).

The PDF uses the Adobe-Japan1 CID font HeiseiKakuGo-W5 that ReportLab knows by name: nothing
to download or ship, and every PDF reader with Japanese support renders it (the font is
referenced, not embedded).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from kiban.kit import wareki

FONT = "HeiseiKakuGo-W5"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))


@dataclass(frozen=True)
class StatementData:
    """Everything a statement shows, whether read from the member's copy or the schedule."""

    consortium_name: str
    service_name: str
    fiscal_year: int
    member_code: str
    member_name: str
    population: int | None
    fee: int
    percent: str
    explanation: str
    amount: int
    subsidy: int
    allocated: int
    member_count: int
    method_label: str
    issued_at_text: str
    schedule_id: str


def _fiscal_year(year: int) -> str:
    return f"{wareki.fiscal_year_label(year)}（{year}年度）"


def rows(data: StatementData) -> list[tuple[str, str]]:
    return [
        ("共同利用の枠組み", data.consortium_name),
        ("対象システム", data.service_name),
        ("年度", _fiscal_year(data.fiscal_year)),
        ("団体コード", data.member_code),
        ("団体名", data.member_name),
        ("人口（令和2年国勢調査）", f"{data.population:,} 人" if data.population is not None else "—"),
        ("負担金額", f"{data.fee:,} 円"),
        ("負担割合", f"{float(data.percent):.2f}%"),
        ("算定の内訳", data.explanation),
        ("総経費", f"{data.amount:,} 円"),
        ("国の補助", f"{data.subsidy:,} 円"),
        ("構成団体で負担する額", f"{data.allocated:,} 円"),
        ("負担する団体数", f"{data.member_count} 団体"),
        ("算定方法", data.method_label),
        ("端数処理", "1円未満は、全団体の負担金の合計が負担額と一致するよう最大剰余に近い除数方式（サン＝ラグ／ウェブスター方式）で配分"),
        ("交付日時", data.issued_at_text),
        ("算定番号", data.schedule_id),
    ]


def to_csv(data: StatementData) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["項目", "内容"])
    for label, value in rows(data):
        writer.writerow([label, value])
    writer.writerow(["負担金額（円・数値）", data.fee])
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")


def schedule_csv(title_rows: list[tuple[str, str]], lines: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for label, value in title_rows:
        writer.writerow([label, value])
    writer.writerow([])
    writer.writerow(["団体コード", "団体名", "人口（令和2年国勢調査）", "負担金（円）", "負担割合（%）", "算定の内訳"])
    for line in lines:
        writer.writerow([line["code"], line["name"], line["population"], line["fee"],
                         f"{float(line['percent']):.4f}", line["explanation"]])
    writer.writerow(["合計", "", "", sum(line["fee"] for line in lines), "", ""])
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")


def to_pdf(data: StatementData) -> bytes:
    buffer = io.BytesIO()
    document = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm,
                                 topMargin=20 * mm, bottomMargin=20 * mm,
                                 title=f"負担金算定書 {data.member_name} {data.service_name}",
                                 author=data.consortium_name, subject="負担金算定書", lang="ja")
    title = ParagraphStyle("title", fontName=FONT, fontSize=18, leading=24, alignment=1)
    body = ParagraphStyle("body", fontName=FONT, fontSize=10, leading=15, wordWrap="CJK")
    cell = ParagraphStyle("cell", parent=body, fontSize=9.5, leading=14)
    table = Table([[Paragraph(label, cell), Paragraph(_escape(value), cell)] for label, value in rows(data)],
                  colWidths=[45 * mm, 125 * mm])
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
        ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f1f1f4")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    document.build([
        Paragraph("負担金算定書", title), Spacer(1, 6 * mm),
        Paragraph(_escape(f"{data.member_name} 様"), body), Spacer(1, 2 * mm),
        Paragraph(_escape(f"{_fiscal_year(data.fiscal_year)}の{data.service_name}に係る負担金を、"
                          f"次のとおり算定しました。"), body), Spacer(1, 4 * mm),
        table, Spacer(1, 6 * mm),
        Paragraph(_escape(f"{data.consortium_name}（Kiban 国・地方デジタル共通基盤で算定）"), body),
    ])
    return buffer.getvalue()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
