"""Japanese explanations of an allocation, one list of sentences per child (issue #14 item 4).

Every placement and every refusal is explained to the parent in plain words: which preference
the child got, and for every preference ranked above it, why not (no seats offered, the class
filled with higher points — with the last admitted points and the child's own —, a tie decided by
the municipality's tie-break, residents of the facility's municipality ranked first, the places
the facility's municipality offers to children of other municipalities (管外受入枠) taken by
children ranked higher, or the sibling rule). Facility names are used, never ids.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kiban.modules.childcare.allocation import Board, Prepared


def format_points(points: Decimal | int) -> str:
    if isinstance(points, Decimal):
        text = format(points.normalize(), "f")
        return text
    return str(points)


def _label(prep: Prepared, rank: int, fi: int, age: int) -> str:
    name = prep.facilities[fi].name
    return f"第{rank}希望（{name} {age}歳児）" if name else f"第{rank}希望（{age}歳児）"


def _group_state(prep: Prepared, board: Board, u: int) -> str:
    unit = prep.units[u]
    facs = [board.assign[m] for m in unit.members]
    if all(f < 0 for f in facs):
        return "none"
    if all(f >= 0 for f in facs) and len(set(facs)) == 1:
        return "together"
    return "split"


def _why_not(prep: Prepared, board: Board, c: int, i: int, fi: int, state: str | None) -> str:
    from kiban.modules.childcare.allocation import SiblingRule

    child = prep.children[c]
    fac = prep.facilities[fi]
    age = child.age_class
    p = fi * 6 + age
    label = _label(prep, i, fi, age)
    cap = prep.cap[p]
    held = board.held[p]
    mine = format_points(child.points)
    if cap == 0:
        return f"{label}は、{age}歳児の募集がありませんでした。"
    if fi in prep.counted[c]:
        quota = prep.quota[p]
        held_out = board.held_out[p]
        if quota == 0:
            return (f"{label}は、施設のある市区町村が{age}歳児の管外（ほかの市区町村にお住まいの方）の受入枠を"
                    "設けていませんでした。")
        if len(held_out) >= quota and held_out[-1][0] < prep.rank[c][fi]:
            last = format_points(prep.children[held_out[-1][1]].points)
            return (f"{label}は、管外からの受入枠に達しました（施設のある市区町村がほかの市区町村にお住まいの方に"
                    f"用意した{age}歳児の{quota}人分が、指数 {last} の方までで埋まりました。あなたの指数は {mine}）。")
    if len(held) >= cap and held[-1][0] < prep.rank[c][fi]:
        lowest = prep.children[held[-1][1]]
        if fac.priority_order is not None:
            return f"{label}は、施設の選考順位により定員に達しました（あなたの指数は {mine}）。"
        if (fac.residents_first and child.municipality != fac.municipality
                and lowest.municipality == fac.municipality):
            return (f"{label}は、施設のある市区町村にお住まいの方を優先して選考し、定員に達しました"
                    f"（あなたの指数は {mine}）。")
        last = format_points(lowest.points)
        if lowest.points == child.points:
            return (f"{label}は、指数 {last} の方までで定員に達しました。あなたの指数も {mine} でしたが、"
                    "同じ指数の方の間の優先順位により入所となりませんでした。")
        return f"{label}は、指数 {last} の方までで定員に達しました（あなたの指数は {mine}）。"
    unit = prep.units[prep.unit_of[c]]
    if unit.rule is not None:
        if state == "together":
            return f"{label}は空きがありましたが、ごきょうだいと同じ施設に入所できることを優先しました。"
        if unit.rule == SiblingRule.TOGETHER_ONLY:
            return f"{label}は空きがありましたが、ごきょうだいそろっての入所ができないため、見送りました。"
        return (f"{label}は空きがありましたが、ごきょうだいそろっての入所ができず、"
                "ごきょうだいを含めたご希望の組合せの順に調整した結果、見送りました。")
    return (f"{label}は空きがありましたが、全体の調整（ごきょうだいの同時入所など）の結果、"
            "入所となりませんでした。")


def explain_all(prep: Prepared, board: Board) -> dict[str, tuple[str, ...]]:
    from kiban.modules.childcare.allocation import SiblingRule

    out: dict[str, tuple[str, ...]] = {}
    for c, child in enumerate(prep.children):
        u = prep.unit_of[c]
        unit = prep.units[u]
        state = _group_state(prep, board, u) if unit.rule is not None else None
        fi = board.assign[c]
        lines: list[str] = []
        prefs = prep.prefs[c]
        if not prefs:
            out[child.id] = ("希望施設の記入がなかったため、調整の対象になりませんでした。",)
            continue
        names = [prep.children[m].label for m in unit.members if m != c and prep.children[m].label]
        sib = f"ごきょうだい（{'、'.join(names)}）" if names else "ごきょうだい"
        if fi >= 0:
            r = prefs.index(fi) + 1
            lines.append(f"{_label(prep, r, fi, child.age_class)}に決まりました。")
            if state == "together":
                lines.append(f"{sib}と同じ施設です。")
            elif state == "split":
                lines.append(f"ごきょうだいそろって入所できる施設がなかったため、{sib}とは別々の調整となりました。")
            better = prefs[: r - 1]
        else:
            lines.append("ご希望の施設には、いずれも入所が決まりませんでした（保留）。")
            if unit.rule == SiblingRule.TOGETHER_ONLY:
                lines.append("ごきょうだいそろって入所できる施設がなかったため、"
                             "ご希望（同じ施設でなければ辞退）のとおり保留となりました。")
            elif state == "split":
                lines.append(f"{sib}のうち入所が決まった方がいます。")
            better = prefs
        for i, g in enumerate(better, start=1):
            lines.append(_why_not(prep, board, c, i, g, state))
        out[child.id] = tuple(lines)
    return out
