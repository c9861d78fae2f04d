"""保活ワンストップの画面: the public search (/childcare), the resident's application and its status
(/me/childcare, My Number Card), the operator's and employer's pages (/business/childcare, GビズID),
and municipal staff's pages (/t/{lg_code}/childcare: applications, referrals, rules, allocation,
reports, 公定価格) with the public 待機児童 page and its open data."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.audit import service as audit
from kiban.core.identity.dependencies import PUBLIC, CurrentResident, StaffContext, require
from kiban.core.identity.models import Principal
from kiban.core.identity.permissions import Permission
from kiban.core.identity.web_business import CurrentBusiness
from kiban.core.tenancy.dependencies import CurrentTenant, DbSession
from kiban.kit import export
from kiban.kit.csrf import verify_csrf
from kiban.kit.db import utcnow
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.kit.templating import templates
from kiban.modules.childcare import reports, rules as rulebook, service
from kiban.modules.childcare.models import AGE_CLASSES, FACILITY_KIND_LABELS, ApplicationStatus

router = APIRouter(include_in_schema=False)
Reader = Annotated[StaffContext, require(Permission.childcare_application_read)]
ReportReader = Annotated[StaffContext, require(Permission.childcare_report_read)]
Manager = Annotated[StaffContext, require(Permission.childcare_allocation_manage)]


def _ctx(**values) -> dict:
    return {"ages": AGE_CLASSES, "kinds": {k.value: v for k, v in FACILITY_KIND_LABELS.items()},
            "situations": rulebook.SITUATIONS, "adjustment_labels": rulebook.ADJUSTMENTS,
            "tie_break_labels": rulebook.TIE_BREAKS, "sibling_policies": rulebook.SIBLING_POLICIES,
            "combine_labels": rulebook.COMBINE, "employment_types": service.EMPLOYMENT_TYPES,
            "statuses": {s.value: s.label for s in ApplicationStatus}, "modes": service.MODES, **values}


def _errs(exc: InvalidInput) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for e in exc.errors:
        found.setdefault(e["field"], []).append(e["message"])
    return found


async def _form(request: Request) -> dict:
    """The posted form as a dict; repeated fields (preference, adjustments, tie_breaks) as lists."""
    data = await request.form()
    out: dict = {}
    for key in data.keys():
        values = data.getlist(key)
        out[key] = values if key in ("preference", "adjustments", "tie_breaks", "pick") else values[-1]
    return out


# -- 保活検索 (public) -------------------------------------------------------------------------------

@router.get("/childcare", response_class=HTMLResponse, dependencies=[PUBLIC])
async def search_page(request: Request, session: DbSession) -> HTMLResponse:
    params = dict(request.query_params)
    results, total, errors, status = [], 0, {}, 200
    searched = bool(params)
    if searched:
        try:
            query = await service.search_query(session, params)
            results, total = await service.search_facilities(session, query)
        except InvalidInput as exc:
            errors, status = _errs(exc), 422
    names = await _names(session, {f.lg_code for f in results})
    return templates.TemplateResponse(request, "childcare/search.html", _ctx(
        values=params, results=results, total=total, errors=errors, searched=searched, names=names,
        limit=service.SEARCH_LIMIT), status_code=status)


async def _names(session, codes) -> dict[str, str]:
    from kiban.core.registry import service as registry_service
    found = await registry_service.organizations_by_code(session, sorted(codes))
    return {code: org.name for code, org in found.items()}


# -- the resident ---------------------------------------------------------------------------------

@router.get("/me/childcare", response_class=HTMLResponse)
async def my_childcare(request: Request, session: DbSession, resident: CurrentResident) -> HTMLResponse:
    applications = await service.my_applications(session, resident.principal.id)
    rows = []
    for application in applications:
        rows.append((application, service.steps(application, await service.certificates_of(session, application))))
    return templates.TemplateResponse(request, "childcare/mine.html", _ctx(resident=resident, rows=rows))


async def _apply_page(request, session, resident, values: dict, picks: list[str], *, errors=None, status=200):
    facilities = []
    for pick in picks:
        lg_code, _, facility_id = pick.partition(":")
        try:
            facilities.append(await service.facility_anywhere(session, lg_code, facility_id))
        except (NotFound, InvalidInput):
            continue
    names = await _names(session, {f.lg_code for f in facilities})
    values.setdefault("form_token", secrets.token_urlsafe(24))
    return templates.TemplateResponse(request, "childcare/apply.html", _ctx(
        resident=resident, facilities=facilities, names=names, values=values, errors=errors or {},
        april=service.entry_april(utcnow().date())), status_code=status)


@router.get("/me/childcare/apply", response_class=HTMLResponse)
async def apply_page(request: Request, session: DbSession, resident: CurrentResident) -> HTMLResponse:
    picks = request.query_params.getlist("pick")
    return await _apply_page(request, session, resident, {"guardian_name": resident.principal.display_name,
                                                          "same_facility": "1"}, picks)


def _ordered_preferences(form: dict) -> tuple[list[str], list[str]]:
    """The picked facilities (``pick``, as shown) and the preferences they make, ordered by the
    希望順位 entered beside each (``rank_<n>``; ties keep the order shown)."""
    picks = [p for p in form.get("pick", []) if p]
    ranked = []
    for n, pick in enumerate(picks):
        raw = str(form.get(f"rank_{n}", "")).strip()
        rank = int(raw) if raw.isdigit() else 99
        ranked.append((rank, n, pick))
    return picks, [pick for rank, n, pick in sorted(ranked) if rank != 0]


@router.post("/me/childcare/apply", dependencies=[Depends(verify_csrf)])
async def apply_submit(request: Request, session: DbSession, resident: CurrentResident) -> Response:
    form = await _form(request)
    picks, ordered = _ordered_preferences(form)
    form["preference"] = ordered
    try:
        data = await service.application_input(session, form, today=utcnow().date())
        application = await service.submit_application(session, resident.principal, data)
    except InvalidInput as exc:
        await session.rollback()
        return await _apply_page(request, session, resident, form, picks, errors=_errs(exc), status=422)
    await session.commit()
    return RedirectResponse(f"/me/childcare/{application.receipt_no}", status_code=303)


@router.get("/me/childcare/{receipt_no}", response_class=HTMLResponse)
async def my_application(receipt_no: str, request: Request, session: DbSession,
                         resident: CurrentResident) -> HTMLResponse:
    application = await service.my_application(session, resident.principal.id, receipt_no)
    certificates = await service.certificates_of(session, application)
    return templates.TemplateResponse(request, "childcare/my_application.html", _ctx(
        resident=resident, application=application, certificates=certificates,
        steps=service.steps(application, certificates)))


# -- operators and employers (GビズID) -------------------------------------------------------------

async def _business_page(request, session, principal: Principal, *, errors=None, error=None, status=200):
    number = await service.corporate_number_of(session, principal)
    facilities = await service.operator_facilities(session, number)
    certificates = await service.certificates_for_employer(session, number)
    reports_sent = await service.operator_reports(session, number)
    names = await _names(session, {f.lg_code for f in facilities} | {c.lg_code for c in certificates})
    return templates.TemplateResponse(request, "childcare/business.html", _ctx(
        principal=principal, corporate_number=number, facilities=facilities, certificates=certificates,
        reports_sent=reports_sent, names=names, errors=errors or {}, error=error), status_code=status)


@router.get("/business/childcare", response_class=HTMLResponse)
async def business_page(request: Request, session: DbSession, principal: CurrentBusiness) -> HTMLResponse:
    return await _business_page(request, session, principal)


@router.post("/business/childcare/certificates/{lg_code}/{certificate_id}", dependencies=[Depends(verify_csrf)])
async def certify(lg_code: str, certificate_id: str, request: Request, session: DbSession,
                  principal: CurrentBusiness) -> Response:
    form = await _form(request)
    number = await service.corporate_number_of(session, principal)
    try:
        values = service.certificate_values(form)
        await service.certify(session, principal, number, lg_code, certificate_id, values)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        errors = {f"{certificate_id}:{k}": v for k, v in _errs(exc).items()} if isinstance(exc, InvalidInput) else {}
        return await _business_page(request, session, principal, errors=errors, error=exc.detail, status=exc.status)
    await session.commit()
    return RedirectResponse("/business/childcare?certified=1#certificates", status_code=303)


async def _facility_page(request, session, principal, facility, values, *, errors=None, error=None, status=200,
                         lg_code: str = ""):
    names = await _names(session, {facility.lg_code} if facility else set())
    return templates.TemplateResponse(request, "childcare/facility_form.html", _ctx(
        principal=principal, facility=facility, values=values, errors=errors or {}, error=error,
        names=names, lg_code=lg_code), status_code=status)


@router.get("/business/childcare/facilities/new", response_class=HTMLResponse)
async def new_facility_page(request: Request, session: DbSession, principal: CurrentBusiness) -> HTMLResponse:
    await service.corporate_number_of(session, principal)
    return await _facility_page(request, session, principal, None, service.facility_form(None))


@router.post("/business/childcare/facilities/new", dependencies=[Depends(verify_csrf)])
async def new_facility(request: Request, session: DbSession, principal: CurrentBusiness) -> Response:
    form = await _form(request)
    number = await service.corporate_number_of(session, principal)
    from kiban.core.registry import service as registry_service
    errors: dict[str, list[str]] = {}
    lg_code = ""
    try:
        lg_code = await registry_service.resolve_lg_code_input(session, str(form.get("municipality") or ""),
                                                               field="municipality", label="所在地の市区町村")
    except InvalidInput as exc:
        errors.update(_errs(exc))
    try:
        values = service.facility_values(form)
    except InvalidInput as exc:
        errors.update(_errs(exc))
    if errors:
        return await _facility_page(request, session, principal, None, form, errors=errors,
                                    error="施設の情報に誤りがあります。", status=422)
    try:
        facility = await service.register_facility(session, principal, number, lg_code, values)
    except InvalidInput as exc:
        await session.rollback()
        return await _facility_page(request, session, principal, None, form, errors=_errs(exc), error=exc.detail,
                                    status=422)
    await session.commit()
    return RedirectResponse(f"/business/childcare/facilities/{facility.lg_code}/{facility.id}?saved=1", status_code=303)


@router.get("/business/childcare/facilities/{lg_code}/{facility_id}", response_class=HTMLResponse)
async def facility_page(lg_code: str, facility_id: str, request: Request, session: DbSession,
                        principal: CurrentBusiness) -> HTMLResponse:
    number = await service.corporate_number_of(session, principal)
    facility = await service.operator_facility(session, number, lg_code, facility_id)
    return await _facility_page(request, session, principal, facility,
                                {**service.facility_form(facility), "expected_version": facility.version})


@router.post("/business/childcare/facilities/{lg_code}/{facility_id}", dependencies=[Depends(verify_csrf)])
async def facility_save(lg_code: str, facility_id: str, request: Request, session: DbSession,
                        principal: CurrentBusiness) -> Response:
    form = await _form(request)
    number = await service.corporate_number_of(session, principal)
    facility = await service.operator_facility(session, number, lg_code, facility_id)
    try:
        values = service.facility_values(form)
        expected = int(str(form.get("expected_version") or "0")) if str(form.get("expected_version") or "0").isdigit() else 0
        await service.update_facility(session, principal, facility, values, expected)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        facility = await service.operator_facility(session, number, lg_code, facility_id)
        return await _facility_page(request, session, principal, facility, form,
                                    errors=_errs(exc) if isinstance(exc, InvalidInput) else {}, error=exc.detail,
                                    status=exc.status)
    await session.commit()
    return RedirectResponse(f"/business/childcare/facilities/{lg_code}/{facility_id}?saved=1", status_code=303)


async def _report_page(request, session, principal, facility, values, *, errors=None, error=None, status=200):
    return templates.TemplateResponse(request, "childcare/report_form.html", _ctx(
        principal=principal, facility=facility, values=values, errors=errors or {}, error=error,
        rows=range(1, 6)), status_code=status)


@router.get("/business/childcare/facilities/{lg_code}/{facility_id}/report", response_class=HTMLResponse)
async def report_page(lg_code: str, facility_id: str, request: Request, session: DbSession,
                      principal: CurrentBusiness) -> HTMLResponse:
    number = await service.corporate_number_of(session, principal)
    facility = await service.operator_facility(session, number, lg_code, facility_id)
    return await _report_page(request, session, principal, facility, {"month": service.month_now()})


@router.post("/business/childcare/facilities/{lg_code}/{facility_id}/report", dependencies=[Depends(verify_csrf)])
async def report_submit(lg_code: str, facility_id: str, request: Request, session: DbSession,
                        principal: CurrentBusiness) -> Response:
    form = await _form(request)
    number = await service.corporate_number_of(session, principal)
    facility = await service.operator_facility(session, number, lg_code, facility_id)
    try:
        data = await service.report_input(session, form)
        report = await service.submit_report(session, principal, number, facility, data)
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        facility = await service.operator_facility(session, number, lg_code, facility_id)
        return await _report_page(request, session, principal, facility, form,
                                  errors=_errs(exc) if isinstance(exc, InvalidInput) else {}, error=exc.detail,
                                  status=exc.status)
    await session.commit()
    return RedirectResponse(f"/business/childcare/reports/{report.id}", status_code=303)


@router.get("/business/childcare/reports/{report_id}", response_class=HTMLResponse)
async def receipt_page(report_id: str, request: Request, session: DbSession, principal: CurrentBusiness) -> HTMLResponse:
    number = await service.corporate_number_of(session, principal)
    report = await service.operator_report(session, number, report_id)
    names = await _names(session, set(report.residences) | {report.lg_code})
    return templates.TemplateResponse(request, "childcare/receipt.html", _ctx(
        principal=principal, report=report, names=names, valid=reports.verify(report.receipt, report.signature)))


# -- municipal staff ------------------------------------------------------------------------------

@router.get("/t/{lg_code}/childcare", response_class=HTMLResponse)
async def overview(request: Request, session: DbSession, staff: Reader) -> HTMLResponse:
    applications = await service.applications_here(session)
    return templates.TemplateResponse(request, "childcare/overview.html", _ctx(
        tenant=staff.tenant, staff=staff, applications=applications,
        referrals=await service.referrals_here(session), facilities=await service.facilities_here(session),
        rules=await service.current_rules(session),
        may_manage=staff.can(Permission.childcare_allocation_manage),
        may_read_reports=staff.can(Permission.childcare_report_read)))


@router.get("/t/{lg_code}/childcare/applications/{receipt_no}", response_class=HTMLResponse)
async def application_page(receipt_no: str, request: Request, session: DbSession, staff: Reader) -> HTMLResponse:
    application = await service.application_here(session, receipt_no)
    certificates = await service.certificates_of(session, application)
    current = await service.current_rules(session)
    scored = service.application_points(current.rules, application, certificates) if current else None
    await audit.record(session, audit.Actor.of_staff(staff), "childcare.application.viewed",
                       target_type="childcare_application", target_id=application.receipt_no,
                       subject_id=application.principal_id, purpose="利用調整")
    await session.commit()
    return templates.TemplateResponse(request, "childcare/application.html", _ctx(
        tenant=staff.tenant, staff=staff, application=application, certificates=certificates, rules=current,
        scored=scored))


async def _facility_staff_page(request, session, staff, facility, *, values=None, errors=None, error=None,
                               status=200):
    if values is None:
        values = {f"outside_quota_{a}": "" if q is None else str(q) for a, q in enumerate(facility.outside_quotas)}
    return templates.TemplateResponse(request, "childcare/facility_staff.html", _ctx(
        tenant=staff.tenant, staff=staff, facility=facility, values=values, errors=errors or {}, error=error,
        may_manage=staff.can(Permission.childcare_allocation_manage)), status_code=status)


@router.get("/t/{lg_code}/childcare/facilities/{facility_id}", response_class=HTMLResponse)
async def facility_staff_page(facility_id: str, request: Request, session: DbSession, staff: Reader) -> HTMLResponse:
    facility = await service.facility_here(session, facility_id)
    return await _facility_staff_page(request, session, staff, facility)


@router.post("/t/{lg_code}/childcare/facilities/{facility_id}", dependencies=[Depends(verify_csrf)])
async def facility_quota_save(facility_id: str, request: Request, session: DbSession, staff: Manager) -> Response:
    """The 管外受入枠 of a facility in this municipality's area (広域利用)."""
    form = await _form(request)
    facility = await service.facility_here(session, facility_id)
    try:
        quotas = service.outside_quota_values(form, facility)
    except InvalidInput as exc:
        return await _facility_staff_page(request, session, staff, facility, values=form, errors=_errs(exc),
                                          error=exc.detail, status=422)
    await service.set_outside_quota(session, audit.Actor.of_staff(staff), facility, quotas)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/childcare/facilities/{facility_id}?saved=1", status_code=303)


