"""避難者名簿 (shelter roster) import: decode, parse and validate, line by line. Pure.

Municipalities keep shelter rosters on paper or in Excel and upload them as CSV (or as the .xlsx
template) to register evacuees in the 被災者台帳. ``parse_roster(data, shelters=...,
is_known_code=...)`` reads the bytes and returns a ``RosterReport``: for every data line a
``RosterRow`` with either the canonical ``values`` (and the ``import_key`` that makes re-imports
idempotent) or Japanese error messages naming the line, the column, the bad value and what is
expected; and ``columns``, how each header of the file is read. Nothing is stored here; the web
layer stores the valid rows once staff accept them.

Reading the file:

* Encoding: UTF-8 with or without BOM, else cp932 (Shift_JIS as Excel writes it). An .xlsx is read
  from its 名簿 sheet (else its first sheet). Anything else (UTF-16 「Unicode テキスト」, .xls,
  binary) is a file error.
* CRLF, LF and CR all work; blank lines (and Excel's all-empty ``,,,,`` lines) are skipped. Line
  numbers are physical lines of the file, the header included (a quoted cell with a line break
  makes a row span lines; the row is reported at its first line).
* The header is the first non-blank line, or, when a sheet has a title above the table, the first
  of the first ten lines that has a name column. Header names come from ``fields.FIELDS``, the table
  the registration form and the import page use too: a field's label or one of its aliases, after
  NFKC, with spaces, の, hiragana/katakana and required marks (※, *, （必須）) folded. A header that
  only resembles a field (住所地コード（6桁）) is read as that field with a warning saying so; one that
  names a field entered after registering (住宅の再建方法) or nothing known is a warning. Missing 氏名
  (or 氏 and 名) or 住所地の団体コード is a file error; so is a field given by two columns.
* A name written without a space (山田太郎) is split with the surname list
  (``data/names_surnames_estimated_population.csv``) and the row carries a ``NameProposal`` that
  staff must confirm; likewise kana without a space, by the readings of the surname.
* A row whose number of cells differs from the header is an error (empty cells after the last
  header cell are ignored: Excel writes them for formatted but empty columns).
* More than ``max_rows`` data rows is a file error and no rows are returned.

Canonical values are described on ``RosterRow``; the import key on ``compute_import_key``.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import jaconv

from kiban.core.registry.codes import check_digit, lg_code_problem
from kiban.kit.errors import InvalidInput
from kiban.kit.wareki import ERAS, JST
from kiban.kit.export import csv_bytes, neutralise, workbook, xlsx_bytes
from kiban.modules.disaster.fields import BY_KEY, FIELDS, ROSTER_FIELDS, TEMPLATE_FIELDS
from kiban.modules.disaster.names import compute_import_key, normalize_kana, normalize_kanji, normalize_name

WHEREABOUTS = {
    "shelter": "避難所",
    "home": "在宅",
    "relatives": "親族・知人宅",
    "wide_area": "広域避難先",
    "temporary_housing": "応急仮設住宅",
    "unknown": "不明",
}
DAMAGE_LEVELS = ("全壊", "大規模半壊", "中規模半壊", "半壊", "準半壊", "準半壊に至らない（一部損壊）", "未調査")
CARE_NEEDS = ("高齢者", "障害者", "乳幼児", "妊産婦", "難病患者", "外国人", "要介護者", "医療的ケア児")
RISAI_STATUSES = ("未申請", "申請中", "交付済")

# Header text → field, from the one table of field names (``fields.py``): each field's label (what
# the form and the import page call it) and its aliases. Two fields exist only in headers:
# ``full_name`` (氏名 in one cell, split into family_name/given_name) and ``full_kana`` (likewise
# for the kana); ``shelter_name`` is the 避難所名 resolved to ``shelter_id``. Matching ignores width,
# spaces, hiragana/katakana, の and required marks, so 「 氏名（ふりがな）※」 is 氏名(フリガナ).
COLUMNS: dict[str, str] = {name: f.key for f in ROSTER_FIELDS for name in (*f.names, f.form_text)}
# Columns the form has but a roster does not carry: reported as not read, with where to enter them.
_FORM_ONLY: dict[str, str] = {name: f.key for f in FIELDS if not f.roster for name in (*f.names, f.form_text)}

_HEADER_SEARCH = 10
TEMPLATE_SHEET = "名簿"


def _label(key: str) -> str:
    return BY_KEY[key].label


_SHELTERS_LISTED = 5
_DATE_EXAMPLE = "例: 1985-04-01、昭和60年4月1日"
_CODE_EXAMPLE = "例: 172049"


@dataclass
class RosterRow:
    """One data line. ``values`` (and ``import_key``) only when the line has no errors.

    ``values`` keys: family_name, given_name (as written, spaces removed, half-width kana widened);
    family_kana, given_kana (full-width katakana, may be ""); birth_date (date or None);
    sex ("male"/"female"/None); home_address (str); home_lg_code (6 digits); household_size (int,
    1 when blank); whereabouts (a key of
    ``WHEREABOUTS``); shelter_id (str or None); wide_area_lg_code (6 digits or None); phone
    (digits and hyphens, or None); household_key (str); care_needs (list of ``CARE_NEEDS``);
    damage_level (one of ``DAMAGE_LEVELS``); risai_status (one of ``RISAI_STATUSES``); note (str).
    """

    line: int
    values: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    import_key: str | None = None
    # A split of a name written without a space (山田太郎), guessed from the surname list: the row's
    # values carry it, but staff confirm or correct it before anything is registered.
    proposal: NameProposal | None = None


@dataclass
class RosterReport:
    """``encoding`` is "utf-8", "utf-8-sig" or "cp932" ("" when the file could not be decoded)."""

    encoding: str
    rows: list[RosterRow] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    columns: list[ColumnUse] = field(default_factory=list)

    @property
    def valid_rows(self) -> list[RosterRow]:
        return [row for row in self.rows if row.values is not None]

    @property
    def error_rows(self) -> list[RosterRow]:
        return [row for row in self.rows if row.errors]

    @property
    def ok(self) -> bool:
        return not self.file_errors and not self.error_rows


def parse_roster(data: bytes, *, shelters: Mapping[str, str], is_known_code: Callable[[str], bool],
                 max_rows: int = 20000, resolve_name: Callable[[str, str, str], str] | None = None) -> RosterReport:
    """Read a roster CSV. ``shelters`` maps shelter name → id; ``is_known_code`` says whether a
    6-digit code (check digit already verified) is a registered local government. With
    ``resolve_name(text, field, label)`` (the registry's ``resolve_lg_code_input_sync`` over one
    snapshot), a code column may hold a name (輪島市, 石川県輪島市): it returns the code or raises
    ``InvalidInput`` with a Japanese message naming the column."""
    if data.startswith(b"PK\x03\x04"):
        sheet, problem = _xlsx_rows(data)
        if problem is not None:
            return RosterReport(encoding="", file_errors=[problem])
        encoding, records = "xlsx", iter(sheet)
    else:
        text, encoding, problem = _decode(data)
        if problem is not None:
            return RosterReport(encoding=encoding, file_errors=[problem])
        records = _records(text)
    report = RosterReport(encoding=encoding)
    try:
        header_line, header_cells, skipped = _find_header(records)
    except _CsvProblem as exc:
        report.file_errors.append(str(exc))
        return report
    if header_cells is None:
        report.file_errors.append("ファイルが空です。見出しの行とデータの行を入れてください。")
        return report
    if skipped:
        report.warnings.append(f"{skipped[0]}〜{skipped[-1]}行目は見出し（{header_line}行目）より前の行なので読み込みません。"
                               if len(skipped) > 1 else
                               f"{skipped[0]}行目は見出し（{header_line}行目）より前の行なので読み込みません。")
    layout = _Layout.from_header(header_cells, report)
    if report.file_errors:
        return report
    parser = _RowParser(layout, shelters, is_known_code, resolve_name)
    seen: dict[str, int] = {}
    rows: list[RosterRow] = []
    try:
        for line, cells in records:
            if len(rows) >= max_rows:
                report.file_errors.append(
                    f"データの行が多すぎます（上限 {max_rows:,}行）。ファイルを分けてアップロードしてください。")
                return report
            row = parser.parse(line, cells)
            if row.import_key is not None:
                first = seen.setdefault(row.import_key, line)
                if first != line:
                    row.errors.append(f"{first}行目と同じ人です（重複）")
                    row.values = None
                    row.import_key = None
            rows.append(row)
    except _CsvProblem as exc:
        report.file_errors.append(str(exc))
        return report
    if not rows:
        report.file_errors.append("データの行がありません（見出しの行だけです）。")
    report.rows = rows
    return report


# --- decoding and CSV --------------------------------------------------------------------------


class _CsvProblem(Exception):
    pass


def _decode(data: bytes) -> tuple[str, str, str | None]:
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        return "", "", ("古い形式のブックは読めません。表計算ソフトで新しいブック形式か"
                        "CSV 形式（コンマ区切り）で保存し直してください。")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "", "", ("「ユニコード テキスト」形式（タブ区切り）のファイルは読めません。表計算ソフトで"
                        "CSV 形式（コンマ区切り）で保存し直してください。")
    if b"\x00" in data:
        return "", "", "CSV ファイルではないようです（文字でないデータが含まれています）。"
    candidates = (("utf-8-sig", "utf-8-sig"),) if data.startswith(codecs.BOM_UTF8) else ()
    for codec, name in (*candidates, ("utf-8", "utf-8"), ("cp932", "cp932")):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        # Python's cp932 maps the single bytes 0x80, 0xA0 and 0xFD-0xFF, which Excel never writes.
        if codec == "cp932" and _CP932_STRAY.search(text):
            break
        return text, name, None
    return "", "", ("ファイルの文字コードを読み取れません（ユニコードでもシフトジスでもありません）。表計算ソフトで"
                    "CSV 形式（コンマ区切り）で保存し直してください。")


def _xlsx_rows(data: bytes) -> tuple[list[tuple[int, list[str]]], str | None]:
    """(row number, cells as text) of the non-blank rows of the workbook's 名簿 sheet (else its first
    sheet), or a problem. Dates become 1985-04-01; whole numbers lose Excel's ``.0``."""
    import openpyxl  # only for the rare .xlsx upload

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - any damage to the zip or its XML means the same to staff
        return [], ("ブック形式のファイルとして読めません。ファイルが壊れていないか確かめるか、表計算ソフトで"
                    "CSV 形式（コンマ区切り）で保存してからアップロードしてください。")
    try:
        sheet = book[TEMPLATE_SHEET] if TEMPLATE_SHEET in book.sheetnames else book.worksheets[0]
        rows = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_xlsx_text(value) for value in values]
            if any(cell.strip() for cell in cells):
                rows.append((number, cells))
        return rows, None
    finally:
        book.close()


