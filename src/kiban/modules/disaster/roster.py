"""避難者名簿 (shelter roster) CSV import: decode, parse and validate, line by line. Pure.

Municipalities keep shelter rosters on paper or in Excel and upload them as CSV to register
evacuees in the 被災者台帳. ``parse_roster(data, shelters=..., is_known_code=...)`` reads the
bytes and returns a ``RosterReport``: for every data line a ``RosterRow`` with either the
canonical ``values`` (and the ``import_key`` that makes re-imports idempotent) or Japanese error
messages naming the line, the column, the bad value and what is expected. Nothing is stored here;
the web layer stores the valid rows.

Reading the file:

* Encoding: UTF-8 with or without BOM, else cp932 (Shift_JIS as Excel writes it). Anything else
  (UTF-16 「Unicode テキスト」, an .xlsx uploaded as is, binary) is a file error.
* CRLF, LF and CR all work; blank lines (and Excel's all-empty ``,,,,`` lines) are skipped. Line
  numbers are physical lines of the file, the header included (a quoted cell with a line break
  makes a row span lines; the row is reported at its first line).
* The header is the first non-blank line, or, when a sheet has a title above the table, the first
  of the first ten lines that has a name column. Header cells are matched after NFKC (full-width
  letters and brackets folded), with spaces and required marks (※, *, （必須）) removed; see
  ``COLUMNS``. Unknown columns are a warning. Missing 氏名 (or 氏 and 名) or 団体コード is a file
  error; so is a field given by two columns.
* A row whose number of cells differs from the header is an error (empty cells after the last
  header cell are ignored: Excel writes them for formatted but empty columns).
* More than ``max_rows`` data rows is a file error and no rows are returned.

Canonical values are described on ``RosterRow``; the import key on ``compute_import_key``.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import jaconv

from kiban.core.registry.codes import check_digit, lg_code_problem
from kiban.kit.wareki import ERAS, JST
from kiban.modules.disaster.names import normalize_kana, normalize_name

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

# Header text → field. Two fields exist only in headers: ``full_name`` (氏名 in one cell, split on
# the first space into family_name/given_name) and ``full_kana`` (likewise for the kana);
# ``shelter_name`` is the 避難所名 resolved to ``shelter_id``. Matching ignores width, spaces and
# required marks, so 「 氏名（ﾌﾘｶﾞﾅ）※」 is 氏名(フリガナ).
COLUMNS: dict[str, str] = {
    "氏名": "full_name", "名前": "full_name", "避難者氏名": "full_name", "氏名（漢字）": "full_name",
    "氏": "family_name", "姓": "family_name", "名字": "family_name", "苗字": "family_name",
    "名": "given_name",
    "フリガナ": "full_kana", "ふりがな": "full_kana", "カナ": "full_kana", "氏名（フリガナ）": "full_kana",
    "氏名（カナ）": "full_kana", "氏名カナ": "full_kana", "カナ氏名": "full_kana",
    "セイ": "family_kana", "せい": "family_kana", "氏（フリガナ）": "family_kana",
    "フリガナ（氏）": "family_kana", "氏フリガナ": "family_kana", "氏カナ": "family_kana",
    "姓（フリガナ）": "family_kana", "フリガナ（姓）": "family_kana",
    "メイ": "given_kana", "めい": "given_kana", "名（フリガナ）": "given_kana",
    "フリガナ（名）": "given_kana", "名フリガナ": "given_kana", "名カナ": "given_kana",
    "生年月日": "birth_date", "生年月日（西暦）": "birth_date", "生年月日（和暦）": "birth_date",
    "誕生日": "birth_date",
    "性別": "sex",
    "住所": "home_address", "自宅住所": "home_address", "被災住所": "home_address",
    "被災時の住所": "home_address", "住所（被災時）": "home_address",
    "団体コード": "home_lg_code", "住所地団体コード": "home_lg_code", "住所の団体コード": "home_lg_code",
    "市区町村コード": "home_lg_code", "地方公共団体コード": "home_lg_code",
    "全国地方公共団体コード": "home_lg_code",
    "所在": "whereabouts", "現在の所在": "whereabouts", "所在区分": "whereabouts",
    "避難先区分": "whereabouts", "避難区分": "whereabouts",
    "避難所名": "shelter_name", "避難所": "shelter_name",
    "広域避難先団体コード": "wide_area_lg_code", "避難先団体コード": "wide_area_lg_code",
    "広域避難先コード": "wide_area_lg_code",
    "電話番号": "phone", "連絡先電話番号": "phone", "電話": "phone", "連絡先": "phone",
    "世帯番号": "household_key", "世帯": "household_key", "世帯コード": "household_key",
    "要配慮者区分": "care_needs", "要配慮者": "care_needs", "要配慮": "care_needs",
    "要配慮事項": "care_needs",
    "被害程度": "damage_level", "被害の程度": "damage_level", "住家被害": "damage_level",
    "住家被害の程度": "damage_level", "住家の被害程度": "damage_level", "被害区分": "damage_level",
    "罹災証明": "risai_status", "罹災証明書": "risai_status", "罹災証明の状況": "risai_status",
    "罹災証明書の状況": "risai_status", "罹災証明書交付状況": "risai_status",
    "備考": "note", "メモ": "note",
}

# What a field is called in messages when its column is absent (otherwise the file's own header).
_LABELS = {
    "full_name": "氏名", "family_name": "氏", "given_name": "名", "full_kana": "フリガナ",
    "family_kana": "セイ", "given_kana": "メイ", "birth_date": "生年月日", "sex": "性別",
    "home_address": "住所", "home_lg_code": "団体コード", "whereabouts": "所在",
    "shelter_name": "避難所名", "wide_area_lg_code": "広域避難先団体コード", "phone": "電話番号",
    "household_key": "世帯番号", "care_needs": "要配慮者区分", "damage_level": "被害程度",
    "risai_status": "罹災証明", "note": "備考",
}

_HEADER_SEARCH = 10
_SHELTERS_LISTED = 5
_DATE_EXAMPLE = "例: 1985-04-01、昭和60年4月1日"
_CODE_EXAMPLE = "例: 172049"


@dataclass
class RosterRow:
    """One data line. ``values`` (and ``import_key``) only when the line has no errors.

    ``values`` keys: family_name, given_name (as written, spaces removed, half-width kana widened);
    family_kana, given_kana (full-width katakana, may be ""); birth_date (date or None);
    sex ("male"/"female"/None); home_address (str); home_lg_code (6 digits); whereabouts (a key of
    ``WHEREABOUTS``); shelter_id (str or None); wide_area_lg_code (6 digits or None); phone
    (digits and hyphens, or None); household_key (str); care_needs (list of ``CARE_NEEDS``);
    damage_level (one of ``DAMAGE_LEVELS``); risai_status (one of ``RISAI_STATUSES``); note (str).
    """

    line: int
    values: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    import_key: str | None = None


@dataclass
class RosterReport:
    """``encoding`` is "utf-8", "utf-8-sig" or "cp932" ("" when the file could not be decoded)."""

    encoding: str
    rows: list[RosterRow] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def valid_rows(self) -> list[RosterRow]:
        return [row for row in self.rows if row.values is not None]

    @property
    def error_rows(self) -> list[RosterRow]:
        return [row for row in self.rows if row.errors]

    @property
    def ok(self) -> bool:
        return not self.file_errors and not self.error_rows


def compute_import_key(values: Mapping[str, Any]) -> str:
    """sha256 (hex) of who the row is: folded name, birth date, folded kana, home code, household.

    Width, hiragana/katakana, small kana and 異体字 (髙/高) do not change the key, so re-importing a
    file, or the same person written another way, gives the same key.
    """
    birth = values.get("birth_date")
    identity = [
        normalize_name(values["family_name"] + values["given_name"]),
        birth.isoformat() if birth else "",
        normalize_kana(values.get("family_kana", "") + values.get("given_kana", "")),
        values["home_lg_code"],
        values.get("household_key", ""),
    ]
    payload = json.dumps(identity, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def parse_roster(data: bytes, *, shelters: Mapping[str, str], is_known_code: Callable[[str], bool],
                 max_rows: int = 20000) -> RosterReport:
    """Read a roster CSV. ``shelters`` maps shelter name → id; ``is_known_code`` says whether a
    6-digit code (check digit already verified) is a registered local government."""
    text, encoding, problem = _decode(data)
    if problem is not None:
        return RosterReport(encoding=encoding, file_errors=[problem])
    report = RosterReport(encoding=encoding)
    try:
        records = _records(text)
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
    parser = _RowParser(layout, shelters, is_known_code)
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
    if data.startswith(b"PK\x03\x04"):
        return "", "", ("Excel ファイル（.xlsx）のままではアップロードできません。Excel で"
                        "「CSV UTF-8（コンマ区切り）」または「CSV（コンマ区切り）」として保存してください。")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "", "", ("UTF-16 のファイル（Excel の「Unicode テキスト」）は読めません。Excel で"
                        "「CSV UTF-8（コンマ区切り）」または「CSV（コンマ区切り）」として保存してください。")
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
    return "", "", ("ファイルの文字コードを読み取れません（UTF-8 でも Shift_JIS でもありません）。Excel で"
                    "「CSV UTF-8（コンマ区切り）」または「CSV（コンマ区切り）」として保存し直してください。")


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


def _header_key(cell: str) -> str:
    key = _WHITESPACE.sub("", unicodedata.normalize("NFKC", cell))
    previous = None
    while previous != key:
        previous, key = key, _REQUIRED_MARK.sub("", key)
    return key


_HEADER_INDEX = {_header_key(name): fld for name, fld in COLUMNS.items()}


@dataclass
class _Layout:
    width: int
    columns: dict[str, int]
    headers: dict[str, str]

    def label(self, fld: str) -> str:
        return self.headers.get(fld, _LABELS[fld])

    @classmethod
    def from_header(cls, cells: list[str], report: RosterReport) -> _Layout:
        width = len(cells)
        while width and not cells[width - 1].strip():
            width -= 1
        columns: dict[str, int] = {}
        headers: dict[str, str] = {}
        for index, cell in enumerate(cells[:width]):
            written = cell.strip().lstrip("\ufeff").strip()
            key = _header_key(cell)
            if not key:
                report.warnings.append(f"{index + 1}列目に見出しがありません。この列は読み込みません。")
                continue
            fld = _HEADER_INDEX.get(key)
            if fld is None:
                report.warnings.append(f"列「{written}」（{index + 1}列目）は名簿の項目にないため読み込みません。")
                continue
            if fld in columns:
                report.file_errors.append(
                    f"列「{headers[fld]}」と列「{written}」は同じ項目です。どちらか一方にしてください。")
                continue
            columns[fld] = index
            headers[fld] = written
        layout = cls(width=width, columns=columns, headers=headers)
        layout._check_pair(report, "full_name", "family_name", "given_name", required=True)
        layout._check_pair(report, "full_kana", "family_kana", "given_kana", required=False)
        if "home_lg_code" not in columns:
            report.file_errors.append("必須の列「団体コード」（住所地の6桁の全国地方公共団体コード）がありません。")
        if "birth_date" not in columns and not report.file_errors:
            report.warnings.append("列「生年月日」がありません。同じ人かどうかの判定が不正確になります。")
        return layout

    def _check_pair(self, report: RosterReport, whole: str, first: str, second: str, *, required: bool) -> None:
        has_whole, has_first, has_second = (f in self.columns for f in (whole, first, second))
        if has_whole and (has_first or has_second):
            other = self.headers[first] if has_first else self.headers[second]
            report.file_errors.append(
                f"列「{self.headers[whole]}」と列「{other}」の両方があります。"
                f"「{_LABELS[whole]}」1列か、「{_LABELS[first]}」と「{_LABELS[second]}」の2列のどちらかにしてください。")
        elif has_first != has_second:
            present, missing = (first, second) if has_first else (second, first)
            report.file_errors.append(f"列「{self.headers[present]}」はありますが、列「{_LABELS[missing]}」がありません。")
        elif required and not has_whole and not has_first:
            report.file_errors.append(
                f"必須の列「{_LABELS[whole]}」（または「{_LABELS[first]}」と「{_LABELS[second]}」）がありません。")


# --- rows ----------------------------------------------------------------------------------------


class _RowParser:
    def __init__(self, layout: _Layout, shelters: Mapping[str, str], is_known_code: Callable[[str], bool]) -> None:
        self.layout = layout
        self.is_known_code = is_known_code
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
        family_name, given_name = self._names()
        family_kana, given_kana = self._kana()
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

    def _names(self) -> tuple[str, str]:
        if "full_name" in self.layout.columns:
            raw = self.get("full_name")
            label = self.label("full_name")
            if not raw:
                self.error(f"{label}が空です。氏と名の間に空白を入れて入力してください（例: 山田 太郎）。")
                return "", ""
            parts = _SPACES.split(raw, maxsplit=1)
            if len(parts) < 2:
                self.error(f"{label}「{raw}」を氏と名に分けられません。"
                           "氏と名の間に空白（全角・半角どちらでも）を入れてください（例: 山田 太郎）。")
                return "", ""
            return _name_text(parts[0]), _name_text(parts[1])
        names = []
        for fld in ("family_name", "given_name"):
            raw = self.get(fld)
            if not raw:
                self.error(f"{self.label(fld)}が空です。")
            names.append(_name_text(raw))
        return names[0], names[1]

    def _kana(self) -> tuple[str, str]:
        if "full_kana" in self.layout.columns:
            raw = self.get("full_kana")
            if not raw:
                return "", ""
            parts = _SPACES.split(raw, maxsplit=1)
            if len(parts) < 2:
                self.error(f"{self.label('full_kana')}「{raw}」をセイとメイに分けられません。"
                           "セイとメイの間に空白を入れてください（例: ヤマダ タロウ）。")
                return "", ""
            return self._kana_part("full_kana", raw, parts[0]), self._kana_part("full_kana", raw, parts[1])
        return (self._kana_part("family_kana", self.get("family_kana"), self.get("family_kana")),
                self._kana_part("given_kana", self.get("given_kana"), self.get("given_kana")))

    def _kana_part(self, fld: str, raw: str, part: str) -> str:
        kana = _kana_text(part)
        if kana and not _KATAKANA.fullmatch(kana):
            self.error(f"{self.label(fld)}「{raw}」はカタカナかひらがなで入力してください。")
            return ""
        return kana

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
        if not code.isascii() or not code.isdigit():
            self.error(f"{label}「{raw}」に数字以外の文字が含まれています。6桁の数字で入力してください（{_CODE_EXAMPLE}）。")
            return None
        if len(code) == 5:
            padded, completed = "0" + code, code + check_digit(code)
            if lg_code_problem(padded) is None and self.is_known_code(padded):
                hint = f"先頭の0が落ちていませんか（{padded}）。Excel では列の書式を「文字列」にしてください。"
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
            self.warn(f"{self.label('shelter_name')}「{shelter_raw}」は、所在が「{label}」なので使いません。")
        wide_area = None
        wide_raw = self.get("wide_area_lg_code")
        if whereabouts == "wide_area":
            if wide_raw:
                wide_area = self._lg_code("wide_area_lg_code", wide_raw)
            else:
                self.error(f"所在が「{label}」のときは{self.label('wide_area_lg_code')}"
                           f"（避難先の6桁の団体コード）を入力してください（{_CODE_EXAMPLE}）。")
        elif wide_raw:
            self.warn(f"{self.label('wide_area_lg_code')}「{wide_raw}」は、所在が「{label}」なので使いません。")
        return whereabouts, shelter_id, wide_area

    def _shelter(self, raw: str) -> str | None:
        label = self.label("shelter_name")
        if not raw:
            self.error(f"所在が「避難所」のときは{label}を入力してください。")
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
            hint = "先頭の0が落ちていませんか。Excel では列の書式を「文字列」にしてください。" if len(digits) in (9, 10) else ""
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
        return None, ("は Excel の日付のシリアル値のようです。セルの書式を日付にして保存し直すか、"
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
