"""core/jobs: claims with a lease, chunks committed with their cursor, retries with backoff,
resumption after a crash, and two claimers that never run the same job. The runner's clock is
the test's, so leases lapse and backoffs pass without waiting."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update

from kiban.core.jobs import service as jobs
from kiban.core.jobs.kinds import KINDS, JobContext, JobFailed, Kind, Progress, register
from kiban.core.jobs.models import Job
from kiban.core.jobs.runner import LOST, RELEASED, Runner, run_now
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import bind_tenant, unscoped
from kiban.kit.db import create_engine, make_sessionmaker, utcnow
from tests.conftest import session_on
from tests.factories import HAKODATE, SAPPORO


@dataclass
class Ran:
    job_id: str
    chunk: int
    token: str


RAN: list[Ran] = []
FAILURES: list[tuple[str, str]] = []
RAISED: dict[str, int] = {}


async def _count(ctx: JobContext) -> Progress:
    """Counts to ``chunks``, one chunk at a time; ``raise_at``/``raise_times`` make a chunk fail
    (transiently) that many times, ``refuse_at`` fails it for good, ``pause`` makes it slow."""
    n = ctx.cursor or 0
    RAN.append(Ran(ctx.job.id, n, ctx.job.claimed_by))
    payload = ctx.payload
    if payload.get("pause"):
        await asyncio.sleep(payload["pause"])
    if payload.get("refuse_at") == n:
        raise JobFailed(f"{n + 1}つ目で止めました。")
    if payload.get("raise_at") == n and RAISED.get(ctx.job.id, 0) < payload.get("raise_times", 1):
        RAISED[ctx.job.id] = RAISED.get(ctx.job.id, 0) + 1
        raise RuntimeError("a hiccup")
    n += 1
    total = payload["chunks"]
    return Progress(n, n, total, f"数えています: {n} / {total}", finished=n >= total, result={"counted": n})


async def _on_failure(ctx: JobContext, reason: str) -> None:
    FAILURES.append((ctx.job.id, reason))


KIND = register(Kind("test.count", "数え上げ", _count, on_failure=_on_failure, max_attempts=3, backoff_seconds=10,
                     lease_seconds=30))


@pytest.fixture(autouse=True)
def _fresh_logs():
    RAN.clear(), FAILURES.clear(), RAISED.clear()


class Clock:
    def __init__(self) -> None:
        self.now = utcnow() + timedelta(seconds=1)

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def _enqueue(session, lg_code: str = SAPPORO, **payload) -> Job:
    await bind_tenant(session, await registry_service.tenant_for(session, lg_code))
    job = await jobs.enqueue(session, KIND.name, created_by="テスト", payload={"chunks": 3, **payload}, total=3,
                             target=("test", "t1"))
    await session.commit()
    return job


def _runner(connection, clock: Clock, name: str) -> Runner:
    return Runner(lambda: session_on(connection), worker=name, kinds=[KIND.name], clock=clock, pause_ratio=0)


async def _job(session, job: Job) -> Job:
    await session.refresh(job)
    return job


async def test_a_job_runs_chunk_by_chunk_and_keeps_its_progress_and_result(connection, session) -> None:
    job = await _enqueue(session)
    clock = Clock()
    assert await _runner(connection, clock, "a").run_until_idle() == 1
    job = await _job(session, job)
    assert (job.state, job.state_label, job.progress_done, job.progress_total) == ("done", "完了", 3, 3)
    assert (job.message, job.result, job.cursor, job.attempts) == ("数えています: 3 / 3", {"counted": 3}, 3, 1)
    assert job.payload == {} and job.claimed_by is None and job.finished_at is not None
    assert [r.chunk for r in RAN] == [0, 1, 2]
    assert jobs.percent(job) == 100


async def test_a_claim_holds_a_lease_that_another_claimer_respects_until_it_lapses(connection, session) -> None:
    job = await _enqueue(session)
    clock = Clock()
    first, second = _runner(connection, clock, "first"), _runner(connection, clock, "second")
    claim = await first.claim()
    assert claim is not None and claim.job_id == job.id and claim.tenant.lg_code == SAPPORO
    job = await _job(session, job)
    assert (job.state, job.attempts, job.claimed_by) == ("running", 1, claim.token)
    assert job.lease_until == clock.now + timedelta(seconds=30)
    assert await second.claim() is None  # leased
    clock.advance(29)
    assert await second.claim() is None
    clock.advance(2)  # the lease lapsed: the first worker stopped renewing it
    taken = await second.claim()
    assert taken is not None and taken.token != claim.token
    # The first worker wakes up: its claim is gone, it does no work.
    assert await first.run(claim) == LOST
    assert RAN == []
    assert await second.run(taken) == "done"
    assert {r.token for r in RAN} == {taken.token}


async def test_a_crashed_workers_job_is_taken_up_from_its_last_committed_chunk(connection, session) -> None:
    job = await _enqueue(session)
    clock = Clock()
    crashed = _runner(connection, clock, "crashed")
    claim = await crashed.claim()
    assert await crashed.run(claim, max_chunks=1) == "running"  # then the process dies
    job = await _job(session, job)
    assert (job.state, job.cursor, job.progress_done, job.message) == ("running", 1, 1, "数えています: 1 / 3")
    later = _runner(connection, clock, "later")
    assert await later.run_until_idle() == 0  # still leased
    clock.advance(31)
    assert await later.run_until_idle() == 1
    job = await _job(session, job)
    assert (job.state, job.attempts, job.progress_done) == ("done", 2, 3)
    assert [(r.chunk, r.token.split("/")[0]) for r in RAN] == [(0, "crashed"), (1, "later"), (2, "later")]


async def test_a_failing_chunk_is_retried_with_backoff_and_fails_for_good_after_its_attempts(connection, session) -> None:
    job = await _enqueue(session, raise_at=1, raise_times=99)
    clock = Clock()
    runner = _runner(connection, clock, "a")
    assert await runner.run_until_idle() == 1
    job = await _job(session, job)
    assert (job.state, job.attempts, job.cursor, job.claimed_by) == ("queued", 1, 1, None)
    assert job.run_after == clock.now + timedelta(seconds=10)
    assert job.message == "一時的な問題のため中断しました。10秒ほど後に、続きから再開します。"
    assert "RuntimeError: a hiccup" in job.last_error
    assert await runner.run_until_idle() == 0  # waiting out the backoff
    clock.advance(10)
    assert await runner.run_until_idle() == 1
    job = await _job(session, job)
    assert (job.state, job.attempts) == ("queued", 2) and job.run_after == clock.now + timedelta(seconds=20)
    clock.advance(20)
    await runner.run_until_idle()
    job = await _job(session, job)
    assert (job.state, job.attempts, job.progress_done) == ("failed", 3, 1)
    assert job.message == "数え上げを完了できませんでした（3回試みました）。時間をおいて、もう一度お試しください。"
    assert FAILURES == [(job.id, job.message)]
    assert [r.chunk for r in RAN] == [0, 1, 1, 1]  # the committed chunk never ran again
    assert job.payload == {}


async def test_a_transient_failure_resumes_where_it_stopped(connection, session) -> None:
    job = await _enqueue(session, raise_at=2, raise_times=1)
    clock = Clock()
    runner = _runner(connection, clock, "a")
    await runner.run_until_idle()
    clock.advance(10)
    await runner.run_until_idle()
    job = await _job(session, job)
    assert (job.state, job.attempts, job.progress_done) == ("done", 2, 3)
    assert [r.chunk for r in RAN] == [0, 1, 2, 2] and FAILURES == []


async def test_a_job_its_handler_refuses_fails_at_once_with_the_reason(connection, session) -> None:
    job = await _enqueue(session, refuse_at=1)
    await _runner(connection, Clock(), "a").run_until_idle()
    job = await _job(session, job)
    assert (job.state, job.attempts, job.message, job.progress_done) == ("failed", 1, "2つ目で止めました。", 1)
    assert FAILURES == [(job.id, "2つ目で止めました。")]


async def test_a_job_interrupted_again_and_again_is_stopped(connection, session) -> None:
    job = await _enqueue(session)
    clock = Clock()
    for attempt in range(3):
        worker = _runner(connection, clock, f"dies-{attempt}")
        claim = await worker.claim()
        assert claim is not None
        await worker.run(claim, max_chunks=1) if attempt == 0 else None  # then dies (later ones before any chunk)
        clock.advance(31)
    await _runner(connection, clock, "last").run_until_idle()
    job = await _job(session, job)
    assert (job.state, job.attempts) == ("failed", 4)
    assert job.message == "数え上げは何度も中断されたため、止めました（3回）。"
    assert FAILURES == [(job.id, job.message)]
    assert [r.chunk for r in RAN] == [0]


async def test_a_graceful_stop_hands_the_job_back_without_spending_an_attempt(connection, session) -> None:
    job = await _enqueue(session)
    clock = Clock()
    runner = _runner(connection, clock, "a")
    claim = await runner.claim()
    runner._stopping = True  # as stop() does, while the first chunk runs
    assert await runner.run(claim) == RELEASED
    job = await _job(session, job)
    assert (job.state, job.attempts, job.claimed_by, job.cursor) == ("queued", 0, None, 1)
    runner._stopping = False
    assert await runner.run_until_idle() == 1
    assert [r.chunk for r in RAN] == [0, 1, 2]


async def test_run_now_runs_a_job_in_the_callers_session_to_its_end(session) -> None:
    job = await _enqueue(session)
    assert await run_now(session, job) == "done"
    job = await _job(session, job)
    assert (job.state, job.progress_done) == ("done", 3)
    assert "inline" in RAN[0].token


async def test_the_same_dedupe_key_gives_the_same_job_and_other_tenants_see_none(session) -> None:
    await bind_tenant(session, await registry_service.tenant_for(session, SAPPORO))
    first = await jobs.enqueue(session, KIND.name, created_by="テスト", payload={"chunks": 1}, dedupe_key="event-1")
    again = await jobs.enqueue(session, KIND.name, created_by="テスト", payload={"chunks": 1}, dedupe_key="event-1")
    other = await jobs.enqueue(session, KIND.name, created_by="テスト", payload={"chunks": 1}, dedupe_key="event-2")
    assert first.id == again.id != other.id
    assert (await jobs.for_target(session, "test", "t1")) is None
    await bind_tenant(session, await registry_service.tenant_for(session, HAKODATE))
    assert await jobs.get(session, first.id) is None
    with pytest.raises(LookupError):
        await jobs.enqueue(session, "no.such.kind", created_by="テスト")


# -- real concurrency: two runners, each on its own connections ----------------------------------------------

@pytest.fixture
async def committed_url(test_database, tmp_path):
    """A database the test may commit to: on SQLite a copy of the test database (real file
    locking between the two runners' connections); on PostgreSQL the test database itself, with
    the test's jobs deleted afterwards."""
    if not test_database.is_postgres:
        target = tmp_path / "jobs.sqlite3"
        with sqlite3.connect(test_database.name) as source, sqlite3.connect(target) as copy:
            source.backup(copy)
        yield f"sqlite+aiosqlite:///{target}"
        return
    yield test_database.app_url
    engine = create_engine(test_database.app_url, pool=False)
    try:
        async with make_sessionmaker(engine)() as session:
            async with unscoped(session, "test: remove the jobs this test committed"):
                await session.execute(delete(Job).where(Job.kind == KIND.name))
            await session.commit()
    finally:
        await engine.dispose()


async def test_two_runners_on_their_own_connections_never_run_the_same_job(committed_url) -> None:
    engines = [create_engine(committed_url), create_engine(committed_url)]
    try:
        async with make_sessionmaker(engines[0])() as session:
            ids = []
            for lg_code in (SAPPORO, HAKODATE) * 4:
                job = await _enqueue(session, lg_code, pause=0.01)
                ids.append(job.id)
        runners = [Runner(make_sessionmaker(engine), worker=f"process-{i}", kinds=[KIND.name], pause_ratio=0.5)
                   for i, engine in enumerate(engines)]
        ran = await asyncio.wait_for(asyncio.gather(*(r.run_until_idle() for r in runners)), 60)
        assert sum(ran) == 8
        assert all(ran), "both runners should have found work"
        chunks = [(r.job_id, r.chunk) for r in RAN]
        assert len(chunks) == len(set(chunks)) == 24  # every chunk of every job ran exactly once
        for job_id in ids:  # and one claim ran each job from start to end
            assert len({r.token for r in RAN if r.job_id == job_id}) == 1
        async with make_sessionmaker(engines[0])() as session:
            async with unscoped(session, "test: every job's final state"):
                states = (await session.execute(select(Job.state, Job.progress_done).where(Job.id.in_(ids)))).all()
        assert sorted(states) == [("done", 3)] * 8
    finally:
        for engine in engines:
            await engine.dispose()


def test_a_kind_name_is_registered_once() -> None:
    async def other(ctx):  # pragma: no cover - never run
        raise AssertionError

    with pytest.raises(ValueError):
        register(Kind("test.count", "別物", other))
    assert KINDS["test.count"] is KIND


def test_backoff_doubles_and_is_capped() -> None:
    assert [KIND.backoff(n) for n in (1, 2, 3)] == [10, 20, 40]
    assert KIND.backoff(30) == 3600



async def test_finished_jobs_are_pruned_after_their_keeping_time(session, connection) -> None:
    old, recent, old_failure, waiting = [await _enqueue(session) for _ in range(4)]
    now = utcnow()
    async with unscoped(session, "test: jobs that ended long ago"):
        for job, state, ended in ((old, "done", now - timedelta(days=8)), (recent, "done", now - timedelta(days=1)),
                                  (old_failure, "failed", now - timedelta(days=8))):
            await session.execute(update(Job).where(Job.id == job.id).values(state=state, finished_at=ended))
    await session.commit()
    assert await _runner(connection, Clock(), "pruner").prune() == 1
    async with unscoped(session, "test: what is left"):
        left = set((await session.scalars(select(Job.id).where(Job.id.in_([j.id for j in (old, recent, old_failure, waiting)])))).all())
    assert left == {recent.id, old_failure.id, waiting.id}  # a failure is kept 30 days; queued work is never pruned


async def test_a_runner_with_no_workers_runs_its_tickers_and_claims_no_job(connection, session, monkeypatch) -> None:
    """A web process whose jobs run in a process of their own (``kiban serve``) keeps its
    per-process tickers (they look after its own memory) and leaves every job, and the database's
    housekeeping, to that process."""
    from kiban.core.jobs import runner as runner_module

    ticked = asyncio.Event()
    database_ticks = []

    # Counted only for this test's runners (sessions on its connection): the application of other
    # tests may have a runner of its own on the same event loop, reading the same TICKERS.
    async def ticker(session) -> int:
        if session.bind is connection:
            ticked.set()
        return 0

    async def database_ticker(session) -> int:
        if session.bind is connection:
            database_ticks.append(1)
        return 0

    monkeypatch.setattr(runner_module, "TICKERS", {ticker: (0.0, True), database_ticker: (0.0, False)})
    job = await _enqueue(session)
    runner = Runner(lambda: session_on(connection), worker="web", kinds=[KIND.name], concurrency=0, poll_seconds=0.01,
                    pause_ratio=0)
    runner.start()
    try:
        await asyncio.wait_for(ticked.wait(), 5)
        runner.wake()
        await asyncio.sleep(0.2)  # many passes of the loop
    finally:
        await runner.stop()
    job = await _job(session, job)
    assert (job.state, job.attempts, RAN) == ("queued", 0, [])
    assert database_ticks == []
    with_workers = _runner(connection, Clock(), "jobs")
    assert await with_workers.tick() == 0 and database_ticks == [1]  # where the jobs run, it runs
    assert await with_workers.run_until_idle() == 1  # the same job, for a runner that claims
