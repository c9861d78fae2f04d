"""Registry rules: lookups that explain themselves, merges that keep history."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry.codes import check_digit, normalize_lg_code, prefecture_code
from kiban.core.registry.models import MUNICIPAL_TYPES, Organization, OrgType
from kiban.core.registry.repository import OrganizationRepository
from kiban.core.registry.snapshot import RegistryCache, RegistrySnapshot, code_query, load_snapshot
from kiban.core.registry.schemas import (
    OrganizationDetail,
    OrganizationPage,
    OrganizationRead,
    Retirement,
)
from kiban.core.tenancy.context import Tenant
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.kit.paging import MAX_OFFSET
from kiban.kit.wareki import wareki_with_seireki

MAX_LIMIT = 2000
SORTS = ("relevance", "code", "population_desc", "population_asc", "kana")
VALID_TYPES = tuple(t.value for t in OrgType)


@dataclass(frozen=True)
class OrganizationQuery:
    q: str | None = None
    prefecture: str | None = None
    types: tuple[str, ...] = ()
    include_retired: bool = False
    include_wards: bool = False
    sort: str = "relevance"
    limit: int = 50
    offset: int = 0

    def criteria(self) -> dict:
        return {"q": self.q, "prefecture": self.prefecture, "types": self.types,
                "include_retired": self.include_retired, "include_wards": self.include_wards,
                "sort": self.sort, "limit": self.limit, "offset": self.offset}

    def validated(self) -> OrganizationQuery:
        errors = []
        if self.prefecture and not (len(self.prefecture) == 2 and self.prefecture.isdigit()
                                    and 1 <= int(self.prefecture) <= 47):
            errors.append({"field": "prefecture",
                           "message": f"都道府県番号「{self.prefecture}」が正しくありません。01（北海道）〜47（沖縄県）の2桁で指定してください。"})
        for kind in self.types:
            if kind not in VALID_TYPES:
                errors.append({"field": "type",
                               "message": f"団体の種類「{kind}」はありません。{'・'.join(VALID_TYPES)} のいずれかを指定してください。"})
        if self.sort not in SORTS:
            errors.append({"field": "sort", "message": f"並び順「{self.sort}」は指定できません。{' / '.join(SORTS)} のいずれかを指定してください。"})
        if not 1 <= self.limit <= MAX_LIMIT:
            errors.append({"field": "limit", "message": f"件数（limit）は1〜{MAX_LIMIT}で指定してください。"})
        if not 0 <= self.offset <= MAX_OFFSET:
            errors.append({"field": "offset", "message": f"開始位置（offset）は0〜{MAX_OFFSET}で指定してください。"})
        if self.q is not None and len(self.q) > 100:
            errors.append({"field": "q", "message": "検索語は100文字以内で入力してください。"})
        if errors:
            raise InvalidInput(" ".join(e["message"] for e in errors), errors=errors)
        return self


async def list_organizations(session: AsyncSession, query: OrganizationQuery,
                             cache: RegistryCache | None = None) -> OrganizationPage:
    """Search the registry: from the process's in-memory snapshot when a cache is given
    (web and API), else from a snapshot loaded for this call (CLI, tests)."""
    query = query.validated()
    snapshot = await cache.get(session) if cache is not None else await load_snapshot(session)
    return snapshot.search(**query.criteria())


async def list_organizations_json(session: AsyncSession, query: OrganizationQuery, cache: RegistryCache) -> bytes:
    """``list_organizations`` serialised for the API, from per-item JSON made once per snapshot."""
    query = query.validated()
    return (await cache.get(session)).search_json(**query.criteria())


async def get_organization(session: AsyncSession, raw_code: str) -> Organization:
    """The organisation for a code typed or linked by a person: 422 saying what is wrong with a
    malformed code, 404 for a well-formed code nobody has."""
    code = normalize_lg_code(raw_code)
    org = await OrganizationRepository(session).by_code(code)
    if org is None:
        raise NotFound(f"団体コード {code} の団体は登録されていません。")
    return org


async def get_detail(session: AsyncSession, raw_code: str) -> OrganizationDetail:
    repo = OrganizationRepository(session)
    org = await get_organization(session, raw_code)
    parent = await repo.by_code(org.parent_code) if org.parent_code else None
    children = await repo.children_of(org.code)
    predecessors = await repo.predecessors_of(org.code)
    retirement = None
    if org.retired_on is not None:
        chain = await repo.with_successor_chain(org)
        retirement = Retirement(
            retired_on=org.retired_on, reason=org.retirement_reason,
            successors=[OrganizationRead.of(o) for o in chain],
            message=retirement_message(org, chain),
        )
    return OrganizationDetail(
        **OrganizationRead.of(org).model_dump(),
        habitable_area_km2=org.habitable_area_km2,
        parent=OrganizationRead.of(parent) if parent else None,
        children=[OrganizationRead.of(c) for c in children],
        predecessors=[OrganizationRead.of(p) for p in predecessors],
        retirement=retirement,
    )


def retirement_message(org: Organization, chain: list[Organization]) -> str:
    when = wareki_with_seireki(org.retired_on)
    if not chain:
        return f"{org.name}（{org.code}）は{when}に廃止されました。"
    current = chain[-1]
    via = "" if len(chain) == 1 else "（" + " → ".join(o.name for o in chain[:-1]) + " を経て）"
    reason = org.retirement_reason or "合併"
    return (f"{org.name}（{org.code}）は{when}に{reason}により{chain[0].name}（{chain[0].code}）"
            f"となりました。現在は{via}{current.name}（{current.code}）です。")


async def merge(session: AsyncSession, raw_code: str, raw_into: str, effective_on: date,
                reason: str = "合併") -> Organization:
    """Retire a municipality into its successor (合併・編入). History is kept: the retired
    code still resolves and says what replaced it. Commit is the caller's."""
    org = await get_organization(session, raw_code)
    successor = await get_organization(session, raw_into)
    if org.code == successor.code:
        raise InvalidInput("合併先に同じ団体は指定できません。")
    if OrgType(org.type) not in MUNICIPAL_TYPES:
        raise InvalidInput(f"{org.name} は市区町村ではないため、合併として登録できません。")
    if OrgType(successor.type) not in MUNICIPAL_TYPES:
        raise InvalidInput(f"合併先の {successor.name} は市区町村ではありません。")
    if org.retired_on is not None:
        raise Conflict(f"{org.name} はすでに{wareki_with_seireki(org.retired_on)}に廃止されています。")
    if successor.retired_on is not None:
        raise InvalidInput(f"合併先の {successor.name} はすでに廃止されています。現在の団体を指定してください。")
    org.retired_on = effective_on
    org.successor_code = successor.code
    org.retirement_reason = reason
    await session.flush()
    await OrganizationRepository(session).bump_revision()
    return org


