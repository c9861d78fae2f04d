"""広域被災者データベース: the rules.

Sharing (災害対策基本法 第90条の3・第90条の4): within a disaster, a victim record is visible to
the municipality that registered it, the person's home municipality, the municipality where the
person is now, and the prefectures of both. Everyone else (内閣府, other prefectures, other
municipalities) sees aggregates only, and a record they ask for does not exist for them (404).
Every read of another municipality's record is recorded on the owning municipality's audit
chain with purpose and legal basis, and on the resident's access history when the record is
linked to a signed-in resident.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, any_, bindparam, case, func, or_, select, true, union, union_all, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy import text as sql_text
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from kiban.core.audit import service as audit
from kiban.core.jobs.runner import register_ticker
from kiban.core.registry import service as registry
from kiban.core.registry.codes import prefecture_code
from kiban.core.registry.models import Organization, OrgType
from kiban.core.tenancy import settings_service
from kiban.core.tenancy.context import Tenant, unscoped
from kiban.core.tenancy.repository import TenantRepository
from kiban.core.tenancy.settings_definitions import SHELTER_WARNING_PERCENT
from kiban.kit import offload, shared
from kiban.kit.db import EncodedJSON, deferred, utcnow
from kiban.kit.errors import Conflict, InvalidInput, KibanError, NotFound
from kiban.modules.disaster.models import (
    DISASTER_KINDS,
    ROSTER_KEY_COLUMNS,
    Disaster,
    DisasterArea,
    LinkageBatch,
    MatchDecision,
    RosterImport,
    Shelter,
    VictimRecord,
    roster_key_of,
)
from kiban.modules.disaster.linkage import explain_pair
from kiban.modules.disaster.names import prefix_upper_bound, search_key
from kiban.modules.disaster.roster import CARE_NEEDS, DAMAGE_LEVELS, RISAI_STATUSES, WHEREABOUTS
from kiban.modules.disaster.support import REBUILD_PLANS

CABINET_OFFICE = "000035"  # 内閣府
LEGAL_BASIS = "災害対策基本法 第90条の3・第90条の4"
SHARE_PURPOSE = "被災者の援護（市町村の区域を越えた被災者情報の共有）"
SMALL_COUNT = 10  # counts under this are suppressed outside the owning municipality
# Confirming a match lets each side's readers see the other record, so only candidates the model
# finds at least this probable may be confirmed from the candidate list.
MIN_CONFIRM_PROBABILITY = 0.5
MUNICIPAL_TYPES = {OrgType.designated_city.value, OrgType.city.value, OrgType.town.value, OrgType.village.value,
                   OrgType.special_ward.value}
SUPPORT_KINDS = ("物資", "医療・保健", "見守り", "応急修理", "応急仮設住宅", "被災者生活再建支援金", "災害弔慰金", "生活福祉資金")


class ShelterRepository(TenantRepository[Shelter]):
    model = Shelter


class RecordRepository(TenantRepository[VictimRecord]):
    model = VictimRecord


def may_open_disasters(tenant: Tenant) -> bool:
    return tenant.is_prefecture or tenant.lg_code == CABINET_OFFICE


def is_municipality(tenant: Tenant) -> bool:
    return tenant.type in MUNICIPAL_TYPES


# -- disasters ------------------------------------------------------------------------------------

async def open_disaster(session: AsyncSession, opener: Tenant, *, name: str, kind: str, occurred_on: date | None,
                        description: str, affected: list[str], relief_act: list[str], actor: str) -> Disaster:
    if not may_open_disasters(opener):
        raise NotFound("ページが見つかりません。")
    if not name.strip():
        raise InvalidInput("災害の名称を入力してください（例: 令和8年〇〇地震）。")
    if kind not in DISASTER_KINDS:
        raise InvalidInput(f"災害の種類は {'・'.join(DISASTER_KINDS)} から選んでください。")
    if occurred_on is None or occurred_on > date.today():
        raise InvalidInput("発生日を今日以前の日付で入力してください。")
    codes = sorted({c.strip() for c in affected if c.strip()})
    if not codes:
        raise InvalidInput("被害のある市町村を1つ以上選んでください。")
    orgs = {o.code: o for o in (await session.scalars(select(Organization).where(Organization.code.in_(codes)))).all()}
    for code in codes:
        org = orgs.get(code)
        if org is None or org.type not in MUNICIPAL_TYPES or org.retired_on is not None:
            raise InvalidInput(f"団体コード {code} は現存する市区町村ではありません。")
        if opener.is_prefecture and prefecture_code(code) != opener.lg_code:
            raise InvalidInput(f"{org.name}は{opener.name}の市町村ではありません。ほかの都道府県の市町村を含む災害は内閣府が開設します。")
    unknown = set(relief_act) - set(codes)
    if unknown:
        raise InvalidInput("災害救助法の適用は、被害のある市町村の中から選んでください。")
    disaster = Disaster(id=str(uuid.uuid4()), name=name.strip(), kind=kind, occurred_on=occurred_on,
                        description=description.strip(), opened_by_code=opener.lg_code, opened_by=actor,
                        opened_at=utcnow())
    session.add(disaster)
    await session.flush()
    session.add_all(DisasterArea(disaster_id=disaster.id, municipality_code=code, relief_act=code in relief_act,
                                 relief_act_from=occurred_on if code in relief_act else None, support_act=code in relief_act)
                    for code in codes)
    await session.flush()
    return disaster


async def close_disaster(session: AsyncSession, closer: Tenant, disaster_id: str, *, dry_run: bool = False) -> Disaster:
    """対応終了: the organisation that opened the disaster (or 内閣府) closes it; records stay
    readable under the same rules, and nothing new can be registered. ``dry_run`` only checks
    (NotFound for anyone else, Conflict when already closed)."""
    disaster = await get_disaster(session, disaster_id)
    if closer.lg_code not in (disaster.opened_by_code, CABINET_OFFICE):
        raise NotFound("ページが見つかりません。")
    if disaster.closed_at is not None:
        raise Conflict("この災害の対応はすでに終了しています。")
    if dry_run:
        return disaster
    disaster.closed_at = utcnow()
    await session.flush()
    return disaster


async def list_disasters(session: AsyncSession) -> list[Disaster]:
    return list((await session.scalars(select(Disaster).order_by(Disaster.occurred_on.desc(), Disaster.name))).all())


async def get_disaster(session: AsyncSession, disaster_id: str) -> Disaster:
    disaster = await session.get(Disaster, disaster_id)
    if disaster is None:
        raise NotFound("災害が見つかりません。")
    return disaster


async def areas(session: AsyncSession, disaster_id: str) -> list[tuple[DisasterArea, Organization]]:
    rows = await session.execute(select(DisasterArea, Organization).join(Organization, Organization.code == DisasterArea.municipality_code)
                                 .where(DisasterArea.disaster_id == disaster_id).order_by(DisasterArea.municipality_code))
    return [(a, o) for a, o in rows]


# -- shelters (own tenant) ---------------------------------------------------------------------------

def _count(value: str | int, what: str) -> int:
    text = str(value).strip().translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if not text.isdigit():
        raise InvalidInput(f"{what}「{value}」は0以上の整数で入力してください。")
    number = int(text)
    if number > 100_000:
        raise InvalidInput(f"{what}が大きすぎます。")
    return number


OVER_CAPACITY = "over_capacity"  # the error field that asks staff to confirm, not to correct


async def save_shelter(session: AsyncSession, disaster: Disaster, *, shelter_id: str | None, name: str, address: str,
                       capacity: str, occupancy: str, is_open: bool, needs: str, expected_version: int,
                       actor: str, over_capacity_confirmed: bool = True) -> Shelter:
    """Open or update one of the tenant's shelters. Every problem with the input is reported at
    once (``InvalidInput.errors``, one per field); occupancy above a known capacity (0 = 未設定)
    is saved only when ``over_capacity_confirmed`` (the error's field is ``OVER_CAPACITY``)."""
    if disaster.closed_at is not None:
        raise Conflict("この災害の対応は終了しています。")
    errors: list[dict] = []
    if not name.strip():
        errors.append({"field": "name", "message": "避難所の名称を入力してください。"})
    elif len(name.strip()) > 200:
        errors.append({"field": "name", "message": "避難所の名称は200文字以内で入力してください。"})
    if len(address.strip()) > 300:
        errors.append({"field": "address", "message": "住所は300文字以内で入力してください。"})
    cap = occ = None
    for field_name, raw, what in (("occupancy", occupancy, "避難者数"), ("capacity", capacity, "収容人数")):
        try:
            number = _count(raw, what)
        except InvalidInput as exc:
            errors.append({"field": field_name, "message": exc.detail})
            continue
        if field_name == "capacity":
            cap = number
        else:
            occ = number
    if len(needs.strip()) > 2000:
        errors.append({"field": "needs", "message": "必要なものは2000文字以内で入力してください。"})
    if not errors and cap and occ is not None and occ > cap and not over_capacity_confirmed:
        errors.append({"field": OVER_CAPACITY, "message": f"避難者数 {occ} 人が収容人数 {cap} 人を超えています。"
                       "数を確かめ、このまま保存するときは「収容人数を超えていることを確認しました」にチェックを入れてください。"})
    if errors:
        raise InvalidInput(errors[0]["message"] if len(errors) == 1 else f"入力内容を確認してください（{len(errors)} 件）。",
                           errors=errors)
    repo = ShelterRepository(session)
    if shelter_id:
        shelter = await get_shelter(session, disaster.id, shelter_id)
        if shelter is None:
            raise NotFound("避難所が見つかりません。")
        if shelter.version != expected_version:
            raise Conflict("ほかの職員が先にこの避難所を更新しました。最新の内容を確認してから、もう一度保存してください。")
        shelter.version += 1
    else:
        shelter = repo.add(Shelter(id=str(uuid.uuid4()), disaster_id=disaster.id, version=1))
    shelter.name, shelter.address, shelter.capacity, shelter.occupancy = name.strip(), address.strip(), cap, occ
    shelter.is_open, shelter.needs = is_open, needs.strip()
    shelter.updated_by, shelter.updated_at = actor, utcnow()
    await session.flush()
    return shelter


async def get_shelter(session: AsyncSession, disaster_id: str, shelter_id: str | None, *,
                      open_only: bool = False) -> Shelter | None:
    """One of the tenant's shelters for this disaster (None if it has no such shelter)."""
    repo = ShelterRepository(session)
    shelter = await repo.first(repo.select().where(Shelter.id == (shelter_id or ""), Shelter.disaster_id == disaster_id))
    return None if shelter is None or (open_only and not shelter.is_open) else shelter


async def shelters_of_tenant(session: AsyncSession, disaster_id: str) -> list[Shelter]:
    repo = ShelterRepository(session)
    return list(await repo.all(repo.select().where(Shelter.disaster_id == disaster_id).order_by(Shelter.name)))


async def open_shelters(session: AsyncSession, disaster_id: str) -> list[tuple[Shelter, str]]:
    """Public: every open shelter of the disaster (name, address, capacity, occupancy)."""
    async with unscoped(session, "避難所の開設状況の公表"):
        rows = await session.execute(select(Shelter, Organization.name).join(Organization, Organization.code == Shelter.lg_code)
                                     .where(Shelter.disaster_id == disaster_id).order_by(Shelter.lg_code, Shelter.name))
        return [(s, n) for s, n in rows]


# -- victim records -------------------------------------------------------------------------------------

@dataclass
class RecordInput:
    family_name: str
    given_name: str
    family_kana: str = ""
    given_kana: str = ""
    birth_date: date | None = None
    sex: str | None = None
    home_address: str = ""
    home_lg_code: str = ""
    whereabouts: str = "unknown"
    shelter_id: str | None = None
    wide_area_lg_code: str | None = None
    phone: str = ""
    household_key: str = ""
    household_size: int = 1
    care_needs: list[str] = field(default_factory=list)
    damage_level: str = "未調査"
    risai_status: str = "未申請"
    rebuild_plan: str = "未定"
    demolished: bool = False
    long_term_evacuation: bool = False
    supports: list[str] = field(default_factory=list)
    note: str = ""
    import_key: str | None = None
    resident_subject_id: str | None = None
    protected: bool = False


async def _municipality(session: AsyncSession, code: str, what: str, lookups: dict | None = None) -> Organization:
    code = (code or "").strip()
    if lookups is not None and ("org", code) in lookups:
        org = lookups["org", code]
    else:
        org = await session.get(Organization, code)
        if lookups is not None:
            lookups["org", code] = org
    if org is None or org.type not in MUNICIPAL_TYPES or org.retired_on is not None:
        shown = f"{org.name}（{org.code}）" if org is not None else code
        raise InvalidInput(f"{what}「{shown}」は現存する市区町村ではありません（例: 172049 または 輪島市）。")
    return org


async def _validated(session: AsyncSession, tenant: Tenant, disaster: Disaster, data: RecordInput,
                     lookups: dict | None = None) -> dict:
    """The record's stored fields from validated input (Japanese errors for anything wrong).
    ``lookups`` keeps the organisations and shelters found, for many records in one transaction."""
    if disaster.closed_at is not None:
        raise Conflict("この災害の対応は終了しています。")
    if not is_municipality(tenant):
        raise InvalidInput("被災者台帳に登録できるのは市区町村です。")
    if not data.family_name.strip() or not data.given_name.strip():
        raise InvalidInput("氏と名を入力してください。")
    if data.birth_date and (data.birth_date > date.today() or data.birth_date.year < 1900):
        raise InvalidInput("生年月日が正しくありません（1900年以降、今日以前）。")
    if data.sex not in (None, "male", "female"):
        raise InvalidInput("性別は 男・女 から選ぶか、空欄にしてください。")
    if data.whereabouts not in WHEREABOUTS:
        raise InvalidInput(f"現在の居場所は {'・'.join(WHEREABOUTS.values())} から選んでください。")
    for value, allowed, what in ((data.damage_level, DAMAGE_LEVELS, "住家の被害"),
                                 (data.risai_status, RISAI_STATUSES, "罹災証明書"),
                                 (data.rebuild_plan, REBUILD_PLANS, "住宅の再建方法")):
        if value not in allowed:
            raise InvalidInput(f"{what}は {'・'.join(allowed)} から選んでください。")
    bad = [c for c in data.care_needs if c not in CARE_NEEDS] + [s for s in data.supports if s not in SUPPORT_KINDS]
    if bad:
        raise InvalidInput(f"選べない項目があります: {'、'.join(bad)}")
    if not 1 <= data.household_size <= 30:
        raise InvalidInput("世帯人数は1〜30で入力してください。")
    if len(data.note) > 400 or len(data.home_address) > 300:
        raise InvalidInput("住所は300文字、備考は400文字以内で入力してください。")
    home = await _municipality(session, data.home_lg_code, "住所地の団体コード", lookups)
    current_code = home.code
    shelter_id = None
    if data.whereabouts == "shelter":
        if lookups is not None and ("shelter", data.shelter_id) in lookups:
            shelter = lookups["shelter", data.shelter_id]
        else:
            shelter = await get_shelter(session, disaster.id, data.shelter_id)
            if lookups is not None:
                lookups["shelter", data.shelter_id] = shelter
        if shelter is None:
            raise InvalidInput("避難所を選んでください（この団体が開設した避難所）。")
        shelter_id, current_code = shelter.id, tenant.lg_code
    elif data.whereabouts == "wide_area":
        current_code = (await _municipality(session, data.wide_area_lg_code or "", "広域避難先の団体コード", lookups)).code
    elif data.whereabouts in ("relatives", "temporary_housing") and tenant.lg_code != home.code:
        current_code = tenant.lg_code  # staying with relatives / in temporary housing where it registered
    return dict(
        family_name=data.family_name.strip(), given_name=data.given_name.strip(), family_kana=data.family_kana.strip(),
        given_kana=data.given_kana.strip(), birth_date=data.birth_date, sex=data.sex,
        home_address=data.home_address.strip(), home_lg_code=home.code, home_pref_code=prefecture_code(home.code),
        whereabouts=data.whereabouts, shelter_id=shelter_id,
        wide_area_lg_code=data.wide_area_lg_code if data.whereabouts == "wide_area" else None,
        current_lg_code=current_code, current_pref_code=prefecture_code(current_code), phone=data.phone.strip(),
        household_key=data.household_key.strip(), household_size=data.household_size, care_needs=list(data.care_needs),
        damage_level=data.damage_level, risai_status=data.risai_status, rebuild_plan=data.rebuild_plan,
        demolished=data.demolished, long_term_evacuation=data.long_term_evacuation,
        supports=list(data.supports), note=data.note.strip(), protected=data.protected)


async def register(session: AsyncSession, tenant: Tenant, disaster: Disaster, data: RecordInput, *, actor: str) -> VictimRecord:
    """Add a record to the tenant's 被災者台帳. A repeated import key returns the existing record."""
    repo = RecordRepository(session)
    if data.import_key:
        existing = await repo.first(repo.select().where(VictimRecord.disaster_id == disaster.id,
                                                        VictimRecord.import_key == data.import_key))
        if existing is not None:
            await _validated(session, tenant, disaster, data)  # still refused if no longer allowed
            return existing
    record = repo.add(await new_record(session, tenant, disaster, data, actor=actor))
    await session.flush()
    return record


async def record_registration(session: AsyncSession, actor: audit.Actor, action: str, record: VictimRecord) -> None:
    """The registration's entry in the registering municipality's log, written pending (chained
    within a second by the job runner, before the log is read, and listed at once in the
    person's 「利用記録」): in a disaster, residents registering at one municipality's shelters
    would otherwise queue one by one on its chain head, each holding it until its request
    commits (bench/load.py's mix: a sixth of the database's sessions waiting on that lock)."""
    await audit.record_many(session, actor, action,
                            [audit.Target("victim_record", record.id, record.resident_subject_id)], deferred=True)


async def new_record(session: AsyncSession, tenant: Tenant, disaster: Disaster, data: RecordInput, *, actor: str,
                     lookups: dict | None = None) -> VictimRecord:
    """A validated record for the tenant's 台帳, not yet added: ``register`` adds one; a roster's
    import adds a batch of them and flushes once (its rows' import keys checked before)."""
    fields = await _validated(session, tenant, disaster, data, lookups)
    now = utcnow()
    return VictimRecord(id=str(uuid.uuid4()), lg_code=tenant.lg_code, disaster_id=disaster.id, **fields,
                        resident_subject_id=data.resident_subject_id, import_key=data.import_key, version=1,
                        created_by=actor, created_at=now, updated_at=now)


async def own_record(session: AsyncSession, disaster_id: str, record_id: str) -> VictimRecord:
    """One of the tenant's own records. Another municipality's record is not found here: each
    keeps (and corrects) its own 台帳."""
    repo = RecordRepository(session)
    record = await repo.first(repo.select().where(VictimRecord.id == record_id, VictimRecord.disaster_id == disaster_id))
    if record is None:
        raise NotFound("被災者の記録が見つかりません。")
    return record


async def update_record(session: AsyncSession, tenant: Tenant, disaster: Disaster, record_id: str, data: RecordInput, *,
                        expected_version: int) -> VictimRecord:
    """Change one of the tenant's own records (whereabouts move, damage is assessed, support is given)."""
    record = await own_record(session, disaster.id, record_id)
    if record.version != expected_version:
        raise Conflict("ほかの職員が先にこの記録を更新しました。最新の内容を確認してから、もう一度保存してください。")
    for key, value in (await _validated(session, tenant, disaster, data)).items():
        setattr(record, key, value)
    record.version += 1
    record.updated_at = utcnow()
    await session.flush()
    return record


def _visible_to(viewer: Tenant, record=VictimRecord):
    """第90条の3・第90条の4 as implemented: the registering municipality, the home and current
    municipalities, and the prefectures of both. A record marked 支援措置対象 (DV等) is kept from
    the home and current municipalities: only its owner and the prefectures see it. ``record``
    may be an alias of VictimRecord (the same rule about another row of the query)."""
    if viewer.is_prefecture:
        return or_(record.home_pref_code == viewer.lg_code, record.current_pref_code == viewer.lg_code)
    return or_(record.lg_code == viewer.lg_code,
               and_(record.protected.is_(False), or_(record.home_lg_code == viewer.lg_code,
                                                     record.current_lg_code == viewer.lg_code)))


def may_see_protected(viewer: Tenant, record: VictimRecord) -> bool:
    """Whether the viewer may see (or be offered as a candidate) a 支援措置対象 record: its owner, or
    a prefecture it belongs to (the owner's, the home or the current one)."""
    if record.lg_code == viewer.lg_code:
        return True
    return viewer.is_prefecture and viewer.lg_code in (record.home_pref_code, record.current_pref_code,
                                                       prefecture_code(record.lg_code))


def _protected_allowed(viewer: Tenant, record=VictimRecord):
    """``not protected or may_see_protected(viewer, record)`` in SQL. A prefecture's code is its
    two-digit number and 0000 with a check digit, so "the owner's prefecture is the viewer" is
    "the owner's code starts with the viewer's two digits"."""
    if viewer.is_prefecture:
        return or_(record.protected.is_(False), record.lg_code == viewer.lg_code,
                   record.home_pref_code == viewer.lg_code, record.current_pref_code == viewer.lg_code,
                   func.substr(record.lg_code, 1, 2) == viewer.lg_code[:2])
    return or_(record.protected.is_(False), record.lg_code == viewer.lg_code)


def visible_condition(viewer: Tenant, disaster_id: str, record=VictimRecord):
    """The sharing rule as one SQL condition on ``record``: within the disaster, visible to the
    viewer itself (``_visible_to``), or a registration of the same person (``person_id``) as a
    record that is; a 支援措置対象 record only to its owner and its prefectures. ``person_id`` is
    written only from match decisions in force (``sync_persons``), so what a user types never
    widens it. Evaluate it under ``unscoped`` (it reads other municipalities' rows).

    The condition on VictimRecord itself is built once per viewer and disaster and kept (an
    expression is immutable, and building this one cost ~3 ms, several times per page)."""
    if record is VictimRecord:
        return _visible_condition_of(viewer, disaster_id)
    return _build_visible_condition(viewer, disaster_id, record)


@functools.lru_cache(maxsize=4096)
def _visible_condition_of(viewer: Tenant, disaster_id: str):
    return _build_visible_condition(viewer, disaster_id, VictimRecord)


def _build_visible_condition(viewer: Tenant, disaster_id: str, record):
    seed = aliased(VictimRecord, name="seed")
    # ``seed.id != record.id`` (true anyway: a record visible itself needs no seed) keeps the
    # test a probe of the person's few registrations per row (ix_victim_record_person); without
    # it PostgreSQL may hash every linked record the viewer sees, before the first row.
    same_person = select(seed.id).where(seed.disaster_id == disaster_id, seed.person_id == record.person_id,
                                        seed.id != record.id, _visible_to(viewer, seed)).exists()
    return and_(record.disaster_id == disaster_id,
                or_(_visible_to(viewer, record), and_(record.person_id.is_not(None), same_person)),
                _protected_allowed(viewer, record))


RECORD_ORDER = (VictimRecord.family_kana, VictimRecord.given_kana, VictimRecord.created_at, VictimRecord.id)
SHARED_READ = f"{LEGAL_BASIS}: 住所地・所在地の市町村とその都道府県への被災者情報の共有"


async def _on_one_core(session: AsyncSession) -> None:
    """For the rest of this transaction, no parallel workers: a count made ahead of its viewers
    in the background may take one core for longer, but must not take every core at once (a
    prefecture's count took both of bench/load.py's for seconds, and every page served then
    waited). Counts a viewer waits for keep them."""
    if (await session.connection()).dialect.name == "postgresql":
        await session.execute(sql_text("SELECT set_config('max_parallel_workers_per_gather', '0', true)"))


async def visible_records(session: AsyncSession, viewer: Tenant, disaster_id: str, *,
                          actor: audit.Actor | None = None, record_ids: list[str] | None = None) -> list[VictimRecord]:
    """Records the viewer may see under the sharing rules (``visible_condition``): its own,
    those whose home or current municipality (or their prefecture) is the viewer, and every
    record confirmed to be the same person as one of those (the person is then where any of
    their registrations says). With ``record_ids``, only those are looked at (a detail page
    reads one record, not the area); without, every visible record is read (the workspace
    pages with ``records_page`` instead). Reads of other municipalities' records are audited on
    their chains (pass ``actor``)."""
    if record_ids is not None and not record_ids:
        return []
    statement = select(VictimRecord).where(visible_condition(viewer, disaster_id))
    if record_ids is None:
        statement = statement.order_by(*RECORD_ORDER)
    else:  # a few records by id, put in order here: asked to order, SQLite would walk the disaster
        statement = statement.where(VictimRecord.id.in_(sorted(set(record_ids))))
    await session.flush()  # pending writes are checked against the tenant before reading unscoped
    async with unscoped(session, SHARED_READ):
        chosen = list((await session.scalars(statement)).all())
    if record_ids is not None:
        chosen.sort(key=lambda r: (r.family_kana, r.given_kana, r.created_at, r.id))
    if actor is not None:
        await audit_reads(session, viewer, actor, [r for r in chosen if r.lg_code != viewer.lg_code])
    return chosen


async def audit_reads(session: AsyncSession, viewer: Tenant, actor: audit.Actor, records: list[VictimRecord],
                      what: str = "disaster.record.read") -> None:
    """One entry per record read, in its owner's log, chained moments later (deferred): a page
    that reads many organisations' records locks none of their chain heads."""
    if not records:
        return
    # One query for every owner (a page of 50 names up to 50 of them), not one each.
    owners = await registry.tenants_by_code(session, sorted({r.lg_code for r in records}))
    await audit.record_pending(session, actor, what,
                               [(owners[r.lg_code], audit.Target("victim_record", r.id, r.resident_subject_id))
                                for r in records],
                               purpose=SHARE_PURPOSE, legal_basis=LEGAL_BASIS,
                               details={"reader": viewer.lg_code, "reader_name": viewer.name})


async def get_visible_record(session: AsyncSession, viewer: Tenant, disaster_id: str, record_id: str,
                             actor: audit.Actor) -> VictimRecord:
    records = await visible_records(session, viewer, disaster_id, actor=actor, record_ids=[record_id])
    if not records:
        raise NotFound("被災者の記録が見つかりません。")
    return records[0]


# -- matching (名寄せ) -------------------------------------------------------------------------------------

def record_mapping(record: VictimRecord) -> dict:
    """The linkage engine's record shape."""
    return {"record_id": record.id, "family_name": record.family_name, "given_name": record.given_name,
            "family_kana": record.family_kana, "given_kana": record.given_kana, "birth_date": record.birth_date,
            "sex": record.sex, "home_lg_code": record.home_lg_code, "home_address": record.home_address,
            "phone": record.phone, "registered_by": record.lg_code}


async def records_for_matching(session: AsyncSession, disaster_id: str, record_ids: set[str]) -> dict[str, VictimRecord]:
    """The candidates a match list names, by id (the matcher holds the rest in memory)."""
    if not record_ids:
        return {}
    async with unscoped(session, f"{LEGAL_BASIS}: 名寄せ（同じ人の重複登録の照合）"):
        rows = await session.scalars(select(VictimRecord).where(VictimRecord.disaster_id == disaster_id,
                                                                VictimRecord.id.in_(record_ids)))
        return {r.id: r for r in rows}


async def all_records_for_matching(session: AsyncSession, disaster_id: str) -> list[VictimRecord]:
    async with unscoped(session, f"{LEGAL_BASIS}: 名寄せ（同じ人の重複登録の照合）"):
        return list((await session.scalars(select(VictimRecord).where(VictimRecord.disaster_id == disaster_id))).all())


async def decisions(session: AsyncSession, disaster_id: str, record_ids: set[str] | None = None) -> list[MatchDecision]:
    statement = select(MatchDecision).where(MatchDecision.disaster_id == disaster_id).order_by(MatchDecision.decided_at)
    if record_ids is not None:
        statement = statement.where(or_(MatchDecision.record_a_id.in_(record_ids), MatchDecision.record_b_id.in_(record_ids)))
    return list((await session.scalars(statement)).all())


def links(d: MatchDecision) -> bool:
    """Whether a decision joins its two records into one person (and so lets each side's readers
    see the other record): a confirmation or batch link in force, not one awaiting acceptance."""
    return d.reverted_at is None and d.decision in ("confirmed", "auto") and d.acceptance != PENDING


def clusters(active: list[MatchDecision]) -> dict[str, str]:
    """record id → person key: connected components of confirmed (or automatic) links."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for d in active:
        if links(d):
            a, b = find(d.record_a_id), find(d.record_b_id)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {x: find(x) for x in list(parent)}


LINKED = f"{LEGAL_BASIS}: 名寄せの結果（同じ人の記録の結び付け）の反映"
_CHUNK = 1000  # ids per IN list (asyncpg takes at most 32,767 parameters a statement)
FULL_SYNC_FROM = 20_000  # records touched at once from which the whole disaster is recomputed


def _chunks(items: list[str]):
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


async def lock_links(session: AsyncSession, disaster_id: str) -> None:
    """Changes to the links of one disaster happen one transaction at a time (a row lock on the
    disaster, released at commit; on SQLite the write lock already does this): two decisions
    read and rewrite ``person_id`` of the same persons, and interleaving them could leave a
    record in a person whose link was just taken back. ``FOR NO KEY UPDATE`` so that
    registrations, whose foreign key only takes a key-share lock, are not held up."""
    await session.execute(select(Disaster.id).where(Disaster.id == disaster_id).with_for_update(key_share=True))


def _linking(statement):
    return statement.where(MatchDecision.reverted_at.is_(None), MatchDecision.decision.in_(("confirmed", "auto")),
                           MatchDecision.acceptance != PENDING)


async def sync_persons(session: AsyncSession, disaster_id: str, record_ids=None) -> int:
    """Bring ``victim_record.person_id`` up to date with the match decisions in force (the same
    components as ``clusters``; a record linked to nothing has None) for the persons of
    ``record_ids`` (the records whose decisions just changed), or for the whole disaster
    (``None``). Every function here that makes, accepts, declines, reverts, applies or undoes a
    link calls it in the same transaction; the sharing rule reads ``person_id`` only. Returns
    how many records changed person."""
    await session.flush()
    await lock_links(session, disaster_id)
    async with unscoped(session, LINKED):
        rows: dict[str, tuple[str, str | None]] = {}  # id → (lg_code, person_id) of every record looked at

        async def load(statement) -> None:
            for lg_code, record_id, person_id in (await session.execute(statement)).all():
                rows[record_id] = (lg_code, person_id)

        columns = select(VictimRecord.lg_code, VictimRecord.id, VictimRecord.person_id).where(
            VictimRecord.disaster_id == disaster_id)
        if record_ids is None:
            pairs = [(a, b) for a, b in (await session.execute(_linking(select(
                MatchDecision.record_a_id, MatchDecision.record_b_id).where(
                MatchDecision.disaster_id == disaster_id)))).all()]
            await load(columns.where(VictimRecord.person_id.is_not(None)))
            ids = {x for pair in pairs for x in pair} - set(rows)
            for chunk in _chunks(sorted(ids)):
                await load(columns.where(VictimRecord.id.in_(chunk)))
        else:
            # The persons the touched records belong to, all their registrations, and every link
            # touching them (repeated until nothing new turns up, should a link reach further).
            pending, pairs, seen_pairs = set(record_ids), [], set()
            while pending:
                wanted = sorted(pending - set(rows))
                for chunk in _chunks(wanted):
                    await load(columns.where(VictimRecord.id.in_(chunk)))
                persons = {rows[x][1] for x in pending if x in rows and rows[x][1] is not None}
                for chunk in _chunks(sorted(persons)):
                    await load(columns.where(VictimRecord.person_id.in_(chunk)))
                looked = sorted(pending | {x for x, (_, p) in rows.items() if p in persons})
                pending = set()
                for chunk in _chunks(looked):
                    for a, b in (await session.execute(_linking(select(
                            MatchDecision.record_a_id, MatchDecision.record_b_id).where(
                            MatchDecision.disaster_id == disaster_id,
                            or_(MatchDecision.record_a_id.in_(chunk), MatchDecision.record_b_id.in_(chunk)))))).all():
                        if (a, b) not in seen_pairs:
                            seen_pairs.add((a, b))
                            pairs.append((a, b))
                            pending |= {a, b} - set(rows)
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for a, b in pairs:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        changes = [{"lg_code": lg_code, "id": record_id, "person_id": find(record_id) if record_id in parent else None}
                   for record_id, (lg_code, person_id) in rows.items()
                   if (find(record_id) if record_id in parent else None) != person_id]
        if changes:
            await session.execute(update(VictimRecord), changes)
    changed = {c["id"]: c["person_id"] for c in changes}
    for obj in list(session.identity_map.values()):
        if isinstance(obj, VictimRecord) and obj.id in changed:
            set_committed_value(obj, "person_id", changed[obj.id])
    return len(changes)


def _decision(disaster_id: str, first: VictimRecord, second: VictimRecord, decision: str, probability: float | None,
              reasons: list[str], viewer: Tenant, actor: str, *, awaiting: str | None = None,
              principal: str | None = None) -> MatchDecision:
    return MatchDecision(id=str(uuid.uuid4()), disaster_id=disaster_id, record_a_code=first.lg_code,
                         record_a_id=first.id, record_b_code=second.lg_code, record_b_id=second.id,
                         decision=decision, probability="" if probability is None else f"{probability:.6f}",
                         reasons=reasons, decided_by_code=viewer.lg_code, decided_by=actor, decided_at=utcnow(),
                         acceptance=PENDING if awaiting else "", awaiting_code=awaiting, decided_by_principal=principal)


STAFF_DECISIONS = ("confirmed", "rejected")
PENDING, ACCEPTED, DECLINED = "pending", "accepted", "declined"


def awaiting_for(viewer: Tenant, other: VictimRecord) -> str | None:
    """Whose acceptance a confirmation by ``viewer`` with another municipality's record ``other``
    waits for: that record's owner; nobody when the viewer owns it or is the prefecture
    responsible for it."""
    if other.lg_code == viewer.lg_code:
        return None
    if viewer.is_prefecture and prefecture_code(other.lg_code) == viewer.lg_code:
        return None
    return other.lg_code


def may_answer(viewer: Tenant, match: MatchDecision) -> bool:
    """The owner a confirmation waits for, or that owner's prefecture, may accept or decline it."""
    code = match.awaiting_code or ""
    return bool(code) and (viewer.lg_code == code or (viewer.is_prefecture and prefecture_code(code) == viewer.lg_code))


async def decide(session: AsyncSession, viewer: Tenant, disaster_id: str, a: VictimRecord, b: VictimRecord, *,
                 decision: str, probability: float | None, reasons: list[str], actor: str,
                 principal: str | None = None) -> MatchDecision:
    """A staff member's judgement on one pair: ``confirmed`` or ``rejected``, nothing else.
    Automatic links (``auto``) come only from 一括名寄せ (``apply_batch``), run by the bodies
    allowed to run it; accepting ``auto`` here would skip the probability rule and the
    ownership check and let anyone link (and so read) any record. ``a`` is the record the viewer
    is looking at, ``b`` the candidate: confirming it with a record another municipality
    registered links nothing until that owner (or its prefecture) accepts (``acceptance`` is
    ``pending``, see ``accept``), so knowing a name and a birth date is not enough to read
    someone's record. Fails with ``InvalidInput`` for any other decision and ``NotFound`` when
    neither record is the viewer's."""
    if decision not in STAFF_DECISIONS:
        raise InvalidInput("判断は「同じ人」か「別の人」を選んでください。")
    if a.id == b.id:
        raise InvalidInput("同じ記録どうしは照合できません。")
    if a.lg_code != viewer.lg_code and b.lg_code != viewer.lg_code and not viewer.is_prefecture:
        raise NotFound("被災者の記録が見つかりません。")
    awaiting = awaiting_for(viewer, b) if decision == "confirmed" else None
    first, second = sorted((a, b), key=lambda r: r.id)
    await lock_links(session, disaster_id)
    for d in await decisions(session, disaster_id, {first.id}):
        if d.reverted_at is None and {d.record_a_id, d.record_b_id} == {first.id, second.id}:
            if d.decision == decision and (d.acceptance != PENDING or awaiting):
                await sync_persons(session, disaster_id, {first.id, second.id})
                return d  # the same decision again changes nothing
            d.reverted_at, d.reverted_by = utcnow(), actor  # a new decision replaces the old one
    match = _decision(disaster_id, first, second, decision, probability, reasons, viewer, actor,
                      awaiting=awaiting, principal=principal)
    session.add(match)
    await sync_persons(session, disaster_id, {first.id, second.id})
    return match


async def pending_for(session: AsyncSession, viewer: Tenant, disaster_id: str) -> list[MatchDecision]:
    """Confirmations waiting for the viewer's answer (its own records', or, for a prefecture, its
    municipalities')."""
    statement = select(MatchDecision).where(MatchDecision.disaster_id == disaster_id, MatchDecision.acceptance == PENDING,
                                            MatchDecision.reverted_at.is_(None))
    if viewer.is_prefecture:
        statement = statement.where(MatchDecision.awaiting_code.like(f"{viewer.lg_code[:2]}%"))
    else:
        statement = statement.where(MatchDecision.awaiting_code == viewer.lg_code)
    return [d for d in (await session.scalars(statement.order_by(MatchDecision.decided_at))).all() if may_answer(viewer, d)]


async def _pending(session: AsyncSession, viewer: Tenant, disaster_id: str, decision_id: str) -> MatchDecision:
    match = await session.get(MatchDecision, decision_id)
    if (match is None or match.disaster_id != disaster_id or match.reverted_at is not None
            or match.acceptance != PENDING or not may_answer(viewer, match)):
        raise NotFound("受け入れを待っている確認が見つかりません。")
    return match


async def accept(session: AsyncSession, viewer: Tenant, disaster_id: str, decision_id: str, actor: str) -> MatchDecision:
    """The owner of the other record (or its prefecture) agrees the two are the same person: from
    now on the records are linked and each side's readers see the other."""
    await lock_links(session, disaster_id)
    match = await _pending(session, viewer, disaster_id, decision_id)
    match.acceptance, match.accepted_by_code, match.accepted_by, match.accepted_at = ACCEPTED, viewer.lg_code, actor, utcnow()
    await sync_persons(session, disaster_id, {match.record_a_id, match.record_b_id})
    return match


async def decline(session: AsyncSession, viewer: Tenant, disaster_id: str, decision_id: str, actor: str) -> MatchDecision:
    """The owner judges them different people: the request is taken back and its 「別の人」 kept."""
    await lock_links(session, disaster_id)
    match = await _pending(session, viewer, disaster_id, decision_id)
    now = utcnow()
    match.acceptance, match.accepted_by_code, match.accepted_by, match.accepted_at = DECLINED, viewer.lg_code, actor, now
    match.reverted_at, match.reverted_by = now, f"{actor}（受け入れず）"
    session.add(MatchDecision(
        id=str(uuid.uuid4()), disaster_id=disaster_id, record_a_code=match.record_a_code, record_a_id=match.record_a_id,
        record_b_code=match.record_b_code, record_b_id=match.record_b_id, decision="rejected",
        probability=match.probability, reasons=list(match.reasons or []), decided_by_code=viewer.lg_code,
        decided_by=actor, decided_at=now, acceptance=""))
    await sync_persons(session, disaster_id, {match.record_a_id, match.record_b_id})
    return match


# Confirmations are how one municipality asks to see another's record: a person confirming many
# in a short time is refused, and patterns worth a look are flagged to the prefecture.
CONFIRM_LIMIT_PER_HOUR = 20
FLAG_CONFIRMATIONS_PER_DAY = 10
FLAG_OWNERS_PER_DAY = 3


class TooManyConfirmations(KibanError):
    status = 429
    title = "確認の操作が多すぎます"
    type_slug = "too-many-requests"


async def check_confirmation_limit(session: AsyncSession, principal: str) -> None:
    since = utcnow() - timedelta(hours=1)
    count = await session.scalar(select(func.count()).select_from(MatchDecision).where(
        MatchDecision.decided_by_principal == principal, MatchDecision.decision == "confirmed",
        MatchDecision.decided_at >= since))
    if (count or 0) >= CONFIRM_LIMIT_PER_HOUR:
        raise TooManyConfirmations(
            f"1時間に確認できるのは {CONFIRM_LIMIT_PER_HOUR} 件までです。時間をおいてから続けてください。"
            "大量の重複登録の整理は、都道府県の一括名寄せをご利用ください。")


async def unusual_confirmations(session: AsyncSession, principal: str) -> str | None:
    """Why this staff member's confirmations of the last day deserve the prefecture's attention
    (None if they do not): many requests to see other municipalities' records, or requests
    spread over many municipalities."""
    since = utcnow() - timedelta(days=1)
    rows = (await session.scalars(select(MatchDecision).where(
        MatchDecision.decided_by_principal == principal, MatchDecision.decision == "confirmed",
        MatchDecision.awaiting_code.is_not(None), MatchDecision.decided_at >= since))).all()
    owners = {d.awaiting_code for d in rows}
    if len(rows) >= FLAG_CONFIRMATIONS_PER_DAY:
        return f"1日に {len(rows)} 件、ほかの団体の記録と同じ人とする確認を依頼しています。"
    if len(owners) >= FLAG_OWNERS_PER_DAY:
        return f"1日に {len(owners)} 団体の記録について、同じ人とする確認を依頼しています。"
    return None


async def revert(session: AsyncSession, viewer: Tenant, disaster_id: str, decision_id: str, actor: str) -> MatchDecision:
    await lock_links(session, disaster_id)
    match = await session.get(MatchDecision, decision_id)
    if match is None or match.disaster_id != disaster_id or match.reverted_at is not None:
        raise NotFound("取り消せる判断が見つかりません。")
    visible = {r.id for r in await visible_records(session, viewer, disaster_id,
                                                   record_ids=[match.record_a_id, match.record_b_id])}
    if not visible:
        raise NotFound("取り消せる判断が見つかりません。")
    match.reverted_at, match.reverted_by = utcnow(), actor
    await sync_persons(session, disaster_id, {match.record_a_id, match.record_b_id})
    return match


# -- the situation (状況把握) ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One line of a breakdown: registrations (登録件数) and persons after 名寄せ (人数). A person
    registered by two municipalities is one person; in a breakdown they count once in every
    row one of their registrations falls in (so persons may sum to more than the total)."""

    label: str
    registrations: int | None  # None: suppressed (fewer than SMALL_COUNT persons)
    people: int | None


@dataclass(frozen=True)
class CrowdedShelter:
    name: str
    municipality: str
    occupancy: int
    capacity: int

    @property
    def percent(self) -> int:
        return self.occupancy * 100 // self.capacity


@dataclass(frozen=True)
class Dashboard:
    scope: str  # "municipality" / "prefecture" / "national"
    total: int
    people: int  # after 名寄せ: distinct persons
    tables: dict[str, list[Row]]
    suppressed: bool
    warning_percent: int = 90
    crowded: list[CrowdedShelter] = field(default_factory=list)
    counted_at: datetime | None = None  # when the records were counted (see DASHBOARD_MAX_AGE)

    @property
    def exact(self) -> bool:
        return self.scope != "national"


def _suppress(count: int, exact: bool) -> int | None:
    return count if exact or count >= SMALL_COUNT else None


def may_see_national(viewer: Tenant) -> bool:
    """内閣府 (and other national bodies) and every prefecture see the whole disaster in aggregate."""
    return viewer.is_prefecture or viewer.type == OrgType.national.value


async def shelter_warning_percent(session: AsyncSession, viewer: Tenant) -> int:
    """The viewer's 避難所の混雑警告 (its own value, else its prefecture's, else the national default)."""
    return int(await settings_service.effective_value(session, viewer, SHELTER_WARNING_PERCENT.key))


def is_crowded(shelter: Shelter, percent: int) -> bool:
    """Open, with a known capacity (0 = 未設定), and at or above ``percent`` of it."""
    return shelter.is_open and shelter.capacity > 0 and shelter.occupancy * 100 >= percent * shelter.capacity


async def dashboard(session: AsyncSession, viewer: Tenant, disaster_id: str, *, national: bool = False) -> Dashboard:
    """Counts by municipality, shelter, whereabouts, care needs and damage level, each as
    registrations and as persons after 名寄せ, counted by the database (GROUP BY) from the records
    as they are at the moment of asking; for an area of ``DASHBOARD_CACHE_FROM`` registrations or
    more, as they were at most ``DASHBOARD_MAX_AGE`` seconds before (``counted_at``), so that a
    page refreshed every 15 s by many people does not count a million records each time. A
    municipality sees exact counts over the records it registered or that are shared with it; a
    prefecture exact counts over its own area (the records it holds under 第90条の3: a home or
    current municipality in the prefecture); the whole disaster (内閣府, or a prefecture asking
    for it) is shown with rows of fewer than 10 persons suppressed. Shelters at or above the
    viewer's 混雑警告 setting are listed (public figures: names and occupancy)."""
    if national and not may_see_national(viewer):
        raise NotFound("全国の集計は都道府県と国の機関が見られます。")
    if national or viewer.type == OrgType.national.value:
        scope, condition = "national", VictimRecord.disaster_id == disaster_id
    elif viewer.is_prefecture:
        scope, condition = "prefecture", and_(VictimRecord.disaster_id == disaster_id, _visible_to(viewer))
    else:
        scope, condition = "municipality", and_(VictimRecord.disaster_id == disaster_id, _visible_to(viewer))
    exact = scope != "national"
    await session.flush()
    async with unscoped(session, f"{LEGAL_BASIS}: 状況把握のための集計"):
        area = (disaster_id, scope, "" if scope == "national" else viewer.lg_code)
        counted, counted_at = await _counts_of(session, area, condition)
        shelters = list((await session.scalars(select(Shelter).where(Shelter.disaster_id == disaster_id))).all())
        codes = {key for dimension in ("current", "registered") for key in counted[dimension]}
        names = dict((await session.execute(select(Organization.code, Organization.name).where(
            Organization.code.in_(codes | {s.lg_code for s in shelters})))).all())
    shelter_names = {s.id: s.name for s in shelters}

    def table(dimension: str, label=lambda k: k) -> list[Row]:
        counts = counted[dimension]
        rows = sorted(counts, key=lambda k: (-counts[k][1], -counts[k][0], str(k)))
        return [Row(str(label(k)), counts[k][0] if _suppress(counts[k][1], exact) is not None else None,
                    _suppress(counts[k][1], exact)) for k in rows]

    tables = {
        "現在いる市町村": table("current", lambda c: names.get(c, c)),
        "登録した市町村": table("registered", lambda c: names.get(c, c)),
        "避難所": table("shelter", lambda s: shelter_names.get(s, s)),
        "現在の居場所": table("whereabouts", lambda w: WHEREABOUTS.get(w, w)),
        "要配慮者": table("care_needs"),
        "住家の被害": table("damage"),
    }
    total, people = counted["total"][None]
    percent = await shelter_warning_percent(session, viewer)
    if scope == "municipality":
        in_scope = [s for s in shelters if s.lg_code == viewer.lg_code]
    elif scope == "prefecture":
        in_scope = [s for s in shelters if prefecture_code(s.lg_code) == viewer.lg_code]
    else:
        in_scope = shelters
    crowded = sorted((CrowdedShelter(s.name, names.get(s.lg_code, s.lg_code), s.occupancy, s.capacity)
                      for s in in_scope if is_crowded(s, percent)), key=lambda c: (-c.percent, c.municipality, c.name))
    return Dashboard(scope, total, people, tables,
                     suppressed=any(row.people is None for rows in tables.values() for row in rows),
                     warning_percent=percent, crowded=crowded, counted_at=counted_at)


