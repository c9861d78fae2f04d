"""保育所の利用調整エンジン（issue #14 item 4）: pure Python, no database.

The caller (the childcare service) turns applications, points and capacities into an
:class:`Instance`, calls :func:`allocate`, and stores the :class:`Result` (placements, reasons in
Japanese, blocking coalitions, cut-offs, statistics). Nothing here touches a session, a tenant or
the clock beyond measuring its own run time. Same input → same output, in every mode.

Vocabulary
----------
* A *program* is one age class of one facility, ``(facility_id, age_class)``; capacities are per
  program (``Facility.capacity[age]``).
* Priority at a facility is a strict order of the applicants. By default higher ``points`` first,
  then the smaller ``tie_break`` (the caller encodes the municipality's tie-break rules as a
  tuple, e.g. ``(-sibling_bonus, income, lottery_number)``), then the child id (so the order is
  always strict and the result deterministic). ``Facility.residents_first`` ranks the residents
  of the facility's own municipality before everyone else (広域利用). ``Facility.priority_order``
  lists child ids in an explicit order that overrides the points (children not listed come
  after, in the default order).
* ``Facility.outside_quota`` (管外受入枠): per age class, how many of the seats the facility's
  municipality offers to children living in other municipalities (広域利用: the municipality where
  the facility stands decides how many places it gives to 管外 children; ``None`` for a class, or
  for the whole facility, means no separate limit). A child whose municipality is not the
  facility's counts against it; residents never do. It is a second capacity on the same program,
  for the outsiders only, and the facility still admits in its priority order: an outsider is
  admitted when the class has room and the outsiders ranked above them leave room in the quota.
* A *unit* is a single child or a sibling group (``Child.sibling_group``). Every unit has a
  ranked list of *plans*; a plan gives each member a facility or nothing:

  - single child: its preferences, in order.
  - ``SiblingRule.TOGETHER_ONLY`` (同一施設でなければ辞退): only *together plans*, every member
    at the same facility, each in its own age class (twins need two seats in one class).
  - ``SiblingRule.TOGETHER_PREFERRED`` (同一施設希望・別々でも可): all together plans first, then
    *split plans*: every combination in which each member gets one of its own preferences or
    nothing (at least one member placed, not all at one facility), ranked by fewer members left
    out, then smaller sum of preference ranks, then the members' ranks in member order; at most
    ``MAX_SPLIT_PLANS`` of them are kept (for a large family with long lists, only from the
    members' higher preferences, so that at most ``MAX_SPLIT_COMBINATIONS`` are ranked).
  - ``SiblingRule.INDEPENDENT`` (別々に調整): every member is a unit of its own; the group id is
    kept only for statistics and explanations.

  The together plans of a group are its *joint facilities* (on every member's list), ordered by
  the worst (largest) rank any member gives them, then by the sum of ranks, then by the first
  member's order. The rule must be the same for every member of a group.

* Blocking coalition (used by the checker, the exact mode and the reference model alike): a
  unit U and a plan P that U ranks above its outcome, such that every member would be admitted:
  in every program p that P uses, with S the members P puts there and w the lowest-ranked of
  them, ``|children placed at p ranked above w, not in U| + |S| <= capacity(p)``. For a single
  child that is the classic blocking pair (a free seat, or someone ranked below them). This is
  the blocking coalition of Sun, Yamada, Takenami, Moriwaki and Yokoo's CP model (AAAI-24, as in
  the authors' public code) for families and positions of their list, without transfers. With an
  outside quota, P must also fit it: with S' the members counted against the quota of p and w'
  the lowest-ranked of them, ``|outsiders placed at p ranked above w', not in U| + |S'| <=
  outside_quota(p)``. An outcome that is not one of U's plans
  (possible only for an assignment given from outside) ranks below every plan.

Modes
-----
* ``"default"``: deferred acceptance over units. A unit proposes its plans from the top; a plan is
  accepted only if every member is admitted in its program under the rule above; accepting it
  pushes out the lowest-ranked holders of the programs that overflow, and a unit pushed out loses
  its whole plan (all members' seats are freed) and proposes again from the top of its list (so
  seats freed by a withdrawing group are offered again). With singles only this is exactly
  child-proposing deferred acceptance (the child-optimal stable matching). Sibling groups can
  make proposals cycle or leave instability, so the checker then runs and every unit that still
  blocks proposes again (resolution rounds, re-checking only units whose programs changed); if
  blocking coalitions remain, further runs with seeded shuffled orders follow, all within a work
  budget proportional to the number of units (``ATTEMPT_BUDGET``, ``TOTAL_BUDGET``), never a
  clock, so the same input always gives the same output. The matching with the fewest units in a
  blocking coalition (then the most children placed) is kept, and its blocking coalitions are
  all reported.
* ``"exact"``: OR-Tools CP-SAT (``allocation_exact``): minimise the number of blocking
  coalitions, then maximise the number of children placed, within ``time_limit`` seconds
  (model building included), starting from the default mode's answer. The result is never
  worse than the default mode's (fewer blocking coalitions, or as many and at least as many
  children placed). ``Result.status`` says whether each phase was proven
  optimal (``"OPTIMAL"`` only if both were).
"""

