"""Cost pages: the simulator (before joining), the secretariat's fee schedules, and each member's
負担金算定書 (PDF and CSV)."""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.audit import service as audit
from kiban.core.identity.dependencies import PUBLIC, OptionalStaff, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.tenancy.dependencies import CurrentTenant, DbSession
from kiban.kit import wareki
from kiban.kit.csrf import verify_csrf
from kiban.kit.export import attachment
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.kit.templating import templates
from kiban.modules.catalog import service as catalog
from kiban.modules.catalog.service import parse_yen
from kiban.modules.costs import service, statements
from kiban.modules.costs.models import FeeSchedule
from kiban.core.metering import queries as metering
from kiban.kit.export import csv_bytes
from kiban.modules.costs import metered
from kiban.modules.costs.workflow import USAGE_SOURCES
from kiban.modules.costs.workflow import (
    this_fiscal_year as _this_fiscal_year,
    secretariat_consortium as _secretariat_consortium,
    fiscal_year_of as _fiscal_year_of,
    preview as _preview,
    decision_errors as _decision_errors,
    schedule_statement as _schedule_statement,
    schedule as _schedule,
    statement_data as _statement_data,
)

router = APIRouter(prefix="/t/{lg_code}", include_in_schema=False)
ScheduleManager = Annotated[StaffContext, require(Permission.costs_schedule_manage)]
StatementReader = Annotated[StaffContext, require(Permission.costs_statement_read)]


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

FORM_KEYS = ("service", "amount", "kind", "ratio", "equal_percent", "rest", "subsidy_percent", "prefecture_share",
             "fiscal_year", "usage_source", "usage_service", "usage_event", "usage_from", "usage_to")
DECISION_KEYS = ("due_on", "replace", "reason")


def _default_form() -> dict:
    return {"service": "", "amount": "", "kind": "weighted", "ratio": "1.5", "equal_percent": "30",
            "rest": "weighted", "subsidy_percent": "0", "prefecture_share": "", "fiscal_year": str(_this_fiscal_year()),
            "usage_source": "entered", "usage_service": "", "usage_event": "submission", "usage_from": "", "usage_to": ""}


async def _consortium_page(request, session, staff, consortium_id, *, form=None, preview=None, errors=(),
                           decision=None, status=200) -> HTMLResponse:
    consortium = await _secretariat_consortium(session, staff, consortium_id)
    systems = await catalog.consortium_systems(session, consortium_id)
    return templates.TemplateResponse(request, "costs/consortium.html", {
        "tenant": staff.tenant, "consortium": consortium, "systems": systems,
        "service_names": {s.service.id: s.service.name for s in systems},
        "members": await catalog.consortium_members(session, consortium_id),
        "schedules": await service.schedules_of(session, consortium_id),
        "form": form or _default_form(), "preview": preview, "errors": list(errors),
        "decision": decision or {"due_on": "", "replace": "", "reason": ""},
        "method_labels": service.METHOD_LABELS, "this_fiscal_year": _this_fiscal_year(),
        "usage_sources": USAGE_SOURCES, "event_labels": metering.EVENT_LABELS}, status_code=status)


@router.get("/consortia/{consortium_id}", response_class=HTMLResponse)
async def secretariat_page(consortium_id: str, request: Request, session: DbSession, staff: ScheduleManager) -> HTMLResponse:
    return await _consortium_page(request, session, staff, consortium_id)


@router.get("/consortia/{consortium_id}/allocate", response_class=HTMLResponse)
async def preview_allocation(consortium_id: str, request: Request, session: DbSession,
                             staff: ScheduleManager) -> HTMLResponse:
    """Shows every member's fee, summing exactly to the total, before anything is saved."""
    form = {k: request.query_params.get(k, "") for k in FORM_KEYS}
    await _secretariat_consortium(session, staff, consortium_id)
    try:
        preview = await _preview(session, consortium_id, form)
    except (InvalidInput, NotFound) as exc:
        return await _consortium_page(request, session, staff, consortium_id, form=form, errors=[exc.detail],
                                      status=exc.status)
    return await _consortium_page(request, session, staff, consortium_id, form=form, preview=preview)


