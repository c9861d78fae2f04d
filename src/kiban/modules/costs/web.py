"""Cost pages: the simulator (before joining), the secretariat's fee schedules, and each member's
負担金算定書 (PDF and CSV)."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.audit import service as audit
from kiban.core.identity.dependencies import PUBLIC, OptionalStaff, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.tenancy.dependencies import CurrentTenant, DbSession
from kiban.kit import wareki
from kiban.kit.csrf import verify_csrf
from kiban.kit.errors import InvalidInput, NotFound
from kiban.kit.templating import templates
from kiban.modules.catalog import service as catalog
from kiban.modules.catalog.service import parse_yen
from kiban.modules.costs import service, statements
from kiban.modules.costs.models import FeeSchedule, FeeStatement

router = APIRouter(prefix="/t/{lg_code}", include_in_schema=False)
ScheduleManager = Annotated[StaffContext, require(Permission.costs_schedule_manage)]
StatementReader = Annotated[StaffContext, require(Permission.costs_statement_read)]


def _this_fiscal_year() -> int:
    today = date.today()
    return today.year if today.month >= 4 else today.year - 1


# -- simulator (public: it uses only public figures) ---------------------------------------------

@router.get("/simulator", response_class=HTMLResponse, dependencies=[PUBLIC])
async def simulator(tenant: CurrentTenant, request: Request, session: DbSession, staff: OptionalStaff,
                    service_id: Annotated[str, Query(alias="service")] = "", amount: str = "",
                    extra: str = "10") -> HTMLResponse:
    services = [s for s in await catalog.list_services(session) if s.pattern in ("common_b", "individual")]
    result, error = None, None
    if service_id:
        try:
            item = await catalog.get_service(session, service_id)
            yen = parse_yen(amount, "年間総経費") if amount.strip() else item.annual_cost
            if yen is None:
                raise InvalidInput("このサービスの年間総経費は公表されていません。想定する年間総経費を入力してください。")
            if not extra.strip().isdigit():
                raise InvalidInput(f"追加で参加する団体数「{extra}」は0以上の整数で入力してください。")
            result = await service.simulate(session, tenant, item.id, yen, int(extra))
        except (InvalidInput, NotFound) as exc:
            error = exc.detail
    partial = bool(request.headers.get("HX-Request"))
    # htmx swaps only 2xx answers: the fragment carries the error as role="alert"; full pages say 422.
    status = 422 if error and not partial else 200
    template = "costs/_simulation.html" if partial else "costs/simulator.html"
    return templates.TemplateResponse(request, template, {
        "tenant": tenant, "services": services, "selected": service_id, "amount": amount, "extra": extra,
        "result": result, "error": error, "methods": service.SIMULATED_METHODS, "staff": staff,
        "series": [(label, [p.fees[key] for p in result.points]) for key, label in service.SIMULATED_METHODS]
        if result else []},
        status_code=status)


# -- the secretariat ---------------------------------------------------------------------------------

async def _secretariat_consortium(session, staff: StaffContext, consortium_id: str):
    consortium = await catalog.get_consortium(session, consortium_id)
    if consortium.secretariat_code != staff.tenant.lg_code:
        raise NotFound("共同利用の枠組みが見つかりません。")
    return consortium


async def _consortium_page(request, session, staff, consortium_id, *, form=None, preview=None, error=None,
                           status=200) -> HTMLResponse:
    consortium = await _secretariat_consortium(session, staff, consortium_id)
    return templates.TemplateResponse(request, "costs/consortium.html", {
        "tenant": staff.tenant, "consortium": consortium,
        "systems": await catalog.consortium_systems(session, consortium_id),
        "members": await catalog.consortium_members(session, consortium_id),
        "schedules": await service.schedules_of(session, consortium_id),
        "form": form or {"service": "", "amount": "", "kind": "weighted", "ratio": "1.5", "equal_percent": "30",
                         "rest": "weighted", "subsidy_percent": "0", "fiscal_year": str(_this_fiscal_year())},
        "preview": preview, "error": error, "method_labels": service.METHOD_LABELS}, status_code=status)


@router.get("/consortia/{consortium_id}", response_class=HTMLResponse)
async def secretariat_page(consortium_id: str, request: Request, session: DbSession, staff: ScheduleManager) -> HTMLResponse:
    return await _consortium_page(request, session, staff, consortium_id)


def _spec_and_amount(form: dict) -> tuple[service.MethodSpec, int]:
    spec = service.method_from_form(form["kind"], form["ratio"], form["equal_percent"], form["rest"],
                                    form["subsidy_percent"])
    amount = parse_yen(form["amount"], "総経費")
    if amount is None:
        raise InvalidInput("配分する総経費（円）を入力してください。")
    return spec, amount


@router.get("/consortia/{consortium_id}/allocate", response_class=HTMLResponse)
async def preview_allocation(consortium_id: str, request: Request, session: DbSession,
                             staff: ScheduleManager) -> HTMLResponse:
    """Shows every member's fee, summing exactly to the total, before anything is saved."""
    keys = ("service", "amount", "kind", "ratio", "equal_percent", "rest", "subsidy_percent", "fiscal_year")
    form = {k: request.query_params.get(k, "") for k in keys}
    await _secretariat_consortium(session, staff, consortium_id)
    try:
        spec, amount = _spec_and_amount(form)
        members = await service.consortium_members_for(session, consortium_id, form["service"])
        result = service.run(amount, members, spec)
        shared = await catalog.shared_system(session, consortium_id, form["service"])
    except (InvalidInput, NotFound) as exc:
        return await _consortium_page(request, session, staff, consortium_id, form=form, error=exc.detail,
                                      status=exc.status)
    preview = {"result": result, "spec": spec, "service": shared.service,
               "total": sum(result.amounts), "chart": [(f.member.name, f.fee) for f in result.fees]}
    return await _consortium_page(request, session, staff, consortium_id, form=form, preview=preview)


