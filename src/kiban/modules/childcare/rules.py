"""A municipality's 利用調整基準 as data: 基本指数, 調整指数, tie-breaks and the sibling policy.

The system is common, the policy is local: every number here is tenant configuration, saved as a
version (``ChildcareRuleVersion.rules``) and never a code fork. ``points`` turns a household into
its 指数 with a line per item, so the parent, staff and the rule editor's preview read the same
breakdown. Pure functions, no database.

Shape of ``rules``::

    {"combine": "sum" | "min",           # 父母の基本指数を合算するか、低い方をとるか
     "employment": [[40, 20], [30, 18], ...],  # 週の就労時間の下限と点数（多い順）
     "situations": {"illness": 20, ...},      # 就労以外の事由の点数
     "absent": 20,                          # ひとり親などで保護者がいない場合の点数
     "require_certificate": true,           # 就労証明書が届かない就労は 0 点
     "adjustments": {"single_parent": 5, ...},
     "tie_breaks": ["single_parent", "employment_hours", "waiting_months", "receipt"],
     "sibling_policy": "together_preferred" | "together_only" | "independent",
     "residents_first": true}               # 区内在住者を広域利用の申込みより先に
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from kiban.kit.errors import InvalidInput

SITUATIONS: dict[str, str] = {
    "employed": "就労",
    "illness": "疾病・負傷",
    "disability": "障害",
    "care": "親族の介護・看護",
    "pregnancy": "妊娠・出産",
    "job_seeking": "求職活動",
    "study": "就学・職業訓練",
    "disaster": "災害復旧",
}

ADJUSTMENTS: dict[str, str] = {
    "single_parent": "ひとり親世帯",
    "sibling_enrolled": "きょうだいが在園している",
    "waiting_long": "待機期間が6か月以上",
    "welfare": "生活保護世帯",
    "childcare_worker": "保護者が保育士として就労",
    "grandparent_nearby": "同居・近居の祖父母が保育できる",
}

TIE_BREAKS: dict[str, str] = {
    "single_parent": "ひとり親世帯を優先",
    "sibling_enrolled": "きょうだい在園を優先",
    "employment_hours": "保護者の就労時間が長い方を優先",
    "waiting_months": "待機期間が長い方を優先",
    "receipt": "申込みの受付順",
}

SIBLING_POLICIES: dict[str, str] = {
    "together_preferred": "同じ施設を優先し、入れなければ別々でも調整する",
    "together_only": "同じ施設でなければ調整しない（辞退扱い）",
    "independent": "きょうだいを別々に調整する",
}

COMBINE: dict[str, str] = {"sum": "父母の基本指数を合算する", "min": "父母のうち低い方の基本指数をとる"}

PRESETS: dict[str, dict[str, Any]] = {
    "example_sum": {
        "name": "例A：父母の基本指数を合算する方式",
        "based_on": "多くの区市町村が公表している利用調整基準に共通する構造を参考にした例（特定の自治体の基準ではありません）",
        "rules": {
            "combine": "sum",
            "employment": [[40, 20], [30, 18], [20, 16], [16, 12], [12, 8]],
            "situations": {"illness": 20, "disability": 20, "care": 16, "pregnancy": 16, "job_seeking": 8,
                           "study": 14, "disaster": 20},
            "absent": 20,
            "require_certificate": True,
            "adjustments": {"single_parent": 5, "sibling_enrolled": 3, "waiting_long": 2, "welfare": 3,
                            "childcare_worker": 3, "grandparent_nearby": -2},
            "tie_breaks": ["single_parent", "sibling_enrolled", "employment_hours", "waiting_months", "receipt"],
            "sibling_policy": "together_preferred",
            "residents_first": True,
        },
    },
    "example_min": {
        "name": "例B：父母のうち低い方の基本指数をとる方式",
        "based_on": "保護者のうち保育できる時間が少ない方で基本指数を決める基準の構造を参考にした例（特定の自治体の基準ではありません）",
        "rules": {
            "combine": "min",
            "employment": [[40, 100], [32, 90], [24, 80], [16, 70], [12, 50]],
            "situations": {"illness": 100, "disability": 100, "care": 80, "pregnancy": 80, "job_seeking": 40,
                           "study": 70, "disaster": 100},
            "absent": 100,
            "require_certificate": True,
            "adjustments": {"single_parent": 20, "sibling_enrolled": 10, "waiting_long": 5, "welfare": 10,
                            "childcare_worker": 10, "grandparent_nearby": -10},
            "tie_breaks": ["sibling_enrolled", "single_parent", "waiting_months", "employment_hours", "receipt"],
            "sibling_policy": "together_only",
            "residents_first": True,
        },
    },
}

# The households the rule editor previews every draft on.
SAMPLE_HOUSEHOLDS: list[dict[str, Any]] = [
    {"label": "共働き（父母とも週40時間）", "guardians": [
        {"situation": "employed", "hours_per_week": 40}, {"situation": "employed", "hours_per_week": 40}],
     "adjustments": []},
    {"label": "共働き（週40時間と週20時間）・きょうだい在園", "guardians": [
        {"situation": "employed", "hours_per_week": 40}, {"situation": "employed", "hours_per_week": 20}],
     "adjustments": ["sibling_enrolled"]},
    {"label": "ひとり親（週30時間就労）", "guardians": [{"situation": "employed", "hours_per_week": 30}],
     "adjustments": ["single_parent"]},
    {"label": "就労（週40時間）と求職活動中", "guardians": [
        {"situation": "employed", "hours_per_week": 40}, {"situation": "job_seeking"}], "adjustments": []},
    {"label": "就労（週40時間）と妊娠・出産、祖父母が近居", "guardians": [
        {"situation": "employed", "hours_per_week": 40}, {"situation": "pregnancy"}],
     "adjustments": ["grandparent_nearby"]},
]


def preset(key: str) -> dict[str, Any]:
    if key not in PRESETS:
        raise InvalidInput("この例は見つかりません。", errors=[{"field": "preset", "message": "例を選んでください。"}])
    return copy.deepcopy(PRESETS[key])


@dataclass(frozen=True)
class Points:
    total: int
    basic: int
    adjustment: int
    lines: tuple[str, ...]  # 「父母1：就労 週40時間 … 20点」


def _employment_points(rules: dict, hours: int) -> int:
    for minimum, value in rules["employment"]:
        if hours >= minimum:
            return int(value)
    return 0


def guardian_points(rules: dict, guardian: dict, certified_hours: int | None) -> tuple[int, str]:
    """The 基本指数 of one guardian and the line explaining it. ``certified_hours``: the hours the
    employer certified (None: no certificate yet)."""
    situation = guardian.get("situation", "")
    if situation == "employed":
        if certified_hours is not None:
            value = _employment_points(rules, certified_hours)
            return value, f"就労 週{certified_hours}時間（就労証明書で確認）: {value}点"
        if rules.get("require_certificate", True):
            return 0, f"就労 週{int(guardian.get('hours_per_week') or 0)}時間（就労証明書が届いていないため 0点）"
        hours = int(guardian.get("hours_per_week") or 0)
        value = _employment_points(rules, hours)
        return value, f"就労 週{hours}時間（申告）: {value}点"
    if situation in rules["situations"]:
        value = int(rules["situations"][situation])
        return value, f"{SITUATIONS[situation]}: {value}点"
    return 0, "事由なし: 0点"


def points(rules: dict, household: dict, certified: dict[int, int] | None = None) -> Points:
    """The household's 指数 under ``rules``. ``household``: {"guardians": [...], "adjustments": [...]};
    ``certified``: guardian index → hours per week certified by the employer."""
    certified = certified or {}
    guardians = list(household.get("guardians") or [])[:2]
    lines: list[str] = []
    values: list[int] = []
    for i, guardian in enumerate(guardians):
        value, line = guardian_points(rules, guardian, certified.get(i))
        values.append(value)
        lines.append(f"保護者{i + 1}：{line}")
    if len(guardians) < 2:
        values.append(int(rules.get("absent", 0)))
        lines.append(f"保護者{len(guardians) + 1}：不在（ひとり親など）: {int(rules.get('absent', 0))}点")
    basic = sum(values) if rules.get("combine", "sum") == "sum" else min(values)
    if rules.get("combine") == "min":
        lines.append(f"基本指数は低い方の {basic}点")
    adjustment = 0
    for key in household.get("adjustments") or []:
        if key in rules["adjustments"]:
            value = int(rules["adjustments"][key])
            adjustment += value
            lines.append(f"調整指数 {ADJUSTMENTS[key]}: {value:+d}点")
    return Points(basic + adjustment, basic, adjustment, tuple(lines))


def tie_break(rules: dict, household: dict, certified: dict[int, int], received: str, waiting_months: int = 0
              ) -> tuple[Any, ...]:
    """The municipality's tie-breaks as a tuple where smaller comes first (the engine's contract).
    ``received`` orders 受付順 (a sortable text of the time of receipt)."""
    adjustments = set(household.get("adjustments") or [])
    hours = sum(certified.values()) if certified else 0
    key: list[Any] = []
    for name in rules.get("tie_breaks", []):
        if name == "single_parent":
            key.append(0 if "single_parent" in adjustments else 1)
        elif name == "sibling_enrolled":
            key.append(0 if "sibling_enrolled" in adjustments else 1)
        elif name == "employment_hours":
            key.append(-hours)
        elif name == "waiting_months":
            key.append(-(6 if "waiting_long" in adjustments else waiting_months))
        elif name == "receipt":
            key.append(received)
    return tuple(key)


def _int(raw: str, field: str, label: str, errors: list, *, low: int = -1000, high: int = 1000) -> int:
    text = (raw or "").strip().translate(str.maketrans("０１２３４５６７８９－", "0123456789-"))
    try:
        value = int(text)
    except ValueError:
        errors.append({"field": field, "message": f"{label}は整数で入力してください。"})
        return 0
    if not low <= value <= high:
        errors.append({"field": field, "message": f"{label}は {low} から {high} までの整数で入力してください。"})
    return value


def from_form(form: dict[str, Any]) -> dict[str, Any]:
    """Rules from the editor's fields (or the API's JSON of the same names); InvalidInput naming
    every wrong field at once."""
    errors: list[dict[str, str]] = []
    combine = str(form.get("combine", ""))
    if combine not in COMBINE:
        errors.append({"field": "combine", "message": "基本指数のまとめ方を選んでください。"})
    employment: list[list[int]] = []
    for line in str(form.get("employment", "")).replace("、", ",").replace("\r", "").split("\n"):
        line = line.strip()
        if not line:
            continue
        parts = [p.strip() for p in line.replace("＝", "=").split("=")]
        if len(parts) != 2:
            errors.append({"field": "employment", "message": f"「{line}」は「週の時間=点数」の形で書いてください。"})
            continue
        hours = _int(parts[0], "employment", "就労時間", errors, low=1, high=80)
        value = _int(parts[1], "employment", "就労の点数", errors, low=0, high=1000)
        employment.append([hours, value])
    if not employment and not any(e["field"] == "employment" for e in errors):
        errors.append({"field": "employment", "message": "就労時間と点数を1行以上入力してください。"})
    employment.sort(key=lambda pair: -pair[0])
    situations = {key: _int(str(form.get(f"situation_{key}", "")), f"situation_{key}", label, errors, low=0)
                  for key, label in SITUATIONS.items() if key != "employed"}
    absent = _int(str(form.get("absent", "")), "absent", "保護者がいない場合の点数", errors, low=0)
    adjustments = {key: _int(str(form.get(f"adjustment_{key}", "")), f"adjustment_{key}", label, errors)
                   for key, label in ADJUSTMENTS.items()}
    raw_ties = form.get("tie_breaks") or []
    if isinstance(raw_ties, str):
        raw_ties = [raw_ties]
    ties: list[str] = []
    for name in raw_ties:
        if name and name in TIE_BREAKS and name not in ties:
            ties.append(name)
        elif name and name not in TIE_BREAKS:
            errors.append({"field": "tie_breaks", "message": "同点時の順位の項目が正しくありません。"})
    if "receipt" not in ties:
        ties.append("receipt")  # the last resort keeps the order strict and explainable
    sibling_policy = str(form.get("sibling_policy", ""))
    if sibling_policy not in SIBLING_POLICIES:
        errors.append({"field": "sibling_policy", "message": "きょうだいの扱いを選んでください。"})
    if errors:
        raise InvalidInput("利用調整基準の入力に誤りがあります。" + " ".join(e["message"] for e in errors), errors=errors)
    return {"combine": combine, "employment": employment, "situations": situations, "absent": absent,
            "require_certificate": _truthy(form.get("require_certificate")),
            "adjustments": adjustments, "tie_breaks": ties, "sibling_policy": sibling_policy,
            "residents_first": _truthy(form.get("residents_first"))}


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "on", "yes")


def to_form(rules: dict[str, Any]) -> dict[str, Any]:
    """The editor's fields for a saved version (the inverse of ``from_form``)."""
    values: dict[str, Any] = {
        "combine": rules.get("combine", "sum"),
        "employment": "\n".join(f"{h}={v}" for h, v in rules.get("employment", [])),
        "absent": str(rules.get("absent", 0)),
        "require_certificate": bool(rules.get("require_certificate", True)),
        "tie_breaks": list(rules.get("tie_breaks", [])),
        "sibling_policy": rules.get("sibling_policy", "together_preferred"),
        "residents_first": bool(rules.get("residents_first", True)),
    }
    for key in SITUATIONS:
        if key != "employed":
            values[f"situation_{key}"] = str(rules.get("situations", {}).get(key, 0))
    for key in ADJUSTMENTS:
        values[f"adjustment_{key}"] = str(rules.get("adjustments", {}).get(key, 0))
    return values