def _xlsx_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_CP932_STRAY = re.compile(r"[\u0080\uf8f0-\uf8f3]")


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, cells) of each non-blank record."""
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = "\t" if "," not in first_line and "\t" in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    previous = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _CsvProblem(f"{previous + 1}行目を CSV として読めません（{exc}）。") from exc
        start, previous = previous + 1, reader.line_num
        if any(cell.strip() for cell in cells):
            yield start, cells


def _find_header(records: Iterator[tuple[int, list[str]]]) -> tuple[int, list[str] | None, list[int]]:
    """The header line and cells; lines above it (a sheet title) are returned as skipped."""
    looked: list[tuple[int, list[str]]] = []
    for line, cells in records:
        if any(_HEADER_INDEX.get(_header_key(cell)) in ("full_name", "family_name") for cell in cells):
            return line, cells, [seen for seen, _ in looked]
        looked.append((line, cells))
        if len(looked) >= _HEADER_SEARCH:
            break
    if not looked:
        return 0, None, []
    # No name column anywhere: take the first line as the header so the report says what's missing.
    # The other lines looked at are data rows; they are lost here, but the file is rejected anyway.
    return looked[0][0], looked[0][1], []


_REQUIRED_MARK = re.compile(r"^[※*]+|[※*]+$|\((?:必須|任意)\)$")
_WHITESPACE = re.compile(r"[\s\ufeff]+")
_NO = re.compile("[のノ之]")
_TRAILING_NOTE = re.compile(r"^(.+?)[(\[](.*)[)\]]$")
# A bracket that changes what a column holds (氏名（カナ） is not 氏名); any other bracket is a note
# (住所地の団体コード（6桁）, 性別（男/女）) and the column is read as the name before it.
_MEANINGFUL_NOTE = re.compile("カナ|フリガナ|ヨミ|ローマ|英|漢字|氏|姓|名|世帯主|続柄|家族")
_GUESS_CUTOFF = 0.75
_GUESS_MIN_NAME = 3  # a guess needs a known name of 3+ characters (世帯主 is not 世帯, 現住所 not 住所)


def _header_key(cell: str) -> str:
    key = _WHITESPACE.sub("", unicodedata.normalize("NFKC", cell))
    previous = None
    while previous != key:
        previous, key = key, _REQUIRED_MARK.sub("", key)
    return _NO.sub("", jaconv.hira2kata(key)).casefold()


_HEADER_INDEX = {_header_key(name): fld for name, fld in COLUMNS.items()}
_FORM_ONLY_INDEX = {_header_key(name): fld for name, fld in _FORM_ONLY.items()}
_GUESS_NAMES = [key for key in _HEADER_INDEX if len(key) >= _GUESS_MIN_NAME]


def guess_column(cell: str) -> str | None:
    """The roster field a header that is not one of its names most likely means, or None.

    A trailing note in brackets is dropped (住所地の団体コード（6桁）); otherwise the closest known
    name of 3+ characters by similarity (difflib ratio ≥ 0.75), when no other field is as close.
    """
    key = _header_key(cell)
    if not key or key in _HEADER_INDEX:
        return _HEADER_INDEX.get(key)
    keys = [key]
    if (note := _TRAILING_NOTE.match(key)) and not _MEANINGFUL_NOTE.search(note[2]):
        if note[1] in _HEADER_INDEX:
            return _HEADER_INDEX[note[1]]
        keys.append(note[1])
    scores: dict[str, float] = {}
    for written in keys:
        for name in _GUESS_NAMES:
            fld = _HEADER_INDEX[name]
            scores[fld] = max(scores.get(fld, 0.0), difflib.SequenceMatcher(None, written, name).ratio())
    scored = sorted(((score, fld) for fld, score in scores.items()), reverse=True)
    if not scored or scored[0][0] < _GUESS_CUTOFF:
        return None
    best, fld = scored[0]
    if len(scored) > 1 and best - scored[1][0] < 0.05:
        return None  # as close to two fields: not a guess staff could rely on
    return fld


@dataclass
class ColumnUse:
    """How one header cell of the file is read: ``field`` is the label it is read as ("" = not read)."""

    position: int
    written: str
    field: str
    note: str = ""


@dataclass
class _Layout:
    width: int
    columns: dict[str, int]
    headers: dict[str, str]

    def label(self, fld: str) -> str:
        return self.headers.get(fld, BY_KEY[fld].label)

    @classmethod
    def from_header(cls, cells: list[str], report: RosterReport) -> _Layout:
        width = len(cells)
        while width and not cells[width - 1].strip():
            width -= 1
        columns: dict[str, int] = {}
        headers: dict[str, str] = {}
        uses: dict[int, ColumnUse] = {}
        guesses: list[tuple[int, str, str]] = []
        for index, cell in enumerate(cells[:width]):
            written = cell.strip().lstrip("\ufeff").strip()
            key = _header_key(cell)
            if not key:
                report.warnings.append(f"{index + 1}列目に見出しがありません。この列は読み込みません。")
                uses[index] = ColumnUse(index + 1, "", "", "見出しがありません")
                continue
            fld = _HEADER_INDEX.get(key)
            if fld is None:
                if (form_only := _FORM_ONLY_INDEX.get(key)) is not None:
                    report.warnings.append(
                        f"列「{written}」（{index + 1}列目）は名簿の取り込みでは読み込みません。"
                        f"「{BY_KEY[form_only].label}」は、登録したあと記録の画面で入力してください。")
                    uses[index] = ColumnUse(index + 1, written, "", "登録後に記録の画面で入力する項目")
                elif (guessed := guess_column(cell)) is not None:
                    guesses.append((index, written, guessed))
                else:
                    report.warnings.append(f"列「{written}」（{index + 1}列目）は名簿の項目にないため読み込みません。")
                    uses[index] = ColumnUse(index + 1, written, "", "名簿の項目にありません")
                continue
            if fld in columns:
                report.file_errors.append(
                    f"列「{headers[fld]}」と列「{written}」は同じ項目です。どちらか一方にしてください。")
                uses[index] = ColumnUse(index + 1, written, "", f"列「{headers[fld]}」と同じ項目です")
                continue
            columns[fld] = index
            headers[fld] = written
            uses[index] = ColumnUse(index + 1, written, BY_KEY[fld].label)
        # A column that only looks like a field is read as it unless the field has its own column.
        for index, written, fld in guesses:
            label = BY_KEY[fld].label
            if fld in columns:
                report.warnings.append(
                    f"列「{written}」（{index + 1}列目）は「{label}」のようですが、列「{headers[fld]}」があるので読み込みません。")
                uses[index] = ColumnUse(index + 1, written, "", f"「{label}」に似ていますが、列「{headers[fld]}」を使います")
                continue
            report.warnings.append(
                f"列「{written}」（{index + 1}列目）は「{label}」のようです。「{label}」として読み込みます。"
                f"違う場合は見出しを直して読み込み直してください。")
            columns[fld] = index
            headers[fld] = written
            uses[index] = ColumnUse(index + 1, written, label, "見出しが違うため推測しました")
        report.columns = [uses[index] for index in sorted(uses)]
        layout = cls(width=width, columns=columns, headers=headers)
        layout._check_pair(report, "full_name", "family_name", "given_name", required=True)
        layout._check_pair(report, "full_kana", "family_kana", "given_kana", required=False)
        if "home_lg_code" not in columns:
            report.file_errors.append(
                f"必須の列「{_label('home_lg_code')}」（6桁の全国地方公共団体コード）がありません。")
        if "birth_date" not in columns and not report.file_errors:
            report.warnings.append(f"列「{_label('birth_date')}」がありません。同じ人かどうかの判定が不正確になります。")
        return layout

    def _check_pair(self, report: RosterReport, whole: str, first: str, second: str, *, required: bool) -> None:
        has_whole, has_first, has_second = (f in self.columns for f in (whole, first, second))
        if has_whole and (has_first or has_second):
            other = self.headers[first] if has_first else self.headers[second]
            report.file_errors.append(
                f"列「{self.headers[whole]}」と列「{other}」の両方があります。"
                f"「{_label(whole)}」1列か、「{_label(first)}」と「{_label(second)}」の2列のどちらかにしてください。")
        elif has_first != has_second:
            present, missing = (first, second) if has_first else (second, first)
            report.file_errors.append(f"列「{self.headers[present]}」はありますが、列「{_label(missing)}」がありません。")
        elif required and not has_whole and not has_first:
            report.file_errors.append(
                f"必須の列「{_label(whole)}」（または「{_label(first)}」と「{_label(second)}」）がありません。")


# --- rows ----------------------------------------------------------------------------------------


class _RowParser:
    def __init__(self, layout: _Layout, shelters: Mapping[str, str], is_known_code: Callable[[str], bool],
                 resolve_name: Callable[[str, str, str], str] | None = None) -> None:
        self.layout = layout
        self.is_known_code = is_known_code
        self.resolve_name = resolve_name
        self.shelter_names: dict[str, str] = {}
        self.shelter_ids: dict[str, str] = {}
        for name, shelter_id in shelters.items():
            key = _loose_key(name)
            self.shelter_ids.setdefault(key, shelter_id)
            self.shelter_names.setdefault(key, name)
        self._shelter_hints: dict[str, str] = {}
        self.cells: list[str] = []
        self.row = RosterRow(line=0)

    def parse(self, line: int, cells: list[str]) -> RosterRow:
        row = RosterRow(line=line)
        width = self.layout.width
        if len(cells) > width and not any(cell.strip() for cell in cells[width:]):
            cells = cells[:width]
        if len(cells) != width:
            hint = ""
            if any("\n" in cell or "\r" in cell for cell in cells):
                hint = "セルの中に改行があります。「\"」の閉じ忘れがないか確認してください。"
            elif len(cells) > width:
                hint = "セルの中のコンマは、セル全体を「\"」で囲んでください。"
            row.errors.append(f"列の数が見出しと合いません（見出し {width}列、この行 {len(cells)}列）。{hint}")
            return row
        self.cells = cells
        self.row = row
        for fld, index in self.layout.columns.items():
            if _PRIVATE_USE.search(cells[index]):
                self.warn(f"{self.label(fld)}「{cells[index].strip()}」に外字（私用領域の文字）が含まれています。"
                          "ほかの市区町村やシステムでは正しく表示されません。")
        values = self._values()
        if not row.errors:
            row.values = values
            row.import_key = compute_import_key(values)
        return row

    # helpers reading the current row

    def get(self, fld: str) -> str:
        index = self.layout.columns.get(fld)
        return "" if index is None else self.cells[index].strip()

    def error(self, message: str) -> None:
        self.row.errors.append(message)

    def warn(self, message: str) -> None:
        self.row.warnings.append(message)

    def label(self, fld: str) -> str:
        return self.layout.label(fld)

    def _values(self) -> dict[str, Any]:
        # Checked in the usual column order, so errors read left to right.
        family_name, given_name, written_name = self._names()
        family_kana, given_kana, written_kana = self._kana(family_name)
        if written_name or written_kana:
            self.row.proposal = NameProposal(
                written=written_name or f"{family_name} {given_name}", family_name=family_name, given_name=given_name,
                written_kana=written_kana, family_kana=family_kana if written_kana else "",
                given_kana=given_kana if written_kana else "")
        birth_date = self._birth_date()
        sex = self._sex()
        home_lg_code = self._lg_code("home_lg_code", self.get("home_lg_code"))
        whereabouts, shelter_id, wide_area_lg_code = self._whereabouts()
        return {
            "family_name": family_name,
            "given_name": given_name,
            "family_kana": family_kana,
            "given_kana": given_kana,
            "birth_date": birth_date,
            "sex": sex,
            "home_address": self.get("home_address"),
            "home_lg_code": home_lg_code,
            "household_size": self._household_size(),
            "whereabouts": whereabouts,
            "shelter_id": shelter_id,
            "wide_area_lg_code": wide_area_lg_code,
            "phone": self._phone(),
            "household_key": unicodedata.normalize("NFKC", self.get("household_key")).strip(),
            "care_needs": self._care_needs(),
            "damage_level": self._choice("damage_level", _DAMAGE_INDEX, DAMAGE_LEVELS, "未調査"),
            "risai_status": self._choice("risai_status", _RISAI_INDEX, RISAI_STATUSES, "未申請"),
            "note": self.get("note"),
        }

    def _names(self) -> tuple[str, str, str]:
        """(family, given, written): ``written`` is the cell as written when the split is a guess."""
        if "full_name" in self.layout.columns:
            raw = self.get("full_name")
            label = self.label("full_name")
            if not raw:
                self.error(f"{label}が空です。氏と名の間に空白を入れて入力してください（例: 山田 太郎）。")
                return "", "", ""
            parts = _SPACES.split(raw.strip(), maxsplit=1)
            if len(parts) == 2:
                return _name_text(parts[0]), _name_text(parts[1]), ""
            return self._guess_split("full_name", raw)
        family, given = self.get("family_name"), self.get("given_name")
        if family and not given and "given_name" in self.layout.columns:
            # The whole name typed into the 氏 column (山田太郎 or 山田 太郎), 名 left empty.
            return self._guess_split("family_name", family)
        names = []
        for fld in ("family_name", "given_name"):
            raw = self.get(fld)
            if not raw:
                self.error(f"{self.label(fld)}が空です。")
            names.append(_name_text(raw))
        return names[0], names[1], ""

    def _guess_split(self, fld: str, raw: str) -> tuple[str, str, str]:
        parts = _SPACES.split(raw.strip(), maxsplit=1)
        if len(parts) == 2:
            return _name_text(parts[0]), _name_text(parts[1]), raw.strip()
        written = _name_text(raw)
        family = split_name(written)
        if family is None:
            self.error(f"{self.label(fld)}「{raw}」を氏と名に分けられません（名字の一覧からも分け方がわかりません）。"
                       "氏と名の間に空白（全角・半角どちらでも）を入れてください（例: 山田 太郎）。")
            return "", "", ""
        return written[:family], written[family:], written

    def _kana(self, family_name: str) -> tuple[str, str, str]:
        """(family kana, given kana, written): ``written`` is the kana as written when its split is a
        guess from the readings of ``family_name`` in the surname list."""
        if "full_kana" in self.layout.columns:
            fld, raw = "full_kana", self.get("full_kana")
        elif self.get("family_kana") and not self.get("given_kana") and "given_kana" in self.layout.columns:
            fld, raw = "family_kana", self.get("family_kana")
        else:
            return (self._kana_part("family_kana", self.get("family_kana"), self.get("family_kana")),
                    self._kana_part("given_kana", self.get("given_kana"), self.get("given_kana")), "")
        if not raw:
            return "", "", ""
        parts = _SPACES.split(raw.strip(), maxsplit=1)
        if len(parts) == 2:
            written = raw.strip() if fld == "family_kana" else ""
            return self._kana_part(fld, raw, parts[0]), self._kana_part(fld, raw, parts[1]), written
        kana = self._kana_part(fld, raw, raw)
        if not kana:
            return "", "", ""
        cut = split_kana(kana, family_name)
        if cut is None:
            self.error(f"{self.label(fld)}「{raw}」をセイとメイに分けられません。"
                       "セイとメイの間に空白を入れてください（例: ヤマダ タロウ）。")
            return "", "", ""
        return kana[:cut], kana[cut:], kana

    def _kana_part(self, fld: str, raw: str, part: str) -> str:
        kana = _kana_text(part)
        if kana and not _KATAKANA.fullmatch(kana):
            self.error(f"{self.label(fld)}「{raw}」はカタカナかひらがなで入力してください。")
            return ""
        return kana

    def _household_size(self) -> int:
        raw = self.get("household_size")
        text = unicodedata.normalize("NFKC", raw).strip().removesuffix("人").strip()
        if not text:
            return 1
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 30:
            self.error(f"{self.label('household_size')}「{raw}」は1〜30の数で入力してください（空欄は1）。")
            return 1
        return int(text)

    def _birth_date(self) -> date | None:
        raw = self.get("birth_date")
        if not raw:
            return None
        day, problem = parse_birth_date(raw)
        if problem is not None:
            self.error(f"{self.label('birth_date')}「{raw}」{problem}")
        return day

    def _sex(self) -> str | None:
        raw = self.get("sex")
        if not raw:
            return None
        sex = _SEXES.get(unicodedata.normalize("NFKC", raw).strip().upper())
        if sex is None:
            self.error(f"{self.label('sex')}「{raw}」が読めません。男・女（男性・女性、M・F、1・2）のどれかを入れてください。"
                       "わからなければ空欄にしてください。")
        return sex

    def _lg_code(self, fld: str, raw: str) -> str | None:
        label = self.label(fld)
        code = unicodedata.normalize("NFKC", raw).strip()
        if not code:
            self.error(f"{label}が空です。6桁の全国地方公共団体コードを入力してください（{_CODE_EXAMPLE}）。")
            return None
        if self.resolve_name is not None and not any(ch.isdigit() for ch in code):
            return self._lg_code_by_name(fld, label, raw)
        if not code.isascii() or not code.isdigit():
            self.error(f"{label}「{raw}」に数字以外の文字が含まれています。6桁の数字で入力してください（{_CODE_EXAMPLE}）。")
            return None
        if len(code) == 5:
            padded, completed = "0" + code, code + check_digit(code)
            if lg_code_problem(padded) is None and self.is_known_code(padded):
                hint = f"先頭の0が落ちていませんか（{padded}）。表計算ソフトでは列の書式を「文字列」にしてください。"
            elif self.is_known_code(completed):
                hint = f"末尾の検査数字を含めた6桁で入力してください（{completed}）。"
            else:
                hint = "6桁で入力してください。"
            self.error(f"{label}「{raw}」は5桁です。{hint}")
            return None
        if len(code) != 6:
            self.error(f"{label}「{raw}」は{len(code)}桁です。6桁で入力してください（{_CODE_EXAMPLE}）。")
            return None
        if lg_code_problem(code) is not None:
            self.error(f"{label}「{raw}」の検査数字（6桁目）が正しくありません。"
                       f"前5桁が {code[:5]} なら6桁目は {check_digit(code[:5])} です。")
            return None
        if not self.is_known_code(code):
            self.error(f"{label}「{raw}」は登録されている地方公共団体のコードではありません。")
            return None
        return code

    def _lg_code_by_name(self, fld: str, label: str, raw: str) -> str | None:
        """A municipality named instead of coded (輪島市, 石川県輪島市, わじまし)."""
        try:
            code = self.resolve_name(raw.strip(), fld, label)
        except InvalidInput as exc:
            self.error(exc.detail)
            return None
        if not self.is_known_code(code):
            self.error(f"{label}「{raw}」（{code}）は現存する市区町村ではありません。市区町村の団体名か団体コードを入力してください。")
            return None
        return code

    def _whereabouts(self) -> tuple[str | None, str | None, str | None]:
        raw = self.get("whereabouts")
        shelter_raw = self.get("shelter_name")
        if raw:
            whereabouts = _WHEREABOUTS_INDEX.get(_loose_key(raw))
            if whereabouts is None:
                choices = "、".join(WHEREABOUTS.values())
                self.error(f"{self.label('whereabouts')}「{raw}」が読めません。{choices} のどれかを入れてください。")
                return None, None, None
        else:
            whereabouts = "shelter" if shelter_raw else "unknown"
        label = WHEREABOUTS[whereabouts]
        shelter_id = None
        if whereabouts == "shelter":
            shelter_id = self._shelter(shelter_raw)
        elif shelter_raw:
            self.warn(f"{self.label('shelter_name')}「{shelter_raw}」は、{self.label('whereabouts')}が「{label}」なので使いません。")
        wide_area = None
        wide_raw = self.get("wide_area_lg_code")
        if whereabouts == "wide_area":
            if wide_raw:
                wide_area = self._lg_code("wide_area_lg_code", wide_raw)
            else:
                self.error(f"{self.label('whereabouts')}が「{label}」のときは{self.label('wide_area_lg_code')}"
                           f"（避難先の6桁の団体コード）を入力してください（{_CODE_EXAMPLE}）。")
        elif wide_raw:
            self.warn(f"{self.label('wide_area_lg_code')}「{wide_raw}」は、{self.label('whereabouts')}が「{label}」なので使いません。")
        return whereabouts, shelter_id, wide_area

    def _shelter(self, raw: str) -> str | None:
        label = self.label("shelter_name")
        if not raw:
            self.error(f"{self.label('whereabouts')}が「避難所」のときは{label}を入力してください。")
            return None
        key = _loose_key(raw)
        shelter_id = self.shelter_ids.get(key)
        if shelter_id is None:
            if key not in self._shelter_hints:
                self._shelter_hints[key] = self._known_shelters(key)
            self.error(f"{label}「{raw}」は登録されている避難所にありません。{self._shelter_hints[key]}")
        return shelter_id

    def _known_shelters(self, key: str) -> str:
        if not self.shelter_names:
            return "避難所がまだ登録されていません。先に避難所を登録してください。"
        closest = difflib.get_close_matches(key, list(self.shelter_names), n=_SHELTERS_LISTED, cutoff=0.0)
        names = "、".join(self.shelter_names[k] for k in closest)
        more = len(self.shelter_names) - len(closest)
        return f"登録されている避難所: {names}" + (f"（ほか{more}か所）" if more > 0 else "") + "。"

    def _phone(self) -> str | None:
        raw = self.get("phone")
        if not raw:
            return None
        label = self.label("phone")
        text = _DASHES.sub("-", unicodedata.normalize("NFKC", raw).strip())
        text = _PHONE_SEPARATORS.sub("-", text)
        if text.startswith("+81"):
            text = "0" + text[3:].lstrip("-").removeprefix("0").lstrip("-")
        if not _PHONE_CHARS.fullmatch(text):
            self.error(f"{label}「{raw}」には数字とハイフン以外の文字が含まれています（例: 0768-22-2211、090-1234-5678）。")
            return None
        text = re.sub("-+", "-", text).strip("-")
        digits = text.replace("-", "")
        if not digits.startswith("0"):
            hint = "先頭の0が落ちていませんか。表計算ソフトでは列の書式を「文字列」にしてください。" if len(digits) in (9, 10) else ""
            self.error(f"{label}「{raw}」は国内の電話番号（0で始まる10桁か11桁）ではありません。{hint}")
            return None
        if len(digits) not in (10, 11):
            self.error(f"{label}「{raw}」は{len(digits)}桁です。市外局番から10桁か11桁で入力してください"
                       "（例: 0768-22-2211、090-1234-5678）。")
            return None
        return text

    def _care_needs(self) -> list[str]:
        raw = self.get("care_needs")
        needs: list[str] = []
        unknown: list[str] = []
        for item in _LIST_SEPARATORS.split(unicodedata.normalize("NFKC", raw)):
            if not item:
                continue
            need = _CARE_INDEX.get(item)
            if need is None:
                unknown.append(item)
            elif need not in needs:
                needs.append(need)
        if unknown:
            self.error(f"{self.label('care_needs')}「{raw}」の「{'」「'.join(unknown)}」は区分にありません。"
                       f"{'、'.join(CARE_NEEDS)} から選び、「、」で区切ってください。")
        return needs

    def _choice(self, fld: str, index: dict[str, str], choices: tuple[str, ...], default: str) -> str:
        raw = self.get(fld)
        if not raw:
            return default
        value = index.get(_loose_key(raw))
        if value is None:
            self.error(f"{self.label(fld)}「{raw}」が読めません。{'、'.join(choices)} のどれかを入れてください"
                       f"（空欄は「{default}」）。")
            return default
        return value


# --- names written without a space between 氏 and 名 ------------------------------------------------

SURNAMES = Path(__file__).resolve().parent / "data" / "names_surnames_estimated_population.csv"
_MAX_SURNAME = 5


@dataclass
class NameProposal:
    """A guessed split: ``written`` as in the file, the split the row's values carry. ``written_kana``
    is set when the kana was split too (then family_kana/given_kana are the guessed halves)."""

    written: str
    family_name: str
    given_name: str
    written_kana: str = ""
    family_kana: str = ""
    given_kana: str = ""

    @property
    def text(self) -> str:
        kana = f"（{self.family_kana} {self.given_kana}）" if self.written_kana else ""
        return f"{self.family_name} {self.given_name}{kana} と分けて登録します（確認してください）"


@lru_cache(maxsize=1)
def _surname_index() -> tuple[dict[str, int], dict[str, list[tuple[int, str]]]]:
    """(folded surname or its katakana reading → estimated bearers, folded surname → [(bearers, reading)])."""
    bearers: dict[str, int] = {}
    readings: dict[str, list[tuple[int, str]]] = {}
    with SURNAMES.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            count = int(row["estimated_population"])
            kanji, reading = _fold_chars(row["kanji"]), jaconv.hira2kata(row["hiragana"])
            for key in (kanji, reading):
                bearers[key] = max(bearers.get(key, 0), count)
            readings.setdefault(kanji, []).append((count, reading))
    return bearers, readings


def _fold_chars(text: str) -> str:
    """異体字 folded one character at a time, so an index in the result is an index in ``text``."""
    folded = []
    for ch in text:
        standard = normalize_kanji(ch)
        folded.append(standard if len(standard) == 1 else ch)
    return jaconv.hira2kata("".join(folded))


def split_name(written: str) -> int | None:
    """Where 氏 ends in a name written without a space (山田太郎 → 2), from the surname list: the
    longest known surname that leaves a given name, the more common one when two are as long.
    髙橋 is found as 高橋, and a name written in kana by the readings. None when no surname fits."""
    bearers, _ = _surname_index()
    folded = _fold_chars(written)
    found = [(length, bearers[folded[:length]]) for length in range(1, min(_MAX_SURNAME, len(folded) - 1) + 1)
             if folded[:length] in bearers]
    return max(found)[0] if found else None


def split_kana(kana: str, family_name: str) -> int | None:
    """Where セイ ends in katakana written without a space, from the readings the surname list gives
    for ``family_name`` (山田: ヤマダ), the most common reading that fits; a family name written in
    katakana is its own reading. None when no reading fits."""
    _, readings = _surname_index()
    folded = _fold_chars(family_name)
    options = [(count, reading) for count, reading in readings.get(folded, [])]
    if _KATAKANA.fullmatch(folded):
        options.append((0, folded))
    fits = [(len(reading), count) for count, reading in options if kana.startswith(reading) and len(kana) > len(reading)]
    return max(fits)[0] if fits else None


def confirm_split(proposal: Mapping[str, str], family_name: str, given_name: str, family_kana: str = "",
                  given_kana: str = "") -> tuple[dict[str, str], str | None]:
    """The names staff confirmed for a proposal (as stored in a report), or a Japanese problem.

    Staff may move the boundary but not change the name: 氏 and 名 joined must be the name as written
    (spaces aside), each non-empty; likewise the kana when the proposal split it. So the import key,
    which is computed from the joined name, stays what the preview showed.
    """
    family, given = _name_text(family_name), _name_text(given_name)
    written = _name_text(proposal["written"])
    if not family or not given or family + given != written:
        return {}, f"氏と名は「{written}」を二つに分けて入力してください（氏「{family}」・名「{given}」）。"
    names = {"family_name": family, "given_name": given}
    if proposal.get("written_kana"):
        kana_family, kana_given = _kana_text(family_kana), _kana_text(given_kana)
        written_kana = _kana_text(proposal["written_kana"])
        if not kana_family or not kana_given or kana_family + kana_given != written_kana:
            return {}, (f"氏（フリガナ）と名（フリガナ）は「{written_kana}」を二つに分けて入力してください"
                        f"（「{kana_family}」・「{kana_given}」）。")
        names |= {"family_kana": kana_family, "given_kana": kana_given}
    return names, None


# --- values --------------------------------------------------------------------------------------

_SPACES = re.compile(r"\s+")
_PRIVATE_USE = re.compile(r"[\ue000-\uf8ff]")
_KATAKANA = re.compile(r"[\u30a1-\u30fa\u30fb\u30fc\u30fd\u30fe]+")  # ァ–ヺ, ・, ー, ヽ, ヾ
_DASHES = re.compile(r"[\u2010-\u2015\u2212\u30fc\uff70]")
_PHONE_SEPARATORS = re.compile(r"[\s()]+")
_PHONE_CHARS = re.compile(r"[0-9-]+")
_LIST_SEPARATORS = re.compile(r"[、,・/;\s]+")


def _name_text(text: str) -> str:
    """A name as written: spaces removed, half-width katakana widened (nothing else folded)."""
    return jaconv.h2z(_SPACES.sub("", text), kana=True, ascii=False, digit=False)


def _kana_text(text: str) -> str:
    folded = _SPACES.sub("", unicodedata.normalize("NFKC", text))
    folded = _DASHES.sub("ー", folded).replace("-", "ー")  # in a kana field a dash is a long vowel
    return jaconv.hira2kata(folded)


def _loose_key(text: str) -> str:
    """For matching labels and shelter names: width folded, case folded, spaces removed."""
    return _SPACES.sub("", unicodedata.normalize("NFKC", text)).casefold()


_SEXES = {"男": "male", "男性": "male", "M": "male", "1": "male", "MALE": "male",
          "女": "female", "女性": "female", "F": "female", "2": "female", "FEMALE": "female"}
_WHEREABOUTS_INDEX = {_loose_key(k): k for k in WHEREABOUTS} | {_loose_key(v): k for k, v in WHEREABOUTS.items()}
_DAMAGE_INDEX = {_loose_key(level): level for level in DAMAGE_LEVELS} | {
    _loose_key("一部損壊"): DAMAGE_LEVELS[5], _loose_key("準半壊に至らない"): DAMAGE_LEVELS[5]}
_RISAI_INDEX = {_loose_key(status): status for status in RISAI_STATUSES} | {_loose_key("交付済み"): "交付済"}
_CARE_INDEX = {unicodedata.normalize("NFKC", need): need for need in CARE_NEEDS}


# --- birth dates ---------------------------------------------------------------------------------

_ERA_NAMES = {"明治": "明治", "明": "明治", "M": "明治", "大正": "大正", "大": "大正", "T": "大正",
              "昭和": "昭和", "昭": "昭和", "S": "昭和", "平成": "平成", "平": "平成", "H": "平成",
              "令和": "令和", "令": "令和", "R": "令和"}
# 明治元年 is 1868; ERAS starts 明治 at 1873-01-01, when the Gregorian calendar was adopted.
_ERA_FIRST_YEAR = {name: (1868 if name == "明治" else start.year) for name, start in ERAS}
_ERA_RANGE = {name: (start, ERAS[i - 1][1] if i else None) for i, (name, start) in enumerate(ERAS)}
_MONTH_DAY = r"(?:年(\d{1,2})月(\d{1,2})日?|[./-](\d{1,2})[./-](\d{1,2}))"
_WAREKI = re.compile(r"(明治|大正|昭和|平成|令和|[明大昭平令MTSHR])(元|\d{1,2})" + _MONTH_DAY)
_SEIREKI = re.compile(r"(\d{4})" + _MONTH_DAY)
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_SERIAL = re.compile(r"\d{5}(?:\.\d+)?")
_TIME = re.compile(r"\s+\d{1,2}:\d{2}(?::\d{2})?$")


def parse_birth_date(raw: str, *, today: date | None = None) -> tuple[date | None, str | None]:
    """(date, None) or (None, what is wrong: a sentence to follow 「生年月日「raw」」).

    西暦 1985-04-01, 1985/4/1, 1985.4.1, 1985年4月1日, 19850401; 和暦 昭和60年4月1日, 平成元年1月8日,
    S60.4.1, H2/1/1, R1.5.1 (era initials or 昭/平 also). A trailing time (Excel's 0:00) is ignored.
    Excel serial numbers, future dates and dates before 1900 are refused.
    """
    text = _TIME.sub("", unicodedata.normalize("NFKC", raw).strip())
    text = _SPACES.sub("", text).upper()
    unreadable = f"を日付として読めません。{_DATE_EXAMPLE}"
    if _SERIAL.fullmatch(text):
        return None, ("は表計算ソフトの日付のシリアル値のようです。セルの書式を日付にして保存し直すか、"
                      f"日付を文字で入力してください。{_DATE_EXAMPLE}")
    era = None
    if match := _WAREKI.fullmatch(text):
        era = _ERA_NAMES[match[1]]
        number = 1 if match[2] == "元" else int(match[2])
        if number == 0:
            return None, unreadable
        year = _ERA_FIRST_YEAR[era] + number - 1
        month, day = match[3] or match[5], match[4] or match[6]
    elif match := _SEIREKI.fullmatch(text):
        year, month, day = int(match[1]), match[2] or match[4], match[3] or match[5]
    elif match := _COMPACT.fullmatch(text):
        year, month, day = int(match[1]), match[2], match[3]
    else:
        return None, unreadable
    try:
        result = date(year, int(month), int(day))
    except ValueError:
        return None, unreadable
    if era is not None:
        start, end = _ERA_RANGE[era]
        if (result < start and era != "明治") or (end is not None and result >= end):
            last = end - timedelta(days=1) if end is not None else None
            span = f"{start.year}年{start.month}月{start.day}日から" + (
                f"{last.year}年{last.month}月{last.day}日まで" if last else "")
            return None, f"は{era}の期間（{span}）にありません。{_DATE_EXAMPLE}"
    if result.year < 1900:
        return None, "は1900年より前です。生年月日を確認してください。"
    if result > (today or datetime.now(JST).date()):
        return None, "は未来の日付です。生年月日を確認してください。"
    return result, None


# --- the template staff fill in ------------------------------------------------------------------------

TEMPLATE_FILENAME = "避難者名簿_ひな形"
_CHOICES_SHEET = "選択肢"
_HELP_SHEET = "記入のしかた"
_TEXT_COLUMNS = ("home_lg_code", "wide_area_lg_code", "phone", "household_key", "birth_date")


def template_csv() -> bytes:
    """The header line of the roster, in the form's labels (UTF-8 with BOM, so Excel reads it)."""
    return csv_bytes([], header=[f.label for f in TEMPLATE_FIELDS])


def template_xlsx(shelters: list[str]) -> bytes:
    """The roster as an Excel book: the 名簿 sheet with the form's labels as headers, code and phone
    columns formatted as text (so Excel keeps 011002's leading zero), drop-down lists for the fields
    with fixed choices and for this municipality's ``shelters``; a 記入のしかた sheet from the table.
    Every text cell goes through ``neutralise``: a shelter named 「=...」 is text, not a formula."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter, quote_sheetname
    from openpyxl.worksheet.datavalidation import DataValidation

    book = workbook()
    sheet = book.active
    sheet.title = TEMPLATE_SHEET
    choices = book.create_sheet(_CHOICES_SHEET)
    help_sheet = book.create_sheet(_HELP_SHEET)
    choices.sheet_state = "hidden"
    lists = {"sex": ["男", "女"], "whereabouts": list(WHEREABOUTS.values()), "shelter_name": shelters,
             "damage_level": list(DAMAGE_LEVELS), "risai_status": list(RISAI_STATUSES)}
    for number, fld in enumerate(TEMPLATE_FIELDS, start=1):
        letter = get_column_letter(number)
        cell = sheet.cell(row=1, column=number, value=neutralise(fld.label))
        cell.font = Font(bold=True)
        sheet.column_dimensions[letter].width = max(12, 2 * len(fld.label) + 4)
        if fld.key in _TEXT_COLUMNS:
            for row in range(2, 1002):
                sheet.cell(row=row, column=number).number_format = "@"
        options = lists.get(fld.key)
        if options:
            column = len([k for k in lists if k in {f.key for f in TEMPLATE_FIELDS[:number]}])
            choice_letter = get_column_letter(column)
            choices.cell(row=1, column=column, value=neutralise(fld.label))
            for row, option in enumerate(options, start=2):
                choices.cell(row=row, column=column, value=neutralise(option))
            rule = DataValidation(
                type="list", allow_blank=True, showErrorMessage=False,
                formula1=f"{quote_sheetname(_CHOICES_SHEET)}!${choice_letter}$2:${choice_letter}${len(options) + 1}")
            rule.add(f"{letter}2:{letter}1001")
            sheet.add_data_validation(rule)
    sheet.freeze_panes = "A2"
    help_sheet.append(["列", "必須", "書き方", "例"])
    for fld in TEMPLATE_FIELDS:
        help_sheet.append([neutralise(fld.label), "必須" if fld.required else "", neutralise(fld.hint),
                           neutralise(fld.example)])
    for fld in ROSTER_FIELDS:
        if not fld.template:
            help_sheet.append([neutralise(fld.label), "", neutralise(fld.hint), neutralise(fld.example)])
    help_sheet.append([])
    help_sheet.append(["ほかに読める列名", "", neutralise("、".join(
        name for f in ROSTER_FIELDS for name in f.aliases)), ""])
    for letter, width in (("A", 24), ("B", 6), ("C", 60), ("D", 24)):
        help_sheet.column_dimensions[letter].width = width
    for row in help_sheet.iter_rows(min_row=1):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    return xlsx_bytes(book)
