"""Tenant pages on the national-scale database (``bench/national_data.py``): median and p99.

Each page is requested through the whole application (``create_app``, in process over ASGI: the
figures are the server's, without a network or a load generator in the way) as a signed-in
administrator of the organisation, connected as the application role so that row-level security
is in force as in production. Every page is requested ``--runs`` times (default 30) after two
unmeasured requests; the table gives the median, the p99 (with 30 runs: the slowest but one)
and the maximum, and the size of the answer.

Organisations: デジタル庁 (000019, the longest chain: the platform's sign-ins), the municipality with
the longest chain (the disaster's registrations and reads come on top of a large city's
everyday log) and 札幌市 (a large city outside the disaster). The audit log is measured on its
first page, a middle page and the last page, and with each filter (action, person, result,
a month, a month and an action).

``--explain`` also prints, for each page, its slowest SQL statements and their EXPLAIN (ANALYZE,
BUFFERS), run as the application role with the page's tenant set, as the page ran them.
``--partitioning`` instead copies audit_entry into a table hash-partitioned by lg_code (16
partitions, same indexes) and times the log's queries on both (the measured reason why Kiban does
not partition it, docs/scaling.md).
``--appends S`` instead appends to the audit log for S seconds with ``--writers`` concurrent
transactions, all on one chain and then each on its own (appends to a chain queue on its head).
``--disaster N`` adds the disaster workspace and dashboards (N runs; they read every visible
record, so keep N small until item 2 of #11 pages them in SQL).

    .venv/bin/python bench/national_pages.py [--url postgresql+asyncpg://kiban_app@127.0.0.1:5432/kiban_national]
                                             [--runs 30] [--only audit] [--explain] [--disaster 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from national_data import NATIONAL_PASSWORD, NATIONAL_SECRET_KEY, national_totp_secret  # noqa: E402

os.environ.setdefault("KIBAN_SECRET_KEY", NATIONAL_SECRET_KEY)

import httpx  # noqa: E402
from sqlalchemy import event, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://kiban_app@127.0.0.1:5432/kiban_national"
PLATFORM = "000019"
SAPPORO = "011002"
CABINET_OFFICE = "000035"


@dataclass
class Page:
    group: str
    label: str
    who: str  # lg_code of the signed-in administrator
    path: str
    runs: int = 0
    timings: list[float] = field(default_factory=list)
    size: int = 0
    status: int = 0
    statements: list[tuple[float, str, object, str, str]] = field(default_factory=list)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


# -- SQL capture (for --explain) -------------------------------------------------------------------------

_capture: contextvars.ContextVar[list | None] = contextvars.ContextVar("capture", default=None)


def install_capture(engine) -> None:
    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        conn.info.setdefault("kiban_bench_started", []).append(time.perf_counter())

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        started = conn.info["kiban_bench_started"].pop()
        if "set_config" in statement:  # the tenant context the next statements run under
            values = list(parameters or ())
            conn.info["kiban_bench_context"] = dict(zip(values[::2], values[1::2], strict=False))
            return
        captured = _capture.get()
        if captured is not None:
            context_now = conn.info.get("kiban_bench_context", {})
            captured.append(((time.perf_counter() - started) * 1000, statement, parameters,
                             context_now.get("kiban.lg_code", ""), context_now.get("kiban.unscoped", "")))


# -- signing in ---------------------------------------------------------------------------------------------

async def signed_in(app, lg_code: str) -> httpx.AsyncClient:
    from kiban.core.identity import credentials

    username = f"n{lg_code}-1"
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", timeout=600)
    await client.get("/signin")
    response = await client.post("/signin", data={"username": username, "password": NATIONAL_PASSWORD,
                                                  "csrf_token": client.cookies.get("kiban_csrf")})
    assert response.status_code == 303, (username, response.status_code, response.text[:300])
    response = await client.post("/signin/totp", data={"code": credentials.totp_code(national_totp_secret(username)),
                                                       "csrf_token": client.cookies.get("kiban_csrf")})
    assert response.status_code == 303, (username, response.status_code, response.text[:300])
    location = response.headers.get("location", "")
    if "choose" in location or "organisation" in location:
        response = await client.post(location, data={"lg_code": lg_code, "csrf_token": client.cookies.get("kiban_csrf")})
    return client


# -- what to measure ------------------------------------------------------------------------------------------

async def facts(owner_url: str) -> dict:
    """Codes and ids the pages need, read once as the owner."""
    import asyncpg

    conn = await asyncpg.connect(make_url(owner_url).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        longest = await conn.fetchrow(
            "SELECT h.lg_code, h.seq, o.name FROM audit_chain_head h JOIN organization o ON o.code = h.lg_code "
            "WHERE o.type IN ('政令市','特別区','市','町','村') ORDER BY h.seq DESC LIMIT 1")
        heads = {r["lg_code"]: r["seq"] for r in await conn.fetch(
            "SELECT lg_code, seq FROM audit_chain_head WHERE lg_code = ANY($1::text[])",
            [PLATFORM, SAPPORO, longest["lg_code"]])}
        actors = {}
        for code in heads:
            actors[code] = await conn.fetchval(
                "SELECT m.principal_id FROM membership m JOIN staff_credential c ON c.principal_id = m.principal_id "
                "WHERE m.lg_code = $1 AND c.username = $2", code, f"n{code}-1")
        resident = await conn.fetchval("SELECT subject_id FROM audit_entry WHERE lg_code = $1 AND "
                                       "action = 'identity.resident.sign_in' AND subject_id IS NOT NULL LIMIT 1", PLATFORM)
        disaster = await conn.fetchval("SELECT id FROM disaster ORDER BY opened_at LIMIT 1")
        registering = await conn.fetchval("SELECT lg_code FROM victim_record GROUP BY lg_code ORDER BY count(*) DESC LIMIT 1") \
            if disaster else None
        names = {r["code"]: r["name"] for r in await conn.fetch(
            "SELECT code, name FROM organization WHERE code = ANY($1::text[])", [*heads, registering or PLATFORM, CABINET_OFFICE])}
        sizes = {r["relname"]: r["rows"] for r in await conn.fetch(
            "SELECT relname, reltuples::bigint AS rows FROM pg_class WHERE relname IN ('audit_entry', 'victim_record')")}
    finally:
        await conn.close()
    return {"longest": longest["lg_code"], "heads": heads, "actors": actors, "resident": resident,
            "disaster": disaster, "registering": registering, "names": names, "sizes": sizes}


def pages(f: dict, only: set[str] | None, disaster_runs: int) -> list[Page]:
    out: list[Page] = []
    for code in (f["longest"], PLATFORM, SAPPORO):
        name = f["names"][code]
        last = max(1, -(-f["heads"][code] // 50))
        actor = f["actors"][code]
        out += [
            Page("audit", f"{name} 監査ログ 1ページ目", code, f"/t/{code}/audit"),
            Page("audit", f"{name} 監査ログ 中ほど（{last // 2:,}ページ目）", code, f"/t/{code}/audit?page={last // 2}"),
            Page("audit", f"{name} 監査ログ 最後（{last:,}ページ目）", code, f"/t/{code}/audit?page={last}"),
            Page("audit", f"{name} 監査ログ 操作で絞り込み", code, f"/t/{code}/audit?action=identity.staff.sign_in"),
            Page("audit", f"{name} 監査ログ 操作者で絞り込み", code, f"/t/{code}/audit?actor={actor}"),
            Page("audit", f"{name} 監査ログ 結果=失敗", code, f"/t/{code}/audit?outcome=failure"),
            Page("audit", f"{name} 監査ログ 期間（1か月）", code, f"/t/{code}/audit?since=2026-06-01&until=2026-06-30"),
            Page("audit", f"{name} 監査ログ 期間＋操作", code,
                 f"/t/{code}/audit?since=2026-06-01&until=2026-06-30&action=identity.staff.sign_in"),
            Page("audit", f"{name} 監査ログ JSON 1ページ目", code, f"/api/v1/t/{code}/audit"),
            Page("audit", f"{name} 監査ログ JSON 最後", code, f"/api/v1/t/{code}/audit?page={last}"),
            Page("staff", f"{name} 職員の一覧", code, f"/t/{code}/staff"),
            Page("staff", f"{name} 職員の一覧 JSON", code, f"/api/v1/t/{code}/staff"),
            Page("settings", f"{name} テナント設定", code, f"/t/{code}/settings"),
        ]
        if code != PLATFORM:
            out.append(Page("adoptions", f"{name} 共通システムの利用状況", code, f"/t/{code}/adoptions"))
    out += [
        Page("registry", "団体の検索「さっぽろ」", SAPPORO, "/organizations?q=%E3%81%95%E3%81%A3%E3%81%BD%E3%82%8D"),
        Page("registry", "団体の検索「中央区」", SAPPORO, "/organizations?q=%E4%B8%AD%E5%A4%AE%E5%8C%BA"),
        Page("registry", "団体の一覧 JSON（北海道・人口順）", SAPPORO, "/api/v1/organizations?prefecture=01&sort=population_desc"),
        Page("public", "共通サービスカタログ", SAPPORO, "/catalog"),
        Page("public", "費用の見える化", SAPPORO, "/costs"),
    ]
    if f["resident"]:
        out.append(Page("resident", "わたしの情報の利用記録（entries_about）", PLATFORM, f"service:entries_about:{f['resident']}"))
    if disaster_runs and f["disaster"]:
        d, reg = f["disaster"], f["registering"]
        out += [
            Page("disaster", f"{f['names'][reg]} 被災者台帳 1ページ目", reg, f"/t/{reg}/disasters/{d}", runs=disaster_runs),
            Page("disaster", f"{f['names'][reg]} 被災者台帳 5ページ目", reg, f"/t/{reg}/disasters/{d}?page=5", runs=disaster_runs),
            Page("disaster", f"{f['names'][reg]} 被災者台帳 氏名で検索", reg,
                 f"/t/{reg}/disasters/{d}?q=%E3%81%9F%E3%81%AA%E3%81%8B", runs=disaster_runs),
            Page("disaster", f"{f['names'][reg]} ダッシュボード", reg, f"/t/{reg}/disasters/{d}/dashboard", runs=disaster_runs),
            Page("disaster", "内閣府 全国ダッシュボード", CABINET_OFFICE, f"/t/{CABINET_OFFICE}/disasters/{d}/dashboard",
                 runs=disaster_runs),
        ]
    if only:
        out = [p for p in out if p.group in only]
    return out


async def measure(app, page: Page, client: httpx.AsyncClient, runs: int, explain: bool) -> None:
    from kiban.core.audit import service as audit

    async def once() -> None:
        if page.path.startswith("service:entries_about:"):
            async with app.state.sessionmaker() as session:
                entries = await audit.entries_about(session, page.path.rsplit(":", 1)[1])
            page.status, page.size = 200, len(entries)
            return
        response = await client.get(page.path)
        page.status, page.size = response.status_code, len(response.content)
        if response.status_code != 200:
            raise SystemExit(f"{page.label}: {response.status_code} {response.text[:300]}")

    for _ in range(2):
        await once()
    n = page.runs or runs
    for _ in range(n):
        started = time.perf_counter()
        await once()
        page.timings.append((time.perf_counter() - started) * 1000)
    if explain:
        captured: list = []
        token = _capture.set(captured)
        try:
            await once()
        finally:
            _capture.reset(token)
        page.statements = sorted(captured, key=lambda s: -s[0])


async def explain_statement(engine, lg_code: str, unscoped: str, statement: str, parameters) -> str:
    """The plan as the page ran it: the application role, the tenant and ``unscoped`` it had set."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT set_config('kiban.lg_code', :c, true), set_config('kiban.unscoped', :u, true)"),
                                 {"c": lg_code, "u": unscoped})
        result = await connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        plan = "\n".join(row[0] for row in result)
        await connection.rollback()
    return plan