# Counting an area costs a pass over its records (on PostgreSQL about 3 s for a prefecture's
# 300,000 of a million, 2 s for a city's 165,000, on one core): an area this large is counted by
# one server process for all (the snapshot ``dashboard:<area>`` in ``shared_snapshot``), again
# once its counts are older than DASHBOARD_MAX_AGE seconds, or older than the count took divided
# by DASHBOARD_COST_SHARE when that is longer: recounting one area keeps at most a fiftieth of one
# core busy, however large the disaster grows (a prefecture's counts are then about 3 minutes
# old at most, and shown with their time). With a tenth, the three areas of bench/load.py (a)
# took a third of a core on a 2-core server, and pages served during each count waited seconds.
# While one process recounts, every other view shows the counts before, with the time they were
# taken. Within a process, the counts are kept in memory for as long as they are fresh. Smaller
# areas are counted on every view. The key is the area (disaster, scope, viewer): never one
# viewer's counts shown to another.
#
# Counted ahead: the counts of a large area viewed in the last DASHBOARD_KEEP_WARM seconds are
# counted again by the job runner's ticker (``refresh_dashboards``) once they reach
# DASHBOARD_REFRESH_AHEAD of their freshness, before any view finds them stale; so nobody waits
# seconds for a recount (bench/load.py: those waits were the staff pages' p99). Counted ahead,
# on one core (``_on_one_core``): PostgreSQL's parallel workers took every core for the count.
# A view that finds the counts stale all the same (the area not viewed lately) shows them with
# their time if they are less than DASHBOARD_SERVE_STALE_FOR seconds old, and the ticker counts
# the area within seconds; older ones (or none) are counted while the person waits.
DASHBOARD_CACHE_FROM = 20_000
DASHBOARD_MAX_AGE = 30.0
DASHBOARD_COST_SHARE = 0.02
DASHBOARD_REFRESH_AHEAD = 0.7
DASHBOARD_SERVE_STALE_FOR = 300.0
DASHBOARD_KEEP_WARM = 120.0
DASHBOARD_TICK_SECONDS = 2.0
_DASHBOARD_ENTRIES = 256
_counted: dict[tuple, tuple[float, datetime, dict, float]] = {}  # area -> (monotonic, counted_at, counts, seconds)
_counting: dict[tuple, asyncio.Future] = {}
_viewed: dict[tuple, tuple[Any, float]] = {}  # large area -> (its condition, monotonic time last viewed)


