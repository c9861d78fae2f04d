"""The trained model as Python numbers, scoring a pair and explaining it in Japanese.

``data/linkage_model.json`` holds Splink's trained parameters (λ, m and u per level, blocking
rules); ``load_model`` turns it into weights and refuses a model whose level SQL or blocking rules
are not this code's. ``_score`` sums the weights of a pair's levels in Splink's order, so the
online path gives the probabilities Splink gives (to floating-point rounding).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from kiban.modules.disaster.linkage.compare import (
    COMPARISON_NAMES,
    COMPARISONS,
    address_agreement,
    phone_agreement,
    surname_agreement,
)
from kiban.modules.disaster.linkage.normalise import (
    FAM_G,
    FAM_K,
    FAM_R,
    FAM_RL,
    GIV_R,
    GIV_RL,
    NAME_RAW,
    RID,
    _normalise,
)

MODEL_PATH = Path(__file__).resolve().parent.parent / "data" / "linkage_model.json"
#: Pairs at or above this probability are the same person (chosen on a validation set).
DEFAULT_THRESHOLD = 0.95
#: The registration screen proposes candidates from this probability upwards.
DEFAULT_CANDIDATE_PROBABILITY = 0.05


_BLOCKING_SQL = re.compile(r'l\."?(\w+)"?\s*=\s*r\."?(\w+)"?')


@dataclass(frozen=True)
class Model:
    """Trained parameters, as Python numbers: prior weight, and a weight per comparison level."""

    settings: dict
    prior_weight: float
    weights: tuple[tuple[float, ...], ...]  # per comparison, per level (0.0 for the null level)
    blocking_rules: tuple[tuple[str, ...], ...]


def _prob_to_weight(p: float) -> float:
    return math.log2(p / (1 - p))


def _level_weight(level: dict) -> float:
    if level.get("is_null_level"):
        return 0.0
    m, u = level.get("m_probability"), level.get("u_probability")
    if not isinstance(m, (int, float)) or not isinstance(u, (int, float)):
        raise ValueError(f"untrained level in the linkage model: {level.get('sql_condition')}")  # noqa: TRY004
    return math.log2(max(m, 1e-300) / max(u, 1e-300))


def load_model(path: Path | str | None = None) -> Model:
    """Read a trained model; refuse one whose levels or blocking rules are not this code's."""
    data = json.loads(Path(path or MODEL_PATH).read_text(encoding="utf-8"))
    return _model_from_settings(data)


def _model_from_settings(data: dict) -> Model:
    names = [c["output_column_name"] for c in data["comparisons"]]
    if tuple(names) != COMPARISON_NAMES:
        raise ValueError(f"linkage model comparisons {names} are not {COMPARISON_NAMES}")
    weights = []
    for comparison, ours in zip(data["comparisons"], (c.levels for c in COMPARISONS), strict=True):
        theirs = [lv["sql_condition"] for lv in comparison["comparison_levels"]]
        if theirs != [lv.sql for lv in ours]:
            raise ValueError(f"linkage model levels of {comparison['output_column_name']} differ from the code; retrain")
        weights.append(tuple(_level_weight(lv) for lv in comparison["comparison_levels"]))
    rules = []
    for rule in data["blocking_rules_to_generate_predictions"]:
        sql = rule["blocking_rule"] if isinstance(rule, dict) else rule
        pairs = _BLOCKING_SQL.findall(sql)
        if not pairs or any(a != b for a, b in pairs):
            raise ValueError(f"unsupported blocking rule in the linkage model: {sql}")
        rules.append(tuple(a for a, _ in pairs))
    return Model(data, _prob_to_weight(data["probability_two_random_records_match"]), tuple(weights), tuple(rules))


@lru_cache(maxsize=4)
def _cached_model(path: str) -> Model:
    return load_model(path)


def default_model() -> Model:
    return _cached_model(str(MODEL_PATH))


def _score(a: tuple, b: tuple, weights: tuple[tuple[float, ...], ...], prior: float) -> tuple[float, tuple[int, ...]]:
    """Match weight and levels of a pair, summed in Splink's order (prior, then comparisons)."""
    if a[RID] > b[RID]:
        a, b = b, a
    total = prior
    chosen = []
    for comparison, w in zip(COMPARISONS, weights, strict=True):
        i = comparison.classify(a, b)
        chosen.append(i)
        if i:
            total += w[i]
    return total, tuple(chosen)


def _probability(weight: float) -> float:
    if weight >= 0:
        return 1.0 / (1.0 + 2.0 ** (-weight))
    return 2.0 ** weight / (1.0 + 2.0 ** weight)


