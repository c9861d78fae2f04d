"""JSON twins of the consortium pages: the public list and detail (/consortia), the secretariat's
screen (/t/{lg_code}/consortia/{id}: which members use a system, 利用量, allocation preview,
decision and 差替, decided schedules) and each member's 負担金算定書 (/t/{lg_code}/statements).

The routes read and check exactly as the pages do: the form's rules (年度, 納付期限, 差替 and
its reason, the method's bounds) are the page's own functions, called here with the JSON's
values. PDF, CSV and ZIP files stay downloads at the pages' URLs (a staff session or an API key
opens them too); the JSON names them. Writes sent with the session cookie must be JSON
(``json_write``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kiban.core.audit import service as audit
from kiban.core.identity.api_admin import JsonWrite
from kiban.core.identity.dependencies import PUBLIC, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.tenancy.dependencies import DbSession
from kiban.kit import wareki
from kiban.kit.errors import InvalidInput, NotFound
from kiban.kit.openapi import problem_responses
from kiban.core.metering import queries as metering
from kiban.modules.catalog import service as catalog
from kiban.modules.costs import metered, service, workflow
from kiban.modules.costs.models import FeeSchedule, FeeStatement
from kiban.modules.costs.schemas_tenant import (
    AllocationInput,
    AllocationPreview,
    ConsortiumDetail,
    ConsortiumRef,
    ConsortiumSummary,
    FeeLine,
    MemberFeeLine,
    OrganisationRef,
    ScheduleDecision,
    ScheduleRead,
    ScheduleSummary,
    SecretariatConsortium,
    SecretariatSystem,
    SharedSystemRead,
    StatementList,
    StatementRead,
    SystemUsers,
    MeteredMemberUsage,
    MeteredUsageRead,
    UsageBasis,
    UsageLine,
    UsageRead,
    UsageWrite,
)

public = APIRouter(prefix="/api/v1/consortia", tags=["共同利用・共同調達"], dependencies=[PUBLIC])
tenant = APIRouter(prefix="/api/v1/t/{lg_code}", tags=["負担金（協議会の事務局・構成団体）"])
ScheduleManager = Annotated[StaffContext, require(Permission.costs_schedule_manage)]
StatementReader = Annotated[StaffContext, require(Permission.costs_statement_read)]
CONFLICT = problem_responses(409, 415, s409="この年度・システムの負担金は決定済みです（差替には replace と reason）")


def _summary(consortium, member_count: int) -> ConsortiumSummary:
    return ConsortiumSummary(id=consortium.id, name=consortium.name, secretariat_code=consortium.secretariat_code,
                             member_count=member_count, contract=consortium.contract, fee_rule=consortium.fee_rule,
                             source=consortium.source)


def _org(org) -> OrganisationRef:
    return OrganisationRef(code=org.code, name=org.name, population=org.population)


def _system(shared) -> dict:
    return {"service_id": shared.service.id, "service_name": shared.service.name,
            "group_name": shared.system.group_name or "", "published_users": shared.system.published_users,
            "recorded_users": len(shared.user_codes), "all_members": bool(shared.system.all_members)}


# -- public --------------------------------------------------------------------------------------------

@public.get("", summary="共同利用・共同調達の枠組みの一覧", response_model=list[ConsortiumSummary])
async def consortia(session: DbSession) -> list[ConsortiumSummary]:
    return [_summary(c, n) for c, n in await catalog.list_consortia(session)]


@public.get("/{consortium_id}", summary="枠組みの詳細（構成団体・共同利用するシステム）", response_model=ConsortiumDetail)
async def consortium(consortium_id: str, session: DbSession) -> ConsortiumDetail:
    found = await catalog.get_consortium(session, consortium_id)
    members = await catalog.consortium_members(session, consortium_id)
    systems = await catalog.consortium_systems(session, consortium_id)
    secretariat = next((m for m in members if m.code == found.secretariat_code), None)
    return ConsortiumDetail(**_summary(found, len(members)).model_dump(),
                            secretariat=_org(secretariat) if secretariat else None,
                            population=sum(m.population or 0 for m in members), members=[_org(m) for m in members],
                            systems=[SharedSystemRead(**_system(s)) for s in systems])


# -- the secretariat -------------------------------------------------------------------------------------

def _schedule_url(lg_code: str, schedule: FeeSchedule) -> str:
    return f"/api/v1/t/{lg_code}/consortia/{schedule.consortium_id}/schedules/{schedule.id}"


def _schedule_summary(lg_code: str, schedule: FeeSchedule, names: dict[str, str]) -> dict:
    return {"id": schedule.id, "service_id": schedule.service_id,
            "service_name": names.get(schedule.service_id, schedule.service_id), "fiscal_year": schedule.fiscal_year,
            "fiscal_year_label": wareki.fiscal_year_label(schedule.fiscal_year), "number": schedule.number,
            "amount": schedule.amount, "subsidy": schedule.subsidy, "allocated": schedule.allocated,
            "method_label": schedule.method_label, "due_on": schedule.due_on, "created_by": schedule.created_by,
            "created_at": schedule.created_at, "in_force": schedule.in_force,
            "status_label": "有効" if schedule.in_force else "取消（差替え済み）", "replaces_id": schedule.replaces_id,
            "replaced_by_id": schedule.replaced_by_id, "url": _schedule_url(lg_code, schedule)}


async def _service_names(session, consortium_id: str) -> dict[str, str]:
    return {s.service.id: s.service.name for s in await catalog.consortium_systems(session, consortium_id)}


@tenant.get("/consortia/{consortium_id}", summary="事務局の画面（構成団体・利用団体・決定した算定）",
            response_model=SecretariatConsortium)
async def secretariat(consortium_id: str, staff: ScheduleManager, session: DbSession) -> SecretariatConsortium:
    found = await workflow.secretariat_consortium(session, staff, consortium_id)
    lg_code = staff.tenant.lg_code
    members = await catalog.consortium_members(session, consortium_id)
    systems = await catalog.consortium_systems(session, consortium_id)
    names = {s.service.id: s.service.name for s in systems}
    return SecretariatConsortium(
        consortium=_summary(found, len(members)), members=[_org(m) for m in members],
        systems=[SecretariatSystem(**_system(s), user_codes=sorted(s.user_codes),
                                   usage_url=f"/api/v1/t/{lg_code}/consortia/{consortium_id}/systems/{s.service.id}/usage")
                 for s in systems],
        schedules=[ScheduleSummary(**_schedule_summary(lg_code, s, names))
                   for s in await service.schedules_of(session, consortium_id)],
        methods=dict(service.METHOD_LABELS))


def _preview_read(lg_code: str, preview: dict, names: dict[str, str]) -> AllocationPreview:
    result, current = preview["result"], preview["current"]
    return AllocationPreview(
        service_id=preview["service"].id, service_name=preview["service"].name, fiscal_year=preview["fiscal_year"],
        amount=result.amount, subsidy=result.subsidy, allocated=result.allocated, total=preview["total"],
        method_label=preview["spec"].describe(),
        fees=[FeeLine(code=f.member.code, name=f.member.name, population=f.member.population, fee=f.fee,
                      percent=f"{f.percent:.4f}", explanation=f.explanation) for f in result.fees],
        current=ScheduleSummary(**_schedule_summary(lg_code, current, names)) if current else None,
        usage_basis=UsageBasis(**preview["basis"]) if preview.get("basis") else None)


@tenant.get("/consortia/{consortium_id}/allocation", summary="負担金の試算（保存しません。合計は総額と必ず一致）",
            response_model=AllocationPreview)
async def preview_allocation(consortium_id: str, query: Annotated[AllocationInput, Query()], staff: ScheduleManager,
                             session: DbSession) -> AllocationPreview:
    await workflow.secretariat_consortium(session, staff, consortium_id)
    preview = await workflow.preview(session, consortium_id, query.form())
    return _preview_read(staff.tenant.lg_code, preview, await _service_names(session, consortium_id))


def _lines(lg_code: str, schedule: FeeSchedule) -> list[MemberFeeLine]:
    base = f"/t/{lg_code}/consortia/{schedule.consortium_id}/schedules/{schedule.id}/members"
    return [MemberFeeLine(code=line["code"], name=line["name"], population=line["population"], fee=line["fee"],
                          percent=line["percent"], explanation=line["explanation"],
                          pdf_url=f"{base}/{line['code']}.pdf", csv_url=f"{base}/{line['code']}.csv")
            for line in schedule.lines]


async def _schedule_read(session, staff: StaffContext, consortium_id: str, schedule_id: str) -> ScheduleRead:
    _consortium, schedule, _item = await workflow.schedule(session, staff, consortium_id, schedule_id)
    lg_code = staff.tenant.lg_code
    page = f"/t/{lg_code}/consortia/{consortium_id}/schedules/{schedule.id}"
    return ScheduleRead(**_schedule_summary(lg_code, schedule, await _service_names(session, consortium_id)),
                        replacement_reason=schedule.replacement_reason, replaced_at=schedule.replaced_at,
                        issuer=schedule.issuer, total=sum(line["fee"] for line in schedule.lines),
                        lines=_lines(lg_code, schedule), csv_url=f"{page}.csv", zip_url=f"{page}/statements.zip",
                        usage_basis=UsageBasis(**basis) if (basis := (schedule.method or {}).get("usage_basis")) else None)


@tenant.post("/consortia/{consortium_id}/schedules", summary="負担金の決定・差替（構成団体へ算定書を交付）",
             response_model=ScheduleRead, status_code=201, responses=CONFLICT)
async def decide_schedule(consortium_id: str, body: ScheduleDecision, staff: ScheduleManager, _json: JsonWrite,
                          session: DbSession) -> ScheduleRead:
    await workflow.secretariat_consortium(session, staff, consortium_id)
    preview = await workflow.preview(session, consortium_id, body.form())
    decision, errors = workflow.decision_errors({"due_on": body.due_on, "replace": body.replace, "reason": body.reason},
                                            preview["current"])
    if errors:
        raise InvalidInput(errors[0] if len(errors) == 1 else f"入力内容に{len(errors)}件の誤りがあります。",
                           errors=[{"field": _decision_field(message), "message": message} for message in errors])
    schedule = await service.save_schedule(
        session, staff.tenant, consortium_id, body.service, fiscal_year=preview["fiscal_year"],
        amount=preview["result"].amount, spec=preview["spec"], actor=staff.label, decision=decision)
    details = {"consortium": consortium_id, "service": body.service, "fiscal_year": schedule.fiscal_year,
               "number": schedule.number, "amount": schedule.amount, "method": schedule.method_label,
               "members": len(schedule.lines), "due_on": schedule.due_on.isoformat()}
    if schedule.replaces_id:
        details |= {"replaces": schedule.replaces_id, "reason": schedule.replacement_reason}
    await audit.record(session, audit.Actor.of_staff(staff),
                       "costs.schedule.replaced" if schedule.replaces_id else "costs.schedule.decided",
                       target_type="fee_schedule", target_id=schedule.id, details=details)
    await session.commit()
    return await _schedule_read(session, staff, consortium_id, schedule.id)


def _decision_field(message: str) -> str:
    """Which field of the decision a message of the form's check is about."""
    if "納付期限" in message:
        return "due_on"
    if "理由" in message:
        return "reason"
    return "replace"