@router.post("/consortia/{consortium_id}/schedules", dependencies=[Depends(verify_csrf)])
async def decide_schedule(consortium_id: str, request: Request, session: DbSession, staff: ScheduleManager) -> Response:
    submitted = await request.form()
    keys = ("service", "amount", "kind", "ratio", "equal_percent", "rest", "subsidy_percent", "fiscal_year")
    form = {k: str(submitted.get(k, "")) for k in keys}
    try:
        spec, amount = _spec_and_amount(form)
        if not form["fiscal_year"].strip().isdigit():
            raise InvalidInput("年度は西暦の数字で入力してください（例: 2026）。")
        schedule = await service.save_schedule(
            session, staff.tenant, consortium_id, form["service"], fiscal_year=int(form["fiscal_year"]),
            amount=amount, spec=spec, actor=staff.label)
    except (InvalidInput, NotFound) as exc:
        await session.rollback()
        return await _consortium_page(request, session, staff, consortium_id, form=form, error=exc.detail,
                                      status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "costs.schedule.decided", target_type="fee_schedule",
                       target_id=schedule.id, details={"consortium": consortium_id, "service": form["service"],
                                                       "amount": amount, "method": spec.describe(),
                                                       "members": len(schedule.lines)})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/consortia/{consortium_id}/schedules/{schedule.id}",
                            status_code=303)


@router.post("/consortia/{consortium_id}/systems/{service_id}/users", dependencies=[Depends(verify_csrf)])
async def set_users(consortium_id: str, service_id: str, request: Request, session: DbSession,
                    staff: ScheduleManager) -> Response:
    await _secretariat_consortium(session, staff, consortium_id)
    codes = [str(c) for c in (await request.form()).getlist("members")]
    try:
        count = await catalog.set_system_users(session, consortium_id, service_id, codes)
    except (InvalidInput, NotFound) as exc:
        await session.rollback()
        return await _consortium_page(request, session, staff, consortium_id, error=exc.detail, status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "catalog.consortium.users_set", target_type="consortium_system",
                       target_id=f"{consortium_id}/{service_id}", details={"users": count})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/consortia/{consortium_id}#system-{service_id}", status_code=303)


def _schedule_statement(schedule: FeeSchedule, consortium_name: str, service_name: str, code: str) -> statements.StatementData:
    line = next((line for line in schedule.lines if line["code"] == code), None)
    if line is None:
        raise NotFound("この算定に、その団体は含まれていません。")
    return statements.StatementData(
        consortium_name=consortium_name, service_name=service_name, fiscal_year=schedule.fiscal_year,
        member_code=code, member_name=line["name"], population=line["population"], fee=line["fee"],
        percent=line["percent"], explanation=line["explanation"], amount=schedule.amount, subsidy=schedule.subsidy,
        allocated=schedule.allocated, member_count=len(schedule.lines), method_label=schedule.method_label,
        issued_at_text=wareki.datetime_ja(schedule.created_at), schedule_id=schedule.id)


