"""Data for ``bench/load.py``: one disaster in 石川県 with shelters and N synthetic victim records
(``synthetic.iter_registrations``: nobody real), written with bulk inserts (COPY on PostgreSQL,
executemany on SQLite) rather than one ORM registration at a time; resident sign-ins as
sessions; a roster file for the import scenario.

Records are inserted as the table owner, column by column from the model: a column this module
does not know (added after it was written) gets the model's default, and a required column
without one stops the build with its name, so a schema change never yields silently wrong data.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from kiban.core.identity.models import Principal, WebSession
from kiban.core.identity.service import token_hash
from kiban.core.registry import service as registry
from kiban.core.registry.codes import prefecture_code
from kiban.core.registry.models import Organization
from kiban.core.tenancy.context import as_tenant
from kiban.kit.db import utcnow
from kiban.modules.disaster import service
from kiban.modules.disaster.fields import TEMPLATE_FIELDS
from kiban.modules.disaster.models import VictimRecord
from kiban.modules.disaster.synthetic import DEFAULT_AFFECTED, DEFAULT_REGISTERING, iter_registrations

PREFECTURE = "170003"  # 石川県
BUSIEST = "172014"  # 金沢市: the most registrations (evacuees from the whole peninsula)
ACTOR = "負荷計測（架空）"
SHELTERS_PER_MUNICIPALITY = 3
BATCH = 5000

_WHEREABOUTS = (("shelter", 55), ("home", 20), ("relatives", 15), ("unknown", 10))
_DAMAGE = (("未調査", 40), ("全壊", 10), ("半壊", 20), ("一部損壊", 30))
_CARE = ((), ("高齢者",), ("障害者",), ("乳幼児",))


@dataclass
class DisasterData:
    disaster_id: str
    shelters: dict[str, list[tuple[str, str]]]  # lg_code -> [(shelter id, name)]
    counts: Counter = field(default_factory=Counter)  # records by registering municipality
    sample_ids: dict[str, list[str]] = field(default_factory=dict)  # a few record ids per municipality
    sample_names: dict[str, list[str]] = field(default_factory=dict)  # family names / kana to search for
    names: dict[str, str] = field(default_factory=dict)  # lg_code -> organisation name


async def open_disaster(session: AsyncSession, name: str) -> DisasterData:
    prefecture = await registry.tenant_for(session, PREFECTURE)
    disaster = await service.open_disaster(
        session, prefecture, name=name, kind="地震", occurred_on=date(2026, 1, 1),
        description="負荷計測のための架空の災害です。登録されている人はすべて合成データです。",
        affected=list(DEFAULT_AFFECTED), relief_act=list(DEFAULT_AFFECTED[:3]), actor=ACTOR)
    shelters: dict[str, list[tuple[str, str]]] = {}
    for code in DEFAULT_REGISTERING:
        tenant = await registry.tenant_for(session, code)
        async with as_tenant(session, tenant):
            for n in range(1, SHELTERS_PER_MUNICIPALITY + 1):
                shelter_name = f"{tenant.name}第{n}避難所（計測）"
                shelter = await service.save_shelter(
                    session, disaster, shelter_id=None, name=shelter_name, address="", capacity="5000",
                    occupancy="0", is_open=True, needs="", expected_version=0, actor=ACTOR)
                shelters.setdefault(code, []).append((shelter.id, shelter_name))
    names = dict((await session.execute(select(Organization.code, Organization.name))).all())
    await session.commit()
    return DisasterData(disaster.id, shelters, names=names)


def _pick(rng_value: float, table) -> object:
    total = sum(w for _, w in table)
    point = rng_value * total
    for value, weight in table:
        point -= weight
        if point < 0:
            return value
    return table[-1][0]


def _rows(data: DisasterData, records: int, seed: int) -> Iterator[dict]:
    import random

    rng = random.Random(seed)
    now = utcnow()
    for row in iter_registrations(records, seed=seed):
        code = row["registered_by"]
        whereabouts = _pick(rng.random(), _WHEREABOUTS)
        shelter_id = None
        current = row["home_lg_code"]
        if whereabouts == "shelter":
            shelter_id = rng.choice(data.shelters[code])[0]
            current = code
        elif whereabouts == "relatives" and code != row["home_lg_code"]:
            current = code
        birth = row["birth_date"]
        if isinstance(birth, str):
            birth = date.fromisoformat(birth)
        yield {
            "id": str(uuid.uuid4()), "lg_code": code, "disaster_id": data.disaster_id,
            "family_name": row["family_name"].strip() or "不明", "given_name": row["given_name"].strip() or "不明",
            "family_kana": row["family_kana"] or "", "given_kana": row["given_kana"] or "",
            "birth_date": birth, "sex": row["sex"], "home_address": row["home_address"] or "",
            "home_lg_code": row["home_lg_code"], "home_pref_code": prefecture_code(row["home_lg_code"]),
            "whereabouts": whereabouts, "shelter_id": shelter_id, "wide_area_lg_code": None,
            "current_lg_code": current, "current_pref_code": prefecture_code(current),
            "phone": row["phone"] or "", "household_key": row["household_id"], "household_size": 1,
            "care_needs": list(_CARE[rng.randrange(len(_CARE))]) if rng.random() < 0.3 else [],
            "damage_level": _pick(rng.random(), _DAMAGE), "risai_status": "未申請", "rebuild_plan": "未定",
            "demolished": False, "long_term_evacuation": False, "supports": [], "note": "",
            "resident_subject_id": None, "protected": False, "import_key": f"bench:{row['record_id']}",
            "version": 1, "created_by": ACTOR, "created_at": now, "updated_at": now,
        }


def search_columns(row: dict) -> dict:
    """The search keys registration writes on a record (``modules/disaster/names.py``), computed by
    the same functions: ``search_keys`` when the module has it, else the two keys of its first
    version, else nothing (a schema without them)."""
    from kiban.modules.disaster import names

    if hasattr(names, "search_keys"):
        return names.search_keys(row["family_name"], row["given_name"], row["family_kana"], row["given_kana"])
    if hasattr(names, "name_search_key"):
        return {"name_key": names.name_search_key(row["family_name"], row["given_name"]),
                "kana_key": names.kana_search_key(row["family_kana"], row["given_kana"])}
    return {}


def _column_filler():
    """For every column of victim_record: how to get its value from a row this module made."""
    table = VictimRecord.__table__
    probe = next(_rows_probe())
    known = set(probe) | set(search_columns(probe))
    fillers = []
    for column in table.columns:
        if column.name in known:
            fillers.append((column.name, None))
        elif column.default is not None and column.default.is_scalar:
            fillers.append((column.name, ("value", column.default.arg)))
        elif column.default is not None and column.default.is_callable:
            fillers.append((column.name, ("call", column.default.arg)))
        elif column.server_default is not None:
            continue  # left to the database
        elif column.nullable:
            fillers.append((column.name, ("value", None)))
        else:
            raise SystemExit(f"victim_record.{column.name} is required and bench/_load_data.py does not fill it: "
                             "teach _rows() how registration computes it")
    return fillers


def _rows_probe() -> Iterator[dict]:
    probe = DisasterData("probe", {c: [("s", "s")] for c in DEFAULT_REGISTERING})
    return _rows(probe, 1, 1)


class _Context:
    """What a column's callable default is given (it may read the row's other values)."""

    def __init__(self, row: dict) -> None:
        self.row = row

    def get_current_parameters(self, isolate_multiinsert_groups: bool = True) -> dict:
        return self.row


def _complete(row: dict, fillers) -> dict:
    for name, how in fillers:
        if how is None:
            continue
        kind, arg = how
        row[name] = arg if kind == "value" else arg(_Context(row))
    return row


async def insert_records(engine: AsyncEngine, data: DisasterData, records: int, seed: int = 20260101,
                         progress=None) -> None:
    """Write ``records`` registrations for ``data``'s disaster (as the owner: no RLS, no audit)."""
    fillers = _column_filler()
    columns = [name for name, _ in fillers]
    json_columns = {c.name for c in VictimRecord.__table__.columns if c.type.__class__.__name__ == "JSON"}
    batch: list[dict] = []
    written = 0

    async def flush() -> None:
        nonlocal written
        if not batch:
            return
        async with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                raw = (await connection.get_raw_connection()).driver_connection
                await raw.copy_records_to_table(
                    "victim_record", columns=columns,
                    records=[tuple(json.dumps(r[c], ensure_ascii=False) if c in json_columns else r[c] for c in columns)
                             for r in batch])
            else:
                await connection.execute(insert(VictimRecord.__table__), batch)
        written += len(batch)
        if progress:
            progress(written)
        batch.clear()

    table_columns = set(columns)
    for row in _rows(data, records, seed):
        row.update((k, v) for k, v in search_columns(row).items() if k in table_columns)
        row = _complete(row, fillers)
        code = row["lg_code"]
        data.counts[code] += 1
        ids = data.sample_ids.setdefault(code, [])
        if len(ids) < 200 and data.counts[code] % 7 == 1:
            ids.append(row["id"])
        found = data.sample_names.setdefault(code, [])
        if len(found) < 40 and data.counts[code] % 13 == 2:
            found.append(row["family_name"] if len(found) % 2 == 0 else (row["family_kana"] or row["family_name"]))
        batch.append(row)
        if len(batch) >= BATCH:
            await flush()
    await flush()
    async with engine.begin() as connection:
        await connection.execute(text("ANALYZE"))


