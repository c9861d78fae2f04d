"""The disaster workspace at scale: one disaster with N registrations (default 200,000; a real
Nankai Trough disaster would be millions) spread over the Noto peninsula and the cities its
evacuees reached, most persons registered more than once and linked by 名寄せ.

Fills a database once (PostgreSQL by COPY, SQLite by bulk inserts; the search keys and
``person_id`` are written with the functions the application uses), then times the service
functions the pages call, each ``--runs`` times, as the application would run them (on
PostgreSQL as the application role, under row-level security), and prints median / p99 /
max and the rows each one read. Every timed call runs in a transaction that is rolled back
(a page audits what it shows), so reruns see the same data.

    .venv/bin/python bench/workspace.py [--backend postgresql|sqlite|both] [--records 200000]
                                        [--runs 50] [--fresh] [--explain]

The database is kept (PostgreSQL ``kiban_bench_ws_<N>``, SQLite ``var/bench/workspace-<N>.sqlite3``)
and reused by the next run with the same ``--records``; ``--fresh`` builds it again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from sqlalchemy import event, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

from kiban.core.audit import service as audit  # noqa: E402
from kiban.core.registry import service as registry  # noqa: E402
from kiban.core.registry.codes import prefecture_code  # noqa: E402
from kiban.core.tenancy.context import bind_tenant  # noqa: E402
from kiban.kit.db import create_engine  # noqa: E402
from kiban.modules.disaster import service  # noqa: E402
from kiban.modules.disaster.names import search_keys  # noqa: E402
from kiban.modules.disaster.roster import CARE_NEEDS, DAMAGE_LEVELS  # noqa: E402
from kiban.modules.disaster.synthetic import DEFAULT_AFFECTED, iter_registrations  # noqa: E402

PG_HOST = "127.0.0.1:5432"
APP_ROLE = "kiban_app"
DISASTER_ID = "00000000-0000-4000-8000-00000000beef"
ISHIKAWA, KANAZAWA, WAJIMA, NANAO, SAPPORO, CABINET = "170003", "172014", "172049", "172022", "011002", "000035"
SHELTERS_PER_MUNICIPALITY = 12
LINKED_SHARE = 0.8  # of the persons registered more than once, the share 名寄せ has linked
COLUMNS = ("lg_code", "id", "disaster_id", "family_name", "given_name", "family_kana", "given_kana", "birth_date",
           "sex", "home_address", "home_lg_code", "home_pref_code", "whereabouts", "shelter_id", "wide_area_lg_code",
           "current_lg_code", "current_pref_code", "phone", "household_key", "household_size", "care_needs",
           "damage_level", "risai_status", "rebuild_plan", "demolished", "long_term_evacuation", "supports", "note",
           "resident_subject_id", "protected", "import_key", "version", "created_by", "created_at", "updated_at",
           "name_key", "given_key", "kana_key", "given_kana_key", "person_id")
DECISION_COLUMNS = ("id", "disaster_id", "record_a_code", "record_a_id", "record_b_code", "record_b_id", "decision",
                    "probability", "reasons", "decided_by_code", "decided_by", "decided_at", "acceptance", "batch_id")


def _build_database():
    try:
        from kiban.ops.provision import build_database
    except ImportError:  # before it moved out of kit/ (issue 11 item 6)
        from kiban.kit.provision import build_database  # type: ignore[no-redef]
    return build_database


# -- the data -----------------------------------------------------------------------------------------

def generate(n: int, seed: int = 11) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """(records, decisions, shelters) as rows in COLUMNS / DECISION_COLUMNS order."""
    rng = random.Random(seed)
    base = datetime(2026, 11, 1, tzinfo=UTC)
    shelters: dict[str, list[str]] = {}
    shelter_rows: list[tuple] = []
    records: list[tuple] = []
    by_person: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for index, reg in enumerate(iter_registrations(n, seed=seed)):
        owner, home = reg["registered_by"], reg["home_lg_code"]
        if owner not in shelters:
            shelters[owner] = [str(uuid.UUID(int=rng.getrandbits(128), version=4))
                               for _ in range(SHELTERS_PER_MUNICIPALITY)]
            for number, shelter_id in enumerate(shelters[owner], 1):
                shelter_rows.append((owner, shelter_id, DISASTER_ID, f"第{number}避難所", "", 500, True,
                                     rng.randint(100, 520), "", 1, "bench", base))
        r = rng.random()
        if owner != home:
            whereabouts, current = ("shelter", owner) if r < 0.6 else ("relatives", owner)
        else:
            whereabouts = "home" if r < 0.4 else "shelter" if r < 0.8 else "unknown"
            current = home
        shelter_id = rng.choice(shelters[owner]) if whereabouts == "shelter" else None
        needs = [need for need, p in zip(CARE_NEEDS, (0.15, 0.05, 0.04, 0.01, 0.01, 0.01, 0.03, 0.005)) if rng.random() < p]
        birth = reg["birth_date"]
        if isinstance(birth, str):
            birth = date.fromisoformat(birth)
        record_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        created = base + timedelta(seconds=index * 2)
        by_person[reg["person_id"]].append((record_id, owner))
        records.append((
            owner, record_id, DISASTER_ID, reg["family_name"], reg["given_name"], reg["family_kana"], reg["given_kana"],
            birth, reg["sex"], reg["home_address"], home, prefecture_code(home), whereabouts, shelter_id, None,
            current, prefecture_code(current), reg["phone"] or "", reg["household_id"], 1, needs,
            rng.choice(DAMAGE_LEVELS), "未申請", "未定", False, False, [], "", None, rng.random() < 0.005, None, 1,
            "bench", created, created,
            *search_keys(reg["family_name"], reg["given_name"], reg["family_kana"], reg["given_kana"]).values(),
            None))
    # 名寄せ: most persons registered more than once are linked (a chain of automatic links).
    person_of: dict[str, str] = {}
    decisions: list[tuple] = []
    for regs in by_person.values():
        if len(regs) < 2 or rng.random() >= LINKED_SHARE:
            continue
        root = min(record_id for record_id, _ in regs)
        for record_id, _ in regs:
            person_of[record_id] = root
        for (a, a_code), (b, b_code) in zip(regs, regs[1:]):
            decisions.append((str(uuid.UUID(int=rng.getrandbits(128), version=4)), DISASTER_ID, a_code, a, b_code, b,
                              "auto", "0.990000", [], ISHIKAWA, "bench", base, "", None))
    person_index = COLUMNS.index("person_id")
    records = [row[:person_index] + (person_of.get(row[1]),) for row in records]
    return records, decisions, shelter_rows


async def _disaster_rows(connection) -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    await connection.execute(text(
        "INSERT INTO disaster (id, name, kind, occurred_on, description, opened_by_code, opened_by, opened_at)"
        " VALUES (:id, '能登半島の地震（性能試験）', '地震', :on, '', :by, 'bench', :at)"),
        {"id": DISASTER_ID, "on": date(2026, 11, 1), "by": ISHIKAWA, "at": now})
    for code in DEFAULT_AFFECTED:
        await connection.execute(text(
            "INSERT INTO disaster_area (disaster_id, municipality_code, relief_act, support_act)"
            " VALUES (:d, :c, true, true)"), {"d": DISASTER_ID, "c": code})


SHELTER_COLUMNS = ("lg_code", "id", "disaster_id", "name", "address", "capacity", "is_open", "occupancy", "needs",
                   "version", "updated_by", "updated_at")


async def fill_postgresql(owner_url: str, n: int) -> None:
    records, decisions, shelters = generate(n)
    engine = create_engine(owner_url, pool=False)
    try:
        async with engine.begin() as connection:
            await _disaster_rows(connection)
            raw = (await connection.get_raw_connection()).driver_connection
            await raw.copy_records_to_table("shelter", records=shelters, columns=SHELTER_COLUMNS)
            care, supports = COLUMNS.index("care_needs"), COLUMNS.index("supports")
            for start in range(0, len(records), 100_000):
                chunk = [row[:care] + (json.dumps(row[care], ensure_ascii=False),) + row[care + 1:supports]
                         + ("[]",) + row[supports + 1:] for row in records[start:start + 100_000]]
                await raw.copy_records_to_table("victim_record", records=chunk, columns=COLUMNS)
            reasons = DECISION_COLUMNS.index("reasons")
            await raw.copy_records_to_table("match_decision", records=[
                row[:reasons] + ("[]",) + row[reasons + 1:] for row in decisions], columns=DECISION_COLUMNS)
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE"))
    finally:
        await engine.dispose()


async def fill_sqlite(url: str, n: int) -> None:
    from sqlalchemy import insert

    from kiban.modules.disaster.models import MatchDecision, Shelter, VictimRecord

    records, decisions, shelters = generate(n)
    engine = create_engine(url, pool=False)
    try:
        async with engine.begin() as connection:
            await _disaster_rows(connection)
            await connection.execute(insert(Shelter.__table__), [dict(zip(SHELTER_COLUMNS, row)) for row in shelters])
            for start in range(0, len(records), 50_000):
                await connection.execute(insert(VictimRecord.__table__),
                                         [dict(zip(COLUMNS, row)) for row in records[start:start + 50_000]])
            await connection.execute(insert(MatchDecision.__table__), [dict(zip(DECISION_COLUMNS, row)) for row in decisions])
        async with engine.connect() as connection:
            await connection.exec_driver_sql("ANALYZE")
    finally:
        await engine.dispose()


# -- the measurements -----------------------------------------------------------------------------------

class RowCounter:
    """Rows the database returned to the application (what a page really read): both async
    drivers' cursors hold a statement's result rows once it has run."""

    def __init__(self, engine) -> None:
        self.rows = 0
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.rows += len(getattr(cursor, "_rows", ()) or ())


class AuditClock:
    """Time spent appending audit entries for the rows a page shows (one entry per record of
    another municipality, on that municipality's chain), timed apart from the queries."""

    def __init__(self, batched: bool = False) -> None:
        self.ms = 0.0
        self.entries = 0
        original = batched_audit_reads if batched else service.audit_reads

        async def timed(session, viewer, actor, records, *args, **kwargs):
            started = time.perf_counter()
            try:
                return await original(session, viewer, actor, records, *args, **kwargs)
            finally:
                self.ms += (time.perf_counter() - started) * 1000
                self.entries += len(records)

        service.audit_reads = timed


async def batched_audit_reads(session, viewer, actor, records, what: str = "disaster.record.read") -> None:
    """``service.audit_reads`` as it would be with the ``audit.record_many`` the report proposes:
    the same entries, chained the same way, with one chain-head update per organisation instead
    of four statements per entry (``--batched-audit``; measurement only)."""
    import uuid as _uuid

    from sqlalchemy import update

    from kiban.core.audit.models import AuditChainHead, AuditEntry
    from kiban.core.tenancy.context import as_tenant
    from kiban.kit.db import utcnow
    from kiban.kit.requestid import current_request_id

    by_owner: dict[str, list] = defaultdict(list)
    for record in records:
        by_owner[record.lg_code].append(record)
    for owner_code, owned in by_owner.items():
        owner = await registry.tenant_for(session, owner_code)
        async with as_tenant(session, owner):
            bumped = (await session.execute(update(AuditChainHead).where(AuditChainHead.lg_code == owner_code)
                                            .values(seq=AuditChainHead.seq + len(owned))
                                            .returning(AuditChainHead.seq, AuditChainHead.hash))).first()
            if bumped is None:  # a chain's first entries: the bench's data has none of these
                for record in owned:
                    await service.audit.record(session, actor, what, target_type="victim_record", target_id=record.id,
                                               subject_id=record.resident_subject_id, purpose=service.SHARE_PURPOSE,
                                               legal_basis=service.LEGAL_BASIS, tenant=owner,
                                               details={"reader": viewer.lg_code, "reader_name": viewer.name})
                continue
            seq, prev = bumped[0] - len(owned), bumped[1]
            entries, now = [], utcnow()
            for record in owned:
                seq += 1
                fields = {"lg_code": owner_code, "seq": seq, "entry_id": str(_uuid.uuid4()), "occurred_at": now,
                          "actor_id": actor.id, "actor_kind": actor.kind, "actor_label": actor.label, "action": what,
                          "target_type": "victim_record", "target_id": record.id,
                          "subject_id": record.resident_subject_id, "purpose": service.SHARE_PURPOSE,
                          "legal_basis": service.LEGAL_BASIS, "outcome": "success", "request_id": current_request_id(),
                          "details": {"reader": viewer.lg_code, "reader_name": viewer.name}, "prev_hash": prev}
                entries.append(AuditEntry(**fields, hash=audit.entry_hash(fields)))
                prev = entries[-1].hash
            session.add_all(entries)
            await session.execute(update(AuditChainHead).where(AuditChainHead.lg_code == owner_code).values(hash=prev))
            await session.flush()


async def _timed(engine, code: str, call, runs: int, clock: AuditClock) -> tuple[list[float], list[float], object]:
    times: list[float] = []
    queries: list[float] = []
    result = None
    for _ in range(runs):
        async with AsyncSession(engine, expire_on_commit=False) as session:
            tenant = await registry.tenant_for(session, code)
            await bind_tenant(session, tenant)
            before = clock.ms
            started = time.perf_counter()
            result = await call(session, tenant)
            times.append((time.perf_counter() - started) * 1000)
            queries.append(times[-1] - (clock.ms - before))
            await session.rollback()
    return times, queries, result


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]


