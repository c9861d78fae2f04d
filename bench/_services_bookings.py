"""施設予約 under contention (issue #12): 10,000 booking attempts from 200 concurrent clients on
100 slots against a real ``kiban serve`` on PostgreSQL. It must end with exactly 100 bookings:
one per slot, however many tried it at the same moment.

A fresh database (the real migrations, seed, application role with row-level security) gets
一宮市's facility with one room and 100 slots (10 days × 10 one-hour slots), and 200 residents
signed in and registered as users (made directly in the database, as bench/load.py does: 200 card
sign-ins would measure the sign-in). ``kiban serve`` runs as its own process as the application
role (``--workers 2``, else 1; its job runner off, so the confirmations written in each booking's
transaction wait in the outbox instead of being mailed). Each client, closed-loop, POSTs the JSON
booking API for a random slot ``--attempts / --clients`` times. A 201 is a booking, a 409 the
clear refusal 「この枠はすでに予約されています…」; anything else is an error.

Prints attempts, successes, refusals, errors, req/s, p50/p99, the bookings the database holds
(active, and per slot at most one) and the command to rerun. Exits 1 if the database does not
hold exactly one active booking per slot or any request failed.

    .venv/bin/python bench/_services_bookings.py [--clients 200] [--attempts 10000] [--workers N] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("KIBAN_SECRET_KEY", secrets.token_urlsafe(32))

from sqlalchemy import func, select, text  # noqa: E402

from kiban.kit.db import create_engine, make_sessionmaker, utcnow  # noqa: E402

PG = "postgresql+asyncpg://{user}@127.0.0.1:5432/{db}"
APP_ROLE = "kiban_app"
ICHINOMIYA = "232033"
SLOTS_PER_DAY, DAYS = 10, 10


async def pg_admin(sql: str) -> None:
    engine = create_engine(PG.format(user="postgres", db="postgres"), pool=False)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


async def prepare(owner_url: str, clients: int) -> tuple[str, str, list[str], list[str]]:
    """The facility, its room, the 100 slots (Japan time) and the residents' session tokens."""
    import _load_data

    from kiban.core.identity.models import WebSession
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.context import bind_tenant
    from kiban.modules.reservations import service
    from kiban.modules.reservations.models import Booker, Facility, Room

    engine = create_engine(owner_url)
    try:
        tokens = await _load_data.resident_sessions(engine, clients)
        async with make_sessionmaker(engine)() as session:
            await bind_tenant(session, await registry_service.tenant_for(session, ICHINOMIYA))
            now = utcnow()
            facility = service.FacilityRepository(session).add(Facility(
                id=str(uuid.uuid4()), name="負荷計測用の体育館（架空）", kind="gym", address="", description="",
                eligibility="anyone", slot_minutes=60, opening_hours={str(d): ["09:00", "19:00"] for d in range(7)},
                booking_window_days=30, cancel_deadline_hours=0, max_active_per_person=1000, created_by="bench",
                created_at=now, updated_at=now))
            room = service.RoomRepository(session).add(Room(id=str(uuid.uuid4()), facility_id=facility.id,
                                                            name="アリーナ全面", fee_yen=3000, created_at=now))
            principals = (await session.scalars(select(WebSession.principal_id))).all()
            for principal_id in principals:
                service.BookerRepository(session).add(Booker(
                    principal_id=principal_id, kind="resident", name="計測用の住民", group_name="",
                    email=f"{principal_id[:8]}@example.jp", status="active", feed_version=1, created_at=now))
            await session.commit()
        first = service.today_jst() + timedelta(days=1)
        slots = [f"{first + timedelta(days=d):%Y-%m-%d}T{9 + h:02d}:00" for d in range(DAYS) for h in range(SLOTS_PER_DAY)]
        return facility.id, room.id, slots, tokens
    finally:
        await engine.dispose()


