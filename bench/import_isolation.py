"""Does one municipality's 20,000-row roster import slow down another municipality's pages?

Per backend (SQLite file, PostgreSQL): a fresh database (real migrations and seed), 金沢市 staff
who import, 札幌市 staff who read their settings page, and ``kiban``'s app served by uvicorn in
its own process. ``--clients`` closed-loop clients request 札幌市's settings page (signed in)
for ``--idle`` seconds with nothing else running, then the whole time 金沢市 uploads a 20,000-row
roster and accepts it, until the import's page says it is imported. Prints p50/p99 of the
settings page idle, during the upload (the file is read and checked) and during the import
(the background job), the ratio of the p99s, errors, and how long the import took.

``--mode``:
  new       (default) reads without the write lock (kit.db.ReadRetryMiddleware) and the import
            as a background job in chunks, run by the server process itself
  separate  the same, but the job runs in a ``kiban jobs run`` process (KIBAN_JOBS_WORKERS=0)
  old       the behaviour before issue #11: every transaction BEGIN IMMEDIATE (the middleware
            taken out), the import one transaction (the job run with unbounded chunks by this script)

    .venv/bin/python bench/import_isolation.py [--backend sqlite|postgresql|both] [--rows 20000]
        [--clients 4] [--idle 10] [--mode new|separate|old]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import io
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("KIBAN_SECRET_KEY", secrets.token_urlsafe(32))  # shared with the server

import httpx  # noqa: E402

PG = "postgresql+asyncpg://{user}@127.0.0.1:5432/{db}"
APP_ROLE = "kiban_app"
SAPPORO, KANAZAWA, ISHIKAWA = "011002", "172014", "170003"
PASSWORD = "benchmark password 1"


# -- the server (this file, run with --serve) -------------------------------------------------

def serve(port: int, mode: str) -> None:
    import uvicorn

    from kiban.kit.db import ReadRetryMiddleware
    from kiban.main import create_app

    app = create_app()
    if mode == "old":  # every transaction BEGIN IMMEDIATE, as before issue #11
        app.user_middleware = [m for m in app.user_middleware if m.cls is not ReadRetryMiddleware]
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- preparing a database -----------------------------------------------------------------------

async def admin(sql: str) -> None:
    from sqlalchemy import text

    from kiban.kit.db import create_engine

    engine = create_engine(PG.format(user="postgres", db="postgres"), pool=False)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


async def prepare(owner_url: str, app_role: str | None) -> tuple[dict[str, bytes], str]:
    """Migrations and seed, two staff members (TOTP secrets returned), one open disaster."""
    from kiban.core.identity import credentials
    from kiban.core.identity import service as identity_service
    from kiban.core.registry import service as registry
    from kiban.core.tenancy.context import bind_tenant
    from kiban.kit.db import create_engine, make_sessionmaker
    from kiban.modules.disaster import service as disaster_service
    from kiban.ops.provision import build_database

    await build_database(owner_url, app_role=app_role)
    engine = create_engine(owner_url, pool=False)
    secrets_ = {}
    try:
        async with make_sessionmaker(engine)() as session:
            for lg_code, role in ((SAPPORO, "admin"), (KANAZAWA, "staff")):
                secret = credentials.new_totp_secret()
                await identity_service.create_staff(
                    session, username=f"bench-{lg_code}", display_name=f"計測 {lg_code}", password=PASSWORD,
                    lg_code=lg_code, role=role, granted_by="bench", totp_secret=secret)
                secrets_[lg_code] = secret
            ishikawa = await registry.tenant_for(session, ISHIKAWA)
            await bind_tenant(session, ishikawa)
            disaster = await disaster_service.open_disaster(
                session, ishikawa, name="計測用の地震", kind="地震", occurred_on=date(2026, 11, 1), description="",
                affected=[KANAZAWA], relief_act=[KANAZAWA], actor="bench")
            await session.commit()
            return secrets_, disaster.id
    finally:
        await engine.dispose()


def roster(rows: int) -> bytes:
    """``rows`` synthetic people registered by 金沢市, all valid, in the template's columns."""
    from kiban.modules.disaster.fields import TEMPLATE_FIELDS
    from kiban.modules.disaster.synthetic import iter_registrations

    labels = [f.label for f in TEMPLATE_FIELDS]
    keys = [f.key for f in TEMPLATE_FIELDS]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(labels)
    for n, row in enumerate(iter_registrations(rows, seed=11, registering_lg_codes=(KANAZAWA,))):
        birth = row["birth_date"]
        values = {
            "family_name": row["family_name"].strip() or "不明", "given_name": row["given_name"].strip() or "不明",
            "family_kana": row["family_kana"] or "", "given_kana": row["given_kana"] or "",
            "birth_date": birth.isoformat() if isinstance(birth, date) else "",
            "sex": {"male": "男", "female": "女"}.get(row["sex"] or "", ""), "phone": row["phone"] or "",
            "home_lg_code": row["home_lg_code"], "home_address": row["home_address"] or "",
            "household_key": f"B-{n}", "household_size": "1", "whereabouts": "在宅",
        }
        writer.writerow([values.get(k, "") for k in keys])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# -- the clients ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def sign_in(base: str, lg_code: str, secret: bytes) -> httpx.AsyncClient:
    from kiban.core.identity import credentials

    client = httpx.AsyncClient(base_url=base, timeout=120)
    await client.get("/signin")
    first = await client.post("/signin", data={"username": f"bench-{lg_code}", "password": PASSWORD,
                                               "csrf_token": client.cookies.get("kiban_csrf")})
    second = await client.post("/signin/totp", data={"code": credentials.totp_code(secret),
                                                     "csrf_token": client.cookies.get("kiban_csrf")})
    if first.status_code != 303 or second.status_code != 303:
        raise RuntimeError(f"sign-in failed for {lg_code}: {first.status_code} {second.status_code}")
    return client