# -- partitioning audit_entry by lg_code: measured, not adopted (docs/scaling.md) ------------------------

PARTITIONS = 16
TRIAL_SCHEMA = "kiban_partition_trial"


async def partitioning_trial(owner_url: str, runs: int, keep: bool) -> None:
    """A copy of audit_entry hash-partitioned by lg_code (16 partitions, the same indexes), in a
    scratch schema, and the log's queries timed on both (as the owner: RLS is the same cost on
    both). The copy is dropped afterwards unless ``keep``."""
    import asyncpg

    conn = await asyncpg.connect(make_url(owner_url).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await conn.execute("SET max_parallel_workers_per_gather = 0")
        await conn.execute("SET max_parallel_maintenance_workers = 0")
        await conn.execute("SET maintenance_work_mem = '512MB'")
        exists = await conn.fetchval("SELECT to_regclass($1)", f"{TRIAL_SCHEMA}.audit_entry")
        if not exists:
            started = time.perf_counter()
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {TRIAL_SCHEMA}")
            await conn.execute(f"CREATE TABLE {TRIAL_SCHEMA}.audit_entry (LIKE public.audit_entry INCLUDING DEFAULTS) "
                               "PARTITION BY HASH (lg_code)")
            for i in range(PARTITIONS):
                await conn.execute(f"CREATE TABLE {TRIAL_SCHEMA}.audit_entry_{i} PARTITION OF {TRIAL_SCHEMA}.audit_entry "
                                   f"FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {i})")
            await conn.execute(f"INSERT INTO {TRIAL_SCHEMA}.audit_entry SELECT * FROM public.audit_entry")
            copied = time.perf_counter()
            await conn.execute(f"ALTER TABLE {TRIAL_SCHEMA}.audit_entry ADD PRIMARY KEY (lg_code, seq)")
            for row in await conn.fetch("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'audit_entry' "
                                        "AND indexname <> 'pk_audit_entry'"):
                definition = row["indexdef"].replace(" ON public.audit_entry ", f" ON {TRIAL_SCHEMA}.audit_entry ")
                await conn.execute(re.sub(r"INDEX (\w+)", r"INDEX trial_\1", definition, count=1))
            await conn.execute(f"VACUUM ANALYZE {TRIAL_SCHEMA}.audit_entry")
            print(f"partitioned copy: rows {copied - started:.0f} s, indexes and analyze {time.perf_counter() - copied:.0f} s")
        platform_head = await conn.fetchval("SELECT seq FROM public.audit_chain_head WHERE lg_code = $1", PLATFORM)
        resident = await conn.fetchval("SELECT subject_id FROM public.audit_entry WHERE lg_code = $1 AND subject_id IS NOT NULL "
                                       "ORDER BY seq DESC LIMIT 1", PLATFORM)
        actor = await conn.fetchval("SELECT m.principal_id FROM membership m JOIN staff_credential c USING (principal_id) "
                                    "WHERE c.username = $1", f"n{SAPPORO}-1")
        queries = {
            "1ページ目（seq の範囲）": ("SELECT * FROM {t} WHERE lg_code = $1 AND seq <= $2 AND seq > $2 - 50 ORDER BY seq DESC",
                                  (PLATFORM, platform_head)),
            "操作で絞った深いページ（索引のみ）": ("SELECT seq FROM {t} WHERE lg_code = $1 AND action = $2 ORDER BY seq DESC LIMIT 50 OFFSET 100000",
                                      (PLATFORM, "identity.resident.sign_in")),
            "操作で絞った件数": ("SELECT count(*) FROM {t} WHERE lg_code = $1 AND action = $2", (PLATFORM, "identity.resident.sign_in")),
            "操作者で絞ったページ": ("SELECT seq FROM {t} WHERE lg_code = $1 AND actor_id = $2 AND actor_kind NOT IN ('resident', 'business') "
                             "ORDER BY seq DESC LIMIT 50", (SAPPORO, actor)),
            "期間（1か月）の件数": ("SELECT count(*) FROM {t} WHERE lg_code = $1 AND occurred_at >= '2026-06-01' AND occurred_at < '2026-07-01'",
                             (PLATFORM,)),
            "本人の利用記録（全団体）": ("SELECT * FROM {t} WHERE subject_id = $1 ORDER BY occurred_at DESC LIMIT 500", (resident,)),
            "チェーン全体の読み出し（検証, 札幌市）": ("SELECT seq, hash, prev_hash FROM {t} WHERE lg_code = $1 ORDER BY seq", (SAPPORO,)),
        }
        print(f"\n{'query':<36}{'plain ms':>10}{'partitioned ms':>16}   (median of {runs})")
        for label, (sql, args) in queries.items():
            medians = []
            for table in ("public.audit_entry", f"{TRIAL_SCHEMA}.audit_entry"):
                statement = await conn.prepare(sql.format(t=table))
                for _ in range(2):
                    await statement.fetch(*args)
                times = []
                for _ in range(runs):
                    started = time.perf_counter()
                    await statement.fetch(*args)
                    times.append((time.perf_counter() - started) * 1000)
                medians.append(statistics.median(times))
            print(f"{label:<36}{medians[0]:>10.2f}{medians[1]:>16.2f}")
        sizes = await conn.fetch(
            "SELECT 'plain' AS t, pg_total_relation_size('public.audit_entry') AS bytes UNION ALL "
            f"SELECT 'partitioned', sum(pg_total_relation_size(c.oid)) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            f"WHERE i.inhparent = '{TRIAL_SCHEMA}.audit_entry'::regclass")
        print("size: " + ", ".join(f"{r['t']} {r['bytes'] / 2**30:.2f} GiB" for r in sizes))
        if not keep:
            await conn.execute(f"DROP SCHEMA {TRIAL_SCHEMA} CASCADE")
    finally:
        await conn.close()


# -- audit appends: one chain against many ------------------------------------------------------------

async def append_rates(url: str, seconds: float, writers: int) -> None:
    """Audit appends per second, each in its own transaction as a request makes them, by
    ``writers`` concurrent tasks: all on デジタル庁's chain (every platform sign-in goes there, and
    appends to one chain queue on its head row) and then each on its own municipality's chain.
    Adds real, chained entries to the database (they verify)."""
    from kiban.core.audit import service as audit
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.context import bind_tenant
    from kiban.kit.db import create_engine, make_sessionmaker

    engine = create_engine(url)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        codes = [r[0] for r in (await session.execute(text(
            "SELECT code FROM organization WHERE type IN ('市', '町') ORDER BY code LIMIT :n"), {"n": writers})).all()]
        tenants = {code: await registry_service.tenant_for(session, code) for code in [PLATFORM, *codes]}
    actor = audit.Actor("system", "計測（監査ログの追記）")

    async def run(label: str, chain_of) -> None:
        done, latencies = 0, []
        stop = time.perf_counter() + seconds

        async def writer(i: int) -> None:
            nonlocal done
            while time.perf_counter() < stop:
                started = time.perf_counter()
                async with sessions() as session:
                    await bind_tenant(session, tenants[chain_of(i)])
                    await audit.record(session, actor, "audit.log.exported", details={"bench": i})
                    await session.commit()
                latencies.append((time.perf_counter() - started) * 1000)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(writer(i) for i in range(writers)))
        elapsed = time.perf_counter() - started
        print(f"  {label:<40} {done / elapsed:8.1f} appends/s  median {statistics.median(latencies):6.1f} ms  "
              f"p99 {percentile(latencies, 99):7.1f} ms  ({done} in {elapsed:.1f} s, {writers} writers)")

    await run("one chain (デジタル庁)", lambda i: PLATFORM)
    await run(f"{writers} chains (one municipality each)", lambda i: codes[i % len(codes)])
    await engine.dispose()


def owner_of(url: str) -> str:
    return make_url(url).set(username="postgres").render_as_string(hide_password=False)


async def main(args) -> None:
    from kiban.kit.settings import Settings
    from kiban.main import create_app

    if args.appends:
        await append_rates(args.url, args.appends, args.writers)
        print(f"rerun: .venv/bin/python bench/national_pages.py --appends {args.appends} --writers {args.writers}")
        return
    if args.partitioning:
        await partitioning_trial(args.owner_url or owner_of(args.url), args.runs, args.keep_trial)
        print("rerun: .venv/bin/python bench/national_pages.py --partitioning")
        return

    f = await facts(args.owner_url or owner_of(args.url))
    print(f"database {make_url(args.url).render_as_string(hide_password=True)}: audit_entry ≈ {f['sizes'].get('audit_entry', 0):,} rows, "
          f"victim_record ≈ {f['sizes'].get('victim_record', 0):,}; chains: "
          + ", ".join(f"{f['names'][c]} {n:,}" for c, n in f["heads"].items()), flush=True)
    app = create_app(Settings(database_url=args.url, log_level="WARNING"))
    install_capture(app.state.engine)
    todo = pages(f, set(args.only.split(",")) if args.only else None, args.disaster)
    async with app.router.lifespan_context(app):
        clients = {code: await signed_in(app, code) for code in sorted({p.who for p in todo})}
        for page in todo:
            await measure(app, page, clients[page.who], args.runs, args.explain)
            sql = (f", SQL {sum(st[0] for st in page.statements):.1f} ms in {len(page.statements)} statements"
                   if args.explain else "")
            print(f"  {page.label:<44} median {statistics.median(page.timings):8.1f} ms  p99 {percentile(page.timings, 99):8.1f} ms"
                  f"  max {max(page.timings):8.1f} ms  ({len(page.timings)} runs, {page.size:,} B{sql})", flush=True)
            if args.explain:
                for ms, statement, *_ in page.statements[:4]:
                    one_line = re.sub(r"\s+", " ", statement)[:160]
                    print(f"      {ms:8.1f} ms  {one_line}")
        if args.explain:
            print("\nEXPLAIN (ANALYZE, BUFFERS) of statements over", args.explain_over, "ms:")
            seen = set()
            for page in todo:
                for ms, statement, params, lg_code, unscoped in page.statements:
                    if ms < args.explain_over or statement in seen or not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                        continue
                    seen.add(statement)
                    print(f"\n-- {page.label}: {ms:.1f} ms (tenant {lg_code or '-'}{', unscoped' if unscoped else ''})"
                          f"\n{statement}\n{params}")
                    print(await explain_statement(app.state.engine, lg_code, unscoped, statement, params))
        for client in clients.values():
            await client.aclose()
    print()
    print(f"{'page':<46}{'median ms':>10}{'p99 ms':>10}{'runs':>6}{'bytes':>12}" + (f"{'SQL ms':>9}{'stmts':>6}" if args.explain else ""))
    for page in todo:
        print(f"{page.label:<46}{statistics.median(page.timings):>10.1f}{percentile(page.timings, 99):>10.1f}{len(page.timings):>6}"
              f"{page.size:>12,}" + (f"{sum(st[0] for st in page.statements):>9.1f}{len(page.statements):>6}" if args.explain else ""))
    print("rerun: .venv/bin/python bench/national_pages.py --url "
          f"{make_url(args.url).render_as_string(hide_password=True)} --runs {args.runs}"
          + (f" --only {args.only}" if args.only else "") + (f" --disaster {args.disaster}" if args.disaster else ""))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="the application role's URL (default: %(default)s)")
    parser.add_argument("--owner-url", default=None, help="the owner's URL, to look up codes (default: --url as postgres)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--only", default="", help="groups: audit,staff,settings,adoptions,registry,public,resident,disaster")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--explain-over", type=float, default=20.0, help="EXPLAIN statements slower than this (ms)")
    parser.add_argument("--disaster", type=int, default=0, help="runs of the disaster pages (0: not measured)")
    parser.add_argument("--partitioning", action="store_true",
                        help="time the log's queries on a copy of audit_entry hash-partitioned by lg_code instead")
    parser.add_argument("--appends", type=float, default=0,
                        help="instead: audit appends per second for this many seconds, one chain against many")
    parser.add_argument("--writers", type=int, default=20, help="concurrent writers for --appends")
    parser.add_argument("--keep-trial", action="store_true", help="keep the partitioned copy (schema kiban_partition_trial)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
