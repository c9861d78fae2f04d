"""The audit log as a background export (core/exports): any number of entries, in log order,
the filter the administrator chose, up to the entry that was the newest when they asked (the
export's own records of being asked for and made come after it)."""

from __future__ import annotations

from datetime import datetime

from kiban.core.audit.labels import OUTCOME_LABELS, action_label
from kiban.core.audit.models import AuditEntry
from kiban.core.audit.service import AuditFilter, AuditRepository
from kiban.core.audit.views import describe
from kiban.core.exports.service import Exporter, register_exporter
from kiban.core.identity.permissions import Permission
from kiban.kit.wareki import JST

CSV_COLUMNS = ("番号", "日時（日本時間）", "操作者", "操作者の種別", "操作", "結果", "対象の種類", "対象", "詳細",
               "本人", "利用目的", "法的根拠", "受付番号", "ハッシュ")


def csv_datetime(value: datetime) -> str:
    """``2026-04-01 09:30:15`` in JST: Excel reads it as a date-time value, not as text."""
    return value.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")


def csv_rows(views) -> list[list[object]]:
    return [[v.entry.seq, csv_datetime(v.entry.occurred_at), v.actor, v.actor_kind, v.action, v.outcome,
             v.target_type, v.target, v.details, v.entry.subject_id or "", v.entry.purpose or "",
             v.entry.legal_basis or "", v.entry.request_id or "", v.entry.hash] for v in views]


def params_of(where: AuditFilter, upto_seq: int) -> dict:
    return {"since": where.since.isoformat() if where.since else None,
            "until": where.until.isoformat() if where.until else None,
            "actor_id": where.actor_id, "action": where.action, "outcome": where.outcome, "upto_seq": upto_seq}


def _filter(params: dict) -> AuditFilter:
    return AuditFilter(since=datetime.fromisoformat(params["since"]) if params.get("since") else None,
                       until=datetime.fromisoformat(params["until"]) if params.get("until") else None,
                       actor_id=params.get("actor_id"), action=params.get("action"), outcome=params.get("outcome"))


def describe_filter(query) -> str:
    """The chosen filters in words, for the export's title."""
    parts = []
    if query.since or query.until:
        parts.append(f"期間 {query.since or ''}〜{query.until or ''}")
    if query.action:
        parts.append(action_label(query.action))
    if query.outcome:
        parts.append(OUTCOME_LABELS.get(query.outcome, ""))
    if query.actor:
        parts.append("操作者を指定")
    return "、".join(p for p in parts if p)


async def _rows(session, tenant, params: dict, after, limit: int):
    repo = AuditRepository(session)
    statement = _filter(params).apply(repo.select()).where(AuditEntry.seq > (after or 0),
                                                          AuditEntry.seq <= params["upto_seq"])
    entries = await repo.all(statement.order_by(AuditEntry.seq).limit(limit))
    rows = csv_rows(await describe(session, entries))
    return rows, (entries[-1].seq if len(entries) == limit else None)


async def _count(session, tenant, params: dict) -> int:
    if not _filter(params).narrows:
        return int(params["upto_seq"])  # a chain's sequence numbers run 1, 2, 3 ... without gaps
    repo = AuditRepository(session)
    return await repo.count(_filter(params).apply(repo.select()).where(AuditEntry.seq <= params["upto_seq"]))


AUDIT_LOG = register_exporter(Exporter("audit.log", "監査ログ", Permission.audit_entry_read, CSV_COLUMNS, _rows,
                                       count=_count, filename="audit"))