@dataclasses.dataclass
class Window:
    latencies: list[float] = dataclasses.field(default_factory=list)
    errors: int = 0

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    def line(self, name: str) -> str:
        return (f"{name:<28} {len(self.latencies):6d} requests  p50 {self.pct(50):8.1f} ms  p90 {self.pct(90):8.1f} ms"
                f"  p99 {self.pct(99):8.1f} ms"
                f"  max {max(self.latencies, default=float('nan')):8.1f} ms  errors {self.errors}")


class Load:
    """Closed-loop clients on the settings page; each answer counts in the window it was asked in
    (a request the import held up counts in the import's window, however long it waited)."""

    def __init__(self, base: str, cookies, clients: int) -> None:
        self.base, self.cookies, self.clients = base, cookies, clients
        self.windows: dict[str, Window] = {}
        self.window = "warm-up"
        self.stop = False

    async def _client(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, cookies=self.cookies, timeout=120) as client:
            while not self.stop:
                window = self.window
                started = time.perf_counter()
                try:
                    response = await client.get(f"/t/{SAPPORO}/settings")
                    ok = response.status_code == 200 and "テナント設定" in response.text
                except httpx.HTTPError:
                    ok = False
                elapsed = (time.perf_counter() - started) * 1000
                w = self.windows.setdefault(window, Window())  # counted where it started
                w.latencies.append(elapsed)
                w.errors += 0 if ok else 1

    async def run(self) -> None:
        await asyncio.gather(*(self._client() for _ in range(self.clients)))


async def import_old_way(owner_url: str, batch_id: str, disaster_id: str) -> None:
    """Accept and register the whole roster in one transaction, as before issue #11."""
    from types import SimpleNamespace

    from kiban.core.jobs import kinds
    from kiban.core.jobs.runner import run_now
    from kiban.core.registry import service as registry
    from kiban.core.tenancy.context import bind_tenant
    from kiban.kit.db import create_engine, make_sessionmaker
    from kiban.modules.disaster import imports, service

    engine = create_engine(owner_url, pool=False)
    imports.CHUNK_ROWS = 10 ** 9
    kinds.KINDS[imports.KIND] = dataclasses.replace(kinds.KINDS[imports.KIND], chunk_seconds=10 ** 9)
    try:
        async with make_sessionmaker(engine)() as session:
            tenant = await registry.tenant_for(session, KANAZAWA)
            await bind_tenant(session, tenant)
            staff = SimpleNamespace(tenant=tenant, label="計測（金沢市）", api_key=None, principal=SimpleNamespace(id="bench"))
            disaster = await service.get_disaster(session, disaster_id)
            batch = await service.roster_batch(session, disaster_id, batch_id)
            job = await imports.accept(session, staff, disaster, batch, {"valid_only": "yes"})
            await session.commit()
            await run_now(session, job, worker="old-way")
    finally:
        await engine.dispose()


