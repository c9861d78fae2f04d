"""Accepting a staged roster import: checked at once, registered in the background in chunks.

Accepting checks staff's choices on the preview (rows in error, guessed name splits) exactly as
before and answers at once: the import turns ``importing`` and a job (core/jobs) registers its
rows in chunks, each chunk one short transaction, so a 20,000-row roster never holds the
database (SQLite's single write lock above all) for the 40-odd seconds the whole file takes,
and other municipalities' requests go on meanwhile. The import's page shows the job's progress
(「登録中: 5,000 / 20,000 件」) and ends ``imported`` or ``failed`` with the reason in Japanese.

A roster of at most ``INLINE_ROWS`` rows is registered while staff wait, by the same job code
(``jobs.runner.run_now``): they see the result at once, and nothing differs but who runs it.

Every row is registered by ``service.register``; the unique (lg_code, disaster_id,
import_key) and the check of each chunk's keys before it registers make a chunk run again
after a crash add nobody twice. One audit entry per import, when it ends (as before).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime

from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from kiban.core.audit import service as audit
from kiban.core.jobs import service as jobs
from kiban.core.jobs.kinds import JobContext, JobFailed, Kind, Progress, register
from kiban.core.jobs.models import Job
from kiban.core.jobs.runner import register_ticker, run_now, wake
from kiban.core.tenancy.context import unscoped
from kiban.kit.errors import Conflict, InvalidInput, KibanError, NotFound
from kiban.modules.disaster import service
from kiban.modules.disaster.models import ROSTER_KEY_COLUMNS, Disaster, RosterImport, VictimRecord, roster_key_of
from kiban.modules.disaster.schemas import ImportRead

KIND = "disaster.roster_import"
TARGET = "roster_import"
CHUNK_ROWS = 500  # at most this many rows per transaction (and at most the kind's chunk_seconds)
INLINE_ROWS = 200  # up to this many, registered while staff wait
KEY_BATCH = 50  # rows whose import keys are looked up at once (a chunk may end after a few rows)
STAGED, IMPORTING, IMPORTED, FAILED = "staged", "importing", "imported", "failed"
STATUS_LABELS = {STAGED: "確認待ち（未反映）", IMPORTING: "取り込み中", IMPORTED: "反映済み", FAILED: "取り込みを中止"}


def status_label(batch: RosterImport) -> str:
    return STATUS_LABELS.get(batch.status, batch.status)


# -- accepting ------------------------------------------------------------------------------------

@dataclass
class Acceptance:
    """What staff's choices on the preview register: the lines, in file order, and each
    confirmed (or corrected) name split."""

    lines: list[int]
    splits: dict[int, dict[str, str]]
    unconfirmed: list[int]
    valid_only: bool


async def check(session: AsyncSession, staff, disaster: Disaster, batch: RosterImport, form) -> Acceptance:
    """The rows staff's choices register, or every reason they cannot yet (``ImportNotAccepted``).

    A row whose import key is already registered is skipped; a name split guessed from the
    surname list is registered only as staff confirmed (or corrected) it (``confirm-<line>`` =
    yes and the four name parts); ``valid_only`` = yes skips rows in error, ``skip_unconfirmed``
    = yes skips unconfirmed splits."""
    from kiban.modules.disaster.roster import confirm_split

    valid_only = str(form.get("valid_only", "") or "") == "yes"
    rows = batch.report["rows"]
    if batch.status != STAGED:
        raise Conflict("この取り込みはすでに反映済みです。")
    if batch.report["file_errors"]:
        raise InvalidInput("ファイル全体の誤りがあるため取り込めません。ファイルを直して、もう一度読み込んでください。")
    known = await service.registered_keys(session, staff.tenant, disaster.id, (r.get("import_key") for r in rows))
    problems: list[str] = []
    if any(r["errors"] for r in rows) and not valid_only:
        problems.append("誤りのある行があります。直したファイルを読み込み直すか、正しい行だけを取り込むことを選んでください。")
    splits: dict[int, dict[str, str]] = {}
    unconfirmed: list[int] = []
    for row in rows:
        if row["errors"] or not row["values"] or not row.get("proposal") or row["import_key"] in known:
            continue
        line = row["line"]
        if form.get(f"confirm-{line}") != "yes":
            unconfirmed.append(line)
            continue
        names, problem = confirm_split(row["proposal"], *(str(form.get(f"{part}-{line}", "") or "") for part in (
            "family_name", "given_name", "family_kana", "given_kana")))
        if problem:
            problems.append(f"{line}行目: {problem}")
        else:
            splits[line] = names
    if unconfirmed and form.get("skip_unconfirmed") != "yes":
        problems.append(f"氏と名の分け方を確認していない行があります（{'、'.join(f'{n}行目' for n in unconfirmed)}）。"
                        "「この分け方で登録する」を選ぶか、「分け方を確認していない行を除いて取り込む」を選んでください。")
    if problems:
        raise service.ImportNotAccepted(problems)
    lines = [row["line"] for row in rows
             if not row["errors"] and row["values"] and row["import_key"] not in known  # in error, or already registered
             and (not row.get("proposal") or row["line"] in splits)]  # a split never registered on a guess
    return Acceptance(lines, splits, unconfirmed, valid_only)


async def accept(session: AsyncSession, staff, disaster: Disaster, batch: RosterImport, form) -> Job:
    """Check staff's choices, mark the import ``importing`` and queue the job that registers it.
    Not committed: the caller commits, then calls ``start``. Two acceptances of one import at
    once: the second finds it no longer staged (409)."""
    plan = await check(session, staff, disaster, batch, form)
    taken = await session.execute(
        update(RosterImport).where(RosterImport.id == batch.id, RosterImport.status == STAGED)
        .values(status=IMPORTING, imported_count=0).execution_options(synchronize_session=False))
    if taken.rowcount != 1:
        raise Conflict("この取り込みはすでに反映済みです。")
    set_committed_value(batch, "status", IMPORTING)
    set_committed_value(batch, "imported_count", 0)
    actor = audit.Actor.of_staff(staff)
    total = len(plan.lines)
    return await jobs.enqueue(
        session, KIND, created_by=staff.label, total=total, target=(TARGET, batch.id),
        message=f"登録の順番を待っています（0 / {total:,} 件）",
        payload={"disaster_id": disaster.id, "batch_id": batch.id, "lines": plan.lines,
                 "splits": {str(line): names for line, names in plan.splits.items()},
                 "valid_only": plan.valid_only, "unconfirmed": len(plan.unconfirmed),
                 "rows": len(batch.report["rows"]), "actor": asdict(actor)})


async def start(app, session: AsyncSession, job: Job) -> None:
    """After the acceptance is committed: a small import is registered now, in this request's
    session; a larger one is left to the runner, told to look now."""
    if (job.progress_total or 0) <= INLINE_ROWS:
        await run_now(session, job, worker="import")
    else:
        wake(app)


# -- the job: one chunk of rows per transaction --------------------------------------------------

def record_input(row: dict, split: dict[str, str] | None) -> service.RecordInput:
    """The registration a report row stands for (values as the preview read them)."""
    v = {**row["values"], **(split or {})}
    v["birth_date"] = date.fromisoformat(v["birth_date"]) if v.get("birth_date") else None
    for text in ("family_kana", "given_kana", "home_address", "phone", "household_key", "note"):
        v[text] = v.get(text) or ""
    return service.RecordInput(**{k: v[k] for k in (
        "family_name", "given_name", "family_kana", "given_kana", "birth_date", "sex", "home_address", "home_lg_code",
        "whereabouts", "shelter_id", "wide_area_lg_code", "phone", "household_key", "household_size", "care_needs",
        "damage_level", "risai_status", "note") if k in v}, import_key=row["import_key"])


async def _rows(ctx: JobContext) -> dict[int, dict]:
    """The report's rows by line, read once per claim (the report does not change once staged)."""
    if "rows" not in ctx.memo:
        report = (await ctx.session.execute(select(RosterImport.report).where(
            RosterImport.id == ctx.payload["batch_id"]))).scalar_one()
        ctx.memo["rows"] = {row["line"]: row for row in report["rows"]}
    return ctx.memo["rows"]