# --------------------------------------------------------------------------- reasons


def _surname_phrase(a: tuple, b: tuple) -> str:
    if a[FAM_K] is None or b[FAM_K] is None:
        return "姓の記載なし"
    if a[FAM_K] == b[FAM_K]:
        return "姓（漢字）が一致"
    if a[FAM_R] is not None and a[FAM_R] == b[FAM_R]:
        return "姓の漢字が異なり読みが一致"
    if a[FAM_G] is not None and a[FAM_G] == b[FAM_G]:
        return "姓の漢字が異なり、読みの記載がないが漢字から推定した読みが一致"
    if surname_agreement(a, b) == "close":
        return "姓がほぼ一致（読みか漢字1字の違い）"
    return "姓が異なる"


_GIVEN_PHRASE = {
    "null": "名の記載なし", "reading": "名の漢字が異なり読みが一致",
    "reading_loose": "名の漢字が異なり読みが長音・濁点の違いを除いて一致", "reading_close": "名の漢字が異なり読みがほぼ一致",
    "reading_guess": "名の漢字が異なり、読みの記載がないが漢字から推定した読みが一致",
    "incomparable": "名の一方がかな書きで、もう一方に読みがなく比較できない",
    "kanji_differ": "名（漢字）が異なる（読みの記載なし）", "else": "名が異なる",
}


def _reasons(a: tuple, b: tuple, levels: Sequence[int]) -> list[str]:
    """Japanese phrases for what agreed and what differed."""
    lv = _level_names(levels)
    out: list[str] = []
    given = lv["given_name"]
    if a[FAM_K] is not None and a[FAM_K] == b[FAM_K] and given in ("kanji_reading", "kanji"):
        out.append("氏名（漢字）が一致" if a[NAME_RAW] == b[NAME_RAW] else "氏名（漢字）が異体字を統一して一致")
    else:
        out.append(_surname_phrase(a, b))
        out.append("名（漢字）が一致" if given in ("kanji_reading", "kanji") else _GIVEN_PHRASE[given])
    readings = [(a[FAM_R], b[FAM_R]), (a[GIV_R], b[GIV_R])]
    if any(x is None or y is None for x, y in readings):
        out.append("フリガナの記載なし（比較できず）")
    elif all(x == y for x, y in readings):
        out.append("フリガナが一致")
    elif a[FAM_RL] == b[FAM_RL] and a[GIV_RL] == b[GIV_RL]:
        out.append("フリガナが長音・濁点・表記の違いを除いて一致")
    else:
        out.append("フリガナが異なる")
    out.append({
        "null": "生年月日の記載なし", "exact": "生年月日が一致", "swap": "生年月日の月日が入れ替わり",
        "typo": "生年月日が1文字違い", "one_day": "生年月日が1日違い",
        "year": "生年月日の年が1年違い（月日は一致。和暦の換算違いなど）",
        "age_only": "一方の生年月日が1月1日（年齢からの推定）で、年がほぼ一致", "else": "生年月日が異なる",
    }[lv["birth_date"]])
    out.append({
        "null": "住所の記載なし", "exact": "住所が一致", "partial": "住所が一致（一方は番地の記載なし）",
        "number_typo": "住所の番地が1文字違い", "town_typo": "住所の番地が一致し町名が異なる",
        "town": "住所の町名まで一致（番地が異なる）", "lg": "住所の市区町村のみ一致", "else": "住所が異なる",
    }[address_agreement(a, b)])
    out.append({"null": "電話番号の記載なし", "exact": "電話番号が一致", "typo": "電話番号が1桁違い",
                "else": "電話番号が異なる"}[phone_agreement(a, b)])
    out.append({"null": "性別の記載なし", "exact": "性別が一致", "else": "性別が異なる"}[lv["sex"]])
    return out


@dataclass(frozen=True)
class PairExplanation:
    probability: float
    match_weight: float
    reasons: list[str]
    levels: dict[str, str]


def _level_names(levels: Sequence[int]) -> dict[str, str]:
    return {c.name: c.levels[i].key for c, i in zip(COMPARISONS, levels, strict=True)}


def explain_pair(a: Mapping[str, Any], b: Mapping[str, Any], *, model: Model | None = None) -> PairExplanation:
    """Probability that two registrations are the same person, and why (Japanese phrases)."""
    model = model or default_model()
    na, nb = _normalise(a), _normalise(b)
    weight, levels = _score(na, nb, model.weights, model.prior_weight)
    return PairExplanation(_probability(weight), weight, _reasons(na, nb, levels), _level_names(levels))