async def _rules_page(request, session, staff, *, values=None, errors=None, error=None, preview=None, status=200,
                      notice=None):
    versions = await service.rule_versions(session)
    current = versions[0] if versions else None
    if values is None:
        values = rulebook.to_form(current.rules if current else rulebook.PRESETS["example_sum"]["rules"])
        values["name"] = ""
    draft_rules = None
    if preview is None and current is not None:
        draft_rules = current.rules
    return templates.TemplateResponse(request, "childcare/rules.html", _ctx(
        tenant=staff.tenant, staff=staff, versions=versions, current=current, values=values, errors=errors or {},
        error=error, preview=preview if preview is not None else (rulebook.preview(draft_rules) if draft_rules else None),
        presets=rulebook.PRESETS, describe=rulebook.describe, notice=notice), status_code=status)


@router.get("/t/{lg_code}/childcare/rules", response_class=HTMLResponse)
async def rules_page(request: Request, session: DbSession, staff: Manager) -> HTMLResponse:
    return await _rules_page(request, session, staff)


@router.post("/t/{lg_code}/childcare/rules", dependencies=[Depends(verify_csrf)])
async def rules_save(request: Request, session: DbSession, staff: Manager) -> Response:
    form = await _form(request)
    try:
        rules = rulebook.from_form(form)
    except InvalidInput as exc:
        return await _rules_page(request, session, staff, values=form, errors=_errs(exc), error=exc.detail, status=422)
    if form.get("action") == "preview":
        return await _rules_page(request, session, staff, values=form, preview=rulebook.preview(rules),
                                 notice="この内容はまだ保存していません。下の試算を確かめてから保存してください。")
    try:
        await service.save_rules(session, audit.Actor.of_staff(staff), rules, name=str(form.get("name") or ""),
                                 note=str(form.get("note") or ""))
    except InvalidInput as exc:
        await session.rollback()
        return await _rules_page(request, session, staff, values=form, errors=_errs(exc), error=exc.detail, status=422)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/childcare/rules?saved=1", status_code=303)