def _fresh_for(seconds: float) -> float:
    return max(DASHBOARD_MAX_AGE, seconds / DASHBOARD_COST_SHARE)


async def _counts_of(session: AsyncSession, area: tuple, condition) -> tuple[dict, datetime]:
    """The area's counts: this process's while fresh; while another request of this process
    counts the area again, the previous counts, or (when there are none yet) that request's
    result, so that many people opening a large dashboard at once count it once."""
    cached = _counted.get(area)
    if cached is not None:
        _viewed[area] = (condition, time.monotonic())  # large: counted ahead while people look at it
    if cached is not None and (time.monotonic() - cached[0] < _fresh_for(cached[3]) or area in _counting):
        return cached[2], cached[1]
    if area in _counting:
        return await asyncio.shield(_counting[area])
    done: asyncio.Future = asyncio.get_running_loop().create_future()
    _counting[area] = done
    try:
        counted, counted_at, seconds = await _shared_counts(session, area, condition)
    except BaseException as exc:
        done.set_exception(exc)
        done.exception()  # retrieved here, so an unawaited failure is not reported as lost
        raise
    finally:
        _counting.pop(area, None)
    _keep(area, counted, counted_at, seconds)
    if area in _counted:
        _viewed[area] = (condition, time.monotonic())
    done.set_result((counted, counted_at))
    return counted, counted_at


