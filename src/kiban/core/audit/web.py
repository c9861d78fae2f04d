"""An organisation's audit log for its administrators: browse by period, person, action and
result, page through it, and export what is shown for Excel."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from kiban.core.audit.labels import OUTCOME_LABELS, action_label
from kiban.core.audit.service import Actor, AuditFilter, AuditRepository, record
from kiban.core.audit.views import describe
from kiban.core.identity.dependencies import DbSession, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.kit.export import csv_bytes
from kiban.kit.templating import templates
from kiban.kit.wareki import JST

router = APIRouter(prefix="/t/{lg_code}/audit", include_in_schema=False)
AuditReader = Annotated[StaffContext, require(Permission.audit_entry_read)]
PAGE_SIZE = 50
CSV_COLUMNS = ["番号", "日時（日本時間）", "操作者", "操作者の種別", "操作", "結果", "対象の種類", "対象", "詳細",
               "本人", "利用目的", "法的根拠", "受付番号", "ハッシュ"]

# Templates anywhere (e.g. the resident's 「わたしの情報の利用記録」) may write {{ e.action | action_label }}.
templates.env.filters.setdefault("action_label", action_label)

_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")


def _parse_day(text: str) -> date:
    """2026-04-01, 2026/4/1, ２０２６年４月１日 (full-width digits folded)."""
    folded = unicodedata.normalize("NFKC", text).strip()
    match = _DATE.match(folded) or re.match(r"^(\d{4})(\d{2})(\d{2})$", folded)
    if not match:
        raise ValueError(text)
    return date(int(match[1]), int(match[2]), int(match[3]))


def _jst_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=JST)


@dataclass
class LogQuery:
    """The filter form as typed, what it means, and what was wrong with it."""

    since: str = ""
    until: str = ""
    actor: str = ""
    action: str = ""
    outcome: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    where: AuditFilter = AuditFilter()

    def query_string(self, **extra) -> str:
        values = {"since": self.since, "until": self.until, "actor": self.actor, "action": self.action,
                  "outcome": self.outcome, **extra}
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})

    @property
    def narrowed(self) -> bool:
        return any((self.since, self.until, self.actor, self.action, self.outcome))


def _read_query(since: str, until: str, actor: str, action: str, outcome: str,
                actors: dict[str, str], actions: list[str]) -> LogQuery:
    query = LogQuery(since.strip(), until.strip(), actor.strip(), action.strip(), outcome.strip())
    start = end = None
    if query.since:
        try:
            start = _parse_day(query.since)
        except ValueError:
            query.errors["since"] = "開始日は「2026-04-01」のように年・月・日で入力してください。"
    if query.until:
        try:
            end = _parse_day(query.until)
        except ValueError:
            query.errors["until"] = "終了日は「2026-04-30」のように年・月・日で入力してください。"
    if start and end and end < start:
        query.errors["until"] = "終了日は開始日と同じか、それより後の日にしてください。"
    if query.actor and query.actor not in actors:
        query.errors["actor"] = "操作者は一覧から選んでください。"
    if query.action and query.action not in actions:
        query.errors["action"] = "操作は一覧から選んでください。"
    if query.outcome and query.outcome not in OUTCOME_LABELS:
        query.errors["outcome"] = "結果は一覧から選んでください。"
    if not query.errors:
        query.where = AuditFilter(
            since=_jst_midnight(start) if start else None,
            until=_jst_midnight(end + timedelta(days=1)) if end else None,  # the whole last day
            actor_id=query.actor or None, action=query.action or None, outcome=query.outcome or None)
    return query


async def _query(repo: AuditRepository, since, until, actor, action, outcome):
    actors = dict(await repo.actors())
    actions = await repo.actions()
    return _read_query(since, until, actor, action, outcome, actors, actions), actors, actions


Text = Annotated[str, Query()]


@router.get("", response_class=HTMLResponse)
async def audit_log(request: Request, session: DbSession, staff: AuditReader,
                    page: Annotated[int, Query(ge=1)] = 1, since: Text = "", until: Text = "",
                    actor: Text = "", action: Text = "", outcome: Text = "") -> HTMLResponse:
    repo = AuditRepository(session)
    query, actors, actions = await _query(repo, since, until, actor, action, outcome)
    entries, total = [], 0
    if not query.errors:
        total = await repo.count_matching(query.where)
        entries = await describe(session, await repo.recent(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE,
                                                            where=query.where))
    action_choices = sorted(((code, action_label(code)) for code in actions), key=lambda c: c[1])
    return templates.TemplateResponse(request, "audit/log.html", {
        "tenant": staff.tenant, "entries": entries, "page": page, "page_size": PAGE_SIZE, "total": total,
        "query": query, "actors": actors, "action_choices": action_choices, "outcomes": OUTCOME_LABELS,
        "first": (page - 1) * PAGE_SIZE + 1, "last": (page - 1) * PAGE_SIZE + len(entries),
    }, status_code=422 if query.errors else 200)


def _csv_datetime(value: datetime) -> str:
    """``2026-04-01 09:30:15`` in JST: Excel reads it as a date-time value, not as text."""
    return value.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")


@router.get(".csv")
async def audit_log_csv(session: DbSession, staff: AuditReader, since: Text = "", until: Text = "",
                        actor: Text = "", action: Text = "", outcome: Text = "") -> Response:
    repo = AuditRepository(session)
    query, _, _ = await _query(repo, since, until, actor, action, outcome)
    if query.errors:
        from kiban.kit.errors import InvalidInput

        raise InvalidInput(" ".join(query.errors.values()))
    views = await describe(session, await repo.in_order(query.where))
    rows = [[v.entry.seq, _csv_datetime(v.entry.occurred_at), v.actor, v.actor_kind, v.action, v.outcome,
             v.target_type, v.target, v.details, v.entry.subject_id or "", v.entry.purpose or "",
             v.entry.legal_basis or "", v.entry.request_id or "", v.entry.hash] for v in views]
    body = csv_bytes(rows, CSV_COLUMNS)
    # Exporting personal-data access records is itself an access worth recording.
    await record(session, Actor("staff", staff.principal.display_name, staff.principal.id),
                 "audit.log.exported", details={"entries": len(rows)})
    await session.commit()
    filename = f"audit-{staff.tenant.lg_code}.csv"
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