async def _set_import(ctx: JobContext, **values) -> None:
    await ctx.session.execute(update(RosterImport).where(RosterImport.id == ctx.payload["batch_id"])
                              .values(**values).execution_options(synchronize_session=False))


async def _step(ctx: JobContext) -> Progress:
    payload, session = ctx.payload, ctx.session
    position, added = (ctx.cursor or {}).get("next", 0), (ctx.cursor or {}).get("added", 0)
    lines: list[int] = payload["lines"]
    rows = await _rows(ctx)
    disaster = await service.get_disaster(session, payload["disaster_id"])
    actor = audit.Actor(**payload["actor"])
    end = min(position + CHUNK_ROWS, len(lines))
    lookups: dict = {}  # organisations and shelters, found once per chunk
    while position < end and not ctx.out_of_time():
        batch = lines[position:min(position + KEY_BATCH, end)]
        # Registered already: by an earlier file, or by this chunk's earlier run (rolled back, then
        # these rows are not here) or a concurrent import of the same roster (then they are).
        present = set((await session.scalars(select(VictimRecord.import_key).where(
            VictimRecord.disaster_id == disaster.id,
            VictimRecord.import_key.in_([rows[line]["import_key"] for line in batch])))).all())
        records = []
        for line in batch:
            row = rows[line]
            if row["import_key"] not in present:
                try:
                    records.append(await service.new_record(
                        session, ctx.tenant, disaster, record_input(row, payload["splits"].get(str(line))),
                        actor=actor.label, lookups=lookups))
                except KibanError as exc:  # the disaster closed, a shelter gone...: no retry will fix it
                    raise JobFailed(f"{line}行目: {exc.detail}") from None
                present.add(row["import_key"])
            position += 1
            if ctx.out_of_time():
                break
        session.add_all(records)  # one flush for the batch: one multi-row INSERT where the database allows
        await session.flush()
        added += len(records)
    total = len(lines)
    finished = position >= total
    await _set_import(ctx, imported_count=added, **({"status": IMPORTED} if finished else {}))
    if finished:
        result = service.ImportResult(added, len(payload["splits"]), payload["unconfirmed"])
        await audit.record(session, actor, "disaster.roster.imported", target_type=TARGET, target_id=payload["batch_id"],
                           details={"added": added, "rows": payload["rows"], "valid_only": payload["valid_only"],
                                    "confirmed_splits": result.confirmed_splits,
                                    "unconfirmed_splits": result.unconfirmed_splits})
        return Progress({"next": position, "added": added}, position, total,
                        f"登録が終わりました（新たに登録 {added:,} 人）", finished=True, result=asdict(result))
    return Progress({"next": position, "added": added}, position, total, f"登録中: {position:,} / {total:,} 件")


