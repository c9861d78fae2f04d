"""保活ワンストップと施設管理の業務ルール. Pages and their JSON twins call these; audit entries and
notices are written here, in the caller's transaction; nothing here commits.

Every read or write that crosses municipalities is one of the named rules below (see
``models.py`` for who owns which row), and each is audited on the chain of the municipality whose
rows it touches:

- ``PUBLIC_FACILITY_INFO``: anyone reads facilities' public information across municipalities.
- ``WIDE_AREA_REFERRAL``: an application naming another municipality's facility sends that
  municipality a referral with only what concerns its facility, and later the outcome there.
- ``EMPLOYER_CERTIFICATE``: an employer reads and answers the 就労証明書 asked of its 法人番号.
- ``OPERATOR_FACILITY``: an operator reads and edits its facilities (by 法人番号).
- ``BENEFIT_PAYER``: a monthly report's part about the children of one municipality of residence
  goes to that municipality, which pays their 施設型給付費.
"""

from __future__ import annotations

import asyncio

import re
import secrets
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit import labels as audit_labels
from kiban.core.audit import service as audit
from kiban.core.identity.models import BusinessIdentity, Principal
from kiban.core.notify.service import Recipient, TemplateDef, register_template, send
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import Tenant, as_tenant, current_tenant, unscoped
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.modules.childcare import allocation as engine
from kiban.modules.childcare import reports, rules as rulebook
from kiban.modules.childcare.models import (
    AGE_CLASSES,
    FACILITY_KIND_LABELS,
    ApplicationStatus,
    ChildcareAllocationRun,
    ChildcareApplication,
    ChildcareEmploymentCertificate,
    ChildcareFacility,
    ChildcareMonthlyReport,
    ChildcarePriceTable,
    ChildcareReferral,
    ChildcareReportPart,
    ChildcareRuleVersion,
    FacilityKind,
)

SERVICE_ID = "hokatsu"  # the catalog's 保活情報連携基盤 (notices are metered under it)
NOT_FOUND = "お探しの情報は見つかりませんでした。"

PUBLIC_FACILITY_INFO = "教育・保育施設の情報の公表（子ども・子育て支援法 第58条）"
WIDE_AREA_REFERRAL = "広域利用の協議（児童福祉法 第24条・子ども・子育て支援法 第42条）"
EMPLOYER_CERTIFICATE = "保育の必要性の認定のための就労証明（子ども・子育て支援法 第20条）"
OPERATOR_FACILITY = "施設の設置者による施設情報の管理（法人番号で照合）"
BENEFIT_PAYER = "施設型給付費の支給（子ども・子育て支援法 第27条: 支給認定をした居住地の市町村が支払う）"

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MONTH = re.compile(r"^(20\d\d)-(0[1-9]|1[0-2])$")

RECEIVED = register_template(TemplateDef(
    key="childcare.received", label="保育施設の利用申込みの受付通知",
    subject="【{municipality}】保育施設の利用申込みを受け付けました（受付番号 {receipt_no}）",
    body="{guardian_name} 様\n\n保育施設の利用申込みを受け付けました。\n受付番号: {receipt_no}\n"
         "申込みの状況は「わたしの保活」でいつでも確認できます。\n\n{municipality}",
    placeholders=("municipality", "guardian_name", "receipt_no")))
CERTIFIED = register_template(TemplateDef(
    key="childcare.certified", label="就労証明書の提出の通知",
    subject="【{municipality}】就労証明書が勤務先から届きました（受付番号 {receipt_no}）",
    body="{guardian_name} 様\n\n{employer} から就労証明書が電子で届きました。\n受付番号: {receipt_no}\n\n{municipality}",
    placeholders=("municipality", "guardian_name", "receipt_no", "employer")))
RESULT = register_template(TemplateDef(
    key="childcare.result", label="保育施設の利用調整の結果通知",
    subject="【{municipality}】保育施設の利用調整の結果をお知らせします（受付番号 {receipt_no}）",
    body="{guardian_name} 様\n\n利用調整の結果が出ました。\n{outcome}\n"
         "理由は「わたしの保活」で確認できます。\n\n{municipality}",
    placeholders=("municipality", "guardian_name", "receipt_no", "outcome")))


# What the audit log's readers (staff, and residents at /me) see for this module's entries: the
# module registers its words at import, as it registers its notice templates.
audit_labels.ACTION_LABELS.update({
    "childcare.facility.registered": "保育施設の登録",
    "childcare.facility.updated": "保育施設の情報の変更",
    "childcare.facility.outside_quota_set": "保育施設の管外受入枠の設定",
    "childcare.rules.saved": "利用調整基準の保存",
    "childcare.application.submitted": "保育施設の利用申込み",
    "childcare.application.viewed": "保育施設の利用申込みの閲覧",
    "childcare.referral.received": "広域利用の協議の受付",
    "childcare.referral.outcome": "広域利用の協議の結果",
    "childcare.certificate.submitted": "就労証明書の提出（勤務先から）",
    "childcare.allocation.run": "利用調整の試行",
    "childcare.allocation.published": "利用調整の結果の公開",
    "childcare.allocation.result_published": "利用調整の結果の通知",
    "childcare.prices.saved": "公定価格の保存",
    "childcare.report.submitted": "保育施設の月次報告の提出",
    "childcare.report.part_received": "保育施設の月次報告の受付（住民の分）",
})
audit_labels.TARGET_TYPE_LABELS.update({
    "childcare_facility": "保育施設", "childcare_application": "保育施設の利用申込み",
    "childcare_rule_version": "利用調整基準", "childcare_referral": "広域利用の協議",
    "childcare_allocation_run": "利用調整", "childcare_price_table": "公定価格",
    "childcare_monthly_report": "保育施設の月次報告",
})
audit_labels.DETAIL_KEYS.update({"residence": "お住まいの市区町村", "rank": "希望順位", "month": "対象月",
                                 "employer": "勤務先"})


# -- repositories ---------------------------------------------------------------------------------

class FacilityRepository(TenantRepository[ChildcareFacility]):
    model = ChildcareFacility


class RuleRepository(TenantRepository[ChildcareRuleVersion]):
    model = ChildcareRuleVersion


class ApplicationRepository(TenantRepository[ChildcareApplication]):
    model = ChildcareApplication


class ReferralRepository(TenantRepository[ChildcareReferral]):
    model = ChildcareReferral


class CertificateRepository(TenantRepository[ChildcareEmploymentCertificate]):
    model = ChildcareEmploymentCertificate


class RunRepository(TenantRepository[ChildcareAllocationRun]):
    model = ChildcareAllocationRun


class PriceRepository(TenantRepository[ChildcarePriceTable]):
    model = ChildcarePriceTable


class ReportRepository(TenantRepository[ChildcareMonthlyReport]):
    model = ChildcareMonthlyReport


class PartRepository(TenantRepository[ChildcareReportPart]):
    model = ChildcareReportPart


async def _tenant(session: AsyncSession, lg_code: str) -> Tenant:
    return await registry_service.tenant_for(session, lg_code)


def _int(errors: list, form: Mapping, key: str, label: str, low: int, high: int, default: int | None = None) -> int:
    raw = str(form.get(key, "") if form.get(key) is not None else "").strip()
    raw = raw.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if raw == "" and default is not None:
        return default
    if not raw.isdigit():
        errors.append({"field": key, "message": f"{label}は {low} から {high} までの整数で入力してください。"})
        return 0
    value = int(raw)
    if not low <= value <= high:
        errors.append({"field": key, "message": f"{label}は {low} から {high} までの整数で入力してください。"})
    return value


def _text(errors: list, form: Mapping, key: str, label: str, limit: int, *, required: bool) -> str:
    value = str(form.get(key) or "").strip()
    if required and not value:
        errors.append({"field": key, "message": f"{label}を入力してください。"})
    elif len(value) > limit:
        errors.append({"field": key, "message": f"{label}は {limit} 文字以内で入力してください。"})
    return value