async def resident_sessions(engine: AsyncEngine, count: int) -> list[str]:
    """``count`` residents signed in (as the card sign-in leaves them: a resident principal and an
    active session), made directly in the database: thousands of card sign-ins would measure the
    sign-in, not registering. Returns the cookie tokens."""
    now = utcnow()
    tokens = []
    principals, sessions = [], []
    for _ in range(count):
        token = secrets.token_urlsafe(32)
        principal_id = str(uuid.uuid4())
        tokens.append(token)
        principals.append({"id": principal_id, "kind": "resident", "display_name": "住民", "created_at": now})
        sessions.append({"id": str(uuid.uuid4()), "token_hash": token_hash(token), "principal_id": principal_id,
                         "stage": "active", "acting_lg_code": None, "created_at": now, "last_seen_at": now,
                         "expires_at": now + timedelta(hours=12), "revoked_at": None})
    async with engine.begin() as connection:
        for start in range(0, count, BATCH):
            await connection.execute(insert(Principal.__table__), principals[start:start + BATCH])
            await connection.execute(insert(WebSession.__table__), sessions[start:start + BATCH])
    return tokens


async def survey(engine: AsyncEngine, Actor, Cast):  # noqa: N803 - load.py's classes
    """What ``bench/load.py`` needs from a database someone else filled (bench/national_data.py):
    the disaster with the most records, its open shelters and counts, the busiest municipality
    (the city), its prefecture, the next busiest municipality of that prefecture with an open
    shelter (the importer), 内閣府, one staff account of each that may read and write the
    disaster's records, and sample records to open and names to search for."""
    import random

    rng = random.Random(11)
    async with engine.connect() as c:
        disaster_id = (await c.execute(text(
            "SELECT disaster_id FROM victim_record GROUP BY disaster_id ORDER BY count(*) DESC LIMIT 1"))).scalar_one()
        counts = Counter(dict((await c.execute(text(
            "SELECT lg_code, count(*) FROM victim_record WHERE disaster_id = :d GROUP BY lg_code"),
            {"d": disaster_id})).all()))
        names = dict((await c.execute(select(Organization.code, Organization.name))).all())
        shelters: dict[str, list[tuple[str, str]]] = {}
        for code, shelter_id, name in (await c.execute(text(
                "SELECT lg_code, id, name FROM shelter WHERE disaster_id = :d AND is_open ORDER BY lg_code, name"),
                {"d": disaster_id})).all():
            shelters.setdefault(code, []).append((shelter_id, name))
        city = max(counts, key=counts.__getitem__)
        pref = prefecture_code(city)
        importers = sorted((code for code in counts if code != city and prefecture_code(code) == pref and code in shelters),
                           key=lambda code: -counts[code])

        async def account(code: str, roles: tuple[str, ...] = ("admin", "staff")) -> str:
            found = (await c.execute(text(
                "SELECT sc.username FROM membership m JOIN staff_credential sc ON sc.principal_id = m.principal_id "
                "JOIN principal p ON p.id = m.principal_id WHERE m.lg_code = :code AND m.revoked_at IS NULL "
                "AND m.role IN :roles AND sc.totp_confirmed_at IS NOT NULL AND p.disabled_at IS NULL "
                "AND (SELECT count(*) FROM membership o WHERE o.principal_id = m.principal_id AND o.revoked_at IS NULL) = 1 "
                "ORDER BY m.role = 'admin' DESC, sc.username LIMIT 1").bindparams(bindparam("roles", expanding=True)),
                {"code": code, "roles": list(roles)})).scalar()
            if found is None:
                raise SystemExit(f"no staff account of {names.get(code, code)} to sign in with")
            return found

        async def first_with_account(codes: list[str]) -> str:
            """The first of ``codes`` with a staff account (a database --keep left has demo staff only in some)."""
            for code in codes:
                try:
                    await account(code)
                    return code
                except SystemExit:
                    continue
            raise SystemExit("no municipality to import with a staff account")

        def sample(rows, k: int) -> list:
            rows = list(rows)
            return rng.sample(rows, min(k, len(rows)))

        city_rows = (await c.execute(text(
            "SELECT id, family_name, family_kana FROM victim_record WHERE disaster_id = :d AND lg_code = :c LIMIT 5000"),
            {"d": disaster_id, "c": city})).all()
        pref_rows = (await c.execute(text(
            "SELECT id, family_name, family_kana FROM victim_record WHERE disaster_id = :d "
            "AND (home_pref_code = :p OR current_pref_code = :p) LIMIT 20000"), {"d": disaster_id, "p": pref})).all()
        data = DisasterData(disaster_id, shelters, counts=counts, names=names)
        data.sample_ids = {"city": [r.id for r in sample(city_rows, 200)], "pref": [r.id for r in sample(pref_rows, 400)]}
        data.sample_names = {role: [r.family_name if n % 2 == 0 else (r.family_kana or r.family_name)
                                    for n, r in enumerate(sample(rows, 40))]
                             for role, rows in (("city", city_rows), ("pref", pref_rows))}
        cabinet = "000035"
        cast = Cast(city=Actor(await account(city), city, names[city]), pref=Actor(await account(pref), pref, names[pref]),
                    national=[Actor(await account(cabinet, ("admin", "staff", "viewer")), cabinet, names[cabinet]),
                              Actor(await account(pref), pref, names[pref], "?view=national")],
                    importer=Actor(await account(importer := await first_with_account(importers)), importer, names[importer]), password="",
                    totp_secret=lambda username: b"")
    return data, cast


