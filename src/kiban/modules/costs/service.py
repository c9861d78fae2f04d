"""Running the allocation engine on the platform's data: consortium fee schedules, each member's
負担金算定書, and the what-if simulator for a municipality that has not joined yet."""

from __future__ import annotations

import statistics
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.metering import queries as metering
from kiban.core.registry.models import Organization, OrgType
from kiban.core.tenancy.context import Tenant, current_tenant, unscoped
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit import wareki
from kiban.kit.db import utcnow
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.modules.catalog import service as catalog
from kiban.modules.costs.allocation import (
    Allocation,
    AllocationError,
    Equal,
    Member,
    Mixed,
    Population,
    Usage,
    WeightedPopulation,
    allocate,
)
from kiban.modules.costs import notices
from kiban.modules.costs.models import FeeSchedule, FeeStatement, FeeUsage

POPULATION_SOURCE = "令和2年国勢調査人口"
MethodKind = Literal["equal", "population", "weighted", "usage", "mixed"]
METHOD_LABELS = {"equal": "均等割", "population": "人口割", "weighted": "人口按分+重み係数", "usage": "利用量割",
                 "mixed": "組み合わせ（均等割＋他の方法）"}


#: Largest 重み係数 r accepted (人口2倍で負担 r 倍): real schemes use 1〜2; beyond this the weights
#: of large cities overflow a float.
MAX_RATIO = Decimal(10)