def _raise(errors: list, summary: str) -> None:
    if errors:
        raise InvalidInput(summary + " " + " ".join(e["message"] for e in errors), errors=errors)


# -- facilities -----------------------------------------------------------------------------------

def facility_values(form: Mapping) -> dict:
    """Checked values of the facility form (operators' page and API); InvalidInput naming every field."""
    errors: list[dict[str, str]] = []
    values: dict = {"name": _text(errors, form, "name", "施設名", 200, required=True),
                    "address": _text(errors, form, "address", "所在地", 300, required=False),
                    "phone": _text(errors, form, "phone", "電話番号", 30, required=False)}
    kind = str(form.get("kind") or "")
    if kind not in {k.value for k in FacilityKind}:
        errors.append({"field": "kind", "message": "施設の種類を選んでください。"})
    values["kind"] = kind
    for key, label in (("opens_at", "開所時刻"), ("closes_at", "閉所時刻")):
        value = str(form.get(key) or "").strip()
        if not _HHMM.match(value):
            errors.append({"field": key, "message": f"{label}は 07:30 のように 24 時間制で入力してください。"})
        values[key] = value
    if not any(e["field"] in ("opens_at", "closes_at") for e in errors) and values["opens_at"] >= values["closes_at"]:
        errors.append({"field": "closes_at", "message": "閉所時刻は開所時刻より後にしてください。"})
    values["extended_care"] = str(form.get("extended_care") or "") in ("1", "on", "true", "True")
    values["temporary_care"] = str(form.get("temporary_care") or "") in ("1", "on", "true", "True")
    for age in AGE_CLASSES:
        capacity = _int(errors, form, f"capacity_{age}", f"{age}歳児の定員", 0, 500)
        vacancy = _int(errors, form, f"vacancy_{age}", f"{age}歳児の空き", 0, 500)
        if vacancy > capacity and not any(e["field"] in (f"capacity_{age}", f"vacancy_{age}") for e in errors):
            errors.append({"field": f"vacancy_{age}", "message": f"{age}歳児の空きは定員（{capacity}人）以下にしてください。"})
        values[f"capacity_{age}"] = capacity
        values[f"vacancy_{age}"] = vacancy
    _raise(errors, "施設の情報に誤りがあります。")
    return values


def facility_form(facility: ChildcareFacility | None) -> dict:
    if facility is None:
        return {"kind": "licensed", "opens_at": "07:30", "closes_at": "18:30",
                **{f"capacity_{a}": "0" for a in AGE_CLASSES}, **{f"vacancy_{a}": "0" for a in AGE_CLASSES}}
    keys = ["name", "kind", "address", "phone", "opens_at", "closes_at", "extended_care", "temporary_care"]
    keys += [f"{k}_{a}" for k in ("capacity", "vacancy") for a in AGE_CLASSES]
    return {k: getattr(facility, k) for k in keys}


@dataclass(frozen=True)
class SearchQuery:
    lg_codes: tuple[str, ...] = ()
    age: int | None = None
    vacancy_only: bool = False
    opens_by: str = ""
    closes_after: str = ""
    kind: str = ""
    name: str = ""


async def search_query(session: AsyncSession, form: Mapping) -> SearchQuery:
    """The search form's parameters, checked (municipality by name or code, several with 「、」)."""
    errors: list[dict[str, str]] = []
    codes: list[str] = []
    for part in re.split(r"[、,，\s]+", str(form.get("municipality") or "").strip()):
        if not part:
            continue
        try:
            codes.append(await registry_service.resolve_lg_code_input(session, part, field="municipality",
                                                                      label="市区町村"))
        except InvalidInput as exc:
            errors.extend(exc.errors or [{"field": "municipality", "message": exc.detail}])
    age = None
    if str(form.get("age") or "").strip():
        age = _int(errors, form, "age", "年齢クラス", 0, 5)
    opens_by, closes_after = str(form.get("opens_by") or "").strip(), str(form.get("closes_after") or "").strip()
    for key, value, label in (("opens_by", opens_by, "開所時刻"), ("closes_after", closes_after, "閉所時刻")):
        if value and not _HHMM.match(value):
            errors.append({"field": key, "message": f"{label}は 07:30 のように入力してください。"})
    kind = str(form.get("kind") or "")
    if kind and kind not in {k.value for k in FacilityKind}:
        errors.append({"field": "kind", "message": "施設の種類を選び直してください。"})
    _raise(errors, "検索の条件に誤りがあります。")
    return SearchQuery(tuple(dict.fromkeys(codes)), age, str(form.get("vacancy_only") or "") in ("1", "on", "true"),
                       opens_by, closes_after, kind, str(form.get("name") or "").strip()[:100])


SEARCH_LIMIT = 200


async def search_facilities(session: AsyncSession, query: SearchQuery) -> tuple[list[ChildcareFacility], int]:
    """Facilities of any municipality matching ``query`` (``PUBLIC_FACILITY_INFO``: what every
    facility publishes; no personal data, so the read is not audited). At most ``SEARCH_LIMIT``
    rows, ordered by municipality and name; also returns how many matched."""
    statement = select(ChildcareFacility)
    if query.lg_codes:
        statement = statement.where(ChildcareFacility.lg_code.in_(query.lg_codes))
    if query.age is not None:
        column = getattr(ChildcareFacility, f"capacity_{query.age}")
        statement = statement.where(column > 0)
        if query.vacancy_only:
            statement = statement.where(getattr(ChildcareFacility, f"vacancy_{query.age}") > 0)
    elif query.vacancy_only:
        statement = statement.where(sum(getattr(ChildcareFacility, f"vacancy_{a}") for a in AGE_CLASSES) > 0)
    if query.opens_by:
        statement = statement.where(ChildcareFacility.opens_at <= query.opens_by)
    if query.closes_after:
        statement = statement.where(ChildcareFacility.closes_at >= query.closes_after)
    if query.kind:
        statement = statement.where(ChildcareFacility.kind == query.kind)
    if query.name:
        statement = statement.where(ChildcareFacility.name.contains(query.name))
    async with unscoped(session, PUBLIC_FACILITY_INFO):
        total = int((await session.execute(select(func.count()).select_from(statement.subquery()))).scalar_one())
        found = list((await session.scalars(statement.order_by(ChildcareFacility.lg_code, ChildcareFacility.name)
                                            .limit(SEARCH_LIMIT))).all())
    return found, total


async def facility_anywhere(session: AsyncSession, lg_code: str, facility_id: str) -> ChildcareFacility:
    """One facility's public record, in whichever municipality it stands (``PUBLIC_FACILITY_INFO``)."""
    tenant = await _tenant(session, lg_code)
    async with as_tenant(session, tenant):
        facility = await FacilityRepository(session).first(
            FacilityRepository(session).select().where(ChildcareFacility.id == facility_id))
    if facility is None:
        raise NotFound("お探しの施設は見つかりませんでした。")
    return facility


async def facilities_here(session: AsyncSession) -> Sequence[ChildcareFacility]:
    repo = FacilityRepository(session)
    return await repo.all(repo.select().order_by(ChildcareFacility.name))


async def facility_here(session: AsyncSession, facility_id: str) -> ChildcareFacility:
    """A facility standing in the current tenant's area (another municipality's: 404)."""
    repo = FacilityRepository(session)
    found = await repo.first(repo.select().where(ChildcareFacility.id == facility_id))
    if found is None:
        raise NotFound("お探しの施設は見つかりませんでした。")
    return found


def outside_quota_values(form: Mapping, facility: ChildcareFacility) -> list[int | None]:
    """The 管外受入枠 form checked: ``outside_quota_{age}`` blank (no separate limit) or a whole
    number from 0 up to the class's 定員; InvalidInput naming every wrong class."""
    errors: list[dict[str, str]] = []
    quotas: list[int | None] = []
    for age in AGE_CLASSES:
        key = f"outside_quota_{age}"
        if str(form.get(key) if form.get(key) is not None else "").strip() == "":
            quotas.append(None)
            continue
        capacity = facility.capacity(age)
        before = len(errors)
        value = _int(errors, form, key, f"{age}歳児の管外受入枠", 0, capacity)
        if len(errors) > before:
            errors[-1]["message"] += f"（{age}歳児の定員は {capacity}人です。制限しないときは空欄にします）"
        quotas.append(value)
    _raise(errors, "管外受入枠に誤りがあります。")
    return quotas