@router.post("/consortia/{consortium_id}/schedules", dependencies=[Depends(verify_csrf)])
async def decide_schedule(consortium_id: str, request: Request, session: DbSession, staff: ScheduleManager) -> Response:
    submitted = await request.form()
    form = {k: str(submitted.get(k, "")) for k in FORM_KEYS}
    decision_form = {k: str(submitted.get(k, "")) for k in DECISION_KEYS}
    await _secretariat_consortium(session, staff, consortium_id)
    try:
        preview = await _preview(session, consortium_id, form)
    except (InvalidInput, NotFound) as exc:
        return await _consortium_page(request, session, staff, consortium_id, form=form, errors=[exc.detail],
                                      decision=decision_form, status=exc.status)
    decision, errors = _decision_errors(decision_form, preview["current"])
    if errors:
        return await _consortium_page(request, session, staff, consortium_id, form=form, preview=preview,
                                      errors=errors, decision=decision_form, status=422)
    try:
        schedule = await service.save_schedule(
            session, staff.tenant, consortium_id, form["service"], fiscal_year=preview["fiscal_year"],
            amount=preview["result"].amount, spec=preview["spec"], actor=staff.label, decision=decision)
    except (InvalidInput, NotFound, Conflict) as exc:
        await session.rollback()
        try:
            preview = await _preview(session, consortium_id, form)
        except (InvalidInput, NotFound):
            preview = None
        return await _consortium_page(request, session, staff, consortium_id, form=form, preview=preview,
                                      errors=[exc.detail], decision=decision_form, status=exc.status)
    details = {"consortium": consortium_id, "service": form["service"], "fiscal_year": schedule.fiscal_year,
               "number": schedule.number, "amount": schedule.amount, "method": schedule.method_label,
               "members": len(schedule.lines), "due_on": schedule.due_on.isoformat()}
    if schedule.replaces_id:
        details |= {"replaces": schedule.replaces_id, "reason": schedule.replacement_reason}
    await audit.record(session, audit.Actor.of_staff(staff),
                       "costs.schedule.replaced" if schedule.replaces_id else "costs.schedule.decided",
                       target_type="fee_schedule", target_id=schedule.id, details=details)
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
        return await _consortium_page(request, session, staff, consortium_id, errors=[exc.detail], status=exc.status)
    await audit.record(session, audit.Actor.of_staff(staff), "catalog.consortium.users_set", target_type="consortium_system",
                       target_id=f"{consortium_id}/{service_id}", details={"users": count})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/consortia/{consortium_id}#system-{service_id}", status_code=303)


# -- 利用量 per member, for 利用量割 -------------------------------------------------------------------

async def _usage_page(request, session, staff, consortium_id, service_id, fiscal_year: int, *, values=None,
                      errors=None, saved=None, status=200) -> HTMLResponse:
    consortium = await _secretariat_consortium(session, staff, consortium_id)
    shared = await catalog.shared_system(session, consortium_id, service_id)
    users = [o for o in await catalog.consortium_members(session, consortium_id) if o.code in shared.user_codes]
    if values is None:
        stored = await service.usage_of(session, consortium_id, service_id, fiscal_year)
        values = {code: str(units) for code, units in stored.items()}
    return templates.TemplateResponse(request, "costs/usage.html", {
        "tenant": staff.tenant, "consortium": consortium, "item": shared.service, "users": users,
        "fiscal_year": fiscal_year, "values": values, "errors": errors or {}, "saved": saved}, status_code=status)


@router.get("/consortia/{consortium_id}/systems/{service_id}/usage", response_class=HTMLResponse)
async def usage_page(consortium_id: str, service_id: str, request: Request, session: DbSession,
                     staff: ScheduleManager, fiscal_year: str = "") -> HTMLResponse:
    year = _fiscal_year_of(fiscal_year) if fiscal_year.strip() else _this_fiscal_year()
    saved = request.query_params.get("saved")
    return await _usage_page(request, session, staff, consortium_id, service_id, year,
                             saved=int(saved) if saved and saved.isdigit() else None)


@router.post("/consortia/{consortium_id}/systems/{service_id}/usage", dependencies=[Depends(verify_csrf)])
async def save_usage(consortium_id: str, service_id: str, request: Request, session: DbSession,
                     staff: ScheduleManager) -> Response:
    await _secretariat_consortium(session, staff, consortium_id)
    submitted = await request.form()
    year = _fiscal_year_of(str(submitted.get("fiscal_year", "")))
    values = {key.removeprefix("units-"): str(value) for key, value in submitted.items() if key.startswith("units-")}
    try:
        count = await service.save_usage(session, consortium_id, service_id, year, values, actor=staff.label)
    except service.UsageErrors as exc:
        await session.rollback()
        return await _usage_page(request, session, staff, consortium_id, service_id, year, values=values,
                                 errors=exc.errors, status=422)
    await audit.record(session, audit.Actor.of_staff(staff), "costs.usage.saved", target_type="consortium_system",
                       target_id=f"{consortium_id}/{service_id}", details={"fiscal_year": year, "members": count})
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/consortia/{consortium_id}/systems/{service_id}/usage"
                            f"?fiscal_year={year}&saved={count}", status_code=303)