@tenant.get("/consortia/{consortium_id}/schedules", summary="決定した算定の一覧（新しい順）",
            response_model=list[ScheduleSummary])
async def schedules(consortium_id: str, staff: ScheduleManager, session: DbSession) -> list[ScheduleSummary]:
    await workflow.secretariat_consortium(session, staff, consortium_id)
    names = await _service_names(session, consortium_id)
    return [ScheduleSummary(**_schedule_summary(staff.tenant.lg_code, s, names))
            for s in await service.schedules_of(session, consortium_id)]


@tenant.get("/consortia/{consortium_id}/schedules/{schedule_id}", summary="決定した算定（各団体の負担金と算定書の URL）",
            response_model=ScheduleRead)
async def schedule(consortium_id: str, schedule_id: str, staff: ScheduleManager, session: DbSession) -> ScheduleRead:
    return await _schedule_read(session, staff, consortium_id, schedule_id)


@tenant.put("/consortia/{consortium_id}/systems/{service_id}/users", summary="システムを利用する構成団体の登録",
            response_model=SecretariatSystem, responses=problem_responses(415))
async def set_users(consortium_id: str, service_id: str, body: SystemUsers, staff: ScheduleManager, _json: JsonWrite,
                    session: DbSession) -> SecretariatSystem:
    await workflow.secretariat_consortium(session, staff, consortium_id)
    count = await catalog.set_system_users(session, consortium_id, service_id, body.members)
    await audit.record(session, audit.Actor.of_staff(staff), "catalog.consortium.users_set",
                       target_type="consortium_system", target_id=f"{consortium_id}/{service_id}",
                       details={"users": count})
    await session.commit()
    shared = await catalog.shared_system(session, consortium_id, service_id)
    return SecretariatSystem(**_system(shared), user_codes=sorted(shared.user_codes),
                             usage_url=f"/api/v1/t/{staff.tenant.lg_code}/consortia/{consortium_id}/systems/{service_id}/usage")