async def set_outside_quota(session: AsyncSession, actor: audit.Actor, facility: ChildcareFacility,
                            quotas: Sequence[int | None]) -> ChildcareFacility:
    """The facility's municipality (the current tenant) sets how many places it offers to
    children of other municipalities at this facility, by age class (None: no separate limit).
    The operator's fields and the facility's version are left alone (the operator's form keeps
    working); recorded on the municipality's chain."""
    before = facility.outside_quotas
    for age, value in zip(AGE_CLASSES, quotas, strict=True):
        setattr(facility, f"outside_quota_{age}", value)
    await session.flush()
    await audit.record(session, actor, "childcare.facility.outside_quota_set", target_type="childcare_facility",
                       target_id=facility.id, purpose="広域利用の受入枠の設定",
                       details={"name": facility.name, "changes": {"outside_quota": [before, list(quotas)]}})
    return facility


async def corporate_number_of(session: AsyncSession, principal: Principal) -> str:
    identity = (await session.scalars(select(BusinessIdentity)
                                      .where(BusinessIdentity.principal_id == principal.id))).first()
    if identity is None:
        raise NotFound(NOT_FOUND)
    return identity.corporate_number


async def operator_facilities(session: AsyncSession, corporate_number: str) -> list[ChildcareFacility]:
    """The facilities whose operator is ``corporate_number`` (``OPERATOR_FACILITY``)."""
    async with unscoped(session, OPERATOR_FACILITY):
        return list((await session.scalars(
            select(ChildcareFacility).where(ChildcareFacility.operator_corporate_number == corporate_number)
            .order_by(ChildcareFacility.lg_code, ChildcareFacility.name))).all())


async def operator_facility(session: AsyncSession, corporate_number: str, lg_code: str,
                            facility_id: str) -> ChildcareFacility:
    facility = await facility_anywhere(session, lg_code, facility_id)
    if facility.operator_corporate_number != corporate_number:
        raise NotFound("お探しの施設は見つかりませんでした。")
    return facility


def _business_actor(principal: Principal) -> audit.Actor:
    return audit.Actor("business", principal.display_name, principal.id)


async def register_facility(session: AsyncSession, principal: Principal, corporate_number: str, lg_code: str,
                            values: dict) -> ChildcareFacility:
    """An operator registers a facility in the municipality where it stands; recorded on that
    municipality's chain."""
    if lg_code[2:5] == "000":
        raise InvalidInput("施設の所在地の市区町村を入力してください（都道府県ではなく）。",
                           errors=[{"field": "municipality", "message": "所在地の市区町村を入力してください（都道府県ではなく）。"}])
    tenant = await _tenant(session, lg_code)
    facility = ChildcareFacility(id=str(uuid.uuid4()), lg_code=tenant.lg_code, operator_name=principal.display_name,
                                 operator_corporate_number=corporate_number, updated_by=principal.display_name,
                                 updated_at=utcnow(), version=1, source="設置者が登録", **values)
    async with as_tenant(session, tenant):
        FacilityRepository(session).add(facility)
        await session.flush()
        await audit.record(session, _business_actor(principal), "childcare.facility.registered",
                           target_type="childcare_facility", target_id=facility.id, purpose=OPERATOR_FACILITY,
                           details={"name": facility.name})
    return facility


async def update_facility(session: AsyncSession, principal: Principal, facility: ChildcareFacility, values: dict,
                          expected_version: int) -> ChildcareFacility:
    if expected_version != facility.version:
        raise Conflict("ほかの方が先にこの施設の情報を変更しました。画面を読み込み直してから、もう一度変更してください。")
    tenant = await _tenant(session, facility.lg_code)
    async with as_tenant(session, tenant):
        changed = {k: [getattr(facility, k), v] for k, v in values.items() if getattr(facility, k) != v}
        for key, value in values.items():
            setattr(facility, key, value)
        facility.version += 1
        facility.updated_by = principal.display_name
        facility.updated_at = utcnow()
        await session.flush()
        await audit.record(session, _business_actor(principal), "childcare.facility.updated",
                           target_type="childcare_facility", target_id=facility.id, purpose=OPERATOR_FACILITY,
                           details={"name": facility.name, "changes": {k: v for k, v in list(changed.items())[:20]}})
    return facility


# -- rules ----------------------------------------------------------------------------------------

async def rule_versions(session: AsyncSession) -> Sequence[ChildcareRuleVersion]:
    repo = RuleRepository(session)
    return await repo.all(repo.select().order_by(ChildcareRuleVersion.number.desc()))


async def rule_version(session: AsyncSession, number: int) -> ChildcareRuleVersion:
    repo = RuleRepository(session)
    found = await repo.first(repo.select().where(ChildcareRuleVersion.number == number))
    if found is None:
        raise NotFound("この版の利用調整基準は見つかりませんでした。")
    return found


async def current_rules(session: AsyncSession) -> ChildcareRuleVersion | None:
    repo = RuleRepository(session)
    return await repo.first(repo.select().order_by(ChildcareRuleVersion.number.desc()))


async def save_rules(session: AsyncSession, actor: audit.Actor, rules: dict, *, name: str, based_on: str = "",
                     note: str = "") -> ChildcareRuleVersion:
    """A new version (the number after the newest); earlier versions stay as they were."""
    errors: list[dict[str, str]] = []
    name = _text(errors, {"name": name}, "name", "版の名前", 200, required=True)
    _raise(errors, "利用調整基準を保存できません。")
    repo = RuleRepository(session)
    newest = await repo.first(repo.select().order_by(ChildcareRuleVersion.number.desc()))
    version = ChildcareRuleVersion(number=(newest.number if newest else 0) + 1, name=name, based_on=based_on[:200],
                                   rules=rules, note=note[:2000], created_by=actor.label, created_at=utcnow())
    repo.add(version)
    await session.flush()
    await audit.record(session, actor, "childcare.rules.saved", target_type="childcare_rule_version",
                       target_id=str(version.number), details={"name": name})
    return version


# -- applications ---------------------------------------------------------------------------------

def age_class_on(birth: date, april_first: date) -> int:
    """The 年齢クラス: the child's age on the 1st of April of the year of entry."""
    return april_first.year - birth.year - ((april_first.month, april_first.day) < (birth.month, birth.day))


def entry_april(today: date) -> date:
    """The 4月1日 of the 年度 the application is for: next April (申込みは前年の秋から)."""
    return date(today.year + 1 if today.month >= 4 else today.year, 4, 1)


@dataclass
class ApplicationInput:
    residence: str
    guardian_name: str
    email: str
    children: list[dict]
    preferences: list[tuple[str, str]]
    guardians: list[dict]
    adjustments: list[str]
    same_facility: bool
    specific_only: bool
    form_token: str


