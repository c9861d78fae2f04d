"""A small closed-loop HTTP/1.1 load generator on raw asyncio streams (keep-alive), light
enough that on a 2-core machine the server, not the client, is what gets measured.
Loopback only."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return status, bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def _client(host: str, port: int, paths: list[bytes], offset: int, stop_at: float,
                  record_from: float, result: LoadResult, extra_headers: bytes = b"") -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    try:
        while time.perf_counter() < stop_at:
            path = paths[i % len(paths)]
            i += 1
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: " + host.encode() +
                         b"\r\nAccept: application/json\r\n" + extra_headers + b"\r\n")
            started = time.perf_counter()
            status, _ = await _read_response(reader)
            done = time.perf_counter()
            if started >= record_from:
                result.latencies_ms.append((done - started) * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status != 200:
                    result.errors += 1
    finally:
        writer.close()


async def run_load(base_url: str, paths: list[str], clients: int, warmup_s: float,
                   duration_s: float, headers: dict[str, str] | None = None) -> LoadResult:
    parts = urlsplit(base_url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("load tests only target loopback addresses")
    encoded = [p.encode("ascii") for p in paths]
    result = LoadResult()
    start = time.perf_counter()
    record_from = start + warmup_s
    stop_at = record_from + duration_s
    extra = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in (headers or {}).items())
    await asyncio.gather(*(_client(parts.hostname, parts.port, encoded, n, stop_at, record_from, result, extra)
                           for n in range(clients)))
    result.elapsed_s = time.perf_counter() - record_from
    return result


def run_load_sync(base_url: str, paths: list[str], clients: int, warmup_s: float,
                  duration_s: float, headers: dict[str, str] | None = None) -> dict:
    """Entry point for a separate process: returns plain data."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run_load(base_url, paths, clients, warmup_s, duration_s, headers))
    return {"latencies_ms": result.latencies_ms, "errors": result.errors,
            "statuses": result.statuses, "elapsed_s": result.elapsed_s}