async def _usage(session, consortium_id: str, service_id: str, fiscal_year: int) -> UsageRead:
    shared = await catalog.shared_system(session, consortium_id, service_id)
    stored = await service.usage_of(session, consortium_id, service_id, fiscal_year)
    users = [o for o in await catalog.consortium_members(session, consortium_id) if o.code in shared.user_codes]
    return UsageRead(service_id=shared.service.id, service_name=shared.service.name, fiscal_year=fiscal_year,
                     members=[UsageLine(code=o.code, name=o.name, units=stored.get(o.code)) for o in users])


@tenant.get("/consortia/{consortium_id}/systems/{service_id}/usage", summary="利用団体ごとの利用量（利用量割に使います）",
            response_model=UsageRead)
async def usage(consortium_id: str, service_id: str, staff: ScheduleManager, session: DbSession,
                fiscal_year: Annotated[str, Query(max_length=10, description="年度（西暦）。省略すると今年度")] = "",
                ) -> UsageRead:
    await workflow.secretariat_consortium(session, staff, consortium_id)
    year = workflow.fiscal_year_of(fiscal_year) if fiscal_year.strip() else workflow.this_fiscal_year()
    return await _usage(session, consortium_id, service_id, year)


@tenant.put("/consortia/{consortium_id}/systems/{service_id}/usage", summary="利用量の保存（すべて正しいときだけ保存）",
            response_model=UsageRead, responses=problem_responses(415))
