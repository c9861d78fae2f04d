"""The fields of a 被災者台帳 record, named once.

Staff meet the same field in three places: the registration form, the roster import page (its help
and its template file) and the column headers of the rosters they upload. They were written three
times and drifted apart (the form said 住所地の団体コード, the import read only 団体コード and dropped the
other column). Now ``FIELDS`` is the one table: the form templates take their labels from it, the
import page lists its columns from it, the template CSV/xlsx has its labels as headers, and
``roster.py`` reads a header as a field when it is the label or one of the ``aliases``.

A field's ``label`` is its name everywhere. ``form_label`` is what a form says instead, when the
form asks for more than the roster column holds (住所地の団体コードまたは団体名: code fields take names
too) or words it for a fieldset (配慮が必要なこと); ``when`` is the condition the form adds in brackets. Fields with ``roster=False`` are entered on the record's page after
registering; a roster column named like one of them is reported as not read, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiban.kit.templating import templates


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    hint: str = ""
    aliases: tuple[str, ...] = ()
    form_label: str = ""
    when: str = ""
    example: str = ""
    required: bool = False
    roster: bool = True
    template: bool = True

    @property
    def form_text(self) -> str:
        """The text of the form's <label>."""
        text = self.form_label or self.label
        return f"{text}（{self.when}）" if self.when else text

    @property
    def names(self) -> tuple[str, ...]:
        """Every header read as this field (label first)."""
        return (self.label, *self.aliases) + ((self.form_label,) if self.form_label else ())


FIELDS: tuple[Field, ...] = (
    Field("family_name", "氏（漢字）", required=True, example="山田",
          aliases=("氏", "姓", "名字", "苗字", "氏（名字）")),
    Field("given_name", "名（漢字）", required=True, example="太郎", aliases=("名",)),
    Field("full_name", "氏名", template=False, example="山田 太郎",
          hint="「氏（漢字）」「名（漢字）」の2列の代わりに1列でも可。氏と名の間に空白。空白がなければ名字の一覧から分け方を提案します",
          aliases=("名前", "避難者氏名", "氏名（漢字）", "お名前")),
    Field("family_kana", "氏（フリガナ）", example="ヤマダ",
          aliases=("セイ", "氏フリガナ", "氏カナ", "姓（フリガナ）", "フリガナ（氏）", "フリガナ（姓）", "氏（カナ）",
                   "姓（カナ）")),
    Field("given_kana", "名（フリガナ）", example="タロウ",
          aliases=("メイ", "名フリガナ", "名カナ", "フリガナ（名）", "名（カナ）")),
    Field("full_kana", "フリガナ", template=False, example="ヤマダ タロウ",
          hint="「氏（フリガナ）」「名（フリガナ）」の代わりに1列でも可。セイとメイの間に空白",
          aliases=("カナ", "氏名（フリガナ）", "氏名（カナ）", "氏名カナ", "カナ氏名", "よみがな")),
    Field("birth_date", "生年月日", hint="西暦（1985-04-01）か和暦（昭和60年4月1日）", example="1985-04-01",
          aliases=("生年月日（西暦）", "生年月日（和暦）", "誕生日")),
    Field("sex", "性別", hint="男・女（わからなければ空欄）", example="男"),
    Field("phone", "連絡先の電話番号", hint="市外局番から（例: 0768-22-2211）", example="0768-22-2211",
          aliases=("電話番号", "連絡先電話番号", "電話", "連絡先", "携帯電話番号")),
    Field("home_lg_code", "住所地の団体コード", form_label="住所地の団体コードまたは団体名", required=True, example="172049",
          hint="6桁の団体コード（例: 172049）か団体名（例: 輪島市、石川県輪島市）",
          aliases=("団体コード", "住所地団体コード", "住所の団体コード", "市区町村コード", "地方公共団体コード",
                   "全国地方公共団体コード")),
    Field("home_address", "住所", example="石川県輪島市河井町1部1番地",
          aliases=("自宅住所", "被災住所", "被災時の住所", "住所（被災時）")),
    Field("household_key", "世帯番号", hint="同じ世帯の人に同じ番号（任意）", example="A-001",
          aliases=("世帯", "世帯コード")),
    Field("household_size", "世帯人数", hint="1〜30（空欄は1）", example="3", aliases=("世帯員数", "世帯の人数")),
    Field("care_needs", "要配慮者", form_label="配慮が必要なこと", hint="あてはまるものを「、」で区切って", example="高齢者",
          aliases=("要配慮者区分", "要配慮", "要配慮事項")),
    Field("whereabouts", "現在の居場所", hint="避難所・在宅・親族・知人宅・広域避難先・応急仮設住宅・不明",
          example="避難所", aliases=("居場所", "所在", "現在の所在", "所在区分", "避難先区分", "避難区分")),
    Field("shelter_name", "避難所名", form_label="避難所", when="居場所が避難所のとき", example="輪島中学校",
          hint="この団体が開設した避難所の名称", aliases=("避難所",)),
    Field("wide_area_lg_code", "広域避難先の団体コード", form_label="広域避難先の団体コードまたは団体名",
          when="居場所が広域避難先のとき", hint="6桁の団体コード（例: 172014）か団体名（例: 金沢市）",
          aliases=("広域避難先団体コード", "避難先団体コード", "広域避難先コード")),
    Field("damage_level", "住家の被害", example="全壊", hint="全壊・大規模半壊・中規模半壊・半壊・準半壊・一部損壊・未調査（空欄は未調査）",
          aliases=("被害程度", "被害の程度", "住家被害", "住家被害の程度", "住家の被害程度", "被害区分")),
    Field("risai_status", "罹災証明書", hint="未申請・申請中・交付済（空欄は未申請）", example="未申請",
          aliases=("罹災証明", "罹災証明の状況", "罹災証明書の状況", "罹災証明書交付状況")),
    Field("note", "備考", example="", aliases=("メモ",)),
    # Entered on the record's page after registering, not read from rosters.
    Field("rebuild_plan", "住宅の再建方法", roster=False, template=False, aliases=("再建方法",)),
    Field("demolished", "半壊以上でやむを得ず解体した（する）", roster=False, template=False, aliases=("解体",)),
    Field("long_term_evacuation", "長期避難世帯", roster=False, template=False),
    Field("supports", "行った支援", roster=False, template=False, aliases=("支援",)),
)

BY_KEY: dict[str, Field] = {f.key: f for f in FIELDS}
ROSTER_FIELDS: tuple[Field, ...] = tuple(f for f in FIELDS if f.roster)
TEMPLATE_FIELDS: tuple[Field, ...] = tuple(f for f in FIELDS if f.template)


def label(key: str) -> str:
    return BY_KEY[key].label


# The form templates (the staff form and the resident's self-registration page) read labels as
# ``record_fields.family_name.form_text``: a Jinja global, because those pages are rendered by
# routes that know nothing about the roster.
templates.env.globals["record_fields"] = BY_KEY
