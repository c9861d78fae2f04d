"""Offline answering: the survey as an .xlsx form (written through kit/export) and reading it
back filled in, with a cell-by-cell Japanese error report. An upload with any error changes
nothing."""

from __future__ import annotations

import io
from datetime import date, datetime

from kiban.kit import export
from kiban.kit.errors import InvalidInput
from kiban.modules.surveys import questions as qs

SHEET = "回答"
FIRST_ROW = 6
ANSWER_COL, REASON_COL = "E", "G"
MAX_BYTES = 5 * 1024 * 1024


def _table_sheet(key: str) -> str:
    return f"表_{key}"


def form_bytes(*, title: str, organization: str, deadline: str, version: int, response_id: str, definition: dict,
               answers: dict, prefill: dict, reasons: dict) -> bytes:
    from openpyxl.styles import Font, PatternFill
    from openpyxl.worksheet.datavalidation import DataValidation

    book = export.workbook()
    sheet = book.active
    sheet.title = SHEET
    sheet["A1"] = title
    sheet["A1"].font = Font(bold=True, size=14)
    sheet["A2"] = f"回答する団体: {organization}"
    sheet["A3"] = f"回答期限: {deadline}（第{version}版）"
    sheet["A4"] = "E列（回答）とG列（プラットフォームの値を直したときの理由）に入力し、この画面から取り込んでください。表の質問は別のシートに入力します。"
    header = ["番号", "区分", "質問", "種類・単位", "回答", "プラットフォームの値（出典・日付）", "修正の理由"]
    for i, text in enumerate(header, start=1):
        cell = sheet.cell(row=FIRST_ROW - 1, column=i, value=text)
        cell.font = Font(bold=True)
    fill = PatternFill("solid", fgColor="FFF7D6")
    for i, q in enumerate(definition.get("questions", [])):
        row = FIRST_ROW + i
        kind = qs.question_type_label(q["type"]) + (f"（{q['unit']}）" if q.get("unit") else "")
        if q.get("min") is not None or q.get("max") is not None:
            kind += f" {q.get('min') if q.get('min') is not None else ''}〜{q.get('max') if q.get('max') is not None else ''}"
        if q.get("required"):
            kind += " 必須"
        if q.get("show_if"):
            kind += f" ※{q['show_if']['q']}が「{q['show_if']['equals']}」のとき"
        sheet.cell(row=row, column=1, value=q["key"])
        sheet.cell(row=row, column=2, value=q.get("section", ""))
        sheet.cell(row=row, column=3, value=q["label"])
        sheet.cell(row=row, column=4, value=kind)
        value = answers.get(q["key"])
        cell = sheet[f"{ANSWER_COL}{row}"]
        cell.fill = fill
        if q["type"] == "table":
            cell.value = f"シート「{_table_sheet(q['key'])}」に入力"
            table = book.create_sheet(_table_sheet(q["key"]))
            table["A1"] = q["label"]
            for c, col in enumerate(q["columns"], start=1):
                table.cell(row=2, column=c, value=f"{col['label']}（{qs.COLUMN_TYPES[col['type']]}）").font = Font(bold=True)
            for r, data in enumerate(value or [], start=3):
                for c, col in enumerate(q["columns"], start=1):
                    table.cell(row=r, column=c, value=_typed(col["type"], data.get(col["key"], "")))
            continue
        if q["type"] == "multi":
            cell.value = "、".join(value or [])
        else:
            cell.value = _typed(q["type"], value)
        if q["type"] in ("choice", "yesno"):
            options = q.get("options") or [qs.YES, qs.NO]
            validation = DataValidation(type="list", formula1='"' + ",".join(options) + '"', allow_blank=True)
            sheet.add_data_validation(validation)
            validation.add(cell)
        known = prefill.get(q["key"])
        if known:
            sheet.cell(row=row, column=6, value=f"{int(known['value']):,}（{known['source']}、{known['as_of']}）")
        sheet[f"{REASON_COL}{row}"] = reasons.get(q["key"], "")
    for col, width in zip("ABCDEFG", (8, 14, 48, 22, 22, 36, 28), strict=True):
        sheet.column_dimensions[col].width = width
    info = book.create_sheet("情報")
    info["A1"], info["B1"] = "回答ID", response_id
    info["A2"], info["B2"] = "版", version
    info.sheet_state = "hidden"
    return export.xlsx_bytes(book)