def describe(rules: dict[str, Any]) -> list[tuple[str, str]]:
    """The rules in words, for staff and for the published result."""
    rows = [("基本指数のまとめ方", COMBINE.get(rules.get("combine", ""), "")),
            ("就労（週の時間）", "、".join(f"{h}時間以上 {v}点" for h, v in rules.get("employment", []))),
            ("就労以外の事由", "、".join(f"{SITUATIONS[k]} {v}点" for k, v in rules.get("situations", {}).items())),
            ("保護者がいない場合", f"{rules.get('absent', 0)}点"),
            ("就労証明書", "届いた就労だけを点数にする" if rules.get("require_certificate", True) else "申告の時間で点数にする"),
            ("調整指数", "、".join(f"{ADJUSTMENTS[k]} {v:+d}点" for k, v in rules.get("adjustments", {}).items())),
            ("同点のとき", " → ".join(TIE_BREAKS[t] for t in rules.get("tie_breaks", []))),
            ("きょうだい", SIBLING_POLICIES.get(rules.get("sibling_policy", ""), "")),
            ("区域外からの申込み", "区域内に住む方を先に調整する" if rules.get("residents_first") else "区別しない")]
    return rows


def preview(rules: dict[str, Any]) -> list[tuple[str, Points]]:
    """Points of the sample households under ``rules`` (employment as if certified as declared)."""
    out = []
    for sample in SAMPLE_HOUSEHOLDS:
        certified = {i: g["hours_per_week"] for i, g in enumerate(sample["guardians"]) if g["situation"] == "employed"}
        out.append((sample["label"], points(rules, sample, certified)))
    return out