async def tenant_for(session: AsyncSession, raw_code: str) -> Tenant:
    """The tenant for a code in a URL. Wards are sub-units, not tenants; a retired code is no
    longer a tenant either (its successor is)."""
    org = await get_organization(session, raw_code)
    if org.type == OrgType.ward.value:
        raise NotFound(f"{org.name} は政令市の行政区です。{org.parent_code} の画面をご利用ください。")
    if org.retired_on is not None:
        raise NotFound(f"{org.name} は{wareki_with_seireki(org.retired_on)}に廃止されました（後継: {org.successor_code}）。")
    return tenant_of(org)


def tenant_of(org: Organization) -> Tenant:
    prefecture = prefecture_code(org.code) if org.prefecture_number else None
    return Tenant(lg_code=org.code, name=org.name, type=org.type, prefecture_code=prefecture)


@dataclass(frozen=True)
class RegistrySummary:
    prefectures: int
    municipalities: int
    wards: int
    population: int


async def summary(session: AsyncSession) -> RegistrySummary:
    """Counts of current organisations; population is the sum over municipalities."""
    rows = await OrganizationRepository(session).current_counts_by_type()
    municipal = [rows.get(t.value, (0, 0)) for t in MUNICIPAL_TYPES]
    return RegistrySummary(
        prefectures=rows.get(OrgType.prefecture.value, (0, 0))[0],
        municipalities=sum(count for count, _ in municipal),
        wards=rows.get(OrgType.ward.value, (0, 0))[0],
        population=sum(population for _, population in municipal),
    )


async def organizations_by_code(session: AsyncSession, codes: list[str]) -> dict[str, Organization]:
    return await OrganizationRepository(session).by_codes(codes)


# Revalidated on the caller's session at every call (one small query; reloads only when the
# registry changed), so code fields never answer from a stale registry.
_INPUT_CACHE = RegistryCache(ttl=0)


async def names_by_code(session: AsyncSession, codes) -> dict[str, str]:
    """Organisations' names by code, from this process's registry snapshot (revalidated on the
    caller's session: one small query), not by loading their rows: a page of a hundred
    victim records names up to a hundred organisations, and loading them was a sixth of it."""
    snapshot = await _INPUT_CACHE.get(session)
    return {code: item.name for code in codes if code and (item := snapshot.get(code)) is not None}


async def tenants_by_code(session: AsyncSession, codes) -> dict[str, Tenant]:
    """``tenant_of`` each organisation by code, from the registry snapshot as ``names_by_code``."""
    snapshot = await _INPUT_CACHE.get(session)
    return {code: Tenant(lg_code=item.code, name=item.name, type=item.type,
                         prefecture_code=prefecture_code(item.code) if item.prefecture else None)
            for code in codes if code and (item := snapshot.get(code)) is not None}
_MAX_LISTED = 8