async def _failed(ctx: JobContext, reason: str) -> None:
    added = (ctx.cursor or {}).get("added", 0)
    await _set_import(ctx, status=FAILED, imported_count=added)
    await audit.record(ctx.session, audit.Actor(**ctx.payload["actor"]), "disaster.roster.imported", target_type=TARGET,
                       target_id=ctx.payload["batch_id"], outcome="failure",
                       details={"added": added, "rows": ctx.payload["rows"], "reason": reason})


ROSTER_IMPORT = register(Kind(KIND, "名簿の取り込み", _step, on_failure=_failed))


# -- how it goes ----------------------------------------------------------------------------------

async def job_of(session: AsyncSession, batch: RosterImport) -> Job | None:
    return await jobs.for_target(session, TARGET, batch.id)


@dataclass
class ImportStatus:
    status: str
    imported_count: int
    job: Job | None

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)


async def status_of(session: AsyncSession, disaster_id: str, batch_id: str) -> ImportStatus:
    """Where an import stands, without reading its report (what a page polls every few seconds)."""
    row = (await session.execute(select(RosterImport.status, RosterImport.imported_count).where(
        RosterImport.id == batch_id, RosterImport.disaster_id == disaster_id))).first()
    if row is None:
        raise NotFound("取り込みが見つかりません。")
    return ImportStatus(row.status, row.imported_count, await jobs.for_target(session, TARGET, batch_id))