async def drive(base: str, owner_url: str, secrets_: dict[str, bytes], disaster_id: str, args) -> dict:
    reader = await sign_in(base, SAPPORO, secrets_[SAPPORO])
    importer = await sign_in(base, KANAZAWA, secrets_[KANAZAWA])
    load = Load(base, reader.cookies, args.clients)
    running = asyncio.create_task(load.run())
    figures: dict = {}
    try:
        await asyncio.sleep(2)
        load.window = "idle"
        await asyncio.sleep(args.idle)
        content = roster(args.rows)
        load.window = "upload (reading the file)"
        started = time.perf_counter()
        uploaded = await importer.post(f"/t/{KANAZAWA}/disasters/{disaster_id}/imports",
                                       data={"csrf_token": importer.cookies.get("kiban_csrf")},
                                       files={"file": ("名簿.csv", content, "text/csv")})
        if uploaded.status_code != 303:
            raise RuntimeError(f"upload answered {uploaded.status_code}: {uploaded.text[:300]}")
        url = uploaded.headers["location"]
        figures["upload_s"] = time.perf_counter() - started
        load.window = "import (registering)"
        started = time.perf_counter()
        if args.mode == "old":
            await import_old_way(owner_url, url.rsplit("/", 1)[1], disaster_id)
        else:
            accepted = await importer.post(f"{url}/accept", data={"csrf_token": importer.cookies.get("kiban_csrf"),
                                                                  "valid_only": "yes"})
            figures["accept_ms"] = (time.perf_counter() - started) * 1000
            if accepted.status_code != 303:
                raise RuntimeError(f"accept answered {accepted.status_code}: {accepted.text[:300]}")
            while True:
                await asyncio.sleep(1)
                poll = await importer.get(f"{url}?progress=1", headers={"HX-Request": "true"})
                if poll.headers.get("hx-refresh") == "true":
                    break
                if time.perf_counter() - started > args.timeout:
                    found = re.search(r"登録中: ([0-9,]+ / [0-9,]+) 件", poll.text)
                    figures["unfinished"] = found.group(1) if found else "?"
                    break
        figures["import_s"] = time.perf_counter() - started
        load.window = "idle again (after it)"
        await asyncio.sleep(args.idle)
        load.window = "after"
        page = await importer.get(url)
        found = re.search(r"新たに登録 ([0-9,]+) 人", page.text)
        figures["registered"] = found.group(1) if found else "?"
        figures["status"] = "imported" if "取り込み済み" in page.text else (
            f"NOT imported within --timeout {args.timeout:g} s (at {figures.get('unfinished', '?')})")
    finally:
        load.stop = True
        await running
        await reader.aclose()
        await importer.aclose()
    figures["windows"] = load.windows
    return figures


def run_backend(backend: str, args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kiban-bench-isolation-"))
    db = f"kiban_bench_iso_{uuid.uuid4().hex[:8]}"
    if backend == "postgresql":
        owner_url, app_url = PG.format(user="postgres", db=db), PG.format(user=APP_ROLE, db=db)
        asyncio.run(admin(f'CREATE DATABASE "{db}"'))
    else:
        owner_url = app_url = f"sqlite+aiosqlite:///{tmp / 'kiban.sqlite3'}"
    processes: list[subprocess.Popen] = []
    try:
        print(f"\n[{backend}] preparing a fresh database ...", flush=True)
        secrets_, disaster_id = asyncio.run(prepare(owner_url, APP_ROLE if backend == "postgresql" else None))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "KIBAN_DATABASE_URL": app_url, "KIBAN_LOG_LEVEL": os.environ.get("KIBAN_BENCH_LOG_LEVEL", "WARNING"),
               "KIBAN_JOBS_WORKERS": "1" if args.mode == "new" else "0"}
        processes.append(subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--mode", args.mode], env=env,
                                          cwd=tmp, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "w")))
        if args.mode == "separate":
            processes.append(subprocess.Popen([str(ROOT / ".venv/bin/kiban"), "jobs", "run"], env=env, cwd=tmp,
                                              stdout=subprocess.DEVNULL, stderr=open(tmp / "jobs.log", "w")))
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        figures = asyncio.run(drive(base, owner_url, secrets_, disaster_id, args))
        windows = figures["windows"]
        print(f"[{backend}] mode {args.mode}, {args.clients} clients on 札幌市's settings page, {args.rows:,}-row roster "
              f"imported by 金沢市, 1 uvicorn process, cores={os.cpu_count()}")
        for name in ("idle", "upload (reading the file)", "import (registering)", "idle again (after it)"):
            if name in windows:
                print("  " + windows[name].line(name))
        during = windows.get("import (registering)")
        idle = Window([*windows.get("idle", Window()).latencies, *windows.get("idle again (after it)", Window()).latencies])
        print(f"  upload {figures['upload_s']:.1f} s; accept answered in {figures.get('accept_ms', float('nan')):.0f} ms; "
              f"import {figures['import_s']:.1f} s; {figures['status']}, new registrations {figures['registered']}")
        if idle.latencies and during and during.latencies:
            print(f"  p99 during the import / idle (before and after together): {during.pct(99) / idle.pct(99):.2f}x "
                  f"(p50 {during.pct(50) / idle.pct(50):.2f}x; idle p50 {idle.pct(50):.1f} ms, p99 {idle.pct(99):.1f} ms)")
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        if backend == "postgresql":
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        if os.environ.get("KIBAN_BENCH_KEEP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[sys.argv.index("--mode") + 1])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--mode", choices=("new", "separate", "old"), default="new")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    for backend in (("sqlite", "postgresql") if args.backend == "both" else (args.backend,)):
        run_backend(backend, args)
    print(f"\nrerun: .venv/bin/python bench/import_isolation.py --backend {args.backend} --rows {args.rows} "
          f"--clients {args.clients} --idle {args.idle:g} --mode {args.mode}")


if __name__ == "__main__":
    main()
