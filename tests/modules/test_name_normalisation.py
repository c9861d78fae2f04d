"""Name normalisation for 名寄せ (issue #5 groundwork)."""

from __future__ import annotations

import pytest

from kiban.modules.disaster.names import normalize_kana, normalize_kanji, normalize_name, variant_table


@pytest.mark.parametrize(("variant", "standard"), [
    ("髙", "高"), ("﨑", "崎"), ("齋", "斎"), ("齊", "斉"), ("邊", "辺"), ("邉", "辺"), ("濵", "浜"), ("𠮷", "吉"),
])
def test_kanji_variants_fold_to_their_standard_form(variant, standard) -> None:
    assert normalize_kanji(variant) == standard


def test_distinct_standard_characters_stay_distinct() -> None:
    assert normalize_kanji("斎藤") != normalize_kanji("斉藤")
    assert normalize_kanji("高橋") == "高橋"
    assert normalize_kanji("髙橋") == normalize_kanji("高橋")
    assert normalize_kanji("山﨑") == normalize_kanji("山崎")


def test_the_table_has_no_chains_left() -> None:
    table = variant_table()
    assert len(table) > 10_000
    assert all(target not in table or table[target] == target for target in table.values())


@pytest.mark.parametrize("written", ["ｻｯﾁｬﾝ", "サッチャン", "さっちゃん", "さつちやん", "サッチャーン", "さっ ちゃん"])
def test_kana_in_any_width_script_size_or_length_folds_together(written) -> None:
    assert normalize_kana(written) == "さつちやん"


def test_full_names_with_spaces_and_variants_match() -> None:
    assert normalize_name("髙橋　ｻﾁｺ") == normalize_name("高橋 さちこ")
    assert normalize_name("渡邉 ヴィクトル") == normalize_name("渡辺 ビクトル")


def test_characters_the_tables_list_both_ways_stay_apart() -> None:
    assert normalize_kanji("功") == "功" and normalize_kanji("切") == "切"


def test_matching_uses_the_same_variant_table_as_search() -> None:
    from kiban.kit import textnorm

    assert variant_table() is textnorm.variant_table()


@pytest.mark.parametrize(("one", "other"), [("檜", "桧"), ("檮", "梼"), ("鰺", "鯵")])
def test_place_name_pairs_fold_for_search_but_not_for_matching_people(one, other) -> None:
    from kiban.kit.textnorm import search_key

    assert search_key(one) == search_key(other)
    assert normalize_kanji(one) != normalize_kanji(other)
