"""The cost allocation engine: pure functions, no database, no I/O.

Methods (each may take a national subsidy first):
- 均等割 ``Equal``: every member the same weight;
- 人口割 ``Population``: weight = population;
- 人口按分+重み係数 ``WeightedPopulation(r)``: weight = population^a with 2^a = r, so a member
  twice as large pays r times as much (あいち電子自治体推進協議会: r = 1.5);
- 利用量割 ``Usage``: weight = metered units;
- 組み合わせ ``Mixed``: x % by one method + y % by another (+ …), shares adding to 100 %.

Rounding rule (documented, deterministic): fees are whole yen and sum exactly to the amount.
The amount is apportioned by the Sainte-Laguë/Webster divisor method: each member gets its
exact share rounded to the nearest yen, then single yen are added to (or taken from) the members
whose share is furthest from their fee, until the total is exact; equal claims are settled in
ascending order of organisation code. Divisor methods are the ones under which adding a member
never raises anyone else's fee (no "new member paradox"). Members with equal weights pay fees
that differ by at most 1 yen (the indivisible remainder). Non-integer weights (重み係数) are
taken to six decimal places before apportioning.

A national subsidy is taken first: 国の補助 = amount × rate, rounded down to the yen; members
share the rest.

固定割合 (``fixed``): a member may carry a fixed fraction of what the members share (「県 1/2、
残りを市町村で按分」): a prefecture whose population already counts its municipalities' residents
would otherwise pay on a double-counted base. Fixed members are taken out of the method (their
population or usage is not read); the fixed fractions and "the rest" are apportioned first by the
same divisor rule, then the rest is apportioned among the other members by the method. Every
fee's percentage stays exact (rational), and the fees still sum exactly to the amount.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import NamedTuple

WEIGHT_SCALE = 10**6  # six decimal places of a non-integer weight


class AllocationError(ValueError):
    """Input that cannot be allocated; the message is for people (Japanese)."""


@dataclass(frozen=True)
class Member:
    code: str
    name: str
    population: int | None = None
    usage: int | None = None


@dataclass(frozen=True)
class Equal:
    label: str = "均等割"

    def weights(self, members: Sequence[Member]) -> list[int]:
        return [1] * len(members)

    def explain(self, member: Member, weight: int) -> str:
        return "均等"


@dataclass(frozen=True)
class Population:
    label: str = "人口割"

    def weights(self, members: Sequence[Member]) -> list[int]:
        return [_population(m) for m in members]

    def explain(self, member: Member, weight: int) -> str:
        return f"人口 {member.population:,} 人"


@dataclass(frozen=True)
class WeightedPopulation:
    ratio: Decimal = Decimal("1.5")
    label: str = field(default="人口按分+重み係数")

    def __post_init__(self) -> None:
        ratio = _decimal(self.ratio, "重み係数")
        if not ratio.is_finite() or ratio <= 0:
            raise AllocationError("重み係数 r は0より大きい値にしてください（人口2倍で負担 r 倍）。")
        if ratio > 10:  # weights of large cities would overflow a float (r = 10**30 was a 500)
            raise AllocationError("重み係数 r は10以下にしてください（人口2倍で負担 r 倍。通常は1〜2）。")

    @property
    def exponent(self) -> float:
        return math.log2(float(self.ratio))

    def raw_weight(self, population: int) -> float:
        return float(population) ** self.exponent if population > 0 else 0.0

    def weights(self, members: Sequence[Member]) -> list[int]:
        """Weights in millionths (six decimal places), as integers for exact apportioning."""
        exponent = self.exponent
        return [round(float(p) ** exponent * WEIGHT_SCALE) if p > 0 else 0
                for p in (_population(m) for m in members)]

    def explain(self, member: Member, weight: int) -> str:
        return f"人口 {member.population:,} 人 → 重み {weight / WEIGHT_SCALE:,.2f}"


@dataclass(frozen=True)
class Usage:
    label: str = "利用量割"

    def weights(self, members: Sequence[Member]) -> list[int]:
        weights = []
        for m in members:
            if m.usage is None or isinstance(m.usage, bool) or not isinstance(m.usage, int) or m.usage < 0:
                raise AllocationError(f"{m.name}（{m.code}）の利用量がありません。0以上の整数で指定してください。")
            weights.append(m.usage)
        return weights

    def explain(self, member: Member, weight: int) -> str:
        return f"利用量 {member.usage:,}"


@dataclass(frozen=True)
class Mixed:
    parts: tuple[tuple[object, Decimal], ...]
    label: str = "組み合わせ"

    def __post_init__(self) -> None:
        if not self.parts:
            raise AllocationError("組み合わせる方法を指定してください。")
        total = sum((_decimal(share, "割合") for _, share in self.parts), Decimal(0))
        if any(_decimal(share, "割合") < 0 for _, share in self.parts):
            raise AllocationError("割合は0%以上にしてください。")
        if total != Decimal(100):
            raise AllocationError(f"割合の合計が {total}% です。100% になるようにしてください。")
        if any(isinstance(method, Mixed) for method, _ in self.parts):
            raise AllocationError("組み合わせの中に組み合わせは入れられません。")


class Fee(NamedTuple):
    """One member's fee and its exact percentage of the allocated amount. The explanation is
    formatted when asked for: allocating 1,788 members should not format 1,788 strings."""

    member: Member
    fee: int
    percent: float
    explainer: Callable[[], str]

    @property
    def explanation(self) -> str:
        """「人口 xxx 人 → 重み xxx → 総額の xx.xx%」"""
        return self.explainer()


@dataclass(frozen=True)
class Allocation:
    """The result. ``amounts`` holds the whole-yen fees in member order (the allocation proper);
    ``fees`` gives one ``Fee`` per member with its percentage and explanation, built when first
    read (a statement needs one member, a table all of them)."""

    amount: int
    subsidy: int
    allocated: int
    method_label: str
    members: tuple[Member, ...]
    amounts: tuple[int, ...]
    _weights: tuple[int, ...] = field(repr=False)
    _explain: Callable[[int], str] = field(repr=False, compare=False)

    @cached_property
    def fees(self) -> tuple[Fee, ...]:
        grand = sum(self._weights)
        explain = self._explain
        return tuple(Fee(m, fee, w / grand * 100, partial(explain, i))
                     for i, (m, fee, w) in enumerate(zip(self.members, self.amounts, self._weights, strict=True)))

    @cached_property
    def _index(self) -> dict[str, int]:
        return {m.code: i for i, m in enumerate(self.members)}

    def fee_of(self, code: str) -> int:
        return self.amounts[self._index[code]]

    def fee_for(self, code: str) -> Fee:
        return self.fees[self._index[code]]


def _decimal(value, what: str) -> Decimal:
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise AllocationError(f"{what}「{value}」は数値で指定してください。") from None


def _population(member: Member) -> int:
    p = member.population
    if p is None or isinstance(p, bool) or not isinstance(p, int) or p < 0:
        raise AllocationError(f"{member.name}（{member.code}）の人口がありません。人口を使う方法では全団体の人口が必要です。")
    return p


def _check_amount(amount) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        if isinstance(amount, (float, Decimal, Fraction)) and amount == int(amount) and amount >= 0:
            return int(amount)
        raise AllocationError(f"配分する金額「{amount}」は円単位の整数で指定してください。")
    if amount < 0:
        raise AllocationError("配分する金額は0円以上にしてください。")
    return amount


def apportion(amount: int, weights: Sequence[int], order: Sequence[str]) -> list[int]:
    """Whole units summing to ``amount`` in proportion to integer ``weights`` (Webster; equal
    claims settled by ``order``). Initial fees are exact integer roundings of the quotas; the few
    yen left over (at most half the members) are settled through a priority queue."""
    total = sum(weights)
    n = len(weights)
    if amount == 0:
        return [0] * n
    if total == 0:
        raise AllocationError("配分の基準（人口・利用量など）の合計が0です。配分できません。")
    fees = [(2 * w * amount + total) // (2 * total) for w in weights]  # quota rounded half up
    difference = amount - sum(fees)
    if difference == 0:
        return fees
    rank = {code: i for i, code in enumerate(sorted(order))}
    if difference > 0:
        # The next yen goes to the largest w / (fee + 1/2).
        heap = [(-2 * weights[i] / (2 * fees[i] + 1), rank[order[i]], i) for i in range(n) if weights[i] > 0]
        heapq.heapify(heap)
        for _ in range(difference):
            _, r, i = heapq.heappop(heap)
            fees[i] += 1
            heapq.heappush(heap, (-2 * weights[i] / (2 * fees[i] + 1), r, i))
    else:
        # A yen is taken from the smallest w / (fee − 1/2); on equal claims, the last in order.
        heap = [(2 * weights[i] / (2 * fees[i] - 1), -rank[order[i]], i) for i in range(n) if fees[i] > 0]
        heapq.heapify(heap)
        for _ in range(-difference):
            _, r, i = heapq.heappop(heap)
            fees[i] -= 1
            if fees[i] > 0:
                heapq.heappush(heap, (2 * weights[i] / (2 * fees[i] - 1), r, i))
    return fees


def _check_fixed(fixed: Mapping[str, Fraction] | None, codes: list[str], names: dict[str, str]) -> dict[str, Fraction]:
    if not fixed:
        return {}
    result = {}
    for code, share in fixed.items():
        if code not in names:
            raise AllocationError(f"固定割合を指定した団体（{code}）は、負担する団体に含まれていません。")
        try:
            share = Fraction(share)
        except (TypeError, ValueError):
            raise AllocationError(f"{names[code]}の固定割合「{share}」は分数（例: 1/2）で指定してください。") from None
        if not 0 < share < 1:
            raise AllocationError(f"{names[code]}の固定割合は0より大きく1未満（例: 1/2）で指定してください。")
        result[code] = share
    if sum(result.values()) >= 1:
        raise AllocationError("固定割合の合計が1以上です。残りを按分する団体の分が残るようにしてください。")
    if len(result) == len(codes):
        raise AllocationError("全団体に固定割合が指定されています。残りを按分する団体を1つ以上残してください。")
    return result


def allocate(amount, members: Sequence[Member], method, *, subsidy_rate=Decimal(0),
             fixed: Mapping[str, Fraction] | None = None) -> Allocation:
    """Fees for ``members`` (whole yen, summing exactly to ``amount`` less the subsidy), each
    with its explanation. ``fixed`` maps a member's code to its fixed fraction of the shared
    amount (the others share the rest by ``method``). Raises ``AllocationError`` with a Japanese
    message for bad input."""
    amount = _check_amount(amount)
    if not members:
        raise AllocationError("負担する団体を1つ以上指定してください。")
    codes = [m.code for m in members]
    if len(set(codes)) != len(codes):
        raise AllocationError("同じ団体が二度指定されています。")
    rate = _decimal(subsidy_rate, "補助率")
    if not Decimal(0) <= rate < Decimal(1):
        raise AllocationError("国の補助率は0以上1未満（0%〜100%未満）で指定してください。")
    shares = _check_fixed(fixed, codes, {m.code: m.name for m in members})
    subsidy = int(Decimal(amount) * rate)  # rounded down to the yen
    allocated = amount - subsidy
    if shares:
        return _allocate_with_fixed(amount, subsidy, list(members), method, shares)
    parts = method.parts if isinstance(method, Mixed) else ((method, Decimal(100)),)
    part_weights = []
    for part, _share in parts:
        weights = part.weights(members)
        if sum(weights) == 0:
            raise AllocationError(f"{part.label}の基準（人口・利用量など）の合計が0です。配分できません。")
        part_weights.append(weights)
    totals = [sum(w) for w in part_weights]
    if len(parts) == 1:
        combined = part_weights[0]
    else:
        # One apportionment over the combined exact shares (rounding part by part could hand the
        # same member the indivisible yen twice): Σ share_k · w_ik / T_k, scaled to integers.
        product = math.prod(totals)
        shares = [int(_decimal(share, "割合") * 10_000) for _, share in parts]
        combined = [sum(shares[k] * part_weights[k][i] * (product // totals[k]) for k in range(len(parts)))
                    for i in range(len(members))]
    grand = sum(combined)
    fees = apportion(allocated, combined, codes)

    def explain(i: int) -> str:
        notes = []
        for k, (part, share) in enumerate(parts):
            text = part.explain(members[i], part_weights[k][i])
            if len(parts) > 1:
                text = f"{part.label} {share}% の部分: {text} → その部分の {part_weights[k][i] / totals[k] * 100:.2f}%"
            notes.append(text)
        return "／".join(notes) + f" → 総額の {combined[i] / grand * 100:.2f}%"

    return Allocation(
        amount=amount, subsidy=subsidy, allocated=allocated,
        method_label=getattr(method, "label", type(method).__name__),
        members=tuple(members), amounts=tuple(fees), _weights=tuple(combined), _explain=explain,
    )


def _allocate_with_fixed(amount: int, subsidy: int, members: list[Member], method,
                         shares: dict[str, Fraction]) -> Allocation:
    allocated = amount - subsidy
    fixed_members = [m for m in members if m.code in shares]
    others = [m for m in members if m.code not in shares]
    rest_share = 1 - sum(shares.values())
    denominator = math.lcm(*(f.denominator for f in (*shares.values(), rest_share)))
    # First the fixed fractions and "the rest" (the rest ranks last on equal claims), then the rest
    # among the other members by the method.
    first = apportion(allocated, [int(shares[m.code] * denominator) for m in fixed_members]
                      + [int(rest_share * denominator)], [m.code for m in fixed_members] + ["\uffff"])
    rest_amount = first[-1]
    inner = allocate(rest_amount, others, method)
    inner_weights = inner._weights
    inner_grand = sum(inner_weights)
    fee_of = {m.code: fee for m, fee in zip(fixed_members, first, strict=False)}
    weight_of = {m.code: int(shares[m.code] * denominator) * inner_grand for m in fixed_members}
    for i, m in enumerate(others):
        fee_of[m.code] = inner.amounts[i]
        weight_of[m.code] = int(rest_share * denominator) * inner_weights[i]
    position = {m.code: i for i, m in enumerate(others)}
    grand = sum(weight_of.values())
    ordered = tuple(members)

    def explain(i: int) -> str:
        member = ordered[i]
        total = f"総額の {weight_of[member.code] / grand * 100:.2f}%"
        if member.code in shares:
            return f"固定割合 {_fraction_text(shares[member.code])} → {total}"
        text = inner._explain(position[member.code]).rsplit(" → 総額の ", 1)[0]
        share_in_rest = inner_weights[position[member.code]] / inner_grand * 100
        return (f"{text} → 固定割合の団体を除いた残り {rest_amount:,} 円の {share_in_rest:.2f}% → {total}")

    label = getattr(method, "label", type(method).__name__)
    fixed_text = "、".join(f"{m.name} {_fraction_text(shares[m.code])}" for m in fixed_members)
    return Allocation(
        amount=amount, subsidy=subsidy, allocated=allocated, method_label=f"{fixed_text}、残りを{label}",
        members=ordered, amounts=tuple(fee_of[m.code] for m in ordered),
        _weights=tuple(weight_of[m.code] for m in ordered), _explain=explain,
    )


def _fraction_text(share: Fraction) -> str:
    return f"{share.numerator}/{share.denominator}"