def _keep(area: tuple, counted: dict, counted_at: datetime, seconds: float) -> None:
    """Keep a large area's counts in this process's memory (a small area's are never kept)."""
    if counted["total"][None][0] >= DASHBOARD_CACHE_FROM:
        if len(_counted) >= _DASHBOARD_ENTRIES:
            _counted.pop(min(_counted, key=lambda k: _counted[k][0]))
        age = max(0.0, (utcnow() - counted_at).total_seconds())
        _counted[area] = (time.monotonic() - age, counted_at, counted, seconds)
    else:
        _counted.pop(area, None)
        _viewed.pop(area, None)


async def refresh_dashboards(session: AsyncSession) -> int:
    """The job runner's tick: count again the large areas viewed lately whose counts near the end
    of their freshness, before a view finds them stale. One process counts an area (the
    snapshot's turn, as a view takes it); the others adopt what it stored. Returns how many
    areas were counted here."""
    counted_here = 0
    now = time.monotonic()
    for area, (condition, viewed) in list(_viewed.items()):
        cached = _counted.get(area)
        if now - viewed > DASHBOARD_KEEP_WARM or cached is None:
            _viewed.pop(area, None)
            continue
        if area in _counting or now - cached[0] < DASHBOARD_REFRESH_AHEAD * _fresh_for(cached[3]):
            continue
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        _counting[area] = done  # this process's views keep showing the counts they have meanwhile
        try:
            counted_here += await _count_ahead(session, area, condition)
        finally:
            _counting.pop(area, None)
            latest = _counted.get(area, cached)  # a view waiting on it gets the new counts, or else the old
            done.set_result((latest[2], latest[1]))
    return counted_here


