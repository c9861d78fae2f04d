"""Reference CP-SAT model for bench/allocation.py, written from Sun et al.'s published CP formulation.

Source, stated plainly: issue #14 names "Sun et al., AAAI-24 (Daycare Matching in Japan: Transfers
and Siblings)". That title is Sun, Takenami, Moriwaki, Tomita and Yokoo's AAAI-23 paper
(arXiv:2212.02751, an integer-programming algorithm); their AAAI-24 paper is "Stable Matchings in
Practice: A Constraint Programming Approach" (Sun, Yamada, Takenami, Moriwaki, Yokoo;
arXiv:2401.07761), which is the CP-SAT model. Neither paper could be read here (no internet).
This file follows the AAAI-24 CP model as implemented in the authors' public code
(github.com/CyberAgentAILab/DaycareCP, ``CP_algo.py``, read through the code-search index), written
anew for this instance format. Its variables and constraints, with families = our units and
positions of a family's list = our plans:

* ``xfp[f,p]`` family f gets position p; ``sum_p xfp[f,p] <= 1``.
* ``xcd[c,d] = sum of xfp[f,p]`` over the positions p that give child c daycare d.
* ``alpha[f,p] = sum_{k<=p} xfp[f,k]`` (f gets p or better).
* ``gamma[f,p,d,g]`` ⇔ ``sum_{c' better than c*, not in f} xcd[c',d] + n(f,p,d,g) <= capacity(d,g)``,
  where n is the number of f's children position p sends to daycare d in age class g and c* the
  lowest-priority of them (both directions channelled, as in the original); ``gamma[f,p,d]`` ⇔ all
  ages; ``gamma[f,p]`` ⇔ all daycares of the position.
* ``beta[f,p] = 0`` if ``alpha[f,p]``, else ``beta[f,p] = gamma[f,p]`` — a blocking coalition.
* ``sum_{c in class g of d} xcd[c,d] <= capacity(d,g)``.

Objective as in the public code: ``sum beta <= bp_num`` with ``bp_num = 0`` (a stable matching)
and maximise the number of matched children. Only when CP-SAT proves that no stable matching
exists does this file go on as the paper describes its algorithm: minimise ``sum beta``, then,
with ``sum beta`` at most that minimum, maximise the number of matched children. Differences from the original, on
purpose: no transfers (no child is initially enrolled, so no family is forced to be matched),
strict priorities (ties are already broken by the municipality's tie-break, so the original's
handling of weak priorities is not needed), no solution hint (the model runs on its own), and
the sums over higher-priority children are written out in full — quadratic, unlike the prefix
counts of ``allocation_exact``, so the two encodings check each other.
"""

from __future__ import annotations

import time
from typing import Any

from ortools.sat.python import cp_model

from kiban.modules.childcare.allocation import Prepared


