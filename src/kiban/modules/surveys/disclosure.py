"""Disclosure control for anything shown outside the answering body (公表する集計表).

A table of sums: cells ``(row, col)`` each with a value and the number of respondents behind
it, with row totals, column totals and a grand total published alongside.

* Primary suppression: a cell (or a total) from 1 or 2 respondents is hidden (one respondent
  could read the other's figure).
* Secondary suppression: a hidden cell must not be recoverable from what is published. The
  published totals are linear equations over the cells (row i: Σ_j x_ij = R_i, column j:
  Σ_i x_ij = C_j, Σ R_i = Σ C_j = T); a hidden entry is recoverable exactly when its unit
  vector lies in the row space of those equations restricted to the hidden entries (exact
  rational elimination below). While any hidden entry is recoverable, one more entry is hidden
  — the smallest published cell with respondents in the same row, else column, else the total —
  and the check is repeated. Cells without respondents are structurally zero and count as known.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from fractions import Fraction

MIN_RESPONDENTS = 3

Entry = tuple  # ("cell", row, col) | ("row", row) | ("col", col) | ("total",)


@dataclass
class Table:
    rows: list[Hashable]
    cols: list[Hashable]
    cells: dict[tuple, tuple[float, int]]  # (row, col) -> (value, respondents)
    suppressed: set = field(default_factory=set)

    def value(self, entry: Entry) -> tuple[float, int]:
        if entry[0] == "cell":
            return self.cells.get((entry[1], entry[2]), (0, 0))
        if entry[0] == "row":
            found = [self.cells.get((entry[1], c), (0, 0)) for c in self.cols]
        elif entry[0] == "col":
            found = [self.cells.get((r, entry[1]), (0, 0)) for r in self.rows]
        else:
            found = list(self.cells.values())
        return sum(v for v, _ in found), sum(n for _, n in found)

    def entries(self) -> list[Entry]:
        return ([("cell", r, c) for r in self.rows for c in self.cols] + [("row", r) for r in self.rows]
                + [("col", c) for c in self.cols] + [("total",)])

    def equations(self) -> list[list[Entry]]:
        """Each as the entries whose signed sum is zero: members first, the total last."""
        eqs = [[("cell", r, c) for c in self.cols] + [("row", r)] for r in self.rows]
        eqs += [[("cell", r, c) for r in self.rows] + [("col", c)] for c in self.cols]
        eqs.append([("row", r) for r in self.rows] + [("total",)])
        eqs.append([("col", c) for c in self.cols] + [("total",)])
        return eqs

    def shown(self, entry: Entry) -> tuple[float, int] | None:
        """The published (value, respondents), or None when suppressed."""
        return None if entry in self.suppressed else self.value(entry)


def _unknown(table: Table, entry: Entry) -> bool:
    return entry in table.suppressed and table.value(entry)[1] > 0


def recoverable(table: Table) -> set[Entry]:
    """The suppressed entries that the published ones determine exactly."""
    unknowns = [e for e in table.entries() if _unknown(table, e)]
    if not unknowns:
        return set()
    index = {e: i for i, e in enumerate(unknowns)}
    matrix: list[list[Fraction]] = []
    for eq in table.equations():
        row = [Fraction(0)] * len(unknowns)
        for pos, entry in enumerate(eq):
            if entry in index:
                row[index[entry]] += 1 if pos < len(eq) - 1 else -1
        if any(row):
            matrix.append(row)
    # reduced row echelon form
    pivots: list[int] = []
    r = 0
    for c in range(len(unknowns)):
        pivot = next((i for i in range(r, len(matrix)) if matrix[i][c] != 0), None)
        if pivot is None:
            continue
        matrix[r], matrix[pivot] = matrix[pivot], matrix[r]
        lead = matrix[r][c]
        matrix[r] = [x / lead for x in matrix[r]]
        for i in range(len(matrix)):
            if i != r and matrix[i][c] != 0:
                factor = matrix[i][c]
                matrix[i] = [a - factor * b for a, b in zip(matrix[i], matrix[r], strict=True)]
        pivots.append(c)
        r += 1
        if r == len(matrix):
            break
    found = set()
    for i, c in enumerate(pivots):
        if sum(1 for x in matrix[i] if x != 0) == 1:
            found.add(unknowns[c])
    return found


def _complement(table: Table, entry: Entry) -> Entry | None:
    """The entry to hide with ``entry``: in an equation where ``entry`` is the only hidden one,
    the smallest published cell with respondents (a total if there is none); otherwise the
    smallest such cell in the same row, else the same column, else a total."""
    for eq in table.equations():
        if entry in eq and sum(1 for e in eq if _unknown(table, e)) == 1:
            others = [e for e in eq if e != entry and e not in table.suppressed and table.value(e)[1] > 0]
            if others:
                return min(others, key=lambda e: (e[0] != "cell", table.value(e)[0], str(e)))
    groups: list[list[Entry]] = []
    if entry[0] == "cell":
        groups = [[("cell", entry[1], c) for c in table.cols], [("cell", r, entry[2]) for r in table.rows]]
    elif entry[0] == "row":
        groups = [[("row", r) for r in table.rows]]
    elif entry[0] == "col":
        groups = [[("col", c) for c in table.cols]]
    for group in groups:
        candidates = [e for e in group if e not in table.suppressed and table.value(e)[1] > 0]
        if candidates:
            return min(candidates, key=lambda e: (table.value(e)[0], str(e)))
    return None


def _best_extra(table: Table, exposed: set[Entry]) -> Entry | None:
    """When no single equation offers a complement: the published entry whose hiding leaves the
    fewest recoverable entries (the smallest value on a tie)."""
    best: tuple | None = None
    for e in table.entries():
        if e in table.suppressed or table.value(e)[1] == 0:
            continue
        table.suppressed.add(e)
        left = len(recoverable(table))
        table.suppressed.discard(e)
        key = (left, e[0] != "cell", table.value(e)[0], str(e))
        if best is None or key < best[0]:
            best = (key, e)
    return best[1] if best else None


def suppress(table: Table) -> Table:
    """Apply primary and secondary suppression to ``table`` (in place) and return it."""
    table.suppressed = {e for e in table.entries() if 0 < table.value(e)[1] < MIN_RESPONDENTS}
    while True:  # each turn hides one more published entry, so this ends
        exposed = recoverable(table)
        if not exposed:
            break
        entry = min(exposed, key=lambda e: (e[0] != "cell", str(e)))
        extra = _complement(table, entry)
        if extra is None or extra in table.suppressed:
            extra = _best_extra(table, exposed)
        if extra is None:  # pragma: no cover - nothing published is left to hide
            break
        table.suppressed.add(extra)
    return table
