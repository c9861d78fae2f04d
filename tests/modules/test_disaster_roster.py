"""避難者名簿 CSV import (pure part): decoding, headers, per-line validation, import keys."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from kiban.modules.disaster.roster import (
    CARE_NEEDS,
    COLUMNS,
    DAMAGE_LEVELS,
    WHEREABOUTS,
    RosterReport,
    RosterRow,
    compute_import_key,
    guess_column,
    parse_birth_date,
    parse_roster,
    split_kana,
    split_name,
)
from kiban.modules.disaster.fields import FIELDS, ROSTER_FIELDS

KNOWN_CODES = {"172049", "172014", "172057", "011002"}  # 輪島市, 金沢市, 珠洲市, 札幌市
SHELTERS = {
    "輪島中学校": "sh-1", "河井小学校": "sh-2", "鳳至小学校": "sh-3", "輪島高校": "sh-4",
    "門前東小学校": "sh-5", "門前西小学校": "sh-6", "町野小学校": "sh-7",
}
HEADER = ["氏名", "フリガナ", "生年月日", "性別", "住所", "団体コード", "所在", "避難所名",
          "電話番号", "世帯番号", "要配慮者区分", "被害程度", "罹災証明", "備考"]
BASE = {
    "氏名": "山田 太郎", "フリガナ": "ヤマダ タロウ", "生年月日": "1985-04-01", "性別": "男",
    "住所": "石川県輪島市河井町1部1番地", "団体コード": "172049", "所在": "避難所", "避難所名": "輪島中学校",
    "電話番号": "0768-22-2211", "世帯番号": "A-001", "要配慮者区分": "", "被害程度": "", "罹災証明": "",
    "備考": "",
}


def csv_bytes(header: list[str], rows: list[list[str]], *, encoding: str = "utf-8",
              newline: str = "\r\n") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def record(**changes: str) -> list[str]:
    values = BASE | changes
    return [values[column] for column in HEADER]


def parse(data: bytes, **kwargs) -> RosterReport:
    return parse_roster(data, shelters=SHELTERS, is_known_code=KNOWN_CODES.__contains__, **kwargs)


def one(**changes: str) -> RosterRow:
    report = parse(csv_bytes(HEADER, [record(**changes)]))
    assert report.file_errors == []
    assert len(report.rows) == 1
    return report.rows[0]


def error_of(**changes: str) -> str:
    row = one(**changes)
    assert row.values is None and row.import_key is None
    assert len(row.errors) == 1, row.errors
    return row.errors[0]


# --- decoding -----------------------------------------------------------------------------------


def test_utf8_bom_and_cp932_give_the_same_values() -> None:
    rows = [record(), record(氏名="髙橋 幸子", フリガナ="たかはし さちこ", 生年月日="昭和12年3月4日", 性別="女",
                             要配慮者区分="高齢者・要介護者")]
    bom = parse(csv_bytes(HEADER, rows, encoding="utf-8-sig"))
    sjis = parse(csv_bytes(HEADER, rows, encoding="cp932"))
    plain = parse(csv_bytes(HEADER, rows, encoding="utf-8", newline="\n"))
    assert (bom.encoding, sjis.encoding, plain.encoding) == ("utf-8-sig", "cp932", "utf-8")
    assert bom.ok and sjis.ok and plain.ok
    assert [r.values for r in bom.rows] == [r.values for r in sjis.rows] == [r.values for r in plain.rows]
    assert [r.import_key for r in bom.rows] == [r.import_key for r in sjis.rows]
    assert bom.rows[1].values["family_name"] == "髙橋"  # as written: the variant is kept for display
    assert bom.rows[1].values["birth_date"] == date(1937, 3, 4)


@pytest.mark.parametrize(("data", "needle"), [
    ("氏名".encode() + b"\x82\xa0\x81\x20", "ユニコードでもシフトジスでもありません"),  # bad trail byte
    ("氏名".encode("cp932") + b"\xa0\xfd", "ユニコードでもシフトジスでもありません"),  # bytes Excel never writes
    (b"\x00\x01\x02", "CSV ファイルではない"),
    (b"PK\x03\x04rest-of-a-zip", "ブック形式のファイルとして読めません"),
    ("氏名,団体コード\r\n".encode("utf-16"), "「ユニコード テキスト」形式"),
    (b"", "空"),
    (b"\r\n\r\n", "空"),
])
def test_undecodable_or_non_csv_bytes_are_a_file_error(data: bytes, needle: str) -> None:
    report = parse(data)
    assert report.rows == []
    assert len(report.file_errors) == 1
    assert needle in report.file_errors[0]
    assert not report.ok


def test_undecodable_bytes_report_no_encoding() -> None:
    report = parse(b"\x82\xa0\x85\x40")
    assert report.encoding == ""
    assert "文字コード" in report.file_errors[0]


# --- lines, headers -------------------------------------------------------------------------------


def test_mixed_file_reports_each_error_with_its_line_and_column_and_keeps_valid_rows() -> None:
    rows = [
        record(),                                                           # line 2
        record(氏名="佐藤 花子", 生年月日="1985/13/01"),                        # line 3
        record(氏名="鈴木 一郎", 団体コード="172048"),                          # line 4
        record(氏名="田中 次郎", 生年月日="S50.1.2"),                           # line 5
        record(氏名="伊藤 三郎", 性別="?", 電話番号="090-1234"),                  # line 6
    ]
    report = parse(csv_bytes(HEADER, rows))
    assert report.file_errors == []
    assert [row.line for row in report.rows] == [2, 3, 4, 5, 6]
    assert [row.line for row in report.valid_rows] == [2, 5]
    assert [row.line for row in report.error_rows] == [3, 4, 6]
    assert not report.ok
    by_line = {row.line: row for row in report.rows}
    assert by_line[3].errors == ["生年月日「1985/13/01」を日付として読めません。例: 1985-04-01、昭和60年4月1日"]
    assert by_line[4].errors == ["団体コード「172048」の検査数字（6桁目）が正しくありません。前5桁が 17204 なら6桁目は 9 です。"]
    assert by_line[6].errors[0].startswith("性別「?」")
    assert by_line[6].errors[1].startswith("電話番号「090-1234」")
    assert len(by_line[6].errors) == 2
    assert by_line[5].values["birth_date"] == date(1975, 1, 2)
    assert by_line[2].values["shelter_id"] == "sh-1"
    assert all(row.values is None and row.import_key is None for row in report.error_rows)


def test_blank_lines_are_skipped_but_counted_and_quoted_line_breaks_keep_the_first_line() -> None:
    text = ("氏名,団体コード,備考\n"
            "\n"
            "山田 太郎,172049,\n"
            ",,\n"
            "佐藤 花子,172049,\"一行目\n二行目\"\n"
            "鈴木 一郎,17204x,\n")
    report = parse(text.encode())
    assert [row.line for row in report.rows] == [3, 5, 7]
    assert report.rows[1].values["note"] == "一行目\n二行目"
    assert report.rows[2].errors[0].startswith("団体コード「17204x」に数字以外")


def test_crlf_lf_and_cr_line_endings_read_alike() -> None:
    rows = [record(), record(氏名="佐藤 花子")]
    results = [parse(csv_bytes(HEADER, rows, newline=nl)) for nl in ("\r\n", "\n", "\r")]
    assert all(r.ok for r in results)
    assert results[0].rows == results[1].rows == results[2].rows


def test_row_with_a_different_number_of_cells_is_an_error() -> None:
    text = "氏名,団体コード,備考\r\n山田 太郎,172049\r\n佐藤 花子,172049,メモ,余分\r\n鈴木 一郎,172049,,,\r\n"
    report = parse(text.encode())
    short, long_, trailing_empty = report.rows
    assert short.errors == ["列の数が見出しと合いません（見出し 3列、この行 2列）。"]
    assert long_.errors[0].startswith("列の数が見出しと合いません（見出し 3列、この行 4列）")
    assert trailing_empty.errors == [] and trailing_empty.values is not None


def test_headers_match_despite_spaces_width_and_required_marks() -> None:
    header = ["　氏名 ", " ﾌﾘｶﾞﾅ", "生年月日（必須）", "※団体コード", "ＭＥＭＯ欄", "", "備考"]
    text = csv_bytes(header, [["山田 太郎", "ﾔﾏﾀﾞ ﾀﾛｳ", "1985-04-01", "172049", "x", "", "メモ"]])
    report = parse(text)
    assert report.file_errors == []
    assert report.ok
    assert report.warnings == [
        "列「ＭＥＭＯ欄」（5列目）は名簿の項目にないため読み込みません。",
        "6列目に見出しがありません。この列は読み込みません。",
    ]
    values = report.rows[0].values
    assert (values["family_kana"], values["given_kana"], values["note"]) == ("ヤマダ", "タロウ", "メモ")


def test_unknown_column_is_a_warning_not_an_error() -> None:
    report = parse(csv_bytes([*HEADER, "ペットの有無"], [[*record(), "犬"]]))
    assert report.ok
    assert report.warnings == ["列「ペットの有無」（15列目）は名簿の項目にないため読み込みません。"]
    assert report.rows[0].values is not None


def test_a_title_line_above_the_header_is_skipped_with_a_warning() -> None:
    text = "避難者名簿（輪島中学校）,,\r\n令和6年1月2日現在,,\r\n氏名,団体コード,性別\r\n山田 太郎,172049,男\r\n"
    report = parse(text.encode())
    assert report.ok
    assert report.warnings[0] == "1〜2行目は見出し（3行目）より前の行なので読み込みません。"
    assert report.rows[0].line == 4


@pytest.mark.parametrize(("header", "message"), [
    (["生年月日", "団体コード"], "必須の列「氏名」（または「氏（漢字）」と「名（漢字）」）がありません。"),
    (["氏", "団体コード"], "列「氏」はありますが、列「名（漢字）」がありません。"),
    (["名", "団体コード"], "列「名」はありますが、列「氏（漢字）」がありません。"),
    (["氏名", "生年月日"], "必須の列「住所地の団体コード」（6桁の全国地方公共団体コード）がありません。"),
    (["氏名", "氏", "名", "団体コード"], "列「氏名」と列「氏」の両方があります。「氏名」1列か、「氏（漢字）」と「名（漢字）」の2列のどちらかにしてください。"),
    (["氏名", "名前", "団体コード"], "列「氏名」と列「名前」は同じ項目です。どちらか一方にしてください。"),
    (["氏名", "セイ", "団体コード"], "列「セイ」はありますが、列「名（フリガナ）」がありません。"),
])
def test_missing_or_conflicting_columns_are_a_file_error(header: list[str], message: str) -> None:
    report = parse(csv_bytes(header, [["x"] * len(header)]))
    assert message in report.file_errors
    assert report.rows == []
    assert not report.ok


def test_header_only_file_is_an_error() -> None:
    report = parse(csv_bytes(HEADER, []))
    assert report.file_errors == ["データの行がありません（見出しの行だけです）。"]


def test_max_rows_exceeded_is_a_file_error() -> None:
    rows = [record(氏名=f"山田 太郎{i}") for i in range(4)]
    assert parse(csv_bytes(HEADER, rows), max_rows=4).ok
    report = parse(csv_bytes(HEADER, rows), max_rows=3)
    assert report.file_errors == ["データの行が多すぎます（上限 3行）。ファイルを分けてアップロードしてください。"]
    assert report.rows == []


def test_the_labels_of_the_form_and_the_import_page_are_read_as_their_fields() -> None:
    header = [f.label for f in ROSTER_FIELDS if f.template]
    assert header[:2] == ["氏（漢字）", "名（漢字）"]
    assert {"住所地の団体コード", "現在の居場所", "住家の被害", "広域避難先の団体コード"} <= set(header)
    values = {"氏（漢字）": "山田", "名（漢字）": "太郎", "氏（フリガナ）": "ヤマダ", "名（フリガナ）": "タロウ",
              "生年月日": "1985-04-01", "性別": "男", "連絡先の電話番号": "0768-22-2211", "住所地の団体コード": "172049",
              "住所": "輪島市", "世帯番号": "A-1", "世帯人数": "3", "要配慮者": "高齢者", "現在の居場所": "広域避難先",
              "避難所名": "", "広域避難先の団体コード": "172014", "住家の被害": "全壊", "罹災証明書": "申請中", "備考": "薬"}
    report = parse(csv_bytes(header, [[values[h] for h in header]]))
    assert report.ok, (report.file_errors, report.rows[0].errors)
    assert report.warnings == []
    assert [c.field for c in report.columns] == header
    got = report.rows[0].values
    assert (got["whereabouts"], got["wide_area_lg_code"], got["damage_level"], got["household_size"]) == (
        "wide_area", "172014", "全壊", 3)
    assert (got["risai_status"], got["care_needs"], got["phone"]) == ("申請中", ["高齢者"], "0768-22-2211")


def test_every_name_of_every_field_is_read_as_that_field_and_no_name_is_shared() -> None:
    seen: dict[str, str] = {}
    for f in FIELDS:
        for name in (*f.names, f.form_text):
            key = name.replace("（", "(").replace("）", ")")
            assert seen.setdefault(key, f.key) == f.key, (name, seen[key], f.key)
            if f.roster:
                assert guess_column(name) == f.key, name
    form_header = [f.form_text for f in ROSTER_FIELDS if f.template]  # 居場所, 避難所（居場所が避難所のとき）...
    report = parse(csv_bytes(form_header, [["山田", "太郎", *[""] * 5, "172049", *[""] * (len(form_header) - 8)]]))
    assert report.file_errors == []
    assert all(c.field for c in report.columns)


@pytest.mark.parametrize(("header", "label"), [
    ("住所地コード（6桁）", "住所地の団体コード"),
    ("性別（男/女）", "性別"),
    ("生年月日（例: 1985-04-01）", "生年月日"),
    ("住家の被害状況", "住家の被害"),
    ("避難所名称", "避難所名"),
    ("広域避難先市町村コード", "広域避難先の団体コード"),
    ("罹災証明書の交付", "罹災証明書"),
])
def test_a_misnamed_column_is_read_as_the_field_it_looks_like_and_says_so(header: str, label: str) -> None:
    report = parse(csv_bytes(["氏名", "団体コード", header] if label != "住所地の団体コード" else ["氏名", header],
                             [["山田 太郎", "172049", ""] if label != "住所地の団体コード" else ["山田 太郎", "172049"]]))
    assert report.file_errors == []
    said = [w for w in report.warnings if header in w]
    assert said == [f"列「{header}」（{len(report.columns)}列目）は「{label}」のようです。「{label}」として読み込みます。"
                    "違う場合は見出しを直して読み込み直してください。"]
    assert report.columns[-1].field == label


@pytest.mark.parametrize("header", ["世帯主", "現住所", "氏名（ローマ字）", "年齢", "続柄", "ペットの有無"])
def test_a_column_that_is_not_a_field_is_not_guessed(header: str) -> None:
    assert guess_column(header) is None
    report = parse(csv_bytes(["氏名", "団体コード", "生年月日", header], [["山田 太郎", "172049", "", "x"]]))
    assert report.warnings == [f"列「{header}」（4列目）は名簿の項目にないため読み込みません。"]


def test_a_guessed_column_never_replaces_the_real_one() -> None:
    report = parse(csv_bytes(["氏名", "住所地コード", "住所地の団体コード", "生年月日"], [["山田 太郎", "999999", "172049", ""]]))
    assert report.ok
    assert report.rows[0].values["home_lg_code"] == "172049"
    assert report.warnings == ["列「住所地コード」（2列目）は「住所地の団体コード」のようですが、列「住所地の団体コード」があるので読み込みません。"]


def test_a_column_entered_after_registering_is_named_not_dropped() -> None:
    report = parse(csv_bytes(["氏名", "団体コード", "生年月日", "住宅の再建方法"], [["山田 太郎", "172049", "", "補修"]]))
    assert report.ok
    assert report.warnings == ["列「住宅の再建方法」（4列目）は名簿の取り込みでは読み込みません。"
                               "「住宅の再建方法」は、登録したあと記録の画面で入力してください。"]


@pytest.mark.parametrize(("written", "expected"), [("", 1), ("3", 3), ("３人", 3), ("30", 30)])
def test_household_size(written: str, expected: int) -> None:
    report = parse(csv_bytes(["氏名", "団体コード", "世帯人数"], [["山田 太郎", "172049", written]]))
    assert report.rows[0].values["household_size"] == expected


@pytest.mark.parametrize("written", ["0", "31", "三"])
def test_bad_household_size_is_an_error(written: str) -> None:
    report = parse(csv_bytes(["氏名", "団体コード", "世帯人数"], [["山田 太郎", "172049", written]]))
    assert report.rows[0].errors == [f"世帯人数「{written}」は1〜30の数で入力してください（空欄は1）。"]


def test_column_names_cover_every_field() -> None:
    fields = set(COLUMNS.values())
    assert {"full_name", "family_name", "given_name", "full_kana", "family_kana", "given_kana", "birth_date",
            "sex", "home_address", "home_lg_code", "whereabouts", "shelter_name", "wide_area_lg_code", "phone",
            "household_key", "household_size", "care_needs", "damage_level", "risai_status", "note"} == fields


# --- names and kana -------------------------------------------------------------------------------


def test_a_complete_row_has_all_canonical_values() -> None:
    row = one(要配慮者区分="高齢者、障害者", 被害程度="全壊", 罹災証明="申請中", 備考=" 薬あり ")
    assert row.errors == [] and row.warnings == []
    assert row.values == {
        "family_name": "山田", "given_name": "太郎", "family_kana": "ヤマダ", "given_kana": "タロウ",
        "birth_date": date(1985, 4, 1), "sex": "male", "home_address": "石川県輪島市河井町1部1番地",
        "home_lg_code": "172049", "household_size": 1, "whereabouts": "shelter", "shelter_id": "sh-1", "wide_area_lg_code": None,
        "phone": "0768-22-2211", "household_key": "A-001", "care_needs": ["高齢者", "障害者"],
        "damage_level": "全壊", "risai_status": "申請中", "note": "薬あり",
    }
    assert row.import_key is not None and len(row.import_key) == 64


@pytest.mark.parametrize(("written", "family", "given"), [
    ("山田 太郎", "山田", "太郎"),
    ("山田　太郎", "山田", "太郎"),
    ("  山田　　太郎 ", "山田", "太郎"),
    ("ｽﾐｽ ｼﾞｮﾝ ﾎﾟｰﾙ", "スミス", "ジョンポール"),
    ("Smith John Paul", "Smith", "JohnPaul"),
])
def test_full_name_splits_on_the_first_space(written: str, family: str, given: str) -> None:
    values = one(氏名=written).values
    assert (values["family_name"], values["given_name"]) == (family, given)


def test_full_name_without_a_space_is_split_by_the_surname_list_as_a_proposal() -> None:
    row = one(氏名="山田太郎", フリガナ="")
    assert row.errors == []
    assert (row.values["family_name"], row.values["given_name"]) == ("山田", "太郎")
    assert row.proposal is not None
    assert row.proposal.text == "山田 太郎 と分けて登録します（確認してください）"
    assert row.proposal.written == "山田太郎"
    # The key does not depend on the split: confirming another split finds the same person.
    assert row.import_key == one(氏名="山田 太郎", フリガナ="").import_key


@pytest.mark.parametrize(("written", "family", "given"), [
    ("長谷川一郎", "長谷川", "一郎"),      # the longest surname that fits, not 長谷
    ("髙橋幸子", "髙橋", "幸子"),          # 髙 is found as 高 and kept as written
    ("佐々木健", "佐々木", "健"),
    ("ﾔﾏﾀﾞﾀﾛｳ", "ヤマダ", "タロウ"),       # a name written in kana, by the readings
])
def test_surname_split_examples(written: str, family: str, given: str) -> None:
    row = one(氏名=written, フリガナ="")
    assert (row.proposal.family_name, row.proposal.given_name) == (family, given)
    assert split_name(written.replace("ﾔﾏﾀﾞﾀﾛｳ", "ヤマダタロウ")) == len(family)


def test_kana_without_a_space_is_split_by_the_reading_of_the_surname() -> None:
    row = one(氏名="山田太郎", フリガナ="やまだたろう")
    assert row.errors == []
    assert row.proposal.text == "山田 太郎（ヤマダ タロウ） と分けて登録します（確認してください）"
    assert (row.values["family_kana"], row.values["given_kana"]) == ("ヤマダ", "タロウ")
    spaced = one(氏名="山田 太郎", フリガナ="ヤマダタロウ")
    assert spaced.proposal is not None and spaced.proposal.written_kana == "ヤマダタロウ"
    assert split_kana("カワノタロウ", "河野") is None or split_kana("カワノタロウ", "河野") == 3


def test_a_whole_name_in_the_family_name_column_is_proposed_as_a_split() -> None:
    report = parse(csv_bytes(["氏（漢字）", "名（漢字）", "住所地の団体コード"], [["鈴木花子", "", "172049"]]))
    row = report.rows[0]
    assert row.errors == []
    assert row.proposal.text == "鈴木 花子 と分けて登録します（確認してください）"


def test_names_that_cannot_be_split_are_errors() -> None:
    assert error_of(氏名="一二三四", フリガナ="").startswith("氏名「一二三四」を氏と名に分けられません")
    assert error_of(氏名="田中", フリガナ="").startswith("氏名「田中」を氏と名に分けられません")
    assert error_of(氏名="").startswith("氏名が空です。")


def test_separate_name_and_kana_columns() -> None:
    header = ["姓", "名", "セイ", "メイ", "団体コード"]
    report = parse(csv_bytes(header, [["山 田", "太郎", "やまだ", "ﾀﾛｳ", "172049"], ["", "花子", "", "", "172049"]]))
    first, second = report.rows
    assert (first.values["family_name"], first.values["given_name"]) == ("山田", "太郎")
    assert (first.values["family_kana"], first.values["given_kana"]) == ("ヤマダ", "タロウ")
    assert second.errors == ["姓が空です。"]


@pytest.mark.parametrize(("written", "family", "given"), [
    ("やまだ たろう", "ヤマダ", "タロウ"),
    ("ﾔﾏﾀﾞ　ﾀﾛｳ", "ヤマダ", "タロウ"),
    ("サトー ユーコ", "サトー", "ユーコ"),
    ("さと－ ゆ-こ", "サトー", "ユーコ"),
    ("", "", ""),
])
def test_kana_is_full_width_katakana(written: str, family: str, given: str) -> None:
    values = one(フリガナ=written).values
    assert (values["family_kana"], values["given_kana"]) == (family, given)


def test_kana_that_is_not_kana_or_cannot_be_split_is_an_error() -> None:
    assert error_of(フリガナ="山田 タロウ") == "フリガナ「山田 タロウ」はカタカナかひらがなで入力してください。"
    assert error_of(フリガナ="サトウタロウ").startswith("フリガナ「サトウタロウ」をセイとメイに分けられません。")


def test_private_use_characters_from_cp932_are_kept_with_a_warning() -> None:
    data = "氏名,団体コード\r\n".encode("cp932") + "山".encode("cp932") + b"\xf0\x40" + " 太郎,172049\r\n".encode("cp932")
    report = parse(data)
    assert report.encoding == "cp932"
    row = report.rows[0]
    assert row.values["family_name"] == "山\ue000"
    assert row.warnings == ["氏名「山\ue000 太郎」に外字（私用領域の文字）が含まれています。ほかの市区町村やシステムでは正しく表示されません。"]


# --- birth dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "expected"), [
    ("1985-04-01", date(1985, 4, 1)),
    ("1985/4/1", date(1985, 4, 1)),
    ("１９８５／０４／０１", date(1985, 4, 1)),
    ("1985年4月1日", date(1985, 4, 1)),
    ("1985/04/01 0:00", date(1985, 4, 1)),
    ("昭和60年4月1日", date(1985, 4, 1)),
    ("昭和６０年４月１日", date(1985, 4, 1)),
    ("S60.4.1", date(1985, 4, 1)),
    ("s60.4.1", date(1985, 4, 1)),
    ("H2/1/1", date(1990, 1, 1)),
    ("R1.5.1", date(2019, 5, 1)),
    ("令和元年5月1日", date(2019, 5, 1)),
    ("平成元年1月8日", date(1989, 1, 8)),
    ("昭和64年1月7日", date(1989, 1, 7)),
    ("大正15年12月24日", date(1926, 12, 24)),
    ("明治33年1月1日", date(1900, 1, 1)),
    ("T1.7.30", date(1912, 7, 30)),
])
def test_birth_date_formats(written: str, expected: date) -> None:
    assert parse_birth_date(written) == (expected, None)
    assert one(生年月日=written).values["birth_date"] == expected


@pytest.mark.parametrize(("written", "needle"), [
    ("1985/13/01", "を日付として読めません。例: 1985-04-01、昭和60年4月1日"),
    ("1985-02-30", "を日付として読めません"),
    ("85/4/1", "を日付として読めません"),
    ("昭和", "を日付として読めません"),
    ("昭和0年1月1日", "を日付として読めません"),
    ("31138", "表計算ソフトの日付のシリアル値"),
    ("31138.0", "表計算ソフトの日付のシリアル値"),
    ("平成31年5月1日", "平成の期間（1989年1月8日から2019年4月30日まで）にありません"),
    ("昭和64年1月8日", "昭和の期間"),
    ("令和1年4月30日", "令和の期間（2019年5月1日から）にありません"),
    ("1899-12-31", "1900年より前"),
    ("明治32年12月31日", "1900年より前"),
    ("2999-01-01", "未来の日付"),
    ("R99.1.1", "未来の日付"),
])
def test_bad_birth_dates_are_errors_naming_the_column_and_value(written: str, needle: str) -> None:
    message = error_of(生年月日=written)
    assert message.startswith(f"生年月日「{written}」")
    assert needle in message


def test_future_is_relative_to_today() -> None:
    assert parse_birth_date("2020-01-02", today=date(2020, 1, 2)) == (date(2020, 1, 2), None)
    assert parse_birth_date("2020-01-03", today=date(2020, 1, 2))[1] == "は未来の日付です。生年月日を確認してください。"


def test_birth_date_may_be_blank_or_its_column_absent() -> None:
    assert one(生年月日="").values["birth_date"] is None
    report = parse(csv_bytes(["氏名", "団体コード"], [["山田 太郎", "172049"]]))
    assert report.ok
    assert report.rows[0].values["birth_date"] is None
    assert any("生年月日" in warning for warning in report.warnings)


# --- sex, codes, whereabouts, phone, lists -----------------------------------------------------------


@pytest.mark.parametrize(("written", "expected"), [
    ("男", "male"), ("男性", "male"), ("M", "male"), ("m", "male"), ("Ｍ", "male"), ("1", "male"), ("１", "male"),
    ("女", "female"), ("女性", "female"), ("F", "female"), ("2", "female"), ("", None),
])
def test_sex(written: str, expected: str | None) -> None:
    assert one(性別=written).values["sex"] == expected


@pytest.mark.parametrize("written", ["3", "不詳", "X"])
def test_unknown_sex_is_an_error(written: str) -> None:
    assert error_of(性別=written).startswith(f"性別「{written}」が読めません。")


@pytest.mark.parametrize(("written", "expected"), [("172049", "172049"), ("１７２０４９", "172049"),
                                                   (" 172014 ", "172014"), ("172057", "172057")])
def test_home_code_accepts_known_codes_in_either_width(written: str, expected: str) -> None:
    assert one(団体コード=written).values["home_lg_code"] == expected


@pytest.mark.parametrize(("written", "message"), [
    ("", "団体コードが空です。6桁の全国地方公共団体コードを入力してください（例: 172049）。"),
    ("172048", "団体コード「172048」の検査数字（6桁目）が正しくありません。前5桁が 17204 なら6桁目は 9 です。"),
    ("172090", "団体コード「172090」は登録されている地方公共団体のコードではありません。"),
    ("17204", "団体コード「17204」は5桁です。末尾の検査数字を含めた6桁で入力してください（172049）。"),
    ("11002", "団体コード「11002」は5桁です。先頭の0が落ちていませんか（011002）。表計算ソフトでは列の書式を「文字列」にしてください。"),
    ("1720499", "団体コード「1720499」は7桁です。6桁で入力してください（例: 172049）。"),
    ("輪島市", "団体コード「輪島市」に数字以外の文字が含まれています。6桁の数字で入力してください（例: 172049）。"),
])
def test_bad_home_codes(written: str, message: str) -> None:
    assert error_of(団体コード=written) == message


def test_check_digit_is_verified_before_asking_is_known_code() -> None:
    asked: list[str] = []

    def known(code: str) -> bool:
        asked.append(code)
        return True

    report = parse_roster(csv_bytes(HEADER, [record(団体コード="172048")]), shelters=SHELTERS, is_known_code=known)
    assert "172048" not in asked
    assert report.rows[0].errors


@pytest.mark.parametrize(("written", "key"), [(label, key) for key, label in WHEREABOUTS.items() if key != "shelter"]
                         + [(key, key) for key in WHEREABOUTS if key not in ("shelter", "wide_area")]
                         + [("ｗｉｄｅ＿ａｒｅａ", "wide_area"), ("  在宅 ", "home")])
def test_whereabouts_accepts_labels_and_keys(written: str, key: str) -> None:
    row = one(所在=written, 避難所名="", 備考="")
    if key == "wide_area":
        assert row.errors == ["所在が「広域避難先」のときは広域避難先の団体コード（避難先の6桁の団体コード）を入力してください（例: 172049）。"]
    else:
        assert row.errors == []
        assert row.values["whereabouts"] == key
        assert row.values["shelter_id"] is None


def test_whereabouts_unknown_label_is_an_error() -> None:
    assert error_of(所在="避難所にいる").startswith("所在「避難所にいる」が読めません。避難所、在宅、")


def test_whereabouts_blank_is_shelter_when_a_shelter_is_named_else_unknown() -> None:
    assert one(所在="").values["whereabouts"] == "shelter"
    values = one(所在="", 避難所名="").values
    assert (values["whereabouts"], values["shelter_id"]) == ("unknown", None)


def test_shelter_name_is_matched_after_trimming_and_width_folding() -> None:
    assert one(避難所名=" 輪島　中学校 ").values["shelter_id"] == "sh-1"
    assert one(所在="shelter", 避難所名="鳳至小学校").values["shelter_id"] == "sh-3"


def test_unknown_shelter_lists_at_most_five_known_names_closest_first() -> None:
    message = error_of(避難所名="門前小学校")
    prefix = "避難所名「門前小学校」は登録されている避難所にありません。登録されている避難所: "
    assert message.startswith(prefix)
    listed = message.removeprefix(prefix).split("（")[0].split("、")
    assert len(listed) == 5
    assert set(listed) <= set(SHELTERS)
    assert set(listed[:2]) == {"門前東小学校", "門前西小学校"}
    assert message.endswith("（ほか2か所）。")


def test_shelter_required_when_whereabouts_is_shelter() -> None:
    assert error_of(所在="避難所", 避難所名="") == "所在が「避難所」のときは避難所名を入力してください。"
    report = parse_roster(csv_bytes(HEADER, [record()]), shelters={}, is_known_code=KNOWN_CODES.__contains__)
    assert report.rows[0].errors[0].endswith("避難所がまだ登録されていません。先に避難所を登録してください。")


def test_shelter_name_with_another_whereabouts_is_ignored_with_a_warning() -> None:
    row = one(所在="在宅")
    assert row.values["shelter_id"] is None
    assert row.warnings == ["避難所名「輪島中学校」は、所在が「在宅」なので使いません。"]


def test_wide_area_needs_a_valid_destination_code() -> None:
    header = [*HEADER, "広域避難先団体コード"]

    def wide(code: str, whereabouts: str = "広域避難先") -> RosterRow:
        return parse(csv_bytes(header, [[*record(所在=whereabouts, 避難所名=""), code]])).rows[0]

    assert wide("１７２０１４").values["wide_area_lg_code"] == "172014"
    assert wide("").errors[0].startswith("所在が「広域避難先」のときは広域避難先団体コード")
    assert wide("172015").errors[0].startswith("広域避難先団体コード「172015」の検査数字")
    assert wide("999997").errors == ["広域避難先団体コード「999997」は登録されている地方公共団体のコードではありません。"]
    at_home = wide("172014", "在宅")
    assert at_home.values["wide_area_lg_code"] is None
    assert at_home.warnings == ["広域避難先団体コード「172014」は、所在が「在宅」なので使いません。"]


@pytest.mark.parametrize(("written", "expected"), [
    ("0768-22-2211", "0768-22-2211"),
    ("０７６８－２２－２２１１", "0768-22-2211"),
    ("0768(22)2211", "0768-22-2211"),
    ("09012345678", "09012345678"),
    ("090ー1234ー5678", "090-1234-5678"),
    ("+81-90-1234-5678", "090-1234-5678"),
    ("", None),
])
def test_phone_is_normalised(written: str, expected: str | None) -> None:
    assert one(電話番号=written).values["phone"] == expected


@pytest.mark.parametrize(("written", "needle"), [
    ("090-123-456", "は9桁です"),
    ("090-1234-56789", "は12桁です"),
    ("9012345678", "先頭の0が落ちていませんか"),
    ("090-1234-5678 内線3", "数字とハイフン以外"),
    ("なし", "数字とハイフン以外"),
])
def test_bad_phone_numbers(written: str, needle: str) -> None:
    message = error_of(電話番号=written)
    assert message.startswith(f"電話番号「{written}」")
    assert needle in message


@pytest.mark.parametrize(("written", "expected"), [
    ("高齢者、障害者", ["高齢者", "障害者"]),
    ("乳幼児,妊産婦", ["乳幼児", "妊産婦"]),
    ("外国人・要介護者", ["外国人", "要介護者"]),
    ("難病患者/医療的ケア児", ["難病患者", "医療的ケア児"]),
    ("高齢者　障害者 高齢者", ["高齢者", "障害者"]),
    ("高齢者，障害者／乳幼児", ["高齢者", "障害者", "乳幼児"]),
    ("", []),
])
def test_care_needs(written: str, expected: list[str]) -> None:
    assert one(要配慮者区分=written).values["care_needs"] == expected


def test_unknown_care_need_is_an_error_listing_the_choices() -> None:
    message = error_of(要配慮者区分="高齢者、ペット、子ども")
    assert message.startswith("要配慮者区分「高齢者、ペット、子ども」の「ペット」「子ども」は区分にありません。")
    assert all(need in message for need in CARE_NEEDS)


@pytest.mark.parametrize(("written", "expected"), [
    ("", "未調査"), ("全壊", "全壊"), ("大規模半壊", "大規模半壊"), (" 半壊 ", "半壊"),
    ("準半壊に至らない（一部損壊）", "準半壊に至らない（一部損壊）"), ("準半壊に至らない(一部損壊)", "準半壊に至らない（一部損壊）"),
    ("一部損壊", "準半壊に至らない（一部損壊）"),
])
def test_damage_level(written: str, expected: str) -> None:
    assert one(被害程度=written).values["damage_level"] == expected
    assert expected in DAMAGE_LEVELS


@pytest.mark.parametrize(("written", "expected"), [("", "未申請"), ("申請中", "申請中"), ("交付済", "交付済"),
                                                   ("交付済み", "交付済")])
def test_risai_status(written: str, expected: str) -> None:
    assert one(罹災証明=written).values["risai_status"] == expected


def test_bad_damage_level_and_risai_status_are_errors() -> None:
    row = one(被害程度="ほぼ全壊", 罹災証明="済")
    assert row.errors[0].startswith("被害程度「ほぼ全壊」が読めません。全壊、大規模半壊")
    assert row.errors[1].startswith("罹災証明「済」が読めません。未申請、申請中、交付済")


# --- import keys and duplicates ----------------------------------------------------------------------


def test_import_key_is_stable_across_reparsing_and_encodings() -> None:
    data = [record(), record(氏名="佐藤 花子")]
    first = parse(csv_bytes(HEADER, data))
    again = parse(csv_bytes(HEADER, data, encoding="cp932", newline="\n"))
    assert [r.import_key for r in first.rows] == [r.import_key for r in again.rows]
    assert first.rows[0].import_key != first.rows[1].import_key
    assert first.rows[0].import_key == compute_import_key(first.rows[0].values)


def test_import_key_ignores_width_script_and_kanji_variants() -> None:
    plain = one(氏名="高橋 幸子", フリガナ="タカハシ サチコ", 生年月日="1985-04-01", 団体コード="172049", 世帯番号="12")
    variants = [
        one(氏名="髙橋　幸子", フリガナ="ﾀｶﾊｼ ｻﾁｺ", 生年月日="昭和60年4月1日", 団体コード="１７２０４９", 世帯番号="１２"),
        one(氏名="高橋 幸子", フリガナ="たかはし さちこ", 生年月日="S60.4.1", 団体コード="172049", 世帯番号="12",
            所在="在宅", 避難所名="", 電話番号="", 備考="別の備考"),
    ]
    assert all(v.import_key == plain.import_key for v in variants)


@pytest.mark.parametrize("change", [
    {"氏名": "高橋 幸代"}, {"生年月日": "1985-04-02"}, {"フリガナ": "タカハシ ユキコ"}, {"団体コード": "172014"},
    {"世帯番号": "13"}, {"生年月日": ""}, {"フリガナ": ""},
])
def test_import_key_changes_with_identity(change: dict[str, str]) -> None:
    base = {"氏名": "高橋 幸子", "フリガナ": "タカハシ サチコ", "生年月日": "1985-04-01", "世帯番号": "12"}
    assert one(**base).import_key != one(**(base | change)).import_key


def test_duplicate_in_file_is_an_error_on_the_second_row() -> None:
    rows = [record(), record(氏名="佐藤 花子"), record(氏名="山田　太郎", フリガナ="やまだ たろう", 所在="在宅", 避難所名="")]
    report = parse(csv_bytes(HEADER, rows))
    first, other, duplicate = report.rows
    assert first.values is not None and other.values is not None
    assert duplicate.errors == ["2行目と同じ人です（重複）"]
    assert duplicate.values is None and duplicate.import_key is None
    assert [row.line for row in report.valid_rows] == [2, 3]