async def _schedule(session, staff, consortium_id, schedule_id):
    consortium = await _secretariat_consortium(session, staff, consortium_id)
    schedule = await service.get_schedule(session, schedule_id)
    if schedule.consortium_id != consortium_id:
        raise NotFound("負担金の算定結果が見つかりません。")
    item = await catalog.get_service(session, schedule.service_id)
    return consortium, schedule, item


def _download(content: bytes, filename: str, media_type: str) -> Response:
    return Response(content, media_type=media_type, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"})


@router.get("/consortia/{consortium_id}/schedules/{schedule_id}.csv")
async def schedule_csv(consortium_id: str, schedule_id: str, session: DbSession, staff: ScheduleManager) -> Response:
    consortium, schedule, item = await _schedule(session, staff, consortium_id, schedule_id)
    title = [("共同利用の枠組み", consortium.name), ("対象システム", item.name),
             ("年度", f"{wareki.fiscal_year_label(schedule.fiscal_year)}（{schedule.fiscal_year}年度）"),
             ("総経費（円）", str(schedule.amount)), ("国の補助（円）", str(schedule.subsidy)),
             ("構成団体で負担する額（円）", str(schedule.allocated)), ("算定方法", schedule.method_label)]
    return _download(statements.schedule_csv(title, schedule.lines),
                     f"負担金一覧_{item.name}_{schedule.fiscal_year}.csv", "text/csv; charset=utf-8")


@router.get("/consortia/{consortium_id}/schedules/{schedule_id}", response_class=HTMLResponse)
async def schedule_page(consortium_id: str, schedule_id: str, request: Request, session: DbSession,
                        staff: ScheduleManager) -> HTMLResponse:
    consortium, schedule, item = await _schedule(session, staff, consortium_id, schedule_id)
    return templates.TemplateResponse(request, "costs/schedule.html", {
        "tenant": staff.tenant, "consortium": consortium, "schedule": schedule, "item": item,
        "total": sum(line["fee"] for line in schedule.lines),
        "chart": [(line["name"], line["fee"]) for line in schedule.lines]})


@router.get("/consortia/{consortium_id}/schedules/{schedule_id}/members/{code}.{fmt}")
async def member_statement_for_secretariat(consortium_id: str, schedule_id: str, code: str, fmt: str,
                                           session: DbSession, staff: ScheduleManager) -> Response:
    consortium, schedule, item = await _schedule(session, staff, consortium_id, schedule_id)
    return _statement_file(_schedule_statement(schedule, consortium.name, item.name, code), fmt)


def _statement_file(data: statements.StatementData, fmt: str) -> Response:
    name = f"負担金算定書_{data.member_name}_{data.service_name}_{data.fiscal_year}"
    if fmt == "pdf":
        return _download(statements.to_pdf(data), f"{name}.pdf", "application/pdf")
    if fmt == "csv":
        return _download(statements.to_csv(data), f"{name}.csv", "text/csv; charset=utf-8")
    raise NotFound("PDF か CSV を選んでください。")


# -- a member's own statements -------------------------------------------------------------------------

def _statement_data(statement: FeeStatement) -> statements.StatementData:
    return statements.StatementData(
        consortium_name=statement.consortium_name, service_name=statement.service_name,
        fiscal_year=statement.fiscal_year, member_code=statement.lg_code, member_name=statement.member_name,
        population=statement.population, fee=statement.fee, percent=statement.percent,
        explanation=statement.explanation, amount=statement.amount, subsidy=statement.subsidy,
        allocated=statement.allocated, member_count=statement.member_count, method_label=statement.method_label,
        issued_at_text=wareki.datetime_ja(statement.issued_at), schedule_id=statement.schedule_id)


@router.get("/statements", response_class=HTMLResponse)
async def statements_page(request: Request, session: DbSession, staff: StatementReader) -> HTMLResponse:
    return templates.TemplateResponse(request, "costs/statements.html", {
        "tenant": staff.tenant, "statements": await service.statements(session),
        "consortia": await catalog.consortia_of_member(session, staff.tenant.lg_code)})


@router.get("/statements/{schedule_id}.{fmt}")
async def statement_file(schedule_id: str, fmt: str, session: DbSession, staff: StatementReader) -> Response:
    statement = await service.get_statement(session, schedule_id)
    return _statement_file(_statement_data(statement), fmt)
