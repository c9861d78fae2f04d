"""被災者生活再建支援金 (kiban.modules.disaster.support): eligibility and amounts.

The expected amounts are written out by hand from 被災者生活再建支援法 第3条 (令和2年改正後),
not derived from the module's tables, so a wrong table entry fails here.
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import pytest

from kiban.modules.disaster.support import (
    DAMAGE_LEVELS,
    REBUILD_PLANS,
    SupportEstimate,
    SupportInputError,
    estimate,
)

PLANS = ("未定", "建設・購入", "補修", "賃借（公営住宅以外）", "賃借後に建設・購入", "賃借後に補修")

# level → (基礎支援金, 加算支援金 per plan in PLANS order) for 複数世帯 and for 単数世帯 (3/4).
# None for 加算 means "plan 未定"; a level mapped to None is not eligible.
MULTI = {
    "全壊": (1_000_000, (None, 2_000_000, 1_000_000, 500_000, 2_000_000, 1_000_000)),
    "大規模半壊": (500_000, (None, 2_000_000, 1_000_000, 500_000, 2_000_000, 1_000_000)),
    "中規模半壊": (0, (None, 1_000_000, 500_000, 250_000, 1_000_000, 500_000)),
    "半壊": None,
    "準半壊": None,
    "準半壊に至らない（一部損壊）": None,
}
SINGLE = {
    "全壊": (750_000, (None, 1_500_000, 750_000, 375_000, 1_500_000, 750_000)),
    "大規模半壊": (375_000, (None, 1_500_000, 750_000, 375_000, 1_500_000, 750_000)),
    "中規模半壊": (0, (None, 750_000, 375_000, 187_500, 750_000, 375_000)),
    "半壊": None,
    "準半壊": None,
    "準半壊に至らない（一部損壊）": None,
}


def _grid():
    for household_size, table in ((2, MULTI), (1, SINGLE)):
        for level, row in table.items():
            for index, plan in enumerate(PLANS):
                if row is None:
                    yield pytest.param(level, household_size, plan, False, 0, 0, 0, id=f"{level}-{plan}-{household_size}人")
                    continue
                basic, additionals = row
                additional = additionals[index]
                total = basic + (additional or 0)
                yield pytest.param(
                    level, household_size, plan, True, basic, additional, total, id=f"{level}-{plan}-{household_size}人"
                )


def test_the_public_constants_are_the_agreed_ones() -> None:
    assert DAMAGE_LEVELS == ("全壊", "大規模半壊", "中規模半壊", "半壊", "準半壊", "準半壊に至らない（一部損壊）")
    assert REBUILD_PLANS == PLANS
    assert set(MULTI) == set(DAMAGE_LEVELS) == set(SINGLE)


@pytest.mark.parametrize(("level", "household_size", "plan", "eligible", "basic", "additional", "total"), list(_grid()))
def test_every_damage_level_and_plan(level, household_size, plan, eligible, basic, additional, total) -> None:
    result = estimate(level, household_size=household_size, rebuild_plan=plan)
    assert (result.eligible, result.basic, result.additional, result.total) == (eligible, basic, additional, total)


@pytest.mark.parametrize(("level", "kwargs", "total"), [
    ("全壊", {"household_size": 4, "rebuild_plan": "建設・購入"}, 3_000_000),
    ("全壊", {"household_size": 1, "rebuild_plan": "建設・購入"}, 2_250_000),
    ("大規模半壊", {"household_size": 3, "rebuild_plan": "補修"}, 1_500_000),
    ("中規模半壊", {"household_size": 2, "rebuild_plan": "賃借（公営住宅以外）"}, 250_000),
    ("中規模半壊", {"household_size": 1, "rebuild_plan": "賃借（公営住宅以外）"}, 187_500),
    ("半壊", {"household_size": 2, "rebuild_plan": "建設・購入", "demolished": True}, 3_000_000),
    ("全壊", {"household_size": 2, "rebuild_plan": "賃借後に建設・購入"}, 3_000_000),
    ("全壊", {"household_size": 2, "rebuild_plan": "賃借後に補修"}, 2_000_000),
    ("中規模半壊", {"household_size": 2, "rebuild_plan": "賃借後に建設・購入"}, 1_000_000),
])
def test_worked_examples(level, kwargs, total) -> None:
    assert estimate(level, **kwargs).total == total


def test_renting_then_building_is_not_the_sum_of_both() -> None:
    both = estimate("全壊", household_size=2, rebuild_plan="賃借後に建設・購入")
    assert both.total == 3_000_000  # not 1,000,000 + 500,000 + 2,000,000
    assert both.additional == estimate("全壊", household_size=2, rebuild_plan="建設・購入").additional
    assert any("上乗せしない" in line for line in both.lines)


def test_half_destroyed_is_not_eligible() -> None:
    result = estimate("半壊", household_size=3, rebuild_plan="補修")
    assert not result.eligible
    assert (result.basic, result.additional, result.total) == (0, 0, 0)
    assert any("支給対象外" in line for line in result.lines)


@pytest.mark.parametrize("level", ["大規模半壊", "中規模半壊", "半壊"])
@pytest.mark.parametrize(("household_size", "basic", "build", "repair", "rent"), [
    (2, 1_000_000, 2_000_000, 1_000_000, 500_000),
    (1, 750_000, 1_500_000, 750_000, 375_000),
])
def test_demolished_half_damage_counts_as_demolition(level, household_size, basic, build, repair, rent) -> None:
    for plan, additional in (("建設・購入", build), ("補修", repair), ("賃借（公営住宅以外）", rent)):
        result = estimate(level, household_size=household_size, rebuild_plan=plan, demolished=True)
        assert result.eligible
        assert (result.basic, result.additional, result.total) == (basic, additional, basic + additional)
        assert any("解体" in line for line in result.lines)


@pytest.mark.parametrize("level", ["準半壊", "準半壊に至らない（一部損壊）"])
def test_demolition_below_half_damage_is_not_eligible_but_points_to_site_damage(level) -> None:
    result = estimate(level, household_size=2, rebuild_plan="建設・購入", demolished=True)
    assert not result.eligible
    assert result.total == 0
    assert any("敷地被害" in line for line in result.lines)


def test_demolishing_a_destroyed_house_changes_nothing() -> None:
    plain = estimate("全壊", household_size=2, rebuild_plan="補修")
    demolished = estimate("全壊", household_size=2, rebuild_plan="補修", demolished=True)
    assert (demolished.basic, demolished.additional, demolished.total) == (plain.basic, plain.additional, 2_000_000)


@pytest.mark.parametrize("level", DAMAGE_LEVELS)
def test_long_term_evacuation_gets_the_destroyed_amounts(level) -> None:
    result = estimate(level, household_size=2, rebuild_plan="建設・購入", long_term_evacuation=True)
    assert result.eligible
    assert (result.basic, result.additional, result.total) == (1_000_000, 2_000_000, 3_000_000)
    single = estimate(level, household_size=1, rebuild_plan="賃借（公営住宅以外）", long_term_evacuation=True)
    assert (single.basic, single.additional, single.total) == (750_000, 375_000, 1_125_000)


def test_long_term_evacuation_beats_major_half_damage() -> None:
    result = estimate("大規模半壊", household_size=2, long_term_evacuation=True)
    assert result.basic == 1_000_000
    assert any("長期避難" in line for line in result.lines)


@pytest.mark.parametrize("level", ["全壊", "大規模半壊", "中規模半壊"])
def test_undecided_plan_pays_only_the_basic_amount_now(level) -> None:
    result = estimate(level, household_size=2)
    assert result.eligible
    assert result.additional is None
    assert result.total == result.basic
    assert any("再建方法が決まった時点" in line for line in result.lines)


def test_undecided_plan_lists_what_each_plan_would_add() -> None:
    lines = "\n".join(estimate("中規模半壊", household_size=2).lines)
    assert "1,000,000円" in lines and "500,000円" in lines and "250,000円" in lines


@pytest.mark.parametrize("level", DAMAGE_LEVELS)
@pytest.mark.parametrize("flags", [{}, {"demolished": True}, {"long_term_evacuation": True}])
def test_no_support_when_the_act_does_not_apply(level, flags) -> None:
    result = estimate(level, household_size=2, rebuild_plan="建設・購入", act_applies=False, **flags)
    assert not result.eligible
    assert (result.basic, result.additional, result.total) == (0, 0, 0)
    text = "\n".join(result.lines)
    assert "支援法の適用がない" in text
    assert "都道府県の独自制度" in text


def test_explanation_lines_state_the_amounts() -> None:
    result = estimate("全壊", household_size=2, rebuild_plan="建設・購入")
    assert "全壊（複数世帯）: 基礎支援金 1,000,000円" in result.lines
    assert "加算支援金（建設・購入）: 2,000,000円" in result.lines
    assert "合計: 3,000,000円" in result.lines
    assert not any("4分の3" in line for line in result.lines)


def test_explanation_lines_for_a_single_person_household() -> None:
    result = estimate("全壊", household_size=1, rebuild_plan="建設・購入")
    assert "全壊（単数世帯）: 基礎支援金 750,000円" in result.lines
    assert any(line.startswith("単数世帯のため各金額の4分の3") for line in result.lines)
    assert "加算支援金（建設・購入）: 1,500,000円" in result.lines
    assert "合計: 2,250,000円" in result.lines


def test_medium_half_damage_says_it_has_no_basic_amount() -> None:
    result = estimate("中規模半壊", household_size=2, rebuild_plan="補修")
    assert any("基礎支援金 0円" in line and "加算支援金のみ" in line for line in result.lines)
    assert "加算支援金（補修）: 500,000円" in result.lines


def test_every_result_names_the_law() -> None:
    for level, plan, size, demolished, evacuation, applies in itertools.product(
        DAMAGE_LEVELS, REBUILD_PLANS, (1, 2), (False, True), (False, True), (False, True)
    ):
        result = estimate(
            level,
            household_size=size,
            rebuild_plan=plan,
            demolished=demolished,
            long_term_evacuation=evacuation,
            act_applies=applies,
        )
        assert "被災者生活再建支援法" in result.source
        assert "平成10年法律第66号" in result.source
        assert "令和2年法律第69号" in result.source
        assert "第3条" in result.source


def test_invariants_over_all_inputs() -> None:
    for level, plan, demolished, evacuation, applies in itertools.product(
        DAMAGE_LEVELS, REBUILD_PLANS, (False, True), (False, True), (False, True)
    ):
        kwargs = {
            "rebuild_plan": plan, "demolished": demolished, "long_term_evacuation": evacuation, "act_applies": applies,
        }
        multi = estimate(level, household_size=3, **kwargs)
        single = estimate(level, household_size=1, **kwargs)
        for result in (multi, single):
            assert isinstance(result.basic, int) and isinstance(result.total, int)
            assert result.total == result.basic + (result.additional or 0)
            assert result.total <= 3_000_000
            assert result.lines and all(isinstance(line, str) and line for line in result.lines)
            assert (result.additional is None) == (result.eligible and plan == "未定")
            if not result.eligible:
                assert result.total == 0
        assert single.eligible == multi.eligible
        assert single.basic * 4 == multi.basic * 3
        assert single.total * 4 == multi.total * 3
        assert estimate(level, household_size=7, **kwargs) == multi


def test_the_result_is_frozen() -> None:
    result = estimate("全壊", household_size=2)
    assert isinstance(result, SupportEstimate)
    assert isinstance(result.lines, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.total = 0  # type: ignore[misc]


JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@pytest.mark.parametrize(("args", "kwargs", "expected"), [
    (("全壊っぽい",), {"household_size": 2}, "被害の程度"),
    (("一部損壊",), {"household_size": 2}, "被害の程度"),
    ((None,), {"household_size": 2}, "被害の程度"),
    (("全壊",), {"household_size": 0}, "世帯人数"),
    (("全壊",), {"household_size": -1}, "世帯人数"),
    (("全壊",), {"household_size": 1.5}, "世帯人数"),
    (("全壊",), {"household_size": 2.0}, "世帯人数"),
    (("全壊",), {"household_size": "2"}, "世帯人数"),
    (("全壊",), {"household_size": True}, "世帯人数"),
    (("全壊",), {"household_size": None}, "世帯人数"),
    (("全壊",), {"household_size": 2, "rebuild_plan": "新築"}, "住宅の再建方法"),
    (("全壊",), {"household_size": 2, "rebuild_plan": "賃借"}, "住宅の再建方法"),
    (("全壊",), {"household_size": 2, "rebuild_plan": None}, "住宅の再建方法"),
    (("全壊",), {"household_size": 2, "demolished": "はい"}, "解体"),
    (("全壊",), {"household_size": 2, "long_term_evacuation": 1}, "長期避難"),
    (("全壊",), {"household_size": 2, "act_applies": None}, "支援法の適用"),
])
def test_bad_inputs_raise_with_a_japanese_message(args, kwargs, expected) -> None:
    with pytest.raises(SupportInputError, match=expected) as caught:
        estimate(*args, **kwargs)
    assert isinstance(caught.value, ValueError)
    assert JAPANESE.search(str(caught.value))


def test_bad_inputs_are_rejected_even_when_the_act_does_not_apply() -> None:
    with pytest.raises(SupportInputError):
        estimate("全壊", household_size=0, act_applies=False)


def test_the_unknown_level_message_lists_the_valid_levels() -> None:
    with pytest.raises(SupportInputError) as caught:
        estimate("大破", household_size=2)
    assert "大破" in str(caught.value)
    assert all(level in str(caught.value) for level in DAMAGE_LEVELS)


def test_keyword_only_arguments() -> None:
    with pytest.raises(TypeError):
        estimate("全壊", 2)  # type: ignore[misc]
