"""The audit log's filter as a person types it (period, person, action, result): what it means,
and every problem with it at once. One reading for the page, its CSV and the JSON twin, so the
three always narrow the log the same way."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from kiban.core.audit.labels import OUTCOME_LABELS
from kiban.core.audit.service import AuditFilter, AuditRepository, settle
from kiban.kit.validation import date_problem
from kiban.kit.wareki import JST

PAGE_SIZE = 50

_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")


def parse_day(text: str) -> date:
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


def read_query(since: str, until: str, actor: str, action: str, outcome: str,
               actors: dict[str, str], actions: list[str]) -> LogQuery:
    query = LogQuery(since.strip(), until.strip(), actor.strip(), action.strip(), outcome.strip())
    start = end = None
    if query.since:
        try:
            start = parse_day(query.since)
        except ValueError:
            query.errors["since"] = "開始日は「2026-04-01」のように年・月・日で入力してください。"
        else:
            if problem := date_problem(start, "開始日"):  # year 1 or 9999 overflowed the JST → UTC conversion
                query.errors["since"], start = problem, None
    if query.until:
        try:
            end = parse_day(query.until)
        except ValueError:
            query.errors["until"] = "終了日は「2026-04-30」のように年・月・日で入力してください。"
        else:
            if problem := date_problem(end, "終了日"):  # year 1 or 9999 overflowed the JST → UTC conversion
                query.errors["until"], end = problem, None
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


async def log_query(repo: AuditRepository, since: str, until: str, actor: str, action: str, outcome: str):
    """(the query read against the log's own actors and actions, {actor id: label}, [action codes]).
    Every reader of the log comes here first: what is recorded but not yet chained is chained
    now, so the page, its exports and the API show every recorded access."""
    await settle(repo.session, repo.tenant.lg_code)
    actors = dict(await repo.actors())
    actions = await repo.actions()
    return read_query(since, until, actor, action, outcome, actors, actions), actors, actions
