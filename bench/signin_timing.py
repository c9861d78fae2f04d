"""How long a refused staff sign-in takes, by why it was refused: an unknown user name, a wrong
password, an account locked at the second step, an invitation not yet accepted. The four
medians should agree within noise (one argon2 verification each, the same reads); before
issue 10 an invited account answered in ~2 ms against ~100 ms for the others.

Runs the app in this process on a fresh SQLite database (no server), each try from its own
address so that throttling never answers first.

    .venv/bin/python bench/signin_timing.py [--tries 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("KIBAN_SECRET_KEY", secrets.token_urlsafe(32))

import httpx  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

from kiban.core.audit import service as audit  # noqa: E402
from kiban.core.identity import service as identity_service  # noqa: E402
from kiban.core.identity.models import StaffCredential  # noqa: E402
from kiban.core.registry import service as registry_service  # noqa: E402
from kiban.core.tenancy.context import as_tenant  # noqa: E402
from kiban.kit.db import create_engine, utcnow  # noqa: E402
from kiban.ops.provision import build_database  # noqa: E402
from kiban.kit.settings import Settings  # noqa: E402
from kiban.main import create_app  # noqa: E402

SAPPORO = "011002"
PASSWORD = "correct horse battery staple"


async def _accounts(engine) -> None:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        for name in ("bench-wrong", "bench-locked"):
            await identity_service.create_staff(session, username=name, display_name="計測 用", password=PASSWORD,
                                                lg_code=SAPPORO, role="staff", granted_by="bench")
        async with as_tenant(session, await registry_service.tenant_for(session, SAPPORO)):
            await identity_service.invite_staff(session, "bench", audit.Actor("operator", "bench"),
                                                username="bench-invited", display_name="計測 招待", role="staff")
        locked = (await session.scalars(select(StaffCredential).where(StaffCredential.username == "bench-locked"))).one()
        locked.failed_count, locked.locked_until = 5, utcnow() + timedelta(hours=1)
        await session.commit()


async def run(tries: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        print("building the database (migrations and the registry) ...", file=sys.stderr)
        await build_database(url)
        engine = create_engine(url)
        await _accounts(engine)
        app = create_app(Settings(database_url=url, log_level="WARNING"), engine=engine)
        cases = {"unknown": "bench-nobody", "wrong": "bench-wrong", "locked": "bench-locked",
                 "invited": "bench-invited"}
        timings: dict[str, list[float]] = {case: [] for case in cases}
        n = 0
        for round_ in range(tries + 1):  # the first round warms up (and is not counted)
            for case, username in cases.items():
                n += 1
                transport = httpx.ASGITransport(app=app, client=(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", 1))
                async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                    await client.get("/signin")
                    data = {"username": username, "password": "not the password!",
                            "csrf_token": client.cookies.get("kiban_csrf")}
                    started = time.perf_counter()
                    response = await client.post("/signin", data=data)
                    elapsed = time.perf_counter() - started
                assert response.status_code == 401, (case, response.status_code)
                if round_:
                    timings[case].append(elapsed * 1000)
        await engine.dispose()
    print(f"refused sign-ins, {tries} tries each (ms)")
    print(f"{'case':<10}{'median':>10}{'p10':>10}{'p90':>10}")
    for case, values in timings.items():
        deciles = statistics.quantiles(values, n=10)
        print(f"{case:<10}{statistics.median(values):>10.1f}{deciles[0]:>10.1f}{deciles[-1]:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=30)
    asyncio.run(run(parser.parse_args().tries))


if __name__ == "__main__":
    main()
