"""The runner: claims queued jobs and runs them chunk by chunk, in every server process.

Claiming is safe with any number of processes on either database:

- a cheap read first (deferred on SQLite, so an idle runner never takes the write lock);
- then, in one short write transaction, the candidates ``FOR UPDATE SKIP LOCKED`` (PostgreSQL;
  SQLite's transaction already holds the only write lock) and a conditional
  ``UPDATE ... WHERE <still claimable>`` that sets a fresh claim token and a lease. Exactly one
  claimer sees its UPDATE change the row.

Each chunk is one transaction that starts by renewing the lease *on condition that the token is
still ours* (on PostgreSQL this also locks the job row, so no one can claim it while the chunk
runs), then runs the handler, then stores cursor and progress, and commits. A worker that lost
its claim (it stalled past the lease and another took over) finds its renewal changes nothing
and stops before doing any work; a crashed worker's job is claimable again when its lease
lapses, and the next claimer continues from the last committed cursor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.jobs.kinds import KINDS, JobContext, JobFailed, Kind, Progress, kind_of
from kiban.core.jobs.models import DONE, FAILED, QUEUED, RUNNING, Job
from kiban.core.registry.models import Organization
from kiban.core.registry.service import tenant_of
from kiban.core.tenancy.context import Tenant, bind_tenant, unscoped
from kiban.kit.db import utcnow

log = logging.getLogger("kiban.jobs")

CLAIM_REASON = "ジョブの実行: 全団体の待ち行列から次の仕事を選ぶ（内容は読まない）"
PRUNE_REASON = "ジョブの片付け: 保管期間を過ぎた終了済みの仕事を全団体から消す（内容は読まない）"
KEEP_DONE, KEEP_FAILED = timedelta(days=7), timedelta(days=30)
PRUNE_EVERY_SECONDS = 3600.0

# Other clean-ups run with the prune, each in its own transaction: a module registers
# ``async def (session, now) -> rows deleted`` (core never imports modules).
PRUNERS: list = []


def register_pruner(pruner) -> None:
    if pruner not in PRUNERS:
        PRUNERS.append(pruner)


# Short housekeeping every few seconds, each in its own transaction (e.g. core/audit chains the
# entries recorded as pending): ``async def (session) -> rows handled``, committing itself.
# ticker -> (every_seconds, per_process)
TICKERS: dict = {}


def register_ticker(ticker, every_seconds: float, *, per_process: bool = False) -> None:
    """Run ``ticker`` every ``every_seconds``. A ticker that looks after the database (chaining
    the audit log) runs where jobs run: in ``kiban serve``'s jobs process, not in each web
    worker as well (in all of them it was 5 % of a web worker's time under bench/load.py, the
    same work done N + 1 times). ``per_process``: it looks after this process's own memory (the
    dashboards viewed here, counted ahead here) and runs in every process, web workers too."""
    TICKERS[ticker] = (every_seconds, per_process)
LOST, RELEASED = "lost", "released"

SessionFactory = Callable[[], AbstractAsyncContextManager[AsyncSession]]


def _claimable(now: datetime):
    return or_(and_(Job.state == QUEUED, Job.run_after <= now),
               and_(Job.state == RUNNING, Job.lease_until < now))


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Claim:
    lg_code: str
    job_id: str
    kind: str
    token: str
    tenant: Tenant


class _Borrowed:
    """A session lent to the runner (a request's own): used as is and left open."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def __aenter__(self) -> AsyncSession:
        return self.session

    async def __aexit__(self, *exc) -> None:
        return None


class Runner:
    """Claims and runs jobs of the kinds registered in this process (or ``kinds``).

    ``start()`` runs ``concurrency`` loops as asyncio tasks (the server's lifespan does this);
    ``run_until_idle()`` runs what is due now and returns (tests, ``kiban jobs run --once``).
    With ``concurrency`` 0 it claims no job: one loop only runs the per-process tickers, the
    housekeeping of this process's own memory (the dashboards viewed here are counted ahead
    here), which a web process keeps when its jobs run in a process of their own (``kiban
    serve``); the database's housekeeping (the audit chain) is left to that process.
    After each chunk the loop pauses for ``pause_ratio`` of the chunk's time, so a long job
    leaves the event loop and SQLite's single write lock to requests in between.
    """

    def __init__(self, session_factory: SessionFactory, *, worker: str | None = None, concurrency: int = 1,
                 poll_seconds: float = 1.0, kinds: Iterable[str] | None = None, pause_ratio: float = 0.5,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.session_factory = session_factory
        self.worker = (worker or default_worker_name())[:80]
        self.concurrency = max(0, concurrency)
        self.poll_seconds = poll_seconds
        self.kinds = tuple(kinds) if kinds is not None else None
        self.pause_ratio = pause_ratio
        self.clock = clock
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self._pruned_at = time.monotonic()  # the first prune an interval after start
        self._ticked_at: dict = {}

    # -- claiming ---------------------------------------------------------------------------

    def _kinds(self) -> list[str]:
        return [k for k in (self.kinds if self.kinds is not None else KINDS) if k in KINDS]

    async def due(self) -> bool:
        """Whether any job is claimable now: a read that takes no lock (deferred on SQLite)."""
        kinds = self._kinds()
        if not kinds:
            return False
        async with self.session_factory() as session:
            await session.connection(execution_options={"sqlite_deferred": True})
            async with unscoped(session, CLAIM_REASON):
                found = (await session.execute(select(Job.id).where(Job.kind.in_(kinds), _claimable(self.clock()))
                                               .limit(1))).first()
            await session.rollback()
        return found is not None

    async def claim(self, *, only: tuple[str, str] | None = None) -> Claim | None:
        """Claim the next due job (or the job ``only`` names), or None. One short transaction."""
        kinds = self._kinds()
        if not kinds:
            return None
        now = self.clock()
        async with self.session_factory() as session:
            try:
                async with unscoped(session, CLAIM_REASON):
                    candidates = select(Job.lg_code, Job.id, Job.kind).where(Job.kind.in_(kinds), _claimable(now))
                    if only is not None:
                        candidates = candidates.where(Job.lg_code == only[0], Job.id == only[1])
                    # One candidate at a time: locking several would hide them all from another
                    # claimer (SKIP LOCKED) while this one takes only the first.
                    rows = (await session.execute(
                        candidates.order_by(Job.run_after, Job.created_at).limit(1).with_for_update(skip_locked=True))).all()
                    for lg_code, job_id, kind in rows:
                        token = f"{self.worker}/{uuid.uuid4().hex[:12]}"
                        claimed = await session.execute(
                            update(Job).where(Job.lg_code == lg_code, Job.id == job_id, _claimable(now))
                            .values(state=RUNNING, claimed_by=token,
                                    lease_until=now + timedelta(seconds=kind_of(kind).lease_seconds),
                                    attempts=Job.attempts + 1, started_at=func.coalesce(Job.started_at, now),
                                    updated_at=now)
                            .execution_options(synchronize_session=False))
                        if claimed.rowcount == 1:
                            tenant = tenant_of(await session.get(Organization, lg_code))
                            await session.commit()
                            log.info("claimed job %s (%s) for %s", job_id, kind, lg_code)
                            return Claim(lg_code, job_id, kind, token, tenant)
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
        return None

    # -- running ----------------------------------------------------------------------------

    async def _owned(self, session: AsyncSession, claim: Claim, kind: Kind) -> Job | None:
        """Renew the lease if the claim is still ours (locking the row on PostgreSQL) and load the job."""
        now = self.clock()
        renewed = await session.execute(
            update(Job).where(Job.lg_code == claim.lg_code, Job.id == claim.job_id, Job.claimed_by == claim.token,
                              Job.state == RUNNING)
            .values(lease_until=now + timedelta(seconds=kind.lease_seconds), updated_at=now)
            .execution_options(synchronize_session=False))
        if renewed.rowcount != 1:
            return None
        return (await session.scalars(select(Job).where(Job.id == claim.job_id)
                                      .execution_options(populate_existing=True))).one()

    async def run(self, claim: Claim, *, max_chunks: int | None = None) -> str:
        """Run a claimed job to its end (done or failed), or until the claim is lost or the runner
        stops (then the job is handed back to the queue). ``max_chunks`` stops early, leaving the
        job claimed as a worker that died there would (tests simulate crashes with it)."""
        kind = kind_of(claim.kind)
        memo: dict = {}
        chunks = 0
        while True:
            started = time.monotonic()
            async with self.session_factory() as session:
                await bind_tenant(session, claim.tenant)
                try:
                    job = await self._owned(session, claim, kind)
                    if job is None:
                        await session.rollback()
                        log.warning("job %s: claim %s lost; another worker has it", claim.job_id, claim.token)
                        return LOST
                    if job.attempts > job.max_attempts:
                        message = f"{kind.label}は何度も中断されたため、止めました（{job.attempts - 1}回）。"
                        await self._fail(session, claim, kind, job, message, "interrupted too often", memo)
                        return FAILED
                    ctx = JobContext(session, claim.tenant, job, deadline=started + kind.chunk_seconds, memo=memo)
                    progress = await kind.step(ctx)
                    self._store(job, progress)
                    await session.commit()
                except JobFailed as failed:
                    await session.rollback()
                    return await self._give_up(claim, kind, failed.message, "JobFailed", memo)
                except Exception as exc:  # noqa: BLE001 - any other failure is retried with backoff
                    await session.rollback()
                    log.warning("job %s (%s) failed in a chunk", claim.job_id, claim.kind, exc_info=True)
                    return await self._retry(claim, kind, exc, memo)
            if progress.finished:
                log.info("job %s (%s) done", claim.job_id, claim.kind)
                return DONE
            chunks += 1
            if max_chunks is not None and chunks >= max_chunks:
                return RUNNING
            if self._stopping:
                await self._release(claim)
                return RELEASED
            await asyncio.sleep((time.monotonic() - started) * self.pause_ratio)

    def _store(self, job: Job, progress: Progress) -> None:
        now = self.clock()
        job.cursor = progress.cursor
        job.progress_done = progress.done
        job.progress_total = progress.total
        job.message = progress.message[:400]
        job.updated_at = now
        if progress.finished:
            job.state, job.finished_at, job.claimed_by, job.lease_until = DONE, now, None, None
            job.result = progress.result
            job.payload = {}  # a finished job keeps no personal data it was given

    async def _fail(self, session: AsyncSession, claim: Claim, kind: Kind, job: Job, message: str, error: str,
                    memo: dict) -> None:
        """Mark the job failed in ``session``, with the module's own ``on_failure`` in the same
        transaction; if that hook fails, the job is still marked failed, without it."""
        now = self.clock()
        try:
            if kind.on_failure is not None:
                await kind.on_failure(JobContext(session, claim.tenant, job, deadline=time.monotonic() + 30, memo=memo),
                                      message)
        except Exception:  # noqa: BLE001
            log.exception("job %s: on_failure of %s failed", claim.job_id, claim.kind)
            await session.rollback()
            job = await self._owned(session, claim, kind)
            if job is None:
                return
        job.state, job.message, job.last_error = FAILED, message[:400], error[:2000]
        job.finished_at, job.updated_at, job.claimed_by, job.lease_until = now, now, None, None
        job.payload = {}
        await session.commit()
        log.warning("job %s (%s) failed: %s", claim.job_id, claim.kind, error)

    async def _give_up(self, claim: Claim, kind: Kind, message: str, error: str, memo: dict) -> str:
        async with self.session_factory() as session:
            await bind_tenant(session, claim.tenant)
            job = await self._owned(session, claim, kind)
            if job is None:
                await session.rollback()
                return LOST
            await self._fail(session, claim, kind, job, message, error, memo)
        return FAILED

    async def _retry(self, claim: Claim, kind: Kind, exc: Exception, memo: dict) -> str:
        """Back to the queue with backoff, or failed once ``max_attempts`` are used up."""
        error = f"{type(exc).__name__}: {exc}"
        async with self.session_factory() as session:
            await bind_tenant(session, claim.tenant)
            job = await self._owned(session, claim, kind)
            if job is None:
                await session.rollback()
                return LOST
            if job.attempts >= job.max_attempts:
                message = (f"{kind.label}を完了できませんでした（{job.attempts}回試みました）。"
                           "時間をおいて、もう一度お試しください。")
                await self._fail(session, claim, kind, job, message, error, memo)
                return FAILED
            wait = kind.backoff(job.attempts)
            now = self.clock()
            job.state, job.claimed_by, job.lease_until = QUEUED, None, None
            job.run_after, job.updated_at, job.last_error = now + timedelta(seconds=wait), now, error[:2000]
            job.message = f"一時的な問題のため中断しました。{int(wait)}秒ほど後に、続きから再開します。"
            await session.commit()
        return QUEUED

    async def _release(self, claim: Claim) -> None:
        """Hand a job back to the queue at a graceful stop, without counting an attempt."""
        async with self.session_factory() as session:
            await bind_tenant(session, claim.tenant)
            await session.execute(
                update(Job).where(Job.lg_code == claim.lg_code, Job.id == claim.job_id, Job.claimed_by == claim.token,
                                  Job.state == RUNNING)
                .values(state=QUEUED, claimed_by=None, lease_until=None, attempts=Job.attempts - 1,
                        updated_at=self.clock())
                .execution_options(synchronize_session=False))
            await session.commit()

    # -- loops ------------------------------------------------------------------------------

    async def run_once(self) -> bool:
        """Claim one due job and run it; False when nothing was due."""
        if not await self.due():
            return False
        claim = await self.claim()
        if claim is None:
            return False
        await self.run(claim)
        return True

    async def run_until_idle(self, *, limit: int = 1000) -> int:
        """Run due jobs until none is left (jobs waiting for their backoff are not due)."""
        ran = 0
        while ran < limit and await self.run_once():
            ran += 1
        return ran

    async def prune(self) -> int:
        """Delete finished jobs past their keeping time (done: ``KEEP_DONE``, failed:
        ``KEEP_FAILED``, so staff can still read why). Their module keeps its own record (an
        import's status and count, a notification's state); the job was only the work."""
        now = self.clock()
        async with self.session_factory() as session:
            async with unscoped(session, PRUNE_REASON):
                result = await session.execute(
                    delete(Job).where(or_(and_(Job.state == DONE, Job.finished_at < now - KEEP_DONE),
                                          and_(Job.state == FAILED, Job.finished_at < now - KEEP_FAILED)))
                    .execution_options(synchronize_session=False))
            await session.commit()
        removed = result.rowcount or 0
        for pruner in PRUNERS:
            try:
                async with self.session_factory() as session:
                    removed += await pruner(session, now)
                    await session.commit()
            except Exception:  # noqa: BLE001 - one module's clean-up must not stop the others'
                log.exception("job runner: clean-up %s failed", getattr(pruner, "__qualname__", pruner))
        self._pruned_at = time.monotonic()
        return removed

    async def tick(self) -> int:
        """Run the registered tickers that are due (one loop at a time runs each)."""
        handled = 0
        for ticker, (every, per_process) in list(TICKERS.items()):
            if not (self.concurrency or per_process):
                continue  # the database's housekeeping: left to the process that runs the jobs
            now = time.monotonic()
            if now - self._ticked_at.get(ticker, 0.0) < every:
                continue
            self._ticked_at[ticker] = now  # before the first await: the other loops skip it
            try:
                async with self.session_factory() as session:
                    handled += await ticker(session)
            except Exception:  # noqa: BLE001 - one module's housekeeping must not stop the jobs
                log.exception("job runner: %s failed", getattr(ticker, "__qualname__", ticker))
        return handled

    async def _loop(self, claims: bool = True) -> None:
        while not self._stopping:
            try:
                if claims and time.monotonic() - self._pruned_at > PRUNE_EVERY_SECONDS:
                    await self.prune()
                await self.tick()
                if claims and await self.run_once():
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
                log.exception("job runner: claiming failed; trying again shortly")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            except TimeoutError:
                pass

    def wake(self) -> None:
        """Look for work now (after this process queued a job) instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._stopping = False
        if not self.concurrency:
            self._tasks = [asyncio.create_task(self._loop(claims=False), name="kiban-jobs-tickers")]
            return
        self._tasks = [asyncio.create_task(self._loop(), name=f"kiban-jobs-{i}") for i in range(self.concurrency)]

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish the chunk in hand, hand running jobs back to the queue, and end the loops."""
        self._stopping = True
        self._wake.set()
        if not self._tasks:
            return
        done, pending = await asyncio.wait(self._tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []


async def run_now(session: AsyncSession, job: Job, *, worker: str = "inline") -> str:
    """Claim ``job`` and run it to its end in ``session`` (a request's own, committing chunk by
    chunk): for work small enough to finish while the person waits. The same claim, chunks and
    failure rules as the background runner, which takes over if this is interrupted. Returns
    the job's state (or ``lost`` if a runner claimed it first). The session's tenant stays bound."""
    runner = Runner(lambda: _Borrowed(session), worker=f"{default_worker_name()}/{worker}", kinds=[job.kind],
                    pause_ratio=0)
    claim = await runner.claim(only=(job.lg_code, job.id))
    if claim is None:
        return LOST
    return await runner.run(claim)


def wake(app) -> None:
    """Tell this process's runner (if it has one) that a job was queued."""
    runner = getattr(getattr(app, "state", None), "job_runner", None)
    if runner is not None:
        runner.wake()