def _typed(kind: str, value: object) -> object:
    if value in (None, ""):
        return None
    if kind == "number":
        try:
            number = qs.parse_number(value)
        except ValueError:
            return str(value)
        return int(number) if number == number.to_integral_value() else float(number)
    return str(value)


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).lstrip("'") if isinstance(value, str) else str(value)


def read(content: bytes, *, response_id: str, definition: dict, prefill: dict) -> tuple[dict, dict]:
    """(answers, reasons) read from a filled-in form; InvalidInput listing every wrong cell."""
    from openpyxl import load_workbook

    def refuse(message: str) -> InvalidInput:
        return InvalidInput(message, errors=[{"field": "file", "message": message}])

    if not content:
        raise refuse("ファイルを選んでください。")
    if len(content) > MAX_BYTES:
        raise refuse("ファイルが大きすぎます（5MB まで）。")
    try:
        book = load_workbook(io.BytesIO(content), read_only=False, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not .xlsx
        raise refuse("エクセルのファイルとして読めませんでした。この画面でダウンロードした様式を使ってください。") from exc
    if SHEET not in book.sheetnames or "情報" not in book.sheetnames:
        raise refuse(f"シート「{SHEET}」がありません。この画面でダウンロードした様式を使ってください。")
    if _cell_text(book["情報"]["B1"].value) != response_id:
        raise refuse("別の調査・別の団体の様式です。この回答の画面でダウンロードした様式を使ってください。")
    sheet = book[SHEET]
    questions = {q["key"]: q for q in definition.get("questions", [])}
    answers: dict = {}
    reasons: dict = {}
    where: dict[str, str] = {}
    row = FIRST_ROW
    while row < FIRST_ROW + len(questions) + 50:
        key = _cell_text(sheet[f"A{row}"].value)
        if key in questions:
            q = questions[key]
            where[key] = f"セル {ANSWER_COL}{row}"
            if q["type"] == "table":
                answers[key] = _read_table(book, q, where)
            else:
                answers[key] = _cell_text(sheet[f"{ANSWER_COL}{row}"].value)
                reason = _cell_text(sheet[f"{REASON_COL}{row}"].value)
                if reason:
                    reasons[key] = reason
        row += 1
    missing = [q for k, q in questions.items() if k not in where]
    errors = [{"field": k, "message": f"質問「{q['label']}」の行が見つかりません（A列の番号を消さないでください）。"}
              for k, q in ((q["key"], q) for q in missing)]
    answers = qs.clean_answers(definition, answers)
    for e in qs.validate(definition, answers, prefill=prefill, reasons=reasons, complete=False):
        errors.append({"field": e["field"], "cell": where.get(e["field"], ""),
                       "message": f"{where.get(e['field'], '')}: {e['message']}" if e["field"] in where else e["message"]})
    if errors:
        raise InvalidInput(f"取り込めませんでした。{len(errors)}か所を直してから、もう一度取り込んでください（何も変更していません）。",
                           errors=errors)
    return answers, reasons


def _read_table(book, q: dict, where: dict) -> list[dict]:
    name = _table_sheet(q["key"])
    if name not in book.sheetnames:
        return []
    sheet = book[name]
    rows = []
    for r in range(3, 3 + qs.MAX_ROWS + 1):
        data = {col["key"]: _cell_text(sheet.cell(row=r, column=c).value) for c, col in enumerate(q["columns"], start=1)}
        if any(data.values()):
            for c, col in enumerate(q["columns"], start=1):
                where[f"{q['key']}.{len(rows) + 1}.{col['key']}"] = f"シート「{name}」のセル {chr(64 + c)}{r}"
            rows.append(data)
    return rows
