"""Sign-in throughput and the cost of row-level security, on PostgreSQL.

1. My Number Card sign-in (challenge → card signature → chain, dates, CRL checks), with a
   development-CA virtual card, concurrent browsers for a fixed time.
2. Staff sign-in with password (argon2id) + TOTP: a fixed number of distinct accounts (a TOTP
   code is single-use per 30 s step), all signed in concurrently, timed.
3. RLS cost: requests per second for the same tenant-scoped list query
   (GET /api/v1/t/{lg_code}/settings/history, 50 tenants × 40 rows in the table) with the
   policies enabled and disabled, alternating, same role, same server. Target: < 10 %.

    .venv/bin/python bench/auth.py [--duration 8] [--accounts 120] [--clients 20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("KIBAN_SECRET_KEY", secrets.token_urlsafe(32))  # shared with the server

import httpx  # noqa: E402
from _http_load import run_load_sync  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

from kiban.core.identity import credentials  # noqa: E402
from kiban.core.identity import service as identity_service  # noqa: E402
from kiban.core.identity.devca import DevCA, load_card  # noqa: E402
from kiban.core.tenancy import rls  # noqa: E402
from kiban.core.tenancy.context import unscoped  # noqa: E402
from kiban.core.tenancy.models import tenant_owned_tables  # noqa: E402
from kiban.core.tenancy.settings_models import TenantSettingChange  # noqa: E402
from kiban.kit.db import create_engine, utcnow  # noqa: E402
from kiban.ops.provision import build_database  # noqa: E402

PG = "postgresql+asyncpg://{user}@127.0.0.1:5432/{db}"
APP_ROLE = "kiban_app"
RLS_TENANT = "011002"
PASSWORD = "benchmark password 1"


async def admin(sql: str) -> None:
    engine = create_engine(PG.format(user="postgres", db="postgres"), pool=False)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


async def prepare(owner_url: str, accounts: int) -> list[tuple[str, bytes]]:
    await build_database(owner_url, app_role=APP_ROLE)
    engine = create_engine(owner_url, pool=False)
    made = []
    try:
        async with AsyncSession(engine) as session:
            for n in range(accounts + 1):
                secret = credentials.new_totp_secret()
                username = f"bench-{n}"
                await identity_service.create_staff(session, username=username, display_name=f"計測 {n}",
                                                    password=PASSWORD, lg_code=RLS_TENANT, role="admin",
                                                    granted_by="bench", totp_secret=secret)
                made.append((username, secret))
            codes = [r[0] for r in (await session.execute(text(
                "SELECT code FROM organization WHERE type IN ('市','町') ORDER BY code LIMIT 49"))).all()]
            async with unscoped(session, "bench data"):
                for lg_code in [RLS_TENANT, *codes]:
                    for version in range(1, 41):
                        session.add(TenantSettingChange(lg_code=lg_code, key="childcare.application_deadline_day",
                                                        version=version, old_value=version, new_value=version + 1,
                                                        changed_by="bench", reason="", changed_at=utcnow()))
                await session.commit()
    finally:
        await engine.dispose()
    return made


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def csrf(client: httpx.AsyncClient) -> str:
    return client.cookies.get("kiban_csrf")


async def card_sign_ins(base: str, ca: DevCA, clients: int, duration: float) -> tuple[int, int, float]:
    cards = [load_card(ca.issue(f"bench-{n}")) for n in range(clients)]
    ok = failed = 0
    deadline = time.perf_counter() + duration

    async def browser(card) -> None:
        nonlocal ok, failed
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            while time.perf_counter() < deadline:
                page = (await client.get("/signin/card")).text
                challenge_id = re.search(r'name="challenge_id" value="([^"]+)"', page).group(1)
                nonce = re.search(r'<code id="challenge">([^<]+)</code>', page).group(1)
                response = await client.post("/signin/card", data={
                    "challenge_id": challenge_id, "certificate": card.certificate_pem,
                    "signature": card.sign(nonce), "csrf_token": csrf(client)})
                if response.status_code == 303:
                    ok += 1
                else:
                    failed += 1
                client.cookies.delete("kiban_session")

    started = time.perf_counter()
    await asyncio.gather(*(browser(c) for c in cards))
    return ok, failed, time.perf_counter() - started


async def password_totp_sign_ins(base: str, accounts: list[tuple[str, bytes]], clients: int) -> tuple[int, int, float]:
    queue = list(accounts)
    ok = failed = 0

    async def browser() -> None:
        nonlocal ok, failed
        while queue:
            username, secret = queue.pop()
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                await client.get("/signin")
                first = await client.post("/signin", data={"username": username, "password": PASSWORD,
                                                           "csrf_token": csrf(client)})
                second = await client.post("/signin/totp", data={"code": credentials.totp_code(secret),
                                                                 "csrf_token": csrf(client)})
                if first.status_code == 303 and second.status_code == 303:
                    ok += 1
                else:
                    failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(browser() for _ in range(clients)))
    return ok, failed, time.perf_counter() - started


async def session_cookie(base: str, username: str, secret: bytes) -> str:
    async with httpx.AsyncClient(base_url=base) as client:
        await client.get("/signin")
        await client.post("/signin", data={"username": username, "password": PASSWORD, "csrf_token": csrf(client)})
        await client.post("/signin/totp", data={"code": credentials.totp_code(secret), "csrf_token": csrf(client)})
        return client.cookies.get("kiban_session")


async def set_rls(owner_url: str, enabled: bool) -> None:
    engine = create_engine(owner_url, pool=False)
    try:
        async with engine.begin() as connection:
            if enabled:
                await connection.run_sync(rls.enable_on, tenant_owned_tables())
            else:
                await connection.run_sync(rls.disable_on, tenant_owned_tables())
    finally:
        await engine.dispose()


def load(base: str, cookie: str, clients: int, duration: float) -> tuple[float, float]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        data = pool.apply(run_load_sync, (base, [f"/api/v1/t/{RLS_TENANT}/settings/history"], clients, 1.0,
                                          duration, {"Cookie": f"kiban_session={cookie}"}))
    latencies = sorted(data["latencies_ms"])
    if data["errors"]:
        raise RuntimeError(f"{data['errors']} failed requests: {data['statuses']}")
    return len(latencies) / data["elapsed_s"], latencies[int(len(latencies) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--accounts", type=int, default=120)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    db = f"kiban_bench_auth_{uuid.uuid4().hex[:8]}"
    owner_url, app_url = PG.format(user="postgres", db=db), PG.format(user=APP_ROLE, db=db)
    tmp = Path(tempfile.mkdtemp(prefix="kiban-bench-auth-"))
    server = None
    asyncio.run(admin(f'CREATE DATABASE "{db}"'))
    try:
        print(f"preparing: {args.accounts} staff accounts (argon2id), 50 tenants × 40 history rows ...", flush=True)
        accounts = asyncio.run(prepare(owner_url, args.accounts))
        ca = DevCA(tmp / "dev-ca")
        ca.init()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "KIBAN_DATABASE_URL": app_url, "KIBAN_LOG_LEVEL": "WARNING",
               "KIBAN_JPKI_DEV_CA_ENABLED": "1", "KIBAN_JPKI_DEV_CA_DIR": str(tmp / "dev-ca")}
        server = subprocess.Popen([str(ROOT / ".venv/bin/kiban"), "serve", "--port", str(port)], env=env,
                                  cwd=tmp, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "w"))
        for _ in range(150):
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        print(f"PostgreSQL, app role {APP_ROLE}, 1 uvicorn worker, cores={os.cpu_count()}")
        ok, failed, elapsed = asyncio.run(card_sign_ins(base, ca, 8, args.duration))
        print(f"card sign-in (challenge + RSA-2048 signature + chain + CRL), 8 browsers: "
              f"{ok / elapsed:.1f} sign-ins/s ({ok} in {elapsed:.1f} s, {failed} refused)", flush=True)
        rls_user = accounts.pop()
        ok, failed, elapsed = asyncio.run(password_totp_sign_ins(base, accounts, 8))
        print(f"staff sign-in (argon2id password + TOTP), 8 browsers: {ok / elapsed:.1f} sign-ins/s "
              f"({ok} accounts in {elapsed:.1f} s, {failed} refused)", flush=True)
        cookie = asyncio.run(session_cookie(base, *rls_user))
        results = {True: [], False: []}
        for enabled in (True, False, True, False):
            asyncio.run(set_rls(owner_url, enabled))
            results[enabled].append(load(base, cookie, args.clients, args.duration))
        asyncio.run(set_rls(owner_url, True))
        on = sum(r for r, _ in results[True]) / 2
        off = sum(r for r, _ in results[False]) / 2
        print(f"scoped list query, {args.clients} clients: RLS on {on:.0f} req/s (p99 "
              f"{max(p for _, p in results[True]):.1f} ms), RLS off {off:.0f} req/s (p99 "
              f"{max(p for _, p in results[False]):.1f} ms)")
        cost = (off - on) / off * 100
        print(f"RLS cost: {cost:.1f} % of throughput (on/off ratio {on / off:.3f}); target < 10 %: "
              f"{'yes' if cost < 10 else 'NO'}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=15)
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        if os.environ.get("KIBAN_BENCH_KEEP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"rerun: .venv/bin/python bench/auth.py --duration {args.duration:g} --accounts {args.accounts} "
          f"--clients {args.clients}")


if __name__ == "__main__":
    main()
