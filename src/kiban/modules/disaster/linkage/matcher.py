"""The online matcher: one new registration scored against everything registered so far.

In-memory blocking indexes keyed exactly like the Splink blocking rules, and the same model,
scored in Python (``model._score``), so it proposes the pairs ``link_batch`` would score with the
probabilities Splink would give.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kiban.modules.disaster.linkage.model import (
    DEFAULT_CANDIDATE_PROBABILITY,
    Model,
    _level_names,
    _prob_to_weight,
    _probability,
    _reasons,
    _score,
    default_model,
)
from kiban.modules.disaster.linkage.normalise import (
    COLUMNS,
    RID,
    _column_chunks,
    _normalise,
    _normalise_columns,
    _python_columns,
)


@dataclass(frozen=True)
class Candidate:
    record_id: str
    probability: float
    match_weight: float
    reasons: list[str] = field(default_factory=list)
    levels: dict[str, str] = field(default_factory=dict)


class Matcher:
    """Registrations kept in memory with blocking indexes, to score one new registration fast.

    Build it from all current registrations (``Matcher(rows)``; rows are mappings with the
    registration keys, or a pyarrow Table with those columns), then ``add`` each new one after
    it has been saved (``remove`` one that was withdrawn or corrected; ``add`` with a known
    record_id replaces it). ``candidates`` only scores registrations that share a blocking key
    with the new one — the pairs ``link_batch`` would score — with the same model.

    The indexes live in this process only (keys of compound rules are Python hashes, which change
    between processes): rebuild a Matcher from the database at start-up instead of pickling one.
    """

    def __init__(self, records: Iterable[Mapping[str, Any]] | Any = (), *, model: Model | None = None):
        self.model = model or default_model()
        from operator import itemgetter

        self._rule_columns = tuple(tuple(COLUMNS.index(c) for c in rule) for rule in self.model.blocking_rules)
        self._key_parts = tuple((itemgetter(*cols), len(cols) == 1) for cols in self._rule_columns)
        self._rows: list[tuple | None] = []
        self._by_id: dict[str, int] = {}
        self._indexes: list[dict[Any, int | list[int]]] = [{} for _ in self._rule_columns]
        self.extend(records)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._by_id

    def _keys(self, row: tuple) -> list[Any]:
        keys = []
        for get, single in self._key_parts:
            values = get(row)
            if single:
                keys.append(values)  # the row's own string: no extra memory
            else:
                # a hash instead of the tuple saves ~40% of the index memory; a collision (2^-64)
                # would only add a candidate, which is then scored like any other
                keys.append(None if None in values else hash(values))
        return keys

    def _insert(self, row: tuple) -> None:
        if row[RID] in self._by_id:
            self.remove(row[RID])
        position = len(self._rows)
        self._rows.append(row)
        self._by_id[row[RID]] = position
        for index, key in zip(self._indexes, self._keys(row), strict=True):
            if key is None:
                continue
            found = index.get(key)
            if found is None:
                index[key] = position
            elif isinstance(found, int):
                index[key] = [found, position]
            else:
                found.append(position)

    def add(self, record: Mapping[str, Any]) -> None:
        """Index a registration (replacing one with the same record_id)."""
        self._insert(_normalise(record))

    def extend(self, records: Iterable[Mapping[str, Any]] | Any) -> None:
        """Index many registrations (mappings or a pyarrow Table): normalised column by column,
        which is several times faster than ``add`` one by one and gives the same rows."""
        for cols in _column_chunks(records, 200_000):
            for row in zip(*_python_columns(_normalise_columns(cols, with_raw=True)), strict=True):
                self._insert(row)

    def remove(self, record_id: str) -> bool:
        """Forget a registration; False if it was not indexed."""
        position = self._by_id.pop(record_id, None)
        if position is None:
            return False
        row = self._rows[position]
        self._rows[position] = None
        for index, key in zip(self._indexes, self._keys(row), strict=True):
            if key is None:
                continue
            found = index.get(key)
            if isinstance(found, list):
                found.remove(position)
                if len(found) == 1:
                    index[key] = found[0]
            elif found == position:
                del index[key]
        return True

    def _blocked(self, row: tuple) -> set[int]:
        hits: set[int] = set()
        for index, key in zip(self._indexes, self._keys(row), strict=True):
            if key is None:
                continue
            found = index.get(key)
            if found is None:
                continue
            if isinstance(found, int):
                hits.add(found)
            else:
                hits.update(found)
        return hits

    def candidates(self, record: Mapping[str, Any], limit: int = 10,
                   min_probability: float = DEFAULT_CANDIDATE_PROBABILITY) -> list[Candidate]:
        """Existing registrations that may be the same person, most probable first."""
        row = _normalise(record)
        weights, prior = self.model.weights, self.model.prior_weight
        min_weight = _prob_to_weight(min_probability) if 0 < min_probability < 1 else (
            -math.inf if min_probability <= 0 else math.inf)
        scored = []
        for position in self._blocked(row):
            other = self._rows[position]
            if other is None or other[RID] == row[RID]:
                continue
            weight, levels = _score(row, other, weights, prior)
            if weight >= min_weight:
                scored.append((weight, other[RID], other, levels))
        scored.sort(key=lambda s: (-s[0], s[1]))
        out = []
        for weight, rid, other, levels in scored[:limit]:
            a, b = (row, other) if row[RID] < other[RID] else (other, row)
            out.append(Candidate(rid, _probability(weight), weight, _reasons(a, b, levels), _level_names(levels)))
        return out