@router.post("/t/{lg_code}/childcare/rules/preset", dependencies=[Depends(verify_csrf)])
async def rules_preset(request: Request, session: DbSession, staff: Manager) -> Response:
    form = await _form(request)
    try:
        chosen = rulebook.preset(str(form.get("preset") or ""))
    except InvalidInput as exc:
        return await _rules_page(request, session, staff, error=exc.detail, status=422)
    await service.save_rules(session, audit.Actor.of_staff(staff), chosen["rules"], name=chosen["name"],
                             based_on=chosen["based_on"])
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/childcare/rules?saved=1", status_code=303)


async def _allocation_page(request, session, staff, *, error=None, status=200):
    return templates.TemplateResponse(request, "childcare/allocation.html", _ctx(
        tenant=staff.tenant, staff=staff, runs=await service.runs(session),
        versions=await service.rule_versions(session), waiting=len(await service.waiting_applications(session)),
        may_manage=staff.can(Permission.childcare_allocation_manage), error=error), status_code=status)


@router.get("/t/{lg_code}/childcare/allocation", response_class=HTMLResponse)
async def allocation_page(request: Request, session: DbSession, staff: Reader) -> HTMLResponse:
    return await _allocation_page(request, session, staff)


def _number(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 9:
        raise NotFound("この利用調整の結果は見つかりませんでした。")
    return int(raw)


@router.post("/t/{lg_code}/childcare/allocation", dependencies=[Depends(verify_csrf)])
async def allocation_run(request: Request, session: DbSession, staff: Manager) -> Response:
    form = await _form(request)
    raw = str(form.get("rule_version") or "")
    try:
        if not raw.isdigit():
            raise InvalidInput("使う利用調整基準の版を選んでください。",
                               errors=[{"field": "rule_version", "message": "使う利用調整基準の版を選んでください。"}])
        run = await service.run_allocation(session, audit.Actor.of_staff(staff), int(raw),
                                           str(form.get("mode") or "default"))
    except (InvalidInput, NotFound) as exc:
        await session.rollback()
        return await _allocation_page(request, session, staff, error=exc.detail, status=422)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/childcare/allocation/{run.number}", status_code=303)


async def _run_page(request, session, staff, run, *, confirm=False, error=None, status=200):
    version = await service.rule_version(session, run.rule_version)
    children = {c["id"]: c for c in run.instance["children"]}
    applications = {a.receipt_no: a for a in await service.applications_here(session)}
    names = {}
    for application in applications.values():
        for child in application.children:
            names[f"{application.receipt_no}:{child['key']}"] = child["name"]
    return templates.TemplateResponse(request, "childcare/run.html", _ctx(
        tenant=staff.tenant, staff=staff, run=run, version=version, children=children, child_names=names,
        may_manage=staff.can(Permission.childcare_allocation_manage), confirm=confirm, error=error,
        describe=rulebook.describe), status_code=status)


@router.get("/t/{lg_code}/childcare/allocation/{number}", response_class=HTMLResponse)
async def run_page(number: str, request: Request, session: DbSession, staff: Reader) -> HTMLResponse:
    run = await service.get_run(session, _number(number))
    return await _run_page(request, session, staff, run)


@router.post("/t/{lg_code}/childcare/allocation/{number}/publish", dependencies=[Depends(verify_csrf)])
async def run_publish(number: str, request: Request, session: DbSession, staff: Manager) -> Response:
    """Destructive in effect (parents are told, the result is frozen): the first post asks, only
    ``confirm=yes`` publishes."""
    form = await _form(request)
    run = await service.get_run(session, _number(number))
    if form.get("confirm") != "yes":
        return await _run_page(request, session, staff, run, confirm=True)
    try:
        await service.publish_run(session, audit.Actor.of_staff(staff), run.number)
    except Conflict as exc:
        await session.rollback()
        run = await service.get_run(session, _number(number))
        return await _run_page(request, session, staff, run, error=exc.detail, status=409)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/childcare/allocation/{run.number}", status_code=303)


@router.get("/t/{lg_code}/childcare/reports", response_class=HTMLResponse)
async def reports_page(request: Request, session: DbSession, staff: ReportReader) -> HTMLResponse:
    parts = await service.report_parts_here(session)
    headers = await service.reports_here(session)
    return templates.TemplateResponse(request, "childcare/reports.html", _ctx(
        tenant=staff.tenant, staff=staff, parts=parts, headers=headers,
        names=await _names(session, {p.facility_lg_code for p in parts}),
        prices=await service.prices(session), may_manage=staff.can(Permission.childcare_allocation_manage)))


async def _prices_page(request, session, staff, *, values=None, errors=None, error=None, status=200):
    current = await service.prices(session)
    if values is None:
        values = {"name": "", "bands": reports.bands_text(current.bands if current else reports.EXAMPLE_BANDS)}
    return templates.TemplateResponse(request, "childcare/prices.html", _ctx(
        tenant=staff.tenant, staff=staff, current=current, values=values, errors=errors or {}, error=error),
        status_code=status)


@router.get("/t/{lg_code}/childcare/prices", response_class=HTMLResponse)
async def prices_page(request: Request, session: DbSession, staff: Manager) -> HTMLResponse:
    return await _prices_page(request, session, staff)


@router.post("/t/{lg_code}/childcare/prices", dependencies=[Depends(verify_csrf)])
async def prices_save(request: Request, session: DbSession, staff: Manager) -> Response:
    form = await _form(request)
    try:
        await service.save_prices(session, audit.Actor.of_staff(staff), str(form.get("name") or ""),
                                  str(form.get("bands") or ""))
    except InvalidInput as exc:
        await session.rollback()
        return await _prices_page(request, session, staff, values=form, errors=_errs(exc), error=exc.detail, status=422)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/childcare/reports", status_code=303)


# -- 待機児童 (public, open data) ---------------------------------------------------------------------

WAITING_HEADER = ["団体コード", "団体名", "年齢クラス", "申込み児童数", "内定した児童数", "保留の児童数",
                  "うち特定の施設のみを希望（待機児童に含めない）", "待機児童数", "利用調整の回", "公開日時"]


@router.get("/t/{lg_code}/childcare/waiting", response_class=HTMLResponse, dependencies=[PUBLIC])
async def waiting_page(request: Request, session: DbSession, tenant: CurrentTenant) -> HTMLResponse:
    run, rows = await service.waiting_children(session)
    return templates.TemplateResponse(request, "childcare/waiting.html", _ctx(tenant=tenant, run=run, rows=rows))


@router.get("/t/{lg_code}/childcare/waiting.csv", dependencies=[PUBLIC])
async def waiting_csv(session: DbSession, tenant: CurrentTenant) -> Response:
    run, rows = await service.waiting_children(session)
    published = run.published_at.isoformat(timespec="seconds") if run else ""
    lines = [[tenant.lg_code, tenant.name, f"{r.age}歳児", r.applied, r.placed, r.unplaced, r.excluded, r.waiting,
              run.number if run else "", published] for r in rows]
    return export.attachment(export.csv_bytes(lines, WAITING_HEADER), f"{tenant.name}_待機児童数.csv")
