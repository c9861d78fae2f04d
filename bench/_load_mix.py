"""A closed-loop HTTP/1.1 load generator for mixed traffic: each client belongs to a class
(staff of a municipality, a resident, the registry search ...) and sends its own prepared
requests (any method, headers and body: a signed-in cookie, a form POST) one after another on
a keep-alive connection, as ``_http_load`` does for plain GETs. Every request is recorded with
its class, its start (wall-clock, so another process can line it up with an import it ran) and
its latency. Loopback only; run in its own process so the server, not the client, is measured.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

#: Set (from another thread) to end every client early, e.g. when an import being measured is done.
STOP = threading.Event()


@dataclass
class ClientPlan:
    """One client: its class and the raw requests it cycles through (``expect`` is the status
    every one of them must get; anything else, or a broken connection, is an error), waiting
    about ``pause_s`` after each answer (a person reading; 0: the next request at once). People
    do not read in step: each pause is drawn between half and one and a half ``pause_s``, and
    each such client begins somewhere within its first pause. With the same pause for all, the
    clients that started together kept clicking together, and every wave queued at once."""

    cls: str
    requests: list[bytes]
    expect: int = 200
    pause_s: float = 0.0


def request_bytes(method: str, path: str, host: str, *, headers: dict[str, str] | None = None,
                  body: bytes = b"", content_type: str | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if method in ("POST", "PUT", "PATCH"):
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


@dataclass
class MixResult:
    # one entry per recorded request: (class index, started at (epoch s), latency ms, status)
    classes: list[str] = field(default_factory=list)
    samples: list[tuple[int, float, float, int]] = field(default_factory=list)
    broken: dict[str, int] = field(default_factory=dict)  # connection errors by class
    # the requests slower than SLOW_MS: (latency ms, started at, class, request line), for finding
    # what makes a p99 (bench/load.py prints them by page)
    slow: list[tuple[float, float, str, str]] = field(default_factory=list)
    started_at: float = 0.0  # epoch s when recording began
    elapsed_s: float = 0.0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    chunked = close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if not chunked:
        await reader.readexactly(length)
        return status, close
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return status, close
        await reader.readexactly(size + 2)


SLOW_MS, SLOW_KEPT = 300.0, 5000
TIMEOUT = -1  # the status recorded for a request that got no answer within ``timeout_s``
BROKEN = 0  # ... and for one whose connection broke


async def _client(host: str, port: int, plan: ClientPlan, cls_index: int, offset: int, stop_at: float,
                  record_from: float, result: MixResult, timeout_s: float) -> None:
    requests = plan.requests
    i = offset
    reading = random.Random(offset)  # the same pauses in every run
    reader = writer = None
    if plan.pause_s:
        await asyncio.sleep(reading.uniform(0, plan.pause_s))
    reused = False  # whether the connection has answered before (a closed keep-alive one is retried)
    try:
        while time.perf_counter() < stop_at and not STOP.is_set():
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
                reused = False
            raw = requests[i % len(requests)]
            started = time.perf_counter()
            try:
                writer.write(raw)
                status, close = await asyncio.wait_for(_read_response(reader), timeout_s)
            except (OSError, asyncio.IncompleteReadError, ValueError, asyncio.TimeoutError) as exc:
                writer.close()
                reader = writer = None
                if reused and isinstance(exc, (asyncio.IncompleteReadError, ConnectionError)) and not getattr(
                        exc, "partial", b""):
                    continue  # the server had closed the idle connection (as after a 500): send it again
                i += 1
                if started >= record_from:
                    result.broken[plan.cls] = result.broken.get(plan.cls, 0) + 1
                    status = TIMEOUT if isinstance(exc, asyncio.TimeoutError) else BROKEN
                    result.samples.append((cls_index, started, (time.perf_counter() - started) * 1000, status))
                await asyncio.sleep(0.05)
                continue
            i += 1
            reused = True
            done = time.perf_counter()
            if started >= record_from:
                result.samples.append((cls_index, started, (done - started) * 1000, status))
                if (done - started) * 1000 >= SLOW_MS and len(result.slow) < SLOW_KEPT:
                    result.slow.append(((done - started) * 1000, started, plan.cls,
                                        raw.split(b"\r\n", 1)[0].decode("utf-8", "replace")))
            if close:
                writer.close()
                reader = writer = None
            if plan.pause_s:
                await asyncio.sleep(reading.uniform(0.5 * plan.pause_s, 1.5 * plan.pause_s))
    finally:
        if writer is not None:
            writer.close()


async def run_mix(base_url: str, plans: list[ClientPlan], warmup_s: float, duration_s: float,
                  timeout_s: float = 60.0) -> MixResult:
    parts = urlsplit(base_url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("load tests only target loopback addresses")
    result = MixResult()
    result.classes = sorted({p.cls for p in plans})
    index = {c: n for n, c in enumerate(result.classes)}
    start = time.perf_counter()
    record_from = start + warmup_s
    stop_at = record_from + duration_s
    epoch_offset = time.time() - time.perf_counter()  # perf_counter -> epoch
    result.started_at = record_from + epoch_offset
    await asyncio.gather(*(_client(parts.hostname, parts.port, plan, index[plan.cls], n, stop_at, record_from, result,
                                   timeout_s) for n, plan in enumerate(plans)))
    result.elapsed_s = time.perf_counter() - record_from
    result.samples = [(c, s + epoch_offset, ms, st) for c, s, ms, st in result.samples]
    result.slow = [(ms, s + epoch_offset, c, line) for ms, s, c, line in result.slow]
    return result


def run_mix_sync(base_url: str, plans: list[ClientPlan], warmup_s: float, duration_s: float,
                 timeout_s: float = 60.0) -> dict:
    """Entry point for a separate process: returns plain data."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run_mix(base_url, plans, warmup_s, duration_s, timeout_s))
    return {"classes": result.classes, "samples": result.samples, "broken": result.broken,
            "started_at": result.started_at, "elapsed_s": result.elapsed_s, "slow": result.slow,
            "expect": {p.cls: p.expect for p in plans}}
