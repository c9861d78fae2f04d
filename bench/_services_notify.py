"""The notification worker (core/notify, issue #12): how many e-mails a minute it delivers to a
local SMTP server. Target: at least 3,000 a minute.

A fresh database (the real migrations and seed; SQLite file by default, or PostgreSQL as the
application role with row-level security) gets ``--count`` notifications for ``--tenants``
municipalities, written with ``notify.send`` in batches of 500 (as modules write them: in their
own transactions). An aiosmtpd server on 127.0.0.1 (its own process, as a real server would be)
accepts and parses every message and notes its Message-ID. Then the durable-job runner (``core/jobs``, the same one ``kiban serve``
runs, with its default pause between chunks) delivers them: claim → SMTP → 送信済み, chunk by
chunk. The per-tenant rate limit is lifted for the run (the default, 3,000 a minute, would be
what is measured otherwise).

Prints the time to deliver, messages a minute, what the SMTP server received (distinct
Message-IDs, duplicates) and the command to rerun. Exits 1 if any notification is not 送信済み
or the server did not receive exactly one message per notification.

    .venv/bin/python bench/_services_notify.py [--count 3000] [--tenants 1] [--workers 1]
        [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import sys
import tempfile
import subprocess
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import text  # noqa: E402

from kiban.kit.db import create_engine, make_sessionmaker  # noqa: E402

PG = "postgresql+asyncpg://{user}@127.0.0.1:5432/{db}"
APP_ROLE = "kiban_app"
TENANTS = ["232033", "232114", "232017", "011002", "012025", "131016", "271004", "401307"]  # 一宮市, 豊田市, 名古屋市 ...


SMTP_SERVER = """
import email, sys, time
from email.policy import default
from aiosmtpd.controller import Controller

out = open(sys.argv[2], "a", buffering=1)

class Inbox:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=default)
        out.write(message["Message-ID"] + "\\n")
        return "250 Message accepted for delivery"

