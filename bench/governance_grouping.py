"""How well the automatic grouping of needs (modules/governance/grouping.py) finds the known groups
of the evaluation set (src/kiban/modules/governance/data/needs_eval.csv: 211 need descriptions
written for this measurement, 21 known groups).

Honest protocol: the known groups are split in two (``grouping.split_eval``: 10 groups to tune
on, 11 held out). The stop pieces (``STOP_GRAMS``) are learned on the tuning half, and each
method's threshold is the one with the best F1 on the tuning half; the held-out half and the whole
set are then measured with those choices. Printed for the platform's incremental placement (what
runs when a need is submitted) and for average-linkage clustering of all needs at once, and for
the previous configuration (no stop pieces, threshold 0.18 chosen on the whole set) as a baseline.

    .venv/bin/python bench/governance_grouping.py
"""

from __future__ import annotations

from kiban.modules.governance import grouping

GRID = [round(x / 100, 2) for x in range(2, 31, 2)]


def _line(name: str, s: grouping.PairScores) -> str:
    return (f"  {name:<6} precision {s.precision:.3f}  recall {s.recall:.3f}  F1 {s.f1:.3f}  groups {s.clusters}"
            f"  (true pairs {s.true_pairs}, predicted pairs {s.predicted_pairs})")


def main() -> None:
    data = grouping.load_eval()
    tuning, held_out = grouping.split_eval(data)
    print(f"評価データ: {len(data)} 件, 正解のまとまり {len({g for g, _ in data})} 個"
          f"（調整用 {len({g for g, _ in tuning})} 個 {len(tuning)} 件 / 検証用 {len({g for g, _ in held_out})} 個 {len(held_out)} 件）")
    print("command: .venv/bin/python bench/governance_grouping.py")
    learned = grouping.learn_stop_grams(tuning, grouping.STOP_MIN_GROUPS)
    print(f"stop pieces learned on the tuning half: {len(learned)} (in use: {len(grouping.STOP_GRAMS)}, "
          f"same: {learned == grouping.STOP_GRAMS})")
    for method in ("incremental", "average"):
        scored = [(t, grouping.evaluate(t, tuning, method=method)) for t in GRID]
        best, tuned = max(scored, key=lambda item: (item[1].f1, -item[0]))
        in_use = " (THRESHOLD in use)" if method == "incremental" and best == grouping.THRESHOLD else ""
        print(f"{method}: threshold chosen on the tuning half {best:.2f}{in_use}")
        print(_line("tuning", tuned))
        print(_line("held", grouping.evaluate(best, held_out, method=method)))
        print(_line("all", grouping.evaluate(best, data, method=method)))
    saved = grouping.STOP_GRAMS
    grouping.STOP_GRAMS = frozenset()
    try:
        print("baseline (before: no stop pieces, incremental, threshold 0.18 chosen on the whole set)")
        print(_line("held", grouping.evaluate(0.18, held_out)))
        print(_line("all", grouping.evaluate(0.18, data)))
    finally:
        grouping.STOP_GRAMS = saved


if __name__ == "__main__":
    main()