async def application_input(session: AsyncSession, form: Mapping, *, today: date) -> ApplicationInput:
    """The application form (or its JSON twin) checked; every wrong field named at once.
    ``form``: residence, guardian_name, email, child{i}_name/child{i}_birth (i = 1, 2),
    preference (``lg_code:facility_id``, best first, repeated), guardian{i}_situation/_hours/
    _employer_number/_employer_name (i = 1, 2), adjustments (repeated), same_facility, specific_only."""
    errors: list[dict[str, str]] = []
    residence = ""
    try:
        residence = await registry_service.resolve_lg_code_input(session, str(form.get("residence") or ""),
                                                                  field="residence", label="お住まいの市区町村")
    except InvalidInput as exc:
        errors.extend(exc.errors or [{"field": "residence", "message": exc.detail}])
    if residence and residence[2:5] == "000":  # a prefecture or a national body: not a place one lives in
        errors.append({"field": "residence", "message": "お住まいの市区町村を入力してください（都道府県ではなく）。"})
        residence = ""
    guardian_name = _text(errors, form, "guardian_name", "申込者の氏名", 100, required=True)
    email = str(form.get("email") or "").strip()
    if email and (len(email) > 254 or not _EMAIL.match(email)):
        errors.append({"field": "email", "message": "メールアドレスの形式が正しくありません。"})
    april = entry_april(today)
    children = []
    for i in (1, 2, 3):
        name = str(form.get(f"child{i}_name") or "").strip()
        birth_raw = str(form.get(f"child{i}_birth") or "").strip()
        if not name and not birth_raw:
            continue
        if not name or len(name) > 100:
            errors.append({"field": f"child{i}_name", "message": f"お子さん{i}の氏名を100文字以内で入力してください。"})
        try:
            birth = date.fromisoformat(birth_raw)
        except ValueError:
            errors.append({"field": f"child{i}_birth", "message": f"お子さん{i}の生年月日を 2025-05-01 のように入力してください。"})
            continue
        age = age_class_on(birth, april)
        if birth > today or not 0 <= age <= 5:
            errors.append({"field": f"child{i}_birth",
                           "message": f"お子さん{i}は{april.year}年4月1日に0歳から5歳のクラスになる方が対象です。"})
            continue
        children.append({"key": f"c{i}", "name": name, "birth_date": birth.isoformat(), "age_class": age})
    if not children and not any(e["field"].startswith("child") for e in errors):
        errors.append({"field": "child1_name", "message": "お子さんを1人以上入力してください。"})
    raw_prefs = form.get("preference") or []
    if isinstance(raw_prefs, str):
        raw_prefs = [raw_prefs]
    preferences: list[tuple[str, str]] = []
    for raw in raw_prefs:
        raw = str(raw).strip()
        if not raw:
            continue
        lg_code, _, facility_id = raw.partition(":")
        if not re.fullmatch(r"\d{6}", lg_code) or not facility_id or (lg_code, facility_id) in preferences:
            errors.append({"field": "preference", "message": "希望する施設を選び直してください。"})
            continue
        preferences.append((lg_code, facility_id))
    if not preferences and not any(e["field"] == "preference" for e in errors):
        errors.append({"field": "preference", "message": "希望する施設を1つ以上選んでください（保活検索から選べます）。"})
    if len(preferences) > 10:
        errors.append({"field": "preference", "message": "希望する施設は10か所までです。"})
    guardians = []
    for i in (1, 2):
        situation = str(form.get(f"guardian{i}_situation") or "")
        if not situation:
            if i == 1:
                errors.append({"field": "guardian1_situation", "message": "保護者1の保育を必要とする事由を選んでください。"})
            continue
        if situation not in rulebook.SITUATIONS:
            errors.append({"field": f"guardian{i}_situation", "message": f"保護者{i}の事由を選び直してください。"})
            continue
        guardian = {"situation": situation}
        if situation == "employed":
            guardian["hours_per_week"] = _int(errors, form, f"guardian{i}_hours", f"保護者{i}の週の就労時間", 1, 80)
            number = str(form.get(f"guardian{i}_employer_number") or "").strip()
            number = number.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
            if not re.fullmatch(r"\d{13}", number):
                errors.append({"field": f"guardian{i}_employer_number",
                               "message": f"保護者{i}の勤務先の法人番号（13桁）を入力してください。就労証明書を勤務先に電子で依頼します。"})
            guardian["employer_number"] = number
            guardian["employer_name"] = _text(errors, form, f"guardian{i}_employer_name", f"保護者{i}の勤務先の名称", 200,
                                              required=True)
        guardians.append(guardian)
    raw_adjustments = form.get("adjustments") or []
    if isinstance(raw_adjustments, str):
        raw_adjustments = [raw_adjustments]
    adjustments = [a for a in dict.fromkeys(str(a) for a in raw_adjustments) if a]
    if any(a not in rulebook.ADJUSTMENTS for a in adjustments):
        errors.append({"field": "adjustments", "message": "世帯の状況の項目を選び直してください。"})
    token = str(form.get("form_token") or "").strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", token):
        errors.append({"field": "form_token", "message": "申込みの画面を開き直してから、もう一度送ってください。"})
    _raise(errors, "申込みの内容に誤りがあります。")
    truthy = ("1", "on", "true", "True")
    return ApplicationInput(residence, guardian_name, email, children, preferences, guardians, adjustments,
                            str(form.get("same_facility") or "") in truthy, str(form.get("specific_only") or "") in truthy,
                            token)


def _receipt_no(today: date) -> str:
    return f"{today:%Y%m%d}-{secrets.randbelow(10**4):04d}-{secrets.randbelow(10**4):04d}"  # digits only, as 電子申請


async def submit_application(session: AsyncSession, principal: Principal, data: ApplicationInput) -> ChildcareApplication:
    """The one application, owned by the municipality of residence, with a 就労証明書 request per
    employed guardian and a referral to every other municipality named (``WIDE_AREA_REFERRAL``).
    The same ``form_token`` returns the application already made (a retried submit)."""
    residence = await _tenant(session, data.residence)
    async with as_tenant(session, residence):
        repo = ApplicationRepository(session)
        existing = await repo.first(repo.select().where(ChildcareApplication.form_token == data.form_token))
    if existing is not None:
        if existing.principal_id != principal.id:
            raise InvalidInput("申込みの画面を開き直してから、もう一度送ってください。",
                               errors=[{"field": "form_token", "message": "申込みの画面を開き直してください。"}])
        return existing
    facilities: list[ChildcareFacility] = []
    errors = []
    for lg_code, facility_id in data.preferences:
        try:
            facilities.append(await facility_anywhere(session, lg_code, facility_id))
        except NotFound:
            errors.append({"field": "preference", "message": "選んだ施設の一つが見つかりません。選び直してください。"})
    for facility in facilities:
        missing = [c["name"] for c in data.children if facility.capacity(c["age_class"]) == 0]
        if missing:
            errors.append({"field": "preference", "message": f"{facility.name}には{'、'.join(missing)}さんの年齢クラスがありません。"})
    _raise(errors, "申込みの内容に誤りがあります。")
    names = await registry_service.organizations_by_code(session, sorted({f.lg_code for f in facilities}))
    now = utcnow()
    application = ChildcareApplication(
        id=str(uuid.uuid4()), receipt_no=_receipt_no(now.date()), form_token=data.form_token, principal_id=principal.id,
        guardian_name=data.guardian_name, email=data.email, children=data.children,
        preferences=[{"lg_code": f.lg_code, "facility_id": f.id, "facility_name": f.name,
                      "municipality": names[f.lg_code].name if f.lg_code in names else f.lg_code} for f in facilities],
        household={"guardians": data.guardians, "adjustments": data.adjustments, "specific_only": data.specific_only},
        same_facility=data.same_facility, status=ApplicationStatus.submitted.value, results={},
        submitted_at=now, updated_at=now)
    resident_actor = audit.Actor("resident", data.guardian_name, principal.id)
    async with as_tenant(session, residence):
        ApplicationRepository(session).add(application)
        for index, guardian in enumerate(data.guardians):
            if guardian["situation"] == "employed":
                CertificateRepository(session).add(ChildcareEmploymentCertificate(
                    id=str(uuid.uuid4()), application_id=application.id, receipt_no=application.receipt_no,
                    guardian_index=index, guardian_name=data.guardian_name if index == 0 else f"保護者{index + 1}",
                    employer_corporate_number=guardian["employer_number"], employer_name=guardian["employer_name"],
                    status="requested", employment_type="", certified_by="", requested_at=now))
        await session.flush()
        await audit.record(session, resident_actor, "childcare.application.submitted",
                           target_type="childcare_application", target_id=application.receipt_no,
                           subject_id=principal.id, purpose="保育の利用申込み",
                           details={"children": len(data.children), "preferences": len(facilities)})
        await send(session, residence, template=RECEIVED.key,
                   to=Recipient(email=data.email or None, principal_id=principal.id, name=data.guardian_name),
                   context={"municipality": residence.name, "guardian_name": data.guardian_name,
                            "receipt_no": application.receipt_no},
                   service=SERVICE_ID, dedupe_key=f"childcare.received:{application.receipt_no}")
    ages = "・".join(f"{c['age_class']}歳" for c in data.children)
    for rank, facility in enumerate(facilities, start=1):
        if facility.lg_code == residence.lg_code:
            continue
        other = await _tenant(session, facility.lg_code)
        async with as_tenant(session, other):
            referral = ChildcareReferral(id=str(uuid.uuid4()), residence_lg_code=residence.lg_code,
                                         residence_name=residence.name, receipt_no=application.receipt_no,
                                         facility_id=facility.id, facility_name=facility.name, rank=rank,
                                         age_classes=ages, outcome="", created_at=now, updated_at=now)
            ReferralRepository(session).add(referral)
            await session.flush()
            await audit.record(session, audit.Actor("system", f"{residence.name}（広域利用の協議）"),
                               "childcare.referral.received", target_type="childcare_referral",
                               target_id=application.receipt_no, subject_id=principal.id,
                               purpose="広域利用の協議", legal_basis=WIDE_AREA_REFERRAL,
                               details={"facility": facility.name, "residence": residence.name, "rank": rank})
    return application


