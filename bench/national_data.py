"""National-scale data on PostgreSQL: every tenant, millions of audit entries, a million evacuees.

Fills a PostgreSQL database with what 1,788 local governments (and the national bodies) would
have after a year and a half on the platform, and one large disaster:

* the registry and the catalog, seeded by Kiban's own seed functions (real codes, names,
  populations);
* staff accounts and memberships for every organisation (2 to 12 each, by size; one admin with
  TOTP enrolled, see ``national_totp_secret``), the password ``NATIONAL_PASSWORD``;
* catalog adoptions for every municipality (the 20 standard operations, VRS, JPKI, ガバメント
  クラウド, and some of the SaaS), marked 架空 like the demo's;
* one disaster opened by 内閣府 (a fictional 南海トラフ地震) with ``--victims`` registrations (default
  1,000,000) by the municipalities of nine prefectures, most of them in five; names, readings,
  birth dates, addresses and phones from ``modules/disaster/synthetic.py``'s public generator,
  whereabouts, shelters, damage and care needs drawn here; 名寄せ decisions from the generator's
  ground truth (one applied 一括名寄せ batch, staff confirmations accepted and pending, rejections);
* ``--audit-entries`` audit entries (default 5,400,000) on every organisation's chain, with
  hashes computed by ``kiban.core.audit.service.entry_hash``: the chains verify. デジタル庁 (000019)
  holds the platform's sign-ins (residents, businesses, unknown user names) and is the longest
  chain; municipalities' chains grow with their population; the disaster's municipalities add
  one entry per registration, reads by other municipalities and 名寄せ decisions.

Rows are written with COPY (asyncpg) with the secondary indexes dropped and rebuilt after, and
foreign keys not checked row by row (``session_replication_role = replica``) but by one anti-join
per key at the end. The migrations are applied only up to the last revision that is not a
placeholder (a placeholder applied now would never be applied for real later): run
``kiban db upgrade`` against the database once the later revisions are written.

    .venv/bin/python bench/national_data.py                      # kiban_national on 127.0.0.1:5432
    .venv/bin/python bench/national_data.py --url postgresql+asyncpg://postgres@127.0.0.1:5432/other --force
    .venv/bin/python bench/national_data.py --audit-entries 200000 --victims 50000 --url ...small  # a quick try
    .venv/bin/python bench/national_data.py --force --revision 0017 && kiban db upgrade   # later migrations on the data

A database that already holds data is refused unless ``--force`` (which drops and recreates it).
Staff sign in with ``NATIONAL_PASSWORD`` and the TOTP code of ``national_totp_secret(username)``;
the TOTP secrets are stored encrypted with the deployment key in effect while generating
(``KIBAN_SECRET_KEY``; this script sets ``NATIONAL_SECRET_KEY`` when none is set), so run the
server with the same ``KIBAN_SECRET_KEY`` to sign in as them.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import sys
import time
import uuid
from bisect import bisect
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path

NATIONAL_SECRET_KEY = "kiban-national-data: benchmark deployment key, not for production"
os.environ.setdefault("KIBAN_SECRET_KEY", NATIONAL_SECRET_KEY)

import asyncpg  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

from kiban.core.audit.service import GENESIS, entry_hash  # noqa: E402
from kiban.core.registry.codes import prefecture_code  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/kiban_national"
NATIONAL_PASSWORD = "kiban-national-password"
AUTHOR = "全国規模データ作成（架空）"  # who granted memberships etc.: screens show it, and it says the data is invented
START = datetime(2025, 4, 1, 0, 0, tzinfo=UTC)
END = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)
DISASTER_AT = datetime(2026, 10, 5, 3, 12, tzinfo=UTC)  # 12:12 JST
DISASTER_NAME = "南海トラフ地震（全国規模データ・架空の災害）"
PLATFORM = "000019"  # デジタル庁
CABINET_OFFICE = "000035"  # 内閣府
MUNICIPAL = ("政令市", "特別区", "市", "町", "村")

# (prefecture number, share of the registrations, share of its municipalities affected)
REGIONS = (
    ("39", 0.17, 1.0),   # 高知県
    ("22", 0.22, 0.6),   # 静岡県
    ("23", 0.15, 0.4),   # 愛知県
    ("24", 0.12, 0.6),   # 三重県
    ("30", 0.12, 1.0),   # 和歌山県
    ("36", 0.09, 1.0),   # 徳島県
    ("38", 0.05, 0.5),   # 愛媛県
    ("45", 0.05, 0.6),   # 宮崎県
    ("44", 0.03, 0.5),   # 大分県
)
WIDE_AREA_CITIES = ("大阪市", "神戸市", "岡山市", "広島市", "福岡市", "京都市", "名古屋市", "横浜市")
WHEREABOUTS = (("shelter", 50), ("home", 15), ("relatives", 15), ("wide_area", 4), ("temporary_housing", 6),
               ("unknown", 10))
DAMAGE = (("全壊", 18), ("大規模半壊", 10), ("中規模半壊", 10), ("半壊", 14), ("準半壊", 8),
          ("準半壊に至らない（一部損壊）", 15), ("未調査", 25))
CARE_NEEDS = ("高齢者", "障害者", "乳幼児", "妊産婦", "難病患者", "外国人", "要介護者", "医療的ケア児")
SUPPORTS = ("物資", "医療・保健", "見守り", "応急修理", "応急仮設住宅", "被災者生活再建支援金")
LEGAL_BASIS = "災害対策基本法 第90条の3・第90条の4"
SHARE_PURPOSE = "被災者の援護（市町村の区域を越えた被災者情報の共有）"

AUDIT_COLUMNS = ("lg_code", "seq", "entry_id", "occurred_at", "actor_id", "actor_kind", "actor_label", "action",
                 "target_type", "target_id", "subject_id", "purpose", "legal_basis", "outcome", "request_id",
                 "details", "prev_hash", "hash")
BIG_TABLES = ("audit_entry", "victim_record", "match_decision", "membership", "principal", "staff_credential",
              "catalog_adoption", "shelter")


def national_totp_secret(username: str) -> bytes:
    """The TOTP secret of a generated account: public by design (benchmark accounts)."""
    return hashlib.sha256(f"kiban-national-totp:{username}".encode()).digest()[:20]


def victim_extra_columns(row: dict) -> dict:
    """The search keys migration 0018 adds to ``victim_record``, computed with the function every
    write uses (``modules/disaster/names.py``: ``search_keys``, or the two keys of its first
    version). Only columns the target database has are written (``Writer``); a NOT NULL column
    without a default that nothing here fills stops the run before any row is written.
    ``person_id`` is set by ``write_disaster`` from the 名寄せ it generates."""
    from kiban.modules.disaster import names

    if hasattr(names, "search_keys"):
        return names.search_keys(row["family_name"], row["given_name"], row["family_kana"], row["given_kana"])
    return {"name_key": names.name_search_key(row["family_name"], row["given_name"]),
            "kana_key": names.kana_search_key(row["family_kana"], row["given_kana"])}


# -- small helpers ------------------------------------------------------------------------------------

TIMINGS: dict[str, float] = {}


@contextmanager
def step(label: str):
    print(f"▶ {label} …", flush=True)
    started = time.perf_counter()
    yield
    elapsed = time.perf_counter() - started
    TIMINGS[label] = elapsed
    print(f"  {label}: {elapsed:,.1f} s", flush=True)


class Weighted:
    def __init__(self, items, weights):
        self.items = list(items)
        self.cum = list(accumulate(weights))

    def pick(self, rng: random.Random):
        return self.items[bisect(self.cum, rng.random() * self.cum[-1])]


def pick(rng: random.Random, pairs) -> str:
    items, weights = zip(*pairs, strict=True)
    return rng.choices(items, weights)[0]


def new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def plain_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sorted_times(rng: random.Random, n: int, start: datetime, end: datetime) -> list[datetime]:
    span = int((end - start).total_seconds() * 1_000_000)
    return [start + timedelta(microseconds=us) for us in sorted(rng.randrange(span) for _ in range(n))]


# -- the database -----------------------------------------------------------------------------------------

async def prepare_database(url: str, force: bool) -> None:
    target = make_url(url)
    admin = await asyncpg.connect(plain_dsn(str(target.set(database="postgres"))))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", target.database)
        if exists:
            conn = await asyncpg.connect(plain_dsn(url))
            try:
                tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            finally:
                await conn.close()
            if tables and not force:
                sys.exit(f"{target.database} already holds {tables} tables; refusing to add to it "
                         "(pass --force to drop and recreate it).")
            if tables:
                print(f"  --force: dropping {target.database}")
                await admin.execute(f'DROP DATABASE "{target.database}" WITH (FORCE)')
                exists = False
        if not exists:
            await admin.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await admin.close()


def last_real_revision() -> str:
    """The newest revision before the first placeholder (a revision whose file says PLACEHOLDER)."""
    from alembic.script import ScriptDirectory

    from kiban.kit import migrate

    script = ScriptDirectory.from_config(migrate.alembic_config())
    chain = list(reversed(list(script.walk_revisions())))  # base first
    last = None
    for revision in chain:
        if "PLACEHOLDER" in Path(revision.path).read_text(encoding="utf-8"):
            break
        last = revision.revision
    return last


async def migrate_and_seed(url: str, revision: str | None = None) -> str:
    from kiban.core.registry.seed import seed_registry
    from kiban.core.tenancy import rls
    from kiban.kit import migrate
    from kiban.kit.db import create_engine
    from kiban.modules.catalog.seed import seed_catalog

    revision = revision or last_real_revision()
    await asyncio.to_thread(migrate.upgrade, url, revision)
    engine = create_engine(url, pool=False)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(rls.create_app_role, "kiban_app")
            await connection.run_sync(rls.grant_app_role, "kiban_app")
        async with AsyncSession(engine) as session:
            await seed_registry(session)
            await seed_catalog(session)
            await session.commit()
    finally:
        await engine.dispose()
    return revision


@dataclass
class Table:
    columns: list[str]
    types: dict[str, str]
    required: set[str]


async def describe_tables(conn) -> dict[str, Table]:
    rows = await conn.fetch("SELECT table_name, column_name, data_type, is_nullable, column_default "
                            "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY ordinal_position")
    tables: dict[str, Table] = {}
    for r in rows:
        t = tables.setdefault(r["table_name"], Table([], {}, set()))
        t.columns.append(r["column_name"])
        t.types[r["column_name"]] = r["data_type"]
        if r["is_nullable"] == "NO" and r["column_default"] is None:
            t.required.add(r["column_name"])
    return tables


class Writer:
    """COPY rows given as dicts into a table, in batches, with the table's real columns."""

    def __init__(self, conn, tables: dict[str, Table], name: str, batch: int = 20_000):
        self.conn, self.name, self.batch = conn, name, batch
        self.table = tables[name]
        self.columns: list[str] | None = None
        self.pending: list[tuple] = []
        self.count = 0

    def _columns_for(self, row: dict) -> list[str]:
        unknown = set(row) - set(self.table.columns)
        if unknown:
            print(f"  {self.name}: the database has no {sorted(unknown)} (an older schema): not written")
        columns = [c for c in self.table.columns if c in row]
        missing = self.table.required - set(columns)
        if missing:
            raise SystemExit(f"{self.name}: the database requires {sorted(missing)}, which this generator does not fill; "
                             "add them (victim_extra_columns for victim_record).")
        return columns

    async def add(self, row: dict) -> None:
        if self.columns is None:
            self.columns = self._columns_for(row)
            self.json = {c for c in self.columns if self.table.types[c] in ("json", "jsonb")}
        self.pending.append(tuple(json.dumps(row[c], ensure_ascii=False) if c in self.json and row[c] is not None
                                  else row[c] for c in self.columns))
        if len(self.pending) >= self.batch:
            await self.flush()

    async def add_all(self, rows: Iterable[dict]) -> None:
        for row in rows:
            await self.add(row)

    async def flush(self) -> None:
        if self.pending:
            await self.conn.copy_records_to_table(self.name, records=self.pending, columns=self.columns)
            self.count += len(self.pending)
            self.pending = []