def _line(name: str, times: list[float], queries: list[float], note: str) -> str:
    return (f"  {name:<40} median {statistics.median(times):7.1f} ms  p99 {_p99(times):7.1f} ms"
            f"  | without audit: median {statistics.median(queries):7.1f} p99 {_p99(queries):7.1f} ms"
            f"  ({len(times)} runs) {note}")


async def measure(app_url: str, runs: int, explain: bool, batched_audit: bool = False, only: str = "") -> None:
    engine = create_engine(app_url)
    actor = audit.Actor("staff", "性能試験")
    try:
        async with AsyncSession(engine) as session:
            tenant = await registry.tenant_for(session, ISHIKAWA)
            await bind_tenant(session, tenant)
            from kiban.core.tenancy.context import unscoped
            async with unscoped(session, "bench"):
                total = await session.scalar(text("SELECT count(*) FROM victim_record WHERE disaster_id = :d"),
                                             {"d": DISASTER_ID})
                linked = await session.scalar(text("SELECT count(*) FROM victim_record WHERE disaster_id = :d"
                                                   " AND person_id IS NOT NULL"), {"d": DISASTER_ID})
                # Another municipality's registration of someone 金沢市 registered too (shared by 名寄せ).
                sample = (await session.execute(text(
                    "SELECT r.id FROM victim_record r JOIN victim_record k ON k.disaster_id = r.disaster_id"
                    " AND k.person_id = r.person_id AND k.lg_code = :k WHERE r.disaster_id = :d AND r.lg_code <> :k"
                    " AND NOT r.protected ORDER BY r.id LIMIT 1"), {"d": DISASTER_ID, "k": KANAZAWA})).scalar()
        print(f"  {total:,} registrations, {linked:,} linked by 名寄せ ({engine.dialect.name})")

        def page(q: str = "", number: int = 1):
            async def call(session, tenant):
                return await service.records_page(session, tenant, actor, DISASTER_ID, q=q, page=number)
            return call

        async def detail(session, tenant):
            return await service.get_visible_record(session, tenant, DISASTER_ID, sample, actor)

        def board(national: bool = False, cached: bool = False):
            async def call(session, tenant):
                max_age, service.DASHBOARD_MAX_AGE = service.DASHBOARD_MAX_AGE, (3600.0 if cached else 0.0)
                try:
                    return await service.dashboard(session, tenant, DISASTER_ID, national=national)
                finally:
                    service.DASHBOARD_MAX_AGE = max_age
            return call

        cases = [
            ("金沢市 workspace, page 1", KANAZAWA, page()),
            ("金沢市 workspace, page 20", KANAZAWA, page(number=20)),
            ("金沢市 search 「高橋」", KANAZAWA, page("高橋")),
            ("金沢市 search 「たかはし」 (kana)", KANAZAWA, page("たかはし")),
            ("金沢市 search 「髙橋 さちこ」 (rare)", KANAZAWA, page("髙橋 さちこ")),
            ("輪島市 workspace, page 1", WAJIMA, page()),
            ("輪島市 search 「ｻﾄｳ」", WAJIMA, page("ｻﾄｳ")),
            ("七尾市 workspace, page 1", NANAO, page()),
            ("札幌市 workspace (sees none of it)", SAPPORO, page()),
            ("石川県 workspace, page 1", ISHIKAWA, page()),
            ("石川県 workspace, page 5", ISHIKAWA, page(number=5)),
            ("石川県 search 「高橋」", ISHIKAWA, page("高橋")),
            ("金沢市 record detail (linked, shared)", KANAZAWA, detail),
            ("金沢市 dashboard (counted)", KANAZAWA, board()),
            ("石川県 dashboard (counted)", ISHIKAWA, board()),
            ("内閣府 dashboard (national, counted)", CABINET, board(True)),
            ("内閣府 dashboard (national, cached)", CABINET, board(True, cached=True)),
        ]
        counter = RowCounter(engine)
        clock = AuditClock(batched_audit)
        wanted = [word for word in only.split(",") if word]
        for name, code, call in cases:
            if wanted and not any(word in name for word in wanted):
                continue
            # Counting a whole area for a dashboard takes seconds at a million: fewer runs of those.
            n = max(3, runs // 10) if "counted" in name else runs
            await _timed(engine, code, call, 1 if "counted" in name else 2, clock)  # warm the cache and the plan
            before, entries = counter.rows, clock.entries
            times, queries, result = await _timed(engine, code, call, n, clock)
            rows = (counter.rows - before) // n
            audited = (clock.entries - entries) // n
            if isinstance(result, service.RecordsPage):
                found = f"{result.total:,}{'+' if result.more else ''}"
                note = f"{found} found, {len(result.records)} shown, {audited} audited, ~{rows} rows read"
            elif isinstance(result, service.Dashboard):
                note = f"{result.total:,} registrations, {result.people:,} persons, ~{rows} rows read"
            else:
                note = f"{audited} audited, ~{rows} rows read"
            print(_line(name, times, queries, note), flush=True)
        if explain and engine.dialect.name == "postgresql":
            await _explain(engine)
    finally:
        await engine.dispose()


async def _explain(engine) -> None:
    """EXPLAIN ANALYZE of the workspace queries (as the application role, under RLS)."""
    from sqlalchemy import func, select

    from kiban.core.tenancy.context import unscoped
    from kiban.modules.disaster.models import VictimRecord

    for code, q in ((KANAZAWA, ""), (KANAZAWA, "高橋"), (ISHIKAWA, ""), (ISHIKAWA, "高橋")):
        async with AsyncSession(engine) as session:
            tenant = await registry.tenant_for(session, code)
            await bind_tenant(session, tenant)
            condition = service.visible_condition(tenant, DISASTER_ID)
            if q:
                from sqlalchemy import and_
                condition = and_(condition, service.search_condition(q))
            async with unscoped(session, "bench"):
                upto = select(VictimRecord.id).where(condition).limit(service.COUNT_LIMIT + 1).subquery()
                for statement in (select(func.count()).select_from(upto),
                                  select(VictimRecord.id).where(condition).order_by(*service.RECORD_ORDER).limit(100)):
                    compiled = statement.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
                    plan = (await session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"))).scalars().all()
                    print(f"\n-- {code} q={q!r}\n" + "\n".join(plan))


# -- the command -------------------------------------------------------------------------------------------

async def _pg_admin(sql: str) -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@{PG_HOST}/postgres", pool=False)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


async def _has_data(url: str, n: int) -> bool:
    engine = create_engine(url, pool=False)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(text("SELECT count(*) FROM victim_record WHERE disaster_id = :d"),
                                             {"d": DISASTER_ID})
            return count == n
    except Exception:  # noqa: BLE001 - no database yet, or an older schema
        return False
    finally:
        await engine.dispose()


async def run(backend: str, n: int, runs: int, fresh: bool, explain: bool, batched_audit: bool, only: str) -> None:
    if backend == "postgresql":
        name = f"kiban_bench_ws_{n}"
        owner = f"postgresql+asyncpg://postgres@{PG_HOST}/{name}"
        app = f"postgresql+asyncpg://{APP_ROLE}@{PG_HOST}/{name}"
        if fresh or not await _has_data(owner, n):
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await _pg_admin(f'CREATE DATABASE "{name}"')
            started = time.perf_counter()
            await _build_database()(owner, app_role=APP_ROLE)
            await fill_postgresql(owner, n)
            print(f"  filled {name} in {time.perf_counter() - started:.0f} s")
    else:
        path = ROOT / "var" / "bench" / f"workspace-{n}.sqlite3"
        owner = app = f"sqlite+aiosqlite:///{path}"
        if fresh or not await _has_data(owner, n):
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            started = time.perf_counter()
            await _build_database()(owner)
            await fill_sqlite(owner, n)
            print(f"  filled {path} in {time.perf_counter() - started:.0f} s")
    await measure(app, runs, explain, batched_audit, only)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="postgresql")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--fresh", action="store_true", help="build the database again even if it exists")
    parser.add_argument("--explain", action="store_true", help="print PostgreSQL plans of the workspace queries")
    parser.add_argument("--batched-audit", action="store_true",
                        help="audit shown rows as the proposed audit.record_many would (one head update per owner)")
    parser.add_argument("--only", default="", help="comma-separated words: run only the cases whose name has one")
    args = parser.parse_args()
    for backend in ("postgresql", "sqlite") if args.backend == "both" else (args.backend,):
        print(f"{backend}: workspace, search and dashboard over one disaster, {args.runs} runs each"
              f"{' (batched audit)' if args.batched_audit else ''}")
        asyncio.run(run(backend, args.records, args.runs, args.fresh, args.explain, args.batched_audit, args.only))
    print(f"\nrerun: .venv/bin/python bench/workspace.py --backend {args.backend} --records {args.records}"
          f" --runs {args.runs}{' --explain' if args.explain else ''}{' --batched-audit' if args.batched_audit else ''}"
          f"{f' --only {args.only}' if args.only else ''}")


if __name__ == "__main__":
    sys.exit(main())