async def my_applications(session: AsyncSession, principal_id: str) -> list[ChildcareApplication]:
    """The signed-in resident's own applications, in whichever municipality they were made."""
    async with unscoped(session, "住民本人による自分の保育利用申込みの確認"):
        return list((await session.scalars(select(ChildcareApplication)
                                           .where(ChildcareApplication.principal_id == principal_id)
                                           .order_by(ChildcareApplication.submitted_at.desc()))).all())


async def my_application(session: AsyncSession, principal_id: str, receipt_no: str) -> ChildcareApplication:
    for application in await my_applications(session, principal_id):
        if application.receipt_no == receipt_no:
            return application
    raise NotFound("この申込みは見つかりませんでした。")


async def certificates_of(session: AsyncSession, application: ChildcareApplication) -> list[ChildcareEmploymentCertificate]:
    tenant = await _tenant(session, application.lg_code)
    async with as_tenant(session, tenant):
        repo = CertificateRepository(session)
        return list(await repo.all(repo.select().where(ChildcareEmploymentCertificate.application_id == application.id)
                                   .order_by(ChildcareEmploymentCertificate.guardian_index)))


def certified_hours(certificates: Sequence[ChildcareEmploymentCertificate]) -> dict[int, int]:
    return {c.guardian_index: c.hours_per_week for c in certificates
            if c.status == "certified" and c.hours_per_week is not None}


@dataclass(frozen=True)
class Step:
    label: str
    state: str  # done | current | pending

    @property
    def state_label(self) -> str:
        return {"done": "済み", "current": "進行中", "pending": "これから"}[self.state]


def steps(application: ChildcareApplication, certificates: Sequence[ChildcareEmploymentCertificate]) -> list[Step]:
    """The parent's view of where the application stands, one line per step."""
    certified = all(c.status == "certified" for c in certificates)
    decided = application.status in (ApplicationStatus.placed.value, ApplicationStatus.waiting.value)
    return [Step("申込みの受付", "done"),
            Step("就労証明書（勤務先から電子で提出）" if certificates else "就労証明書（不要）",
                 "done" if certified else "current"),
            Step("利用調整（お住まいの市区町村が、ほかの市区町村と協議して行います）",
                 "done" if decided else ("current" if certified else "pending")),
            Step("結果のお知らせ", "done" if decided else "pending")]


async def applications_here(session: AsyncSession) -> Sequence[ChildcareApplication]:
    repo = ApplicationRepository(session)
    return await repo.all(repo.select().order_by(ChildcareApplication.submitted_at))


async def application_here(session: AsyncSession, receipt_no: str) -> ChildcareApplication:
    repo = ApplicationRepository(session)
    found = await repo.first(repo.select().where(ChildcareApplication.receipt_no == receipt_no))
    if found is None:
        raise NotFound("この申込みは見つかりませんでした。")
    return found


async def referrals_here(session: AsyncSession) -> Sequence[ChildcareReferral]:
    repo = ReferralRepository(session)
    return await repo.all(repo.select().order_by(ChildcareReferral.created_at))


def application_points(rules: dict, application: ChildcareApplication,
                       certificates: Sequence[ChildcareEmploymentCertificate]) -> rulebook.Points:
    return rulebook.points(rules, application.household, certified_hours(certificates))


# -- 就労証明書 (the employer) ------------------------------------------------------------------------

async def certificates_for_employer(session: AsyncSession, corporate_number: str) -> list[ChildcareEmploymentCertificate]:
    """The 就労証明書 asked of ``corporate_number`` in every municipality (``EMPLOYER_CERTIFICATE``)."""
    async with unscoped(session, EMPLOYER_CERTIFICATE):
        return list((await session.scalars(
            select(ChildcareEmploymentCertificate)
            .where(ChildcareEmploymentCertificate.employer_corporate_number == corporate_number)
            .order_by(ChildcareEmploymentCertificate.requested_at.desc()))).all())


def certificate_values(form: Mapping) -> dict:
    errors: list[dict[str, str]] = []
    values = {"hours_per_week": _int(errors, form, "hours_per_week", "週の就労時間", 1, 80),
              "days_per_week": _int(errors, form, "days_per_week", "週の就労日数", 1, 7),
              "employment_type": str(form.get("employment_type") or "")}
    if values["employment_type"] not in EMPLOYMENT_TYPES:
        errors.append({"field": "employment_type", "message": "雇用の形態を選んでください。"})
    _raise(errors, "就労証明書の内容に誤りがあります。")
    return values


EMPLOYMENT_TYPES = {"regular": "正社員", "contract": "契約社員・派遣", "part_time": "パート・アルバイト",
                    "self_employed": "自営・業務委託"}


async def certify(session: AsyncSession, principal: Principal, corporate_number: str, lg_code: str,
                  certificate_id: str, values: dict) -> ChildcareEmploymentCertificate:
    """The employer answers a 就労証明書 asked of its 法人番号; recorded on the municipality's chain
    (about the parent), and the parent is told. Answering again is refused (409)."""
    tenant = await _tenant(session, lg_code)
    async with as_tenant(session, tenant):
        repo = CertificateRepository(session)
        certificate = await repo.first(repo.select().where(ChildcareEmploymentCertificate.id == certificate_id))
        if certificate is None or certificate.employer_corporate_number != corporate_number:
            raise NotFound("この就労証明書の依頼は見つかりませんでした。")
        if certificate.status == "certified":
            raise Conflict("この就労証明書はすでに提出されています。")
        application = await ApplicationRepository(session).first(
            ApplicationRepository(session).select().where(ChildcareApplication.id == certificate.application_id))
        certificate.hours_per_week = values["hours_per_week"]
        certificate.days_per_week = values["days_per_week"]
        certificate.employment_type = values["employment_type"]
        certificate.status = "certified"
        certificate.certified_by = principal.display_name
        certificate.certified_at = utcnow()
        await session.flush()
        await audit.record(session, _business_actor(principal), "childcare.certificate.submitted",
                           target_type="childcare_application", target_id=certificate.receipt_no,
                           subject_id=application.principal_id if application else None,
                           purpose="就労証明書の提出", legal_basis=EMPLOYER_CERTIFICATE,
                           details={"employer": certificate.employer_name})
        if application is not None:
            await send(session, tenant, template=CERTIFIED.key,
                       to=Recipient(email=application.email or None, principal_id=application.principal_id,
                                    name=application.guardian_name),
                       context={"municipality": tenant.name, "guardian_name": application.guardian_name,
                                "receipt_no": application.receipt_no, "employer": certificate.employer_name},
                       service=SERVICE_ID, dedupe_key=f"childcare.certified:{certificate.id}")
    return certificate