# -- metered usage across the members (core/metering), for one shared system -------------------------

metered_period = metered.metered_period


METERED_CSV_HEADER = ("団体コード", "団体名", "利用団体", "利用の種類", "件数", "期間（開始月）", "期間（終了月）", "種類コード")


def metered_csv_rows(usage: metered.ConsortiumUsage) -> list[tuple]:
    start, end = metering.month_text(usage.month_from), metering.month_text(usage.month_to)
    return [(m.code, m.name, "はい" if m.uses_system else "いいえ", metering.event_label(e), m.counts.get(e, 0),
             start, end, e) for m in usage.members for e in usage.events]


@router.get("/consortia/{consortium_id}/systems/{service_id}/metered-usage", response_class=HTMLResponse)
async def metered_usage_page(consortium_id: str, service_id: str, request: Request, session: DbSession,
                             staff: ScheduleManager) -> HTMLResponse:
    """The members' metered usage of one shared system (``metered.secretariat_may_read_usage``)."""
    scope = await metered.secretariat_may_read_usage(session, staff.tenant, consortium_id, service_id)
    raw_from, raw_to = request.query_params.get("from", ""), request.query_params.get("to", "")
    found, errors = metered_period(raw_from, raw_to)
    usage = await metered.consortium_usage(session, staff.tenant, consortium_id, service_id, *found) if found else None
    shown = found or (metering.this_month(), metering.this_month())
    systems = await catalog.consortium_systems(session, consortium_id)
    return templates.TemplateResponse(request, "costs/metered_usage.html", {
        "tenant": staff.tenant, "consortium": scope.consortium, "item": scope.shared.service, "systems": systems,
        "usage": usage, "errors": errors, "rule": metered.SECRETARIAT_RULE,
        "form": {"from": raw_from or metering.month_text(shown[0]), "to": raw_to or metering.month_text(shown[1])},
        "month_label": metering.month_label, "event_label": metering.event_label},
        status_code=422 if errors else 200)


@router.get("/consortia/{consortium_id}/systems/{service_id}/metered-usage.csv")
async def metered_usage_csv(consortium_id: str, service_id: str, request: Request, session: DbSession,
                            staff: ScheduleManager) -> Response:
    await metered.secretariat_may_read_usage(session, staff.tenant, consortium_id, service_id)
    found, errors = metered_period(request.query_params.get("from", ""), request.query_params.get("to", ""))
    if errors:
        raise InvalidInput(" ".join(errors.values()))
    usage = await metered.consortium_usage(session, staff.tenant, consortium_id, service_id, *found)
    name = (f"利用実績_{usage.service_name}_{metering.month_text(usage.month_from)}_"
            f"{metering.month_text(usage.month_to)}.csv")
    return _download(csv_bytes(metered_csv_rows(usage), METERED_CSV_HEADER), name, "text/csv; charset=utf-8")


# -- decided schedules and their statements -----------------------------------------------------------

async def _related(session, schedule: FeeSchedule) -> tuple[FeeSchedule | None, FeeSchedule | None]:
    """(the schedule this one replaced, the one that replaced it)."""
    replaced = await service.get_schedule(session, schedule.replaces_id) if schedule.replaces_id else None
    replacement = await service.get_schedule(session, schedule.replaced_by_id) if schedule.replaced_by_id else None
    return replaced, replacement


def _download(content: bytes, filename: str, media_type: str) -> Response:
    return attachment(content, filename, media_type)