_COUNTING_AHEAD = f"{LEGAL_BASIS}: 状況把握のための集計（閲覧中の集計の更新）"


async def _count_ahead(session: AsyncSession, area: tuple, condition) -> int:
    name = "dashboard:" + "|".join(area)

    def ahead(snapshot) -> bool:
        return (utcnow() - snapshot.taken_at).total_seconds() < DASHBOARD_REFRESH_AHEAD * _fresh_for(snapshot.seconds)

    try:
        async with unscoped(session, _COUNTING_AHEAD):
            snapshot = await shared.read_snapshot(session, name)
            if snapshot is not None and ahead(snapshot):  # another process counted it lately
                _keep(area, _decoded(snapshot.value), snapshot.taken_at, snapshot.seconds)
                return 0
            claimed = await shared.claim_snapshot(session, name)
            if claimed is False:  # another process is counting it now
                return 0
            if claimed is not None and ahead(claimed):
                _keep(area, _decoded(claimed.value), claimed.taken_at, claimed.seconds)
                return 0
            if session.get_bind().dialect.name == "sqlite":
                # One writer and no turn to hold (``claim_snapshot``): let the writers have the lock
                # while the count reads (on a million registrations, for seconds).
                await session.commit()
            counted_at, pace = utcnow(), Pace()
            async with _counting_session(session) as counting:
                counted = await _counts(counting, condition, pace)
            seconds = pace.busy
            await shared.store_snapshot(session, name, _encoded(counted), taken_at=counted_at, seconds=seconds)
        await session.commit()
    finally:
        if session.in_transaction():
            await session.rollback()
    _keep(area, counted, counted_at, seconds)
    return 1


register_ticker(refresh_dashboards, DASHBOARD_TICK_SECONDS, per_process=True)


async def _shared_counts(session: AsyncSession, area: tuple, condition) -> tuple[dict, datetime, float]:
    """The area's counts as every process shares them: the stored snapshot while fresh, or while
    another process recounts it, or while stale by less than DASHBOARD_SERVE_STALE_FOR seconds
    (shown with their time; the view makes the job runner count the area within seconds);
    otherwise counted here (and stored when the area is large: the caller commits). (counts,
    when counted, seconds counting took)."""
    name = "dashboard:" + "|".join(area)
    snapshot = await shared.read_snapshot(session, name)
    if snapshot is not None and (not _stale(snapshot) or _age(snapshot) < DASHBOARD_SERVE_STALE_FOR):
        return _decoded(snapshot.value), snapshot.taken_at, snapshot.seconds
    # SQLite has one server process, whose memory keeps the counts (``_keep``): there a view stays
    # a reader and leaves the snapshot to the ticker (``_count_ahead``). Claiming and storing made
    # the GET a writer, run again with the write lock after seconds of counting, which under an
    # import waited out the busy timeout (bench/load.py: 500 after 13 s and 20 s).
    stores = session.get_bind().dialect.name != "sqlite"
    kept = _counted.get(area)
    if not stores and kept is not None and time.monotonic() - kept[0] < DASHBOARD_SERVE_STALE_FOR:
        return kept[2], kept[1], kept[3]  # as a stale snapshot would be: shown, the ticker recounts it
    if stores and snapshot is not None:  # large, and stale: take the turn to recount it
        claimed = await shared.claim_snapshot(session, name)
        if claimed is False:  # another process is recounting it now
            return _decoded(snapshot.value), snapshot.taken_at, snapshot.seconds
        if claimed is not None and not _stale(claimed):  # it stored fresh counts while this one waited
            return _decoded(claimed.value), claimed.taken_at, claimed.seconds
    counted_at, started = utcnow(), time.perf_counter()
    counted = await _counts(session, condition)
    seconds = time.perf_counter() - started
    if stores and counted["total"][None][0] >= DASHBOARD_CACHE_FROM:
        if snapshot is None and await shared.claim_snapshot(session, name) is False:
            return counted, counted_at, seconds  # another process is storing its own count
        await shared.store_snapshot(session, name, _encoded(counted), taken_at=counted_at, seconds=seconds)
    return counted, counted_at, seconds


def _age(snapshot: shared.Snapshot) -> float:
    return (utcnow() - snapshot.taken_at).total_seconds()


def _stale(snapshot: shared.Snapshot) -> bool:
    return _age(snapshot) >= _fresh_for(snapshot.seconds)


def _encoded(counted: dict) -> dict:
    """As JSON: each breakdown a list of [key, registrations, persons] (keys may be None)."""
    return {dimension: [[key, n, p] for key, (n, p) in rows.items()] for dimension, rows in counted.items()}


def _decoded(value: dict) -> dict:
    return {dimension: {key: (n, p) for key, n, p in rows} for dimension, rows in value.items()}


def _care_needs_table():
    """SQLite: the care needs of a record, one row each (the column holds a JSON list)."""
    return func.json_each(VictimRecord.care_needs).table_valued("value")


class Pace:
    """A count made ahead of its viewers, in slices with a rest after each (``COUNT_REST`` times
    the slice's time): it never holds a core for longer than one slice (about 20 ms), where one
    statement over a prefecture's million records held one for 2.5 s, and every page served
    meanwhile queued behind it (bench/load.py (a): the staff pages' p99 went from under 300 ms
    to 1.4 s whenever a recount fell in the window). ``busy``: the seconds spent counting, rests
    excluded (what DASHBOARD_COST_SHARE is a share of)."""

    def __init__(self) -> None:
        self.busy = 0.0

    async def timed(self, awaitable):
        started = time.perf_counter()
        try:
            return await awaitable
        finally:
            spent = time.perf_counter() - started
            self.busy += spent
            await asyncio.sleep(spent * COUNT_REST)


COUNT_SLICE_PAGES = 1024  # 8 MB of the table per slice: about 18,000 records, 20 ms
COUNT_REST = 2.0
_PERSON_RANGES = "0123456789abcdef"  # person ids are UUIDs: slices by their first hex digit