# -- allocation -----------------------------------------------------------------------------------

SIBLING_RULES = {"together_preferred": engine.SiblingRule.TOGETHER_PREFERRED,
                 "together_only": engine.SiblingRule.TOGETHER_ONLY,
                 "independent": engine.SiblingRule.INDEPENDENT}
MODES = {"default": "標準（受入保留方式）", "exact": "厳密（数理最適化で不安定な組をなくしてから内定を最大にする）"}


async def build_instance(session: AsyncSession, rules: dict,
                         applications: Sequence[ChildcareApplication]) -> tuple[engine.Instance, dict]:
    """The engine's input from this municipality's waiting applications under ``rules``, with
    every facility named at its places free (read where each stands), and a JSON snapshot of it
    (what the run is kept with)."""
    facility_keys = {(p["lg_code"], p["facility_id"]) for a in applications for p in a.preferences}
    facilities: dict[str, ChildcareFacility] = {}
    for lg_code, facility_id in sorted(facility_keys):
        try:
            facilities[facility_id] = await facility_anywhere(session, lg_code, facility_id)
        except NotFound:
            continue  # a facility closed since: the preference is dropped
    children: list[engine.Child] = []
    snapshot_children = []
    for application in applications:
        certificates = await certificates_of(session, application)
        scored = application_points(rules, application, certificates)
        # 受付順: the time of receipt (receipt numbers are random), then the number to keep it strict
        order = f"{application.submitted_at:%Y%m%d%H%M%S%f}:{application.receipt_no}"
        ties = rulebook.tie_break(rules, application.household, certified_hours(certificates), order)
        policy = SIBLING_RULES.get(rules.get("sibling_policy", "together_preferred"),
                                   engine.SiblingRule.TOGETHER_PREFERRED)
        if policy is engine.SiblingRule.TOGETHER_PREFERRED and not application.same_facility:
            policy = engine.SiblingRule.INDEPENDENT
        group = application.receipt_no if len(application.children) > 1 else None
        prefs = tuple(p["facility_id"] for p in application.preferences if p["facility_id"] in facilities)
        for child in application.children:
            child_id = f"{application.receipt_no}:{child['key']}"
            children.append(engine.Child(id=child_id, age_class=int(child["age_class"]), municipality=application.lg_code,
                                         points=scored.total, preferences=prefs, tie_break=ties, sibling_group=group,
                                         sibling_rule=policy, label=f"{child['name']}さん"))
            snapshot_children.append({"id": child_id, "age_class": int(child["age_class"]), "points": scored.total,
                                      "preferences": list(prefs), "tie_break": list(ties), "sibling_group": group,
                                      "sibling_rule": policy.value, "points_lines": list(scored.lines)})
    engine_facilities = tuple(
        engine.Facility(id=f.id, municipality=f.lg_code, capacity=tuple(f.vacancy(a) for a in AGE_CLASSES), name=f.name,
                        residents_first=bool(rules.get("residents_first")), outside_quota=tuple(f.outside_quotas))
        for f in sorted(facilities.values(), key=lambda f: (f.lg_code, f.name)))
    snapshot = {"children": snapshot_children,
                "facilities": [{"id": f.id, "lg_code": f.lg_code, "name": f.name,
                                "capacity": [f.vacancy(a) for a in AGE_CLASSES],
                                "outside_quota": f.outside_quotas} for f in facilities.values()]}
    return engine.Instance(children=tuple(children), facilities=engine_facilities), snapshot


async def waiting_applications(session: AsyncSession) -> list[ChildcareApplication]:
    repo = ApplicationRepository(session)
    return list(await repo.all(repo.select().where(ChildcareApplication.status == ApplicationStatus.submitted.value)
                               .order_by(ChildcareApplication.submitted_at)))


async def run_allocation(session: AsyncSession, actor: audit.Actor, rule_number: int, mode: str = "default"
                         ) -> ChildcareAllocationRun:
    """Runs the engine on the waiting applications under rule version ``rule_number`` and keeps the
    run (a draft: nothing is told to anyone until it is published). Several runs with different
    rules may be compared (what-if)."""
    if mode not in MODES:
        raise InvalidInput("調整の方式を選んでください。", errors=[{"field": "mode", "message": "調整の方式を選んでください。"}])
    version = await rule_version(session, rule_number)
    applications = await waiting_applications(session)
    if not applications:
        raise InvalidInput("利用調整を待っている申込みがありません。",
                           errors=[{"field": "rule_version", "message": "利用調整を待っている申込みがありません。"}])
    instance, snapshot = await build_instance(session, version.rules, applications)
    # CPU work (the exact mode may search for up to 20 s): off the event loop, so the server keeps
    # answering everyone else meanwhile. The engine refuses impossible data (more children
    # enrolled than places, a preference for an unknown facility) in Japanese: shown, not a 500.
    try:
        result = await asyncio.to_thread(engine.allocate, instance, mode=mode, time_limit=20.0)
    except ValueError as exc:
        raise InvalidInput(f"利用調整を実行できませんでした: {exc}") from None
    names = {f["id"]: f["name"] for f in snapshot["facilities"]}
    result_json = {
        "status": result.status, "seconds": round(result.seconds, 3),
        "placements": [{"child_id": p.child_id, "facility_id": p.facility_id, "facility_name": names.get(p.facility_id or "", ""),
                        "rank": p.rank, "reasons": list(p.reasons)} for p in result.placements],
        "blocking": [{"child_ids": list(b.child_ids), "facility_id": b.facility_id,
                      "facility_name": names.get(b.facility_id, ""), "displaced": list(b.displaced)}
                     for b in result.blocking],
        "cutoffs": [{"facility_id": c.facility_id, "facility_name": names.get(c.facility_id, ""), "age_class": c.age_class,
                     "capacity": c.capacity, "placed": c.placed,
                     "lowest_points": None if c.lowest_points is None else float(c.lowest_points), "full": c.full,
                     "outside_quota": c.outside_quota, "outside_placed": c.outside_placed}
                    for c in result.cutoffs],
    }
    stats = result.stats
    summary = {"children": stats.children, "placed": stats.placed, "unplaced": stats.unplaced,
               "sibling_groups": stats.sibling_groups, "siblings_together": stats.siblings_together,
               "siblings_split": stats.siblings_split, "siblings_unplaced": stats.siblings_unplaced,
               "blocking": stats.blocking, "by_rank": [list(pair) for pair in stats.by_rank],
               "rule_name": version.name}
    repo = RunRepository(session)
    newest = await repo.first(repo.select().order_by(ChildcareAllocationRun.number.desc()))
    run = ChildcareAllocationRun(number=(newest.number if newest else 0) + 1, rule_version=version.number, mode=mode,
                                 instance=snapshot, result=result_json, summary=summary, created_by=actor.label,
                                 created_at=utcnow(), published_by="", published_at=None)
    repo.add(run)
    await session.flush()
    await audit.record(session, actor, "childcare.allocation.run", target_type="childcare_allocation_run",
                       target_id=str(run.number), purpose="利用調整（試行）",
                       details={"rule_version": version.number, "mode": mode, "placed": stats.placed,
                                "children": stats.children, "blocking": stats.blocking})
    return run


async def runs(session: AsyncSession) -> Sequence[ChildcareAllocationRun]:
    repo = RunRepository(session)
    return await repo.all(repo.select().order_by(ChildcareAllocationRun.number.desc()))


async def get_run(session: AsyncSession, number: int) -> ChildcareAllocationRun:
    repo = RunRepository(session)
    found = await repo.first(repo.select().where(ChildcareAllocationRun.number == number))
    if found is None:
        raise NotFound("この利用調整の結果は見つかりませんでした。")
    return found


def _outcome_text(results: dict) -> str:
    lines = []
    for value in results.values():
        if value.get("facility_name"):
            lines.append(f"{value['child_name']}さん: {value['facility_name']}に内定（第{value['rank']}希望）")
        else:
            lines.append(f"{value['child_name']}さん: 保留（待機）")
    return "\n".join(lines)


