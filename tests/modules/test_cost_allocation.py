"""The cost allocation engine: exact sums, the weighted-population rule, fairness properties
(Hypothesis), and clear refusals."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiban.modules.costs.allocation import (
    AllocationError,
    Equal,
    Member,
    Mixed,
    Population,
    Usage,
    WeightedPopulation,
    allocate,
)

amounts = st.integers(min_value=0, max_value=10**11)
populations = st.integers(min_value=1, max_value=4_000_000)


@st.composite
def member_lists(draw, min_size=1, max_size=30):
    pops = draw(st.lists(populations, min_size=min_size, max_size=max_size))
    return [Member(f"{i:06d}", f"団体{i}", p, usage=p % 1000) for i, p in enumerate(pops)]


methods = st.sampled_from([Equal(), Population(), WeightedPopulation(Decimal("1.5")), WeightedPopulation(Decimal("2")),
                           Mixed(((Equal(), Decimal(30)), (WeightedPopulation(), Decimal(70))))])


@settings(max_examples=300, deadline=None)
@given(amounts, member_lists(), methods, st.sampled_from([Decimal(0), Decimal("0.5"), Decimal("0.333")]))
def test_fees_are_whole_yen_and_sum_exactly(amount, members, method, rate) -> None:
    result = allocate(amount, members, method, subsidy_rate=rate)
    assert all(isinstance(f.fee, int) and f.fee >= 0 for f in result.fees)
    assert sum(f.fee for f in result.fees) + result.subsidy == amount
    assert result.subsidy == int(Decimal(amount) * rate)


@settings(max_examples=200, deadline=None)
@given(amounts, member_lists(), methods)
def test_the_same_inputs_always_give_the_same_fees(amount, members, method) -> None:
    first, second = allocate(amount, members, method), allocate(amount, members, method)
    assert [(f.member, f.fee, f.explanation) for f in first.fees] == [(f.member, f.fee, f.explanation) for f in second.fees]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=6_000_000), st.sampled_from(["1.5", "1.2", "2", "3"]))
def test_doubling_population_multiplies_the_raw_weighted_share_by_r(population, r) -> None:
    method = WeightedPopulation(Decimal(r))
    assert method.raw_weight(2 * population) == pytest.approx(float(r) * method.raw_weight(population), rel=1e-12)


def test_aichi_rule_a_city_twice_as_large_pays_one_and_a_half_times() -> None:
    members = [Member("000001", "A市", 100_000), Member("000002", "B市", 200_000)]
    result = allocate(2_500_000, members, WeightedPopulation(Decimal("1.5")))
    assert (result.fee_of("000001"), result.fee_of("000002")) == (1_000_000, 1_500_000)


@settings(max_examples=300, deadline=None)
@given(amounts, member_lists(min_size=2), methods)
def test_equal_populations_pay_equal_fees_up_to_the_indivisible_yen(amount, members, method) -> None:
    twin = members[0]
    members = [*members, Member("999999", "双子市", twin.population, usage=twin.usage)]
    result = allocate(amount, members, method)
    assert abs(result.fee_of(twin.code) - result.fee_of("999999")) <= 1


@settings(max_examples=300, deadline=None)
@given(amounts, member_lists(), populations,
       st.sampled_from([Population(), WeightedPopulation(Decimal("1.5")), WeightedPopulation(Decimal("1.2"))]))
def test_adding_a_member_never_raises_anyone_elses_fee(amount, members, newcomer_population, method) -> None:
    before = allocate(amount, members, method)
    after = allocate(amount, [*members, Member("999998", "新規参加", newcomer_population)], method)
    for fee in before.fees:
        assert after.fee_of(fee.member.code) <= fee.fee


def test_every_fee_is_explained() -> None:
    members = [Member("011002", "札幌市", 1_973_395), Member("012025", "函館市", 251_084)]
    result = allocate(10_000_000, members, WeightedPopulation())
    explanation = result.fees[0].explanation
    assert explanation.startswith("人口 1,973,395 人 → 重み ")
    assert "→ 総額の " in explanation and explanation.endswith("%")
    mixed = allocate(10_000_000, members, Mixed(((Equal(), Decimal(50)), (Population(), Decimal(50)))))
    assert "均等割 50% の部分: 均等 → その部分の 50.00%" in mixed.fees[0].explanation
    assert "人口割 50% の部分: 人口 1,973,395 人" in mixed.fees[0].explanation


def test_usage_based_fees_follow_metered_units() -> None:
    members = [Member("1", "A", usage=300), Member("2", "B", usage=100), Member("3", "C", usage=0)]
    result = allocate(4_000, members, Usage())
    assert [f.fee for f in result.fees] == [3_000, 1_000, 0]


def test_a_subsidy_is_taken_before_members_share() -> None:
    members = [Member("1", "A", 1), Member("2", "B", 1)]
    result = allocate(1_000_001, members, Equal(), subsidy_rate=Decimal("0.5"))
    assert result.subsidy == 500_000 and result.allocated == 500_001
    assert sorted(f.fee for f in result.fees) == [250_000, 250_001]


fixed_shares = st.sampled_from([Fraction(1, 2), Fraction(1, 3), Fraction(2, 5), Fraction(1, 100), Fraction(99, 100)])


@settings(max_examples=300, deadline=None)
@given(amounts, member_lists(min_size=2), methods, fixed_shares, st.sampled_from([Decimal(0), Decimal("0.5")]))
def test_a_fixed_share_is_that_fraction_and_the_rest_is_shared_exactly(amount, members, method, share, rate) -> None:
    prefecture = members[0]
    result = allocate(amount, members, method, subsidy_rate=rate, fixed={prefecture.code: share})
    assert sum(result.amounts) + result.subsidy == amount
    assert abs(result.fee_of(prefecture.code) - result.allocated * share) <= 1
    assert sum(f.percent for f in result.fees) == pytest.approx(100)
    assert result.fee_for(prefecture.code).percent == pytest.approx(float(share) * 100)


@settings(max_examples=200, deadline=None)
@given(amounts, member_lists(min_size=2), populations, fixed_shares)
def test_the_fixed_members_population_does_not_change_the_others_fees(amount, members, other_population, share) -> None:
    method = WeightedPopulation(Decimal("1.5"))
    prefecture = members[0]
    moved = Member(prefecture.code, prefecture.name, other_population, usage=prefecture.usage)
    first = allocate(amount, members, method, fixed={prefecture.code: share})
    second = allocate(amount, [moved, *members[1:]], method, fixed={prefecture.code: share})
    assert first.amounts == second.amounts


def test_prefecture_half_and_the_municipalities_share_the_rest_by_weighted_population() -> None:
    members = [Member("230006", "愛知県", 7_542_415), Member("000001", "A市", 100_000), Member("000002", "B市", 200_000)]
    result = allocate(5_000_000, members, WeightedPopulation(Decimal("1.5")), fixed={"230006": Fraction(1, 2)})
    assert [result.fee_of(code) for code in ("230006", "000001", "000002")] == [2_500_000, 1_000_000, 1_500_000]
    assert result.fee_for("230006").explanation == "固定割合 1/2 → 総額の 50.00%"
    assert "固定割合の団体を除いた残り 2,500,000 円の 40.00% → 総額の 20.00%" in result.fee_for("000001").explanation
    assert result.method_label == "愛知県 1/2、残りを人口按分+重み係数"


@pytest.mark.parametrize(("fixed", "fragment"), [
    ({"1": Fraction(1)}, "1未満"), ({"1": Fraction(0)}, "0より大きく"), ({"9": Fraction(1, 2)}, "含まれていません"),
    ({"1": Fraction(1, 2), "2": Fraction(1, 2)}, "合計が1以上"), ({"1": "半分"}, "分数"),
])
def test_bad_fixed_shares_are_refused(fixed, fragment) -> None:
    members = [Member("1", "A県", 10), Member("2", "B市", 10), Member("3", "C町", 10)]
    with pytest.raises(AllocationError, match=fragment):
        allocate(100, members, Equal(), fixed=fixed)


@pytest.mark.parametrize(("call", "fragment"), [
    (lambda: allocate(-1, [Member("1", "A", 1)], Equal()), "0円以上"),
    (lambda: allocate(10.5, [Member("1", "A", 1)], Equal()), "整数"),
    (lambda: allocate("100", [Member("1", "A", 1)], Equal()), "整数"),
    (lambda: allocate(100, [], Equal()), "1つ以上"),
    (lambda: allocate(100, [Member("1", "A", None)], Population()), "人口がありません"),
    (lambda: allocate(100, [Member("1", "A", 1)], WeightedPopulation(Decimal(0))), "0より大きい"),
    (lambda: allocate(100, [Member("1", "A", 1)], WeightedPopulation(Decimal(-1))), "0より大きい"),
    (lambda: allocate(100, [Member("1", "A", 1)], Mixed(((Equal(), Decimal(60)), (Population(), Decimal(30))))), "100%"),
    (lambda: allocate(100, [Member("1", "A", 1)], Equal(), subsidy_rate=Decimal(1)), "補助率"),
    (lambda: allocate(100, [Member("1", "A", 0)], Population()), "合計が0"),
    (lambda: allocate(100, [Member("1", "A", 1), Member("1", "A", 1)], Equal()), "二度"),
])
def test_bad_input_is_refused_with_a_clear_message(call, fragment) -> None:
    with pytest.raises(AllocationError, match=fragment):
        call()
