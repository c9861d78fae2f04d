"""The operator's monthly report, computed: the staffing check, 施設型給付費 from the 公定価格
parameters a municipality entered, and the signed receipt. Pure functions, no database.

Staffing: 児童福祉施設の設備及び運営に関する基準 第33条 as revised in April 2024 — 保育士 at least
0歳 3:1, 1・2歳 6:1, 3歳 15:1, 4・5歳 25:1, and never fewer than 2 in a facility. The revision's
transitional rule (附則: 当分の間、3歳 20:1・4・5歳 30:1 によることができる) is computed too, so a
facility meeting only the old ratios is flagged as relying on it, not as failing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from kiban.kit.secrets import derived_key

RATIOS_2024 = {0: 3, 1: 6, 2: 6, 3: 15, 4: 25, 5: 25}
RATIOS_TRANSITIONAL = {0: 3, 1: 6, 2: 6, 3: 20, 4: 30, 5: 30}
MINIMUM_STAFF = 2


def required_staff(children: dict[int, int], ratios: dict[int, int]) -> int:
    """保育士の必要数: each age group's children over its ratio, to one decimal place (切り捨て), summed
    and rounded up; at least ``MINIMUM_STAFF`` when any child is enrolled."""
    groups = {(0,): 0, (1, 2): 0, (3,): 0, (4, 5): 0}
    for ages in groups:
        groups[ages] = sum(int(children.get(a, 0)) for a in ages)
    total = sum((Decimal(n) / ratios[ages[0]]).quantize(Decimal("0.1"), rounding=ROUND_DOWN)
                for ages, n in groups.items())
    needed = math.ceil(total)
    if sum(groups.values()) > 0:
        needed = max(needed, MINIMUM_STAFF)
    return needed


@dataclass(frozen=True)
class Staffing:
    staff: int
    required: int
    required_transitional: int
    verdict: str  # ok | transitional | short

    @property
    def label(self) -> str:
        return {"ok": "基準を満たしています（令和6年4月改正後の配置基準）",
                "transitional": "改正後の基準には足りません（経過措置の従前の基準は満たしています）",
                "short": "配置基準を満たしていません"}[self.verdict]

    def as_dict(self) -> dict:
        return {"staff": self.staff, "required": self.required, "required_transitional": self.required_transitional,
                "verdict": self.verdict, "label": self.label}


def staffing(children: dict[int, int], staff: int) -> Staffing:
    required = required_staff(children, RATIOS_2024)
    old = required_staff(children, RATIOS_TRANSITIONAL)
    verdict = "ok" if staff >= required else "transitional" if staff >= old else "short"
    return Staffing(staff, required, old, verdict)


def benefit(bands: list[dict], facility_capacity: int, children: dict[int, int]) -> tuple[int | None, dict]:
    """施設型給付費 for ``children`` (age class → count) at a facility of ``facility_capacity``, from the
    price table's bands (the first band whose 定員 upper bound covers the facility). None when the
    municipality has entered no band that applies."""
    band = next((b for b in sorted(bands, key=lambda b: b["max_capacity"]) if facility_capacity <= b["max_capacity"]),
                None)
    if band is None:
        return None, {"note": "この定員区分の公定価格が登録されていません。"}
    lines = []
    total = 0
    for age in range(6):
        count = int(children.get(age, 0))
        if not count:
            continue
        price = int(band["prices"].get(str(age), 0))
        total += price * count
        lines.append({"age": age, "count": count, "unit_yen": price, "yen": price * count})
    return total, {"band": band["max_capacity"], "lines": lines}


def parse_bands(text: str) -> list[dict]:
    """Bands from the price editor: one line 「定員の上限,0歳,1歳,2歳,3歳,4歳,5歳」 (yen per child per
    month). ValueError with a Japanese message naming the line."""
    bands = []
    for number, line in enumerate(text.replace("\r", "").split("\n"), start=1):
        line = line.strip().replace("，", ",").replace("、", ",")
        if not line:
            continue
        parts = [p.strip().replace(",", "") for p in line.split(",")]
        if len(parts) != 7 or not all(p.isdigit() for p in parts):
            raise ValueError(f"{number}行目は「定員の上限,0歳,1歳,2歳,3歳,4歳,5歳」の7つの整数で書いてください。")
        values = [int(p) for p in parts]
        bands.append({"max_capacity": values[0], "prices": {str(a): values[a + 1] for a in range(6)}})
    if not bands:
        raise ValueError("定員区分を1行以上入力してください。")
    if len({b["max_capacity"] for b in bands}) != len(bands):
        raise ValueError("同じ定員の上限が2回書かれています。")
    return sorted(bands, key=lambda b: b["max_capacity"])


def bands_text(bands: list[dict]) -> str:
    return "\n".join(",".join([str(b["max_capacity"])] + [str(b["prices"][str(a)]) for a in range(6)]) for b in bands)


# An example only: the real 公定価格 are the 内閣府告示's unit prices for the facility's 地域区分 and 定員区分.
EXAMPLE_BANDS = [
    {"max_capacity": 60, "prices": {"0": 300000, "1": 180000, "2": 180000, "3": 90000, "4": 80000, "5": 80000}},
    {"max_capacity": 120, "prices": {"0": 280000, "1": 165000, "2": 165000, "3": 80000, "4": 70000, "5": 70000}},
    {"max_capacity": 9999, "prices": {"0": 270000, "1": 155000, "2": 155000, "3": 72000, "4": 64000, "5": 64000}},
]


def receipt_text(report: dict) -> str:
    """The canonical text the receipt signs: what the operator submitted, as stored."""
    return json.dumps(report, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def sign(text: str) -> str:
    """The platform's signature (HMAC-SHA256 with a key derived from the deployment secret) over the
    receipt: the operator keeps it; ``verify`` proves later that the platform received exactly this."""
    return hmac.new(derived_key("childcare-report-receipt"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def verify(text: str, signature: str) -> bool:
    return hmac.compare_digest(sign(text), signature or "")