def roster_csv(rows: int, registering: str, shelter_name: str, seed: int) -> bytes:
    """A roster as a shelter would send it: the template's columns, separate family and given
    names (no split to confirm), every row valid."""
    labels = [f.label for f in TEMPLATE_FIELDS]
    keys = [f.key for f in TEMPLATE_FIELDS]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(labels)
    for n, row in enumerate(iter_registrations(rows, seed=seed, registering_lg_codes=(registering,))):
        birth = row["birth_date"]
        values = {
            "family_name": row["family_name"].strip() or "不明", "given_name": row["given_name"].strip() or "不明",
            "family_kana": row["family_kana"] or "", "given_kana": row["given_kana"] or "",
            "birth_date": birth.isoformat() if isinstance(birth, date) else (birth or ""),
            "sex": {"male": "男", "female": "女"}.get(row["sex"] or "", ""), "phone": row["phone"] or "",
            "home_lg_code": row["home_lg_code"], "home_address": row["home_address"] or "",
            "household_key": f"{seed}-{row['household_id']}"[:60], "household_size": "1", "care_needs": "",
            "whereabouts": "避難所", "shelter_name": shelter_name, "wide_area_lg_code": "", "damage_level": "",
            "risai_status": "", "note": "",
        }
        writer.writerow([values.get(k, "") for k in keys])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
