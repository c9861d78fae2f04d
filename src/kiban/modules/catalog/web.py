"""Catalog pages: the public catalog and consortia, cost visibility (見える化), デジタル庁's editing,
and each local government's adoptions with its renewal-aware migration plan."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.audit import service as audit
from kiban.core.identity.dependencies import PUBLIC, StaffContext, current_web_session, require
from kiban.core.identity.permissions import Permission
from kiban.core.identity.service import PLATFORM_LG_CODE
from kiban.core.tenancy.dependencies import DbSession
from kiban.kit.csrf import verify_csrf
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.kit.templating import templates
from kiban.kit.validation import parse_date
from kiban.modules.catalog import service
from kiban.modules.catalog.models import (
    AdoptionStatus,
    BurdenCategory,
    Lifecycle,
    Pattern,
)

router = APIRouter(include_in_schema=False)
CatalogEditor = Annotated[StaffContext, require(Permission.catalog_service_manage)]
AdoptionReader = Annotated[StaffContext, require(Permission.catalog_adoption_read)]
AdoptionWriter = Annotated[StaffContext, require(Permission.catalog_adoption_write)]
RENEWAL_SOON_DAYS = 365


def _enum_or_none(enum, value: str | None) -> str | None:
    if not value:
        return None
    try:
        return enum(value).value
    except ValueError:
        raise InvalidInput("絞り込みの条件が正しくありません。一覧から選んでください。") from None


async def _acting_for(request: Request, session) -> str | None:
    """The organisation a signed-in staff member acts for, so public pages link only to staff
    pages that will open for this viewer (anyone else would meet a 404 or a sign-in)."""
    web_session = await current_web_session(request, session)
    if web_session is None or web_session.stage != "active":
        return None
    return web_session.acting_lg_code


# -- public ------------------------------------------------------------------------------------------

@router.get("/catalog", response_class=HTMLResponse, dependencies=[PUBLIC])
async def catalog_page(request: Request, session: DbSession, pattern: str | None = None,
                       domain: str | None = None, lifecycle: str | None = None) -> HTMLResponse:
    pattern, lifecycle = _enum_or_none(Pattern, pattern), _enum_or_none(Lifecycle, lifecycle)
    domains = await service.domains(session)
    if domain and domain not in domains:
        raise InvalidInput("分野が正しくありません。一覧から選んでください。")
    services = await service.list_services(session, pattern=pattern, domain=domain or None, lifecycle=lifecycle)
    return templates.TemplateResponse(request, "catalog/list.html", {
        "services": services, "counts": await service.adoption_counts(session), "domains": domains,
        "patterns": list(Pattern), "lifecycles": list(Lifecycle), "selected": {
            "pattern": pattern, "domain": domain, "lifecycle": lifecycle},
        "statuses": list(AdoptionStatus), "burdens": list(BurdenCategory), "platform": PLATFORM_LG_CODE,
        "may_edit": await _acting_for(request, session) == PLATFORM_LG_CODE})


@router.get("/catalog/{service_id}", response_class=HTMLResponse, dependencies=[PUBLIC])
async def service_page(service_id: str, request: Request, session: DbSession) -> HTMLResponse:
    item = await service.get_service(session, service_id)
    counts = (await service.adoption_counts(session)).get(item.id, {})
    (saving,) = await service.savings(session, [item])
    consortia = [c for c, _ in await service.list_consortia(session)
                 if any(s.service.id == item.id for s in await service.consortium_systems(session, c.id))]
    return templates.TemplateResponse(request, "catalog/detail.html", {
        "item": item, "pattern": Pattern(item.pattern), "burden": BurdenCategory(item.burden_category),
        "lifecycle": Lifecycle(item.lifecycle), "vendors": await service.vendors_of(session, item.id),
        "counts": counts, "statuses": list(AdoptionStatus), "saving": saving, "min_group": service.MIN_GROUP,
        "consortia": consortia, "platform": PLATFORM_LG_CODE,
        "may_edit": await _acting_for(request, session) == PLATFORM_LG_CODE,
        "demo": item.id in await service.demo_service_ids(session)})


@router.get("/consortia", response_class=HTMLResponse, dependencies=[PUBLIC])
async def consortia_page(request: Request, session: DbSession) -> HTMLResponse:
    return templates.TemplateResponse(request, "catalog/consortia.html",
                                      {"consortia": await service.list_consortia(session)})


@router.get("/consortia/{consortium_id}", response_class=HTMLResponse, dependencies=[PUBLIC])
async def consortium_page(consortium_id: str, request: Request, session: DbSession) -> HTMLResponse:
    consortium = await service.get_consortium(session, consortium_id)
    members = await service.consortium_members(session, consortium_id)
    systems = await service.consortium_systems(session, consortium_id)
    return templates.TemplateResponse(request, "catalog/consortium.html", {
        "consortium": consortium, "members": members, "systems": systems,
        "systems_chart": [(s.service.name, s.system.published_users or len(s.user_codes)) for s in systems],
        "secretariat": next((m for m in members if m.code == consortium.secretariat_code), None),
        "population": sum(m.population or 0 for m in members),
        "is_secretariat": await _acting_for(request, session) == consortium.secretariat_code,
        "demo": bool(await service.demo_service_ids(session))})


@router.get("/costs", response_class=HTMLResponse, dependencies=[PUBLIC])
async def national_costs_page(request: Request, session: DbSession) -> HTMLResponse:
    services = await service.list_services(session)
    savings = await service.savings(session, services)
    reduction, organisations = await service.national_reduction(session)
    return templates.TemplateResponse(request, "catalog/costs.html", {
        "savings": savings, "reduction": reduction,
        "chart_items": [(s.service.name, s.saving) for s in savings if s.saving is not None and s.saving > 0], "organisations": organisations, "min_group": service.MIN_GROUP,
        "target": service.REDUCTION_TARGET, "counts": await service.adoption_counts(session),
        "demo": bool(await service.demo_service_ids(session))})


# -- デジタル庁: editing the catalog ------------------------------------------------------------------------

def _platform_only(staff: StaffContext) -> None:
    if staff.tenant.lg_code != PLATFORM_LG_CODE:
        raise NotFound("ページが見つかりません。")


def _errs(errors) -> dict[str, str]:
    return {e["field"]: e["message"] for e in errors or []}


def _values(item) -> dict:
    return {k: getattr(item, k) for k in service.ServiceInput.__dataclass_fields__}


async def _form_context(session, staff, *, error=None, errors=()) -> dict:
    return {"tenant": staff.tenant, "patterns": list(Pattern), "burdens": list(BurdenCategory),
            "lifecycles": list(Lifecycle), "domains": await service.domains(session), "error": error,
            "errors": list(errors), "errs": _errs(errors)}


async def _edit_page(request, session, staff, service_id, *, error=None, errors=(), values=None,
                     status=200) -> HTMLResponse:
    item = await service.get_service(session, service_id)
    return templates.TemplateResponse(request, "catalog/edit.html", {
        **await _form_context(session, staff, error=error, errors=errors), "item": item,
        "v": values if values is not None else _values(item),
        "vendors": await service.vendors_of(session, item.id), "pattern": Pattern(item.pattern),
        "author": service.author_label}, status_code=status)


@router.get("/t/{lg_code}/catalog/new", response_class=HTMLResponse)
async def new_service_page(request: Request, session: DbSession, staff: CatalogEditor) -> HTMLResponse:
    _platform_only(staff)
    return templates.TemplateResponse(request, "catalog/new.html", {
        **await _form_context(session, staff), "v": {"pattern": Pattern.common_b.value,
                                                     "burden_category": BurdenCategory.common_saas.value,
                                                     "lifecycle": Lifecycle.candidate.value}})


@router.post("/t/{lg_code}/catalog/new", dependencies=[Depends(verify_csrf)])
async def create_service(request: Request, session: DbSession, staff: CatalogEditor,
                         service_id: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
                         domain: Annotated[str, Form()] = "", pattern: Annotated[str, Form()] = "",
                         burden_category: Annotated[str, Form()] = "", lifecycle: Annotated[str, Form()] = "",
                         owner: Annotated[str, Form()] = "", annual_cost: Annotated[str, Form()] = "",
                         description: Annotated[str, Form()] = "", source: Annotated[str, Form()] = "") -> Response:
    _platform_only(staff)
    data = service.ServiceInput(name=name, domain=domain, pattern=pattern, burden_category=burden_category,
                                lifecycle=lifecycle, owner=owner, annual_cost=annual_cost, description=description,
                                source=source)
    try:
        item, _ = await service.save_service(session, data, actor=audit.Actor.of_staff(staff), service_id=service_id)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        return templates.TemplateResponse(request, "catalog/new.html", {
            **await _form_context(session, staff, error=exc.detail, errors=exc.errors),
            "v": {**data.__dict__, "service_id": service_id}}, status_code=exc.status)
    await session.commit()
    return RedirectResponse(f"/catalog/{item.id}", status_code=303)


@router.get("/t/{lg_code}/catalog/{service_id}/edit", response_class=HTMLResponse)
async def edit_service_page(service_id: str, request: Request, session: DbSession, staff: CatalogEditor) -> HTMLResponse:
    _platform_only(staff)
    return await _edit_page(request, session, staff, service_id)


@router.post("/t/{lg_code}/catalog/{service_id}/edit", dependencies=[Depends(verify_csrf)])
async def edit_service(service_id: str, request: Request, session: DbSession, staff: CatalogEditor,
                       lifecycle: Annotated[str, Form()] = "", description: Annotated[str, Form()] = "",
                       annual_cost: Annotated[str, Form()] = "", owner: Annotated[str, Form()] = "",
                       pattern: Annotated[str, Form()] = "", burden_category: Annotated[str, Form()] = "",
                       expected_version: Annotated[int, Form()] = 0) -> Response:
    """Pattern and cost-burden category left out of the form keep what is stored."""
    _platform_only(staff)
    item = await service.get_service(session, service_id)
    data = service.ServiceInput.of(item, lifecycle=lifecycle, description=description, annual_cost=annual_cost,
                                   owner=owner, pattern=pattern or item.pattern,
                                   burden_category=burden_category or item.burden_category)
    try:
        if expected_version < 1:
            raise Conflict("ほかの職員が先に更新しました。最新の内容を確認してから、もう一度保存してください。")
        item, _ = await service.save_service(session, data, actor=audit.Actor.of_staff(staff), service_id=service_id,
                                             expected_version=expected_version)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        return await _edit_page(request, session, staff, service_id, error=exc.detail, errors=exc.errors,
                                values=data.__dict__, status=exc.status)
    await session.commit()
    return RedirectResponse(f"/catalog/{item.id}", status_code=303)


@router.post("/t/{lg_code}/catalog/{service_id}/vendors", dependencies=[Depends(verify_csrf)])
async def add_vendor(service_id: str, request: Request, session: DbSession, staff: CatalogEditor,
                     name: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "") -> Response:
    _platform_only(staff)
    try:
        vendor = await service.add_vendor(session, service_id, name, note)
    except InvalidInput as exc:
        await session.rollback()
        return await _edit_page(request, session, staff, service_id, error=exc.detail, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "catalog.vendor.added", target_type="catalog_vendor",
                       target_id=vendor.id, details={"service": service_id, "name": vendor.name})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/catalog/{service_id}/edit", status_code=303)


# -- a local government's adoptions --------------------------------------------------------------------------

@router.get("/t/{lg_code}/adoptions", response_class=HTMLResponse)
async def adoptions_page(request: Request, session: DbSession, staff: AdoptionReader,
                         saved: str | None = None) -> HTMLResponse:
    rows = await service.adoptions_of_tenant(session)
    today = date.today()
    soon = today + timedelta(days=RENEWAL_SOON_DAYS)
    renewals = sorted((r for r in rows if r[0].renewal_on and r[0].status != AdoptionStatus.ended.value),
                      key=lambda r: r[0].renewal_on)
    plan: dict[int, list] = {}
    for row in renewals:
        renewal = row[0].renewal_on
        fiscal_year = renewal.year if renewal.month >= 4 else renewal.year - 1
        plan.setdefault(fiscal_year, []).append(row)
    return templates.TemplateResponse(request, "catalog/adoptions.html", {
        "tenant": staff.tenant, "staff": staff, "rows": rows, "renewals": renewals, "plan": sorted(plan.items()),
        "today": today, "soon": soon, "reduction": service.tenant_reduction(rows, staff.tenant.name),
        "target": service.REDUCTION_TARGET, "saved": saved,
        "services": await service.list_services(session),
        "may_edit": staff.can(Permission.catalog_adoption_write),
        "demo": any(a.note in (service.DEMO_NOTE, service.LEGACY_DEMO_NOTE) for a, _, _ in rows)})


async def _adoption_form(request, session, staff, service_id, *, error=None, values=None, status=200) -> HTMLResponse:
    item = await service.get_service(session, service_id)
    adoption = await service.adoption_of_tenant(session, service_id)
    return templates.TemplateResponse(request, "catalog/adoption_form.html", {
        "tenant": staff.tenant, "item": item, "adoption": adoption, "values": values,
        "vendors": await service.vendors_of(session, item.id), "statuses": list(AdoptionStatus),
        "error": error, "author": service.author_label,
        "demo": adoption is not None and adoption.note in (service.DEMO_NOTE, service.LEGACY_DEMO_NOTE)},
        status_code=status)


@router.get("/t/{lg_code}/adoptions/new")
async def new_adoption(session: DbSession, staff: AdoptionWriter, service_id: Annotated[str, Query(alias="service")] = "") -> Response:
    item = await service.get_service(session, service_id)
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/adoptions/{item.id}", status_code=303)


@router.get("/t/{lg_code}/adoptions/{service_id}", response_class=HTMLResponse)
async def adoption_form(service_id: str, request: Request, session: DbSession, staff: AdoptionWriter) -> HTMLResponse:
    return await _adoption_form(request, session, staff, service_id)


def _date(value: str, what: str) -> date | None:
    """A typed date within 1900..2100 (a year-1 date once broke the adoptions page)."""
    return parse_date(value, what)


@router.post("/t/{lg_code}/adoptions/{service_id}", dependencies=[Depends(verify_csrf)])
async def save_adoption(service_id: str, request: Request, session: DbSession, staff: AdoptionWriter,
                        status: Annotated[str, Form()] = "", vendor_id: Annotated[str, Form()] = "",
                        since: Annotated[str, Form()] = "", renewal_on: Annotated[str, Form()] = "",
                        replaced_annual_cost: Annotated[str, Form()] = "", annual_cost: Annotated[str, Form()] = "",
                        note: Annotated[str, Form()] = "", expected_version: Annotated[int, Form()] = 0) -> Response:
    values = {"status": status, "vendor_id": vendor_id, "since": since, "renewal_on": renewal_on,
              "replaced_annual_cost": replaced_annual_cost, "annual_cost": annual_cost, "note": note}
    try:
        data = service.AdoptionInput(
            service_id=service_id, status=status, vendor_id=vendor_id or None,
            since=_date(since, "利用開始日"), renewal_on=_date(renewal_on, "更改時期"),
            replaced_annual_cost=service.parse_yen(replaced_annual_cost, "置き換える（置き換えた）システムの年間経費"),
            annual_cost=service.parse_yen(annual_cost, "現在の年間経費"), note=note, expected_version=expected_version)
        adoption = await service.save_adoption(session, data, actor=staff.label)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        return await _adoption_form(request, session, staff, service_id, error=exc.detail, values=values,
                                    status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "catalog.adoption.saved", target_type="catalog_adoption",
                       target_id=service_id, details={"status": adoption.status, "version": adoption.version})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/adoptions?saved={service_id}", status_code=303)