async def resolve_lg_code_input(session: AsyncSession, text: str, *, field: str = "code",
                                label: str = "団体コード", allow_wards: bool = False,
                                cache: RegistryCache | None = None) -> str:
    """The 6-digit code of the current organisation a person meant by ``text`` in a code field.

    Accepts a 6-digit code (full- or half-width; the check digit is verified), a 5-digit code
    (the check digit is added), or a name: 「金沢市」「石川県金沢市」「かなざわし」「金沢」, folded as
    the registry search folds it (width, kana, 異体字, ケ/ヶ/が). Fails with ``InvalidInput``
    (422) whose Japanese message names ``label`` and whose ``errors`` entry names ``field``:
    a wrong check digit (which digit it should be), an unknown code or name, an ambiguous name
    (「府中市」: each candidate with its prefecture and code), a retired organisation (its
    successor), or a ward of a designated city unless ``allow_wards`` (its city)."""
    snapshot = await (cache or _INPUT_CACHE).get(session)
    return resolve_lg_code_input_sync(snapshot, text, field=field, label=label, allow_wards=allow_wards)


def resolve_lg_code_input_sync(snapshot: RegistrySnapshot, text: str, *, field: str = "code",
                               label: str = "団体コード", allow_wards: bool = False) -> str:
    """``resolve_lg_code_input`` from a registry snapshot already at hand (``RegistryCache.get``
    or ``load_snapshot``), for code that has no session."""
    def refuse(message: str) -> InvalidInput:
        return InvalidInput(message, errors=[{"field": field, "message": message}])

    raw = (text or "").strip()
    if not raw:
        raise refuse(f"{label}を入力してください（6桁の団体コードか団体名）。")
    digits = code_query(raw)
    plain = unicodedata.normalize("NFKC", raw).replace(" ", "").replace("-", "")
    if digits is None and plain.isascii() and plain.isdigit():
        digits = plain  # too many digits: _code_from_digits says how many
    elif digits is None and any(ch.isdigit() for ch in plain):
        # no organisation's name has a digit in it: this was meant as a code
        raise refuse(f"{label}「{raw}」には数字以外の文字が含まれています。"
                     f"6桁の数字（または団体名）で入力してください。")
    if digits is not None:
        code = _code_from_digits(digits, raw, label, refuse)
        org = snapshot.get(code)
        if org is None:
            typed = "" if len(digits) == 6 else f"（検査数字を付けると {code}）"
            raise refuse(f"{label}「{raw}」{typed}の団体は登録されていません。")
        return _current_code(snapshot, org, raw, label, allow_wards, refuse)
    found = snapshot.named(raw)
    if not found:
        raise refuse(f"{label}「{raw}」に当たる団体が見つかりません。6桁の団体コードか、"
                     f"「石川県金沢市」のような団体名で入力してください。")
    current = [o for o in found if o.retired_on is None]
    if not allow_wards and any(o.type != OrgType.ward.value for o in current):
        current = [o for o in current if o.type != OrgType.ward.value]
    if len(current) > 1:
        listed = "、".join(f"{o.name}（{_where(o)}{o.code}）" for o in current[:_MAX_LISTED])
        more = f" ほか{len(current) - _MAX_LISTED}団体" if len(current) > _MAX_LISTED else ""
        raise refuse(f"{label}「{raw}」に当たる団体が{len(current)}つあります: {listed}{more}。"
                     f"都道府県名を付けるか（例:「{_where(current[0]).rstrip('・')}{current[0].name}」）、"
                     f"団体コードで入力してください。")
    return _current_code(snapshot, current[0] if current else found[0], raw, label, allow_wards, refuse)


def _where(org) -> str:
    return f"{org.prefecture_name}・" if org.prefecture_name and org.type != OrgType.prefecture.value else ""


def _code_from_digits(digits: str, raw: str, label: str, refuse) -> str:
    if len(digits) == 5:
        return digits + check_digit(digits)
    if len(digits) != 6:
        raise refuse(f"{label}「{raw}」は{len(digits)}桁です。6桁（または検査数字を除く5桁）で入力してください。")
    expected = check_digit(digits[:5])
    if digits[5] != expected:
        raise refuse(f"{label}「{raw}」の検査数字（6桁目）が正しくありません。"
                     f"前5桁が {digits[:5]} なら6桁目は {expected} です。")
    return digits


def _current_code(snapshot: RegistrySnapshot, org, raw: str, label: str, allow_wards: bool, refuse) -> str:
    if org.retired_on is not None:
        successor = snapshot.get(org.successor_code) if org.successor_code else None
        now = f"現在は{successor.name}（{successor.code}）です。" if successor else ""
        raise refuse(f"{label}「{raw}」の{org.name}（{org.code}）は{wareki_with_seireki(org.retired_on)}に"
                     f"廃止されました。{now}")
    if org.type == OrgType.ward.value and not allow_wards:
        city = snapshot.get(org.parent_code) if org.parent_code else None
        instead = f"{city.name}（{city.code}）を入力してください。" if city else ""
        raise refuse(f"{label}「{raw}」の{org.name}は政令市の行政区です。{instead}")
    return org.code
