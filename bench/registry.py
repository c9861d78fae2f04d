"""Registry search over HTTP: 50 concurrent clients, kana and kanji queries.

Builds a fresh database per backend with the real migrations and seed, starts `kiban serve`
as its own process (on PostgreSQL connecting as the application role, as in production), and
drives it from a separate load process. Prints p50/p90/p99/max latency and requests per
second per backend. Target (issue #2): p99 under 50 ms.

    .venv/bin/python bench/registry.py [--backend sqlite|postgresql|both] [--duration 10]
                                       [--clients 50] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _http_load import run_load_sync  # noqa: E402

from kiban.ops.provision import build_database  # noqa: E402

KANA = ["さっぽろ", "サッポロ", "ｻｯﾎﾟﾛ", "よこはま", "ﾅｺﾞﾔ", "しながわ", "おおさか", "ふくおか",
        "かなざわ", "わじま", "ｲﾁﾉﾐﾔ", "みさと", "せんだい", "なは"]
KANJI = ["札幌", "横浜", "名古屋", "品川", "大阪", "福岡", "金沢", "輪島", "一宮", "美郷", "仙台",
         "那覇", "町", "村"]
PG_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
APP_ROLE = "kiban_app"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _paths() -> list[str]:
    queries = [q for pair in zip(KANA, KANJI, strict=True) for q in pair]
    return [f"/api/v1/organizations?q={quote(q)}" for q in queries]


async def _pg_admin(sql: str) -> None:
    from sqlalchemy import text

    from kiban.kit.db import create_engine

    engine = create_engine(PG_ADMIN_URL, pool=False)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


def _wait_ready(base_url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited early")
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server not ready in time")


def _check_answers(base_url: str) -> None:
    with urllib.request.urlopen(f"{base_url}/api/v1/organizations?q={quote('ｻｯﾎﾟﾛ')}") as response:
        names = [item["name"] for item in json.load(response)["items"]]
    if "札幌市" not in names:
        raise AssertionError(f"ｻｯﾎﾟﾛ should find 札幌市, got {names}")


def bench_backend(backend: str, args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="kiban-bench-"))
    db_name = None
    if backend == "sqlite":
        owner_url = app_url = f"sqlite+aiosqlite:///{tmp / 'bench.sqlite3'}"
    else:
        db_name = f"kiban_bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{db_name}"'))
        owner_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db_name}"
        app_url = f"postgresql+asyncpg://{APP_ROLE}@127.0.0.1:5432/{db_name}"
    server = None
    try:
        asyncio.run(build_database(owner_url, app_role=APP_ROLE))
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "KIBAN_DATABASE_URL": app_url, "KIBAN_LOG_LEVEL": "WARNING"}
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/kiban"), "serve", "--port", str(port), "--workers", str(args.workers)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
        _wait_ready(base_url, server)
        _check_answers(base_url)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            data = pool.apply(run_load_sync, (base_url, _paths(), args.clients, args.warmup, args.duration))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=15)
        if db_name:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        shutil.rmtree(tmp, ignore_errors=True)
    latencies = sorted(data["latencies_ms"])

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, max(0, round(p / 100 * len(latencies)) - 1))]

    return {
        "backend": backend, "requests": len(latencies), "errors": data["errors"],
        "rps": len(latencies) / data["elapsed_s"], "p50": pct(50), "p90": pct(90), "p99": pct(99),
        "max": latencies[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"registry search over HTTP: {args.clients} concurrent clients, {args.duration:.0f} s per backend "
          f"after {args.warmup:.0f} s warm-up, uvicorn workers={args.workers}, cores={os.cpu_count()}")
    print(f"queries: {len(KANA)} kana (hiragana, katakana, half-width) + {len(KANJI)} kanji, round-robin")
    print(f"{'backend':<11}{'requests':>9}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}  p99<50ms")
    for backend in backends:
        r = bench_backend(backend, args)
        verdict = "yes" if r["p99"] < 50 else "NO"
        print(f"{r['backend']:<11}{r['requests']:>9}{r['errors']:>8}{r['rps']:>9.0f}{r['p50']:>9.1f}"
              f"{r['p90']:>9.1f}{r['p99']:>9.1f}{r['max']:>9.1f}  {verdict}", flush=True)
    print(f"rerun: .venv/bin/python bench/registry.py --backend {args.backend} --duration {args.duration:g} "
          f"--clients {args.clients} --workers {args.workers}")


if __name__ == "__main__":
    main()