async def save_usage(consortium_id: str, service_id: str, body: UsageWrite, staff: ScheduleManager, _json: JsonWrite,
                     session: DbSession) -> UsageRead:
    await workflow.secretariat_consortium(session, staff, consortium_id)
    year = workflow.fiscal_year_of(str(body.fiscal_year))
    values = {code: "" if units is None else str(units) for code, units in body.units.items()}
    try:
        count = await service.save_usage(session, consortium_id, service_id, year, values, actor=staff.label)
    except service.UsageErrors as exc:
        raise InvalidInput(exc.detail, errors=[{"field": f"units.{code}", "message": message}
                                               for code, message in exc.errors.items()]) from None
    await audit.record(session, audit.Actor.of_staff(staff), "costs.usage.saved", target_type="consortium_system",
                       target_id=f"{consortium_id}/{service_id}", details={"fiscal_year": year, "members": count})
    await session.commit()
    return await _usage(session, consortium_id, service_id, year)


@tenant.get("/consortia/{consortium_id}/systems/{service_id}/metered-usage",
            summary="構成団体ごとの計測した利用実績（事務局だけ。協議会の共同利用システムに限る）",
            response_model=MeteredUsageRead)
async def metered_usage(consortium_id: str, service_id: str, staff: ScheduleManager, session: DbSession,
                        month: Annotated[str | None, Query(pattern=metering.MONTH_PATTERN, description="終了月（YYYY-MM、日本時間）。省略すると今月")] = None,
                        months: Annotated[int, Query(ge=1, le=metering.MAX_MONTHS, description="終了月までの月数（1〜36）。省略すると1か月")] = 1,
                        ) -> MeteredUsageRead:
    """Every well-formed query is a valid period (the page takes 開始月 and 終了月 as typed)."""
    await metered.secretariat_may_read_usage(session, staff.tenant, consortium_id, service_id)
    end = metering.parse_month(month, "終了月") if month else metering.this_month()
    usage = await metered.consortium_usage(session, staff.tenant, consortium_id, service_id,
                                           metering.add_months(end, -(months - 1)), end)
    start, end = metering.month_text(usage.month_from), metering.month_text(usage.month_to)
    return MeteredUsageRead(
        consortium_id=consortium_id, service_id=service_id, service_name=usage.service_name, month_from=start,
        month_to=end, events={e: metering.event_label(e) for e in usage.events},
        members=[MeteredMemberUsage(code=m.code, name=m.name, uses_system=m.uses_system, counts=m.counts,
                                    total=m.total) for m in usage.members],
        totals={e: usage.event_total(e) for e in usage.events}, rule=metered.SECRETARIAT_RULE,
        csv_url=f"/t/{staff.tenant.lg_code}/consortia/{consortium_id}/systems/{service_id}/metered-usage.csv"
                f"?from={start}&to={end}")


