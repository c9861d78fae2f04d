"""Catalog, adoptions and consortia: the rules, independent of pages and API.

Cross-tenant reads here are aggregates only (how many adopt a service; sums of costs when at
least ``MIN_GROUP`` organisations report, so no single municipality's cost can be read off a
public page). Each such read goes through a named ``unscoped``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit import labels as audit_labels
from kiban.core.audit import service as audit
from kiban.core.registry.models import Organization
from kiban.core.tenancy.context import unscoped
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.kit.validation import MAX_YEN, check_date
from kiban.modules.catalog.models import (
    Adoption,
    AdoptionStatus,
    BurdenCategory,
    CatalogService,
    CatalogVendor,
    Consortium,
    ConsortiumMember,
    ConsortiumSystem,
    ConsortiumSystemUser,
    Lifecycle,
    Pattern,
)

MIN_GROUP = 3  # cost aggregates are shown only over at least this many organisations
ACTIVE = (AdoptionStatus.in_use.value, AdoptionStatus.pilot.value)
REDUCTION_TARGET = 0.30  # 標準化対象事務: 2018年度比で少なくとも3割削減

# What marks invented figures (``kiban demo``): the note of every demo adoption and the author
# of every demo cost. Pages that show figures built from them say 架空 (``demo_service_ids``).
DEMO_NOTE = "架空のデモデータ（デモ用に作成したもので、実際の契約・経費ではありません）"
DEMO_ACTOR = "デモデータ作成（架空）"
LEGACY_DEMO_NOTE = "デモデータ（kiban demo が作成。実際の契約・経費ではありません）"
LEGACY_DEMO_ACTOR = "kiban demo"
SEED_ACTOR = "seed"  # a catalog row nobody has edited since the seed (the seed may refresh it)

_AUTHOR_LABELS = {SEED_ACTOR: "初期登録（政策資料による）", LEGACY_DEMO_ACTOR: DEMO_ACTOR}


def author_label(updated_by: str | None) -> str:
    """Who last changed a row, for screens: the seed and the demo as words, people as named."""
    return _AUTHOR_LABELS.get(updated_by or "", updated_by or "—")


class AdoptionRepository(TenantRepository[Adoption]):
    model = Adoption


# -- catalog -------------------------------------------------------------------------------------

async def list_services(session: AsyncSession, *, pattern: str | None = None, domain: str | None = None,
                        lifecycle: str | None = None) -> list[CatalogService]:
    statement = select(CatalogService).order_by(CatalogService.sort_order, CatalogService.id)
    if pattern:
        statement = statement.where(CatalogService.pattern == pattern)
    if domain:
        statement = statement.where(CatalogService.domain == domain)
    if lifecycle:
        statement = statement.where(CatalogService.lifecycle == lifecycle)
    return list((await session.scalars(statement)).all())


async def domains(session: AsyncSession) -> list[str]:
    rows = await session.execute(select(CatalogService.domain, func.min(CatalogService.sort_order))
                                 .group_by(CatalogService.domain).order_by(func.min(CatalogService.sort_order)))
    return [r[0] for r in rows]


async def get_service(session: AsyncSession, service_id: str) -> CatalogService:
    service = await session.get(CatalogService, service_id)
    if service is None:
        raise NotFound("お探しの共通サービスはカタログにありません。カタログの一覧から選んでください。")
    return service


async def find_service(session: AsyncSession, service_id: str) -> CatalogService | None:
    """The service, or None when the catalog has none by that id (``get_service`` raises instead)."""
    return await session.get(CatalogService, service_id)


async def vendors_of(session: AsyncSession, service_id: str) -> list[CatalogVendor]:
    return list((await session.scalars(select(CatalogVendor).where(CatalogVendor.service_id == service_id)
                                       .order_by(CatalogVendor.name))).all())


async def adoption_counts(session: AsyncSession) -> dict[str, dict[str, int]]:
    """Per service: how many organisations are in each adoption status (counts only)."""
    async with unscoped(session, "共通サービスの普及状況（団体数の集計のみ）"):
        rows = await session.execute(select(Adoption.service_id, Adoption.status, func.count())
                                     .group_by(Adoption.service_id, Adoption.status))
        counts: dict[str, dict[str, int]] = {}
        for service_id, status, n in rows:
            counts.setdefault(service_id, {})[status] = n
    return counts


async def adopter_populations(session: AsyncSession, service_id: str) -> list[tuple[str, str, int | None]]:
    """(code, name, population) of organisations using or piloting a service: which
    organisations adopt a common service is public; their costs are not read here."""
    async with unscoped(session, "共通サービスの利用団体（団体名と人口のみ）"):
        rows = await session.execute(
            select(Organization.code, Organization.name, Organization.population)
            .join(Adoption, Adoption.lg_code == Organization.code)
            .where(Adoption.service_id == service_id, Adoption.status.in_(ACTIVE))
            .order_by(Organization.code))
        return [tuple(r) for r in rows]


async def demo_service_ids(session: AsyncSession) -> set[str]:
    """Services whose shown figures include invented demo data: adoptions the demo made (their
    note) or a common-service cost the demo set (its author). Empty outside a demo."""
    async with unscoped(session, "架空のデモデータの有無（サービス名のみ）"):
        adopted = (await session.scalars(select(Adoption.service_id).distinct().where(
            Adoption.note.in_((DEMO_NOTE, LEGACY_DEMO_NOTE))))).all()
    costed = (await session.scalars(select(CatalogService.id).where(
        CatalogService.updated_by.in_((DEMO_ACTOR, LEGACY_DEMO_ACTOR))))).all()
    return set(adopted) | set(costed)


@dataclass(frozen=True)
class Saving:
    """Individual systems' total cost vs the common service's cost, over reporting adopters."""

    service: CatalogService
    reporting: int
    individual_total: int | None
    common_cost: int | None
    current_total: int | None

    @property
    def suppressed(self) -> bool:
        return self.reporting < MIN_GROUP

    @property
    def saving(self) -> int | None:
        if self.suppressed or self.individual_total is None:
            return None
        basis = self.common_cost if self.common_cost is not None else self.current_total
        return None if basis is None else self.individual_total - basis

    @property
    def reduction(self) -> float | None:
        if self.saving is None or not self.individual_total:
            return None
        return self.saving / self.individual_total


async def savings(session: AsyncSession, services: list[CatalogService]) -> list[Saving]:
    async with unscoped(session, "費用の見える化（3団体以上の合計のみ）"):
        rows = await session.execute(
            select(Adoption.service_id, func.count(), func.sum(Adoption.replaced_annual_cost),
                   func.sum(Adoption.annual_cost))
            .where(Adoption.status.in_(ACTIVE), Adoption.replaced_annual_cost.is_not(None),
                   Adoption.annual_cost.is_not(None))
            .group_by(Adoption.service_id))
        by_service = {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}
    result = []
    for service in services:
        n, replaced, current = by_service.get(service.id, (0, None, None))
        hidden = n < MIN_GROUP
        result.append(Saving(service, n, None if hidden else replaced, service.annual_cost,
                             None if hidden else current))
    return result


@dataclass(frozen=True)
class Reduction:
    label: str
    baseline: int
    current: int

    @property
    def rate(self) -> float:
        return (self.baseline - self.current) / self.baseline if self.baseline else 0.0

    @property
    def meets_target(self) -> bool:
        return self.rate >= REDUCTION_TARGET


async def national_reduction(session: AsyncSession) -> tuple[Reduction | None, int]:
    """標準化20業務: baseline (the replaced systems' cost, FY2018) vs current, nationally."""
    async with unscoped(session, "標準化20業務の経費削減の全国集計（合計のみ）"):
        row = (await session.execute(
            select(func.count(func.distinct(Adoption.lg_code)), func.sum(Adoption.replaced_annual_cost),
                   func.sum(Adoption.annual_cost))
            .join(CatalogService, CatalogService.id == Adoption.service_id)
            .where(CatalogService.pattern == Pattern.standard.value, Adoption.status.in_(ACTIVE),
                   Adoption.replaced_annual_cost.is_not(None), Adoption.annual_cost.is_not(None)))).one()
    organisations = int(row[0] or 0)
    if organisations < MIN_GROUP:
        return None, organisations
    return Reduction("全国", int(row[1]), int(row[2])), organisations


# -- creating and classifying a service (デジタル庁, and the council's 採択 through governance) ---------------

SERVICE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?$")
SERVICE_LIMITS = {"name": 200, "domain": 60, "owner": 200, "description": 4000, "source": 300}
NEW_SERVICE_SORT_ORDER = 9000  # added services follow the seeded ones in the catalog's order

audit_labels.ACTION_LABELS.update({
    "catalog.service.created": "カタログへの共通サービスの登録",
    "catalog.service.classified": "共通サービスの分類（パターン・費用負担・段階）の変更",
})


# 費用負担の基本的考え方 (seed 003): a system each municipality owns (標準化, 個別開発) is paid by the
# municipality (自治体システム); a shared one (共通化A/B) never is, whichever shared rule applies.
MUNICIPAL_PATTERNS = frozenset({Pattern.standard.value, Pattern.individual.value})


def burden_problem(pattern: str, burden_category: str) -> str | None:
    """The Japanese message when the cost-burden category contradicts the pattern, else None."""
    if (burden_category == BurdenCategory.municipal.value) == (pattern in MUNICIPAL_PATTERNS):
        return None
    return burden_mismatch(pattern)


def burden_mismatch(pattern: str) -> str:
    if pattern in MUNICIPAL_PATTERNS:
        return (f"{Pattern(pattern).label}は各自治体がシステムを所有するため、費用負担の区分は「自治体システム」を選んでください。")
    return (f"{Pattern(pattern).label}は共通のシステムのため、費用負担の区分は 共通SaaS・DPI・物理／仮想基盤 から選んでください"
            "（「自治体システム」は標準化・個別開発のときの区分です）。")


@dataclass(frozen=True)
class ServiceInput:
    """What a catalog service is: its name and field, the 共通化 pattern, the cost-burden
    category (費用負担の区分, whose rule the catalog shows), the lifecycle stage and who owns it."""

    name: str
    domain: str
    pattern: str
    burden_category: str
    lifecycle: str
    owner: str
    description: str = ""
    annual_cost: int | str | None = None
    source: str = ""

    @classmethod
    def of(cls, service: CatalogService, **changes) -> ServiceInput:
        """The stored service as input, with ``changes`` applied (to reclassify one aspect)."""
        values = {name: getattr(service, name) for name in cls.__dataclass_fields__}
        return cls(**{**values, **changes})


def _field_errors(data: ServiceInput) -> tuple[dict[str, str], int | None]:
    """Every problem at once, by field; and the annual cost as yen."""
    errors: dict[str, str] = {}
    labels = {"name": "サービス名", "domain": "分野", "owner": "所有者・提供者", "description": "説明", "source": "出典"}
    for name, limit in SERVICE_LIMITS.items():
        value = getattr(data, name)
        if not isinstance(value, str):
            errors[name] = f"{labels[name]}を文字で入力してください。"
        elif name in ("name", "domain", "owner") and not value.strip():
            errors[name] = f"{labels[name]}を入力してください。"
        elif len(value.strip()) > limit:
            errors[name] = f"{labels[name]}は{limit:,}文字以内で入力してください（いま{len(value.strip()):,}文字）。"
    if data.pattern not in {p.value for p in Pattern}:
        errors["pattern"] = "共通化のパターンを 共通化A・共通化B・標準化・個別開発 から選んでください。"
    if data.burden_category not in {b.value for b in BurdenCategory}:
        errors["burden_category"] = "費用負担の区分を 共通SaaS・DPI・物理／仮想基盤・自治体システム から選んでください。"
    if data.lifecycle not in {x.value for x in Lifecycle}:
        errors["lifecycle"] = "段階は 候補・実証・展開・全国 から選んでください。"
    if "pattern" not in errors and "burden_category" not in errors:
        if problem := burden_problem(data.pattern, data.burden_category):
            errors["burden_category"] = problem
    cost = None
    try:
        cost = parse_yen(data.annual_cost, "年間総経費")
    except InvalidInput as exc:
        errors["annual_cost"] = exc.detail
    return errors, cost


def _refuse(errors: dict[str, str]) -> None:
    if errors:
        raise InvalidInput("入力内容を確認してください。",
                           errors=[{"field": k, "message": v} for k, v in errors.items()])


async def save_service(session: AsyncSession, data: ServiceInput, *, actor: audit.Actor,
                       service_id: str | None = None, expected_version: int = 0,
                       purpose: str | None = None) -> tuple[CatalogService, bool]:
    """Create (``expected_version`` 0) or update a catalog service, audited on the bound
    organisation's chain in the caller's transaction (no commit). Returns (service, created).

    The one way to write a service's classification: デジタル庁's pages and API, and the council's
    採択 (modules/governance) call it. ``service_id`` is the public id (lower-case letters, digits
    and hyphens); a new one must not exist. Raises InvalidInput naming every bad field at once,
    Conflict when the id is taken or the version read is stale, NotFound for an update of a
    service that is not there. Nothing is written when it raises."""
    errors, cost = _field_errors(data)
    sid = (service_id or "").strip()
    if expected_version == 0 and not SERVICE_ID.match(sid):
        errors["service_id"] = "サービスの識別名は半角の英小文字・数字・ハイフンで60文字以内にしてください（先頭と末尾は英小文字か数字）。"
    _refuse(errors)
    now = utcnow()
    if expected_version == 0:
        if await session.get(CatalogService, sid) is not None:
            raise Conflict("この識別名のサービスはすでにカタログにあります。別の識別名にするか、そのサービスを更新してください。",
                           errors=[{"field": "service_id", "message": "この識別名はすでに使われています。"}])
        service = CatalogService(id=sid, sort_order=NEW_SERVICE_SORT_ORDER, seeded=False, version=0)
        session.add(service)
        before: dict = {}
    else:
        service = await get_service(session, sid)
        if expected_version != service.version:
            raise Conflict("ほかの職員が先に更新しました。最新の内容を確認してから、もう一度保存してください。")
        before = {k: getattr(service, k) for k in ("pattern", "burden_category", "lifecycle", "annual_cost")}
    service.name, service.domain, service.owner = data.name.strip(), data.domain.strip(), data.owner.strip()
    service.description, service.source = data.description.strip(), data.source.strip()
    service.pattern, service.burden_category, service.lifecycle = data.pattern, data.burden_category, data.lifecycle
    service.annual_cost = cost
    service.version = (service.version or 0) + 1
    service.updated_by, service.updated_at = actor.label, now
    await session.flush()
    after = {k: getattr(service, k) for k in ("pattern", "burden_category", "lifecycle", "annual_cost")}
    changes = {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}
    created = expected_version == 0
    entry = {"target_type": "catalog_service", "target_id": service.id, "purpose": purpose,
             "details": {"name": service.name, **after, "changes": changes, "version": service.version}}
    if created:
        await audit.record(session, actor, "catalog.service.created", **entry)
    elif any(k in changes for k in ("pattern", "burden_category", "lifecycle")):
        await audit.record(session, actor, "catalog.service.classified", **entry)
    else:
        await audit.record(session, actor, "catalog.service.updated", **entry)
    return service, created


async def add_vendor(session: AsyncSession, service_id: str, name: str, note: str = "") -> CatalogVendor:
    service = await get_service(session, service_id)
    if service.pattern != Pattern.common_b.value:
        raise InvalidInput("事業者を登録できるのは共通化B（事業者が提供するSaaS）のサービスだけです。")
    name = name.strip()
    if not name:
        raise InvalidInput("事業者名を入力してください。")
    if any(v.name == name for v in await vendors_of(session, service_id)):
        raise InvalidInput(f"事業者「{name}」はすでに登録されています。")
    vendor = CatalogVendor(id=str(uuid.uuid4()), service_id=service_id, name=name, note=note.strip())
    session.add(vendor)
    await session.flush()
    return vendor


# -- adoptions (tenant-owned) -----------------------------------------------------------------------

def parse_yen(value: str | int | None, what: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip().replace(",", "").replace("，", "").removesuffix("円")
        text = text.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
        if not text.isdigit():
            raise InvalidInput(f"{what}「{value}」は円単位の整数で入力してください（例: 12000000）。")
        number = int(text)
    if number < 0:
        raise InvalidInput(f"{what}は0円以上で入力してください。")
    if number > MAX_YEN:
        raise InvalidInput(f"{what}が大きすぎます。円単位で入力しているか確認してください。")
    return number


@dataclass(frozen=True)
class AdoptionInput:
    service_id: str
    status: str
    vendor_id: str | None = None
    since: date | None = None
    renewal_on: date | None = None
    replaced_annual_cost: int | None = None
    annual_cost: int | None = None
    note: str = ""
    expected_version: int = 0


async def save_adoption(session: AsyncSession, data: AdoptionInput, *, actor: str) -> Adoption:
    """Create or update the tenant's adoption of a service (``expected_version`` 0 = new)."""
    service = await get_service(session, data.service_id)
    try:
        AdoptionStatus(data.status)
    except ValueError:
        raise InvalidInput("状況は 検討中・実証参加・利用中・終了 から選んでください。") from None
    if data.vendor_id:
        if data.vendor_id not in {v.id for v in await vendors_of(session, service.id)}:
            raise InvalidInput(f"選んだ事業者は「{service.name}」の事業者として登録されていません。")
    check_date(data.since, "利用開始日")
    check_date(data.renewal_on, "更改時期")
    if data.since and data.renewal_on and data.renewal_on < data.since:
        raise InvalidInput("更改時期が利用開始日より前になっています。日付を確認してください。")
    for value, what in ((data.replaced_annual_cost, "置き換える（置き換えた）システムの年間経費"),
                        (data.annual_cost, "現在の年間経費")):
        if value is not None and value < 0:
            raise InvalidInput(f"{what}は0円以上で入力してください。")
        if value is not None and value > MAX_YEN:
            raise InvalidInput(f"{what}が大きすぎます。円単位で入力しているか確認してください。")
    if len(data.note) > 400:
        raise InvalidInput("備考は400文字以内で入力してください。")
    repo = AdoptionRepository(session)
    adoption = await repo.first(repo.select().where(Adoption.service_id == service.id))
    if adoption is None:
        if data.expected_version not in (0, None):
            raise Conflict("この利用状況はほかの職員によって削除されました。一覧から確認してください。")
        adoption = repo.add(Adoption(service_id=service.id, version=0))
    elif data.expected_version != adoption.version:
        raise Conflict("ほかの職員が先にこの利用状況を更新しました。最新の内容を確認してから、もう一度保存してください。")
    adoption.status = data.status
    adoption.vendor_id = data.vendor_id or None
    adoption.since = data.since
    adoption.renewal_on = data.renewal_on
    adoption.replaced_annual_cost = data.replaced_annual_cost
    adoption.annual_cost = data.annual_cost
    adoption.note = data.note.strip()
    adoption.version = (adoption.version or 0) + 1
    adoption.updated_by = actor
    adoption.updated_at = utcnow()
    await session.flush()
    return adoption


async def adoptions_of_tenant(session: AsyncSession) -> list[tuple[Adoption, CatalogService, CatalogVendor | None]]:
    repo = AdoptionRepository(session)
    rows = await session.execute(
        repo.select().add_columns(CatalogService, CatalogVendor)
        .join(CatalogService, CatalogService.id == Adoption.service_id)
        .outerjoin(CatalogVendor, CatalogVendor.id == Adoption.vendor_id)
        .order_by(CatalogService.sort_order))
    return [(a, s, v) for a, s, v in rows]


async def adoption_of_tenant(session: AsyncSession, service_id: str) -> Adoption | None:
    repo = AdoptionRepository(session)
    return await repo.first(repo.select().where(Adoption.service_id == service_id))


def tenant_reduction(rows, tenant_name: str) -> Reduction | None:
    """The tenant's own 3割 figure over its standard-operation systems reporting both costs."""
    pairs = [(a.replaced_annual_cost, a.annual_cost) for a, s, _ in rows
             if s.pattern == Pattern.standard.value and a.status in ACTIVE
             and a.replaced_annual_cost is not None and a.annual_cost is not None]
    if not pairs:
        return None
    return Reduction(tenant_name, sum(p[0] for p in pairs), sum(p[1] for p in pairs))


# -- consortia ---------------------------------------------------------------------------------------

async def list_consortia(session: AsyncSession) -> list[tuple[Consortium, int]]:
    rows = await session.execute(
        select(Consortium, func.count(ConsortiumMember.member_code))
        .outerjoin(ConsortiumMember, ConsortiumMember.consortium_id == Consortium.id)
        .group_by(Consortium.id).order_by(Consortium.id))
    return [(c, n) for c, n in rows]


async def get_consortium(session: AsyncSession, consortium_id: str) -> Consortium:
    consortium = await session.get(Consortium, consortium_id)
    if consortium is None:
        raise NotFound("お探しの共同利用の枠組みは見つかりません。共同利用・共同調達の一覧から選んでください。")
    return consortium


async def consortium_members(session: AsyncSession, consortium_id: str) -> list[Organization]:
    return list((await session.scalars(
        select(Organization).join(ConsortiumMember, ConsortiumMember.member_code == Organization.code)
        .where(ConsortiumMember.consortium_id == consortium_id).order_by(Organization.code))).all())


@dataclass(frozen=True)
class SharedSystem:
    system: ConsortiumSystem
    service: CatalogService
    user_codes: frozenset[str]


async def consortium_systems(session: AsyncSession, consortium_id: str) -> list[SharedSystem]:
    rows = (await session.execute(
        select(ConsortiumSystem, CatalogService).join(CatalogService, CatalogService.id == ConsortiumSystem.service_id)
        .where(ConsortiumSystem.consortium_id == consortium_id).order_by(CatalogService.sort_order))).all()
    users = (await session.execute(
        select(ConsortiumSystemUser.service_id, ConsortiumSystemUser.member_code)
        .where(ConsortiumSystemUser.consortium_id == consortium_id))).all()
    by_service: dict[str, set[str]] = {}
    for service_id, code in users:
        by_service.setdefault(service_id, set()).add(code)
    return [SharedSystem(system, service, frozenset(by_service.get(service.id, ()))) for system, service in rows]


async def shared_system(session: AsyncSession, consortium_id: str, service_id: str) -> SharedSystem:
    for shared in await consortium_systems(session, consortium_id):
        if shared.service.id == service_id:
            return shared
    raise NotFound("この枠組みでは、そのシステムを共同利用していません。")


async def set_system_users(session: AsyncSession, consortium_id: str, service_id: str, codes: list[str]) -> int:
    """Record which members use a shared system (the secretariat's job)."""
    await shared_system(session, consortium_id, service_id)
    members = {m.code for m in await consortium_members(session, consortium_id)}
    unknown = sorted(set(codes) - members)
    if unknown:
        raise InvalidInput(f"構成団体ではない団体が含まれています: {', '.join(unknown)}")
    existing = set((await session.scalars(
        select(ConsortiumSystemUser.member_code).where(ConsortiumSystemUser.consortium_id == consortium_id,
                                                       ConsortiumSystemUser.service_id == service_id))).all())
    for code in existing - set(codes):
        await session.delete(await session.get(ConsortiumSystemUser, (consortium_id, service_id, code)))
    for code in sorted(set(codes) - existing):
        session.add(ConsortiumSystemUser(consortium_id=consortium_id, service_id=service_id, member_code=code))
    await session.flush()
    return len(set(codes))


async def consortia_of_member(session: AsyncSession, code: str) -> list[Consortium]:
    return list((await session.scalars(
        select(Consortium).join(ConsortiumMember, ConsortiumMember.consortium_id == Consortium.id)
        .where(ConsortiumMember.member_code == code).order_by(Consortium.id))).all())