def solve_reference(prep: Prepared, *, time_limit: float, workers: int = 2
                    ) -> tuple[list[int] | None, str, dict[str, Any]]:
    t0 = time.perf_counter()
    m = cp_model.CpModel()
    units = prep.units
    xfp: dict[tuple[int, int], Any] = {}
    for u, unit in enumerate(units):
        for k in range(len(unit.plans)):
            xfp[u, k] = m.NewBoolVar(f"xfp{u}_{k}")
        if len(unit.plans) > 1:
            m.Add(sum(xfp[u, k] for k in range(len(unit.plans))) <= 1)
    # xcd: child c at daycare d (one age class per child, so this is per program)
    positions: dict[tuple[int, int], list[Any]] = {}
    for u, unit in enumerate(units):
        for k, plan in enumerate(unit.plans):
            for c, fi in zip(unit.members, plan):
                if fi >= 0:
                    positions.setdefault((c, fi), []).append(xfp[u, k])
    xcd: dict[tuple[int, int], Any] = {}
    for (c, fi), vs in positions.items():
        v = m.NewBoolVar(f"xcd{c}_{fi}")
        m.Add(v == sum(vs))
        xcd[c, fi] = v
    # alpha
    alpha: dict[tuple[int, int], Any] = {}
    for u, unit in enumerate(units):
        for k in range(len(unit.plans)):
            a = m.NewBoolVar(f"alpha{u}_{k}")
            m.Add(a == sum(xfp[u, j] for j in range(k + 1)))
            alpha[u, k] = a
    # gamma and beta
    beta = []
    for u, unit in enumerate(units):
        members = set(unit.members)
        for k, plan in enumerate(unit.plans):
            by_d: dict[int, dict[int, list[int]]] = {}
            for c, fi in zip(unit.members, plan):
                if fi >= 0:
                    by_d.setdefault(fi, {}).setdefault(prep.age[c], []).append(c)
            gamma_d = []
            for fi, by_g in sorted(by_d.items()):
                gamma_g = []
                for g, S in sorted(by_g.items()):
                    cap = prep.cap[fi * 6 + g]
                    worst = max(prep.rank[c][fi] for c in S)
                    better = [c for c in prep.applicants[fi * 6 + g]
                              if prep.rank[c][fi] < worst and c not in members and (c, fi) in xcd]
                    v = m.NewBoolVar(f"g{u}_{k}_{fi}_{g}")
                    if not better:
                        m.Add(v == (1 if cap >= len(S) else 0))
                    else:
                        load = sum(xcd[c, fi] for c in better) + len(S)
                        m.Add(load <= cap).OnlyEnforceIf(v)
                        m.Add(load > cap).OnlyEnforceIf(v.Not())
                    gamma_g.append(v)
                vd = m.NewBoolVar(f"gd{u}_{k}_{fi}")
                m.Add(sum(gamma_g) == len(gamma_g)).OnlyEnforceIf(vd)
                m.Add(sum(gamma_g) < len(gamma_g)).OnlyEnforceIf(vd.Not())
                gamma_d.append(vd)
            gp = m.NewBoolVar(f"gp{u}_{k}")
            m.Add(sum(gamma_d) == len(gamma_d)).OnlyEnforceIf(gp)
            m.Add(sum(gamma_d) < len(gamma_d)).OnlyEnforceIf(gp.Not())
            b = m.NewBoolVar(f"beta{u}_{k}")
            m.Add(b == 0).OnlyEnforceIf(alpha[u, k])
            m.Add(b == gp).OnlyEnforceIf(alpha[u, k].Not())
            beta.append(b)
    # capacities
    for p, appl in enumerate(prep.applicants):
        if appl:
            m.Add(sum(xcd[c, p // 6] for c in appl if (c, p // 6) in xcd) <= prep.cap[p])
    matched = sum(xcd.values())
    detail: dict[str, Any] = {"build_seconds": round(time.perf_counter() - t0, 3),
                              "variables": len(m.Proto().variables),
                              "constraints": len(m.Proto().constraints)}
    deadline = time.perf_counter() + time_limit  # the limit is for solving; building is reported apart

    def solver(limit: float) -> cp_model.CpSolver:
        s = cp_model.CpSolver()
        s.parameters.max_time_in_seconds = max(0.5, limit)
        s.parameters.num_workers = max(1, workers)
        s.parameters.random_seed = 0
        return s

    # As in the public code: at most bp_num = 0 blocking coalitions, maximise matched children.
    stable = m.clone()
    stable.Add(sum(stable.get_bool_var_from_proto_index(b.index) for b in beta) <= 0)
    stable.Maximize(sum(stable.get_bool_var_from_proto_index(v.index) for v in xcd.values()))
    s = solver(deadline - time.perf_counter())
    st = s.Solve(stable)
    detail["stable_status"] = s.StatusName(st)
    if st in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        detail["blocking_bound"] = 0
        detail["matched_bound"] = int(round(s.BestObjectiveBound()))
        detail["seconds"] = round(time.perf_counter() - t0, 3)
        return _read(prep, s, xfp), s.StatusName(st), detail
    if st != cp_model.INFEASIBLE or deadline - time.perf_counter() < 1:
        detail["seconds"] = round(time.perf_counter() - t0, 3)
        return None, s.StatusName(st), detail
    # No stable matching exists: fewest blocking coalitions first, then most matched children.
    m.Minimize(sum(beta))
    s = solver((deadline - time.perf_counter()) / 2)
    st = s.Solve(m)
    status1 = s.StatusName(st)
    detail["phase1_status"] = status1
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        detail["seconds"] = round(time.perf_counter() - t0, 3)
        return None, status1, detail
    bound = int(round(s.ObjectiveValue()))
    detail["blocking_bound"] = bound
    first = _read(prep, s, xfp)
    m.Add(sum(beta) <= bound)
    m.Maximize(matched)
    remaining = deadline - time.perf_counter()
    status2 = "UNKNOWN"
    result = first
    if remaining > 0.2:
        s2 = solver(remaining)
        st2 = s2.Solve(m)
        status2 = s2.StatusName(st2)
        if st2 in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            result = _read(prep, s2, xfp)
            detail["phase2_bound"] = int(round(s2.BestObjectiveBound()))
    detail["phase2_status"] = status2
    detail["seconds"] = round(time.perf_counter() - t0, 3)
    status = "OPTIMAL" if status1 == status2 == "OPTIMAL" else "FEASIBLE"
    return result, status, detail


def _read(prep: Prepared, s: cp_model.CpSolver, xfp: dict[tuple[int, int], Any]) -> list[int]:
    assign = [-1] * len(prep.children)
    for (u, k), v in xfp.items():
        if s.BooleanValue(v):
            for c, fi in zip(prep.units[u].members, prep.units[u].plans[k]):
                if fi >= 0:
                    assign[c] = fi
    return assign
