"""The load of a real disaster (issue #11): staff of the busiest municipality and of its
prefecture on their disaster pages, residents registering at shelters, the national dashboard
and the public registry search, alone and all at once, and all at once while another
municipality imports a 20,000-row roster; beside a bare Starlette app serving the registry
search's bytes on the same uvicorn (the floor).

Per backend it builds a fresh database (the real migrations and seed) with one disaster in 石川県
and ``--records`` synthetic registrations (bulk inserts; see _load_data.py) and the demo staff
accounts, or, with ``--from-database NAME`` (PostgreSQL), works on a copy of a database made by
bench/national_data.py (one 南海トラフ disaster of a million registrations over nine prefectures,
5 million audit entries), upgraded to the current migrations (or of one this script kept with
``--keep``; on SQLite, ``--from-database PATH`` copies a file it kept). Staff sign in over HTTP (password
and TOTP). ``kiban serve`` runs as its own process (PostgreSQL: as the application role, with
``--workers 2`` if that serves, else 1; SQLite: 1); a separate process drives it closed-loop.
Scenarios, each at every ``--clients`` count:

  floor  bare Starlette, same uvicorn and workers, the same bytes as (d)
  a      staff pages: the workspace (pages 1-5, name searches and their page 2), record
         detail, dashboard; staff of the busiest municipality and of its prefecture
  b      residents registering themselves at shelters (the self-registration form POST, each
         request a different signed-in resident)
  c      the national dashboard (内閣府, and the prefecture's national view)
  d      public registry search (served from the in-memory snapshot)
  e      all of them at once (people searching the registry pause 0.1 s between searches)
  f      (e) while another municipality uploads and accepts a 20,000-row roster through its
         import page; only requests started during the import count; the tenants' p99
         (every class but the public registry search) against (e). Runs after all the others;
         an import still running when its window ends is waited for without load

Prints requests, req/s, p50/p99, errors (by status; 0 = connection broken, -1 = no answer within
60 s) and the machine's 1-minute load average per scenario and class, then the issue's targets with pass/fail, then the command to rerun. The floor and (d)
run in alternating rounds and their ratio is the median of the rounds; the servers' CPU time per
request is printed beside it, a figure the rest of a shared machine's load barely moves.

    .venv/bin/python bench/load.py [--backend postgresql|sqlite|both] [--records N] [--quick]
        [--clients 50,200] [--duration 15] [--scenarios floor,a,b,c,d,e,f] [--workers N]
        [--from-database kiban_national]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("KIBAN_SECRET_KEY", secrets.token_urlsafe(32))  # shared with the server (TOTP secrets)

import httpx  # noqa: E402
from _load_mix import ClientPlan, request_bytes, run_mix_sync  # noqa: E402
from sqlalchemy import text  # noqa: E402

from kiban.kit.db import create_engine  # noqa: E402

PG = "postgresql+asyncpg://{user}@127.0.0.1:5432/{db}"
APP_ROLE = "kiban_app"
SCENARIOS = ("floor", "a", "b", "c", "d", "e", "f")
TITLES = {
    "floor": "floor: bare Starlette, same bytes",
    "a": "(a) staff pages",
    "b": "(b) residents registering",
    "c": "(c) national dashboard",
    "d": "(d) registry search (cached)",
    "e": "(e) mix",
    "f": "(f) mix during 20,000-row import",
}
# The registry queries of bench/registry.py: kana (three scripts) and kanji, round-robin.
REGISTRY_QUERIES = ["さっぽろ", "札幌", "サッポロ", "横浜", "ｻｯﾎﾟﾛ", "名古屋", "よこはま", "品川", "ﾅｺﾞﾔ", "大阪",
                    "しながわ", "福岡", "おおさか", "金沢", "ふくおか", "輪島", "かなざわ", "一宮", "わじま", "美郷",
                    "ｲﾁﾉﾐﾔ", "仙台", "みさと", "那覇", "せんだい", "町", "なは", "村"]
# Who is in the mix, as shares of the clients (at least one each).
MIX = (("staff city", 0.30), ("staff pref", 0.10), ("resident", 0.30), ("national", 0.04), ("registry", 0.26))
MIX_REGISTRY_PAUSE = 0.1  # s between a registry client's searches in the mix (<= 10/s each)
# s a member of staff reads a page before the next click, on average (--staff-pause; each pause
# between half and one and a half of it, _load_mix.ClientPlan; 0 = the next at once, which
# measures the machine's capacity rather than 50 people at work)
STAFF_PAUSE = 0.0
STAFF_RUNS: dict = {}  # (backend, clients, first row) -> the pause of that (a) run
TENANT_CLASSES = ("staff city", "staff pref", "resident", "national")
IMPORT_ROWS = 20_000


# -- who plays whom -------------------------------------------------------------------------------------

@dataclass
class Actor:
    username: str
    lg_code: str
    name: str  # the organisation's name, for the printout
    view: str = ""  # a query the actor's pages add (?view=national)


@dataclass
class Cast:
    city: Actor  # staff of the busiest municipality
    pref: Actor  # staff of its prefecture
    national: list[Actor]  # the national dashboard: 内閣府, the prefecture's national view
    importer: Actor  # the municipality importing a roster in (f); nobody else in the mix acts for it
    password: str
    totp_secret: Callable[[str], bytes]

    def describe(self) -> str:
        return (f"staff city = {self.city.name} ({self.city.username}), staff pref = {self.pref.name} "
                f"({self.pref.username}), national = " + " + ".join(f"{a.name}{' ' + a.view if a.view else ''}"
                                                                   for a in self.national)
                + f", importer = {self.importer.name} ({self.importer.username})")


def demo_cast() -> Cast:
    from kiban import cli

    return Cast(city=Actor("demo-kanazawa", "172014", "金沢市"), pref=Actor("demo-ishikawa", "170003", "石川県"),
                national=[Actor("demo-cabinet", "000035", "内閣府"),
                          Actor("demo-ishikawa", "170003", "石川県", "?view=national")],
                importer=Actor("demo-wajima", "172049", "輪島市"), password=cli.DEMO_PASSWORD,
                totp_secret=cli._demo_totp_secret)


# -- processes ---------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base: str, process: subprocess.Popen, path: str = "/readyz", timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early (code {process.returncode})")
        try:
            with urllib.request.urlopen(base + path, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server not ready in time")


def stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def server_loop_and_http() -> str:
    """What uvicorn's defaults (loop="auto", http="auto") pick here: uvloop/httptools when installed."""
    try:
        import uvloop  # noqa: F401
        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    try:
        import httptools  # noqa: F401
        http = "httptools"
    except ImportError:
        http = "h11"
    return f"{loop} + {http}"