from __future__ import annotations

import itertools
import random
import time
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

AGE_CLASSES = (0, 1, 2, 3, 4, 5)
MAX_SPLIT_PLANS = 40
MAX_SPLIT_COMBINATIONS = 20_000  # split plans are drawn from at most this many combinations
RESOLUTION_ROUNDS = 30
STALE_ROUNDS = 5  # a run stops after this many resolution rounds without improvement
ATTEMPTS = 16  # deferred-acceptance runs at most (only while blocking coalitions remain)
ATTEMPT_BUDGET = 40  # admission tests per unit in one run
TOTAL_BUDGET = 80  # admission tests per unit over all runs


class SiblingRule(str, Enum):
    TOGETHER_PREFERRED = "together_preferred"  # 同一施設希望（別々でも可）
    TOGETHER_ONLY = "together_only"  # 同一施設でなければ辞退
    INDEPENDENT = "independent"  # 別々に調整


class Mode(str, Enum):
    DEFAULT = "default"
    EXACT = "exact"


@dataclass(frozen=True)
class Child:
    """One applicant. ``preferences`` are facility ids, best first (no repeats)."""

    id: str
    age_class: int
    municipality: str
    points: Decimal | int
    preferences: tuple[str, ...]
    tie_break: tuple[Any, ...] = ()
    sibling_group: str | None = None
    sibling_rule: SiblingRule = SiblingRule.TOGETHER_PREFERRED
    label: str = ""  # how explanations name this child to the parent, e.g. 「長女」; may be empty

    def __post_init__(self) -> None:
        object.__setattr__(self, "preferences", tuple(self.preferences))
        object.__setattr__(self, "tie_break", tuple(self.tie_break))


@dataclass(frozen=True)
class Facility:
    """``capacity``: seats offered by age class, a tuple of six ints for 0–5歳児 (a mapping
    ``{age: seats}`` is accepted and normalised). ``outside_quota``: of those seats, how many the
    facility's municipality offers to children of other municipalities, by age class (six ints or
    None, None meaning no separate limit for that class; a mapping is accepted); None for the
    whole facility: no limit in any class."""

    id: str
    municipality: str
    capacity: tuple[int, int, int, int, int, int]
    name: str = ""  # shown in explanations; 「第1希望の施設」 is used when empty
    residents_first: bool = False
    priority_order: tuple[str, ...] | None = None
    outside_quota: tuple[int | None, ...] | None = None

    def __post_init__(self) -> None:
        cap = self.capacity
        if isinstance(cap, Mapping):
            cap = tuple(cap.get(a, 0) for a in AGE_CLASSES)
        object.__setattr__(self, "capacity", tuple(cap))
        if self.priority_order is not None:
            object.__setattr__(self, "priority_order", tuple(self.priority_order))
        quota = self.outside_quota
        if isinstance(quota, Mapping):
            quota = tuple(quota.get(a) for a in AGE_CLASSES)
        if quota is not None:
            object.__setattr__(self, "outside_quota", tuple(quota))

    def quota(self, age: int) -> int | None:
        return None if self.outside_quota is None else self.outside_quota[age]


