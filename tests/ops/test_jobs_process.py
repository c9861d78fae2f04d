"""``kiban serve`` runs the background jobs in a process of its own (ops/jobs_process.py): the
process is started beside the web server, runs the queued jobs, is started again if it ends,
and stops with the server. The server is real (a subprocess on a migrated SQLite file)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kiban.cli import app
from kiban.core.jobs import service as jobs
from kiban.core.jobs.models import Job
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import bind_tenant
from kiban.kit.db import create_engine, make_sessionmaker
from kiban.kit.settings import get_settings
from kiban.ops.jobs_process import JobsProcess
from tests.conftest import BACKEND
from tests.factories import SAPPORO

STOPPING = """
import os, signal, sys, time
from pathlib import Path
folder = Path(sys.argv[1])
(folder / f"started-{os.getpid()}").touch()
if not (folder / "ended-once").exists():
    (folder / "ended-once").touch()
    sys.exit(3)
signal.signal(signal.SIGTERM, lambda *_: ((folder / "stopped").touch(), sys.exit(0)))
while True:
    time.sleep(0.05)
"""


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


def test_the_jobs_process_is_started_again_when_it_ends_and_asked_to_stop_at_the_end(tmp_path) -> None:
    process = JobsProcess(1, cmd=[sys.executable, "-c", STOPPING, str(tmp_path)], restart_after=0.2)
    process.start()
    try:
        _wait(lambda: len(list(tmp_path.glob("started-*"))) == 2, 20, "started again after it ended")
        assert process.restarts == 1
        _wait(lambda: process.process is not None and process.process.poll() is None, 5, "running")
        time.sleep(0.5)  # its SIGTERM handler installed
    finally:
        code = process.stop(timeout=10)
    assert code == 0 and (tmp_path / "stopped").exists()  # asked (SIGTERM), not killed
    assert process.restarts == 1  # a stop is not an end to recover from


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _queue_export_job(url: str) -> str:
    """A queued job the jobs process can run to its end: an export whose request was withdrawn."""
    engine = create_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            await bind_tenant(session, await registry_service.tenant_for(session, SAPPORO))
            job = await jobs.enqueue(session, "exports.build", created_by="テスト",
                                     payload={"export_id": str(uuid.uuid4()), "actor": {}})
            await session.commit()
            return job.id
    finally:
        await engine.dispose()


async def _job_state(url: str, job_id: str) -> str:
    engine = create_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            await bind_tenant(session, await registry_service.tenant_for(session, SAPPORO))
            return (await session.get(Job, (SAPPORO, job_id))).state
    finally:
        await engine.dispose()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the process tree from /proc")
@pytest.mark.skipif(BACKEND != "sqlite", reason="the processes are the same on either database: run once, on a SQLite file")
def test_kiban_serve_runs_the_jobs_in_their_own_process_and_stops_it_with_itself(tmp_path, monkeypatch) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'serve.sqlite3'}"
    monkeypatch.setenv("KIBAN_DATABASE_URL", url)
    monkeypatch.delenv("KIBAN_MIGRATION_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        cli = CliRunner()
        assert cli.invoke(app, ["db", "upgrade"], catch_exceptions=False).exit_code == 0
        assert cli.invoke(app, ["seed"], catch_exceptions=False).exit_code == 0
    finally:
        get_settings.cache_clear()
    job_id = asyncio.run(_queue_export_job(url))

    port = _free_port()
    env = {**os.environ, "KIBAN_DATABASE_URL": url, "KIBAN_SECRET_KEY": "jobs-process-test-key-0123456789abcdef",
           "KIBAN_LOG_LEVEL": "WARNING", "KIBAN_MATCHER_WARM": "false"}
    env.pop("KIBAN_JOBS_WORKERS", None)
    env.pop("KIBAN_JOBS_PROCESS", None)
    server = subprocess.Popen([sys.executable, "-m", "kiban", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(lambda: _children(server.pid) or server.poll() is not None, 30, "the jobs process started")
        [child] = _children(server.pid)
        assert b"jobs\x00run" in Path(f"/proc/{child}/cmdline").read_bytes()

        def ready() -> bool:
            assert server.poll() is None, "the server ended"
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200
            except OSError:
                return False

        _wait(ready, 90, "the server answers")
        _wait(lambda: asyncio.run(_job_state(url, job_id)) == "done", 60, "the queued job done")
        # At the web server's CPU priority (KIBAN_JOBS_NICE is 0 by default, and never applied on
        # SQLite: a lower one would keep the write lock held while the jobs process waits for a core).
        assert os.getpriority(os.PRIO_PROCESS, child) == os.getpriority(os.PRIO_PROCESS, server.pid)
        # The web server claims none: with the jobs process paused, a new job waits for it.
        os.kill(child, signal.SIGSTOP)
        try:
            second = asyncio.run(_queue_export_job(url))
            time.sleep(3)  # the server's runner loop passes every second
            assert asyncio.run(_job_state(url, second)) == "queued"
        finally:
            os.kill(child, signal.SIGCONT)
        _wait(lambda: asyncio.run(_job_state(url, second)) == "done", 60, "the second job done")

        server.send_signal(signal.SIGTERM)
        server.wait(timeout=40)
        _wait(lambda: not _alive(child), 30, "the jobs process stopped with the server")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    output = server.stdout.read()
    assert "背景の処理（名簿の取り込みなど）は別のプロセス" in output, output


@pytest.mark.parametrize(("url", "nice"), [("postgresql+asyncpg://kiban@127.0.0.1/kiban", "7"),
                                           ("sqlite+aiosqlite:///var/kiban.sqlite3", "0")])
def test_a_lower_priority_for_the_jobs_process_is_applied_on_postgresql_only(url, nice, monkeypatch) -> None:
    """On PostgreSQL KIBAN_JOBS_NICE lowers the jobs process's priority (pages first); on
    SQLite it keeps the server's priority: it takes the one write lock in turns with the server,
    and holding it while waiting for a core would keep every writer waiting. (The niceness itself,
    ``os.nice`` in ``kiban jobs run --nice``, is the operating system's.)"""
    from kiban import cli
    from kiban.kit.settings import Settings
    from kiban.ops import jobs_process

    started = []

    class Recorded:
        def __init__(self, workers, **kwargs) -> None:
            self.cmd = jobs_process.command(workers, 1, kwargs.get("nice", 0))
            self.process = type("P", (), {"pid": 1})()

        def start(self) -> None:
            started.append(self.cmd)

    monkeypatch.setattr(jobs_process, "JobsProcess", Recorded)
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    monkeypatch.setenv("KIBAN_JOBS_WORKERS", "1")  # what _start_jobs_process changes, restored after
    try:
        cli._start_jobs_process(Settings(database_url=url, jobs_process=True, jobs_workers=1, jobs_nice=7))
    finally:
        get_settings.cache_clear()
    [cmd] = started
    assert cmd[cmd.index("--nice") + 1] == nice


def test_jobs_rest_longer_between_chunks_on_sqlite() -> None:
    """On SQLite (one web process, no nice value: above) a job's loop rests 1.5 times each
    chunk's time before the next, on PostgreSQL half of it; KIBAN_JOBS_PAUSE_RATIO decides
    otherwise (docs/scaling.md item 25 has what each costs)."""
    from kiban.kit.settings import Settings

    assert Settings(database_url="sqlite+aiosqlite:///var/kiban.sqlite3").effective_jobs_pause_ratio == 1.5
    assert Settings(database_url="postgresql+asyncpg://kiban@127.0.0.1/kiban").effective_jobs_pause_ratio == 0.5
    assert Settings(database_url="sqlite+aiosqlite:///var/kiban.sqlite3", jobs_pause_ratio=0).effective_jobs_pause_ratio == 0


async def test_the_servers_job_runner_rests_as_set(test_database, app_engine) -> None:
    from kiban.kit.settings import Settings
    from kiban.main import create_app

    application = create_app(Settings(database_url=test_database.app_url, jobs_workers=0, matcher_warm=False),
                             engine=app_engine)
    async with application.router.lifespan_context(application):
        assert application.state.job_runner.pause_ratio == (1.5 if BACKEND == "sqlite" else 0.5)