# -- a member's own statements -------------------------------------------------------------------------

def _statement(lg_code: str, statement: FeeStatement, cancellation: str = "") -> StatementRead:
    files = f"/t/{lg_code}/statements/{statement.schedule_id}"
    return StatementRead(
        schedule_id=statement.schedule_id, document_no=statement.document_no, in_force=statement.in_force,
        status_label="有効" if statement.in_force else "取消", consortium_name=statement.consortium_name,
        service_name=statement.service_name, fiscal_year=statement.fiscal_year,
        fiscal_year_label=wareki.fiscal_year_label(statement.fiscal_year), member_name=statement.member_name,
        population=statement.population, fee=statement.fee, percent=statement.percent,
        explanation=statement.explanation, amount=statement.amount, subsidy=statement.subsidy,
        allocated=statement.allocated, member_count=statement.member_count, method_label=statement.method_label,
        issuer=statement.issuer, issued_at=statement.issued_at, due_on=statement.due_on,
        cancelled_at=statement.cancelled_at, cancel_reason=statement.cancel_reason,
        replaced_by_id=statement.replaced_by_id, cancellation=cancellation, pdf_url=f"{files}.pdf",
        csv_url=f"{files}.csv", url=f"/api/v1/t/{lg_code}/statements/{statement.schedule_id}")


async def _replacement(session, statement: FeeStatement) -> FeeStatement | None:
    if not statement.replaced_by_id:
        return None
    try:
        return await service.get_statement(session, statement.replaced_by_id)
    except NotFound:
        return None  # this member is not part of the new schedule


@tenant.get("/statements", summary="交付された負担金算定書の一覧（PDF・CSV の URL つき）", response_model=StatementList)
async def statements(staff: StatementReader, session: DbSession) -> StatementList:
    lg_code = staff.tenant.lg_code
    items = []
    for statement in await service.statements(session):
        data = workflow.statement_data(statement, await _replacement(session, statement))
        items.append(_statement(lg_code, statement, data.cancellation))
    return StatementList(lg_code=lg_code, items=items, consortia=[
        ConsortiumRef(id=c.id, name=c.name, url=f"/api/v1/consortia/{c.id}")
        for c in await catalog.consortia_of_member(session, lg_code)])


@tenant.get("/statements/{schedule_id}", summary="負担金算定書（PDF・CSV の URL つき）", response_model=StatementRead)
async def statement(schedule_id: str, staff: StatementReader, session: DbSession) -> StatementRead:
    found = await service.get_statement(session, schedule_id)
    data = workflow.statement_data(found, await _replacement(session, found))
    return _statement(staff.tenant.lg_code, found, data.cancellation)