@dataclass(frozen=True)
class Instance:
    children: tuple[Child, ...]
    facilities: tuple[Facility, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "children", tuple(self.children))
        object.__setattr__(self, "facilities", tuple(self.facilities))

    def validate(self) -> None:
        """Raise ValueError with a Japanese message on the first inconsistency found."""
        fac_ids: set[str] = set()
        for f in self.facilities:
            if not isinstance(f.id, str) or not f.id:
                raise ValueError("施設の番号が空です。")
            if f.id in fac_ids:
                raise ValueError(f"施設の番号が重複しています（{f.id}）。")
            fac_ids.add(f.id)
            label = f.name or f.id
            if len(f.capacity) != len(AGE_CLASSES):
                raise ValueError(f"定員は0〜5歳児の6クラス分を指定してください（{label}）。")
            for a, seats in enumerate(f.capacity):
                if isinstance(seats, bool) or not isinstance(seats, int):
                    raise ValueError(f"定員は整数で指定してください（{label} {a}歳児）。")
                if seats < 0:
                    raise ValueError(f"定員に負の数は指定できません（{label} {a}歳児: {seats}）。")
            if f.outside_quota is not None:
                if len(f.outside_quota) != len(AGE_CLASSES):
                    raise ValueError(f"管外からの受入枠は0〜5歳児の6クラス分を指定してください（{label}）。")
                for a, seats in enumerate(f.outside_quota):
                    if seats is None:
                        continue
                    if isinstance(seats, bool) or not isinstance(seats, int):
                        raise ValueError(f"管外からの受入枠は整数で指定してください（{label} {a}歳児）。")
                    if seats < 0:
                        raise ValueError(f"管外からの受入枠に負の数は指定できません（{label} {a}歳児: {seats}）。")
        child_ids: set[str] = set()
        for c in self.children:
            if not isinstance(c.id, str) or not c.id:
                raise ValueError("申込みの番号が空です。")
            if c.id in child_ids:
                raise ValueError(f"申込みの番号が重複しています（{c.id}）。")
            child_ids.add(c.id)
            if isinstance(c.age_class, bool) or c.age_class not in AGE_CLASSES:
                raise ValueError(f"年齢クラスは0〜5歳児で指定してください（申込み {c.id}: {c.age_class}）。")
            if isinstance(c.points, bool) or not isinstance(c.points, (int, Decimal)):
                raise ValueError(f"指数は整数または10進数で指定してください（申込み {c.id}）。")
            if isinstance(c.points, Decimal) and not c.points.is_finite():
                raise ValueError(f"指数が数値ではありません（申込み {c.id}）。")
            seen: set[str] = set()
            for i, fid in enumerate(c.preferences, start=1):
                if fid not in fac_ids:
                    raise ValueError(f"希望施設に登録されていない施設があります（申込み {c.id} の第{i}希望: {fid}）。")
                if fid in seen:
                    raise ValueError(f"同じ施設を重ねて希望しています（申込み {c.id} の第{i}希望）。")
                seen.add(fid)
            if not isinstance(c.sibling_rule, SiblingRule):
                raise ValueError(f"きょうだいの取扱いの指定が正しくありません（申込み {c.id}）。")
        rules: dict[str, SiblingRule] = {}
        for c in self.children:
            if c.sibling_group is None:
                continue
            prev = rules.setdefault(c.sibling_group, c.sibling_rule)
            if prev != c.sibling_rule:
                raise ValueError(f"同じきょうだいの申込みで取扱いが食い違っています（きょうだい {c.sibling_group}）。")
        for f in self.facilities:
            if f.priority_order is not None:
                listed: set[str] = set()
                for cid in f.priority_order:
                    if cid not in child_ids:
                        raise ValueError(f"施設の選考順位に申込みのない番号があります（{f.name or f.id}: {cid}）。")
                    if cid in listed:
                        raise ValueError(f"施設の選考順位に同じ申込みが重複しています（{f.name or f.id}: {cid}）。")
                    listed.add(cid)


@dataclass(frozen=True)
class Placement:
    child_id: str
    facility_id: str | None
    rank: int | None  # 1-based rank in the child's own preference list; None when not placed
    reasons: tuple[str, ...]  # Japanese sentences for the parent, no ids


@dataclass(frozen=True)
class BlockingCoalition:
    child_ids: tuple[str, ...]  # one child, or the members of a sibling group that would move
    facility_id: str  # the facility of the preferred plan (the first member's, for a split plan)
    sibling_group: str | None
    displaced: tuple[str, ...]  # placed children who would lose their seat (empty: spare seats)
    placements: tuple[tuple[str, str], ...] = ()  # (child id, facility id) of the preferred plan


@dataclass(frozen=True)
class Cutoff:
    """The last admitted applicant of a program, for 「指数 xx の方までで定員に達しました」."""

    facility_id: str
    age_class: int
    capacity: int
    placed: int
    lowest_points: Decimal | int | None  # None when nobody placed
    full: bool
    outside_quota: int | None = None  # 管外受入枠 of the class (None: no separate limit)
    outside_placed: int = 0  # children of other municipalities placed in the class


@dataclass(frozen=True)
class Statistics:
    children: int
    placed: int
    unplaced: int
    by_rank: tuple[tuple[int, int], ...]  # (preference rank, children placed at that rank)
    sibling_groups: int
    siblings_together: int  # groups with every member at one facility
    siblings_split: int  # groups with members at different facilities or only some placed
    siblings_unplaced: int  # groups with no member placed
    blocking: int


@dataclass(frozen=True)
class Result:
    mode: str
    status: str  # "heuristic" (default mode), or CP-SAT's "OPTIMAL" / "FEASIBLE" / "UNKNOWN"
    placements: tuple[Placement, ...]  # in the order of Instance.children
    blocking: tuple[BlockingCoalition, ...]
    cutoffs: tuple[Cutoff, ...]
    stats: Statistics
    seconds: float
    detail: Mapping[str, Any] = field(default_factory=dict)  # mode-specific (bounds, phases)

    def assignment(self) -> dict[str, str | None]:
        return {p.child_id: p.facility_id for p in self.placements}

    def placement(self, child_id: str) -> Placement:
        for p in self.placements:
            if p.child_id == child_id:
                return p
        raise KeyError(child_id)