class ImportProgress(BaseModel):
    """How the registering of an accepted import goes (the job behind it)."""

    state: str = Field(description="queued（待機中） / running（実行中） / done（完了） / failed（失敗）")
    state_label: str
    done: int = Field(description="処理した行数")
    total: int | None = Field(description="登録する行数")
    percent: int | None
    message: str = Field(description="進み具合または失敗の理由（日本語）")
    attempts: int
    updated_at: datetime


class ImportReport(ImportRead):
    """The import's report and state (the page's twin), with the progress once accepted."""

    status: str = Field(description="staged（確認待ち） / importing（取り込み中） / imported（反映済み） / failed（取り込みを中止）")
    progress: ImportProgress | None = Field(None, description="受け付けた後の登録の進み具合（確認待ちの間は null）")


class ImportAccepted(BaseModel):
    """The answer to accepting an import (202): where to follow it, and how it goes now."""

    id: str
    status: str = Field(description="importing（取り込み中） / imported（反映済み） / failed（取り込みを中止）")
    status_label: str
    imported_count: int = Field(description="これまでに新たに登録した人数")
    progress: ImportProgress | None
    location: str = Field(description="状態を確かめる URL（Location ヘッダーと同じ）")


def progress_of(job: Job | None) -> ImportProgress | None:
    if job is None:
        return None
    return ImportProgress(state=job.state, state_label=job.state_label, done=job.progress_done,
                          total=job.progress_total, percent=jobs.percent(job), message=job.message,
                          attempts=job.attempts, updated_at=job.updated_at)


__all__ = ["ROSTER_IMPORT", "ImportAccepted", "ImportProgress", "ImportReport", "ImportStatus", "accept", "check", "job_of", "progress_of",
           "start", "status_label", "status_of"]


# -- roster keys of records registered before they were stored ------------------------------------

#: Records given their ``roster_key`` per tick of the jobs process, and how often it ticks:
#: a short transaction each (~70 ms of CPU), a million records in about half an hour.
ROSTER_KEYS_PER_TICK = 1_000
ROSTER_KEYS_EVERY_SECONDS = 2.0
FILL_REASON = "照合キーの補完: 取り込み前から登録されていた記録に、名簿の行と突き合わせる鍵を書く（内容は変えない）"


async def fill_roster_keys(session: AsyncSession, limit: int = ROSTER_KEYS_PER_TICK) -> int:
    """The jobs process's tick: store the roster key of up to ``limit`` records registered
    before the column existed (migration 0037), found by the partial index of those still
    missing. Nothing a matcher compares is written, and nothing else. Returns how many."""
    async with unscoped(session, FILL_REASON):
        rows = (await session.execute(select(VictimRecord.lg_code, VictimRecord.id, *ROSTER_KEY_COLUMNS)
                                      .where(VictimRecord.roster_key.is_(None)).limit(limit))).all()
        if rows:
            await session.execute(update(VictimRecord), [
                {"lg_code": row.lg_code, "id": row.id, "roster_key": roster_key_of(row._mapping)} for row in rows])
    await session.commit()
    return len(rows)


_all_filled = False  # once a tick finds none missing: every record written since carries its key


async def _fill_roster_keys_tick(session: AsyncSession) -> int:
    global _all_filled
    if _all_filled:
        return 0
    filled = await fill_roster_keys(session)
    _all_filled = filled == 0
    return filled


register_ticker(_fill_roster_keys_tick, ROSTER_KEYS_EVERY_SECONDS)