async def drop_secondary_indexes(conn, tables: Iterable[str]) -> list[str]:
    """Drop the indexes that back no constraint; returns their definitions to rebuild them."""
    definitions = []
    for table in tables:
        rows = await conn.fetch(
            "SELECT i.relname AS name, pg_get_indexdef(i.oid) AS definition FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE t.relname = $1 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)", table)
        for r in rows:
            await conn.execute(f'DROP INDEX "{r["name"]}"')
            definitions.append(r["definition"])
    return definitions


# -- organisations and staff --------------------------------------------------------------------------

@dataclass
class Org:
    code: str
    name: str
    type: str
    prefecture_number: str | None
    population: int

    @property
    def is_municipality(self) -> bool:
        return self.type in MUNICIPAL


@dataclass
class Staff:
    id: str
    name: str
    username: str
    role: str
    revoked: bool = False


def staff_count(org: Org) -> int:
    if org.code == PLATFORM:
        return 12
    if org.type == "府省庁":
        return 4
    if org.type == "都道府県":
        return 6
    if org.type == "政令市":
        return 12
    if org.type == "特別区":
        return 6
    if org.type == "市":
        return 3 + min(6, org.population // 100_000)
    return 2 + (org.population > 10_000)


def person_names(n: int, seed: int) -> list[str]:
    from kiban.modules.disaster.synthetic import iter_registrations

    return [f"{r['family_name']} {r['given_name']}" for r in iter_registrations(n, seed=seed)]


async def write_staff(conn, tables, rng: random.Random, orgs: list[Org]) -> dict[str, list[Staff]]:
    from kiban.core.identity import credentials

    password_hash = credentials.hash_password(NATIONAL_PASSWORD)
    total = sum(staff_count(o) for o in orgs)
    names = iter(person_names(total + 10, seed=rng.randrange(1 << 30)))
    principals = Writer(conn, tables, "principal")
    creds = Writer(conn, tables, "staff_credential")
    members = Writer(conn, tables, "membership")
    staff: dict[str, list[Staff]] = {}
    for org in orgs:
        people = []
        for i in range(1, staff_count(org) + 1):
            role = "admin" if i == 1 or (i == 2 and staff_count(org) >= 8) else "viewer" if i == 3 and org.type == "都道府県" else "staff"
            person = Staff(new_uuid(rng), next(names), f"n{org.code}-{i}", role, revoked=i > 2 and rng.random() < 0.05)
            people.append(person)
            created = START + timedelta(days=rng.randrange(30), seconds=rng.randrange(86_400))
            await principals.add({"id": person.id, "kind": "staff", "display_name": person.name, "created_at": created,
                                  "disabled_at": None})
            await creds.add({"principal_id": person.id, "username": person.username, "password_hash": password_hash,
                             "totp_secret_encrypted": credentials.encrypt_secret(national_totp_secret(person.username)),
                             "totp_confirmed_at": created, "last_totp_step": None, "failed_count": 0, "locked_until": None})
            await members.add({"lg_code": org.code, "principal_id": person.id, "role": role, "granted_by": AUTHOR,
                               "granted_at": created,
                               "revoked_at": created + timedelta(days=200) if person.revoked else None})
        staff[org.code] = people
    for w in (principals, creds, members):
        await w.flush()
    print(f"  {principals.count:,} staff accounts in {len(orgs):,} organisations")
    return staff


async def write_adoptions(conn, tables, rng: random.Random, orgs: list[Org], staff) -> int:
    from kiban.modules.catalog.service import DEMO_NOTE

    services = [r["id"] for r in await conn.fetch("SELECT id FROM catalog_service ORDER BY sort_order")]
    writer = Writer(conn, tables, "catalog_adoption")
    everyone = ("vrs", "jpki", "gov-cloud", "base-registry")
    sometimes = {"madoguchi-dx-saas": 0.3, "kyufu-saas": 0.4, "kouiki-hisaisha-db": 0.5, "hokatsu": 0.2,
                 "hoiku-facility-platform": 0.15, "soudan-records": 0.1, "youkaigo-nintei": 0.15, "kaigo-kpi": 0.1,
                 "mobility": 0.05, "digital-kyozai": 0.2, "online-kyoiku": 0.1}
    for org in orgs:
        if not (org.is_municipality or org.type == "都道府県"):
            continue
        chosen = [s for s in services if s in everyone]
        if org.is_municipality:
            chosen += [s for s in services if s.startswith("std-")]
            chosen += [s for s, p in sometimes.items() if s in services and rng.random() < p]
        scale = max(org.population, 1000) ** 0.6
        for service_id in chosen:
            since = date(2025, 4, 1) + timedelta(days=rng.randrange(365))
            standard = service_id.startswith("std-")
            status = pick(rng, (("in_use", 70), ("pilot", 10), ("considering", 15), ("ended", 5))) if standard else "in_use"
            replaced = int(scale * rng.uniform(8_000, 22_000)) // 1000 * 1000 if standard else None
            writer_row = {
                "lg_code": org.code, "service_id": service_id, "vendor_id": None, "status": status, "since": since,
                "renewal_on": date(since.year + 5, 3, 31), "replaced_annual_cost": replaced,
                "annual_cost": int(replaced * rng.uniform(0.6, 0.95)) // 1000 * 1000 if replaced else None,
                "note": DEMO_NOTE, "version": 1, "updated_by": staff[org.code][0].name,
                "updated_at": datetime.combine(since, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1)}
            await writer.add(writer_row)
    await writer.flush()
    print(f"  {writer.count:,} adoptions")
    return writer.count


# -- the disaster -------------------------------------------------------------------------------------------

@dataclass
class Event:
    """An audit entry to be, before its chain position is known."""

    at: datetime
    actor: tuple[str, str, str | None]  # kind, label, id
    action: str
    target_type: str | None = None
    target_id: str | None = None
    details: dict = field(default_factory=dict)
    purpose: str | None = None
    legal_basis: str | None = None
    subject_id: str | None = None
    outcome: str = "success"


def actor_of(person: Staff) -> tuple[str, str, str]:
    return ("staff", person.name, person.id)


def disaster_time(rng: random.Random) -> datetime:
    """Most registrations in the first two weeks, a long tail after."""
    span = (END - DISASTER_AT).total_seconds()
    return DISASTER_AT + timedelta(seconds=rng.betavariate(1.1, 7.0) * span, microseconds=rng.randrange(1_000_000))


async def write_disaster(conn, tables, rng: random.Random, orgs: dict[str, Org], staff, n_victims: int,
                         events: dict[str, list[Event]]) -> dict[str, int]:
    from kiban.modules.disaster.synthetic import iter_registrations, municipalities

    known = municipalities()
    by_pref: dict[str, list[Org]] = defaultdict(list)
    for org in orgs.values():
        if org.is_municipality and org.code in known:
            by_pref[org.prefecture_number].append(org)
    cabinet = staff[CABINET_OFFICE]
    disaster_id = new_uuid(rng)
    dw = Writer(conn, tables, "disaster")
    await dw.add({"id": disaster_id, "name": DISASTER_NAME, "kind": "地震", "occurred_on": date(2026, 10, 5),
                  "description": "全国規模の性能計測のために作った架空の災害です。登録されている人はすべて合成データで、実在の人ではありません。",
                  "opened_by_code": CABINET_OFFICE, "opened_by": cabinet[0].name,
                  "opened_at": DISASTER_AT + timedelta(minutes=40), "closed_at": None})
    await dw.flush()
    events[CABINET_OFFICE].append(Event(DISASTER_AT + timedelta(minutes=40), actor_of(cabinet[0]), "disaster.opened",
                                        "disaster", disaster_id, {"name": DISASTER_NAME}))
    wide_area = [o.code for o in orgs.values() if o.name in WIDE_AREA_CITIES and o.type == "政令市"]
    areas = Writer(conn, tables, "disaster_area")
    shelters_w = Writer(conn, tables, "shelter")
    records_w = Writer(conn, tables, "victim_record", batch=10_000)
    decisions_w = Writer(conn, tables, "match_decision")
    counts: dict[str, int] = defaultdict(int)
    namesakes: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)  # (pref, family) → records
    batch_id = new_uuid(rng)
    applied_at = END - timedelta(days=30)
    linked = staff_decided = pending = rejected = 0
    shown: list[dict] = []
    progress_at = time.perf_counter()
    for number, share, affected_share in REGIONS:
        munis = sorted(by_pref[number], key=lambda o: o.code)
        affected = [o.code for o in munis if affected_share >= 1.0
                    or int(hashlib.sha256(o.code.encode()).hexdigest()[:8], 16) % 100 < affected_share * 100]
        registering = [o.code for o in munis]
        for code in affected:
            relief = rng.random() < 0.8
            await areas.add({"disaster_id": disaster_id, "municipality_code": code, "relief_act": relief,
                             "relief_act_from": date(2026, 10, 5) if relief else None, "support_act": relief})
        n = round(n_victims * share)
        rows = list(iter_registrations(n, seed=rng.randrange(1 << 30), affected_lg_codes=affected,
                                       registering_lg_codes=registering))
        ids = [new_uuid(rng) for _ in rows]
        # 名寄せ, decided per person before the records are written (a linked record carries its
        # person_id): about a third of the persons registered more than once are linked by one applied
        # 一括名寄せ batch of 内閣府; one in twenty is confirmed by staff, across municipalities accepted by
        # the other owner or still awaiting it (then not linked).
        by_person: dict[str, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            by_person[row["person_id"]].append(i)
        person_of: dict[int, str] = {}
        decisions: list[dict] = []
        for regs in by_person.values():
            if len(regs) < 2:
                continue
            r = rng.random()
            if r < 0.35:
                component = regs
                for other in regs[1:]:
                    (a_id, a_code), (b_id, b_code) = sorted(((ids[regs[0]], rows[regs[0]]["registered_by"]),
                                                            (ids[other], rows[other]["registered_by"])))
                    probability = f"{rng.uniform(0.95, 0.99999):.6f}"
                    decisions.append(_decision(rng, disaster_id, a_id, a_code, b_id, b_code, "auto", probability,
                                               CABINET_OFFICE, cabinet[0].name, applied_at, batch_id=batch_id))
                    if len(shown) < 500:
                        shown.append({"a": a_id, "a_code": a_code, "b": b_id, "b_code": b_code,
                                      "probability": float(probability), "reasons": ["氏名の読み一致", "生年月日一致"],
                                      "action": "link"})
                    linked += 1
            elif r < 0.40:
                (a_id, a_code), (b_id, b_code) = sorted((ids[i], rows[i]["registered_by"]) for i in regs[:2])
                clerk = rng.choice(staff[a_code])
                at = disaster_time(rng)
                awaiting = b_code if b_code != a_code else None
                accepted = awaiting is not None and rng.random() < 0.7
                decisions.append(_decision(
                    rng, disaster_id, a_id, a_code, b_id, b_code, "confirmed", f"{rng.uniform(0.8, 0.99):.6f}", a_code,
                    clerk.name, at, acceptance=("accepted" if accepted else "pending") if awaiting else "",
                    awaiting=awaiting, accepted_by=(b_code, staff[b_code][0].name, at + timedelta(hours=5)) if accepted else None,
                    principal=clerk.id))
                events[a_code].append(Event(at, actor_of(clerk), "disaster.match.requested" if awaiting else "disaster.match.confirmed",
                                            "victim_record", a_id, {"other": b_id}))
                if accepted:
                    events[b_code].append(Event(at + timedelta(hours=5), actor_of(staff[b_code][0]), "disaster.match.accepted",
                                                "victim_record", b_id, {"other": a_id}))
                staff_decided += 1
                pending += bool(awaiting and not accepted)
                component = regs[:2] if not (awaiting and not accepted) else []
            else:
                component = []
            if component:
                person = min(ids[i] for i in component)
                for i in component:
                    person_of[i] = person
        # Shelters: one per ~300 people staying in shelters, per registering municipality.
        placement = [pick(rng, WHEREABOUTS) for _ in rows]
        in_shelter: dict[str, int] = defaultdict(int)
        for row, where in zip(rows, placement, strict=True):
            if where == "shelter":
                in_shelter[row["registered_by"]] += 1
        shelters: dict[str, list[str]] = {}
        occupancy: dict[str, int] = defaultdict(int)
        shelter_rows = []
        for code, people in in_shelter.items():
            org = orgs[code]
            shelter_ids = []
            for i in range(max(1, math.ceil(people / 300))):
                sid = new_uuid(rng)
                shelter_ids.append(sid)
                kind = ("小学校", "中学校", "公民館", "総合体育館", "コミュニティセンター", "高等学校")[i % 6]
                shelter_rows.append({"lg_code": code, "id": sid, "disaster_id": disaster_id,
                                     "name": f"{org.name}立第{i // 6 + 1}{kind}" if kind != "高等学校" else f"{org.name}第{i // 6 + 1}高等学校",
                                     "address": "", "capacity": rng.choice((150, 200, 300, 400, 500, 800)), "is_open": True,
                                     "occupancy": 0, "needs": rng.choice(("毛布、飲料水", "簡易トイレ", "おむつ、粉ミルク", "")),
                                     "version": 1, "updated_by": staff[code][0].name,
                                     "updated_at": DISASTER_AT + timedelta(hours=rng.randrange(2, 48))})
            shelters[code] = shelter_ids
        for i, (row, where) in enumerate(zip(rows, placement, strict=True)):
            owner = row["registered_by"]
            home = row["home_lg_code"]
            shelter_id = wide = None
            current = home
            if where == "shelter":
                shelter_id = rng.choice(shelters[owner])
                occupancy[shelter_id] += 1
                current = owner
            elif where == "wide_area":
                wide = rng.choice(wide_area)
                current = wide
            elif where in ("relatives", "temporary_housing") and owner != home:
                current = owner
            birth = row["birth_date"]
            if isinstance(birth, str):
                birth = date.fromisoformat(birth)
            clerk = rng.choice([s for s in staff[owner] if s.role != "viewer"])
            created = disaster_time(rng)
            damage = pick(rng, DAMAGE)
            record = {
                "lg_code": owner, "id": ids[i], "disaster_id": disaster_id,
                "family_name": row["family_name"], "given_name": row["given_name"],
                "family_kana": row["family_kana"] or "", "given_kana": row["given_kana"] or "",
                "birth_date": birth, "sex": row["sex"], "home_address": row["home_address"] or "",
                "home_lg_code": home, "home_pref_code": prefecture_code(home), "whereabouts": where,
                "shelter_id": shelter_id, "wide_area_lg_code": wide, "current_lg_code": current,
                "current_pref_code": prefecture_code(current), "phone": row["phone"] or "",
                "household_key": f"{number}-{row['household_id']}", "household_size": rng.choice((1, 2, 2, 3, 3, 4, 5)),
                "care_needs": [rng.choice(CARE_NEEDS)] if rng.random() < 0.12 else [],
                "damage_level": damage, "risai_status": pick(rng, (("未申請", 50), ("申請中", 30), ("交付済", 20))),
                "rebuild_plan": "未定", "demolished": damage == "全壊" and rng.random() < 0.1,
                "long_term_evacuation": False,
                "supports": sorted(rng.sample(SUPPORTS, rng.randrange(3))) if rng.random() < 0.3 else [],
                "note": "", "resident_subject_id": None, "protected": rng.random() < 0.003,
                "import_key": None, "version": 1, "created_by": clerk.name, "created_at": created,
                "updated_at": created, "person_id": person_of.get(i),
            }
            record.update(victim_extra_columns(record))
            await records_w.add(record)
            counts[owner] += 1
            if rng.random() < 0.02:
                namesakes[(number, row["family_name"])].append((record["id"], owner))
            events[owner].append(Event(created, actor_of(clerk), "disaster.record.registered", "victim_record",
                                       record["id"], {"name": f"{row['family_name']} {row['given_name']}"}))
            readers = {home, current} - {owner}
            if readers and rng.random() < 0.5:
                reader = orgs[sorted(readers)[0]]
                reader_staff = rng.choice(staff[reader.code])
                events[owner].append(Event(created + timedelta(hours=rng.randrange(1, 200)), actor_of(reader_staff),
                                           "disaster.record.read", "victim_record", record["id"],
                                           {"reader": reader.code, "reader_name": reader.name},
                                           purpose=SHARE_PURPOSE, legal_basis=LEGAL_BASIS))
        for s in shelter_rows:
            s["occupancy"] = occupancy[s["id"]]
            await shelters_w.add(s)
        await records_w.flush()
        await decisions_w.add_all(decisions)
        elapsed = time.perf_counter() - progress_at
        print(f"  {records_w.count:>9,} registrations ({number}: {len(affected)} affected, {len(registering)} registering) "
              f"{records_w.count / elapsed:,.0f}/s", flush=True)
    await areas.flush()
    await shelters_w.flush()
    # Namesakes judged 別の人 by staff.
    for regs in namesakes.values():
        for i in range(0, len(regs) - 1, 2):
            (a_id, a_code), (b_id, b_code) = sorted(regs[i:i + 2])
            if rng.random() < 0.3:
                clerk = rng.choice(staff[a_code])
                at = disaster_time(rng)
                await decisions_w.add(_decision(rng, disaster_id, a_id, a_code, b_id, b_code, "rejected",
                                                f"{rng.uniform(0.3, 0.7):.6f}", a_code, clerk.name, at, principal=clerk.id))
                events[a_code].append(Event(at, actor_of(clerk), "disaster.match.rejected", "victim_record", a_id,
                                            {"other": b_id}))
                rejected += 1
    await decisions_w.flush()
    batch = Writer(conn, tables, "linkage_batch")
    await batch.add({"id": batch_id, "disaster_id": disaster_id, "run_by_code": CABINET_OFFICE, "status": "applied",
                     "records": records_w.count, "threshold": "0.95", "pairs": shown, "linked": linked, "undone": 0,
                     "created_by": cabinet[0].name, "created_at": applied_at - timedelta(hours=2),
                     "applied_by": cabinet[0].name, "applied_at": applied_at, "undone_by": None, "undone_at": None})
    await batch.flush()
    events[CABINET_OFFICE].append(Event(applied_at - timedelta(hours=2), actor_of(cabinet[0]), "disaster.linkage.previewed",
                                        "linkage_batch", batch_id, {"pairs": linked}))
    events[CABINET_OFFICE].append(Event(applied_at, actor_of(cabinet[0]), "disaster.linkage.batch", "linkage_batch",
                                        batch_id, {"linked": linked}))
    print(f"  {records_w.count:,} registrations by {len(counts):,} municipalities, {shelters_w.count:,} shelters, "
          f"{decisions_w.count:,} 名寄せ decisions ({linked:,} batch links, {staff_decided:,} staff confirmations of "
          f"which {pending:,} pending, {rejected:,} rejections)")
    return {"records": records_w.count, "shelters": shelters_w.count, "decisions": decisions_w.count,
            "municipalities": len(counts)}


def _decision(rng, disaster_id, a_id, a_code, b_id, b_code, decision, probability, by_code, by, at, *,
              batch_id=None, acceptance="", awaiting=None, accepted_by=None, principal=None) -> dict:
    return {"id": new_uuid(rng), "disaster_id": disaster_id, "record_a_code": a_code, "record_a_id": a_id,
            "record_b_code": b_code, "record_b_id": b_id, "decision": decision, "probability": probability,
            "reasons": ["氏名の読み一致", "生年月日一致"] if decision != "rejected" else ["氏の一致のみ"],
            "decided_by_code": by_code, "decided_by": by, "decided_at": at, "reverted_at": None, "reverted_by": None,
            "batch_id": batch_id, "acceptance": acceptance, "awaiting_code": awaiting,
            "accepted_by_code": accepted_by[0] if accepted_by else None,
            "accepted_by": accepted_by[1] if accepted_by else None,
            "accepted_at": accepted_by[2] if accepted_by else None, "decided_by_principal": principal}


# -- audit chains -------------------------------------------------------------------------------------------

def base_counts(orgs: list[Org], total: int) -> dict[str, int]:
    """Entries per organisation apart from the disaster's: デジタル庁 a tenth (the platform's
    sign-ins), other national bodies 5,000, prefectures and municipalities by population."""
    counts = {PLATFORM: total // 10}
    rest = total - counts[PLATFORM]
    weights = {}
    for org in orgs:
        if org.code == PLATFORM:
            continue
        if org.type == "府省庁":
            counts[org.code] = 5_000
            rest -= 5_000
        elif org.type == "都道府県":
            weights[org.code] = max(org.population * 0.15, 3_000 * 30)
        else:
            weights[org.code] = max(org.population, 300 * 30)
    scale = rest / sum(weights.values())
    for code, w in weights.items():
        counts[code] = max(1, round(w * scale))
    return counts


MUNICIPAL_MIX = (
    ("identity.staff.sign_in", 770), ("identity.staff.sign_in:failure", 40), ("tenancy.setting.updated", 15),
    ("catalog.adoption.saved", 30), ("audit.log.exported", 8), ("tenancy.grant.used", 120),
    ("identity.apikey.created", 2), ("identity.membership.role_changed", 5), ("identity.staff.totp_enrolled", 10),
)
PLATFORM_MIX = (
    ("identity.resident.sign_in", 520), ("identity.resident.sign_in:failure", 40), ("identity.business.sign_in", 140),
    ("identity.business.sign_in:failure", 10), ("identity.staff.sign_in:unknown", 170), ("identity.staff.sign_in", 90),
    ("catalog.service.updated", 10), ("catalog.vendor.added", 5), ("audit.log.exported", 5), ("tenancy.setting.updated", 10),
)


class ChainWriter:
    """Numbers, links and hashes one chain's entries and COPYs them."""

    def __init__(self, conn, batch: int = 25_000):
        self.conn, self.batch = conn, batch
        self.pending: list[tuple] = []
        self.heads: list[tuple[str, int, str]] = []
        self.count = 0
        self.started = time.perf_counter()
        self.next_report = 250_000

    async def chain(self, lg_code: str, entries: Iterator[Event], rng: random.Random) -> None:
        prev, seq = GENESIS, 0
        for e in entries:
            seq += 1
            fields = {"lg_code": lg_code, "seq": seq, "entry_id": new_uuid(rng), "occurred_at": e.at,
                      "actor_id": e.actor[2], "actor_kind": e.actor[0], "actor_label": e.actor[1], "action": e.action,
                      "target_type": e.target_type, "target_id": e.target_id, "subject_id": e.subject_id,
                      "purpose": e.purpose, "legal_basis": e.legal_basis, "outcome": e.outcome,
                      "request_id": f"{rng.getrandbits(128):032x}", "details": e.details, "prev_hash": prev}
            digest = entry_hash(fields)
            fields["details"] = json.dumps(e.details, ensure_ascii=False)
            fields["hash"] = digest
            self.pending.append(tuple(fields[c] for c in AUDIT_COLUMNS))
            prev = digest
            if len(self.pending) >= self.batch:
                await self.flush()
        if seq:
            self.heads.append((lg_code, seq, prev))

    async def flush(self) -> None:
        if not self.pending:
            return
        await self.conn.copy_records_to_table("audit_entry", records=self.pending, columns=AUDIT_COLUMNS)
        self.count += len(self.pending)
        self.pending = []
        if self.count >= self.next_report:
            rate = self.count / (time.perf_counter() - self.started)
            print(f"  {self.count:>10,} audit entries  {rate:,.0f}/s", flush=True)
            self.next_report += 250_000


def base_events(org: Org, n: int, rng: random.Random, staff: dict[str, list[Staff]], orgs: dict[str, Org],
                end: datetime, residents: list[str], businesses: list[str]) -> Iterator[Event]:
    """``n`` everyday entries of one organisation between START and ``end``, oldest first; the
    first ones are its staff's memberships being granted."""
    people = staff[org.code]
    operator = ("operator", AUTHOR, None)
    for person in people[:n]:
        yield Event(START + timedelta(days=1, seconds=rng.randrange(3600)), operator, "identity.membership.granted",
                    "principal", person.id, {"role": person.role, "username": person.username})
    n -= min(n, len(people))
    if n <= 0:
        return
    mix = Weighted(*zip(*(PLATFORM_MIX if org.code == PLATFORM else MUNICIPAL_MIX), strict=True))
    active = [p for p in people if not p.revoked] or people
    by_activity = Weighted(active, [1 / (i + 1) for i in range(len(active))])
    pref = prefecture_code(org.code) if org.prefecture_number else None
    pref_staff = staff.get(pref, []) if pref and pref != org.code else []
    start = START + timedelta(days=2)
    for at in sorted_times(rng, n, start, end):
        kind = mix.pick(rng)
        action, _, variant = kind.partition(":")
        person = by_activity.pick(rng)
        if action == "identity.resident.sign_in":
            rid = rng.choice(residents)
            if variant == "failure":
                yield Event(at, ("anonymous", "マイナンバーカード利用者", None), action, details={"reason": "expired"},
                            purpose="本人確認", outcome="failure")
            else:
                yield Event(at, ("resident", "住民（本人）", rid), action, purpose="本人確認", subject_id=rid)
        elif action == "identity.business.sign_in":
            bid = rng.choice(businesses)
            if variant == "failure":
                yield Event(at, ("anonymous", "GビズID 利用者", None), action, details={"reason": "denied"},
                            purpose="本人確認", outcome="failure")
            else:
                yield Event(at, ("business", "事業者（GビズID）", bid), action, purpose="本人確認", subject_id=bid,
                            details={"corporate_number": f"{rng.randrange(10**12, 10**13)}"})
        elif action == "identity.staff.sign_in":
            if variant == "unknown":
                yield Event(at, ("anonymous", "登録のないユーザー名での試行", None), action, purpose="本人確認",
                            details={"step": "password", "reason": "unknown_user"}, outcome="failure")
            elif variant == "failure":
                yield Event(at, ("anonymous", person.name, person.id), action, "principal", person.id,
                            {"step": "password", "reason": "wrong_password"}, purpose="本人確認", outcome="failure")
            else:
                yield Event(at, ("staff", person.name, person.id), action, "principal", person.id, purpose="本人確認")
        elif action == "tenancy.grant.used" and pref_staff:
            reader = rng.choice(pref_staff)
            yield Event(at, ("staff", reader.name, reader.id), action, "route", f"/t/{org.code}/settings",
                        {"grantee": pref, "permission": "tenancy.setting.read"}, purpose="都道府県による市町村の状況把握",
                        legal_basis="地方自治法 第245条の4")
        elif action == "tenancy.setting.updated":
            yield Event(at, actor_of(person), action, "tenant_setting", "childcare.application_deadline_day",
                        {"label": "保育所の入所申込の締切日", "value": rng.randrange(1, 29), "reason": "受付体制の見直し"})
        elif action == "catalog.adoption.saved":
            yield Event(at, actor_of(person), action, "catalog_adoption", f"std-{rng.randrange(1, 21):02d}",
                        {"status": "in_use"})
        elif action == "audit.log.exported":
            yield Event(at, actor_of(person), action, details={"entries": rng.randrange(50, 5000)})
        elif action == "identity.apikey.created":
            yield Event(at, actor_of(person), action, "api_key", f"{rng.getrandbits(128):032x}", {"name": "庁内連携"})
        elif action == "identity.membership.role_changed":
            other = rng.choice(people)
            yield Event(at, actor_of(person), action, "principal", other.id, {"role": other.role})
        elif action == "identity.staff.totp_enrolled":
            yield Event(at, actor_of(person), action, "principal", person.id)
        elif action in ("catalog.service.updated", "catalog.vendor.added"):
            yield Event(at, actor_of(person), action, "catalog_service", rng.choice(("vrs", "madoguchi-dx-saas", "std-01")),
                        {"name": "共通サービス"})
        else:  # a grant read with no prefecture staff (national bodies): a sign-in instead
            yield Event(at, actor_of(person), "identity.staff.sign_in", "principal", person.id, purpose="本人確認")


async def write_audit(conn, rng: random.Random, orgs: list[Org], staff, events: dict[str, list[Event]], total: int) -> tuple[int, int]:
    disaster_total = sum(len(v) for v in events.values())
    base_total = max(total - disaster_total, len(orgs) * 10)
    counts = base_counts(orgs, base_total)
    residents = [new_uuid(rng) for _ in range(150_000)]
    businesses = [new_uuid(rng) for _ in range(25_000)]
    by_code = {o.code: o for o in orgs}
    writer = ChainWriter(conn)
    for org in orgs:
        own = sorted(events.get(org.code, []), key=lambda e: e.at)
        end = DISASTER_AT if own else END
        base = base_events(org, counts[org.code], rng, staff, by_code, end, residents, businesses)

        def chained(base=base, own=own):
            yield from base
            yield from own

        await writer.chain(org.code, chained(), rng)
    await writer.flush()
    await conn.copy_records_to_table("audit_chain_head", records=writer.heads, columns=("lg_code", "seq", "hash"))
    return writer.count, writer.heads


# -- checks and figures -------------------------------------------------------------------------------------

FOREIGN_KEYS = (
    ("audit_entry", "lg_code", "organization", "code"),
    ("victim_record", "lg_code", "organization", "code"),
    ("victim_record", "home_lg_code", "organization", "code"),
    ("victim_record", "disaster_id", "disaster", "id"),
    ("membership", "principal_id", "principal", "id"),
    ("staff_credential", "principal_id", "principal", "id"),
    ("shelter", "disaster_id", "disaster", "id"),
    ("catalog_adoption", "service_id", "catalog_service", "id"),
)


async def check_foreign_keys(conn) -> None:
    for table, column, parent, key in FOREIGN_KEYS:
        broken = await conn.fetchval(
            f'SELECT count(*) FROM "{table}" c WHERE c."{column}" IS NOT NULL AND NOT EXISTS '
            f'(SELECT 1 FROM "{parent}" p WHERE p."{key}" = c."{column}")')
        if broken:
            raise SystemExit(f"{table}.{column}: {broken} rows name no {parent}")


async def verify_sample(url: str, codes: list[str]) -> None:
    """``verify_chain`` (the service's own check) on a sample of chains, timed."""
    from kiban.core.audit import service as audit
    from kiban.core.tenancy.context import unscoped
    from kiban.kit.db import create_engine

    engine = create_engine(url, pool=False)
    try:
        async with AsyncSession(engine) as session:
            async with unscoped(session, "全国規模データの監査ログ検証（計測）"):
                for code in codes:
                    started = time.perf_counter()
                    checked, problems = await audit.verify_chain(session, code)
                    print(f"  chain {code}: {checked:,} entries, "
                          f"{'intact' if not problems else problems[0].message} ({time.perf_counter() - started:.1f} s)")
                    if problems:
                        raise SystemExit(f"chain {code} does not verify")
    finally:
        await engine.dispose()


async def verify_everything(url: str) -> tuple[int, int, int]:
    from kiban.core.audit import service as audit
    from kiban.core.tenancy.context import unscoped
    from kiban.kit.db import create_engine

    engine = create_engine(url, pool=False)
    try:
        async with AsyncSession(engine) as session:
            async with unscoped(session, "全国規模データの監査ログ検証（計測）"):
                organisations, entries, problems = await audit.verify_all(session)
    finally:
        await engine.dispose()
    return organisations, entries, len(problems)


async def sizes(conn) -> list[tuple[str, int, int, int]]:
    rows = await conn.fetch(
        "SELECT c.relname, c.reltuples::bigint AS rows, pg_table_size(c.oid) AS heap, pg_indexes_size(c.oid) AS idx "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 12")
    return [(r["relname"], r["rows"], r["heap"], r["idx"]) for r in rows]


# -- main -------------------------------------------------------------------------------------------------

async def main(args) -> None:
    rng = random.Random(args.seed)
    overall = time.perf_counter()
    with step("database (create)"):
        await prepare_database(args.url, args.force)
    with step("migrations, application role, registry and catalog seed"):
        revision = await migrate_and_seed(args.url, args.revision)
        print(f"  schema at revision {revision}; later revisions: `kiban db upgrade` (they must carry existing rows)")
    conn = await asyncpg.connect(plain_dsn(args.url))
    try:
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET session_replication_role = replica")  # no per-row FK triggers; checked below
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute("SET max_parallel_maintenance_workers = 0")  # one core: the machine is shared
        tables = await describe_tables(conn)
        with step("drop secondary indexes"):
            rebuild = await drop_secondary_indexes(conn, BIG_TABLES)
        org_rows = await conn.fetch("SELECT code, name, type, prefecture_number, coalesce(population, 0) AS population "
                                    "FROM organization WHERE retired_on IS NULL AND type <> '行政区' ORDER BY code")
        orgs = [Org(r["code"], r["name"], r["type"], r["prefecture_number"], r["population"]) for r in org_rows]
        by_code = {o.code: o for o in orgs}
        print(f"  {len(orgs):,} organisations ({sum(o.is_municipality for o in orgs):,} municipalities, "
              f"{sum(o.type == '都道府県' for o in orgs)} prefectures, {sum(o.type == '府省庁' for o in orgs)} national bodies)")
        with step("staff accounts and memberships"):
            staff = await write_staff(conn, tables, rng, orgs)
        with step("catalog adoptions"):
            await write_adoptions(conn, tables, rng, orgs, staff)
        events: dict[str, list[Event]] = defaultdict(list)
        with step(f"disaster: {args.victims:,} registrations, shelters, 名寄せ"):
            disaster = await write_disaster(conn, tables, rng, by_code, staff, args.victims, events)
        with step(f"audit chains: {args.audit_entries:,} entries"):
            entries, heads = await write_audit(conn, rng, orgs, staff, events, args.audit_entries)
            by_length = sorted(heads, key=lambda h: h[1])
            print(f"  {entries:,} entries on {len(heads):,} chains; longest "
                  + ", ".join(f"{by_code[c].name} {n:,}" for c, n, _ in by_length[-5:][::-1])
                  + f"; shortest {by_length[0][1]:,}")
        events.clear()
        with step(f"rebuild {len(rebuild)} secondary indexes"):
            for definition in rebuild:
                started = time.perf_counter()
                await conn.execute(definition)
                print(f"  {time.perf_counter() - started:6.1f} s  {definition}", flush=True)
        with step("foreign keys (one anti-join per key)"):
            await check_foreign_keys(conn)
        with step("VACUUM ANALYZE"):
            await conn.execute("SET session_replication_role = origin")
            await conn.execute("VACUUM (ANALYZE)")
        figures = await sizes(conn)
        database_size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    # The longest chains, 内閣府, 札幌市 and the shortest: the sample a full verify is extrapolated from.
    sample = list(dict.fromkeys([c for c, _, _ in by_length[-3:][::-1]] + [CABINET_OFFICE, "011002", by_length[0][0]]))
    with step("verify a sample of chains (audit.verify_chain)"):
        await verify_sample(args.url, sample)
    if not args.skip_full_verify:
        with step("verify every chain (audit.verify_all)"):
            organisations, checked, problems = await verify_everything(args.url)
            print(f"  {organisations:,} chains, {checked:,} entries, {problems} problems")
            if problems:
                raise SystemExit("the audit chains do not verify")
    total = time.perf_counter() - overall
    print()
    print(f"database {make_url(args.url).render_as_string(hide_password=True)}: {database_size / 2**30:.2f} GiB, "
          f"{disaster['records']:,} registrations, {entries:,} audit entries, total {total / 60:.1f} min")
    print(f"{'table':<22}{'rows':>12}{'heap MiB':>11}{'index MiB':>11}")
    for name, rows, heap, idx in figures:
        print(f"{name:<22}{rows:>12,}{heap / 2**20:>11,.0f}{idx / 2**20:>11,.0f}")
    print("timings: " + ", ".join(f"{k} {v:,.0f} s" for k, v in TIMINGS.items()))
    print(f"rerun: .venv/bin/python bench/national_data.py --url {make_url(args.url).render_as_string(hide_password=True)} "
          f"--audit-entries {args.audit_entries} --victims {args.victims} --seed {args.seed} --force")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL URL as the owner (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="drop and recreate a database that holds data")
    parser.add_argument("--audit-entries", type=int, default=5_400_000)
    parser.add_argument("--victims", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--skip-full-verify", action="store_true", help="verify only a sample of chains")
    parser.add_argument("--revision", default=None,
                        help="migrate only this far (default: the last revision that is not a placeholder); "
                             "`kiban db upgrade` then applies the rest to the generated data, as in production")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