@asynccontextmanager
async def _counting_session(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Where a count made ahead reads: on PostgreSQL its slices are read over several seconds, and
    must add up to the area as it was at one moment (a record edited meanwhile moves to another
    place in the table, and would be counted twice or not at all). On a server (a session bound
    to the engine), its own connection in one REPEATABLE READ transaction: every slice reads the
    same snapshot. On SQLite, a deferred transaction: a snapshot read beside the writers, without
    the write lock every other transaction takes. A session bound to one connection (the tests'
    transaction) is already in a transaction of its own, and counts in it."""
    bind = session.bind
    if not isinstance(bind, AsyncEngine):
        yield session
        return
    reader = deferred(bind) if bind.dialect.name == "sqlite" else bind.execution_options(isolation_level="REPEATABLE READ")
    async with AsyncSession(bind=reader) as counting:
        async with unscoped(counting, _COUNTING_AHEAD):
            yield counting
        await counting.rollback()


async def _counts(session: AsyncSession, condition, pace: Pace | None = None) -> dict[str, dict]:
    """Registrations and persons after 名寄せ per key of each breakdown, counted by the database:
    ``{dimension: {key: (registrations, persons)}}`` (``"total"`` has the one key None). A person
    is their ``person_id``, or the record itself while it is linked to nothing; an unlinked
    record's id is never another record's ``person_id`` (that is always the id of a linked
    registration), so persons = unlinked records + distinct ``person_id`` among the linked.
    With ``pace`` (counted ahead, on PostgreSQL): in slices, resting between them."""
    record = VictimRecord
    breakdowns = (("current", record.current_lg_code), ("registered", record.lg_code), ("shelter", record.shelter_id),
                  ("whereabouts", record.whereabouts), ("damage", record.damage_level))
    if (await session.connection()).dialect.name == "postgresql":
        if pace is not None:
                    await _on_one_core(session)
        return await _counts_on_postgresql(session, condition, breakdowns, pace)
    registrations = func.count(func.distinct(record.id))
    persons = (func.count(func.distinct(case((record.person_id.is_(None), record.id))))
               + func.count(func.distinct(record.person_id)))
    plain_registrations = func.count()
    plain_persons = func.count() - func.count(record.person_id) + func.count(func.distinct(record.person_id))
    row = (await session.execute(select(plain_registrations, plain_persons).where(condition))).one()
    out = {"total": {None: (row[0], row[1])}}
    for dimension, column in breakdowns:
        statement = select(column, plain_registrations, plain_persons).where(condition)
        if dimension == "shelter":
            statement = statement.where(column.is_not(None))
        out[dimension] = {key: (n, p) for key, n, p in (await session.execute(statement.group_by(column))).all()}
    needs = _care_needs_table()
    statement = select(needs.c.value, registrations, persons).select_from(record).join(needs, true()).where(
        condition).group_by(needs.c.value)
    out["care_needs"] = {key: (n, p) for key, n, p in (await session.execute(statement)).all() if key is not None}
    return out


async def _counts_on_postgresql(session: AsyncSession, condition, breakdowns, pace: Pace | None = None) -> dict[str, dict]:
    """``_counts`` in passes that need no sort: COUNT(DISTINCT ...) in a GROUPING SETS query made
    PostgreSQL sort the area once per breakdown (石川県's million records: 3.7-5.3 s, a count that
    stalled every page served meanwhile on 2 cores), where plain counts are hashed in one pass
    (1.0 s). So: registrations and linked registrations per key over the area, then the distinct
    persons per key over its linked registrations only (the ``person_id`` index; few, where
    名寄せ has linked few); persons = registrations - linked + distinct persons among the linked.
    Care needs likewise, each record's list made distinct first (a list may repeat a need).
    Paced: the plain passes over slices of the table (``ctid`` ranges, read by a TID range scan
    each), the distinct passes over ranges of ``person_id`` (a person is in one range only, so
    the distinct counts of the ranges add up)."""
    record = VictimRecord
    linked = record.person_id.is_not(None)
    needs = select(func.json_array_elements_text(record.care_needs).column_valued("value")).distinct().lateral("needs")

    def plain_needs(where):
        return select(needs.c.value, func.count(), func.count(record.person_id)).select_from(record).join(
            needs, true()).where(where).group_by(needs.c.value)

    def linked_needs(where):
        return select(needs.c.value, func.count(func.distinct(record.person_id))).select_from(record).join(
            needs, true()).where(where, linked).group_by(needs.c.value)

    timed = pace.timed if pace is not None else _at_once

    async def plain_of(where) -> dict:
        plain = await timed(_counts_in_one_pass(session, where, breakdowns, (func.count(), func.count(record.person_id))))
        plain["care_needs"] = {value: (n, n_linked) for value, n, n_linked
                               in (await timed(session.execute(plain_needs(where)))).all() if value is not None}
        return plain

    async def persons_of(where) -> dict:
        persons = await timed(_counts_in_one_pass(session, and_(where, linked), breakdowns,
                                                  (func.count(func.distinct(record.person_id)),)))
        persons["care_needs"] = {value: (n,) for value, n in (await timed(session.execute(linked_needs(where)))).all()}
        return persons

    if pace is None:
        plain, persons = await plain_of(condition), await persons_of(condition)
    else:
        plain, persons = {}, {}
        # Each slice by a TID range scan: an index over the area would be read whole once per slice.
        await session.execute(sql_text("SELECT set_config('enable_bitmapscan', 'off', true), "
                                       "set_config('enable_indexscan', 'off', true)"))
        for lo, hi in await _table_slices(session):
            _add_counts(plain, await plain_of(and_(condition, _in_slice(lo, hi))))
        await session.execute(sql_text("SELECT set_config('enable_bitmapscan', 'on', true), "
                                       "set_config('enable_indexscan', 'on', true)"))
        for first, upto in zip(_PERSON_RANGES, [*_PERSON_RANGES[1:], None]):
            persons_range = record.person_id >= first if upto is None else and_(record.person_id >= first,
                                                                              record.person_id < upto)
            _add_counts(persons, await persons_of(and_(condition, persons_range)))
    return {dimension: {key: (n, n - n_linked + persons.get(dimension, {}).get(key, (0,))[0])
                        for key, (n, n_linked) in rows.items()}
            for dimension, rows in plain.items()}


async def _table_slices(session: AsyncSession) -> list[tuple[int, int | None]]:
    """Page ranges of ``victim_record`` of COUNT_SLICE_PAGES each; the last one open-ended (a
    record visible to the count's snapshot is on a page the table had when it was taken)."""
    pages = await session.scalar(sql_text(
        "SELECT pg_relation_size('victim_record') / current_setting('block_size')::int")) or 0
    starts = list(range(0, max(pages, 1), COUNT_SLICE_PAGES))
    return list(zip(starts, [*starts[1:], None]))


async def _at_once(awaitable):
    return await awaitable


def _in_slice(lo: int, hi: int | None):
    if hi is None:
        return sql_text("victim_record.ctid >= CAST(:slice_lo AS tid)").bindparams(slice_lo=f"({lo},0)")
    return sql_text("victim_record.ctid >= CAST(:slice_lo AS tid) AND victim_record.ctid < CAST(:slice_hi AS tid)"
                    ).bindparams(slice_lo=f"({lo},0)", slice_hi=f"({hi},0)")


def _add_counts(into: dict, part: dict) -> None:
    """Add one slice's ``{dimension: {key: counts}}`` into the sum so far."""
    for dimension, rows in part.items():
        kept = into.setdefault(dimension, {})
        for key, counts in rows.items():
            before = kept.get(key)
            kept[key] = counts if before is None else tuple(a + b for a, b in zip(before, counts))


async def _counts_in_one_pass(session: AsyncSession, condition, breakdowns, aggregates) -> dict[str, dict]:
    """PostgreSQL: the total and every breakdown in one pass over the area (GROUPING SETS), not
    one pass each; a row's ``grouping()`` flags say which breakdown it belongs to (all set: the
    total). As ``_counts``, a shelter breakdown leaves out records with no shelter."""
    columns = [column for _, column in breakdowns]
    statement = select(*columns, *(func.grouping(column) for column in columns), *aggregates).where(
        condition).group_by(func.grouping_sets(sql_text("()"), *columns))
    out: dict[str, dict] = {"total": {None: (0, 0)}, **{dimension: {} for dimension, _ in breakdowns}}
    width = len(columns)
    for row in (await session.execute(statement)).all():
        keys, grouped, counts = row[:width], row[width:2 * width], tuple(row[2 * width:])
        if all(grouped):
            out["total"] = {None: counts}
            continue
        i = list(grouped).index(0)
        dimension = breakdowns[i][0]
        if dimension == "shelter" and keys[i] is None:
            continue
        out[dimension][keys[i]] = counts
    return out


BORDERLINE_FROM = 0.5  # 一括名寄せ shows pairs from here up to its threshold as 境界 (not linked)
PREVIEW_LIMIT = 500  # pairs listed on the preview page; the rest are counted


async def may_run_linkage(session: AsyncSession, viewer: Tenant, disaster: Disaster) -> bool:
    """一括名寄せ is run by the organisation that opened the disaster, 内閣府, or a prefecture with
    an affected municipality; nobody else (a municipality never)."""
    if viewer.lg_code in (disaster.opened_by_code, CABINET_OFFICE):
        return True
    if not viewer.is_prefecture:
        return False
    return any(prefecture_code(a.municipality_code) == viewer.lg_code for a, _ in await areas(session, disaster.id))


async def _runnable(session: AsyncSession, viewer: Tenant, disaster_id: str) -> Disaster:
    disaster = await get_disaster(session, disaster_id)
    if not await may_run_linkage(session, viewer, disaster):
        raise NotFound("ページが見つかりません。")
    return disaster


async def preview_batch(session: AsyncSession, viewer: Tenant, disaster_id: str, actor: str) -> LinkageBatch:
    """一括名寄せ, step 1: Splink scores every blocked pair of the disaster, and the run is kept as
    a preview: pairs at or above the threshold that applying would link, borderline pairs
    (≥ 50 %, below the threshold: never linked automatically, left to staff), and pairs staff have
    already decided (left alone). Nothing is linked yet."""
    import asyncio

    from kiban.modules.disaster.linkage import DEFAULT_THRESHOLD, link_batch

    disaster = await _runnable(session, viewer, disaster_id)
    if disaster.closed_at is not None:
        raise Conflict("この災害の対応は終了しています。")
    records = await all_records_for_matching(session, disaster_id)
    by_id = {r.id: r for r in records}
    pairs: list[dict] = []
    threshold = DEFAULT_THRESHOLD
    if len(records) >= 2:
        result = await asyncio.to_thread(link_batch, [record_mapping(r) for r in records],
                                         min_pair_probability=BORDERLINE_FROM)
        threshold = result.threshold
        decided = {frozenset((d.record_a_id, d.record_b_id)) for d in await decisions(session, disaster_id)
                   if d.reverted_at is None}
        for left, right, probability in sorted(result.pairs, key=lambda p: (-p[2], p[0], p[1])):
            if frozenset((left, right)) in decided:
                action = "kept"
            elif probability >= threshold:
                action = "link"
            else:
                action = "borderline"
            a, b = by_id[left], by_id[right]
            pairs.append({"a": a.id, "a_code": a.lg_code, "b": b.id, "b_code": b.lg_code,
                          "probability": round(float(probability), 6), "action": action,
                          "reasons": list(explain_pair(record_mapping(a), record_mapping(b)).reasons)})
    batch = LinkageBatch(id=str(uuid.uuid4()), disaster_id=disaster_id, run_by_code=viewer.lg_code, status="previewed",
                         records=len(records), threshold=f"{threshold:.6f}", pairs=pairs, linked=0, undone=0,
                         created_by=actor, created_at=utcnow())
    session.add(batch)
    await session.flush()
    return batch


async def get_batch(session: AsyncSession, viewer: Tenant, disaster_id: str, batch_id: str) -> LinkageBatch:
    """A run of the viewer's own (another organisation's run does not exist for it: 404)."""
    batch = await session.get(LinkageBatch, batch_id)
    if batch is None or batch.disaster_id != disaster_id or batch.run_by_code != viewer.lg_code:
        raise NotFound("一括名寄せの実行が見つかりません。")
    return batch


async def apply_batch(session: AsyncSession, viewer: Tenant, disaster_id: str, batch_id: str, actor: str) -> LinkageBatch:
    """一括名寄せ, step 2: the previewed pairs marked ``link`` become automatic links of this batch,
    except pairs staff decided since the preview (they become ``kept``). The only way an
    ``auto`` decision is made."""
    await _runnable(session, viewer, disaster_id)
    await lock_links(session, disaster_id)
    batch = await get_batch(session, viewer, disaster_id, batch_id)
    if batch.status != "previewed":
        raise Conflict("この一括名寄せはすでに反映済みか、取り消し済みです。")
    disaster = await get_disaster(session, disaster_id)
    if disaster.closed_at is not None:
        raise Conflict("この災害の対応は終了しています。")
    decided = {frozenset((d.record_a_id, d.record_b_id)) for d in await decisions(session, disaster_id)
               if d.reverted_at is None}
    pairs, linked = [], 0
    for pair in batch.pairs:
        pair = dict(pair)
        if pair["action"] == "link":
            if frozenset((pair["a"], pair["b"])) in decided:
                pair["action"] = "kept"
            else:
                session.add(MatchDecision(
                    id=str(uuid.uuid4()), disaster_id=disaster_id, record_a_code=pair["a_code"], record_a_id=pair["a"],
                    record_b_code=pair["b_code"], record_b_id=pair["b"], decision="auto",
                    probability=f"{pair['probability']:.6f}", reasons=["一括名寄せ（Fellegi–Sunter モデル、Splink）", *pair["reasons"]],
                    decided_by_code=viewer.lg_code, decided_by=actor, decided_at=utcnow(), batch_id=batch.id))
                linked += 1
        pairs.append(pair)
    batch.pairs, batch.linked, batch.status = pairs, linked, "applied"
    batch.applied_by, batch.applied_at = actor, utcnow()
    await _sync_pairs(session, disaster_id, [p for p in pairs if p["action"] == "link"])
    return batch


async def undo_batch(session: AsyncSession, viewer: Tenant, disaster_id: str, batch_id: str, actor: str) -> LinkageBatch:
    """Take back every automatic link of one applied run at once. Links staff already replaced
    or took back stay as they are; ``batch.undone`` says how many were taken back here."""
    await _runnable(session, viewer, disaster_id)
    await lock_links(session, disaster_id)
    batch = await get_batch(session, viewer, disaster_id, batch_id)
    if batch.status != "applied":
        raise Conflict("取り消せるのは反映済みの一括名寄せだけです。")
    now, undone, taken_back = utcnow(), 0, []
    for match in (await session.scalars(select(MatchDecision).where(MatchDecision.batch_id == batch.id,
                                                                    MatchDecision.reverted_at.is_(None)))).all():
        match.reverted_at, match.reverted_by = now, f"{actor}（一括名寄せの取り消し）"
        taken_back.append({"a": match.record_a_id, "b": match.record_b_id})
        undone += 1
    batch.status, batch.undone, batch.undone_by, batch.undone_at = "undone", undone, actor, now
    await _sync_pairs(session, disaster_id, taken_back)
    return batch


async def _sync_pairs(session: AsyncSession, disaster_id: str, pairs: list[dict]) -> None:
    """``sync_persons`` after a batch: for the records it touched, or for the whole disaster
    when that is most of it."""
    touched = {p["a"] for p in pairs} | {p["b"] for p in pairs}
    await sync_persons(session, disaster_id, touched if len(touched) < FULL_SYNC_FROM else None)


async def batches(session: AsyncSession, viewer: Tenant, disaster_id: str) -> list[LinkageBatch]:
    """The viewer's own runs for this disaster, newest first."""
    return list((await session.scalars(select(LinkageBatch).where(
        LinkageBatch.disaster_id == disaster_id, LinkageBatch.run_by_code == viewer.lg_code)
        .order_by(LinkageBatch.created_at.desc()))).all())


async def support_act_applies(session: AsyncSession, disaster_id: str, home_lg_code: str) -> bool:
    """Whether 被災者生活再建支援法 applies to the home municipality in this disaster (recorded
    when the disaster is opened, alongside 災害救助法)."""
    area = await session.get(DisasterArea, (disaster_id, home_lg_code))
    return bool(area and area.support_act)


# -- what the pages and the API share ------------------------------------------------------------------
# The workspace's search and paging, the record form's reading of its fields, a staff 名寄せ
# decision and the roster import live here so that the pages (web.py) and their JSON twins
# (api.py) apply exactly the same rules.

PAGE_SIZE = 50  # as the other lists (audit log, forms, notifications)
# The list counts this many records (or up to the page asked for, when further) and no more:
# beyond, it says 「1,000 件以上」 and offers the next page, rather than counting a prefecture's
# million on every view. Paging stops at MAX_PAGE (100,000 records in): search instead.
COUNT_LIMIT = 1_000
MAX_PAGE = 1_000
# A viewer that sees at most this many records of a disaster itself is listed from its records
# outwards, one that sees more by walking the disaster in フリガナ order (``records_page``).
SMALL_AREA = 2_000
_large_areas: set[tuple[str, str]] = set()
_owned_beyond: dict[tuple[str, str], int] = {}  # (disaster, viewer) -> a number of its own records it has more than


def parse_date(value: str, what: str) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{what}「{value}」は日付（例: 2026-01-01）で入力してください。") from None


def split_list(text: str) -> list[str]:
    """「172049, 珠洲市、能登町」: entries separated by commas (either width) or 、 or new lines."""
    for sep in ("、", "，", "\n", "\r"):
        text = text.replace(sep, ",")
    return [item.strip() for item in text.split(",") if item.strip()]


async def resolve_codes(session: AsyncSession, items: list[str], field: str, label: str, errors: list[dict]) -> list[str]:
    """Each entry of a code list as its 6-digit code (names and full-width digits too); every
    entry that cannot be read is reported, naming the field."""
    codes: list[str] = []
    for item in items:
        try:
            codes.append(await registry.resolve_lg_code_input(session, item, field=field, label=label))
        except InvalidInput as exc:
            errors.extend(exc.errors or [{"field": field, "message": exc.detail}])
    return codes


def all_errors(errors: list[dict]) -> InvalidInput:
    return InvalidInput(errors[0]["message"] if len(errors) == 1 else f"入力内容を確認してください（{len(errors)} 件）。",
                        errors=errors)


class FormValues(dict):
    """Values set by the caller rather than posted (a record being edited, the shelter a resident
    registers at, a JSON body), with ``getlist`` for the multi-valued fields like a real form."""

    def __init__(self, values: dict, lists: dict) -> None:
        super().__init__(values)
        self.lists = lists

    def getlist(self, key):
        return self.lists.get(key, [])


async def _code_field(session: AsyncSession, form, key: str, errors: list[dict]) -> str:
    from kiban.modules.disaster.fields import BY_KEY

    raw = str(form.get(key, "") or "").strip()
    if not raw:
        return ""
    try:
        return await registry.resolve_lg_code_input(session, raw, field=key, label=BY_KEY[key].label)
    except InvalidInput as exc:
        errors.extend(exc.errors or [{"field": key, "message": exc.detail}])
        return raw


async def record_input(session: AsyncSession, form, *, resident_subject_id: str | None = None) -> RecordInput:
    """The record form (or its JSON twin) as a ``RecordInput``; every problem found here is
    reported at once (``InvalidInput.errors``, one per field)."""
    errors: list[dict] = []
    size = str(form.get("household_size", "1") or "1").strip() or "1"
    size = size.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if not (size.isascii() and size.isdigit()):
        errors.append({"field": "household_size", "message": f"世帯人数「{size}」は1以上の整数で入力してください。"})
    birth = None
    try:
        birth = parse_date(str(form.get("birth_date", "") or ""), "生年月日")
    except InvalidInput as exc:
        errors.append({"field": "birth_date", "message": exc.detail})
    home = await _code_field(session, form, "home_lg_code", errors)
    wide = None
    if str(form.get("whereabouts", "")) == "wide_area":
        wide = await _code_field(session, form, "wide_area_lg_code", errors) or None
    if errors:
        raise all_errors(errors)

    def text(key: str, default: str = "") -> str:
        value = form.get(key, default)
        return default if value is None else str(value)

    return RecordInput(
        family_name=text("family_name"), given_name=text("given_name"),
        family_kana=text("family_kana"), given_kana=text("given_kana"),
        birth_date=birth, sex=text("sex") or None,
        home_address=text("home_address"), home_lg_code=home,
        whereabouts=text("whereabouts", "unknown") or "unknown", shelter_id=text("shelter_id") or None,
        wide_area_lg_code=wide, phone=text("phone"),
        household_key=text("household_key"), household_size=int(size),
        care_needs=[str(v) for v in form.getlist("care_needs")], damage_level=text("damage_level", "未調査"),
        risai_status=text("risai_status", "未申請"), rebuild_plan=text("rebuild_plan", "未定"),
        demolished=form.get("demolished") == "on", long_term_evacuation=form.get("long_term_evacuation") == "on",
        supports=[str(v) for v in form.getlist("supports")], note=text("note"),
        resident_subject_id=resident_subject_id, protected=form.get("protected") == "on")


@dataclass
class RecordsPage:
    records: list[VictimRecord]
    total: int  # with ``more``, a lower bound
    page: int
    pages: int  # with ``more``, the pages counted so far: there is a next page after the last
    more: bool = False  # more records match than were counted (``total``)


def search_condition(q: str, disaster_id: str = "", dialect: str = "postgresql"):
    """Records whose name or reading begins with the query, folded (``names.search_key``): the
    full name, the given name, the full reading or the given reading (「高橋」「健太」「たかはし」
    「ｹﾝﾀ」 find 髙橋 健太). None for a query with nothing to search by. Each test is a range on a
    key's index (see ``names`` for why a beginning and not any part): one OR, which PostgreSQL
    answers from the four indexes at once; on SQLite, whose planner does that only for a union,
    the ids of a union of four lookups."""
    key = search_key(q)
    if not key:
        return None
    bound = prefix_upper_bound(key)
    columns = (VictimRecord.name_key, VictimRecord.given_key, VictimRecord.kana_key, VictimRecord.given_kana_key)

    def begins(column):
        return (column >= key) if bound is None else and_(column >= key, column < bound)

    if dialect != "sqlite":
        return or_(*(begins(column) for column in columns))
    return VictimRecord.id.in_(union(*(select(VictimRecord.id).where(VictimRecord.disaster_id == disaster_id,
                                                                     begins(column)) for column in columns)))


def _seen_directly(viewer: Tenant, disaster_id: str, *, distinct: bool = True):
    """The records ``_visible_to`` the viewer, as a union of one indexed lookup per way of seeing
    a record (registered it; home or current municipality; home or current prefecture): (id,
    person_id) rows. Written apart rather than as one OR so that each part is answered from its
    own index on SQLite too, whose planner would otherwise read the whole disaster.
    ``distinct=False``: UNION ALL (a record seen two ways comes twice), which a LIMIT can stop
    early; a UNION must first read and de-duplicate every row."""
    R = VictimRecord
    columns = (R.id, R.person_id)
    if viewer.is_prefecture:
        parts = (select(*columns).where(R.home_pref_code == viewer.lg_code, R.disaster_id == disaster_id),
                 select(*columns).where(R.current_pref_code == viewer.lg_code, R.disaster_id == disaster_id))
    else:
        parts = (select(*columns).where(R.lg_code == viewer.lg_code, R.disaster_id == disaster_id),
                 select(*columns).where(R.home_lg_code == viewer.lg_code, R.disaster_id == disaster_id,
                                        R.protected.is_(False)),
                 select(*columns).where(R.current_lg_code == viewer.lg_code, R.disaster_id == disaster_id,
                                        R.protected.is_(False)))
    return union(*parts) if distinct else union_all(*parts)


def _visible_in_small_area(viewer: Tenant, disaster_id: str):
    """``visible_condition`` written from the viewer's own records outwards: the records it sees
    itself (``_seen_directly``) and the other registrations of their persons (through
    ``person_id``). Exactly the same records; what a viewer that sees few of a large disaster's
    records should ask, since walking the whole disaster in フリガナ order to find them would cost
    the disaster, not the page."""
    direct = _seen_directly(viewer, disaster_id).cte("seen_directly")
    linked = select(VictimRecord.id).where(VictimRecord.disaster_id == disaster_id, VictimRecord.person_id.in_(
        select(direct.c.person_id).where(direct.c.person_id.is_not(None))))
    return and_(VictimRecord.disaster_id == disaster_id,
                VictimRecord.id.in_(union(select(direct.c.id), linked)), _protected_allowed(viewer))


async def _sees_few(session: AsyncSession, viewer: Tenant, disaster_id: str) -> bool:
    """Whether the viewer sees at most SMALL_AREA records of the disaster itself (its own, or as
    home or current municipality / prefecture), counted no further than that. An area once
    found large stays large (registrations are never deleted), so it is asked only once per
    process."""
    area = (disaster_id, viewer.lg_code)
    if area in _large_areas:
        return False
    # UNION ALL, so the database stops after SMALL_AREA + 1 rows: with UNION it read and sorted
    # every one first (金沢市 on 1,000,000 records: 165,000 rows per first page of each process,
    # 50 clients' first pages at once). A record seen two ways counts twice, which can only call a
    # borderline area large: either answer gives the same page, by another plan.
    upto = _seen_directly(viewer, disaster_id, distinct=False).limit(SMALL_AREA + 1).subquery()
    few = (await session.scalar(select(func.count()).select_from(upto)) or 0) <= SMALL_AREA
    if not few:
        if len(_large_areas) > 10_000:
            _large_areas.clear()
        _large_areas.add(area)
    return few


async def _owns_more_than(session: AsyncSession, viewer: Tenant, disaster_id: str, limit: int) -> bool:
    """Whether more than ``limit`` records of the disaster are the viewer's by the plainest way
    of seeing them: a municipality's own registrations, a prefecture's residents (home in the
    prefecture). Every such record is visible to it (``visible_condition``, 支援措置対象 included),
    so the list has more than ``limit`` too. One index range stopped at ``limit`` + 1 rows, where
    counting by the whole sharing rule made PostgreSQL gather every candidate row first (金沢市
    on 1,000,000 records: 280,000 rows, 60-75 ms, on every page of its list). Registrations are
    never deleted, so once it has more than a number it always will: asked once per process and
    number (``_owned_beyond``). Asked on every page, it was 20 ms of PostgreSQL's time on each,
    the planner's estimate choosing a scan of the table (bench/load.py (a))."""
    area = (disaster_id, viewer.lg_code)
    if _owned_beyond.get(area, -1) >= limit:
        return True
    R = VictimRecord
    mine = R.home_pref_code == viewer.lg_code if viewer.is_prefecture else R.lg_code == viewer.lg_code
    upto = select(R.id).where(R.disaster_id == disaster_id, mine).limit(limit + 1).subquery()
    more = (await session.scalar(select(func.count()).select_from(upto)) or 0) > limit
    if more:
        if len(_owned_beyond) > 10_000:
            _owned_beyond.clear()
        _owned_beyond[area] = max(limit, _owned_beyond.get(area, -1))
    return more


async def records_page(session: AsyncSession, viewer: Tenant, actor: audit.Actor, disaster_id: str, *, q: str = "",
                       page: int = 1, page_size: int = PAGE_SIZE) -> RecordsPage:
    """The workspace's list: the records the viewer may see, searched by name or kana, one page of
    ``PAGE_SIZE`` in フリガナ order. Searching, ordering, counting and paging happen in SQL over the
    stored search keys, so only the page's rows are read: each other municipality's row is
    audited. A viewer that sees few records of the disaster gets them from its own records
    outwards (``_visible_in_small_area``); one that sees many, by walking the disaster in
    フリガナ order and testing each record (``visible_condition``), which stops after the page.
    Counting stops at ``COUNT_LIMIT`` records, or at the page asked for when that is further
    (``more``: there are more than ``total``, and a next page), so a prefecture's list of a
    million registrations costs what its first pages cost; page N costs N pages."""
    page = min(max(page, 1), MAX_PAGE)
    limit = max(COUNT_LIMIT, page * page_size)
    await session.flush()
    async with unscoped(session, SHARED_READ):
        few = await _sees_few(session, viewer, disaster_id)
        condition = _visible_in_small_area(viewer, disaster_id) if few else visible_condition(viewer, disaster_id)
        searched = search_condition(q, disaster_id, (await session.connection()).dialect.name)
        if searched is not None:
            condition = and_(condition, searched)
        if searched is None and not few and await _owns_more_than(session, viewer, disaster_id, limit):
            counted = limit + 1  # more than ``limit`` of its own: the count is known without the rule
        else:
            # Counting stops at ``limit`` + 1: the database need not find every visible record first.
            upto = select(VictimRecord.id).where(condition).limit(limit + 1).subquery()
            counted = await session.scalar(select(func.count()).select_from(upto)) or 0
        total, more = min(counted, limit), counted > limit
        pages = max(1, -(-total // page_size))
        page = min(page, pages)
        # In a small area, the same order written so that no index provides it: SQLite would
        # otherwise walk the disaster in that index's order rather than look up the few ids.
        order = (VictimRecord.family_kana.concat(""), *RECORD_ORDER[1:]) if few else RECORD_ORDER
        records = list((await session.scalars(select(VictimRecord).where(condition).order_by(*order)
                                              .limit(page_size).offset((page - 1) * page_size))).all())
    await audit_reads(session, viewer, actor, [r for r in records if r.lg_code != viewer.lg_code])
    return RecordsPage(records, total, page, pages, more)


async def staff_decision(session: AsyncSession, staff, disaster_id: str, record_id: str, other_id: str,
                         decision: str) -> MatchDecision:
    """A staff member's 名寄せ judgement on a candidate of one of the records it can see: only
    「同じ人」/「別の人」 (``auto`` belongs to 一括名寄せ), only on a candidate the viewer is shown,
    confirming only from ``MIN_CONFIRM_PROBABILITY`` and within the hourly limit; across
    municipalities a confirmation waits for the other owner. Audited on both owners' chains;
    unusual confirmations are flagged to the prefectures. (Commits when the limit is hit, so the
    flag stays while the request is refused.)"""
    from kiban.modules.disaster import matching

    if decision not in STAFF_DECISIONS:
        raise InvalidInput("判断は「同じ人」か「別の人」を選んでください。",
                           errors=[{"field": "decision", "message": "判断は「同じ人」か「別の人」を選んでください。"}])
    await get_disaster(session, disaster_id)
    actor = audit.Actor.of_staff(staff)
    record = await get_visible_record(session, staff.tenant, disaster_id, record_id, actor)
    candidates = {c.record.id: c for c in await matching.candidates_for_viewer(session, staff.tenant, record, limit=50)}
    if other_id not in candidates:
        raise NotFound("照合する候補が見つかりません。")
    other, candidate = candidates[other_id].record, candidates[other_id].candidate
    if decision == "confirmed" and candidate.probability < MIN_CONFIRM_PROBABILITY:
        # Confirming widens who sees both records; a weak candidate needs the owner's own judgement.
        raise InvalidInput(f"一致の確からしさが {MIN_CONFIRM_PROBABILITY:.0%} 未満の候補は、ここでは統合できません。"
                           "登録した団体に連絡し、記録を直してから照合してください。")
    if decision == "confirmed":
        try:
            await check_confirmation_limit(session, staff.principal.id)
        except TooManyConfirmations:
            await flag(session, staff, disaster_id, {staff.tenant.lg_code, other.lg_code},
                       f"1時間に {CONFIRM_LIMIT_PER_HOUR} 件を超えて確認しようとしたため、止めました。",
                       action="disaster.match.limited")
            await session.commit()
            raise
    match = await decide(session, staff.tenant, disaster_id, record, other, decision=decision,
                         probability=candidate.probability, reasons=list(candidate.reasons), actor=staff.label,
                         principal=staff.principal.id)
    for owner_code in {record.lg_code, other.lg_code}:
        await audit.record(session, actor, "disaster.match.requested" if match.acceptance == PENDING
                           else f"disaster.match.{decision}", target_type="match_decision",
                           target_id=match.id, purpose=SHARE_PURPOSE, legal_basis=LEGAL_BASIS,
                           details={"records": [record.id, other.id], "awaiting": match.awaiting_code},
                           tenant=await registry.tenant_for(session, owner_code))
    if match.acceptance == PENDING:
        reason = await unusual_confirmations(session, staff.principal.id)
        if reason:
            await flag(session, staff, disaster_id, {staff.tenant.lg_code, other.lg_code}, reason)
    return match


async def flag(session: AsyncSession, staff, disaster_id: str, codes: set[str], reason: str,
               action: str = "disaster.match.flagged") -> None:
    """Tell the prefectures of the municipalities involved (on their audit chains, listed on their
    workspace) that a staff member's confirmations look unusual."""
    for prefecture in sorted({prefecture_code(code) for code in codes}):
        await audit.record(session, audit.Actor.of_staff(staff), action, target_type="disaster", target_id=disaster_id,
                           purpose=SHARE_PURPOSE, legal_basis=LEGAL_BASIS, outcome="failure"
                           if action.endswith("limited") else "success",
                           details={"who": staff.label, "municipality": staff.tenant.name, "reason": reason},
                           tenant=await registry.tenant_for(session, prefecture))


async def answered(session: AsyncSession, staff, match: MatchDecision, action: str) -> None:
    """An accepted or declined confirmation, on the chains of both owners and the asker."""
    for owner_code in {match.record_a_code, match.record_b_code, match.decided_by_code}:
        await audit.record(session, audit.Actor.of_staff(staff), action, target_type="match_decision", target_id=match.id,
                           purpose=SHARE_PURPOSE, legal_basis=LEGAL_BASIS,
                           details={"records": [match.record_a_id, match.record_b_id], "asked_by": match.decided_by_code},
                           tenant=await registry.tenant_for(session, owner_code))


async def flags_of(session: AsyncSession, viewer: Tenant, disaster_id: str) -> list:
    """名寄せの注意 on the prefecture's own chain for this disaster, newest first."""
    from kiban.core.audit.models import AuditEntry

    statement = select(AuditEntry).where(AuditEntry.lg_code == viewer.lg_code,
                                         AuditEntry.action.in_(("disaster.match.flagged", "disaster.match.limited")),
                                         AuditEntry.target_id == disaster_id)
    return list((await session.scalars(statement.order_by(AuditEntry.occurred_at.desc()).limit(50))).all())


# -- roster import (名簿の取り込み) ---------------------------------------------------------------------------

class RosterImportRepository(TenantRepository[RosterImport]):
    model = RosterImport


def report_json(report) -> dict:
    from dataclasses import asdict

    def value(v):
        return v.isoformat() if isinstance(v, date) else v

    return {"file_errors": list(report.file_errors), "warnings": list(report.warnings),
            "columns": [asdict(c) for c in report.columns], "rows": [
        {"line": r.line, "errors": list(r.errors), "warnings": list(r.warnings), "import_key": r.import_key,
         "values": {k: value(v) for k, v in r.values.items()} if r.values else None,
         "proposal": {**asdict(r.proposal), "text": r.proposal.text} if r.proposal else None} for r in report.rows]}


def read_roster(data: bytes, shelters: dict[str, str], known: frozenset[str], snapshot) -> tuple[str, EncodedJSON]:
    """A roster file's encoding and its report as JSON text (run in the work process,
    ``kit.offload``: its arguments and answer are pickled, the answer one string)."""
    from kiban.modules.disaster.roster import parse_roster

    def resolve_name(text: str, field: str, label: str) -> str:
        return registry.resolve_lg_code_input_sync(snapshot, text, field=field, label=label)

    report = parse_roster(data, shelters=shelters, is_known_code=known.__contains__, resolve_name=resolve_name)
    return report.encoding, EncodedJSON(json.dumps(report_json(report), ensure_ascii=False))


async def stage_roster(session: AsyncSession, viewer: Tenant, disaster_id: str, data: bytes, filename: str, snapshot,
                       *, actor: str):
    """Read an uploaded roster into a staged import (nothing registered yet): one registry
    snapshot for the whole file, so a code column may hold names (輪島市) too."""
    shelters = {s.name: s.id for s in await shelters_of_tenant(session, disaster_id)}
    known = frozenset((await session.scalars(select(Organization.code).where(
        Organization.type.in_(MUNICIPAL_TYPES), Organization.retired_on.is_(None)))).all())
    # Reading a large file takes seconds: end the transaction first (on SQLite a request's
    # transaction holds the write lock, and others' requests would wait for the parse), and parse
    # in the work process, the report's JSON too: in a thread, the parse of 20,000 rows (~8 s)
    # held the GIL that every other request of the worker waited for, and encoding the report at
    # the flush took 0.5 s of the event loop (bench/load.py (f)).
    await session.commit()
    encoding, report = await offload.run(read_roster, data, shelters, known, snapshot)
    batch = RosterImportRepository(session).add(RosterImport(
        id=str(uuid.uuid4()), disaster_id=disaster_id, filename=(filename or "roster.csv")[:200],
        encoding=encoding, report=report, status="staged", created_by=actor, created_at=utcnow()))
    await session.flush()
    session.expire(batch, ["report"])  # read back as the document, by whoever needs it
    return batch


async def roster_batch(session: AsyncSession, disaster_id: str, batch_id: str) -> RosterImport:
    repo = RosterImportRepository(session)
    batch = await repo.first(repo.select().where(RosterImport.id == batch_id, RosterImport.disaster_id == disaster_id))
    if batch is None:
        raise NotFound("取り込みが見つかりません。")
    return batch


#: Import keys looked up per query (``registered_keys``): under SQLite's and asyncpg's bound
#: parameter limits, whatever the roster's size.
KEYS_PER_QUERY = 5_000


async def registered_keys(session: AsyncSession, viewer: Tenant, disaster_id: str, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` (a roster's import keys) are already in this municipality's 台帳 for
    this disaster: as the key an earlier import stored, or as the key a roster row would have for
    a record (``roster_key``, written with the record, whether registered on the form, by the
    resident or by an import). Asked of the database, which returns only the keys found: reading
    every key of a large 台帳 instead (輪島市 in bench/load.py, 79,000 records) cost 0.7 s of
    the event loop per preview and acceptance. Records registered before ``roster_key``
    existed, not yet filled by the jobs process (``imports.fill_roster_keys``), have theirs
    computed here, off the event loop."""
    wanted = sorted({key for key in keys if key})
    if not wanted:
        return set()
    mine = (VictimRecord.lg_code == viewer.lg_code, VictimRecord.disaster_id == disaster_id)
    found: set[str] = set()
    postgres = session.bind.dialect.name == "postgresql"
    for start in range(0, len(wanted), KEYS_PER_QUERY):
        part = wanted[start:start + KEYS_PER_QUERY]
        for column in (VictimRecord.import_key, VictimRecord.roster_key):
            # PostgreSQL: the keys as one array parameter (bound in C), not thousands of parameters.
            among = column == any_(bindparam("keys", part, type_=ARRAY(String))) if postgres else column.in_(part)
            found.update((await session.scalars(select(column).where(*mine, among))).all())
    missing = (await session.execute(select(*ROSTER_KEY_COLUMNS).where(*mine, VictimRecord.roster_key.is_(None)))).all()
    if missing:
        found |= await asyncio.to_thread(lambda: {roster_key_of(row._mapping) for row in missing}) & set(wanted)
    return found


@dataclass
class ImportCounts:
    registered: set[int]  # lines already in the 台帳 (skipped on import)
    valid: int
    invalid: int
    proposals: int  # guessed name splits staff must confirm


async def import_counts(session: AsyncSession, viewer: Tenant, disaster_id: str, batch) -> ImportCounts:
    rows = batch.report["rows"]
    if batch.status == "staged":
        registered = await registered_keys(session, viewer, disaster_id, (r.get("import_key") for r in rows))
        flagged = {r["line"] for r in rows if r.get("import_key") in registered}
    else:
        flagged = set()
    return ImportCounts(flagged, sum(1 for r in rows if not r["errors"]), sum(1 for r in rows if r["errors"]),
                        sum(1 for r in rows if not r["errors"] and r.get("proposal") and r["line"] not in flagged))


class ImportNotAccepted(InvalidInput):
    """The preview's choices do not allow registering yet; ``problems`` says every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems), errors=[{"field": "options", "message": p} for p in problems])
        self.problems = problems


@dataclass
class ImportResult:
    added: int
    confirmed_splits: int
    unconfirmed_splits: int
