"""JSON twins of the catalog pages, and each tenant's adoptions (its own staff and API keys only)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from kiban.core.audit import service as audit
from kiban.core.identity.dependencies import PUBLIC, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.identity.service import PLATFORM_LG_CODE
from kiban.core.tenancy.dependencies import DbSession
from kiban.kit.errors import NotFound
from kiban.kit.openapi import problem_responses
from kiban.kit.validation import MAX_YEN, PlausibleDate
from kiban.modules.catalog import service
from kiban.modules.catalog.models import AdoptionStatus, BurdenCategory, Lifecycle, Pattern

public = APIRouter(prefix="/api/v1/catalog", tags=["共通サービスカタログ"], dependencies=[PUBLIC])
tenant = APIRouter(prefix="/api/v1/t/{lg_code}", tags=["共通サービスの利用状況（団体）"])
AdoptionReader = Annotated[StaffContext, require(Permission.catalog_adoption_read)]
AdoptionWriter = Annotated[StaffContext, require(Permission.catalog_adoption_write)]
CatalogEditor = Annotated[StaffContext, require(Permission.catalog_service_manage)]
EDITING = "共通サービスカタログの編集（デジタル庁）"


class ServiceRead(BaseModel):
    id: str
    name: str
    domain: str
    description: str
    pattern: str
    pattern_label: str
    owner: str
    burden_category: str
    burden_label: str
    burden_rule: str
    lifecycle: str
    lifecycle_label: str
    annual_cost: int | None
    source: str
    adoptions: dict[str, int] = Field(description="状況ごとの団体数（considering / pilot / in_use / ended）")
    vendors: list[str] = []


def _read(item, counts, vendors=()) -> ServiceRead:
    return ServiceRead(
        id=item.id, name=item.name, domain=item.domain, description=item.description, pattern=item.pattern,
        pattern_label=Pattern(item.pattern).label, owner=item.owner, burden_category=item.burden_category,
        burden_label=BurdenCategory(item.burden_category).label, burden_rule=BurdenCategory(item.burden_category).rule,
        lifecycle=item.lifecycle, lifecycle_label=Lifecycle(item.lifecycle).label, annual_cost=item.annual_cost,
        source=item.source, adoptions={s.value: counts.get(item.id, {}).get(s.value, 0) for s in AdoptionStatus},
        vendors=[v.name for v in vendors])


@public.get("/services", summary="共通サービスの一覧（パターン・費用負担の区分・段階・利用団体数）",
            response_model=list[ServiceRead])
async def list_services(session: DbSession) -> list[ServiceRead]:
    counts = await service.adoption_counts(session)
    return [_read(s, counts) for s in await service.list_services(session)]


@public.get("/services/{service_id}", summary="共通サービスの詳細", response_model=ServiceRead)
async def get_service(service_id: str, session: DbSession) -> ServiceRead:
    item = await service.get_service(session, service_id)
    return _read(item, await service.adoption_counts(session), await service.vendors_of(session, item.id))


class AdoptionWrite(BaseModel):
    status: AdoptionStatus
    vendor_id: str | None = None
    since: PlausibleDate | None = Field(None, description="利用開始日（1900-01-01〜2100-12-31）")
    renewal_on: PlausibleDate | None = Field(None, description="更改時期（1900-01-01〜2100-12-31）")
    replaced_annual_cost: int | None = Field(None, ge=0, le=MAX_YEN, description="置き換える（置き換えた）システムの年間経費（円）")
    annual_cost: int | None = Field(None, ge=0, le=MAX_YEN, description="現在の年間経費（円）")
    note: str = Field("", max_length=400)
    expected_version: int = Field(0, description="更新するときは読み取った version。新規は 0")


class AdoptionRead(AdoptionWrite):
    # What is stored is shown as it is (rows written before dates were bounded included).
    since: date | None = None
    renewal_on: date | None = Field(None, description="更改時期")
    service_id: str
    service_name: str
    version: int
    updated_by: str
    updated_at: datetime


def _adoption(a, s) -> AdoptionRead:
    return AdoptionRead(service_id=s.id, service_name=s.name, status=a.status, vendor_id=a.vendor_id, since=a.since,
                        renewal_on=a.renewal_on, replaced_annual_cost=a.replaced_annual_cost, annual_cost=a.annual_cost,
                        note=a.note, expected_version=a.version, version=a.version, updated_by=a.updated_by,
                        updated_at=a.updated_at)


@tenant.get("/adoptions", summary="団体の共通サービス利用状況（更改時期・経費を含む。団体の職員のみ）",
            response_model=list[AdoptionRead])
async def list_adoptions(staff: AdoptionReader, session: DbSession) -> list[AdoptionRead]:
    return [_adoption(a, s) for a, s, _ in await service.adoptions_of_tenant(session)]


@tenant.put("/adoptions/{service_id}", summary="利用状況の登録・更新", response_model=AdoptionRead,
             responses=problem_responses(409))
async def put_adoption(service_id: str, body: AdoptionWrite, staff: AdoptionWriter, session: DbSession) -> AdoptionRead:
    adoption = await service.save_adoption(session, service.AdoptionInput(service_id=service_id, **body.model_dump()),
                                           actor=staff.label)
    await audit.record(session, audit.Actor.of_staff(staff),
                       "catalog.adoption.saved", target_type="catalog_adoption", target_id=service_id,
                       details={"status": adoption.status, "version": adoption.version})
    await session.commit()
    item = await service.get_service(session, service_id)
    return _adoption(adoption, item)


# -- デジタル庁: registering and classifying services (twins of /t/{lg_code}/catalog/new and .../edit) ---------

class ServiceWrite(BaseModel):
    name: str = Field(..., min_length=1, max_length=200, pattern=r"\S", description="サービス名")
    domain: str = Field(..., min_length=1, max_length=60, pattern=r"\S", description="分野")
    pattern: Literal["common_a", "common_b", "standard", "individual"] = Field(
        ..., description="共通化のパターン（共通化A・共通化B・標準化・個別開発）")
    burden_category: Literal["common_saas", "dpi", "infrastructure", "municipal"] = Field(
        ..., description="費用負担の区分。標準化・個別開発は municipal（自治体システム）、共通化A・Bはそれ以外")
    lifecycle: Literal["candidate", "pilot", "rollout", "national"] = Field(..., description="段階（候補・実証・展開・全国）")
    owner: str = Field(..., min_length=1, max_length=200, pattern=r"\S", description="所有者・提供者")
    description: str = Field("", max_length=4000)
    annual_cost: int | None = Field(None, strict=True, ge=0, le=MAX_YEN, description="共通サービス全体の年間総経費（円）")
    source: str = Field("", max_length=300, description="出典")


class ServiceCreate(ServiceWrite):
    id: str = Field(..., min_length=1, max_length=60, pattern=r"^[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?$",
                    description="公開の識別名（英小文字・数字・ハイフン）")


class ServiceUpdate(ServiceWrite):
    expected_version: int = Field(..., strict=True, ge=1, le=2**31 - 1, description="読み取ったときの version")


class ServiceEdited(ServiceRead):
    version: int
    updated_by: str
    updated_at: datetime


def _platform_only(staff: StaffContext) -> None:
    """Catalog editing acts only at デジタル庁; for any other organisation the route does not exist."""
    if staff.tenant.lg_code != PLATFORM_LG_CODE:
        raise NotFound("ページが見つかりません。")


async def _edited(session: DbSession, item) -> ServiceEdited:
    read = _read(item, await service.adoption_counts(session), await service.vendors_of(session, item.id))
    return ServiceEdited(**read.model_dump(), version=item.version, updated_by=item.updated_by,
                         updated_at=item.updated_at)


def _input(body: ServiceWrite) -> service.ServiceInput:
    return service.ServiceInput(**body.model_dump(include=set(service.ServiceInput.__dataclass_fields__)))


@tenant.post("/catalog/services", summary="共通サービスのカタログへの登録（デジタル庁）", tags=[EDITING], status_code=201,
             response_model=ServiceEdited, responses=problem_responses(409))
async def create_service(body: ServiceCreate, staff: CatalogEditor, session: DbSession) -> ServiceEdited:
    _platform_only(staff)
    item, _ = await service.save_service(session, _input(body), actor=audit.Actor.of_staff(staff), service_id=body.id)
    await session.commit()
    return await _edited(session, item)


@tenant.put("/catalog/services/{service_id}", summary="共通サービスの更新・分類の変更（デジタル庁）", tags=[EDITING],
            response_model=ServiceEdited, responses=problem_responses(409))
async def update_service(service_id: str, body: ServiceUpdate, staff: CatalogEditor, session: DbSession) -> ServiceEdited:
    _platform_only(staff)
    item, _ = await service.save_service(session, _input(body), actor=audit.Actor.of_staff(staff),
                                         service_id=service_id, expected_version=body.expected_version)
    await session.commit()
    return await _edited(session, item)