def process_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its children (uvicorn's workers)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += process_cpu(int(child))
    except (OSError, ValueError):
        pass
    return total


def postgres_cpu() -> float:
    """CPU seconds used so far by this machine's PostgreSQL: every ``postgres`` process, and what
    its exited backends left in their parent's account."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
            if not head.endswith("(postgres"):
                continue
            fields = rest.split()
            total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            continue
    return total


async def pg_admin(sql: str) -> None:
    engine = create_engine(PG.format(user="postgres", db="postgres"), pool=False)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


# -- one backend: database, data, server, sign-ins --------------------------------------------------------

@dataclass
class Backend:
    name: str
    args: argparse.Namespace
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kiban-load-")))
    db_name: str | None = None
    owner_url: str = ""
    app_url: str = ""
    server: subprocess.Popen | None = None
    floor: subprocess.Popen | None = None
    base: str = ""
    floor_base: str = ""
    workers: int = 1
    data: object = None
    cast: Cast | None = None
    cookies: dict[str, tuple[str, str]] = field(default_factory=dict)  # username -> (session, csrf)
    import_seed: int = 1

    @property
    def label(self) -> str:
        return "PostgreSQL" if self.name == "postgresql" else "SQLite"

    def __enter__(self) -> Backend:
        if self.name == "sqlite":
            if self.args.from_database:  # a file this script kept (--keep): copied, the original untouched
                shutil.copyfile(self.args.from_database, self.tmp / "load.sqlite3")
                if Path(self.args.from_database + "-wal").exists():  # what was not checkpointed yet
                    shutil.copyfile(self.args.from_database + "-wal", self.tmp / "load.sqlite3-wal")
            self.owner_url = self.app_url = f"sqlite+aiosqlite:///{self.tmp / 'load.sqlite3'}"
        else:
            self.db_name = f"kiban_load_{uuid.uuid4().hex[:8]}"
            template = f' TEMPLATE "{self.args.from_database}"' if self.args.from_database else ""
            asyncio.run(pg_admin(f'CREATE DATABASE "{self.db_name}"{template}'))
            self.owner_url = PG.format(user="postgres", db=self.db_name)
            self.app_url = PG.format(user=APP_ROLE, db=self.db_name)
        return self

    def __exit__(self, *exc) -> None:
        stop(self.server)
        stop(self.floor)
        if self.args.keep:
            print(f"kept {self.tmp}" + (f" and database {self.db_name}" if self.db_name else ""))
            if self.db_name and not self.args.from_database:
                print(f"  reuse it: --from-database {self.db_name} --secret-key {os.environ['KIBAN_SECRET_KEY']}")
            elif self.name == "sqlite" and not self.args.from_database:
                print(f"  reuse it: --backend sqlite --from-database {self.tmp / 'load.sqlite3'} "
                      f"--secret-key {os.environ['KIBAN_SECRET_KEY']}")
            return
        if self.db_name:
            asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
        shutil.rmtree(self.tmp, ignore_errors=True)

    # data ---------------------------------------------------------------------------------------------

    def build(self) -> None:
        started = time.perf_counter()
        if self.args.from_database:
            self._adopt()
        else:
            self._build_own()
        data = self.data
        print(f"  database ready in {time.perf_counter() - started:.0f} s: {sum(data.counts.values()):,} records in the "
              f"disaster ({data.counts.get(self.cast.city.lg_code, 0):,} registered by {self.cast.city.name}), "
              f"{sum(len(v) for v in data.shelters.values())} open shelters", flush=True)
        print(f"  {self.cast.describe()}", flush=True)

    def _build_own(self) -> None:
        from kiban.ops.provision import build_database

        asyncio.run(build_database(self.owner_url, app_role=APP_ROLE))
        os.environ["KIBAN_DATABASE_URL"] = self.owner_url  # for the demo staff (cli's own helper)
        from kiban.kit.settings import get_settings

        get_settings.cache_clear()
        from kiban import cli

        asyncio.run(cli._demo_staff())
        self.cast = demo_cast()
        self.data = asyncio.run(self._disaster())

    async def _disaster(self):
        import _load_data
        from sqlalchemy.ext.asyncio import AsyncSession

        engine = create_engine(self.owner_url)
        try:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                data = await _load_data.open_disaster(session, "負荷計測: 能登沖地震（架空の災害）")
            last = [time.perf_counter()]

            def progress(written: int) -> None:
                if time.perf_counter() - last[0] > 30:
                    last[0] = time.perf_counter()
                    print(f"    {written:,} records written", flush=True)

            await _load_data.insert_records(engine, data, self.args.records, progress=progress)
            data.sample_ids = {"city": data.sample_ids[self.cast.city.lg_code],
                               "pref": [i for v in data.sample_ids.values() for i in v]}
            data.sample_names = {"city": data.sample_names[self.cast.city.lg_code],
                                 "pref": [n for v in data.sample_names.values() for n in v]}
            return data
        finally:
            await engine.dispose()

    def _adopt(self) -> None:
        """A copy of a bench/national_data.py database: migrated to the current revision, its
        busiest municipality and prefecture as the cast, its accounts' password and TOTP."""
        import _load_data
        import national_data

        from kiban.kit import migrate

        os.environ["KIBAN_SECRET_KEY"] = self.args.secret_key or national_data.NATIONAL_SECRET_KEY
        from kiban.kit.settings import get_settings

        get_settings.cache_clear()
        started = time.perf_counter()
        migrate.upgrade(self.owner_url)
        print(f"  copied {self.args.from_database}, migrated to the current revision in "
              f"{time.perf_counter() - started:.0f} s", flush=True)

        async def survey():
            from kiban.core.tenancy import rls

            engine = create_engine(self.owner_url)
            try:
                async with engine.begin() as connection:
                    if self.name == "postgresql":
                        await connection.run_sync(rls.create_app_role, APP_ROLE)
                        await connection.run_sync(rls.grant_app_role, APP_ROLE)
                    await connection.execute(text("ANALYZE"))
                return await _load_data.survey(engine, Actor, Cast)
            finally:
                await engine.dispose()

        data, cast = asyncio.run(survey())
        if cast.city.username.startswith("demo-"):  # a database this script built and kept (--keep)
            from kiban import cli

            cast.password, cast.totp_secret = cli.DEMO_PASSWORD, cli._demo_totp_secret
        else:
            cast.password, cast.totp_secret = national_data.NATIONAL_PASSWORD, national_data.national_totp_secret
        self.data, self.cast = data, cast

    def residents(self, count: int) -> list[str]:
        import _load_data

        async def make() -> list[str]:
            engine = create_engine(self.owner_url)
            try:
                return await _load_data.resident_sessions(engine, count)
            finally:
                await engine.dispose()

        return asyncio.run(make())

    # servers ------------------------------------------------------------------------------------------

    def start(self) -> None:
        wanted = self.args.workers or (2 if self.name == "postgresql" else 1)
        for workers in dict.fromkeys((wanted, 1)):
            self.workers = workers
            port = free_port()
            self.base = f"http://127.0.0.1:{port}"
            env = {**os.environ, "KIBAN_DATABASE_URL": self.app_url, "KIBAN_LOG_LEVEL": self.args.log_level}
            log = open(self.tmp / f"server-{workers}.log", "w")
            self.server = subprocess.Popen(
                [str(ROOT / ".venv/bin/kiban"), "serve", "--port", str(port), "--workers", str(workers)],
                env=env, stdout=log, stderr=log, cwd=self.tmp)
            try:
                wait_ready(self.base, self.server)
                self._check_serving()
                return
            except Exception as exc:  # noqa: BLE001 - fall back to one worker, say why
                print(f"  kiban serve --workers {workers} did not serve ({exc}); falling back", flush=True)
                stop(self.server)
        raise RuntimeError("kiban serve did not start")

    def _check_serving(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            for _ in range(20):  # several requests: with workers > 1 they reach more than one
                response = client.get("/api/v1/organizations", params={"q": "ｻｯﾎﾟﾛ"})
                response.raise_for_status()
                if "札幌市" not in [item["name"] for item in response.json()["items"]]:
                    raise RuntimeError("ｻｯﾎﾟﾛ did not find 札幌市")

    def start_floor(self) -> None:
        bodies = {}
        with httpx.Client(base_url=self.base, timeout=30) as client:
            for path in registry_paths():
                response = client.get(path)
                response.raise_for_status()
                bodies[path.partition("?")[2]] = response.text
        (self.tmp / "floor.json").write_text(json.dumps(bodies, ensure_ascii=False), encoding="utf-8")
        port = free_port()
        self.floor_base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "KIBAN_FLOOR_BODIES": str(self.tmp / "floor.json")}
        self.floor = subprocess.Popen(
            [str(ROOT / ".venv/bin/python"), "-m", "uvicorn", "_floor_app:app", "--app-dir", str(ROOT / "bench"),
             "--host", "127.0.0.1", "--port", str(port), "--workers", str(self.workers), "--log-level", "warning",
             "--no-access-log"], env=env, stdout=subprocess.DEVNULL, stderr=open(self.tmp / "floor.log", "w"))
        wait_ready(self.floor_base, self.floor, path=registry_paths()[0])

    # sign-ins -----------------------------------------------------------------------------------------

    def sign_in(self, username: str) -> tuple[str, str]:
        """Password + TOTP over HTTP, as a browser does; the session and CSRF cookies."""
        if username in self.cookies:
            return self.cookies[username]
        from kiban.core.identity import credentials

        with httpx.Client(base_url=self.base, timeout=60) as client:
            client.get("/signin")
            first = client.post("/signin", data={"username": username, "password": self.cast.password,
                                                 "csrf_token": client.cookies["kiban_csrf"]})
            second = client.post("/signin/totp", data={"code": credentials.totp_code(self.cast.totp_secret(username)),
                                                       "csrf_token": client.cookies["kiban_csrf"]})
            if first.status_code != 303 or second.status_code != 303:
                raise RuntimeError(f"sign-in of {username} failed: {first.status_code} {second.status_code}")
            if second.headers.get("location", "").startswith("/signin/organization"):
                raise RuntimeError(f"{username} belongs to several organisations; the bench expects one")
            self.cookies[username] = (client.cookies["kiban_session"], client.cookies["kiban_csrf"])
        return self.cookies[username]


# -- what each class of client sends ---------------------------------------------------------------------

def registry_paths() -> list[str]:
    return [f"/api/v1/organizations?q={quote(q)}" for q in REGISTRY_QUERIES]


def _host(base: str) -> str:
    return base.removeprefix("http://")


def staff_plan(backend: Backend, cls: str, seed: int) -> ClientPlan:
    role = "city" if cls == "staff city" else "pref"
    actor = backend.cast.city if role == "city" else backend.cast.pref
    session, csrf = backend.sign_in(actor.username)
    data = backend.data
    d, lg = data.disaster_id, actor.lg_code
    ids, names = data.sample_ids[role], data.sample_names[role]
    rng = random.Random(seed)
    paths = []
    for _ in range(100):
        r = rng.random()
        if r < 0.40:
            paths.append(f"/t/{lg}/disasters/{d}?page={rng.randint(1, 5)}")
        elif r < 0.65:
            page = "" if rng.random() < 0.7 else "&page=2"
            paths.append(f"/t/{lg}/disasters/{d}?q={quote(rng.choice(names))}{page}")
        elif r < 0.95:
            paths.append(f"/t/{lg}/disasters/{d}/records/{rng.choice(ids)}")
        else:
            paths.append(f"/t/{lg}/disasters/{d}/dashboard")
    headers = {"Cookie": f"kiban_session={session}; kiban_csrf={csrf}", "Accept": "text/html"}
    return ClientPlan(cls, [request_bytes("GET", p, _host(backend.base), headers=headers) for p in paths],
                      pause_s=STAFF_PAUSE)


def national_plan(backend: Backend, n: int) -> ClientPlan:
    actor = backend.cast.national[n % len(backend.cast.national)]
    session, csrf = backend.sign_in(actor.username)
    path = f"/t/{actor.lg_code}/disasters/{backend.data.disaster_id}/dashboard{actor.view}"
    headers = {"Cookie": f"kiban_session={session}; kiban_csrf={csrf}", "Accept": "text/html"}
    return ClientPlan("national", [request_bytes("GET", path, _host(backend.base), headers=headers)])


def registry_plan(backend: Backend, base: str | None = None, cls: str = "registry", pause_s: float = 0.0) -> ClientPlan:
    host = _host(base or backend.base)
    return ClientPlan(cls, [request_bytes("GET", p, host, headers={"Accept": "application/json"})
                            for p in registry_paths()], pause_s=pause_s)


_SURNAMES = [("佐藤", "さとう"), ("鈴木", "すずき"), ("高橋", "たかはし"), ("田中", "たなか"), ("中村", "なかむら"),
             ("山本", "やまもと"), ("小林", "こばやし"), ("林", "はやし"), ("北村", "きたむら"), ("坂本", "さかもと")]
_GIVEN = [("太郎", "たろう", "male"), ("花子", "はなこ", "female"), ("健太", "けんた", "male"),
          ("美咲", "みさき", "female"), ("翔", "しょう", "male"), ("陽菜", "ひな", "female")]


def resident_plans(backend: Backend, clients: int, per_client: int, seed: int) -> list[ClientPlan]:
    """Each resident registers once (a second time changes nothing): every request its own
    signed-in resident, at a shelter of one of the municipalities (the busiest five times as
    often as each other one); the importing municipality stays out."""
    tokens = backend.residents(clients * per_client)
    data, cast = backend.data, backend.cast
    rng = random.Random(seed)
    codes = sorted(c for c in data.shelters if c != cast.importer.lg_code)
    weights = [5 if c == cast.city.lg_code else 1 for c in codes]
    homes = sorted(data.counts) or codes
    host = _host(backend.base)
    plans = []
    for c in range(clients):
        requests = []
        for token in tokens[c * per_client:(c + 1) * per_client]:
            code = rng.choices(codes, weights)[0]
            shelter_id, _ = rng.choice(data.shelters[code])
            family, family_kana = rng.choice(_SURNAMES)
            given, given_kana, sex = rng.choice(_GIVEN)
            csrf = secrets.token_urlsafe(32)
            birth = f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            body = urlencode({
                "csrf_token": csrf, "family_name": family, "given_name": given, "family_kana": family_kana,
                "given_kana": given_kana, "birth_date": birth, "sex": sex, "home_lg_code": rng.choice(homes),
                "home_address": "（計測用の架空の住所）1-2-3", "phone": f"090-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
                "household_size": str(rng.randint(1, 5)), "damage_level": "未調査", "risai_status": "未申請",
                "rebuild_plan": "未定", "note": ""}).encode()
            requests.append(request_bytes(
                "POST", f"/t/{code}/disasters/{data.disaster_id}/shelters/{shelter_id}/register", host,
                headers={"Cookie": f"kiban_session={token}; kiban_csrf={csrf}", "Accept": "text/html"},
                body=body, content_type="application/x-www-form-urlencoded"))
        plans.append(ClientPlan("resident", requests))
    return plans


def mix_plans(backend: Backend, clients: int, per_resident: int, seed: int) -> list[ClientPlan]:
    counts = {cls: max(1, round(share * clients)) for cls, share in MIX}
    counts["registry"] = max(1, clients - sum(v for k, v in counts.items() if k != "registry"))
    plans: list[ClientPlan] = []
    plans += [staff_plan(backend, "staff city", seed + n) for n in range(counts["staff city"])]
    plans += [staff_plan(backend, "staff pref", seed + 1000 + n) for n in range(counts["staff pref"])]
    plans += resident_plans(backend, counts["resident"], per_resident, seed)
    plans += [national_plan(backend, n) for n in range(counts["national"])]
    # People searching the registry read what they find: without a pause a dozen clients would
    # send thousands of searches a second, more than the whole country does, and starve the rest.
    plans += [registry_plan(backend, pause_s=MIX_REGISTRY_PAUSE) for _ in range(counts["registry"])]
    return plans


# -- measuring and summarising -------------------------------------------------------------------------------

@dataclass
class Stats:
    requests: int
    rps: float
    p50: float
    p99: float
    errors: int
    statuses: dict


def percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def summarise(raw: dict, *, window: tuple[float, float] | None = None) -> dict[str, Stats]:
    """Per class (and ``all``), over every recorded request, or only those started in ``window``.
    An error is any status other than the class's expected one (0: the connection broke; -1: no
    answer within ``REQUEST_TIMEOUT``)."""
    classes, expect = raw["classes"], raw["expect"]
    if window:
        start, end = window
        samples = [s for s in raw["samples"] if start <= s[1] < end]
        elapsed = max(1e-9, min(end, raw["started_at"] + raw["elapsed_s"]) - max(start, raw["started_at"]))
    else:
        samples, elapsed = raw["samples"], raw["elapsed_s"]
    by_class: dict[str, list] = {c: [] for c in classes}
    for index, _, ms, status in samples:
        by_class[classes[index]].append((ms, status))
    by_class["all"] = [(ms, st) for c in classes for ms, st in by_class[c]]
    out = {}
    for cls, rows in by_class.items():
        ordered = sorted(ms for ms, _ in rows)
        statuses: dict[int, int] = {}
        for _, status in rows:
            statuses[status] = statuses.get(status, 0) + 1
        errors = (sum(out[c].errors for c in classes) if cls == "all"
                  else sum(n for status, n in statuses.items() if status != expect.get(cls, 200)))
        out[cls] = Stats(len(rows), len(rows) / elapsed, percentile(ordered, 50), percentile(ordered, 99), errors,
                         statuses)
    return out


def tenants_p99(raw: dict, window: tuple[float, float] | None = None) -> float:
    """p99 over the requests of the tenants' classes (the registry search is public, no tenant's)."""
    wanted = {i for i, c in enumerate(raw["classes"]) if c in TENANT_CLASSES}
    latencies = sorted(ms for c, started, ms, _ in raw["samples"]
                       if c in wanted and (window is None or window[0] <= started < window[1]))
    return percentile(latencies, 99)


def slow_timeline(raw: dict, window: tuple[float, float] | None, threshold_ms: float) -> str:
    """How many of the tenants' requests took over ``threshold_ms``, per 5 s of the window."""
    wanted = {i for i, c in enumerate(raw["classes"]) if c in TENANT_CLASSES}
    start, end = window or (raw["started_at"], raw["started_at"] + raw["elapsed_s"])
    counts = Counter(int((started - start) // 5) for c, started, ms, status in raw["samples"]
                     if c in wanted and start <= started < end and (ms > threshold_ms or status == -1))
    return " ".join(str(counts.get(b, 0)) for b in range(max(1, math.ceil((end - start) / 5))))


REQUEST_TIMEOUT = 60.0  # s; a request unanswered by then counts as an error (status -1) and is abandoned


def run_plans(base: str, plans: list[ClientPlan], warmup: float, duration: float) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(run_mix_sync, (base, plans, warmup, duration, REQUEST_TIMEOUT))


ROWS: list[tuple] = []  # (backend, scenario, clients, class, Stats)
IMPORT_RATIOS: list[tuple] = []
FLOOR: dict[tuple[str, int], tuple[float, list[float], float]] = {}  # ratio, per round, by CPU
E_RAW: dict[tuple[str, int], dict] = {}  # (e)'s samples, for (f)'s comparison


def header() -> None:
    print(f"  {'scenario':<34}{'clients':>5}  {'class':<12}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'load':>6}  errors", flush=True)


def report(backend: Backend, scenario: str, clients: int, stats: dict[str, Stats], note: str = "",
           always_note: bool = False) -> None:
    for cls, s in stats.items():
        if cls == "all" and len(stats) <= 2:
            continue  # one class: its own row says it all
        ROWS.append((backend.label, scenario, clients, cls, s))
        errors = f"{s.errors}" + (f" {dict(sorted((k, v) for k, v in s.statuses.items() if k != 200))}"
                                  if s.errors else "")
        print(f"  {TITLES[scenario]:<34}{clients:>5}  {cls:<12}{s.requests:>9}{s.rps:>9.1f}{s.p50:>9.1f}"
              f"{s.p99:>9.1f}{os.getloadavg()[0]:>6.1f}  {errors}"
              f"{('  ' + note) if note and (always_note or cls == 'all') else ''}", flush=True)


def note_line(text_: str) -> None:
    print(f"  {'':<34}{'':>5}  {text_}", flush=True)


def floor_and_registry(backend: Backend, clients: int, args) -> None:
    """The floor and (d) in alternating rounds, so that both meet the same machine: on a shared
    machine the load from elsewhere changes from minute to minute. Also the servers' CPU time
    per request, which other load does not change much."""
    rounds = max(1, args.ratio_rounds)
    length = max(3.0, args.duration / rounds)
    raws: dict[str, list[dict]] = {"floor": [], "registry": []}
    cpu: dict[str, list[float]] = {"floor": [], "registry": []}
    ratios = []
    for _ in range(rounds):
        rps = {}
        for cls, base, pid in (("floor", backend.floor_base, backend.floor.pid),
                               ("registry", backend.base, backend.server.pid)):
            plans = [registry_plan(backend, base, cls)] * clients
            before = process_cpu(pid)
            raw = run_plans(base, plans, args.warmup, length)
            spent = process_cpu(pid) - before
            count = len(raw["samples"])
            # the warm-up's requests used CPU too: count them at the measured rate
            cpu[cls].append(spent / max(1, count * (length + args.warmup) / length) * 1e6)
            raws[cls].append(raw)
            rps[cls] = count / raw["elapsed_s"]
        ratios.append(rps["registry"] / rps["floor"])
    for cls, scenario in (("floor", "floor"), ("registry", "d")):
        merged = {"classes": [cls], "expect": {cls: 200}, "samples": [s for r in raws[cls] for s in r["samples"]],
                  "elapsed_s": sum(r["elapsed_s"] for r in raws[cls]), "started_at": raws[cls][0]["started_at"]}
        report(backend, scenario, clients, summarise(merged),
               note=f"server CPU {statistics.median(cpu[cls]):.0f} us/request", always_note=True)
    ratio = statistics.median(ratios)
    cpu_ratio = statistics.median(cpu["floor"]) / statistics.median(cpu["registry"])
    FLOOR[(backend.label, clients)] = (ratio, ratios, cpu_ratio)
    note_line(f"Kiban / floor req/s: {ratio:.2f} (median of {rounds} alternating rounds: "
              f"{', '.join(f'{r:.2f}' for r in ratios)}); by server CPU per request: {cpu_ratio:.2f}")


# -- (f): an import while the mix runs ------------------------------------------------------------------------

def run_import(backend: Backend, done: threading.Event, out: dict, timeout: float) -> None:
    """The importer uploads a roster through the import page and accepts it; then waits until the
    batch is imported (the accept may do it at once, or hand it to a background job)."""
    import _load_data

    actor = backend.cast.importer
    session, csrf = backend.sign_in(actor.username)
    data = backend.data
    backend.import_seed += 1
    roster = _load_data.roster_csv(IMPORT_ROWS, actor.lg_code, data.shelters[actor.lg_code][0][1],
                                   seed=backend.import_seed)
    base = f"/t/{actor.lg_code}/disasters/{data.disaster_id}/imports"
    cookies = {"kiban_session": session, "kiban_csrf": csrf}
    out["started"], out["timeout"] = time.time(), timeout
    try:
        with httpx.Client(base_url=backend.base, cookies=cookies, timeout=None) as client:
            upload = client.post(base, data={"csrf_token": csrf}, files={"file": ("roster.csv", roster, "text/csv")})
            if upload.status_code != 303:
                raise RuntimeError(f"upload answered {upload.status_code}")
            batch_url = upload.headers["location"]
            out["uploaded"] = time.time()
            accept = client.post(batch_url + "/accept", data={"csrf_token": csrf, "valid_only": "yes",
                                                              "skip_unconfirmed": "yes"})
            if accept.status_code not in (200, 202, 303):
                raise RuntimeError(f"accept answered {accept.status_code}")
            out["accepted"] = time.time()
        note_line(f"import: upload answered after {out['uploaded'] - out['started']:.1f} s, accept after "
                  f"{out['accepted'] - out['uploaded']:.1f} s")
        batch_id = out["batch_id"] = batch_url.rstrip("/").rsplit("/", 1)[1]
        asyncio.run(wait_imported(backend, batch_id, out["started"] + timeout, out))
    except Exception as exc:  # noqa: BLE001 - reported with the scenario
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        out["ended"] = time.time()
        done.set()


async def wait_imported(backend: Backend, batch_id: str, deadline: float, out: dict) -> None:
    """Until the batch is imported or failed (``staged`` → ``importing`` → ``imported``/``failed``)
    or ``deadline`` (epoch s), reading as a deferred transaction on SQLite (no write lock: the
    import may hold it); progress printed every 30 s."""
    engine = create_engine(backend.owner_url, pool=False)
    shown = time.time()
    try:
        while True:
            async with engine.connect() as connection:
                await connection.execution_options(sqlite_deferred=True)
                row = (await connection.execute(text(
                    "SELECT status, imported_count FROM roster_import WHERE id = :id"), {"id": batch_id})).one()
            out["status"], out["imported"] = row.status, row.imported_count
            if row.status in ("imported", "failed") or time.time() > deadline:
                return
            if time.time() - shown > 30:
                shown = time.time()
                note_line(f"import {row.status}: {row.imported_count:,} rows after {shown - out['started']:.0f} s")
            await asyncio.sleep(0.25)
    finally:
        await engine.dispose()


def run_mix_until(base: str, plans: list[ClientPlan], warmup: float, max_duration: float, stop_flag) -> dict:
    """``run_mix_sync`` that also ends when ``stop_flag`` (a manager Event) is set."""
    import _load_mix

    def watch() -> None:
        stop_flag.wait(max_duration + warmup)
        _load_mix.STOP.set()

    threading.Thread(target=watch, daemon=True).start()
    return run_mix_sync(base, plans, warmup, max_duration, REQUEST_TIMEOUT)


def scenario_f(backend: Backend, clients: int, args) -> None:
    """The mix runs from before the upload until the import is done (or ``--import-timeout``);
    only requests started while the import ran count."""
    plans = mix_plans(backend, clients, args.per_resident(clients), seed=7000 + clients)
    done, out = threading.Event(), {}
    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    stop_flag = manager.Event()
    with context.Pool(1) as pool:
        pending = pool.apply_async(run_mix_until, (backend.base, plans, args.warmup, args.import_timeout + 60,
                                                   stop_flag))
        time.sleep(args.warmup + 1)
        worker = threading.Thread(target=run_import, args=(backend, done, out, args.import_timeout), daemon=True)
        worker.start()
        if not done.wait(args.import_timeout + 30):
            out.setdefault("error", "the import driver did not return")
            out.setdefault("ended", time.time())
        time.sleep(0.5)
        stop_flag.set()
        raw = pending.get()
    worker.join(timeout=5)
    manager.shutdown()
    if "error" in out:
        note_line(f"(f) import failed: {out['error'][:300]}")
    window = (out["started"], out["ended"])
    stats = summarise(raw, window=window)
    finished = out.get("status") == "imported"
    note = (f"import {out.get('imported', 0):,} rows, status {out.get('status', '?')}, {window[1] - window[0]:.1f} s"
            + ("" if finished else f" (not done within --import-timeout {args.import_timeout:g} s)"))
    report(backend, "f", clients, stats, note)
    if not finished and "batch_id" in out:
        # Let it finish without load, so the next run does not share the server with it
        rest = dict(out)
        asyncio.run(wait_imported(backend, out["batch_id"], time.time() + args.import_timeout, rest))
        note_line(f"after the window, without load: import {rest.get('status')}, {rest.get('imported', 0):,} rows, "
                  f"{time.time() - out['ended']:.0f} s more")
    baseline = E_RAW.get((backend.label, clients))
    if baseline:
        during, before = tenants_p99(raw, window), tenants_p99(baseline)
        ratio = during / before if before else float("nan")
        base_stats = summarise(baseline)
        per_class = {c: stats[c].p99 / base_stats[c].p99 for c in stats
                     if c != "all" and c in base_stats and base_stats[c].p99}
        capped = any(st == -1 for r in (raw, baseline) for c, _, _, st in r["samples"]
                     if r["classes"][c] in TENANT_CLASSES)
        IMPORT_RATIOS.append((backend.label, clients, ratio, during, before, per_class, finished, capped))
        note_line(f"tenants' p99 (staff, residents, national) during the import: {during:.1f} ms vs "
                  f"{before:.1f} ms in (e): x{ratio:.2f}")
        # Bunched (a stall: one event) or spread (the cores busier throughout)?
        note_line(f"tenants' requests over 2 x (e)'s p99 ({2 * before:.0f} ms), per 5 s: (e) "
                  f"{slow_timeline(baseline, None, 2 * before)}; import {slow_timeline(raw, window, 2 * before)}")


# -- the run -----------------------------------------------------------------------------------------------------

def wait_until_warm(backend: Backend, timeout: float = 900.0) -> None:
    """A server that has been up for a while: every worker has built the disaster's 名寄せ matcher
    (KIBAN_MATCHER_WARM builds it at start, in the background; on a million records about 20 s of
    CPU per worker) and answers a record page at once. Measuring from a cold start would time the
    build, not the pages."""
    session, csrf = backend.sign_in(backend.cast.city.username)
    data = backend.data
    path = f"/t/{backend.cast.city.lg_code}/disasters/{data.disaster_id}/records/{data.sample_ids['city'][0]}"
    headers = {"Cookie": f"kiban_session={session}; kiban_csrf={csrf}", "Accept": "text/html"}
    started = time.monotonic()
    quick = 0
    while quick < 4 * backend.workers and time.monotonic() - started < timeout:
        with httpx.Client(base_url=backend.base, timeout=timeout) as client:  # a new connection: any worker
            t0 = time.monotonic()
            client.get(path, headers=headers).raise_for_status()
            quick = quick + 1 if time.monotonic() - t0 < 1.0 else 0
    # The dashboards' counts as a server that has been up finds them: the database copied holds
    # counts from when it was built, too old to show, which the first view would count again
    # while the person waits (3-6 s, on both cores).
    for actor in (backend.cast.city, backend.cast.pref):
        session, csrf = backend.sign_in(actor.username)
        with httpx.Client(base_url=backend.base, timeout=timeout) as client:
            client.get(f"/t/{actor.lg_code}/disasters/{data.disaster_id}/dashboard",
                       headers={"Cookie": f"kiban_session={session}; kiban_csrf={csrf}", "Accept": "text/html"}
                       ).raise_for_status()
    print(f"  warm: every worker answers a record page at once after {time.monotonic() - started:.0f} s "
          f"(名寄せ matchers built at start), dashboards counted", flush=True)


def run_backend(name: str, args) -> None:
    with Backend(name, args) as backend:
        print(f"\n== {backend.label} ==", flush=True)
        backend.build()
        backend.start()
        print(f"  kiban serve --workers {backend.workers} (uvicorn {server_loop_and_http()}, log level "
              f"{args.log_level}), cores={os.cpu_count()}", flush=True)
        cast = backend.cast
        for actor in (cast.city, cast.pref, *cast.national, cast.importer):
            backend.sign_in(actor.username)
        wait_until_warm(backend)
        if "floor" in args.scenarios:
            backend.start_floor()
        header()
        # (f) last, for every client count: its import may outlast the window and keep the server
        # busy afterwards (it is waited for without load before anything else runs)
        order = [(c, s) for c in args.clients for s in args.scenarios if s != "f"]
        order += [(c, "f") for c in args.clients if "f" in args.scenarios]
        for clients, scenario in order:
            seed = 1000 * SCENARIOS.index(scenario) + clients
            if scenario == "floor":
                if "d" in args.scenarios:
                    floor_and_registry(backend, clients, args)
                else:
                    report(backend, scenario, clients, summarise(run_plans(
                        backend.floor_base, [registry_plan(backend, backend.floor_base, "floor")] * clients,
                        args.warmup, args.duration)))
            elif scenario == "d":
                if "floor" not in args.scenarios:
                    report(backend, scenario, clients, measured(backend, [registry_plan(backend)] * clients, args))
            elif scenario == "a":
                global STAFF_PAUSE
                for pause in args.staff_pauses:  # the machine's capacity (0), then people at work
                    STAFF_PAUSE = pause
                    half = clients // 2
                    plans = [staff_plan(backend, "staff city", seed + n) for n in range(clients - half)]
                    plans += [staff_plan(backend, "staff pref", seed + 500 + n) for n in range(half)]
                    STAFF_RUNS[(backend.label, clients, len(ROWS))] = pause
                    cpu = process_cpu(backend.server.pid), postgres_cpu()
                    raw = run_plans(backend.base, plans, args.warmup, args.duration)
                    stats = summarise(raw)
                    report(backend, scenario, clients, stats,
                           note=f"each reads a page {pause:g} s on average" if pause else "closed loop", always_note=True)
                    slow_pages(raw)
                    served = max(1, stats["all"].requests)
                    server_ms = (process_cpu(backend.server.pid) - cpu[0]) * 1000 / served
                    database_ms = (postgres_cpu() - cpu[1]) * 1000 / served
                    note_line(f"CPU per request (warm-up included): server {server_ms:.0f} ms, "
                              f"PostgreSQL {database_ms:.0f} ms" + ("" if backend.name == "postgresql" else " (not used)"))
                STAFF_PAUSE = args.staff_pauses[-1]  # (e) and (f): people at work
            elif scenario == "b":
                report(backend, scenario, clients,
                       measured(backend, resident_plans(backend, clients, args.per_resident(clients), seed), args))
            elif scenario == "c":
                report(backend, scenario, clients,
                       measured(backend, [national_plan(backend, n) for n in range(clients)], args))
            elif scenario == "e":
                plans = mix_plans(backend, clients, args.per_resident(clients), seed)
                raw = run_plans(backend.base, plans, args.warmup, args.duration)
                E_RAW[(backend.label, clients)] = raw
                report(backend, scenario, clients, summarise(raw))
                note_line(f"tenants' p99 (staff, residents, national): {tenants_p99(raw):.1f} ms")
            elif scenario == "f":
                scenario_f(backend, clients, args)


def measured(backend: Backend, plans: list[ClientPlan], args) -> dict[str, Stats]:
    return summarise(run_plans(backend.base, plans, args.warmup, args.duration))


def page_kind(request_line: str) -> str:
    """A staff page's kind from its request line (GET /t/…/disasters/…?q=… HTTP/1.1)."""
    path = request_line.split(" ")[1] if " " in request_line else request_line
    if "/records/" in path:
        return "record"
    if path.split("?")[0].endswith("/dashboard"):
        return "dashboard"
    return "search" if "q=" in path else "workspace"


def slow_pages(raw: dict) -> None:
    """Which pages the requests over 300 ms were, and when: what makes the p99."""
    slow = sorted(raw.get("slow", []), reverse=True)
    if not slow:
        note_line("no request took 300 ms or more")
        return
    kinds = Counter(page_kind(line) for _, _, _, line in slow)
    note_line("requests of 300 ms or more by page: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common())
              + "; slowest: " + ", ".join(f"{ms:.0f} ms {page_kind(line)} at +{at - raw['started_at']:.1f} s"
                                         for ms, at, _, line in slow[:6])
              + f" (the window began at {time.strftime('%H:%M:%S', time.localtime(raw['started_at']))}"
              + f".{int(raw['started_at'] % 1 * 10)}, for the server's log)")


def verdicts() -> None:
    print("\n== targets ==")
    errors = [(b, s, c, cls, st.errors) for b, s, c, cls, st in ROWS if cls != "all" and st.errors]
    print(f"  0 errors: {'PASS' if not errors else 'FAIL'}" +
          ("" if not errors else " — " + "; ".join(f"{b} {s} {c} clients {cls}: {e}" for b, s, c, cls, e in errors)))
    starts = sorted(STAFF_RUNS)
    for i, (b, s, c, cls, st) in enumerate(ROWS):
        if s == "a" and cls == "all":
            pause = next((STAFF_RUNS[k] for k in reversed(starts) if k[2] <= i), 0.0)
            how = f"each reading a page {pause:g} s" if pause else "closed loop, no pause"
            if b == "PostgreSQL" and c == 50:
                print(f"  staff pages p99 < 300 ms at 50 clients on PostgreSQL ({how}): {st.p99:.0f} ms "
                      f"{'PASS' if st.p99 < 300 else 'FAIL'}")
            else:
                print(f"  (staff pages p99 on {b} at {c} clients, {how}: {st.p99:.0f} ms, for information)")
    for b, c, ratio, during, before, per_class, finished, capped in IMPORT_RATIOS:
        classes = ", ".join(f"{k} x{v:.2f}" for k, v in per_class.items())
        verdict = ("NOT MEASURED: requests ran into the 60 s limit" if capped else "PASS" if ratio < 2 else "FAIL") + (
            "" if finished else " (import not finished)")
        print(f"  import raises other tenants' p99 < 2x ({b}, {c} clients): x{ratio:.2f} "
              f"({during:.0f} vs {before:.0f} ms) {verdict}  [{classes}]")
    for (b, c), (ratio, ratios, cpu_ratio) in FLOOR.items():
        print(f"  registry search >= 0.3 of the floor ({b}, {c} clients): {ratio:.2f} "
              f"{'PASS' if ratio >= 0.3 else 'FAIL'} (rounds {', '.join(f'{r:.2f}' for r in ratios)}; "
              f"by server CPU per request {cpu_ratio:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--records", type=int, default=None,
                        help="victim records in the disaster (default 1,000,000; --quick 20,000)")
    parser.add_argument("--quick", action="store_true", help="20,000 records, 8 s per run, 240 s for the import")
    parser.add_argument("--from-database", help="work on a copy of this database: PostgreSQL, its name "
                                                 "(bench/national_data.py, or one this script kept with --keep); "
                                                 "SQLite, the path of a file this script kept with --keep")
    parser.add_argument("--secret-key", help="with --from-database: the KIBAN_SECRET_KEY it was made with "
                                             "(default national_data.NATIONAL_SECRET_KEY)")
    parser.add_argument("--clients", default="50,200")
    parser.add_argument("--staff-pause", default="0",
                        help="seconds each member of staff reads a page before the next click, on average; a list (e.g. 0,2) "
                             "runs (a) once per value, and (e), (f) use the last (default 0: closed loop, every "
                             "answer followed at once by the next request)")
    parser.add_argument("--duration", type=float, default=None, help="seconds measured per run (default 15; --quick 8)")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--workers", type=int, default=0,
                        help="kiban serve workers (default: 2 on PostgreSQL if it serves, else 1; 1 on SQLite)")
    parser.add_argument("--log-level", default="INFO",
                        help="KIBAN_LOG_LEVEL of the server (INFO, the default, logs every request)")
    parser.add_argument("--import-timeout", type=float, default=None,
                        help="longest wait for the (f) import, s (default 900; --quick 240)")
    parser.add_argument("--ratio-rounds", type=int, default=3, help="alternating floor/(d) rounds")
    parser.add_argument("--keep", action="store_true", help="keep the database and server logs")
    args = parser.parse_args()
    if args.from_database and args.backend == "both":
        parser.error("--from-database needs --backend postgresql (a database's name) or sqlite (a file's path)")
    args.records = args.records if args.records is not None else (20_000 if args.quick else 1_000_000)
    args.duration = args.duration if args.duration is not None else (8.0 if args.quick else 15.0)
    args.import_timeout = args.import_timeout if args.import_timeout is not None else (240.0 if args.quick else 900.0)
    args.clients = [int(c) for c in args.clients.split(",")]
    global STAFF_PAUSE
    args.staff_pauses = [float(p) for p in args.staff_pause.split(",")]
    STAFF_PAUSE = args.staff_pauses[-1]
    args.scenarios = [s for s in SCENARIOS if s in args.scenarios.split(",")]
    # Residents prepared per client and run: more than a client can register in the run.
    args.per_resident = lambda clients: max(20, math.ceil(60 * args.duration / clients) * 4)
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    print(f"bench/load.py: {', '.join(backends)}; clients {args.clients}; {args.duration:g} s per run after "
          f"{args.warmup:g} s warm-up; scenarios {','.join(args.scenarios)}; staff pause {args.staff_pause} s; "
          f"cores={os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    try:
        for name in backends:
            run_backend(name, args)
    finally:
        verdicts()
        options = [f"--backend {args.backend}"] + (["--quick"] if args.quick else [])
        options += [f"--from-database {args.from_database}"] if args.from_database else [f"--records {args.records}"]
        options += [f"--secret-key {args.secret_key}"] if args.secret_key else []
        options += [f"--clients {','.join(map(str, args.clients))}", f"--duration {args.duration:g}",
                    f"--warmup {args.warmup:g}", f"--scenarios {','.join(args.scenarios)}"]
        options += [f"--workers {args.workers}"] if args.workers else []
        options += [f"--staff-pause {args.staff_pause}"] if args.staff_pause != "0" else []
        options += [f"--log-level {args.log_level}"] if args.log_level != "INFO" else []
        options += [f"--ratio-rounds {args.ratio_rounds}"] if args.ratio_rounds != 3 else []
        options += [f"--import-timeout {args.import_timeout:g}"] if "--import-timeout" in sys.argv else []
        print(f"\nrerun: .venv/bin/python bench/load.py {' '.join(options)}")


if __name__ == "__main__":
    main()
