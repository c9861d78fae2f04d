"""Registry rules: lookups that explain themselves, merges that keep history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry.codes import normalize_lg_code, prefecture_code
from kiban.core.registry.models import MUNICIPAL_TYPES, Organization, OrgType
from kiban.core.registry.repository import OrganizationRepository
from kiban.core.registry.snapshot import RegistryCache, load_snapshot
from kiban.core.registry.schemas import (
    OrganizationDetail,
    OrganizationPage,
    OrganizationRead,
    Retirement,
)
from kiban.core.tenancy.context import Tenant
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.kit.wareki import wareki_with_seireki

MAX_LIMIT = 2000
SORTS = ("code", "population_desc", "population_asc", "kana")
VALID_TYPES = tuple(t.value for t in OrgType)


@dataclass(frozen=True)
class OrganizationQuery:
    q: str | None = None
    prefecture: str | None = None
    types: tuple[str, ...] = ()
    include_retired: bool = False
    include_wards: bool = False
    sort: str = "code"
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
        if self.offset < 0:
            errors.append({"field": "offset", "message": "開始位置（offset）は0以上で指定してください。"})
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
