"""Running the allocation engine on the platform's data: consortium fee schedules, each member's
負担金算定書, and the what-if simulator for a municipality that has not joined yet."""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry.models import Organization
from kiban.core.tenancy.context import Tenant, unscoped
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow
from kiban.kit.errors import InvalidInput, NotFound
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
from kiban.modules.costs.models import FeeSchedule, FeeStatement

POPULATION_SOURCE = "令和2年国勢調査人口"
MethodKind = Literal["equal", "population", "weighted", "usage", "mixed"]
METHOD_LABELS = {"equal": "均等割", "population": "人口割", "weighted": "人口按分+重み係数", "usage": "利用量割",
                 "mixed": "組み合わせ（均等割＋他の方法）"}


class MethodSpec(BaseModel):
    """How to allocate, as a form or API client states it."""

    kind: MethodKind = "weighted"
    ratio: Decimal = Field(Decimal("1.5"), description="重み係数 r: 人口が2倍になると負担が r 倍")
    equal_percent: Decimal = Field(Decimal(30), description="組み合わせのときの均等割の割合（%）")
    rest: Literal["population", "weighted", "usage"] = "weighted"
    subsidy_percent: Decimal = Field(Decimal(0), description="国の補助率（%）")

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
        return text


def method_from_form(kind: str, ratio: str, equal_percent: str, rest: str, subsidy_percent: str) -> MethodSpec:
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
    equal = number(equal_percent, "均等割の割合")
    if kind == "mixed" and not Decimal(0) <= equal <= Decimal(100):
        raise InvalidInput("均等割の割合は0%〜100%で入力してください（残りが他の方法になります）。")
    subsidy = number(subsidy_percent, "国の補助率")
    if not Decimal(0) <= subsidy < Decimal(100):
        raise InvalidInput("国の補助率は0%以上100%未満で入力してください。")
    return MethodSpec(kind=kind, ratio=number(ratio, "重み係数"), equal_percent=equal, rest=rest,
                      subsidy_percent=subsidy)


def run(amount: int, members: list[Member], spec: MethodSpec) -> Allocation:
    try:
        return allocate(amount, members, spec.build(), subsidy_rate=spec.subsidy_rate)
    except AllocationError as exc:
        raise InvalidInput(str(exc)) from None


def member_of(org: Organization) -> Member:
    return Member(org.code, org.name, org.population)


# -- consortium fee schedules ----------------------------------------------------------------------

async def consortium_members_for(session: AsyncSession, consortium_id: str, service_id: str) -> list[Member]:
    shared = await catalog.shared_system(session, consortium_id, service_id)
    if not shared.user_codes:
        raise InvalidInput(f"「{shared.service.name}」を利用する構成団体がまだ登録されていません。"
                           "事務局の画面で利用団体を登録してから算定してください。")
    orgs = await catalog.consortium_members(session, consortium_id)
    return [member_of(o) for o in orgs if o.code in shared.user_codes]


class FeeScheduleRepository(TenantRepository[FeeSchedule]):
    model = FeeSchedule


class FeeStatementRepository(TenantRepository[FeeStatement]):
    model = FeeStatement


def _lines(result: Allocation) -> list[dict]:
    return [{"code": f.member.code, "name": f.member.name, "population": f.member.population, "fee": f.fee,
             "percent": f"{f.percent:.4f}", "explanation": f.explanation} for f in result.fees]


async def save_schedule(session: AsyncSession, tenant: Tenant, consortium_id: str, service_id: str, *,
                        fiscal_year: int, amount: int, spec: MethodSpec, actor: str) -> FeeSchedule:
    """Decide the fees and issue each member its statement. The schedule is the secretariat's
    record; each statement is written into the member's own tenant (a deliberate cross-tenant
    write, named below), so members read only their own."""
    consortium = await catalog.get_consortium(session, consortium_id)
    if consortium.secretariat_code != tenant.lg_code:
        raise NotFound("共同利用の枠組みが見つかりません。")
    if not 2000 <= fiscal_year <= 2100:
        raise InvalidInput("年度は西暦で入力してください（例: 2026）。")
    shared = await catalog.shared_system(session, consortium_id, service_id)
    members = await consortium_members_for(session, consortium_id, service_id)
    result = run(amount, members, spec)
    now = utcnow()
    schedule = FeeScheduleRepository(session).add(FeeSchedule(
        id=str(uuid.uuid4()), consortium_id=consortium_id, service_id=service_id, fiscal_year=fiscal_year,
        amount=result.amount, subsidy_rate=str(spec.subsidy_rate), subsidy=result.subsidy,
        allocated=result.allocated, method=spec.model_dump(mode="json"), method_label=spec.describe(),
        lines=_lines(result), created_by=actor, created_at=now))
    await session.flush()
    async with unscoped(session, "協議会事務局が構成団体へ負担金算定書を交付"):
        for fee in result.fees:
            session.add(FeeStatement(
                lg_code=fee.member.code, schedule_id=schedule.id, secretariat_code=tenant.lg_code,
                consortium_name=consortium.name, service_name=shared.service.name, fiscal_year=fiscal_year,
                amount=result.amount, subsidy=result.subsidy, allocated=result.allocated,
                method_label=spec.describe(), member_count=len(result.fees), member_name=fee.member.name,
                population=fee.member.population, fee=fee.fee, percent=f"{fee.percent:.4f}",
                explanation=fee.explanation, issued_by=actor, issued_at=now))
        await session.flush()
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
    return list(await repo.all(repo.select().order_by(FeeStatement.issued_at.desc())))


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