# ---------------------------------------------------------------------------------------------
# Preparation: indices, priority ranks, units and plans (shared by every mode and the checker)


@dataclass
class Unit:
    members: tuple[int, ...]  # child indices
    plans: list[tuple[int, ...]]  # per plan, a facility index (or -1) per member
    group: str | None
    rule: SiblingRule | None  # None for a single child (including members of INDEPENDENT groups)
    seats: list[list[tuple[int, int]]] = field(default_factory=list)  # per plan, (child, program)
    index: dict[tuple[int, ...], int] = field(default_factory=dict)
    # per plan, per program used: (program, facility, rank of the worst member there, members
    # there, rank of the worst member there counted against the outside quota, how many are)
    needs: list[list[tuple[int, int, int, int, int, int]]] = field(default_factory=list)


def _product(values: Any) -> int:
    out = 1
    for v in values:
        out *= v
    return out


class Prepared:
    """Integer view of an instance. Program id = facility index * 6 + age class."""

    def __init__(self, instance: Instance) -> None:
        instance.validate()
        self.instance = instance
        self.children = instance.children
        self.facilities = instance.facilities
        self.cidx = {c.id: i for i, c in enumerate(self.children)}
        self.fidx = {f.id: i for i, f in enumerate(self.facilities)}
        n = len(self.children)
        self.age = [c.age_class for c in self.children]
        self.prefs = [tuple(self.fidx[f] for f in c.preferences) for c in self.children]
        self.cap = [f.capacity[a] for f in self.facilities for a in AGE_CLASSES]
        self.quota: list[int | None] = [f.quota(a) for f in self.facilities for a in AGE_CLASSES]
        # counted[c]: the facilities where child c counts against an outside quota (its class has
        # one and the child lives elsewhere)
        self.counted: list[frozenset[int]] = [
            frozenset(fi for fi in self.prefs[c]
                      if self.quota[fi * 6 + self.age[c]] is not None
                      and self.children[c].municipality != self.facilities[fi].municipality)
            for c in range(n)]
        try:
            order = sorted(range(n), key=lambda i: (-self.children[i].points, self.children[i].tie_break,
                                                    self.children[i].id))
        except TypeError:
            raise ValueError("同点時の優先順位（tie_break）の値が申込みの間で比べられません。"
                             "すべての申込みで同じ形の値を指定してください。") from None
        glob = [0] * n
        for pos, i in enumerate(order):
            glob[i] = pos
        self.glob = glob
        # rank[c][fi]: priority position of child c at facility fi (smaller is better)
        self.rank: list[dict[int, int]] = [dict() for _ in range(n)]
        for c in range(n):
            for fi in self.prefs[c]:
                self.rank[c][fi] = self._rank(c, fi)
        # applicants per program, best first
        self.applicants: list[list[int]] = [[] for _ in self.cap]
        for c in range(n):
            for fi in self.prefs[c]:
                self.applicants[fi * 6 + self.age[c]].append(c)
        for p, lst in enumerate(self.applicants):
            lst.sort(key=lambda c, fi=p // 6: self.rank[c][fi])
        self.units: list[Unit] = []
        self.unit_of = [0] * n
        self._build_units()

    def _rank(self, c: int, fi: int) -> int:
        f = self.facilities[fi]
        n = len(self.children)
        base = self.glob[c]
        if f.residents_first and self.children[c].municipality != f.municipality:
            base += n
        if f.priority_order is not None:
            pos = self._explicit(fi).get(self.children[c].id)
            return pos if pos is not None else len(f.priority_order) + base
        return base

    def _explicit(self, fi: int) -> dict[str, int]:
        cache = self.__dict__.setdefault("_explicit_cache", {})
        if fi not in cache:
            cache[fi] = {cid: k for k, cid in enumerate(self.facilities[fi].priority_order or ())}
        return cache[fi]

    def _build_units(self) -> None:
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(self.children):
            if c.sibling_group is not None:
                groups.setdefault(c.sibling_group, []).append(i)
        done: set[str] = set()
        for i, c in enumerate(self.children):
            g = c.sibling_group
            if g is None or c.sibling_rule == SiblingRule.INDEPENDENT or len(groups[g]) == 1:
                self._add_unit(Unit((i,), [(fi,) for fi in self.prefs[i]], g, None))
                continue
            if g in done:
                continue
            done.add(g)
            members = tuple(groups[g])
            plans = self._together_plans(members)
            if c.sibling_rule == SiblingRule.TOGETHER_PREFERRED:
                plans += self._split_plans(members)
            self._add_unit(Unit(members, plans, g, c.sibling_rule))

    def _together_plans(self, members: tuple[int, ...]) -> list[tuple[int, ...]]:
        first = self.prefs[members[0]]
        joint = [fi for fi in first if all(fi in self.rank[m] for m in members)]
        pos = [{fi: k for k, fi in enumerate(self.prefs[m])} for m in members]

        def key(fi: int) -> tuple[int, int, int]:
            ranks = [p[fi] for p in pos]
            return (max(ranks), sum(ranks), pos[0][fi])

        return [tuple(fi for _ in members) for fi in sorted(joint, key=key)]

    def _split_plans(self, members: tuple[int, ...]) -> list[tuple[int, ...]]:
        options = [list(range(len(self.prefs[m]))) + [-1] for m in members]
        while _product(len(o) for o in options) > MAX_SPLIT_COMBINATIONS:
            longest = max(range(len(options)), key=lambda i: len(options[i]))
            del options[longest][-2]  # a large family: drop its members' lowest preferences from split plans
        combos = []
        for ranks in itertools.product(*options):
            placed = [r for r in ranks if r >= 0]
            if not placed:
                continue
            facs = tuple(self.prefs[m][r] if r >= 0 else -1 for m, r in zip(members, ranks))
            if len(placed) == len(members) and len(set(facs)) == 1:
                continue  # a together plan
            missing = len(members) - len(placed)
            combos.append(((missing, sum(placed), tuple(r if r >= 0 else 99 for r in ranks)), facs))
        combos.sort()
        return [facs for _, facs in combos[:MAX_SPLIT_PLANS]]

    def _add_unit(self, unit: Unit) -> None:
        u = len(self.units)
        for k, plan in enumerate(unit.plans):
            seats = [(m, fi * 6 + self.age[m]) for m, fi in zip(unit.members, plan) if fi >= 0]
            unit.seats.append(seats)
            unit.index.setdefault(plan, k)
            if len(seats) == 1:
                m, p = seats[0]
                r = self.rank[m][p // 6]
                out = p // 6 in self.counted[m]
                unit.needs.append([(p, p // 6, r, 1, r if out else -1, 1 if out else 0)])
                continue
            by: dict[int, list[int]] = {}
            for m, p in seats:
                by.setdefault(p, []).append(m)
            needs = []
            for p, S in sorted(by.items()):
                fi = p // 6
                outs = [m for m in S if fi in self.counted[m]]
                needs.append((p, fi, max(self.rank[m][fi] for m in S), len(S),
                              max((self.rank[m][fi] for m in outs), default=-1), len(outs)))
            unit.needs.append(needs)
        self.units.append(unit)
        for m in unit.members:
            self.unit_of[m] = u

    def units_using(self, p: int) -> list[int]:
        """Units with at least one plan seating a member in program p."""
        if not hasattr(self, "_using"):
            using: list[set[int]] = [set() for _ in self.cap]
            for u, unit in enumerate(self.units):
                for seats in unit.seats:
                    for _, q in seats:
                        using[q].add(u)
            self._using = [sorted(x) for x in using]
        return self._using[p]

    def plan_groups(self, u: int, k: int) -> list[tuple[int, list[int]]]:
        """(program, members of unit u that plan k puts there), in program order."""
        by: dict[int, list[int]] = {}
        for m, p in self.units[u].seats[k]:
            by.setdefault(p, []).append(m)
        return sorted(by.items())

    def current_plan(self, u: int, assign: Sequence[int]) -> int:
        unit = self.units[u]
        facs = tuple(assign[m] for m in unit.members)
        if all(f < 0 for f in facs):
            return len(unit.plans)
        return unit.index.get(facs, len(unit.plans))


class Board:
    """Who holds which seat: per program a sorted list of (rank, child), and the same list of the
    children counted against the program's outside quota (``held_out``)."""

    def __init__(self, prep: Prepared, assign: Sequence[int] | None = None) -> None:
        self.prep = prep
        self.held: list[list[tuple[int, int]]] = [[] for _ in prep.cap]
        self.held_out: list[list[tuple[int, int]]] = [[] for _ in prep.cap]
        self.assign = [-1] * len(prep.children)
        self.tests = 0
        if assign is not None:
            for c, fi in enumerate(assign):
                if fi >= 0:
                    self.seat(c, fi)

    def seat(self, c: int, fi: int) -> None:
        p = fi * 6 + self.prep.age[c]
        entry = (self.prep.rank[c][fi], c)
        insort(self.held[p], entry)
        if fi in self.prep.counted[c]:
            insort(self.held_out[p], entry)
        self.assign[c] = fi

    def unseat(self, c: int) -> None:
        fi = self.assign[c]
        if fi < 0:
            return
        p = fi * 6 + self.prep.age[c]
        entry = (self.prep.rank[c][fi], c)
        lst = self.held[p]
        del lst[bisect_left(lst, entry)]
        if fi in self.prep.counted[c]:
            lst = self.held_out[p]
            del lst[bisect_left(lst, entry)]
        self.assign[c] = -1

    def over(self, p: int) -> int:
        """A child to push out of program p because it holds more than it may (the lowest-ranked
        outsider while the outside quota is exceeded, then the lowest-ranked holder while the
        class is over capacity), or -1."""
        prep = self.prep
        quota = prep.quota[p]
        if quota is not None and len(self.held_out[p]) > quota:
            return self.held_out[p][-1][1]
        if len(self.held[p]) > prep.cap[p]:
            return self.held[p][-1][1]
        return -1

    def admits(self, u: int, k: int) -> bool:
        """Would every member of unit u be admitted under plan k (the blocking rule)?"""
        self.tests += 1
        prep = self.prep
        unit = prep.units[u]
        members = unit.members
        held = self.held
        cap = prep.cap
        for p, fi, worst, n, worst_out, n_out in unit.needs[k]:
            above = bisect_left(held[p], (worst, -1))
            if len(members) > 1:
                age = p % 6
                for m in members:
                    if self.assign[m] == fi and prep.age[m] == age and prep.rank[m][fi] < worst:
                        above -= 1
            if above + n > cap[p]:
                return False
            if n_out:
                above = bisect_left(self.held_out[p], (worst_out, -1))
                if len(members) > 1:
                    age = p % 6
                    for m in members:
                        if (self.assign[m] == fi and prep.age[m] == age and prep.rank[m][fi] < worst_out
                                and fi in prep.counted[m]):
                            above -= 1
                if above + n_out > prep.quota[p]:
                    return False
        return True

    def displaced(self, u: int, k: int) -> list[int]:
        """The placed children who would lose their seat if unit u took plan k: each program
        admits, in its priority order, while the class has room and (for an outsider) the outside
        quota has room."""
        prep = self.prep
        members = set(prep.units[u].members)
        out: list[int] = []
        for p, S in prep.plan_groups(u, k):
            fi = p // 6
            quota = prep.quota[p]
            candidates = sorted([e for e in self.held[p] if e[1] not in members]
                                + [(prep.rank[m][fi], m) for m in S])
            taken = taken_out = 0
            for _, c in candidates:
                outsider = fi in prep.counted[c]
                if taken < prep.cap[p] and not (outsider and quota is not None and taken_out >= quota):
                    taken += 1
                    taken_out += outsider
                elif c not in members:
                    out.append(c)
        return out


def _blocking(prep: Prepared, board: Board, first_only: bool = False) -> list[tuple[int, int]]:
    """(unit, plan) pairs that block the board's matching, units in order, plans best first."""
    out: list[tuple[int, int]] = []
    for u in range(len(prep.units)):
        cur = prep.current_plan(u, board.assign)
        for k in range(cur):
            if board.admits(u, k):
                out.append((u, k))
                if first_only:
                    break
    return out


def _attempt(prep: Prepared, order: list[int], budget: int, rng: random.Random | None
             ) -> tuple[list[int], int, int, list[int]]:
    """One run of deferred acceptance over units, then blocking resolution rounds (each round
    re-checks only the units with a plan in a program whose holders changed). Returns the best
    matching seen: (assignment, units with a blocking coalition, work done, that count by round).
    ``budget`` bounds the work (admission tests) so that the run ends even when proposals cycle."""
    board = Board(prep)
    units = prep.units
    cur: list[int | None] = [None] * len(units)
    dirty: set[int] = set()

    def process(queue: deque[int]) -> None:
        queued = set(queue)
        while queue and board.tests < budget:
            u = queue.popleft()
            queued.discard(u)
            unit = units[u]
            limit = cur[u] if cur[u] is not None else len(unit.plans)
            for k in range(limit):
                if not board.admits(u, k):
                    continue
                for m in unit.members:
                    if board.assign[m] >= 0:
                        dirty.add(board.assign[m] * 6 + prep.age[m])
                    board.unseat(m)
                touched = []
                for m, fi in zip(unit.members, unit.plans[k]):
                    if fi >= 0:
                        board.seat(m, fi)
                        touched.append(fi * 6 + prep.age[m])
                cur[u] = k
                dirty.update(touched)
                bumped = []
                for p in touched:
                    while (c := board.over(p)) >= 0:
                        v = prep.unit_of[c]
                        for m in units[v].members:
                            if board.assign[m] >= 0:
                                dirty.add(board.assign[m] * 6 + prep.age[m])
                            board.unseat(m)
                        cur[v] = None
                        if v not in queued:
                            bumped.append(v)
                            queued.add(v)
                if rng is not None:
                    rng.shuffle(bumped)
                queue.extend(bumped)
                break

    def blocks(u: int) -> bool:
        for k in range(prep.current_plan(u, board.assign)):
            if board.admits(u, k):
                return True
        return False

    process(deque(order))
    blocked = {u for u in range(len(units)) if blocks(u)}
    best: tuple[list[int], tuple[int, int]] | None = None
    history = []
    stale = 0
    for _ in range(RESOLUTION_ROUNDS):
        placed = sum(1 for a in board.assign if a >= 0)
        history.append(len(blocked))
        if best is None or (len(blocked), -placed) < best[1]:
            best = (list(board.assign), (len(blocked), -placed))
            stale = 0
        else:
            stale += 1
        if not blocked or board.tests >= budget or stale >= STALE_ROUNDS:
            break
        again = sorted(blocked)
        if rng is not None:
            rng.shuffle(again)
        dirty.clear()
        process(deque(again))
        candidates = set(again)
        for p in dirty:
            candidates.update(prep.units_using(p))
        for u in sorted(candidates):
            if blocks(u):
                blocked.add(u)
            else:
                blocked.discard(u)
    assert best is not None
    return best[0], best[1][0], board.tests, history


def _deferred_acceptance(prep: Prepared) -> tuple[list[int], dict[str, Any]]:
    """Attempt 0 processes units in input order. Sibling groups can make proposals cycle; when
    the result still has blocking coalitions, further attempts with seeded shuffled orders run
    (same input → same output) within a work budget proportional to the number of units, and
    the best matching (fewest units in a blocking coalition, then most children placed) is kept."""
    n_units = len(prep.units)
    order = list(range(n_units))
    best = None
    attempts = []
    total = 0
    for attempt in range(ATTEMPTS):
        rng = None if attempt == 0 else random.Random(attempt)
        if rng is not None:
            rng.shuffle(order)
        left = TOTAL_BUDGET * (n_units + 1) - total
        assign, blocking, work, history = _attempt(prep, list(order),
                                                   min(left, ATTEMPT_BUDGET * (n_units + 1)), rng)
        total += work
        placed = sum(1 for a in assign if a >= 0)
        attempts.append({"blocking_units": blocking, "placed": placed, "tests": work,
                         "blocking_by_round": history})
        if best is None or (blocking, -placed) < best[1]:
            best = (assign, (blocking, -placed))
        if blocking == 0 or total >= TOTAL_BUDGET * (n_units + 1):
            break
    assert best is not None
    return best[0], {"attempts": attempts, "tests": total}


# ---------------------------------------------------------------------------------------------
# Public functions


def _assignment_vector(prep: Prepared, assignment: Mapping[str, str | None]) -> list[int]:
    vec = [-1] * len(prep.children)
    for cid, fid in assignment.items():
        if cid not in prep.cidx:
            raise ValueError(f"割当てに申込みのない番号があります（{cid}）。")
        if fid is None:
            continue
        if fid not in prep.fidx:
            raise ValueError(f"割当てに登録されていない施設があります（{fid}）。")
        c = prep.cidx[cid]
        if prep.fidx[fid] not in prep.rank[c]:
            raise ValueError(f"希望していない施設への割当てがあります（申込み {cid}）。")
        vec[c] = prep.fidx[fid]
    return vec


def _coalitions(prep: Prepared, board: Board) -> tuple[BlockingCoalition, ...]:
    out = []
    for u, k in _blocking(prep, board):
        unit = prep.units[u]
        plan = [(prep.children[m].id, prep.facilities[fi].id)
                for m, fi in zip(unit.members, unit.plans[k]) if fi >= 0]
        out.append(BlockingCoalition(
            child_ids=tuple(cid for cid, _ in plan), facility_id=plan[0][1], sibling_group=unit.group,
            displaced=tuple(prep.children[c].id for c in board.displaced(u, k)),
            placements=tuple(plan)))
    return tuple(out)


def find_blocking(instance: Instance,
                  assignment: Mapping[str, str | None]) -> tuple[BlockingCoalition, ...]:
    """Every blocking coalition (unit, preferred plan) of an assignment child id → facility id
    or None (children missing from the mapping are unplaced)."""
    prep = Prepared(instance)
    board = Board(prep, _assignment_vector(prep, assignment))
    return _coalitions(prep, board)


def _cutoffs(prep: Prepared, board: Board) -> tuple[Cutoff, ...]:
    out = []
    for p, cap in enumerate(prep.cap):
        held = board.held[p]
        if cap == 0 and not prep.applicants[p]:
            continue
        lowest = prep.children[held[-1][1]].points if held else None
        out.append(Cutoff(prep.facilities[p // 6].id, p % 6, cap, len(held), lowest, len(held) >= cap,
                          prep.quota[p], len(board.held_out[p])))
    return tuple(out)


def _stats(prep: Prepared, assign: Sequence[int], blocking: int) -> Statistics:
    placed = 0
    by_rank: dict[int, int] = {}
    for c, fi in enumerate(assign):
        if fi >= 0:
            placed += 1
            r = prep.prefs[c].index(fi) + 1
            by_rank[r] = by_rank.get(r, 0) + 1
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(prep.children):
        if c.sibling_group is not None:
            groups.setdefault(c.sibling_group, []).append(i)
    together = split = none = 0
    for members in groups.values():
        if len(members) < 2:
            continue
        facs = [assign[m] for m in members]
        if all(f < 0 for f in facs):
            none += 1
        elif all(f >= 0 for f in facs) and len(set(facs)) == 1:
            together += 1
        else:
            split += 1
    return Statistics(
        children=len(assign), placed=placed, unplaced=len(assign) - placed,
        by_rank=tuple(sorted(by_rank.items())), sibling_groups=together + split + none,
        siblings_together=together, siblings_split=split, siblings_unplaced=none, blocking=blocking)


def summarise(instance: Instance, assignment: Mapping[str, str | None],
              blocking: Sequence[BlockingCoalition] | None = None) -> Statistics:
    """Statistics of an assignment (the blocking count is computed when not given)."""
    prep = Prepared(instance)
    vec = _assignment_vector(prep, assignment)
    if blocking is None:
        blocking = _coalitions(prep, Board(prep, vec))
    return _stats(prep, vec, len(blocking))


def explain(instance: Instance, assignment: Mapping[str, str | None]) -> dict[str, tuple[str, ...]]:
    """Japanese reasons per child id for an assignment (used by :func:`allocate`; callable on its
    own for a frozen, published result)."""
    from kiban.modules.childcare.explain import explain_all

    prep = Prepared(instance)
    board = Board(prep, _assignment_vector(prep, assignment))
    return explain_all(prep, board)


def finish(prep: Prepared, assign: Sequence[int], *, mode: str, status: str, started: float,
           detail: Mapping[str, Any]) -> Result:
    """Build a :class:`Result` from an assignment vector (shared by every mode)."""
    from kiban.modules.childcare.explain import explain_all

    board = Board(prep, assign)
    blocking = _coalitions(prep, board)
    reasons = explain_all(prep, board)
    placements = []
    for c, child in enumerate(prep.children):
        fi = board.assign[c]
        placements.append(Placement(
            child_id=child.id, facility_id=prep.facilities[fi].id if fi >= 0 else None,
            rank=prep.prefs[c].index(fi) + 1 if fi >= 0 else None, reasons=reasons[child.id]))
    return Result(mode=mode, status=status, placements=tuple(placements), blocking=blocking,
                  cutoffs=_cutoffs(prep, board), stats=_stats(prep, board.assign, len(blocking)),
                  seconds=time.perf_counter() - started, detail=dict(detail))


def allocate(instance: Instance, *, mode: Mode | str = Mode.DEFAULT,
             time_limit: float = 60.0, workers: int = 2) -> Result:
    """Validate, allocate, check for blocking coalitions and explain every outcome.

    ``mode``: ``"default"`` (deferred acceptance with siblings) or ``"exact"`` (CP-SAT,
    ``time_limit`` seconds in all, ``workers`` search threads). Raises ValueError (Japanese
    message) on invalid input.
    """
    try:
        mode = Mode(mode)
    except ValueError:
        raise ValueError(f"調整方式の指定が正しくありません（{mode}）。") from None
    if not time_limit or time_limit <= 0:
        raise ValueError("計算の制限時間は正の秒数で指定してください。")
    started = time.perf_counter()
    prep = Prepared(instance)
    assign, detail = _deferred_acceptance(prep)
    if mode == Mode.DEFAULT:
        return finish(prep, assign, mode=mode.value, status="heuristic", started=started, detail=detail)
    from kiban.modules.childcare.allocation_exact import solve_exact

    remaining = max(1.0, time_limit - (time.perf_counter() - started))
    exact_assign, status, exact_detail = solve_exact(prep, assign, time_limit=remaining, workers=workers)
    return finish(prep, exact_assign, mode=mode.value, status=status, started=started,
                  detail={"default": detail, **exact_detail})


__all__ = [
    "AGE_CLASSES", "BlockingCoalition", "Child", "Cutoff", "Facility", "Instance", "Mode",
    "Placement", "Result", "SiblingRule", "Statistics", "allocate", "explain", "find_blocking",
    "summarise",
]
