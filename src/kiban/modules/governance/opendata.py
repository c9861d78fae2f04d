"""Open data (CSV through kit/export; JSON through api.py): needs without the figures their bodies
marked 非公開, candidates with their public assessment figures, and decisions."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.modules.governance import service


async def needs(session: AsyncSession) -> tuple[list[str], list[list]]:
    header = ["グループ", "団体コード", "件名", "業務", "困っていること", "年間の作業時間", "年間経費（円）", "現行システム",
              "事業者", "更改時期", "年間件数", "非公開の項目"]
    rows = []
    for view in await service.group_views(session):
        for need in view.needs:
            f = service.figures(need, None)
            rows.append([view.group.title, need.lg_code, need.title, need.task, need.description, f["hours_per_year"],
                         f["annual_cost"], f["current_system"], f["vendor"],
                         f["renewal_on"].isoformat() if f["renewal_on"] else None, f["volume"],
                         "・".join(service.CONFIDENTIAL_FIELDS[h] for h in f["hidden"])])
    return header, rows


async def candidates(session: AsyncSession) -> tuple[list[str], list[list]]:
    header = ["候補", "状況", "団体数", "人口", "現在の年間経費の合計（公開分）", "想定パターン", "想定パターンでの団体負担の合計",
              "削減できる作業時間（年間）", "観点ⅰ", "観点ⅱ", "観点ⅲ", "判断"]
    rows = []
    for a in await service.compare(session, None):
        c = a.candidate
        expected = a.expected
        rows.append([c.name, service.STATUS_LABELS.get(c.status, ""), a.bodies, a.population, a.current_total.value,
                     expected.label if expected else "", expected.bodies_total if expected else None,
                     a.hours_saved.value, "該当" if c.perspective_1 else "", "該当" if c.perspective_2 else "",
                     "該当" if c.perspective_3 else "", c.judgement])
    return header, rows


async def decisions(session: AsyncSession) -> tuple[list[str], list[list]]:
    header = ["会議", "開催日", "候補", "決定", "理由", "決定日時"]
    meetings = {m.id: m for m in await service.meetings(session)}
    candidates_by_id = {c.id: c for c in await service.list_candidates(session)}
    rows = []
    for d in await service.decisions(session):
        m, c = meetings.get(d.meeting_id), candidates_by_id.get(d.candidate_id)
        rows.append([m.title if m else "", m.held_on.isoformat() if m else "", c.name if c else "",
                     service.OUTCOMES[d.outcome], d.reason, d.decided_at.isoformat()])
    return header, rows


DATASETS = {"needs": needs, "candidates": candidates, "decisions": decisions}