async def publish_run(session: AsyncSession, actor: audit.Actor, number: int) -> ChildcareAllocationRun:
    """Makes a run final: each application gets its placements and reasons, each parent a notice,
    each other municipality the outcome at its facilities (``WIDE_AREA_REFERRAL``), and each
    facility's places free go down by the children placed there. Published once; refused (409)
    when the run is already published or an application in it was decided since."""
    run = await get_run(session, number)
    if run.published_at is not None:
        raise Conflict("この利用調整の結果はすでに公開されています（公開した結果は変更できません）。")
    tenant = current_tenant(session)
    by_receipt: dict[str, list[dict]] = defaultdict(list)
    for placement in run.result["placements"]:
        receipt_no, _, child_key = placement["child_id"].partition(":")
        by_receipt[receipt_no].append({**placement, "child_key": child_key})
    applications = {a.receipt_no: a for a in await applications_here(session)}
    for receipt_no in by_receipt:
        application = applications.get(receipt_no)
        if application is None or application.status != ApplicationStatus.submitted.value:
            raise Conflict("この試行のあとに結果が決まった申込みがあります。もう一度試行してから公開してください。")
    facilities = {f["id"]: f for f in run.instance["facilities"]}
    taken: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
    taken_outside: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
    now = utcnow()
    for receipt_no, placements in by_receipt.items():
        application = applications[receipt_no]
        children = {c["key"]: c for c in application.children}
        results = {}
        for placement in placements:
            child = children[placement["child_key"]]
            facility = facilities.get(placement["facility_id"] or "")
            results[child["key"]] = {"child_name": child["name"], "facility_id": placement["facility_id"],
                                     "lg_code": facility["lg_code"] if facility else None,
                                     "facility_name": placement["facility_name"], "rank": placement["rank"],
                                     "reasons": placement["reasons"], "run": run.number}
            if facility:
                taken[facility["id"]][int(child["age_class"])] += 1
                if facility["lg_code"] != tenant.lg_code:
                    taken_outside[facility["id"]][int(child["age_class"])] += 1
        application.results = results
        application.status = (ApplicationStatus.placed.value if any(r["facility_id"] for r in results.values())
                               else ApplicationStatus.waiting.value)
        application.updated_at = now
        await send(session, tenant, template=RESULT.key,
                   to=Recipient(email=application.email or None, principal_id=application.principal_id,
                                name=application.guardian_name),
                   context={"municipality": tenant.name, "guardian_name": application.guardian_name,
                            "receipt_no": application.receipt_no, "outcome": _outcome_text(results)},
                   service=SERVICE_ID, dedupe_key=f"childcare.result:{application.receipt_no}:{run.number}")
    await audit.record_many(session, actor, "childcare.allocation.result_published",
                            [audit.Target("childcare_application", a, applications[a].principal_id) for a in by_receipt],
                            purpose="利用調整の結果の通知", details={"run": run.number})
    run.published_at = now
    run.published_by = actor.label
    await session.flush()
    await audit.record(session, actor, "childcare.allocation.published", target_type="childcare_allocation_run",
                       target_id=str(run.number), purpose="利用調整の結果の確定",
                       details={"rule_version": run.rule_version, "placed": run.summary.get("placed"),
                                "children": run.summary.get("children")})
    await _tell_facilities(session, actor, tenant, run, by_receipt, applications, taken, taken_outside)
    return run


async def _tell_facilities(session, actor, tenant: Tenant, run, by_receipt, applications, taken,
                           taken_outside) -> None:
    """The places taken go down at each facility (and the 管外受入枠 by the children of this
    municipality placed at another's facility), and each other municipality's referrals get the
    outcome at its facility; written on the facility's municipality's rows and chain. Refused
    (409, nothing written) when a facility has fewer places or outside places left than the run
    takes: another municipality published into them since this run was tried."""
    facilities = {f["id"]: f for f in run.instance["facilities"]}
    by_lg: dict[str, list[str]] = defaultdict(list)
    for facility_id, fac in facilities.items():
        by_lg[fac["lg_code"]].append(facility_id)
    for lg_code, facility_ids in sorted(by_lg.items()):
        other = await _tenant(session, lg_code)
        async with as_tenant(session, other):
            repo = FacilityRepository(session)
            for facility in await repo.all(repo.select().where(ChildcareFacility.id.in_(facility_ids))):
                for age, count in enumerate(taken.get(facility.id, [0] * 6)):
                    outside = taken_outside.get(facility.id, [0] * 6)[age]
                    quota = facility.outside_quota(age)
                    if count > facility.vacancy(age) or (quota is not None and outside > quota):
                        raise Conflict(f"{facility.name}の{age}歳児の空き（または管外受入枠）が、この試行のあとに"
                                       "減りました。もう一度試行してから公開してください。")
                    if count:
                        setattr(facility, f"vacancy_{age}", facility.vacancy(age) - count)
                    if outside and quota is not None:
                        setattr(facility, f"outside_quota_{age}", quota - outside)
                if any(taken.get(facility.id, [0] * 6)):
                    facility.version += 1
                    facility.updated_at = utcnow()
                    facility.updated_by = f"{tenant.name}の利用調整"
            if lg_code == tenant.lg_code:
                continue
            referrals = ReferralRepository(session)
            changed = 0
            for referral in await referrals.all(referrals.select().where(
                    ChildcareReferral.residence_lg_code == tenant.lg_code,
                    ChildcareReferral.receipt_no.in_(list(by_receipt)))):
                placed_here = [r for r in applications[referral.receipt_no].results.values()
                               if r["facility_id"] == referral.facility_id]
                referral.outcome = (f"この施設に内定（{len(placed_here)}人）" if placed_here else "この施設には内定しませんでした")
                referral.updated_at = utcnow()
                changed += 1
            await session.flush()
            if changed:
                await audit.record(session, audit.Actor("system", f"{tenant.name}（広域利用の協議）"),
                                   "childcare.referral.outcome", target_type="childcare_allocation_run",
                                   target_id=f"{tenant.lg_code}:{run.number}", purpose="広域利用の協議",
                                   legal_basis=WIDE_AREA_REFERRAL, details={"referrals": changed})


# -- 待機児童 -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WaitingRow:
    age: int
    applied: int
    placed: int
    unplaced: int
    excluded: int  # 国の定義で待機児童に含めない（特定の施設のみを希望）
    waiting: int


async def waiting_children(session: AsyncSession) -> tuple[ChildcareAllocationRun | None, list[WaitingRow]]:
    """待機児童 by age class from the latest published allocation. Following the national
    definition (保育所等利用待機児童数調査要領), children whose guardians wish only a specific facility
    while places elsewhere are offered (``specific_only``) are counted apart, not as 待機児童."""
    repo = RunRepository(session)
    run = await repo.first(repo.select().where(ChildcareAllocationRun.published_at.is_not(None))
                           .order_by(ChildcareAllocationRun.number.desc()))
    if run is None:
        return None, []
    applications = {a.receipt_no: a for a in await applications_here(session)}
    counts = {age: [0, 0, 0, 0] for age in AGE_CLASSES}  # applied, placed, unplaced, excluded
    ages = {c["id"]: c["age_class"] for c in run.instance["children"]}
    for placement in run.result["placements"]:
        age = ages[placement["child_id"]]
        receipt_no = placement["child_id"].partition(":")[0]
        counts[age][0] += 1
        if placement["facility_id"]:
            counts[age][1] += 1
        else:
            counts[age][2] += 1
            application = applications.get(receipt_no)
            if application is not None and application.household.get("specific_only"):
                counts[age][3] += 1
    return run, [WaitingRow(age, a, p, u, e, u - e) for age, (a, p, u, e) in counts.items()]


# -- monthly reports ------------------------------------------------------------------------------

async def prices(session: AsyncSession) -> ChildcarePriceTable | None:
    repo = PriceRepository(session)
    return await repo.first(repo.select().order_by(ChildcarePriceTable.number.desc()))