controller = Controller(Inbox(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def received(path: Path) -> Counter:
    return Counter(line.strip() for line in path.read_text().splitlines() if line.strip())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def pg_admin(sql: str) -> None:
    engine = create_engine(PG.format(user="postgres", db="postgres"), pool=False)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


async def main(args) -> int:
    from sqlalchemy import func, select

    from kiban.core.jobs.runner import Runner
    from kiban.core.notify import delivery
    from kiban.core.notify import service as notify
    from kiban.core.notify.models import Notification
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy import safety  # noqa: F401 - the tenant safety net and RLS settings, as the server has
    from kiban.core.tenancy.context import bind_tenant, unscoped
    from kiban.ops.provision import build_database

    tmp = Path(tempfile.mkdtemp(prefix="kiban-notify-bench-"))
    db_name = f"kiban_notify_bench_{os.getpid()}"
    if args.backend == "postgresql":
        await pg_admin(f'DROP DATABASE IF EXISTS "{db_name}"')
        await pg_admin(f'CREATE DATABASE "{db_name}"')
        owner_url, app_url = PG.format(user="postgres", db=db_name), PG.format(user=APP_ROLE, db=db_name)
        await build_database(owner_url, app_role=APP_ROLE)
    else:
        owner_url = app_url = f"sqlite+aiosqlite:///{tmp / 'kiban.sqlite3'}"
        await build_database(owner_url)
    # The SMTP server is its own process, as a real one would be (not sharing this one's CPU).
    port, inbox_file = free_port(), tmp / "received.txt"
    inbox_file.touch()
    server = subprocess.Popen([sys.executable, "-c", SMTP_SERVER, str(port), str(inbox_file)],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    codes = TENANTS[:args.tenants]
    delivery.configure(delivery.DeliveryConfig(
        smtp_host="127.0.0.1", smtp_port=port, smtp_from="noreply@bench.example.jp",
        overrides={c: delivery.Limits(per_minute=10_000_000, per_day=10_000_000) for c in codes}))
    engine = create_engine(app_url)
    sessionmaker = make_sessionmaker(engine)
    template = notify.register_template(notify.TemplateDef(
        key="bench.receipt", label="計測用の受付通知", subject="【{municipality}】{title}を受け付けました（{receipt_no}）",
        body="{name}様\n\n{title}を受け付けました。\n受付番号: {receipt_no}\n\nこのメールには返信できません。",
        placeholders=("municipality", "title", "name", "receipt_no")))
    try:
        started = time.perf_counter()
        per_tenant = args.count // len(codes)
        for code in codes:
            for batch_start in range(0, per_tenant, 500):
                async with sessionmaker() as session:
                    tenant = await registry_service.tenant_for(session, code)
                    await bind_tenant(session, tenant)
                    for i in range(batch_start, min(per_tenant, batch_start + 500)):
                        await notify.send(session, tenant, template=template.key,
                                          to=notify.Recipient(email=f"resident{i}@example.jp", name=f"住民 {i}"),
                                          context={"municipality": tenant.name, "title": "粗大ごみ収集の申込",
                                                   "name": f"住民 {i}", "receipt_no": f"R-{i:06d}"},
                                          service="aichi-e-shinsei", dedupe_key=f"bench:{i}")
                    await session.commit()
        queued = time.perf_counter() - started
        total = per_tenant * len(codes)
        runner = Runner(sessionmaker, worker="bench", concurrency=args.workers, kinds=[delivery.KIND],
                        poll_seconds=0.05)
        started, cpu_started = time.perf_counter(), time.process_time()
        runner.start()
        while True:
            await asyncio.sleep(0.1)
            async with sessionmaker() as session:
                async with unscoped(session, "計測: 全団体の送信状況"):
                    done = (await session.execute(select(func.count(Notification.id))
                                                  .where(Notification.state != "queued",
                                                         Notification.state != "sending"))).scalar_one()
            if done >= total or time.perf_counter() - started > 110:
                break
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        await runner.stop()
        async with sessionmaker() as session:
            async with unscoped(session, "計測: 全団体の送信状況"):
                states = dict((await session.execute(select(Notification.state, func.count(Notification.id))
                                                     .group_by(Notification.state))).all())
        await asyncio.sleep(0.2)
        message_ids = received(inbox_file)
        duplicates = sum(n - 1 for n in message_ids.values() if n > 1)
        print(f"backend: {args.backend}; tenants: {len(codes)}; runner loops: {args.workers}")
        print(f"queued {total:,} notifications with notify.send in {queued:.1f} s "
              f"({total / queued:,.0f}/s, in their senders' transactions)")
        print(f"delivered: {states.get('sent', 0):,} 送信済み, states {states}, in {elapsed:.1f} s")
        print(f"throughput: {states.get('sent', 0) / elapsed * 60:,.0f} messages/minute (target ≥ 3,000)")
        print(f"the delivering process used {cpu:.1f} s of CPU: {states.get('sent', 0) / max(cpu, 1e-9) * 60:,.0f} "
              f"messages per CPU-minute; machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
              "(a busy shared machine lowers the wall-clock figure)")
        print(f"SMTP server received: {sum(message_ids.values()):,} messages, "
              f"{len(message_ids):,} distinct Message-IDs, {duplicates} duplicates")
        print("rerun: .venv/bin/python bench/_services_notify.py "
              f"--count {args.count} --tenants {args.tenants} --workers {args.workers} --backend {args.backend}")
        ok = states.get("sent", 0) == total and len(message_ids) == total and duplicates == 0
        return 0 if ok else 1
    finally:
        delivery.configure(None)
        server.terminate()
        server.wait()
        await engine.dispose()
        if args.backend == "postgresql":
            await pg_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--tenants", type=int, default=1, choices=range(1, len(TENANTS) + 1))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    sys.exit(asyncio.run(main(parser.parse_args())))
