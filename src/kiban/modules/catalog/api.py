"""JSON twins of the catalog pages, and each tenant's adoptions (its own staff and API keys only)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from kiban.core.audit import service as audit
from kiban.core.identity.dependencies import PUBLIC, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.tenancy.dependencies import DbSession
from kiban.kit.openapi import problem_responses
from kiban.kit.validation import MAX_YEN, PlausibleDate
from kiban.modules.catalog import service
from kiban.modules.catalog.models import AdoptionStatus, BurdenCategory, Lifecycle, Pattern

public = APIRouter(prefix="/api/v1/catalog", tags=["共通サービスカタログ"], dependencies=[PUBLIC])
tenant = APIRouter(prefix="/api/v1/t/{lg_code}", tags=["共通サービスの利用状況（団体）"])
AdoptionReader = Annotated[StaffContext, require(Permission.catalog_adoption_read)]
AdoptionWriter = Annotated[StaffContext, require(Permission.catalog_adoption_write)]


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