def start_server(app_url: str, workers: int, tmp: Path) -> tuple[subprocess.Popen, str]:
    from load import free_port, stop, wait_ready

    for count in dict.fromkeys((workers, 1)):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "KIBAN_DATABASE_URL": app_url, "KIBAN_LOG_LEVEL": os.environ.get("KIBAN_BENCH_LOG_LEVEL", "WARNING"), "KIBAN_JOBS_WORKERS": "0"}
        log = open(tmp / f"server-{count}.log", "w")
        server = subprocess.Popen([str(ROOT / ".venv/bin/kiban"), "serve", "--port", str(port), "--workers", str(count)],
                                  env=env, stdout=log, stderr=log, cwd=tmp)
        try:
            wait_ready(base, server)
            return server, base
        except Exception as exc:  # noqa: BLE001
            print(f"  kiban serve --workers {count} did not start ({exc}); trying one worker", flush=True)
            stop(server)
    raise RuntimeError("kiban serve did not start")


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """(status, whether the server closes the connection, body) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status, length, chunked, close = int(lines[0].split()[1]), 0, False, False
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
        return status, close, await reader.readexactly(length)
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return status, close, body
        body += (await reader.readexactly(size + 2))[:-2]


async def drive(base: str, facility_id: str, room_id: str, slots: list[str], tokens: list[str], attempts: int,
                seed: int) -> dict:
    """Closed loop on raw keep-alive HTTP/1.1 connections (one per client): the driver, on the
    same machine, costs a fraction of what an HTTP client library would."""
    host, port = base.removeprefix("http://").split(":")
    path = f"/api/v1/t/{ICHINOMIYA}/reservations/facilities/{facility_id}/bookings"
    per_client = attempts // len(tokens)
    latencies: list[float] = []
    outcome: dict = {"booked": 0, "refused": 0, "errors": {}}
    rng = random.Random(seed)
    plans = [[rng.choice(slots) for _ in range(per_client)] for _ in tokens]
    refusal = "この枠はすでに予約されています".encode()

    def request(token: str, slot: str) -> bytes:
        body = json.dumps({"room_id": room_id, "starts_at": slot}).encode()
        return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: kiban_session={token}\r\n"
                f"Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode() + body

    async def one(token: str, plan: list[str]) -> None:
        reader = writer = None
        for slot in plan:
            raw = request(token, slot)
            started = time.perf_counter()
            for attempt in range(2):
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, int(port))
                try:
                    writer.write(raw)
                    status, close, body = await asyncio.wait_for(_answer(reader), 60)
                    break
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                    writer.close()
                    reader = writer = None
                    # a keep-alive connection the server had just closed: send once more, on a new one
                    if attempt == 0 and isinstance(exc, asyncio.IncompleteReadError) and not exc.partial:
                        continue
                    status, close, body = (-1 if isinstance(exc, asyncio.TimeoutError) else 0), True, b""
                    break
            latencies.append(time.perf_counter() - started)
            if close and writer is not None:
                writer.close()
                reader = writer = None
            if status == 201:
                outcome["booked"] += 1
            elif status == 409 and refusal in body:
                outcome["refused"] += 1
            else:  # a 409 without the clear message is an error too
                key = status if status != 409 else "409 without the message"
                outcome["errors"][key] = outcome["errors"].get(key, 0) + 1
        if writer is not None:
            writer.close()

    async def progress() -> None:
        while True:
            await asyncio.sleep(10)
            print(f"  {time.perf_counter() - started:.0f} s: {len(latencies):,} answered "
                  f"({outcome['booked']} booked, {outcome['refused']:,} refused)", flush=True)

    started = time.perf_counter()
    reporter = asyncio.create_task(progress())
    await asyncio.gather(*(one(token, plan) for token, plan in zip(tokens, plans, strict=True)))
    reporter.cancel()
    outcome["seconds"] = time.perf_counter() - started
    latencies.sort()
    outcome["attempts"] = len(latencies)
    outcome["p50"] = latencies[len(latencies) // 2] * 1000
    outcome["p99"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return outcome


async def stored(owner_url: str, facility_id: str) -> tuple[int, int, int]:
    """(active bookings, distinct slots among them, the most active bookings on one slot)."""
    from kiban.modules.reservations.models import Booking

    engine = create_engine(owner_url, pool=False)
    try:
        async with engine.connect() as c:
            rows = (await c.execute(select(Booking.room_id, Booking.starts_at, func.count()).where(
                Booking.facility_id == facility_id, Booking.status == "active")
                .group_by(Booking.room_id, Booking.starts_at))).all()
    finally:
        await engine.dispose()
    return sum(r[2] for r in rows), len(rows), max((r[2] for r in rows), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--attempts", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--keep", action="store_true", help="keep the database and the server's log")
    args = parser.parse_args()
    from load import stop

    from kiban.ops.provision import build_database

    tmp = Path(tempfile.mkdtemp(prefix="kiban-bookings-"))
    db = f"kiban_bookings_{uuid.uuid4().hex[:8]}"
    owner_url, app_url = PG.format(user="postgres", db=db), PG.format(user=APP_ROLE, db=db)
    server = None
    asyncio.run(pg_admin(f'CREATE DATABASE "{db}"'))
    try:
        began = time.perf_counter()
        asyncio.run(build_database(owner_url, app_role=APP_ROLE))
        facility_id, room_id, slots, tokens = asyncio.run(prepare(owner_url, args.clients))
        print(f"PostgreSQL database {db} ready in {time.perf_counter() - began:.0f} s: 一宮市, 1 facility, "
              f"{len(slots)} slots, {len(tokens)} residents signed in and registered", flush=True)
        server, base = start_server(app_url, args.workers, tmp)
        result = asyncio.run(drive(base, facility_id, room_id, slots, tokens, args.attempts, args.seed))
        active, distinct, most = asyncio.run(stored(owner_url, facility_id))
    finally:
        stop(server)
        if args.keep:
            print(f"kept database {db} and {tmp}")
        else:
            asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            shutil.rmtree(tmp, ignore_errors=True)
    errors = sum(result["errors"].values())
    print(f"attempts   {result['attempts']:,} from {args.clients} concurrent clients on {len(slots)} slots")
    print(f"successes  {result['booked']:,} (201)")
    print(f"refusals   {result['refused']:,} (409 「この枠はすでに予約されています…」)")
    print(f"errors     {errors:,}" + (f" {result['errors']}" if errors else ""))
    print(f"req/s      {result['attempts'] / result['seconds']:,.0f} ({result['seconds']:.1f} s)")
    print(f"latency    p50 {result['p50']:.0f} ms, p99 {result['p99']:.0f} ms")
    print(f"database   {active} active bookings on {distinct} slots, at most {most} per slot")
    ok = active == len(slots) == distinct and most == 1 and result["booked"] == len(slots) and errors == 0
    print(f"verdict    {'PASS' if ok else 'FAIL'}: exactly {len(slots)} bookings, one per slot")
    print(f"rerun      .venv/bin/python bench/_services_bookings.py --clients {args.clients} --attempts {args.attempts} "
          f"--workers {args.workers} --seed {args.seed}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