async def save_prices(session: AsyncSession, actor: audit.Actor, name: str, text: str) -> ChildcarePriceTable:
    errors: list[dict[str, str]] = []
    name = _text(errors, {"name": name}, "name", "単価表の名前", 200, required=True)
    bands = []
    try:
        bands = reports.parse_bands(text)
    except ValueError as exc:
        errors.append({"field": "bands", "message": str(exc)})
    _raise(errors, "公定価格を保存できません。")
    repo = PriceRepository(session)
    newest = await repo.first(repo.select().order_by(ChildcarePriceTable.number.desc()))
    table = ChildcarePriceTable(number=(newest.number if newest else 0) + 1, name=name, bands=bands,
                                created_by=actor.label, created_at=utcnow())
    repo.add(table)
    await session.flush()
    await audit.record(session, actor, "childcare.prices.saved", target_type="childcare_price_table",
                       target_id=str(table.number), details={"name": name})
    return table


@dataclass
class ReportInput:
    month: str
    staff_count: int
    rows: list[tuple[str, dict[int, int], int]]  # residence code, children by age, attendance days


async def report_input(session: AsyncSession, form: Mapping) -> ReportInput:
    """The monthly report form: month, staff_count, and rows i = 1..5 of residence{i},
    age{i}_{0..5}, attendance{i}."""
    errors: list[dict[str, str]] = []
    month = str(form.get("month") or "").strip()
    if not _MONTH.match(month):
        errors.append({"field": "month", "message": "対象月を 2026-11 のように入力してください。"})
    staff_count = _int(errors, form, "staff_count", "保育士の人数", 0, 500)
    rows: list[tuple[str, dict[int, int], int]] = []
    for i in range(1, 6):
        raw = str(form.get(f"residence{i}") or "").strip()
        if not raw:
            continue
        try:
            code = await registry_service.resolve_lg_code_input(session, raw, field=f"residence{i}",
                                                                label=f"{i}行目の居住地の市区町村")
        except InvalidInput as exc:
            errors.extend(exc.errors or [{"field": f"residence{i}", "message": exc.detail}])
            continue
        if any(code == r[0] for r in rows):
            errors.append({"field": f"residence{i}", "message": f"{i}行目の市区町村は別の行と重なっています。1行にまとめてください。"})
            continue
        children = {a: _int(errors, form, f"age{i}_{a}", f"{i}行目の{a}歳児", 0, 500, default=0) for a in AGE_CLASSES}
        attendance = _int(errors, form, f"attendance{i}", f"{i}行目の延べ出席日数", 0, 20000, default=0)
        rows.append((code, children, attendance))
    if not rows and not any(e["field"].startswith("residence") for e in errors):
        errors.append({"field": "residence1", "message": "在籍児童の居住地の市区町村を1行以上入力してください。"})
    _raise(errors, "月次報告の内容に誤りがあります。")
    return ReportInput(month, staff_count, rows)


async def submit_report(session: AsyncSession, principal: Principal, corporate_number: str,
                        facility: ChildcareFacility, data: ReportInput) -> ChildcareMonthlyReport:
    """The monthly report, submitted once: the header (totals, staffing) to the facility's
    municipality, each residence's part to that municipality (``BENEFIT_PAYER``) with its
    施設型給付費 from that municipality's 公定価格, and a signed receipt for the operator. A second
    report for the same facility and month is refused (409), unless it is the same report sent
    again (then the first is returned)."""
    facility_tenant = await _tenant(session, facility.lg_code)
    async with as_tenant(session, facility_tenant):
        repo = ReportRepository(session)
        existing = await repo.first(repo.select().where(ChildcareMonthlyReport.facility_id == facility.id,
                                                        ChildcareMonthlyReport.month == data.month))
        if existing is not None:
            same = (existing.staff_count == data.staff_count and existing.residences == [r[0] for r in data.rows]
                    and existing.totals == _totals(data))
            if same:
                return existing
            raise Conflict(f"{data.month} の月次報告はすでに提出されています（報告は月に一度です）。")
    totals = _totals(data)
    staffing = reports.staffing({int(a): n for a, n in totals.items()}, data.staff_count)
    now = utcnow()
    report = ChildcareMonthlyReport(id=str(uuid.uuid4()), facility_id=facility.id, facility_name=facility.name,
                                    month=data.month, corporate_number=corporate_number,
                                    submitted_by=principal.display_name, totals=totals, staff_count=data.staff_count,
                                    staffing=staffing.as_dict(), residences=[r[0] for r in data.rows],
                                    submitted_at=now)
    receipt = {"facility_lg_code": facility.lg_code, "facility_id": facility.id, "facility_name": facility.name,
               "month": data.month, "corporate_number": corporate_number, "staff_count": data.staff_count,
               "rows": [{"residence": code, "children": {str(a): n for a, n in children.items()},
                         "attendance_days": attendance} for code, children, attendance in data.rows],
               "submitted_at": now.isoformat(timespec="seconds"), "report_id": report.id}
    report.receipt = reports.receipt_text(receipt)
    report.signature = reports.sign(report.receipt)
    actor = _business_actor(principal)
    async with as_tenant(session, facility_tenant):
        ReportRepository(session).add(report)
        await session.flush()
        await audit.record(session, actor, "childcare.report.submitted", target_type="childcare_monthly_report",
                           target_id=report.id, purpose="月次報告（施設の所在地）",
                           details={"facility": facility.name, "month": data.month, "staffing": staffing.verdict})
    for code, children, attendance in data.rows:
        residence = await _tenant(session, code)
        async with as_tenant(session, residence):
            table = await prices(session)
            amount, detail = (reports.benefit(table.bands, facility.total_capacity, children) if table
                              else (None, {"note": "公定価格がまだ登録されていません。"}))
            if table:
                detail["price_table"] = table.name
            PartRepository(session).add(ChildcareReportPart(
                id=str(uuid.uuid4()), report_id=report.id, facility_lg_code=facility.lg_code, facility_id=facility.id,
                facility_name=facility.name, month=data.month, children={str(a): n for a, n in children.items()},
                attendance_days=attendance, benefit_yen=amount, benefit_detail=detail, submitted_at=now))
            await session.flush()
            await audit.record(session, actor, "childcare.report.part_received", target_type="childcare_monthly_report",
                               target_id=report.id, purpose="施設型給付費の請求", legal_basis=BENEFIT_PAYER,
                               details={"facility": facility.name, "month": data.month,
                                        "children": sum(children.values())})
    return report


def _totals(data: ReportInput) -> dict[str, int]:
    return {str(a): sum(children.get(a, 0) for _, children, _ in data.rows) for a in AGE_CLASSES}


async def operator_reports(session: AsyncSession, corporate_number: str) -> list[ChildcareMonthlyReport]:
    async with unscoped(session, OPERATOR_FACILITY):
        return list((await session.scalars(select(ChildcareMonthlyReport)
                                           .where(ChildcareMonthlyReport.corporate_number == corporate_number)
                                           .order_by(ChildcareMonthlyReport.submitted_at.desc()))).all())


async def operator_report(session: AsyncSession, corporate_number: str, report_id: str) -> ChildcareMonthlyReport:
    for report in await operator_reports(session, corporate_number):
        if report.id == report_id:
            return report
    raise NotFound("この月次報告は見つかりませんでした。")


async def report_parts_here(session: AsyncSession) -> Sequence[ChildcareReportPart]:
    repo = PartRepository(session)
    return await repo.all(repo.select().order_by(ChildcareReportPart.month.desc(), ChildcareReportPart.facility_name))


async def reports_here(session: AsyncSession) -> Sequence[ChildcareMonthlyReport]:
    repo = ReportRepository(session)
    return await repo.all(repo.select().order_by(ChildcareMonthlyReport.month.desc(), ChildcareMonthlyReport.facility_name))


def month_now(now: datetime | None = None) -> str:
    now = now or utcnow()
    return f"{now.year:04d}-{now.month:02d}"


KIND_LABELS = {k.value: v for k, v in FACILITY_KIND_LABELS.items()}
