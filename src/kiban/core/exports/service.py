"""Exports too large to build while someone waits: a job (core/jobs) writes the file chunk by
chunk into ``export_part`` rows; the person who asked receives it from their exports page.

A module registers an ``Exporter``: the columns, and a function that returns the next rows
after a cursor (keyset paging, so every chunk costs what it reads). Asking for an export is
recorded, so is its completion and every download. The file is kept for ``KEEP_DAYS`` and
handed only to the staff member who asked, and only while they still hold the exporter's
permission. Every byte goes through ``kit/export.py`` (formulas neutralised).

A small export (at most ``INLINE_ROWS`` rows, when the exporter can count) is built while the
person waits, by the same job code; a large one by the background runner, with progress.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit import service as audit
from kiban.core.exports.models import BUILDING, FAILED, READY, ExportFile, ExportPart
from kiban.core.identity.dependencies import Forbidden
from kiban.core.identity.permissions import Permission
from kiban.core.jobs import service as jobs
from kiban.core.jobs.kinds import JobContext, Kind, Progress, register
from kiban.core.jobs.models import Job
from kiban.core.jobs.runner import run_now, wake
from kiban.core.tenancy.context import Tenant
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow
from kiban.kit.errors import Conflict, NotFound
from kiban.kit.export import CSV_MEDIA_TYPE, csv_part
from kiban.kit.wareki import JST

KIND = "exports.build"
TARGET = "export"
KEEP_DAYS = 7
INLINE_ROWS = 5_000
PAGE_ROWS = 2_000  # rows fetched at once; a chunk takes pages until its time is up

Rows = Callable[[AsyncSession, Tenant, dict, Any, int], Awaitable[tuple[list[Sequence[object]], Any]]]
Count = Callable[[AsyncSession, Tenant, dict], Awaitable[int]]
Header = Callable[[AsyncSession, Tenant, dict], Awaitable[Sequence[str]]]


@dataclass(frozen=True)
class Exporter:
    """What a module exports. ``rows(session, tenant, params, cursor, limit)`` returns at most
    ``limit`` rows after ``cursor`` (None: from the start) and the cursor after the last of them,
    or None when there are no more. ``count`` (optional) says how many rows there will be.
    ``header`` is the columns, or a function of the params that gives them (a form's questions)."""

    name: str
    title: str  # Japanese, e.g. 「監査ログ」
    permission: Permission
    header: tuple[str, ...] | Header
    rows: Rows
    count: Count | None = None
    filename: str = "export"

    async def header_for(self, session: AsyncSession, tenant: Tenant, params: dict) -> Sequence[str]:
        return self.header if isinstance(self.header, tuple) else await self.header(session, tenant, params)


EXPORTERS: dict[str, Exporter] = {}


def register_exporter(exporter: Exporter) -> Exporter:
    EXPORTERS[exporter.name] = exporter
    return exporter


def exporter_of(name: str) -> Exporter:
    try:
        return EXPORTERS[name]
    except KeyError:
        raise NotFound("この種類の書き出しはありません。") from None


class ExportRepository(TenantRepository[ExportFile]):
    model = ExportFile


# -- asking ----------------------------------------------------------------------------------------

async def request_export(session: AsyncSession, staff, name: str, params: dict[str, Any], *,
                         description: str = "") -> tuple[ExportFile, Job]:
    """Queue an export of ``name`` with ``params`` for ``staff`` (who must hold its permission),
    in the caller's transaction. ``description`` says what was chosen (「期間 2026-04-01〜」)."""
    exporter = exporter_of(name)
    if not staff.can(exporter.permission):
        raise Forbidden("この書き出しを依頼する権限がありません。")
    await purge_expired(session)
    now = utcnow()
    total = await exporter.count(session, staff.tenant, params) if exporter.count else None
    stamp = now.astimezone(JST).strftime("%Y%m%d-%H%M%S")
    title = exporter.title + (f"（{description}）" if description else "")
    export = ExportRepository(session).add(ExportFile(
        id=str(uuid.uuid4()), exporter=name, title=title[:200],
        filename=f"{exporter.filename}-{staff.tenant.lg_code}-{stamp}.csv", media_type=CSV_MEDIA_TYPE,
        params=params, state=BUILDING, rows=0, size=0, parts=0, message="作成の順番を待っています。",
        requested_by=staff.principal.id, requested_by_label=staff.label[:200], created_at=now, finished_at=None,
        expires_at=now + timedelta(days=KEEP_DAYS)))
    await session.flush()
    job = await jobs.enqueue(session, KIND, created_by=staff.label, total=total, target=(TARGET, export.id),
                             message="作成の順番を待っています。",
                             payload={"export_id": export.id, "actor": asdict(audit.Actor.of_staff(staff))})
    await audit.record(session, audit.Actor.of_staff(staff), "exports.export.requested", target_type=TARGET,
                       target_id=export.id, details={"title": export.title, "rows": total})
    return export, job


async def start(app, session: AsyncSession, job: Job) -> None:
    """After the request is committed: a small export is built now, a large one by the runner."""
    if job.progress_total is not None and job.progress_total <= INLINE_ROWS:
        await run_now(session, job, worker="export")
    else:
        wake(app)


# -- the job -----------------------------------------------------------------------------------------

async def _step(ctx: JobContext) -> Progress:
    session = ctx.session
    export = await session.get(ExportFile, (ctx.tenant.lg_code, ctx.payload["export_id"]))
    if export is None:  # deleted by its owner while waiting
        return Progress(None, 0, 0, "依頼が取り消されました。", finished=True)
    exporter = exporter_of(export.exporter)
    state = ctx.cursor or {"after": None, "seq": 0, "rows": 0, "size": 0}
    after, seq, written, size = state["after"], state["seq"], state["rows"], state["size"]
    finished = False
    while True:  # at least one page per chunk, then more while the chunk has time
        rows, after_next = await exporter.rows(session, ctx.tenant, export.params, after, PAGE_ROWS)
        header = await exporter.header_for(session, ctx.tenant, export.params) if seq == 0 else None
        data = csv_part(rows, header, first=seq == 0)
        session.add(ExportPart(lg_code=ctx.tenant.lg_code, export_id=export.id, seq=seq, data=data))
        seq, written, size = seq + 1, written + len(rows), size + len(data)
        after = after_next
        if after is None:
            finished = True
            break
        if ctx.out_of_time():
            break
    now = utcnow()
    export.rows, export.size, export.parts = written, size, seq
    total = ctx.job.progress_total
    if not finished:
        export.message = f"作成中: {written:,}{f' / {total:,}' if total else ''} 件"
        await session.flush()
        return Progress({"after": after, "seq": seq, "rows": written, "size": size}, written, total, export.message)
    export.state, export.finished_at = READY, now
    export.expires_at = now + timedelta(days=KEEP_DAYS)
    export.message = f"できあがりました（{written:,} 件）。"
    await audit.record(session, audit.Actor(**ctx.payload["actor"]), "exports.export.created", target_type=TARGET, target_id=export.id,
                       details={"title": export.title, "rows": written})
    await session.flush()
    return Progress({"after": None, "seq": seq, "rows": written, "size": size}, written, written, export.message,
                    finished=True, result={"rows": written, "size": size})


async def _failed(ctx: JobContext, reason: str) -> None:
    export = await ctx.session.get(ExportFile, (ctx.tenant.lg_code, ctx.payload["export_id"]))
    if export is not None:
        export.state, export.message, export.finished_at = FAILED, reason[:400], utcnow()
        await ctx.session.execute(delete(ExportPart).where(ExportPart.lg_code == ctx.tenant.lg_code,
                                                           ExportPart.export_id == export.id))


BUILD = register(Kind(KIND, "ファイルの書き出し", _step, on_failure=_failed, chunk_seconds=0.5))


# -- receiving ---------------------------------------------------------------------------------------

async def mine(session: AsyncSession, staff, *, limit: int = 50) -> list[ExportFile]:
    """The staff member's exports, newest first (expired ones are gone)."""
    repo = ExportRepository(session)
    return list(await repo.all(repo.select().where(ExportFile.requested_by == staff.principal.id,
                                                   ExportFile.expires_at > utcnow())
                               .order_by(ExportFile.created_at.desc()).limit(limit)))


async def own(session: AsyncSession, staff, export_id: str) -> ExportFile:
    """One of the staff member's own exports; anyone else's (a colleague's too) does not exist here."""
    repo = ExportRepository(session)
    export = await repo.first(repo.select().where(ExportFile.id == export_id,
                                                  ExportFile.requested_by == staff.principal.id,
                                                  ExportFile.expires_at > utcnow()))
    if export is None:
        raise NotFound("書き出したファイルが見つかりません（7日を過ぎたものは消えます）。")
    return export


async def job_of(session: AsyncSession, export: ExportFile) -> Job | None:
    return await jobs.for_target(session, TARGET, export.id)


async def prepare_download(session: AsyncSession, staff, export_id: str) -> ExportFile:
    """The export, ready, for the one who asked and still may: the download is recorded (the
    caller commits before streaming)."""
    export = await own(session, staff, export_id)
    if not staff.can(exporter_of(export.exporter).permission):
        raise Forbidden("この書き出しを受け取る権限がなくなりました。")
    if export.state != READY:
        raise Conflict("このファイルはまだできあがっていません。" if export.state == BUILDING
                       else "このファイルは作成できませんでした。もう一度依頼してください。")
    await audit.record(session, audit.Actor.of_staff(staff), "exports.export.downloaded", target_type=TARGET,
                       target_id=export.id, details={"title": export.title, "rows": export.rows})
    return export


async def stream(session: AsyncSession, tenant: Tenant, export: ExportFile) -> AsyncIterator[bytes]:
    """The file's bytes, part by part, each read in its own short transaction of the request's
    session (kept open until the response is sent): memory stays one part, and no transaction
    is held while the client reads."""
    for seq in range(export.parts):
        data = await session.scalar(select(ExportPart.data).where(
            ExportPart.lg_code == tenant.lg_code, ExportPart.export_id == export.id, ExportPart.seq == seq))
        await session.commit()
        if data is None:  # removed while being sent
            return
        yield data


async def remove(session: AsyncSession, staff, export_id: str) -> ExportFile:
    export = await own(session, staff, export_id)
    await session.execute(delete(ExportPart).where(ExportPart.lg_code == staff.tenant.lg_code,
                                                   ExportPart.export_id == export.id))
    await session.delete(export)
    await audit.record(session, audit.Actor.of_staff(staff), "exports.export.deleted", target_type=TARGET,
                       target_id=export.id, details={"title": export.title})
    await session.flush()
    return export


async def purge_expired(session: AsyncSession) -> int:
    """Remove the tenant's exports past their week (asked for whenever a new one is)."""
    repo = ExportRepository(session)
    expired = list((await session.scalars(select(ExportFile.id).where(
        ExportFile.lg_code == repo.tenant.lg_code, ExportFile.expires_at <= utcnow()))).all())
    if expired:
        own_rows = repo.tenant.lg_code
        await session.execute(delete(ExportPart).where(ExportPart.lg_code == own_rows, ExportPart.export_id.in_(expired)))
        await session.execute(delete(ExportFile).where(ExportFile.lg_code == own_rows, ExportFile.id.in_(expired)))
    return len(expired)

