"""Exact mode of the allocation engine on OR-Tools CP-SAT (issue #14 item 4).

Lexicographic objective, in two solver phases sharing one model:

0. when the default mode's answer has blocking coalitions: local repair — units far from them
   keep their plans and the neighbourhood (200, then 1,000, then 4,000 units) is solved for
   fewest blocking coalitions over the whole instance (at most half the time limit);
1. minimise the number of blocking coalitions (unit, preferred plan) — skipped once a matching
   without any is in hand (0 is then optimal, by construction);
2. keeping at most that many, maximise the number of children placed.

Every candidate is re-checked with the engine's own checker, and the best one (fewest blocking
coalitions, then most children placed) is returned, so the exact mode is never worse than the
default mode's answer it started from.

Model (units, plans, programs and the blocking rule are those of ``allocation``):

* ``y[u,k]`` — unit u gets plan k (at most one plan per unit). Plans that cannot fit (more
  members in one class than its capacity) get no variable.
* ``P[p,i]`` — prefix counts: children placed in program p among its i best-ranked applicants.
  ``P[p,i] = P[p,i-1] + x[A_p[i-1], p]`` where ``x[c,p]`` is the sum of the ``y`` of the plans
  seating c in p; the domain ``0..capacity(p)`` of the last prefix is the capacity constraint.
  This keeps the model linear in the number of (child, preference) pairs, where the textbook
  stability constraint sums over every higher-ranked applicant (quadratic; see
  bench/_allocation_reference.py, which does it that way on purpose to cross-check).
* ``Q[p,i]`` — the same prefix counts over the applicants of p counted against its outside quota
  (管外受入枠: children of other municipalities, when the class has one); the domain
  ``0..outside_quota(p)`` of the last is the quota constraint.
* ``alpha[u,k] = sum_{j<=k} y[u,j]`` — u has plan k or better.
* ``beta[u,k]`` — counted blocking coalition. With, per program p of plan k, S the members seated
  there, w the worst of them and ``above = P[p,pos(w)] - (members of u ranked above w seated in p)``:
  if ``above + |S| <= capacity(p)`` for every p of the plan, then ``alpha[u,k] + beta[u,k] >= 1``.
  One program: ``(cap-|S|+1)(alpha+beta) + above >= cap-|S|+1``; several: one literal per
  program ``e => above >= cap-|S|+1`` and ``alpha + beta + sum(e) >= 1``. The outside quota adds,
  for a program where members S' count against it (w' the worst of them), one more way of not
  being admitted: ``above' >= quota-|S'|+1`` with ``above'`` read from ``Q`` as ``above`` from ``P``
  — the same rule as the engine's checker.

Minimising ``sum(beta)`` makes ``beta`` exactly the blocking indicator, so the phase-1 optimum is
the minimum number of blocking coalitions over all feasible matchings; the final matching is
re-checked by ``allocation.find_blocking``'s checker in any case.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from ortools.sat.python import cp_model

LNS_SIZES = (200, 1000, 4000)  # units freed around the blocking coalitions, round by round
LNS_SECONDS = 20.0  # at most per round

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kiban.modules.childcare.allocation import Prepared


class _Model:
    def __init__(self, prep: Prepared) -> None:
        self.prep = prep
        m = self.m = cp_model.CpModel()
        units = prep.units
        self.y: dict[tuple[int, int], cp_model.IntVar] = {}
        self.xterms: dict[tuple[int, int], list[cp_model.IntVar]] = {}
        self.size: dict[tuple[int, int], int] = {}
        for u, unit in enumerate(units):
            vs = []
            for k in range(len(unit.plans)):
                groups = prep.plan_groups(u, k)
                if any(len(S) > prep.cap[p] for p, S in groups):
                    continue
                if any(prep.quota[p] is not None and sum(1 for c in S if p // 6 in prep.counted[c]) > prep.quota[p]
                       for p, S in groups):
                    continue
                v = m.NewBoolVar(f"y{u}_{k}")
                self.y[u, k] = v
                self.size[u, k] = len(unit.seats[k])
                vs.append(v)
                for c, p in unit.seats[k]:
                    self.xterms.setdefault((c, p), []).append(v)
            if len(vs) > 1:
                m.AddAtMostOne(vs)
        # prefix counts per program
        self.pos: list[dict[int, int]] = []
        self.P: list[list[Any]] = []
        for p, appl in enumerate(prep.applicants):
            self.pos.append({c: i for i, c in enumerate(appl)})
            self.P.append(self._prefix_counts(p, appl, prep.cap[p], "P"))
        # prefix counts over the applicants counted against an outside quota
        self.pos_out: list[dict[int, int]] = []
        self.Q: list[list[Any]] = []
        for p, appl in enumerate(prep.applicants):
            quota = prep.quota[p]
            outs = [c for c in appl if p // 6 in prep.counted[c]] if quota is not None else []
            self.pos_out.append({c: i for i, c in enumerate(outs)})
            self.Q.append(self._prefix_counts(p, outs, quota or 0, "Q"))
        # blocking indicators
        self.beta: dict[tuple[int, int], cp_model.IntVar] = {}
        self.e: dict[tuple[int, int, int, str], cp_model.IntVar] = {}
        self.alpha_terms: dict[tuple[int, int], list[Any]] = {}
        for u, unit in enumerate(units):
            running: list[Any] = []
            member_set = unit.members
            for k in range(len(unit.plans)):
                if (u, k) in self.y:
                    running = running + [self.y[u, k]]
                else:
                    continue  # an impossible plan can never block
                alpha = sum(running)
                conds = []
                for p, S in prep.plan_groups(u, k):
                    cap = prep.cap[p]
                    fi = p // 6
                    w = max(S, key=lambda c: prep.rank[c][fi])
                    wpos = self.pos[p][w]
                    need = cap - len(S) + 1  # "above >= need" means u is not admitted in p
                    own = [t for mm in member_set if mm in self.pos[p] and self.pos[p][mm] < wpos
                           for t in self.xterms.get((mm, p), [])]
                    above = self.P[p][wpos] - sum(own) if own else self.P[p][wpos]
                    if not (isinstance(above, int) and above < need):  # else always admitted by the class
                        conds.append(((p, "cap"), need, above))
                    outs = [c for c in S if fi in prep.counted[c]]
                    if outs:
                        w = max(outs, key=lambda c: prep.rank[c][fi])
                        wpos = self.pos_out[p][w]
                        need = prep.quota[p] - len(outs) + 1
                        own = [t for mm in member_set if mm in self.pos_out[p] and self.pos_out[p][mm] < wpos
                               for t in self.xterms.get((mm, p), [])]
                        above = self.Q[p][wpos] - sum(own) if own else self.Q[p][wpos]
                        if not (isinstance(above, int) and above < need):
                            conds.append(((p, "out"), need, above))
                b = m.NewBoolVar(f"b{u}_{k}")
                self.beta[u, k] = b
                if not conds:
                    m.Add(alpha + b >= 1)
                elif len(conds) == 1:
                    _, need, above = conds[0]
                    m.Add(need * (alpha + b) + above >= need)
                else:
                    lits = []
                    for (p, kind), need, above in conds:
                        ev = m.NewBoolVar(f"e{u}_{k}_{p}_{kind}")
                        m.Add(above >= need).OnlyEnforceIf(ev)
                        self.e[u, k, p, kind] = ev
                        lits.append(ev)
                    m.Add(alpha + b + sum(lits) >= 1)
        self.blocking = sum(self.beta.values())
        self.placed = sum(self.size[key] * v for key, v in self.y.items())

    def _prefix_counts(self, p: int, applicants: Sequence[int], bound: int, prefix: str) -> list[Any]:
        """For program ``p``: chain[i] = how many of ``applicants[:i]`` are placed there, each a
        variable bounded by ``bound`` (an applicant with no assignment variable repeats the last)."""
        chain: list[Any] = [0]
        for i, c in enumerate(applicants):
            terms = self.xterms.get((c, p), [])
            if not terms:
                chain.append(chain[-1])
                continue
            v = self.m.NewIntVar(0, min(i + 1, bound), f"{prefix}{p}_{i + 1}")
            self.m.Add(v == chain[-1] + sum(terms))
            chain.append(v)
        return chain

    def hint(self, assign: Sequence[int]) -> None:
        from kiban.modules.childcare.allocation import Board

        prep = self.prep
        m = self.m
        m.ClearHints()
        board = Board(prep, assign)
        chosen = {}
        for u in range(len(prep.units)):
            chosen[u] = prep.current_plan(u, assign)
        for (u, k), v in self.y.items():
            m.AddHint(v, 1 if chosen[u] == k else 0)
        for chains, applicants in ((self.P, prep.applicants), (self.Q, [list(pos) for pos in self.pos_out])):
            for p, chain in enumerate(chains):
                count = 0
                for i, c in enumerate(applicants[p]):
                    if assign[c] == p // 6:
                        count += 1
                    var = chain[i + 1]
                    if not isinstance(var, int) and (i == 0 or var is not chain[i]):
                        m.AddHint(var, count)
        for (u, k), b in self.beta.items():
            m.AddHint(b, 1 if k < chosen[u] and board.admits(u, k) else 0)
        for (u, k, p, kind), ev in self.e.items():
            fi = p // 6
            S = [mm for mm, q in prep.units[u].seats[k] if q == p]
            if kind == "out":
                S = [mm for mm in S if fi in prep.counted[mm]]
            held, limit = (board.held_out[p], prep.quota[p]) if kind == "out" else (board.held[p], prep.cap[p])
            worst = max(prep.rank[mm][fi] for mm in S)
            above = bisect_left(held, (worst, -1)) - sum(
                1 for mm in prep.units[u].members
                if assign[mm] == fi and prep.age[mm] == p % 6 and prep.rank[mm][fi] < worst
                and (kind == "cap" or fi in prep.counted[mm]))
            m.AddHint(ev, 1 if above + len(S) > limit else 0)

    def read(self, solver: cp_model.CpSolver) -> list[int]:
        prep = self.prep
        assign = [-1] * len(prep.children)
        for (u, k), v in self.y.items():
            if solver.BooleanValue(v):
                for mm, fi in zip(prep.units[u].members, prep.units[u].plans[k]):
                    if fi >= 0:
                        assign[mm] = fi
        return assign


def _neighbourhood(prep: Prepared, assign: Sequence[int], size: int) -> list[int]:
    """Units to free around the blocking coalitions of ``assign``: the blocking units, then the
    units that hold or want seats in the programs involved, breadth first, at most ``size``."""
    from kiban.modules.childcare.allocation import Board, _blocking

    board = Board(prep, assign)
    chosen: dict[int, None] = {}
    programs: list[int] = []
    for u, k in _blocking(prep, board):
        chosen.setdefault(u, None)
        programs.extend(p for _, p in prep.units[u].seats[k])
    seen: set[int] = set()
    while programs and len(chosen) < size:
        nxt: list[int] = []
        for p in programs:
            if p in seen:
                continue
            seen.add(p)
            for u in prep.units_using(p):
                if len(chosen) >= size:
                    break
                if u not in chosen:
                    chosen[u] = None
                    for m in prep.units[u].members:
                        if assign[m] >= 0:
                            nxt.append(assign[m] * 6 + prep.age[m])
        programs = nxt
    return sorted(chosen)


def _local_repair(model: _Model, start: list[int], deadline: float, workers: int,
                  score: Any) -> tuple[list[int], list[dict[str, Any]]]:
    """Large-neighbourhood repair before the global phases: every unit outside a neighbourhood of
    the blocking coalitions keeps its plan, the rest is solved exactly for fewest blocking
    coalitions (counted over the whole instance), for growing neighbourhoods. Proves nothing
    globally; it finds stable matchings fast when the instability is local."""
    prep = model.prep
    best = start
    log: list[dict[str, Any]] = []
    for size in LNS_SIZES:
        if score(best)[0] == 0 or time.perf_counter() >= deadline:
            break
        free = set(_neighbourhood(prep, best, size))
        local = model.m.clone()
        current = {u: prep.current_plan(u, best) for u in range(len(prep.units))}
        for (u, k), v in model.y.items():
            if u not in free:
                local.Add(local.get_bool_var_from_proto_index(v.index) == (1 if current[u] == k else 0))
        local.Minimize(sum(local.get_bool_var_from_proto_index(b.index) for b in model.beta.values()))
        s = _solver(min(deadline - time.perf_counter(), LNS_SECONDS), workers)
        st = s.Solve(local)
        entry: dict[str, Any] = {"units": len(free), "status": s.StatusName(st)}
        if st in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            cand = model.read(s)
            entry["blocking"] = score(cand)[0]
            best = min((best, cand), key=score)
        log.append(entry)
    return best, log


def _solver(limit: float, workers: int) -> cp_model.CpSolver:
    s = cp_model.CpSolver()
    s.parameters.max_time_in_seconds = max(0.5, limit)
    s.parameters.num_workers = max(1, workers)
    s.parameters.random_seed = 0
    return s


def solve_exact(prep: Prepared, start: Sequence[int], *, time_limit: float,
                workers: int = 2) -> tuple[list[int], str, dict[str, Any]]:
    """Return (assignment vector, status, detail). ``start`` is the default mode's answer."""
    from kiban.modules.childcare.allocation import Board, _blocking

    t0 = time.perf_counter()
    model = _Model(prep)
    built = time.perf_counter() - t0
    deadline = t0 + time_limit
    start_blocking = len(_blocking(prep, Board(prep, start)))
    start_placed = sum(1 for a in start if a >= 0)
    detail: dict[str, Any] = {"build_seconds": round(built, 3), "start_blocking": start_blocking,
                              "start_placed": start_placed,
                              "variables": len(model.m.Proto().variables),
                              "constraints": len(model.m.Proto().constraints)}
    best = list(start)

    def score(assign: list[int]) -> tuple[int, int]:
        """Checked again outside the model: (blocking coalitions, -children placed)."""
        return len(_blocking(prep, Board(prep, assign))), -sum(1 for a in assign if a >= 0)

    if start_blocking > 0:
        model.hint(best)
        best, detail["local_repair"] = _local_repair(model, best, t0 + time_limit / 2, workers, score)
    # phase 1: fewest blocking coalitions
    if score(best)[0] == 0:
        bound, status1 = 0, "OPTIMAL"
    else:
        model.hint(best)
        model.m.Minimize(model.blocking)
        s = _solver((deadline - time.perf_counter()) / 2, workers)
        st = s.Solve(model.m)
        status1 = s.StatusName(st)
        if st in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            best = min((best, model.read(s)), key=score)
            bound = min(int(round(s.ObjectiveValue())), score(best)[0])
            detail["phase1_bound"] = int(round(s.BestObjectiveBound()))
        else:
            bound = score(best)[0]
    detail["phase1_status"] = status1
    detail["blocking_bound"] = bound
    # phase 2: most children placed, blocking coalitions kept at the phase-1 level
    model.m.Add(model.blocking <= max(bound, 0))
    model.hint(best)
    model.m.Maximize(model.placed)
    remaining = deadline - time.perf_counter()
    status2 = "UNKNOWN"
    if remaining > 0.2:
        s = _solver(remaining, workers)
        st = s.Solve(model.m)
        status2 = s.StatusName(st)
        if st in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            best = min((best, model.read(s)), key=score)
            detail["phase2_bound"] = int(round(s.BestObjectiveBound()))
    detail["phase2_status"] = status2
    if status1 == "OPTIMAL" and status2 == "OPTIMAL":
        status = "OPTIMAL"
    elif status2 in ("OPTIMAL", "FEASIBLE") or status1 in ("OPTIMAL", "FEASIBLE"):
        status = "FEASIBLE"
    else:
        status = "UNKNOWN"
    detail["solve_seconds"] = round(time.perf_counter() - t0, 3)
    return best, status, detail
