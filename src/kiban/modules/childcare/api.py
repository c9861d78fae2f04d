"""JSON twins of the 保活 pages (/api/v1/...): the public search and 待機児童, the resident's
application and its status, the operator's facilities and monthly reports and the employer's
就労証明書, and municipal staff's applications, referrals, rules, allocation runs and reports.

The same service functions and rules as the pages; errors are problem+json with Japanese
``detail`` and, for input, ``errors[]`` per field. Writes sent with a session cookie must be JSON."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from kiban.core.audit import service as audit
from kiban.core.identity.api_admin import WRITE_ERRORS, JsonWrite
from kiban.core.identity.dependencies import PUBLIC, CurrentResident, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.identity.schemas_admin import NoFields
from kiban.core.identity.web_business import CurrentBusiness
from kiban.core.tenancy.dependencies import CurrentTenant, DbSession
from kiban.kit.db import utcnow
from kiban.kit.openapi import problem_responses
from kiban.modules.childcare import reports, rules as rulebook, service
from kiban.modules.childcare.models import AGE_CLASSES, ApplicationStatus

public_router = APIRouter(prefix="/api/v1", tags=["保活（公開）"])
resident_router = APIRouter(prefix="/api/v1/me/childcare", tags=["保活（住民本人）"])
business_router = APIRouter(prefix="/api/v1/business/childcare", tags=["保育施設・就労証明書（事業者）"])
tenant_router = APIRouter(prefix="/api/v1/t/{lg_code}/childcare", tags=["保育の利用調整（職員）"])
Reader = Annotated[StaffContext, require(Permission.childcare_application_read)]
ReportReader = Annotated[StaffContext, require(Permission.childcare_report_read)]
Manager = Annotated[StaffContext, require(Permission.childcare_allocation_manage)]
CONFLICT = problem_responses(409, 415)


# -- schemas --------------------------------------------------------------------------------------

class FacilityRead(BaseModel):
    lg_code: str
    municipality: str
    id: str
    name: str
    kind: str
    kind_label: str
    address: str
    opens_at: str
    closes_at: str
    extended_care: bool
    temporary_care: bool
    capacity: list[int] = Field(description="0〜5歳児クラスの定員")
    vacancy: list[int] = Field(description="0〜5歳児クラスの空き")
    outside_quota: list[int | None] = Field(
        description="0〜5歳児クラスの管外受入枠（ほかの市区町村にお住まいの方に用意した空き。null は制限なし）")
    version: int
    source: str


def _facility(f, names: dict[str, str]) -> FacilityRead:
    return FacilityRead(lg_code=f.lg_code, municipality=names.get(f.lg_code, ""), id=f.id, name=f.name, kind=f.kind,
                        kind_label=f.kind_label, address=f.address, opens_at=f.opens_at, closes_at=f.closes_at,
                        extended_care=f.extended_care, temporary_care=f.temporary_care,
                        capacity=[f.capacity(a) for a in AGE_CLASSES], vacancy=[f.vacancy(a) for a in AGE_CLASSES],
                        outside_quota=f.outside_quotas, version=f.version, source=f.source)


async def _names(session, codes) -> dict[str, str]:
    from kiban.core.registry import service as registry_service
    return {c: o.name for c, o in (await registry_service.organizations_by_code(session, sorted(codes))).items()}


class SearchResult(BaseModel):
    total: int
    limit: int
    items: list[FacilityRead]


class WaitingRowRead(BaseModel):
    age: int
    applied: int
    placed: int
    unplaced: int
    excluded: int = Field(description="特定の施設のみを希望（国の定義で待機児童に含めない）")
    waiting: int


class WaitingRead(BaseModel):
    lg_code: str
    municipality: str
    run: int | None
    published_at: datetime | None
    rows: list[WaitingRowRead]
    csv_url: str


class StepRead(BaseModel):
    label: str
    state: str
    state_label: str


class CertificateRead(BaseModel):
    lg_code: str
    id: str
    receipt_no: str
    guardian_index: int
    guardian_name: str
    employer_name: str
    status: str
    hours_per_week: int | None
    days_per_week: int | None
    employment_type: str
    certified_at: datetime | None


def _certificate(c) -> CertificateRead:
    return CertificateRead(lg_code=c.lg_code, id=c.id, receipt_no=c.receipt_no, guardian_index=c.guardian_index,
                           guardian_name=c.guardian_name, employer_name=c.employer_name, status=c.status,
                           hours_per_week=c.hours_per_week, days_per_week=c.days_per_week,
                           employment_type=c.employment_type, certified_at=c.certified_at)


class ApplicationRead(BaseModel):
    lg_code: str
    receipt_no: str
    guardian_name: str
    status: str
    status_label: str
    submitted_at: datetime
    children: list[dict[str, Any]]
    preferences: list[dict[str, Any]]
    household: dict[str, Any]
    same_facility: bool
    results: dict[str, Any] = Field(description="お子さんごとの結果と理由（公開後）")
    steps: list[StepRead]
    certificates: list[CertificateRead]


async def _application(session, application) -> ApplicationRead:
    certificates = await service.certificates_of(session, application)
    return ApplicationRead(
        lg_code=application.lg_code, receipt_no=application.receipt_no, guardian_name=application.guardian_name,
        status=application.status, status_label=ApplicationStatus(application.status).label,
        submitted_at=application.submitted_at, children=application.children, preferences=application.preferences,
        household=application.household, same_facility=application.same_facility, results=application.results,
        steps=[StepRead(label=s.label, state=s.state, state_label=s.state_label)
               for s in service.steps(application, certificates)],
        certificates=[_certificate(c) for c in certificates])


class ChildWrite(BaseModel):
    name: str = Field(max_length=100)
    birth_date: date


class GuardianWrite(BaseModel):
    situation: str = Field(description="就労 employed / illness / disability / care / pregnancy / job_seeking / study / disaster")
    hours_per_week: int | None = None
    employer_corporate_number: str = ""
    employer_name: str = ""


class PreferenceWrite(BaseModel):
    lg_code: str
    facility_id: str


class ApplicationWrite(BaseModel):
    residence: str = Field(description="お住まいの市区町村（団体コードか名称）")
    guardian_name: str = Field(max_length=100)
    email: str = ""
    children: list[ChildWrite] = Field(max_length=3)
    preferences: list[PreferenceWrite] = Field(max_length=10, description="希望順")
    guardians: list[GuardianWrite] = Field(max_length=2)
    adjustments: list[str] = Field(default_factory=list, max_length=10)
    same_facility: bool = True
    specific_only: bool = False
    form_token: str = Field(description="送り直しても申込みが二重にならないための、申込みごとの一意な文字列（16〜64文字）")

    def form(self) -> dict:
        out: dict[str, Any] = {"residence": self.residence, "guardian_name": self.guardian_name, "email": self.email,
                               "preference": [f"{p.lg_code}:{p.facility_id}" for p in self.preferences],
                               "adjustments": self.adjustments, "same_facility": "1" if self.same_facility else "",
                               "specific_only": "1" if self.specific_only else "", "form_token": self.form_token}
        for i, child in enumerate(self.children, start=1):
            out[f"child{i}_name"], out[f"child{i}_birth"] = child.name, child.birth_date.isoformat()
        for i, g in enumerate(self.guardians, start=1):
            out[f"guardian{i}_situation"] = g.situation
            out[f"guardian{i}_hours"] = "" if g.hours_per_week is None else str(g.hours_per_week)
            out[f"guardian{i}_employer_number"] = g.employer_corporate_number
            out[f"guardian{i}_employer_name"] = g.employer_name
        return out


# -- public ---------------------------------------------------------------------------------------

@public_router.get("/childcare/facilities", summary="保育施設をさがす（市区町村をまたいで）", response_model=SearchResult,
                   dependencies=[PUBLIC])
async def search(session: DbSession, municipality: str = "", age: str = "", vacancy_only: bool = False,
                 opens_by: str = "", closes_after: str = "", kind: str = "", name: str = "") -> SearchResult:
    query = await service.search_query(session, {"municipality": municipality, "age": age,
                                                 "vacancy_only": "1" if vacancy_only else "", "opens_by": opens_by,
                                                 "closes_after": closes_after, "kind": kind, "name": name})
    found, total = await service.search_facilities(session, query)
    names = await _names(session, {f.lg_code for f in found})
    return SearchResult(total=total, limit=service.SEARCH_LIMIT, items=[_facility(f, names) for f in found])


@public_router.get("/t/{lg_code}/childcare/waiting", summary="待機児童数（公開した利用調整の結果から）",
                   response_model=WaitingRead, dependencies=[PUBLIC])
async def waiting(session: DbSession, tenant: CurrentTenant) -> WaitingRead:
    run, rows = await service.waiting_children(session)
    return WaitingRead(lg_code=tenant.lg_code, municipality=tenant.name, run=run.number if run else None,
                       published_at=run.published_at if run else None,
                       rows=[WaitingRowRead(**r.__dict__) for r in rows],
                       csv_url=f"/t/{tenant.lg_code}/childcare/waiting.csv")


# -- the resident ---------------------------------------------------------------------------------

@resident_router.get("", summary="わたしの保活（申込みと進み具合）", response_model=list[ApplicationRead])
async def my_applications(session: DbSession, resident: CurrentResident) -> list[ApplicationRead]:
    return [await _application(session, a) for a in await service.my_applications(session, resident.principal.id)]


@resident_router.post("/applications", summary="保育施設の利用申込み（1回で複数の市区町村の施設に）", status_code=201,
                      response_model=ApplicationRead, responses=WRITE_ERRORS)
async def apply(body: ApplicationWrite, session: DbSession, resident: CurrentResident, _: JsonWrite) -> ApplicationRead:
    data = await service.application_input(session, body.form(), today=utcnow().date())
    application = await service.submit_application(session, resident.principal, data)
    await session.commit()
    return await _application(session, application)


@resident_router.get("/{receipt_no}", summary="申込みの状況・結果と理由", response_model=ApplicationRead)
async def my_application(receipt_no: str, session: DbSession, resident: CurrentResident) -> ApplicationRead:
    return await _application(session, await service.my_application(session, resident.principal.id, receipt_no))


# -- operators and employers ----------------------------------------------------------------------

class MonthlyReportRead(BaseModel):
    id: str
    facility_lg_code: str
    facility_id: str
    facility_name: str
    month: str
    totals: dict[str, int]
    staff_count: int
    staffing: dict[str, Any]
    residences: list[str]
    submitted_at: datetime
    receipt: str = Field(description="署名した内容（正規化した JSON）")
    signature: str = Field(description="Kiban の署名（HMAC-SHA256）")
    signature_valid: bool


def _report(r) -> MonthlyReportRead:
    return MonthlyReportRead(id=r.id, facility_lg_code=r.lg_code, facility_id=r.facility_id, facility_name=r.facility_name,
                             month=r.month, totals=r.totals, staff_count=r.staff_count, staffing=r.staffing,
                             residences=r.residences, submitted_at=r.submitted_at, receipt=r.receipt,
                             signature=r.signature, signature_valid=reports.verify(r.receipt, r.signature))


class BusinessRead(BaseModel):
    corporate_number: str
    facilities: list[FacilityRead]
    certificates: list[CertificateRead]
    reports: list[MonthlyReportRead]


@business_router.get("", summary="運営する施設・提出した月次報告・就労証明書の依頼", response_model=BusinessRead)
async def business(session: DbSession, principal: CurrentBusiness) -> BusinessRead:
    number = await service.corporate_number_of(session, principal)
    facilities = await service.operator_facilities(session, number)
    names = await _names(session, {f.lg_code for f in facilities})
    return BusinessRead(corporate_number=number, facilities=[_facility(f, names) for f in facilities],
                        certificates=[_certificate(c) for c in await service.certificates_for_employer(session, number)],
                        reports=[_report(r) for r in await service.operator_reports(session, number)])


class CertificateWrite(BaseModel):
    hours_per_week: int
    days_per_week: int
    employment_type: str = Field(description="regular（正社員）/ contract / part_time / self_employed")


@business_router.post("/certificates/{lg_code}/{certificate_id}", summary="就労証明書を提出する",
                      response_model=CertificateRead, responses=CONFLICT)
async def certify(lg_code: str, certificate_id: str, body: CertificateWrite, session: DbSession,
                  principal: CurrentBusiness, _: JsonWrite) -> CertificateRead:
    number = await service.corporate_number_of(session, principal)
    values = service.certificate_values({k: str(v) for k, v in body.model_dump().items()})
    certificate = await service.certify(session, principal, number, lg_code, certificate_id, values)
    await session.commit()
    return _certificate(certificate)


class FacilityWrite(BaseModel):
    name: str = Field(max_length=200)
    kind: str = Field(description="licensed（認可保育所）/ kodomoen / small / family / workplace")
    address: str = ""
    phone: str = ""
    opens_at: str = Field(description="07:30 の形")
    closes_at: str
    extended_care: bool = False
    temporary_care: bool = False
    capacity: list[int] = Field(min_length=6, max_length=6, description="0〜5歳児クラスの定員")
    vacancy: list[int] = Field(min_length=6, max_length=6, description="0〜5歳児クラスの空き")

    def form(self) -> dict:
        out: dict[str, Any] = {k: getattr(self, k) for k in ("name", "kind", "address", "phone", "opens_at", "closes_at")}
        out["extended_care"] = "1" if self.extended_care else ""
        out["temporary_care"] = "1" if self.temporary_care else ""
        for a in AGE_CLASSES:
            out[f"capacity_{a}"], out[f"vacancy_{a}"] = str(self.capacity[a]), str(self.vacancy[a])
        return out


class FacilityCreate(FacilityWrite):
    municipality: str = Field(description="所在地の市区町村（団体コードか名称）")


class FacilityUpdate(FacilityWrite):
    expected_version: int


@business_router.post("/facilities", summary="施設を登録する", status_code=201, response_model=FacilityRead,
                      responses=WRITE_ERRORS)
async def register(body: FacilityCreate, session: DbSession, principal: CurrentBusiness, _: JsonWrite) -> FacilityRead:
    from kiban.core.registry import service as registry_service
    number = await service.corporate_number_of(session, principal)
    lg_code = await registry_service.resolve_lg_code_input(session, body.municipality, field="municipality",
                                                           label="所在地の市区町村")
    facility = await service.register_facility(session, principal, number, lg_code, service.facility_values(body.form()))
    await session.commit()
    return _facility(facility, await _names(session, {facility.lg_code}))


@business_router.get("/facilities/{lg_code}/{facility_id}", summary="運営する施設の情報（編集画面と同じ内容）",
                     response_model=FacilityRead)
async def operator_facility(lg_code: str, facility_id: str, session: DbSession,
                            principal: CurrentBusiness) -> FacilityRead:
    number = await service.corporate_number_of(session, principal)
    found = await service.operator_facility(session, number, lg_code, facility_id)
    return _facility(found, await _names(session, {found.lg_code}))


@business_router.put("/facilities/{lg_code}/{facility_id}", summary="施設の情報（定員・空き・時間）を更新する",
                     response_model=FacilityRead, responses=CONFLICT)
async def update(lg_code: str, facility_id: str, body: FacilityUpdate, session: DbSession, principal: CurrentBusiness,
                 _: JsonWrite) -> FacilityRead:
    number = await service.corporate_number_of(session, principal)
    facility = await service.operator_facility(session, number, lg_code, facility_id)
    await service.update_facility(session, principal, facility, service.facility_values(body.form()), body.expected_version)
    await session.commit()
    return _facility(facility, await _names(session, {facility.lg_code}))


class ReportRow(BaseModel):
    residence: str = Field(description="居住地の市区町村（団体コードか名称）")
    children: list[int] = Field(min_length=6, max_length=6, description="0〜5歳児クラスの人数")
    attendance_days: int = 0


class ReportWrite(BaseModel):
    month: str = Field(description="2026-11 の形")
    staff_count: int
    rows: list[ReportRow] = Field(max_length=5)

    def form(self) -> dict:
        out: dict[str, Any] = {"month": self.month, "staff_count": str(self.staff_count)}
        for i, row in enumerate(self.rows, start=1):
            out[f"residence{i}"], out[f"attendance{i}"] = row.residence, str(row.attendance_days)
            for a in AGE_CLASSES:
                out[f"age{i}_{a}"] = str(row.children[a])
        return out


@business_router.post("/facilities/{lg_code}/{facility_id}/reports", summary="月次報告を提出する（月に一度）",
                      status_code=201, response_model=MonthlyReportRead, responses=CONFLICT)
async def submit_report(lg_code: str, facility_id: str, body: ReportWrite, session: DbSession,
                        principal: CurrentBusiness, _: JsonWrite) -> MonthlyReportRead:
    number = await service.corporate_number_of(session, principal)
    facility = await service.operator_facility(session, number, lg_code, facility_id)
    data = await service.report_input(session, body.form())
    report = await service.submit_report(session, principal, number, facility, data)
    await session.commit()
    return _report(report)


@business_router.get("/reports/{report_id}", summary="月次報告の受領証（署名つき）", response_model=MonthlyReportRead)
async def receipt(report_id: str, session: DbSession, principal: CurrentBusiness) -> MonthlyReportRead:
    number = await service.corporate_number_of(session, principal)
    return _report(await service.operator_report(session, number, report_id))


# -- municipal staff ------------------------------------------------------------------------------

class ReferralRead(BaseModel):
    residence_lg_code: str
    residence_name: str
    receipt_no: str
    facility_id: str
    facility_name: str
    rank: int
    age_classes: str
    outcome: str


class OverviewRead(BaseModel):
    applications: list[ApplicationRead]
    referrals: list[ReferralRead]
    facilities: list[FacilityRead]
    rule_version: int | None


@tenant_router.get("", summary="申込み・広域利用の協議・区域内の施設", response_model=OverviewRead)
async def overview(session: DbSession, staff: Reader) -> OverviewRead:
    names = {staff.tenant.lg_code: staff.tenant.name}
    current = await service.current_rules(session)
    return OverviewRead(
        applications=[await _application(session, a) for a in await service.applications_here(session)],
        referrals=[ReferralRead(**{k: getattr(r, k) for k in ReferralRead.model_fields})
                   for r in await service.referrals_here(session)],
        facilities=[_facility(f, names) for f in await service.facilities_here(session)],
        rule_version=current.number if current else None)


@tenant_router.get("/facilities/{facility_id}", summary="区域内の施設（管外受入枠つき）", response_model=FacilityRead)
async def facility(facility_id: str, session: DbSession, staff: Reader) -> FacilityRead:
    found = await service.facility_here(session, facility_id)
    return _facility(found, {staff.tenant.lg_code: staff.tenant.name})


class OutsideQuotaWrite(BaseModel):
    outside_quota: list[int | None] = Field(
        min_length=6, max_length=6,
        description="0〜5歳児クラスの管外受入枠（0〜そのクラスの定員。null は制限なし）")


@tenant_router.put("/facilities/{facility_id}/outside-quota", summary="施設の管外受入枠を設定する（広域利用）",
                   response_model=FacilityRead, responses=WRITE_ERRORS)
async def facility_quota(facility_id: str, body: OutsideQuotaWrite, session: DbSession, staff: Manager,
                         _: JsonWrite) -> FacilityRead:
    found = await service.facility_here(session, facility_id)
    form = {f"outside_quota_{a}": "" if q is None else str(q) for a, q in enumerate(body.outside_quota)}
    quotas = service.outside_quota_values(form, found)
    await service.set_outside_quota(session, audit.Actor.of_staff(staff), found, quotas)
    await session.commit()
    return _facility(found, {staff.tenant.lg_code: staff.tenant.name})


class PointsRead(BaseModel):
    total: int
    basic: int
    adjustment: int
    lines: list[str]


class StaffApplicationRead(ApplicationRead):
    points: PointsRead | None
    rule_version: int | None


@tenant_router.get("/applications/{receipt_no}", summary="申込みと指数の内訳", response_model=StaffApplicationRead)
async def application(receipt_no: str, session: DbSession, staff: Reader) -> StaffApplicationRead:
    found = await service.application_here(session, receipt_no)
    current = await service.current_rules(session)
    scored = service.application_points(current.rules, found, await service.certificates_of(session, found)) if current else None
    await audit.record(session, audit.Actor.of_staff(staff), "childcare.application.viewed",
                       target_type="childcare_application", target_id=found.receipt_no, subject_id=found.principal_id,
                       purpose="利用調整")
    await session.commit()
    base = await _application(session, found)
    return StaffApplicationRead(**base.model_dump(), rule_version=current.number if current else None,
                                points=PointsRead(total=scored.total, basic=scored.basic, adjustment=scored.adjustment,
                                                  lines=list(scored.lines)) if scored else None)


class RuleVersionRead(BaseModel):
    number: int
    name: str
    based_on: str
    rules: dict[str, Any]
    description: list[list[str]]
    created_by: str
    created_at: datetime


class PreviewRow(BaseModel):
    household: str
    points: PointsRead


class RulesRead(BaseModel):
    versions: list[RuleVersionRead]
    presets: dict[str, dict[str, Any]]
    preview: list[PreviewRow]


def _preview(rules: dict) -> list[PreviewRow]:
    return [PreviewRow(household=label, points=PointsRead(total=p.total, basic=p.basic, adjustment=p.adjustment,
                                                          lines=list(p.lines))) for label, p in rulebook.preview(rules)]


def _version(v) -> RuleVersionRead:
    return RuleVersionRead(number=v.number, name=v.name, based_on=v.based_on, rules=v.rules,
                           description=[list(pair) for pair in rulebook.describe(v.rules)], created_by=v.created_by,
                           created_at=v.created_at)


@tenant_router.get("/rules", summary="利用調整基準の版（いまの版の見本世帯の指数つき）", response_model=RulesRead)
async def rules(session: DbSession, staff: Manager) -> RulesRead:
    versions = await service.rule_versions(session)
    return RulesRead(versions=[_version(v) for v in versions], presets=rulebook.PRESETS,
                     preview=_preview(versions[0].rules) if versions else [])


class RulesWrite(BaseModel):
    name: str = Field(default="", max_length=200, description="版の名前（preview では不要）")
    preset: str | None = Field(default=None, description="例から作るとき: example_sum / example_min（ほかの項目は無視）")
    fields: dict[str, Any] = Field(default_factory=dict, description="編集画面と同じ項目（combine, employment, situation_*, "
                                                                     "absent, adjustment_*, tie_breaks, sibling_policy ...）")
    note: str = ""


@tenant_router.post("/rules/preview", summary="保存せずに見本の世帯で試算する", response_model=list[PreviewRow],
                    responses=WRITE_ERRORS)
async def rules_preview(body: RulesWrite, session: DbSession, staff: Manager, _: JsonWrite) -> list[PreviewRow]:
    chosen = rulebook.preset(body.preset)["rules"] if body.preset else rulebook.from_form(body.fields)
    return _preview(chosen)


@tenant_router.post("/rules", summary="利用調整基準の新しい版を保存する", status_code=201, response_model=RuleVersionRead,
                    responses=WRITE_ERRORS)
async def rules_save(body: RulesWrite, session: DbSession, staff: Manager, _: JsonWrite) -> RuleVersionRead:
    if body.preset:
        chosen = rulebook.preset(body.preset)
        version = await service.save_rules(session, audit.Actor.of_staff(staff), chosen["rules"], name=chosen["name"],
                                           based_on=chosen["based_on"])
    else:
        version = await service.save_rules(session, audit.Actor.of_staff(staff), rulebook.from_form(body.fields),
                                           name=body.name, note=body.note)
    await session.commit()
    return _version(version)


class RunRead(BaseModel):
    number: int
    rule_version: int
    mode: str
    summary: dict[str, Any]
    result: dict[str, Any] | None = None
    created_by: str
    created_at: datetime
    published_by: str
    published_at: datetime | None


def _run(r, full: bool = False) -> RunRead:
    return RunRead(number=r.number, rule_version=r.rule_version, mode=r.mode, summary=r.summary,
                   result=r.result if full else None, created_by=r.created_by, created_at=r.created_at,
                   published_by=r.published_by, published_at=r.published_at)


class AllocationRead(BaseModel):
    waiting_applications: int
    runs: list[RunRead]


@tenant_router.get("/allocation", summary="利用調整の試行と公開の一覧", response_model=AllocationRead)
async def allocation(session: DbSession, staff: Reader) -> AllocationRead:
    return AllocationRead(waiting_applications=len(await service.waiting_applications(session)),
                          runs=[_run(r) for r in await service.runs(session)])


class RunWrite(BaseModel):
    rule_version: int = Field(ge=1, le=1_000_000, description="使う基準の版番号")
    mode: str = Field(default="default", description="default（受入保留方式）/ exact（CP-SAT）")


@tenant_router.post("/allocation", summary="利用調整を試行する（公開するまでだれにも知らされない）", status_code=201,
                    response_model=RunRead, responses=WRITE_ERRORS)
async def run(body: RunWrite, session: DbSession, staff: Manager, _: JsonWrite) -> RunRead:
    created = await service.run_allocation(session, audit.Actor.of_staff(staff), body.rule_version, body.mode)
    await session.commit()
    return _run(created, full=True)


def _number(raw: str) -> int:
    from kiban.kit.errors import NotFound
    if not raw.isdigit() or len(raw) > 9:
        raise NotFound("この利用調整の結果は見つかりませんでした。")
    return int(raw)


@tenant_router.get("/allocation/{number}", summary="利用調整の結果（児童ごとの結果と理由）", response_model=RunRead)
async def run_read(number: str, session: DbSession, staff: Reader) -> RunRead:
    return _run(await service.get_run(session, _number(number)), full=True)


@tenant_router.post("/allocation/{number}/publish", summary="利用調整の結果を公開する（変更できなくなる）",
                    response_model=RunRead, responses=CONFLICT)
async def publish(number: str, body: NoFields, session: DbSession, staff: Manager, _: JsonWrite) -> RunRead:
    published = await service.publish_run(session, audit.Actor.of_staff(staff), _number(number))
    await session.commit()
    return _run(published, full=True)


class PartRead(BaseModel):
    report_id: str
    facility_lg_code: str
    facility_id: str
    facility_name: str
    month: str
    children: dict[str, int]
    attendance_days: int
    benefit_yen: int | None
    benefit_detail: dict[str, Any]


class HeaderRead(BaseModel):
    id: str
    facility_id: str
    facility_name: str
    month: str
    totals: dict[str, int]
    staff_count: int
    staffing: dict[str, Any]


class ReportsRead(BaseModel):
    parts: list[PartRead] = Field(description="住民の分（在籍・出席・施設型給付費）")
    facilities: list[HeaderRead] = Field(description="区域内の施設の報告（合計と保育士の配置）")
    price_table: int | None


@tenant_router.get("/reports", summary="施設の月次報告（住民の分と区域内の施設の分）", response_model=ReportsRead)
async def reports_read(session: DbSession, staff: ReportReader) -> ReportsRead:
    table = await service.prices(session)
    return ReportsRead(
        parts=[PartRead(**{k: getattr(p, k) for k in PartRead.model_fields}) for p in await service.report_parts_here(session)],
        facilities=[HeaderRead(**{k: getattr(h, k) for k in HeaderRead.model_fields}) for h in await service.reports_here(session)],
        price_table=table.number if table else None)


class PricesRead(BaseModel):
    number: int | None
    name: str
    bands: list[dict[str, Any]]
    example: bool = Field(description="まだ登録がなく、例の数字を返しているとき true")


@tenant_router.get("/prices", summary="公定価格（定員区分ごとの単価）", response_model=PricesRead)
async def prices(session: DbSession, staff: Manager) -> PricesRead:
    table = await service.prices(session)
    if table is None:
        return PricesRead(number=None, name="例（実際の公定価格ではありません）", bands=reports.EXAMPLE_BANDS, example=True)
    return PricesRead(number=table.number, name=table.name, bands=table.bands, example=False)


class PricesWrite(BaseModel):
    name: str = Field(max_length=200)
    bands: str = Field(description="1行に「定員の上限,0歳,1歳,2歳,3歳,4歳,5歳」（円）")


@tenant_router.post("/prices", summary="公定価格の新しい版を保存する", status_code=201, response_model=PricesRead,
                    responses=WRITE_ERRORS)
async def prices_save(body: PricesWrite, session: DbSession, staff: Manager, _: JsonWrite) -> PricesRead:
    table = await service.save_prices(session, audit.Actor.of_staff(staff), body.name, body.bands)
    await session.commit()
    return PricesRead(number=table.number, name=table.name, bands=table.bands, example=False)


ROUTERS = [public_router, resident_router, business_router, tenant_router]