class MethodSpec(BaseModel):
    """How to allocate, as a form or API client states it."""

    kind: MethodKind = "weighted"
    ratio: Decimal = Field(Decimal("1.5"), description="重み係数 r: 人口が2倍になると負担が r 倍（0より大きく10以下）")
    equal_percent: Decimal = Field(Decimal(30), description="組み合わせのときの均等割の割合（0〜100%）")
    rest: Literal["population", "weighted", "usage"] = "weighted"
    subsidy_percent: Decimal = Field(Decimal(0), description="国の補助率（0%以上100%未満）")
    prefecture_share: str = Field("", max_length=50, description="都道府県の固定割合（例: 1/2）。空なら都道府県も他の団体と同じ方法で按分")

    # Bounds with messages that name the field in Japanese (a ratio of 10**30 overflowed a float).
    @field_validator("ratio")
    @classmethod
    def _ratio_in_range(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError("重み係数 r は0より大きい値にしてください（人口2倍で負担 r 倍）。")
        if value > MAX_RATIO:
            raise ValueError(f"重み係数 r は{MAX_RATIO}以下にしてください（人口2倍で負担 r 倍。通常は1〜2）。")
        return value

    @field_validator("equal_percent")
    @classmethod
    def _equal_in_range(cls, value: Decimal) -> Decimal:
        if not Decimal(0) <= value <= Decimal(100):
            raise ValueError("均等割の割合は0%〜100%で指定してください（残りが他の方法になります）。")
        return value

    @field_validator("subsidy_percent")
    @classmethod
    def _subsidy_in_range(cls, value: Decimal) -> Decimal:
        if not Decimal(0) <= value < Decimal(100):
            raise ValueError("国の補助率は0%以上100%未満で指定してください。")
        return value

    @property
    def uses_usage(self) -> bool:
        return self.kind == "usage" or (self.kind == "mixed" and self.rest == "usage")

    @property
    def fixed_share(self) -> Fraction | None:
        return parse_share(self.prefecture_share) if self.prefecture_share.strip() else None

    def build(self):
        def single(kind: str):
            return {"equal": Equal, "population": Population, "usage": Usage}.get(kind, lambda: WeightedPopulation(self.ratio))()

        if self.kind == "mixed":
            return Mixed(((Equal(), self.equal_percent), (single(self.rest), Decimal(100) - self.equal_percent)))
        return single(self.kind)

    @property
    def subsidy_rate(self) -> Decimal:
        return self.subsidy_percent / Decimal(100)

    def describe(self) -> str:
        text = METHOD_LABELS[self.kind]
        if self.kind == "weighted" or (self.kind == "mixed" and self.rest == "weighted"):
            text += f"（重み係数 r = {self.ratio}: 人口2倍で負担 {self.ratio} 倍）"
        if self.kind == "mixed":
            text += f" 均等割 {self.equal_percent}% ＋ {METHOD_LABELS[self.rest]} {Decimal(100) - self.equal_percent}%"
        if self.subsidy_percent:
            text += f"、国の補助 {self.subsidy_percent}%"
        if self.fixed_share is not None:
            text = f"都道府県 {_fraction_text(self.fixed_share)}（固定割合）、残りを市町村で{text}"
        return text


class ConsortiumMethod(MethodSpec):
    """A consortium's method, saying also where 利用量割 takes its figures: entered by the
    secretariat for the fiscal year (as before), or metered (core/metering): the counts of one
    event of one shared system over whole months. Checked by ``workflow.usage_fields``."""

    usage_source: Literal["entered", "metered"] = "entered"
    usage_service: str = Field("", max_length=60, description="計測値の対象システム（カタログの ID）")
    usage_event: str = Field("", max_length=40, description="計測値の利用の種類（submission, booking ...）")
    usage_from: str = Field("", max_length=7, description="計測値の開始月（YYYY-MM）")
    usage_to: str = Field("", max_length=7, description="計測値の終了月（YYYY-MM）")

    @property
    def metered(self) -> bool:
        return self.uses_usage and self.usage_source == "metered"

    def describe(self) -> str:
        text = super().describe()
        if self.metered:
            text += (f"、利用量は計測値（{metering.event_label(self.usage_event)}、"
                     f"{_month_ja(self.usage_from)}〜{_month_ja(self.usage_to)}）")
        return text


def _month_ja(text: str) -> str:
    year, _, month = text.partition("-")
    return f"{year}年{int(month)}月" if month.isdigit() else text


def _fraction_text(share: Fraction) -> str:
    return f"{share.numerator}/{share.denominator}"


def parse_share(value: str) -> Fraction:
    """「1/2」「１／２」「50%」「0.5」 → Fraction(1, 2); strictly between 0 and 1."""
    text = unicodedata.normalize("NFKC", value or "").strip().replace(" ", "")
    try:
        if text.endswith("%"):
            share = Fraction(Decimal(text[:-1])) / 100
        else:
            share = Fraction(text)
    except (InvalidOperation, ValueError, ZeroDivisionError):
        raise InvalidInput(f"都道府県の固定割合「{value}」は「1/2」や「50%」のように入力してください。") from None
    if not 0 < share < 1:
        raise InvalidInput("都道府県の固定割合は0より大きく1未満（例: 1/2、50%）で入力してください。")
    return share


def method_from_form(kind: str, ratio: str, equal_percent: str, rest: str, subsidy_percent: str,
                     prefecture_share: str = "") -> MethodSpec:
    def number(value: str, what: str) -> Decimal:
        text = (value or "").strip().translate(str.maketrans("０１２３４５６７８９．", "0123456789."))
        try:
            result = Decimal(text or "0")
        except InvalidOperation:
            raise InvalidInput(f"{what}「{value}」は数値で入力してください。") from None
        if not result.is_finite():
            raise InvalidInput(f"{what}「{value}」は数値で入力してください。")
        return result

    if kind not in METHOD_LABELS:
        raise InvalidInput("配分の方法を選んでください。")
    if rest not in ("population", "weighted", "usage"):
        raise InvalidInput("組み合わせる方法を選んでください。")
    weighted = number(ratio, "重み係数")
    if kind == "weighted" or (kind == "mixed" and rest == "weighted"):
        if weighted <= 0:
            raise InvalidInput("重み係数 r は0より大きい値にしてください（人口2倍で負担 r 倍）。")
        if weighted > MAX_RATIO:
            raise InvalidInput(f"重み係数 r は{MAX_RATIO}以下にしてください（人口2倍で負担 r 倍。通常は1〜2）。")
    elif not 0 < weighted <= MAX_RATIO:
        weighted = Decimal("1.5")  # not used by this method; the form's default keeps the spec valid
    equal = number(equal_percent, "均等割の割合")
    if kind == "mixed" and not Decimal(0) <= equal <= Decimal(100):
        raise InvalidInput("均等割の割合は0%〜100%で入力してください（残りが他の方法になります）。")
    if not Decimal(0) <= equal <= Decimal(100):
        equal = Decimal(30)  # not used by this method; the form's default keeps the spec valid
    subsidy = number(subsidy_percent, "国の補助率")
    if not Decimal(0) <= subsidy < Decimal(100):
        raise InvalidInput("国の補助率は0%以上100%未満で入力してください。")
    share = prefecture_share.strip()
    if len(share) > 50:
        raise InvalidInput("都道府県の固定割合は「1/2」や「50%」のように短く入力してください。")
    if share:
        parse_share(share)
    return MethodSpec(kind=kind, ratio=weighted, equal_percent=equal, rest=rest,
                      subsidy_percent=subsidy, prefecture_share=share)


def run(amount: int, members: list[Member], spec: MethodSpec, prefectures: frozenset[str] = frozenset()) -> Allocation:
    """``prefectures``: the members that are prefectures, who carry ``spec.fixed_share`` if set."""
    fixed = None
    if spec.fixed_share is not None:
        codes = [m.code for m in members if m.code in prefectures]
        if not codes:
            raise InvalidInput("都道府県の固定割合を指定しましたが、負担する団体に都道府県がありません。"
                               "固定割合を空欄にしてください。")
        fixed = {code: spec.fixed_share / len(codes) for code in codes}
    try:
        return allocate(amount, members, spec.build(), subsidy_rate=spec.subsidy_rate, fixed=fixed)
    except AllocationError as exc:
        raise InvalidInput(str(exc)) from None


def member_of(org: Organization) -> Member:
    return Member(org.code, org.name, org.population)


# -- consortium fee schedules ----------------------------------------------------------------------

async def consortium_users(session: AsyncSession, consortium_id: str, service_id: str) -> list[Organization]:
    shared = await catalog.shared_system(session, consortium_id, service_id)
    if not shared.user_codes:
        raise InvalidInput(f"「{shared.service.name}」を利用する構成団体がまだ登録されていません。"
                           "事務局の画面で利用団体を登録してから算定してください。")
    orgs = await catalog.consortium_members(session, consortium_id)
    return [o for o in orgs if o.code in shared.user_codes]


async def consortium_members_for(session: AsyncSession, consortium_id: str, service_id: str) -> list[Member]:
    return [member_of(o) for o in await consortium_users(session, consortium_id, service_id)]


async def allocate_for_consortium(session: AsyncSession, consortium_id: str, service_id: str, fiscal_year: int,
                                  amount: int, spec: MethodSpec) -> Allocation:
    return (await allocate_with_basis(session, consortium_id, service_id, fiscal_year, amount, spec))[0]


def _entered_basis(fiscal_year: int, usage: dict[str, int]) -> dict:
    return {"source": "entered", "fiscal_year": fiscal_year, "total": sum(usage.values()), "units": dict(usage),
            "description": f"入力値: {wareki.fiscal_year_label(fiscal_year)}の利用量（事務局が入力）"}


async def allocate_with_basis(session: AsyncSession, consortium_id: str, service_id: str, fiscal_year: int,
                              amount: int, spec: MethodSpec) -> tuple[Allocation, dict | None]:
    """The fees of a shared system's users: populations from the registry, usage as entered for
    ``fiscal_year`` (every member needs one when the method uses it) or as metered (the session's
    tenant must be the secretariat: ``metered.secretariat_may_read_usage``), prefectures by their
    type. Also returns where the usage figures came from (None when the method uses none)."""
    orgs = await consortium_users(session, consortium_id, service_id)
    basis = None
    if isinstance(spec, ConsortiumMethod) and spec.metered:
        from kiban.modules.costs import metered

        found = await metered.metered_units(
            session, current_tenant(session), consortium_id, spec.usage_service or service_id, spec.usage_event,
            metering.parse_month(spec.usage_from, "計測値の開始月"), metering.parse_month(spec.usage_to, "計測値の終了月"),
            [o.code for o in orgs])
        usage, basis = found.units, found.as_json()
    elif spec.uses_usage:
        usage = await usage_of(session, consortium_id, service_id, fiscal_year)
        basis = _entered_basis(fiscal_year, {o.code: usage[o.code] for o in orgs if o.code in usage})
    else:
        usage = {}
    if spec.uses_usage and basis["source"] == "entered":
        missing = [o.name for o in orgs if o.code not in usage]
        if missing:
            listed = "、".join(missing[:10]) + (f" ほか{len(missing) - 10}団体" if len(missing) > 10 else "")
            raise InvalidInput(f"{wareki.fiscal_year_label(fiscal_year)}の利用量が入力されていない団体があります"
                               f"（{len(missing)}団体: {listed}）。「利用量を入力」から入力してください。")
    members = [Member(o.code, o.name, o.population, usage.get(o.code)) for o in orgs]
    prefectures = frozenset(o.code for o in orgs if o.type == OrgType.prefecture)
    return run(amount, members, spec, prefectures), basis


# -- 利用量 (usage per member, for 利用量割) -----------------------------------------------------------

async def usage_of(session: AsyncSession, consortium_id: str, service_id: str, fiscal_year: int) -> dict[str, int]:
    rows = await session.execute(select(FeeUsage.member_code, FeeUsage.units).where(
        FeeUsage.consortium_id == consortium_id, FeeUsage.service_id == service_id,
        FeeUsage.fiscal_year == fiscal_year))
    return dict(rows.all())


class UsageErrors(InvalidInput):
    """Every bad usage figure at once: ``errors`` maps a member code to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(f"利用量を確認してください（{len(errors)}件）。")
        self.errors = errors


def parse_units(value: str) -> int | None:
    text = unicodedata.normalize("NFKC", value or "").strip().replace(",", "")
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(value)
    return int(text)


async def save_usage(session: AsyncSession, consortium_id: str, service_id: str, fiscal_year: int,
                     values: dict[str, str], *, actor: str) -> int:
    """Store the usage figures (blank removes one). All or nothing: any bad figure raises
    ``UsageErrors`` naming each, and nothing is written. Returns how many members have a figure."""
    users = {o.code: o for o in await consortium_users(session, consortium_id, service_id)}
    if not 2000 <= fiscal_year <= 2100:
        raise InvalidInput("年度は西暦で入力してください（例: 2026）。")
    parsed, errors = {}, {}
    for code, value in values.items():
        if code not in users:
            raise InvalidInput("このシステムの利用団体ではない団体が含まれています。")
        try:
            parsed[code] = parse_units(value)
        except ValueError:
            errors[code] = f"{users[code].name}の利用量「{value}」は0以上の整数で入力してください。"
        else:
            if parsed[code] is not None and parsed[code] > 10**15:
                errors[code] = f"{users[code].name}の利用量が大きすぎます。"
    if errors:
        raise UsageErrors(errors)
    await session.execute(delete(FeeUsage).where(
        FeeUsage.consortium_id == consortium_id, FeeUsage.service_id == service_id,
        FeeUsage.fiscal_year == fiscal_year, FeeUsage.member_code.in_(list(parsed))))
    now = utcnow()
    for code, units in parsed.items():
        if units is not None:
            session.add(FeeUsage(consortium_id=consortium_id, service_id=service_id, fiscal_year=fiscal_year,
                                 member_code=code, units=units, updated_by=actor, updated_at=now))
    await session.flush()
    return sum(1 for units in parsed.values() if units is not None)


class FeeScheduleRepository(TenantRepository[FeeSchedule]):
    model = FeeSchedule


class FeeStatementRepository(TenantRepository[FeeStatement]):
    model = FeeStatement


def _lines(result: Allocation) -> list[dict]:
    return [{"code": f.member.code, "name": f.member.name, "population": f.member.population, "fee": f.fee,
             "percent": f"{f.percent:.4f}", "explanation": f.explanation}
            | ({"usage": f.member.usage} if f.member.usage is not None else {}) for f in result.fees]


async def in_force(session: AsyncSession, consortium_id: str, service_id: str, fiscal_year: int) -> FeeSchedule | None:
    """The schedule in force for a system and fiscal year, in the current (secretariat) tenant."""
    repo = FeeScheduleRepository(session)
    return await repo.first(repo.select().where(
        FeeSchedule.consortium_id == consortium_id, FeeSchedule.service_id == service_id,
        FeeSchedule.fiscal_year == fiscal_year, FeeSchedule.replaced_by_id.is_(None)))


def replacement_required_message(current: FeeSchedule, fiscal_year: int, service_name: str) -> str:
    return (f"{wareki.fiscal_year_label(fiscal_year)}の{service_name}の負担金は既に決定し、算定書を交付しています"
            f"（文書番号 {current.number or '—'}、交付日時 {wareki.datetime_ja(current.created_at)}）。"
            "差し替える場合は「決定済みの算定を差し替える」を選び、差替の理由を入力してください。")


@dataclass(frozen=True)
class Decision:
    """What the secretariat states when deciding, besides the calculation itself."""

    due_on: date
    replaces: str | None = None  # the id of the schedule in force that this one replaces (差替)
    reason: str = ""


def _next_number(existing: int, fiscal_year: int) -> str:
    return f"{fiscal_year}-{existing + 1:03d}"


async def save_schedule(session: AsyncSession, tenant: Tenant, consortium_id: str, service_id: str, *,
                        fiscal_year: int, amount: int, spec: MethodSpec, actor: str,
                        decision: Decision) -> FeeSchedule:
    """Decide the fees and issue each member its statement. The schedule is the secretariat's
    record; each statement is written into the member's own tenant (a deliberate cross-tenant
    write, named below), so members read only their own.

    A schedule already in force for the system and fiscal year is only replaced when the decision
    names it (``decision.replaces``) with a reason: it is marked replaced, its statements 取消
    with a link to the new ones. Otherwise ``Conflict`` (nothing written). Two secretaries
    deciding at once: the one-in-force index lets one through and the other gets ``Conflict``."""
    consortium = await catalog.get_consortium(session, consortium_id)
    if consortium.secretariat_code != tenant.lg_code:
        raise NotFound("共同利用の枠組みが見つかりません。")
    if not 2000 <= fiscal_year <= 2100:
        raise InvalidInput("年度は西暦で入力してください（例: 2026）。")
    shared = await catalog.shared_system(session, consortium_id, service_id)
    result, basis = await allocate_with_basis(session, consortium_id, service_id, fiscal_year, amount, spec)
    current = await in_force(session, consortium_id, service_id, fiscal_year)
    reason = decision.reason.strip()
    if current is not None and decision.replaces != current.id:
        if decision.replaces:
            raise Conflict("差し替えようとした算定は、既に別の算定に差し替えられています。画面を開き直してください。")
        raise Conflict(replacement_required_message(current, fiscal_year, shared.service.name))
    if current is None and decision.replaces:
        raise Conflict("差し替えようとした算定は、既に差し替えられたか見つかりません。画面を開き直してください。")
    if current is not None and not reason:
        raise InvalidInput("差替の理由を入力してください。")
    if len(reason) > 500:
        raise InvalidInput("差替の理由は500文字以内で入力してください。")
    repo = FeeScheduleRepository(session)
    existing = await session.scalar(select(func.count(FeeSchedule.id)).where(
        FeeSchedule.lg_code == tenant.lg_code, FeeSchedule.fiscal_year == fiscal_year))
    number = _next_number(existing or 0, fiscal_year)
    issuer = f"{consortium.name} 事務局（{tenant.name}）"
    now = utcnow()
    schedule_id = str(uuid.uuid4())
    try:
        if current is not None:
            marked = await session.execute(
                update(FeeSchedule).where(FeeSchedule.id == current.id, FeeSchedule.replaced_by_id.is_(None))
                .values(replaced_by_id=schedule_id, replaced_at=now).execution_options(synchronize_session=False))
            if marked.rowcount != 1:
                raise Conflict("差し替えようとした算定は、既に別の算定に差し替えられています。画面を開き直してください。")
            async with unscoped(session, "協議会事務局が差し替えた負担金算定書を構成団体ごとに取消"):
                await session.execute(
                    update(FeeStatement).where(FeeStatement.schedule_id == current.id)
                    .values(cancelled_at=now, replaced_by_id=schedule_id, cancel_reason=reason)
                    .execution_options(synchronize_session=False))
        schedule = repo.add(FeeSchedule(
            id=schedule_id, consortium_id=consortium_id, service_id=service_id, fiscal_year=fiscal_year,
            amount=result.amount, subsidy_rate=str(spec.subsidy_rate), subsidy=result.subsidy,
            allocated=result.allocated, method=spec.model_dump(mode="json") | ({"usage_basis": basis} if basis else {}),
            method_label=spec.describe(),
            lines=_lines(result), created_by=actor, created_at=now, number=number, issuer=issuer,
            due_on=decision.due_on, replaces_id=current.id if current is not None else None,
            replacement_reason=reason or None))
        await session.flush()
        issued: list[FeeStatement] = []
        async with unscoped(session, "協議会事務局が構成団体へ負担金算定書を交付"):
            for fee in result.fees:
                issued.append(FeeStatement(
                    lg_code=fee.member.code, schedule_id=schedule.id, secretariat_code=tenant.lg_code,
                    consortium_name=consortium.name, service_name=shared.service.name, fiscal_year=fiscal_year,
                    amount=result.amount, subsidy=result.subsidy, allocated=result.allocated,
                    method_label=spec.describe(), member_count=len(result.fees), member_name=fee.member.name,
                    population=fee.member.population, fee=fee.fee, percent=f"{fee.percent:.4f}",
                    explanation=fee.explanation, issued_by=actor, issued_at=now,
                    document_no=f"{number}-{fee.member.code}", issuer=issuer, due_on=decision.due_on))
            session.add_all(issued)
            await session.flush()
        # Each member's staff are told, in this transaction (an in-app notice; see notices.py).
        await notices.statements_issued(
            session, tenant, issued, fiscal_year_label=wareki.fiscal_year_label(fiscal_year),
            due_on_label=wareki.wareki_with_seireki(decision.due_on) if decision.due_on else "（定めなし）")
    except IntegrityError:
        raise Conflict("同じシステム・年度の負担金を、同時に別の操作で決定しました。画面を開き直して確認してください。") from None
    if current is not None:
        current.replaced_by_id, current.replaced_at = schedule_id, now
    return schedule


async def schedules_of(session: AsyncSession, consortium_id: str) -> list[FeeSchedule]:
    repo = FeeScheduleRepository(session)
    return list(await repo.all(repo.select().where(FeeSchedule.consortium_id == consortium_id)
                               .order_by(FeeSchedule.created_at.desc())))


async def get_schedule(session: AsyncSession, schedule_id: str) -> FeeSchedule:
    repo = FeeScheduleRepository(session)
    schedule = await repo.first(repo.select().where(FeeSchedule.id == schedule_id))
    if schedule is None:
        raise NotFound("負担金の算定結果が見つかりません。")
    return schedule


async def statements(session: AsyncSession) -> list[FeeStatement]:
    repo = FeeStatementRepository(session)
    return list(await repo.all(repo.select().order_by(FeeStatement.fiscal_year.desc(), FeeStatement.issued_at.desc())))


async def get_statement(session: AsyncSession, schedule_id: str) -> FeeStatement:
    repo = FeeStatementRepository(session)
    statement = await repo.first(repo.select().where(FeeStatement.schedule_id == schedule_id))
    if statement is None:
        raise NotFound("負担金算定書が見つかりません。")
    return statement


# -- simulator ------------------------------------------------------------------------------------------

SIMULATED_METHODS = (("equal", "均等割"), ("population", "人口割"), ("weighted", "人口按分+重み係数（r=1.5）"))


@dataclass(frozen=True)
class SimulationPoint:
    joined: int
    fees: dict[str, int]  # method key → this tenant's fee


@dataclass(frozen=True)
class Simulation:
    service_name: str
    amount: int
    current_members: int
    already_member: bool
    typical_population: int
    self_population: int
    points: list[SimulationPoint]
    target: SimulationPoint


async def simulate(session: AsyncSession, tenant: Tenant, service_id: str, amount: int, extra: int,
                   ratio: Decimal = Decimal("1.5")) -> Simulation:
    """「あと N 団体が参加すると、当団体の負担は X 円」: the tenant joins the current adopters,
    and N more organisations of the median population of those not yet adopting join too."""
    service = await catalog.get_service(session, service_id)
    if extra < 0 or extra > 1_800:
        raise InvalidInput("追加で参加する団体数は0〜1,800で入力してください。")
    adopters = await catalog.adopter_populations(session, service_id)
    me = await session.get(Organization, tenant.lg_code)
    if me is None or not me.population:
        raise InvalidInput(f"{tenant.name}の人口が登録されていないため、人口による試算ができません。")
    members = [Member(code, name, population) for code, name, population in adopters if population]
    already = any(m.code == tenant.lg_code for m in members)
    if not already:
        members.append(Member(me.code, me.name, me.population))
    adopting = {m.code for m in members}
    others = (await session.scalars(select(Organization.population).where(
        Organization.population > 0, Organization.code.not_in(adopting),
        Organization.type.in_(("市", "町", "村", "特別区", "政令市"))))).all()
    if not others:
        raise NotFound("試算に使える団体がありません。")
    typical = int(statistics.median(others))
    steps = sorted({0, extra, *range(0, extra + 1, max(1, extra // 12 or 1))})
    points = []
    for n in steps:
        joined = members + [Member(f"N{i:05d}", f"追加団体{i}", typical) for i in range(1, n + 1)]
        fees = {}
        for key, _label in SIMULATED_METHODS:
            spec = MethodSpec(kind=key, ratio=ratio)
            fees[key] = run(amount, joined, spec).fee_of(tenant.lg_code)
        points.append(SimulationPoint(n, fees))
    return Simulation(service.name, amount, len(members) - (0 if already else 1), already, typical,
                      me.population, points, next(p for p in points if p.joined == extra))
