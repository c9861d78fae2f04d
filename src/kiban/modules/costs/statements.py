"""負担金算定書 as files: CSV for Excel (UTF-8 with BOM, CRLF, formula-safe) and PDF (A4, Japanese),
and every member's PDF of a schedule in one ZIP.

The PDF embeds its font: IPAexGothic (``fonts/ipaexg.ttf``, IPA Font License v1.0, licence
alongside), subset by ReportLab to the characters used, so a reader without Japanese fonts shows
the statement as issued. (A referenced CID font such as HeiseiKakuGo-W5 shows blanks there.)
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from kiban.kit import wareki
from kiban.kit.export import csv_bytes

FONT = "IPAexGothic"
FONT_FILE = Path(__file__).parent / "fonts" / "ipaexg.ttf"


@cache
def _font() -> str:
    """Registered on first use: parsing the 6 MB font costs a fifth of a second."""
    pdfmetrics.registerFont(TTFont(FONT, str(FONT_FILE)))
    return FONT


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
    document_no: str = ""
    issued_on_text: str = ""  # 発行日
    issuer: str = ""
    due_on_text: str = ""  # 納付期限
    cancelled: bool = False
    cancellation: str = ""  # 「令和…に取り消し、文書番号 … に差し替えました（理由: …）」


def _fiscal_year(year: int) -> str:
    return f"{wareki.fiscal_year_label(year)}（{year}年度）"


def rows(data: StatementData) -> list[tuple[str, str]]:
    return [
        ("文書番号", data.document_no or "—"),
        ("発行日", data.issued_on_text),
        ("発行者", data.issuer or data.consortium_name),
        ("状態", f"取消　{data.cancellation}" if data.cancelled else "有効"),
        ("納付期限", data.due_on_text or "—"),
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
    return csv_bytes([*rows(data), ("負担金額（円・数値）", data.fee)], header=["項目", "内容"])


def schedule_csv(title_rows: list[tuple[str, str]], lines: list[dict]) -> bytes:
    table = [*title_rows, (),
             ("団体コード", "団体名", "人口（令和2年国勢調査）", "負担金（円）", "負担割合（%）", "算定の内訳")]
    table += [(line["code"], line["name"], line["population"], line["fee"], f"{float(line['percent']):.4f}",
               line["explanation"]) for line in lines]
    table.append(("合計", "", "", sum(line["fee"] for line in lines), "", ""))
    return csv_bytes(table)


def to_zip(files: list[tuple[str, bytes]]) -> bytes:
    """The files (name, content) in one ZIP; names are stored as UTF-8 (flagged as such)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files:
            archive.writestr(name, content)
    return buffer.getvalue()


def to_pdf(data: StatementData) -> bytes:
    buffer = io.BytesIO()
    document = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm,
                                 topMargin=20 * mm, bottomMargin=20 * mm,
                                 title=f"負担金算定書 {data.member_name} {data.service_name}",
                                 author=data.consortium_name, subject="負担金算定書", lang="ja")
    font = _font()
    title = ParagraphStyle("title", fontName=font, fontSize=18, leading=24, alignment=1)
    body = ParagraphStyle("body", fontName=font, fontSize=10, leading=15, wordWrap="CJK")
    right = ParagraphStyle("right", parent=body, alignment=2)
    cell = ParagraphStyle("cell", parent=body, fontSize=9.5, leading=14)
    cancelled = ParagraphStyle("cancelled", parent=body, fontSize=12, leading=18, textColor=colors.HexColor("#c00000"))
    table = Table([[Paragraph(label, cell), Paragraph(_escape(value), cell)] for label, value in rows(data)],
                  colWidths=[45 * mm, 125 * mm])
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
        ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f1f1f4")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    heading = [Paragraph(_escape(f"文書番号 {data.document_no or '—'}"), right),
               Paragraph(_escape(f"発行日 {data.issued_on_text}"), right), Spacer(1, 4 * mm),
               Paragraph("負担金算定書（取消）" if data.cancelled else "負担金算定書", title), Spacer(1, 4 * mm)]
    if data.cancelled:
        heading += [Paragraph(_escape(f"この算定書は取り消されました。{data.cancellation}"), cancelled), Spacer(1, 4 * mm)]
    document.build([
        *heading,
        Paragraph(_escape(f"{data.member_name} 様"), body), Spacer(1, 2 * mm),
        Paragraph(_escape(data.issuer or data.consortium_name), right), Spacer(1, 2 * mm),
        Paragraph(_escape(f"{_fiscal_year(data.fiscal_year)}の{data.service_name}に係る負担金を、"
                          f"次のとおり算定しました。"), body), Spacer(1, 4 * mm),
        Paragraph(_escape(f"納付期限までに納付してください（納付期限 {data.due_on_text or '—'}）。"), body)
        if not data.cancelled else Spacer(1, 0), Spacer(1, 4 * mm),
        table, Spacer(1, 6 * mm),
        Paragraph(_escape(f"{data.consortium_name}（Kiban 国・地方デジタル共通基盤で算定）"), body),
    ])
    return buffer.getvalue()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
