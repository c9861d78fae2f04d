"""電子申請: typed fields checked as residents type them (every problem at once, in Japanese),
conditional questions, postal-code lookup from the shipped data, and the builder's rules."""

from __future__ import annotations

from kiban.modules.forms import fields as fieldkit

FIELDS = [
    {"key": "q1", "type": "text", "label": "お名前", "required": True, "max_length": 20},
    {"key": "q2", "type": "text", "label": "フリガナ", "required": True, "pattern": "katakana"},
    {"key": "q3", "type": "number", "label": "点数", "required": True, "min": 1, "max": 10},
    {"key": "q4", "type": "date", "label": "希望日", "required": False},
    {"key": "q5", "type": "choice", "label": "品目", "required": True, "options": ["自転車", "その他"]},
    {"key": "q6", "type": "text", "label": "その他の内容", "required": True, "show_if": {"field": "q5", "equals": "その他"}},
    {"key": "q7", "type": "email", "label": "メール", "required": False},
    {"key": "q8", "type": "address", "label": "住所", "required": True},
    {"key": "q9", "type": "checkboxes", "label": "連絡方法", "required": False, "options": ["電話", "メール"]},
    {"key": "q10", "type": "tel", "label": "電話", "required": False},
]


def test_every_problem_is_named_at_once_in_japanese() -> None:
    raw = {"q1": "", "q2": "yamada", "q3": "11", "q4": "2026-02-30", "q5": "その他", "q6": "", "q7": "not-mail",
           "q8": {"postal": "123"}, "q9": ["FAX"], "q10": "12345"}
    _, problems = fieldkit.validate(FIELDS, raw)
    assert set(problems) == {"q1", "q2", "q3", "q4", "q6", "q7", "q8", "q9", "q10"}
    assert problems["q1"] == "「お名前」を入力してください。"
    assert "カタカナ" in problems["q2"]
    assert "1〜10" in problems["q3"]
    assert "という日はありません" in problems["q4"]
    assert "郵便番号は7桁" in problems["q8"]


def test_a_question_whose_condition_is_not_met_is_not_asked_nor_stored() -> None:
    raw = {"q1": "山田 太郎", "q2": "ヤマダ タロウ", "q3": "２", "q5": "自転車", "q6": "捨てられた入力",
           "q8": {"postal": "491-0858", "line": "1-2-3"}}
    answers, problems = fieldkit.validate(FIELDS, raw)
    assert problems == {}
    assert "q6" not in answers
    assert answers["q3"] == 2  # full-width digits folded, stored as a number


def test_the_address_is_completed_from_the_postal_code() -> None:
    answers, problems = fieldkit.validate(FIELDS, {"q1": "a", "q2": "ア", "q3": "1", "q5": "自転車",
                                                   "q8": {"postal": "４９１－０８５８", "line": "1-2-3"}})
    assert problems == {}
    assert answers["q8"] == {"postal": "4910858", "prefecture": "愛知県", "city": "一宮市", "town": "栄", "line": "1-2-3"}
    assert fieldkit.answer_text(FIELDS[7], answers["q8"]) == "〒491-0858 愛知県一宮市栄1-2-3"


def test_an_unknown_postal_code_is_refused() -> None:
    assert fieldkit.lookup_postal("0000000") is None
    assert fieldkit.lookup_postal("abc") is None
    _, problems = fieldkit.validate(FIELDS[7:8], {"q8": {"postal": "0000000", "line": "1"}})
    assert "見つかりません" in problems["q8"]
    found = fieldkit.lookup_postal("4710000")
    assert found["city"] == "豊田市" and found["town"] == ""  # 「以下に掲載がない場合」 is no town


def test_the_builder_refuses_a_condition_on_a_later_or_non_choice_question() -> None:
    existing = [{"key": "q1", "type": "text", "label": "お名前", "options": []}]
    _, problems = fieldkit.clean_field({"type": "text", "label": "x", "show_if_field": "q1", "show_if_equals": "a"}, existing)
    assert any("選択式" in p for p in problems)
    _, problems = fieldkit.clean_field({"type": "choice", "label": "品目", "options": "たんす"}, existing)
    assert any("選択肢を2つ以上" in p for p in problems)
    field, problems = fieldkit.clean_field({"type": "number", "label": "点数", "min": "1", "max": "10", "required": "1"}, existing)
    assert problems == [] and field["key"] == "q2" and field["min"] == 1 and field["required"] is True


def test_a_business_postal_code_gives_its_town() -> None:
    """大口事業所の個別番号 (a code of its own for a large office: 4718501 is 豊田市役所) is a
    different record in Japan Post's data, without the note town codes have."""
    found = fieldkit.lookup_postal("471-8501")
    assert found is not None
    assert (found["prefecture"], found["city"], found["town"]) == ("愛知県", "豊田市", "西町")
