"""The background jobs' own process beside ``kiban serve``'s web workers.

A web worker runs every request of its share on one event loop. A job run there (a 20,000-row
roster import) waits behind all of them at each of its awaits: under 200 clients (bench/load.py
(f)) an import registered 200 of 19,647 rows in 420 s, and the rest in 20 s once the load
stopped. In a process of its own it has its own loop, and the operating system shares the cores
between it and the web workers; on PostgreSQL, ``KIBAN_JOBS_NICE`` can lower its priority so that
pages go first when the cores are all busy (default 0: at 10 an import under load crawled). Never
on SQLite, where it takes the one write lock in turns with the web server: a lock holder waiting
for a core keeps every writer waiting.

``JobsProcess`` starts ``kiban jobs run --parent <pid>`` (which stops by itself if this process
dies without stopping it), starts it again if it ends unexpectedly (at most once every
``RESTART_AFTER`` seconds), and at the end asks it to stop (SIGTERM: it finishes the chunk in hand
and hands running jobs back to the queue) and waits for that. The web workers are told to claim
no jobs (``KIBAN_JOBS_WORKERS=0``); they keep their tickers, which look after their own memory.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

log = logging.getLogger("kiban.jobs")

RESTART_AFTER = 5.0
STOP_WAIT = 20.0


def command(workers: int, parent: int, nice: int = 0) -> list[str]:
    return [sys.executable, "-m", "kiban", "jobs", "run", "--workers", str(workers), "--parent", str(parent),
            "--nice", str(nice)]


class JobsProcess:
    def __init__(self, workers: int, *, env: dict[str, str] | None = None, restart_after: float = RESTART_AFTER,
                 cmd: list[str] | None = None, nice: int = 0) -> None:
        self.cmd = cmd or command(workers, os.getpid(), nice)
        self.env = dict(os.environ) if env is None else env  # as at start: restarts get the same
        self.restart_after = restart_after
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="kiban-jobs-process", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        with self._lock:
            if not self._stopping.is_set():
                self.process = subprocess.Popen(self.cmd, env=self.env)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self.process
            if process is None:
                return
            code = process.wait()
            if self._stopping.is_set():
                return
            log.error("背景の処理のプロセスが終了しました（終了コード %s）。%g 秒後に起動し直します。", code, self.restart_after)
            if self._stopping.wait(self.restart_after):
                return
            self.restarts += 1
            self._spawn()

    def stop(self, timeout: float = STOP_WAIT) -> int | None:
        """Ask the process to stop, wait up to ``timeout`` seconds, then kill it. Its exit code."""
        self._stopping.set()
        with self._lock:
            process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("背景の処理のプロセスが %g 秒で止まらないため、強制終了します。", timeout)
                process.kill()
                process.wait()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        return process.returncode


def parent_gone(parent: int) -> bool:
    """Whether ``parent`` (the ``kiban serve`` that started this process) is no longer its parent."""
    return os.getppid() != parent