@router.get("/consortia/{consortium_id}/schedules/{schedule_id}.csv")
async def schedule_csv(consortium_id: str, schedule_id: str, session: DbSession, staff: ScheduleManager) -> Response:
    consortium, schedule, item = await _schedule(session, staff, consortium_id, schedule_id)
    title = [("共同利用の枠組み", consortium.name), ("対象システム", item.name),
             ("年度", f"{wareki.fiscal_year_label(schedule.fiscal_year)}（{schedule.fiscal_year}年度）"),
             ("文書番号", schedule.number or "—"), ("状態", "有効" if schedule.in_force else "取消（差替え済み）"),
             ("納付期限", wareki.wareki_with_seireki(schedule.due_on) or "—"),
             ("総経費（円）", schedule.amount), ("国の補助（円）", schedule.subsidy),
             ("構成団体で負担する額（円）", schedule.allocated), ("算定方法", schedule.method_label)]
    return _download(statements.schedule_csv(title, schedule.lines),
                     f"負担金一覧_{item.name}_{schedule.fiscal_year}.csv", "text/csv; charset=utf-8")


@router.get("/consortia/{consortium_id}/schedules/{schedule_id}", response_class=HTMLResponse)
async def schedule_page(consortium_id: str, schedule_id: str, request: Request, session: DbSession,
                        staff: ScheduleManager) -> HTMLResponse:
    consortium, schedule, item = await _schedule(session, staff, consortium_id, schedule_id)
    replaced, replacement = await _related(session, schedule)
    return templates.TemplateResponse(request, "costs/schedule.html", {
        "tenant": staff.tenant, "consortium": consortium, "schedule": schedule, "item": item,
        "basis": (schedule.method or {}).get("usage_basis"),
        "replaced": replaced, "replacement": replacement,
        "total": sum(line["fee"] for line in schedule.lines),
        "chart": [(line["name"], line["fee"]) for line in schedule.lines]})


@router.get("/consortia/{consortium_id}/schedules/{schedule_id}/statements.zip")
async def schedule_statements_zip(consortium_id: str, schedule_id: str, session: DbSession,
                                  staff: ScheduleManager) -> Response:
    """Every member's statement (PDF) of the schedule in one ZIP, built off the event loop."""
    consortium, schedule, item = await _schedule(session, staff, consortium_id, schedule_id)
    _replaced, replacement = await _related(session, schedule)
    data = [_schedule_statement(schedule, consortium.name, item.name, line["code"], replacement)
            for line in schedule.lines]

    def build() -> bytes:
        return statements.to_zip([(f"{d.document_no or d.member_code}_{d.member_name}.pdf", statements.to_pdf(d))
                                  for d in data])

    content = await to_thread.run_sync(build)
    return _download(content, f"負担金算定書_{item.name}_{schedule.fiscal_year}_{schedule.number or schedule.id}.zip",
                     "application/zip")


@router.get("/consortia/{consortium_id}/schedules/{schedule_id}/members/{code}.{fmt}")
async def member_statement_for_secretariat(consortium_id: str, schedule_id: str, code: str, fmt: str,
                                           session: DbSession, staff: ScheduleManager) -> Response:
    consortium, schedule, item = await _schedule(session, staff, consortium_id, schedule_id)
    _replaced, replacement = await _related(session, schedule)
    return await _statement_file(_schedule_statement(schedule, consortium.name, item.name, code, replacement), fmt)


async def _statement_file(data: statements.StatementData, fmt: str) -> Response:
    name = f"負担金算定書_{data.member_name}_{data.service_name}_{data.fiscal_year}"
    if data.cancelled:
        name += "_取消"
    if fmt == "pdf":
        return _download(await to_thread.run_sync(statements.to_pdf, data), f"{name}.pdf", "application/pdf")
    if fmt == "csv":
        return _download(statements.to_csv(data), f"{name}.csv", "text/csv; charset=utf-8")
    raise NotFound("PDF か CSV を選んでください。")


# -- a member's own statements -------------------------------------------------------------------------

@router.get("/statements", response_class=HTMLResponse)
async def statements_page(request: Request, session: DbSession, staff: StatementReader) -> HTMLResponse:
    issued = await service.statements(session)
    return templates.TemplateResponse(request, "costs/statements.html", {
        "tenant": staff.tenant, "statements": issued, "by_schedule": {s.schedule_id: s for s in issued},
        "consortia": await catalog.consortia_of_member(session, staff.tenant.lg_code)})


@router.get("/statements/{schedule_id}.{fmt}")
async def statement_file(schedule_id: str, fmt: str, session: DbSession, staff: StatementReader) -> Response:
    statement = await service.get_statement(session, schedule_id)
    replacement = None
    if statement.replaced_by_id:
        try:
            replacement = await service.get_statement(session, statement.replaced_by_id)
        except NotFound:
            replacement = None  # this member is not part of the new schedule
    return await _statement_file(_statement_data(statement, replacement), fmt)
