"""保育所の利用調整エンジン (issue #14 item 4): placements with known answers, ties and tie-breaks,
広域利用, sibling rules, blocking coalitions (checker, default and exact modes, checked against
brute force on small instances), Japanese explanations, determinism and input validation.
Service level, no database."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

import pytest

from kiban.modules.childcare.allocation import (
    Board,
    Child,
    Facility,
    Instance,
    Prepared,
    SiblingRule,
    _blocking,
    allocate,
    explain,
    find_blocking,
    summarise,
)

TOGETHER_ONLY = SiblingRule.TOGETHER_ONLY
TOGETHER_PREFERRED = SiblingRule.TOGETHER_PREFERRED


def cap(**seats: int) -> tuple[int, ...]:
    return tuple(seats.get(f"a{a}", 0) for a in range(6))


def fac(fid: str, name: str, municipality: str = "11100", **seats: int) -> Facility:
    return Facility(fid, municipality, cap(**seats), name=name)


def kid(cid: str, age: int, points: int | Decimal, *prefs: str, tie: tuple = (), group: str | None = None,
        rule: SiblingRule = TOGETHER_PREFERRED, town: str = "11100") -> Child:
    return Child(cid, age, town, points, tuple(prefs), tie_break=tie, sibling_group=group, sibling_rule=rule)


def placed(result) -> dict[str, str | None]:
    return result.assignment()


# --- simple cases with known answers ---------------------------------------------------------


def test_higher_points_get_their_first_choice_and_reasons_name_the_cutoff() -> None:
    inst = Instance(
        children=(kid("c1", 1, 42, "A", "B"), kid("c2", 1, 38, "A", "B"), kid("c3", 1, Decimal("30.5"), "A", "B")),
        facilities=(fac("A", "さくら保育園", a1=1), fac("B", "ひまわり保育園", a1=1)),
    )
    r = allocate(inst)
    assert placed(r) == {"c1": "A", "c2": "B", "c3": None}
    assert r.placement("c2").rank == 2
    assert r.placement("c2").reasons == (
        "第2希望（ひまわり保育園 1歳児）に決まりました。",
        "第1希望（さくら保育園 1歳児）は、指数 42 の方までで定員に達しました（あなたの指数は 38）。",
    )
    assert r.placement("c1").reasons == ("第1希望（さくら保育園 1歳児）に決まりました。",)
    assert r.placement("c3").reasons[0] == "ご希望の施設には、いずれも入所が決まりませんでした（保留）。"
    assert "（あなたの指数は 30.5）" in r.placement("c3").reasons[1]
    assert r.stats.placed == 2 and r.stats.unplaced == 1 and r.stats.by_rank == ((1, 1), (2, 1))
    assert r.blocking == () and r.stats.blocking == 0
    cut = {(c.facility_id, c.age_class): c for c in r.cutoffs}
    assert cut["A", 1].lowest_points == 42 and cut["A", 1].full
    assert cut["B", 1].lowest_points == 38
    assert r.mode == "default" and r.status == "heuristic"


def test_capacity_is_per_age_class_and_a_class_without_seats_is_explained() -> None:
    inst = Instance(
        children=(kid("c0", 0, 10, "A", "B"), kid("c3", 3, 5, "A")),
        facilities=(fac("A", "みどり園", a3=2), fac("B", "あおば園", a0=1)),
    )
    r = allocate(inst)
    assert placed(r) == {"c0": "B", "c3": "A"}
    assert r.placement("c0").reasons[1] == "第1希望（みどり園 0歳児）は、0歳児の募集がありませんでした。"


def test_deferred_acceptance_is_child_optimal_and_displaces_lower_points() -> None:
    # c2 proposes to A first and is held, then c1 (more points) takes A's seat; c2 moves on to B.
    inst = Instance(
        children=(kid("c2", 2, 10, "A", "B"), kid("c1", 2, 20, "A"), kid("c3", 2, 5, "B")),
        facilities=(fac("A", "A園", a2=1), fac("B", "B園", a2=1)),
    )
    r = allocate(inst)
    assert placed(r) == {"c1": "A", "c2": "B", "c3": None}
    assert "指数 10 の方までで定員に達しました（あなたの指数は 5）" in r.placement("c3").reasons[1]


# --- ties, tie-breaks, facility-specific priority ---------------------------------------------


def test_equal_points_are_decided_by_the_tie_break_and_then_by_id() -> None:
    facilities = (fac("A", "A園", a1=1), fac("B", "B園", a1=1))
    inst = Instance(children=(kid("x", 1, 50, "A", "B", tie=(2,)), kid("y", 1, 50, "A", "B", tie=(1,))),
                    facilities=facilities)
    r = allocate(inst)
    assert placed(r) == {"x": "B", "y": "A"}
    assert r.placement("x").reasons[1] == (
        "第1希望（A園 1歳児）は、指数 50 の方までで定員に達しました。あなたの指数も 50 でしたが、"
        "同じ指数の方の間の優先順位により入所となりませんでした。")
    same = Instance(children=(kid("y", 1, 50, "A", "B"), kid("x", 1, 50, "A", "B")), facilities=facilities)
    assert placed(allocate(same)) == {"x": "A", "y": "B"}  # no tie-break given: the id decides


def test_residents_first_ranks_own_residents_before_higher_points_from_elsewhere() -> None:
    near = Facility("N", "13112", cap(a1=1), name="世田谷の園", residents_first=True)
    other = Facility("M", "13110", cap(a1=1), name="目黒の園")
    inst = Instance(
        children=(kid("out", 1, 90, "N", "M", town="13110"), kid("home", 1, 40, "N", town="13112")),
        facilities=(near, other),
    )
    r = allocate(inst)
    assert placed(r) == {"out": "M", "home": "N"}
    assert r.placement("out").reasons[1] == (
        "第1希望（世田谷の園 1歳児）は、施設のある市区町村にお住まいの方を優先して選考し、定員に達しました"
        "（あなたの指数は 90）。")


def test_explicit_priority_order_overrides_points() -> None:
    a = Facility("A", "11100", cap(a2=1), name="A園", priority_order=("low",))
    inst = Instance(children=(kid("high", 2, 99, "A"), kid("low", 2, 1, "A")), facilities=(a,))
    r = allocate(inst)
    assert placed(r) == {"high": None, "low": "A"}
    assert "施設の選考順位により定員に達しました" in r.placement("high").reasons[1]


# --- siblings -----------------------------------------------------------------------------------


def test_siblings_placed_together_each_in_their_own_age_class() -> None:
    inst = Instance(
        children=(kid("s0", 0, 30, "A", "B", group="g", rule=TOGETHER_ONLY),
                  kid("s2", 2, 30, "A", "B", group="g", rule=TOGETHER_ONLY),
                  kid("o", 0, 60, "A")),
        facilities=(fac("A", "A園", a0=1, a2=1), fac("B", "B園", a0=1, a2=1)),
    )
    r = allocate(inst)
    assert placed(r) == {"o": "A", "s0": "B", "s2": "B"}
    assert r.placement("s0").reasons[:2] == ("第2希望（B園 0歳児）に決まりました。", "ごきょうだいと同じ施設です。")
    assert r.placement("s2").reasons[2] == (
        "第1希望（A園 2歳児）は空きがありましたが、ごきょうだいと同じ施設に入所できることを優先しました。")
    assert (r.stats.sibling_groups, r.stats.siblings_together, r.stats.siblings_split) == (1, 1, 0)


def test_together_only_siblings_are_not_split_and_the_seat_goes_to_the_next_child() -> None:
    inst = Instance(
        children=(kid("s0", 0, 50, "A", "B", group="g", rule=TOGETHER_ONLY),
                  kid("s2", 2, 50, "A", "B", group="g", rule=TOGETHER_ONLY),
                  kid("next", 0, 10, "A")),
        facilities=(fac("A", "A園", a0=1), fac("B", "B園", a2=1)),
    )
    r = allocate(inst)
    assert placed(r) == {"s0": None, "s2": None, "next": "A"}
    assert r.stats.siblings_unplaced == 1
    assert ("ごきょうだいそろって入所できる施設がなかったため、ご希望（同じ施設でなければ辞退）のとおり保留となりました。"
            in r.placement("s0").reasons)
    assert ("第1希望（A園 0歳児）は空きがありましたが、ごきょうだいそろっての入所ができないため、見送りました。"
            in r.placement("s0").reasons)
    assert r.blocking == ()


def test_one_seat_left_for_twins_together_preferred_splits_together_only_waits() -> None:
    facilities = (fac("A", "A園", a1=1), fac("B", "B園", a1=1))
    pref = Instance(children=(kid("t1", 1, 40, "A", "B", group="g"), kid("t2", 1, 40, "A", "B", group="g")),
                    facilities=facilities)
    r = allocate(pref)
    # no facility has two 1歳児 seats: split, and the split plan with the best ranks wins
    assert sorted(placed(r).values()) == ["A", "B"]
    assert r.stats.siblings_split == 1
    assert "ごきょうだいとは別々の調整となりました" in r.placement("t1").reasons[1]
    only = Instance(children=tuple(Child(c.id, c.age_class, c.municipality, c.points, c.preferences,
                                         sibling_group="g", sibling_rule=TOGETHER_ONLY) for c in pref.children)
                    + (kid("other", 1, 1, "A"),), facilities=facilities)
    r2 = allocate(only)
    assert placed(r2) == {"t1": None, "t2": None, "other": "A"}
    both = Instance(children=pref.children, facilities=(fac("A", "A園", a1=2), fac("B", "B園", a1=1)))
    assert placed(allocate(both)) == {"t1": "A", "t2": "A"}


def test_a_withdrawing_group_frees_its_seats_for_others() -> None:
    # g holds A (0歳 and 2歳) until h, with more points, takes A's 2歳児 seat; g then withdraws
    # from A entirely, and the single child w, refused at A's 0歳児 class earlier, gets the seat.
    inst = Instance(
        children=(kid("g0", 0, 50, "A", group="g", rule=TOGETHER_ONLY),
                  kid("g2", 2, 50, "A", group="g", rule=TOGETHER_ONLY),
                  kid("w", 0, 10, "A"),
                  kid("h", 2, 80, "A")),
        facilities=(fac("A", "A園", a0=1, a2=1),),
    )
    r = allocate(inst)
    assert placed(r) == {"g0": None, "g2": None, "w": "A", "h": "A"}
    assert r.blocking == ()


# --- blocking coalitions -------------------------------------------------------------------------


def test_checker_reports_free_seats_and_displacements() -> None:
    inst = Instance(
        children=(kid("c1", 1, 50, "A", "B"), kid("c2", 1, 40, "A", "B"), kid("c3", 1, 30, "B")),
        facilities=(fac("A", "A園", a1=1), fac("B", "B園", a1=2)),
    )
    found = find_blocking(inst, {"c1": "B", "c2": "A", "c3": None})
    assert [(b.child_ids, b.facility_id, b.displaced) for b in found] == [
        (("c1",), "A", ("c2",)),  # c1 outranks c2 at A
        (("c3",), "B", ()),  # a spare seat at B
    ]
    assert summarise(inst, {"c1": "B", "c2": "A", "c3": None}).blocking == 2
    assert find_blocking(inst, allocate(inst).assignment()) == ()


def test_group_blocking_needs_every_member_admitted() -> None:
    inst = Instance(
        children=(kid("g1", 1, 50, "A", "B", group="g", rule=TOGETHER_ONLY),
                  kid("g3", 3, 50, "A", "B", group="g", rule=TOGETHER_ONLY),
                  kid("x", 1, 40, "A"), kid("y", 3, 60, "A")),
        facilities=(fac("A", "A園", a1=1, a3=1), fac("B", "B園", a1=1, a3=1)),
    )
    # g outranks x in 1歳 but not y in 3歳: A cannot take both siblings, so no coalition at A
    assert find_blocking(inst, {"g1": "B", "g3": "B", "x": "A", "y": "A"}) == ()
    # with a second 3歳児 seat, g would be admitted at A, displacing x only
    roomy = Instance(inst.children, (fac("A", "A園", a1=1, a3=2), inst.facilities[1]))
    (b,) = find_blocking(roomy, {"g1": "B", "g3": "B", "x": "A", "y": "A"})
    assert (b.child_ids, b.facility_id, b.sibling_group, b.displaced) == (("g1", "g3"), "A", "g", ("x",))


# Small random instances (the generator below is fixed, so the seeds name fixed instances; they
# were found by running it over many seeds): deferred acceptance with sibling groups ends with
# blocking coalitions, and the exact mode removes them or reaches the proven minimum.
def _random_instance(seed: int, *, big: bool = False) -> Instance:
    rng = random.Random(seed)
    n = rng.randint(10, 40) if big else rng.randint(8, 20)
    nf = rng.randint(2, 5) if big else rng.randint(2, 4)
    top = 3 if big else 2
    facilities = [Facility(f"F{i}", "m", tuple(rng.randint(0, top) for _ in range(6)), name=f"園{i}")
                  for i in range(nf)]
    children: list[Child] = []
    g = 0
    while len(children) < n:
        if rng.random() < 0.5:
            g += 1
            rule = rng.choice([TOGETHER_ONLY, TOGETHER_PREFERRED])
            pts = rng.randint(1, 5)
            prefs = tuple(rng.sample([f.id for f in facilities], rng.randint(1, nf)))
            for _ in range(rng.choice([2, 2, 3])):
                p2 = prefs if rng.random() < 0.7 else tuple(rng.sample([f.id for f in facilities], rng.randint(1, nf)))
                children.append(Child(f"c{len(children)}", rng.randint(0, 2), "m", pts, p2, (rng.random(),),
                                      f"g{g}", rule))
        else:
            children.append(Child(f"c{len(children)}", rng.randint(0, 2), "m", rng.randint(1, 5),
                                  tuple(rng.sample([f.id for f in facilities], rng.randint(1, nf))),
                                  (rng.random(),)))
    return Instance(tuple(children), tuple(facilities))


def _brute_force(inst: Instance) -> tuple[int, int]:
    """(fewest blocking coalitions, then most placed) over every feasible matching."""
    prep = Prepared(inst)
    best = None
    for choice in itertools.product(*[range(len(u.plans) + 1) for u in prep.units]):
        assign = [-1] * len(prep.children)
        for u, k in enumerate(choice):
            unit = prep.units[u]
            if k < len(unit.plans):
                for m, fi in zip(unit.members, unit.plans[k]):
                    if fi >= 0:
                        assign[m] = fi
        board = Board(prep, assign)
        if any(len(h) > prep.cap[p] for p, h in enumerate(board.held)):
            continue
        key = (len(_blocking(prep, board)), -sum(1 for a in assign if a >= 0))
        best = key if best is None or key < best else best
    return best[0], -best[1]


def _copies(inst: Instance, k: int) -> Instance:
    """k disjoint copies of an instance (own facilities, children and groups per copy)."""
    children, facilities = [], []
    for i in range(k):
        pre = f"k{i}-"
        facilities += [Facility(pre + f.id, f.municipality, f.capacity, name=f"{f.name}の{i}") for f in inst.facilities]
        children += [Child(pre + c.id, c.age_class, c.municipality, c.points, tuple(pre + p for p in c.preferences),
                           c.tie_break, pre + c.sibling_group if c.sibling_group else None, c.sibling_rule)
                     for c in inst.children]
    return Instance(tuple(children), tuple(facilities))


@pytest.mark.parametrize(("seed", "k"), [(8037, 4), (1069, 8)])
def test_exact_mode_removes_the_blocking_coalitions_deferred_acceptance_leaves(seed: int, k: int) -> None:
    # Deferred acceptance cycles on each copy with some processing orders; with several copies
    # every attempt leaves some copy unstable, although a stable matching exists (copy by copy).
    inst = _copies(_random_instance(seed, big=True), k)
    default = allocate(inst)
    assert default.stats.blocking > 0 and len(default.blocking) == default.stats.blocking
    assert any(b.sibling_group for b in default.blocking)
    assert find_blocking(inst, default.assignment()) == default.blocking
    exact = allocate(inst, mode="exact", time_limit=30)
    assert exact.status == "OPTIMAL"
    assert exact.blocking == () and find_blocking(inst, exact.assignment()) == ()
    assert exact.stats.placed >= default.stats.placed


@pytest.mark.parametrize("seed", [6599, 9271])
def test_exact_mode_reaches_the_brute_force_minimum_when_no_stable_matching_exists(seed: int) -> None:
    inst = _random_instance(seed)
    default = allocate(inst)
    exact = allocate(inst, mode="exact", time_limit=20)
    assert default.stats.blocking > exact.stats.blocking > 0
    assert exact.status == "OPTIMAL"
    assert (exact.stats.blocking, exact.stats.placed) == _brute_force(inst)
    assert len(exact.blocking) == exact.stats.blocking == len(find_blocking(inst, exact.assignment()))


def test_exact_mode_matches_deferred_acceptance_on_singles_and_is_proven_optimal() -> None:
    rng = random.Random(7)
    facilities = tuple(fac(f"F{i}", f"園{i}", a0=rng.randint(0, 2), a1=rng.randint(0, 3)) for i in range(6))
    children = tuple(kid(f"c{i}", rng.randint(0, 1), rng.choice((10, 20, 30)),
                         *rng.sample([f.id for f in facilities], 3), tie=(rng.random(),)) for i in range(40))
    inst = Instance(children, facilities)
    default, exact = allocate(inst), allocate(inst, mode="exact", time_limit=20)
    assert default.stats.blocking == exact.stats.blocking == 0
    # all stable matchings place the same children count (rural hospitals theorem)
    assert default.stats.placed == exact.stats.placed
    assert exact.status == "OPTIMAL" and exact.mode == "exact"


# --- explanations, determinism, validation ------------------------------------------------------


def test_every_child_gets_japanese_reasons_without_ids() -> None:
    inst = _random_instance(6599)
    r = allocate(inst)
    ids = {c.id for c in inst.children} | {f.id for f in inst.facilities}
    for p in r.placements:
        assert p.reasons
        for line in p.reasons:
            assert line.endswith("。")
            for token in ids:
                assert f"{token} " not in line and f"{token}）" not in line and f"（{token}" not in line
        expected = len(inst.children[[c.id for c in inst.children].index(p.child_id)].preferences)
        if p.rank is not None:
            expected = p.rank  # the placement line plus one line per better preference
        assert sum(1 for line in p.reasons if line.startswith("第")) == expected
    assert explain(inst, r.assignment()) == {p.child_id: p.reasons for p in r.placements}


def test_facility_without_name_is_described_by_rank_and_class() -> None:
    inst = Instance((kid("c", 2, 10, "A"),), (Facility("A", "1", cap(a2=1)),))
    assert allocate(inst).placement("c").reasons == ("第1希望（2歳児）に決まりました。",)


def test_same_input_same_output() -> None:
    inst = _random_instance(9226)
    a, b = allocate(inst), allocate(inst)
    assert (a.placements, a.blocking, a.cutoffs, a.stats) == (b.placements, b.blocking, b.cutoffs, b.stats)
    ea, eb = allocate(inst, mode="exact", time_limit=20), allocate(inst, mode="exact", time_limit=20)
    assert (ea.placements, ea.stats) == (eb.placements, eb.stats)


def test_singles_outcome_does_not_depend_on_input_order() -> None:
    rng = random.Random(3)
    facilities = tuple(fac(f"F{i}", f"園{i}", a1=rng.randint(1, 3)) for i in range(5))
    children = [kid(f"c{i}", 1, rng.choice((1, 2, 3)), *rng.sample([f.id for f in facilities], 3),
                    tie=(rng.random(),)) for i in range(30)]
    first = allocate(Instance(tuple(children), facilities)).assignment()
    rng.shuffle(children)
    assert allocate(Instance(tuple(children), facilities)).assignment() == first


@pytest.mark.parametrize(("children", "facilities", "message"), [
    ((kid("c", 1, 10, "Z"),), (fac("A", "A園", a1=1),), "希望施設に登録されていない施設があります（申込み c の第1希望: Z）"),
    ((kid("c", 1, 10, "A"),), (Facility("A", "1", (0, -1, 0, 0, 0, 0), name="A園"),), "定員に負の数は指定できません（A園 1歳児: -1）"),
    ((kid("c", 1, 10, "A"), kid("c", 1, 10, "A")), (fac("A", "A園", a1=1),), "申込みの番号が重複しています"),
    ((kid("c", 6, 10, "A"),), (fac("A", "A園", a1=1),), "年齢クラスは0〜5歳児"),
    ((kid("c", 1, 10, "A", "A"),), (fac("A", "A園", a1=1),), "同じ施設を重ねて希望しています"),
    ((Child("c", 1, "1", 1.5, ("A",)),), (fac("A", "A園", a1=1),), "指数は整数または10進数"),
    ((kid("c", 1, 10, "A", group="g", rule=TOGETHER_ONLY), kid("d", 1, 10, "A", group="g")),
     (fac("A", "A園", a1=1),), "取扱いが食い違っています"),
    ((kid("c", 1, 10, "A"),), (Facility("A", "1", (1, 1), name="A園"),), "6クラス分"),
    ((kid("c", 1, 10, "A"),), (Facility("A", "1", cap(a1=1), priority_order=("nobody",)),), "選考順位に申込みのない番号"),
    ((kid("c", 1, 10, "A", tie=(1,)), kid("d", 1, 10, "A", tie=("x",))), (fac("A", "A園", a1=1),), "同点時の優先順位"),
])
def test_invalid_input_is_refused_in_japanese(children, facilities, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        allocate(Instance(children, facilities))


def test_bad_mode_and_time_limit_are_refused() -> None:
    inst = Instance((kid("c", 1, 10, "A"),), (fac("A", "A園", a1=1),))
    with pytest.raises(ValueError, match="調整方式の指定が正しくありません"):
        allocate(inst, mode="fastest")
    with pytest.raises(ValueError, match="制限時間"):
        allocate(inst, mode="exact", time_limit=0)
    with pytest.raises(ValueError, match="希望していない施設への割当て"):
        find_blocking(Instance(inst.children, inst.facilities + (fac("B", "B園", a1=1),)), {"c": "B"})


def test_sibling_explanations_name_the_other_children_by_label() -> None:
    facilities = (Facility("A", "1", cap(a1=1), name="さくら保育園"), Facility("B", "1", cap(a1=1, a3=1), name="ひまわり保育園"))
    children = (Child("t1", 1, "1", 40, ("A", "B"), sibling_group="g", label="花子さん"),
                Child("t2", 3, "1", 40, ("A", "B"), sibling_group="g", label="太郎さん"),
                Child("x", 1, "1", 50, ("B",)))
    r = allocate(Instance(children, facilities))
    assert placed(r) == {"t1": "A", "t2": "B", "x": "B"}
    assert r.placement("t1").reasons[1] == (
        "ごきょうだいそろって入所できる施設がなかったため、ごきょうだい（太郎さん）とは別々の調整となりました。")
    assert r.placement("t2").reasons[2] == "第1希望（さくら保育園 3歳児）は、3歳児の募集がありませんでした。"
    independent = tuple(Child(c.id, c.age_class, c.municipality, c.points, c.preferences, sibling_group=c.sibling_group,
                              sibling_rule=SiblingRule.INDEPENDENT, label=c.label) for c in children)
    r2 = allocate(Instance(independent, facilities))
    assert placed(r2) == placed(r) and r2.stats.siblings_split == 1
    assert r2.placement("t1").reasons == ("第1希望（さくら保育園 1歳児）に決まりました。",)


# --- 管外受入枠 (outside quota, 広域利用) ------------------------------------------------------------
# The facility's municipality ("m") offers only so many places of a class to children living
# elsewhere ("o"); residents never count against it.


def quota_fac(fid: str, name: str, quota: dict[int, int | None], municipality: str = "m", **seats: int) -> Facility:
    return Facility(fid, municipality, cap(**seats), name=name, outside_quota=quota)


def outsiders_within_quota(inst: Instance, assignment: dict[str, str | None]) -> bool:
    prep = Prepared(inst)
    board = Board(prep, [prep.fidx[f] if f else -1 for f in assignment.values()])
    return (all(len(h) <= prep.cap[p] for p, h in enumerate(board.held))
            and all(q is None or len(board.held_out[p]) <= q for p, q in enumerate(prep.quota)))


def test_outside_children_are_placed_only_up_to_the_quota_and_the_refusal_says_so() -> None:
    inst = Instance(
        children=(kid("o1", 1, 50, "A", "B", town="o"), kid("o2", 1, 45, "A", "B", town="o"),
                  kid("r1", 1, 30, "A", "B", town="m")),
        facilities=(quota_fac("A", "さくら保育園", {1: 1}, a1=3), fac("B", "ひまわり保育園", "o", a1=2)),
    )
    for mode in ("default", "exact"):
        r = allocate(inst, mode=mode, time_limit=10)
        # A keeps a seat free rather than give a second one to a child from elsewhere
        assert placed(r) == {"o1": "A", "o2": "B", "r1": "A"}, mode
        assert r.blocking == () and find_blocking(inst, r.assignment()) == ()
        assert r.placement("o2").reasons == (
            "第2希望（ひまわり保育園 1歳児）に決まりました。",
            "第1希望（さくら保育園 1歳児）は、管外からの受入枠に達しました（施設のある市区町村がほかの市区町村に"
            "お住まいの方に用意した1歳児の1人分が、指数 50 の方までで埋まりました。あなたの指数は 45）。",
        )
        cut = {(c.facility_id, c.age_class): c for c in r.cutoffs}
        assert (cut["A", 1].outside_quota, cut["A", 1].outside_placed, cut["A", 1].placed) == (1, 1, 2)
        assert (cut["B", 1].outside_quota, cut["B", 1].outside_placed) == (None, 0)
    # Without the quota o2 would have A's free seat: the same assignment then has a blocking pair
    free = Instance(inst.children, (fac("A", "さくら保育園", "m", a1=3), inst.facilities[1]))
    assert placed(allocate(free)) == {"o1": "A", "o2": "A", "r1": "A"}
    assert [b.child_ids for b in find_blocking(free, {"o1": "A", "o2": "B", "r1": "A"})] == [("o2",)]


def test_the_quota_counts_only_outsiders_and_only_in_its_own_class() -> None:
    inst = Instance(
        children=(kid("r1", 0, 10, "A", town="m"), kid("r2", 0, 10, "A", town="m"), kid("o0", 0, 90, "A", town="o"),
                  kid("o3", 3, 5, "A", town="o"), kid("o3b", 3, 4, "A", town="o")),
        facilities=(quota_fac("A", "みどり園", {0: 1, 3: None}, a0=3, a3=2),),
    )
    r = allocate(inst)
    assert placed(r) == {"r1": "A", "r2": "A", "o0": "A", "o3": "A", "o3b": "A"}


def test_a_zero_quota_closes_the_class_to_other_municipalities_with_its_own_reason() -> None:
    inst = Instance(children=(kid("o", 2, 80, "A", "B", town="o"), kid("r", 2, 1, "A", town="m")),
                    facilities=(quota_fac("A", "あおば園", {2: 0}, a2=5), fac("B", "わかば園", "o", a2=1)))
    for mode in ("default", "exact"):
        r = allocate(inst, mode=mode, time_limit=10)
        assert placed(r) == {"o": "B", "r": "A"}
        assert r.placement("o").reasons[1] == (
            "第1希望（あおば園 2歳児）は、施設のある市区町村が2歳児の管外（ほかの市区町村にお住まいの方）の受入枠を"
            "設けていませんでした。")


def test_a_higher_ranked_outsider_displaces_the_lowest_outsider_even_with_a_seat_free() -> None:
    inst = Instance(
        children=(kid("hi", 1, 50, "A", "B", town="o"), kid("lo", 1, 10, "A", "B", town="o"),
                  kid("r", 1, 5, "A", town="m")),
        facilities=(quota_fac("A", "A園", {1: 1}, a1=3), fac("B", "B園", "o", a1=2)),
    )
    (b,) = find_blocking(inst, {"hi": "B", "lo": "A", "r": "A"})
    assert (b.child_ids, b.facility_id, b.displaced) == (("hi",), "A", ("lo",))
    r = allocate(inst)
    assert placed(r) == {"hi": "A", "lo": "B", "r": "A"}


def test_outside_twins_need_two_outside_places_to_be_together() -> None:
    twins = (kid("t1", 1, 40, "A", "B", group="g", town="o"), kid("t2", 1, 40, "A", "B", group="g", town="o"))
    facilities = (quota_fac("A", "A園", {1: 1}, a1=4), fac("B", "B園", "o", a1=1))
    r = allocate(Instance(twins, facilities))
    # together nowhere (A offers one outside place, B has one seat): split, one at A and one at B
    assert sorted(f for f in placed(r).values()) == ["A", "B"] and r.stats.siblings_split == 1
    only = tuple(Child(c.id, c.age_class, c.municipality, c.points, c.preferences, sibling_group="g",
                       sibling_rule=TOGETHER_ONLY) for c in twins)
    for mode in ("default", "exact"):
        r = allocate(Instance(only, facilities), mode=mode, time_limit=10)
        assert placed(r) == {"t1": None, "t2": None} and r.blocking == ()
    roomy = (quota_fac("A", "A園", {1: 2}, a1=4), facilities[1])
    assert placed(allocate(Instance(only, roomy))) == {"t1": "A", "t2": "A"}


def _random_quota_instance(seed: int) -> Instance:
    """Two municipalities, siblings, and outside quotas of 0, 1 or none per class."""
    rng = random.Random(seed)
    n, nf = rng.randint(8, 16), rng.randint(2, 4)
    facilities = [Facility(f"F{i}", rng.choice("mo"), tuple(rng.randint(0, 2) for _ in range(6)), name=f"園{i}",
                           outside_quota=tuple(rng.choice([None, 0, 1, 1]) for _ in range(6))) for i in range(nf)]
    children: list[Child] = []
    g = 0
    while len(children) < n:
        town = rng.choice("mmo")
        if rng.random() < 0.4:
            g += 1
            rule, pts = rng.choice([TOGETHER_ONLY, TOGETHER_PREFERRED]), rng.randint(1, 5)
            prefs = tuple(rng.sample([f.id for f in facilities], rng.randint(1, nf)))
            for _ in range(2):
                children.append(Child(f"c{len(children)}", rng.randint(0, 2), town, pts, prefs, (rng.random(),),
                                      f"g{g}", rule))
        else:
            children.append(Child(f"c{len(children)}", rng.randint(0, 2), town, rng.randint(1, 5),
                                  tuple(rng.sample([f.id for f in facilities], rng.randint(1, nf))), (rng.random(),)))
    return Instance(tuple(children), tuple(facilities))


def test_deferred_acceptance_never_exceeds_a_quota_and_is_stable_on_singles() -> None:
    for seed in range(150):
        inst = _random_quota_instance(seed)
        r = allocate(inst)
        assert outsiders_within_quota(inst, r.assignment()), seed
        assert find_blocking(inst, r.assignment()) == r.blocking, seed
    rng = random.Random(11)
    facilities = tuple(Facility(f"F{i}", rng.choice("mo"), cap(a0=rng.randint(0, 3), a1=rng.randint(0, 3)),
                                outside_quota=(rng.choice((None, 0, 1, 2)), rng.choice((None, 0, 1, 2)), None, None,
                                               None, None)) for i in range(6))
    children = tuple(kid(f"c{i}", rng.randint(0, 1), rng.choice((10, 20, 30)), *rng.sample([f.id for f in facilities], 3),
                         tie=(rng.random(),), town=rng.choice("mo")) for i in range(60))
    singles = Instance(children, facilities)
    default, exact = allocate(singles), allocate(singles, mode="exact", time_limit=20)
    assert default.stats.blocking == exact.stats.blocking == 0  # deferred acceptance with quotas stays stable
    assert default.stats.placed == exact.stats.placed and exact.status == "OPTIMAL"
    assert outsiders_within_quota(singles, exact.assignment())


def _brute_force_with_quota(inst: Instance) -> tuple[int, int]:
    prep = Prepared(inst)
    best = None
    for choice in itertools.product(*[range(len(u.plans) + 1) for u in prep.units]):
        assign = [-1] * len(prep.children)
        for u, k in enumerate(choice):
            if k < len(prep.units[u].plans):
                for m, fi in zip(prep.units[u].members, prep.units[u].plans[k]):
                    if fi >= 0:
                        assign[m] = fi
        board = Board(prep, assign)
        if any(len(h) > prep.cap[p] for p, h in enumerate(board.held)):
            continue
        if any(q is not None and len(board.held_out[p]) > q for p, q in enumerate(prep.quota)):
            continue
        key = (len(_blocking(prep, board)), -sum(1 for a in assign if a >= 0))
        best = key if best is None or key < best else best
    return best[0], -best[1]


@pytest.mark.parametrize("seed", [494, 625])
def test_exact_mode_honours_the_quota_and_reaches_the_brute_force_minimum(seed: int) -> None:
    # Seeds found by running the generator: deferred acceptance leaves more blocking coalitions
    # than the minimum over every matching that keeps capacities and outside quotas.
    inst = _random_quota_instance(seed)
    default = allocate(inst)
    exact = allocate(inst, mode="exact", time_limit=20)
    assert default.stats.blocking > exact.stats.blocking
    assert exact.status == "OPTIMAL"
    assert (exact.stats.blocking, exact.stats.placed) == _brute_force_with_quota(inst)
    assert outsiders_within_quota(inst, exact.assignment())
    assert find_blocking(inst, exact.assignment()) == exact.blocking


@pytest.mark.parametrize(("quota", "message"), [
    ((1, 1), "管外からの受入枠は0〜5歳児の6クラス分"),
    ((-1, None, None, None, None, None), "管外からの受入枠に負の数は指定できません（A園 0歳児: -1）"),
    ((None, 1.5, None, None, None, None), "管外からの受入枠は整数で指定してください（A園 1歳児）"),
])
def test_a_wrong_quota_is_refused_in_japanese(quota, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        allocate(Instance((kid("c", 1, 10, "A"),), (Facility("A", "m", cap(a1=1), name="A園", outside_quota=quota),)))
