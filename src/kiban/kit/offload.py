"""CPU-bound work in a process of its own, awaited like any I/O.

A thread does not take pure-Python work off a server: it holds the GIL, and the event loop,
which wants the GIL back after every wait, answers everybody else's requests slowly for as long
as the work runs (reading a 20,000-row roster: ~8 s of parsing, during which the other
municipalities' pages in bench/load.py (f) waited for the GIL). A process has its own
interpreter; the loop only waits for the answer, and the operating system shares the cores.

One process per server process, started at the first use and kept (starting one imports the
modules the work needs: about two seconds), ``spawn``ed rather than forked (a fork would copy
the running loop, its threads and its connections). What is sent and returned is pickled: keep
both small, or at least flat (a ``str`` of JSON rather than 20,000 dicts). Work that died with
its process (killed, out of memory) raises ``BrokenProcessPool`` and the next call starts a new
process; a work process whose server died ends too.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def _serve_the_parent() -> None:
    """In the work process, first: Ctrl-C reaches the whole process group, and the server that
    owns this process stops it; a server that died without stopping it (killed, out of memory)
    cannot, and the work process ends once its parent is gone rather than wait for work forever
    (it holds both ends of the queue's pipe, so it would never see that pipe close)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent,), name="offload-parent", daemon=True).start()


def _end_with(parent) -> None:
    parent.join()  # returns when the parent's sentinel closes: the parent has ended
    os._exit(0)


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_serve_the_parent)
        return _pool


def _discard(broken: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is broken:
            _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


async def run(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the work process (``fn`` defined at a module's top level)."""
    pool = _executor()
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
    except BrokenProcessPool:
        _discard(pool)
        raise


def shutdown() -> None:
    """Stop the work process, if one was started (tests; the interpreter's exit does it too)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
