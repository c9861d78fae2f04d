"""How well the automatic grouping of needs (modules/governance/grouping.py) finds the known groups
of the evaluation set (src/kiban/modules/governance/data/needs_eval.csv: 211 need descriptions
written for this measurement, 21 known groups). Prints pairwise precision, recall and F1 at the
threshold in use and at its neighbours.

    .venv/bin/python bench/governance_grouping.py
"""

from __future__ import annotations

from kiban.modules.governance import grouping


def main() -> None:
    data = grouping.load_eval()
    print(f"評価データ: {len(data)} 件, 正解のまとまり {len({g for g, _ in data})} 個")
    print("command: .venv/bin/python bench/governance_grouping.py")
    for threshold in sorted({0.12, 0.14, 0.16, grouping.THRESHOLD, 0.20, 0.22}):
        s = grouping.evaluate(threshold)
        mark = "  <- in use" if threshold == grouping.THRESHOLD else ""
        print(f"threshold {threshold:.2f}: precision {s.precision:.3f}  recall {s.recall:.3f}  F1 {s.f1:.3f}  "
              f"groups {s.clusters}  (true pairs {s.true_pairs}, predicted pairs {s.predicted_pairs}){mark}")


if __name__ == "__main__":
    main()
