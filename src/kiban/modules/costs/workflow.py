"""The secretariat's and members' fee workflow, shared by the pages (web.py) and their JSON twins
(api_tenant.py): whose consortium it is, the preview of an allocation, the checks of a decision
(納付期限, 差替), and the data printed on a statement. No request objects here."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime

from kiban.core.identity.dependencies import StaffContext
from kiban.core.metering import queries as metering
from kiban.kit import wareki
from kiban.kit.errors import InvalidInput, NotFound
from kiban.modules.catalog import service as catalog
from kiban.modules.catalog.service import parse_yen
from kiban.modules.costs import service, statements
from kiban.modules.costs.models import FeeSchedule, FeeStatement


def today() -> date:
    return datetime.now(wareki.JST).date()


def this_fiscal_year() -> int:
    now = today()
    return now.year if now.month >= 4 else now.year - 1


async def secretariat_consortium(session, staff: StaffContext, consortium_id: str):
    consortium = await catalog.get_consortium(session, consortium_id)
    if consortium.secretariat_code != staff.tenant.lg_code:
        raise NotFound("共同利用の枠組みが見つかりません。")
    return consortium


def fiscal_year_of(text: str) -> int:
    value = unicodedata.normalize("NFKC", text or "").strip()
    if not value.isdigit() or not 2000 <= int(value) <= 2100:
        raise InvalidInput("年度は西暦の数字で入力してください（例: 2026）。")
    return int(value)


def spec_and_amount(form: dict) -> tuple[service.MethodSpec, int]:
    spec = service.method_from_form(form["kind"], form["ratio"], form["equal_percent"], form["rest"],
                                    form["subsidy_percent"], form.get("prefecture_share", ""))
    amount = parse_yen(form["amount"], "総経費")
    if amount is None:
        raise InvalidInput("配分する総経費（円）を入力してください。")
    return spec, amount


USAGE_SOURCES = {"entered": "事務局が入力した利用量（年度ごと）", "metered": "計測した利用実績（月ごとの件数）"}
_EVENT_CODE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


def usage_fields(form: dict, fiscal_year: int) -> dict:
    """Where 利用量割 takes its figures, checked: ``entered`` (as before) or ``metered`` with a
    shared system (default: the one allocated), an event and whole months (default: the fiscal
    year, April to March)."""
    source = (form.get("usage_source") or "entered").strip()
    if source not in USAGE_SOURCES:
        raise InvalidInput("利用量の出典を選んでください。")
    if source == "entered":
        return {"usage_source": "entered", "usage_service": "", "usage_event": "", "usage_from": "", "usage_to": ""}
    event = (form.get("usage_event") or "").strip()
    if not _EVENT_CODE.match(event):
        raise InvalidInput("計測値の利用の種類を選んでください。")
    raw_from, raw_to = (form.get("usage_from") or "").strip(), (form.get("usage_to") or "").strip()
    start = metering.parse_month(raw_from, "計測値の開始月") if raw_from else date(fiscal_year, 4, 1)
    end = metering.parse_month(raw_to, "計測値の終了月") if raw_to else date(fiscal_year + 1, 3, 1)
    start, end = metering.period(start, end)
    return {"usage_source": "metered", "usage_service": (form.get("usage_service") or "").strip() or form["service"],
            "usage_event": event, "usage_from": metering.month_text(start), "usage_to": metering.month_text(end)}


async def preview(session, consortium_id: str, form: dict) -> dict:
    spec, amount = spec_and_amount(form)
    fiscal_year = fiscal_year_of(form["fiscal_year"])
    if spec.uses_usage:
        spec = service.ConsortiumMethod(**spec.model_dump(), **usage_fields(form, fiscal_year))
    shared = await catalog.shared_system(session, consortium_id, form["service"])
    result, basis = await service.allocate_with_basis(session, consortium_id, form["service"], fiscal_year, amount,
                                                      spec)
    current = await service.in_force(session, consortium_id, form["service"], fiscal_year)
    return {"result": result, "spec": spec, "service": shared.service, "fiscal_year": fiscal_year,
            "total": sum(result.amounts), "chart": [(f.member.name, f.fee) for f in result.fees], "current": current,
            "basis": basis}


def decision_errors(decision: dict, current) -> tuple[service.Decision | None, list[str]]:
    """Every problem with 納付期限 and 差替 at once (the calculation was checked before)."""
    errors = []
    due_on = None
    text = unicodedata.normalize("NFKC", decision["due_on"]).strip()
    if not text:
        errors.append("納付期限を入力してください。")
    else:
        try:
            due_on = date.fromisoformat(text.replace("/", "-"))
        except ValueError:
            errors.append(f"納付期限「{decision['due_on']}」は日付（例: 2026-05-31）で入力してください。")
        else:
            if due_on < today():
                errors.append("納付期限が過去の日付です。今日以降の日付を入力してください。")
    replaces = decision["replace"] or None
    if current is not None and replaces is None:
        errors.append("この年度・システムの負担金は決定済みです。差し替える場合は「決定済みの算定を差し替える」を選んでください。")
    if replaces and not decision["reason"].strip():
        errors.append("差替の理由を入力してください。")
    if len(decision["reason"].strip()) > 500:
        errors.append("差替の理由は500文字以内で入力してください。")
    if errors:
        return None, errors
    return service.Decision(due_on=due_on, replaces=replaces, reason=decision["reason"]), []


def cancellation_text(when: datetime | None, new_document_no: str | None, reason: str | None) -> str:
    text = f"{wareki.datetime_ja(when)}に取り消し、"
    text += f"文書番号 {new_document_no} の算定書に差し替えました。" if new_document_no else "新しい算定に差し替えました。"
    return text + (f"差替の理由: {reason}" if reason else "")


def schedule_statement(schedule: FeeSchedule, consortium_name: str, service_name: str, code: str,
                        replacement: FeeSchedule | None = None) -> statements.StatementData:
    line = next((line for line in schedule.lines if line["code"] == code), None)
    if line is None:
        raise NotFound("この算定に、その団体は含まれていません。")
    new_no = None
    if replacement is not None and any(line["code"] == code for line in replacement.lines):
        new_no = f"{replacement.number}-{code}"
    return statements.StatementData(
        consortium_name=consortium_name, service_name=service_name, fiscal_year=schedule.fiscal_year,
        member_code=code, member_name=line["name"], population=line["population"], fee=line["fee"],
        percent=line["percent"], explanation=line["explanation"], amount=schedule.amount, subsidy=schedule.subsidy,
        allocated=schedule.allocated, member_count=len(schedule.lines), method_label=schedule.method_label,
        issued_at_text=wareki.datetime_ja(schedule.created_at), schedule_id=schedule.id,
        document_no=f"{schedule.number}-{code}" if schedule.number else "",
        issued_on_text=wareki.wareki_with_seireki(schedule.created_at),
        issuer=schedule.issuer, due_on_text=wareki.wareki_with_seireki(schedule.due_on),
        cancelled=not schedule.in_force,
        cancellation=cancellation_text(schedule.replaced_at, new_no, replacement.replacement_reason if replacement else None)
        if not schedule.in_force else "")


async def schedule(session, staff, consortium_id, schedule_id):
    consortium = await secretariat_consortium(session, staff, consortium_id)
    schedule = await service.get_schedule(session, schedule_id)
    if schedule.consortium_id != consortium_id:
        raise NotFound("負担金の算定結果が見つかりません。")
    item = await catalog.get_service(session, schedule.service_id)
    return consortium, schedule, item


def statement_data(statement: FeeStatement, replacement: FeeStatement | None = None) -> statements.StatementData:
    return statements.StatementData(
        consortium_name=statement.consortium_name, service_name=statement.service_name,
        fiscal_year=statement.fiscal_year, member_code=statement.lg_code, member_name=statement.member_name,
        population=statement.population, fee=statement.fee, percent=statement.percent,
        explanation=statement.explanation, amount=statement.amount, subsidy=statement.subsidy,
        allocated=statement.allocated, member_count=statement.member_count, method_label=statement.method_label,
        issued_at_text=wareki.datetime_ja(statement.issued_at), schedule_id=statement.schedule_id,
        document_no=statement.document_no or "",
        issued_on_text=wareki.wareki_with_seireki(statement.issued_at),
        issuer=statement.issuer, due_on_text=wareki.wareki_with_seireki(statement.due_on),
        cancelled=not statement.in_force,
        cancellation=cancellation_text(statement.cancelled_at, replacement.document_no if replacement else None,
                                        statement.cancel_reason) if not statement.in_force else "")
