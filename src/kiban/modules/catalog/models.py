"""The common service catalog (national, public), each local government's adoptions
(tenant-owned: contract dates and costs are the municipality's own business) and consortia
(共同利用・共同調達: public facts about who shares what)."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, ForeignKeyConstraint, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime


class Pattern(enum.StrEnum):
    """共通化のパターン (seed 001, 第3回ワーキングチーム資料)."""

    common_a = "common_a"
    common_b = "common_b"
    standard = "standard"
    individual = "individual"

    @property
    def label(self) -> str:
        return PATTERN_LABELS[self][0]

    @property
    def explanation(self) -> str:
        return PATTERN_LABELS[self][1]


PATTERN_LABELS = {
    Pattern.common_a: ("共通化A", "国がシステムを所有し、システムは1つ。自治体は利用するだけ（例: VRS）。費用は国負担が基本。"),
    Pattern.common_b: ("共通化B", "事業者が標準仕様書に沿ってSaaSを提供し、自治体は数種類から選んで利用契約する（例: 窓口DXSaaS）。"
                       "利用料は人口規模で設定し、自治体が事業者へ支払う。"),
    Pattern.standard: ("標準化", "自治体が標準仕様書に準拠したシステムを所有し、開発・運用・保守を契約する（例: 標準20業務）。"),
    Pattern.individual: ("個別開発", "自治体ごとに仕様書作成から調達・開発・運用まで行う（これまでの自治体システム）。"),
}


class BurdenCategory(enum.StrEnum):
    """費用負担の区分 (seed 003, 基本方針の概要 2. 費用負担の基本的考え方)."""

    common_saas = "common_saas"
    dpi = "dpi"
    infrastructure = "infrastructure"
    municipal = "municipal"

    @property
    def label(self) -> str:
        return BURDEN_LABELS[self][0]

    @property
    def rule(self) -> str:
        return BURDEN_LABELS[self][1]


BURDEN_LABELS = {
    BurdenCategory.common_saas: ("共通SaaS", "国が共通化に関する調査、初期段階における実証、標準的な仕様書の作成等に要する費用を負担し、"
                                 "地方公共団体が利用料等を負担することが原則。"),
    BurdenCategory.dpi: ("デジタル公共インフラ（DPI）", "認証基盤（マイナンバーカード等）、ベース・レジストリ等は国が主導して開発・運用・保守を行うことが適当。"),
    BurdenCategory.infrastructure: ("物理／仮想基盤", "原則として費用は整備主体が負担し、利用者は運用・保守費用等について応分の負担。"),
    BurdenCategory.municipal: ("自治体システム", "標準準拠システムは各自治体が開発・運用・保守の費用を負担（移行後は2018年度比で少なくとも3割の運用経費削減が目標）。"),
}


class Lifecycle(enum.StrEnum):
    candidate = "candidate"
    pilot = "pilot"
    rollout = "rollout"
    national = "national"

    @property
    def label(self) -> str:
        return {"candidate": "候補", "pilot": "実証", "rollout": "展開", "national": "全国"}[self.value]


class AdoptionStatus(enum.StrEnum):
    considering = "considering"
    pilot = "pilot"
    in_use = "in_use"
    ended = "ended"

    @property
    def label(self) -> str:
        return {"considering": "検討中", "pilot": "実証参加", "in_use": "利用中", "ended": "終了"}[self.value]


class CatalogService(Base):
    """One common system. Platform-wide and public; デジタル庁 staff edit it."""

    __tablename__ = "catalog_service"

    id: Mapped[str] = mapped_column(String(60), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str] = mapped_column(String(60), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    pattern: Mapped[str] = mapped_column(String(20), index=True)
    owner: Mapped[str] = mapped_column(String(200))
    burden_category: Mapped[str] = mapped_column(String(20))
    lifecycle: Mapped[str] = mapped_column(String(20))
    # The common service's annual cost across all its users (年間総経費, yen), when published.
    annual_cost: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(300), default="")
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    seeded: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(200), default="seed")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CatalogVendor(Base):
    """A vendor offering a pattern-B service (competing SaaS built to the standard spec)."""

    __tablename__ = "catalog_vendor"
    __table_args__ = (UniqueConstraint("service_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("catalog_service.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(String(400), default="")


class Adoption(TenantScoped, Base):
    """A local government's use of a catalog service (one row per service)."""

    __tablename__ = "catalog_adoption"

    service_id: Mapped[str] = mapped_column(ForeignKey("catalog_service.id"), primary_key=True, index=True)
    vendor_id: Mapped[str | None] = mapped_column(ForeignKey("catalog_vendor.id"))
    status: Mapped[str] = mapped_column(String(20), index=True)
    since: Mapped[date | None] = mapped_column(Date)
    renewal_on: Mapped[date | None] = mapped_column(Date)  # 更改時期 of the current contract
    # 置き換える（置き換えた）システムの年間経費 — for the standard operations, the FY2018 baseline.
    replaced_annual_cost: Mapped[int | None] = mapped_column(BigInteger)
    annual_cost: Mapped[int | None] = mapped_column(BigInteger)  # 現在の年間経費
    note: Mapped[str] = mapped_column(String(400), default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Consortium(Base):
    """共同利用・共同調達の枠組み (e.g. あいち電子自治体推進協議会), run by a secretariat."""

    __tablename__ = "consortium"

    id: Mapped[str] = mapped_column(String(60), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secretariat_code: Mapped[str] = mapped_column(ForeignKey("organization.code"), index=True)
    contract: Mapped[str] = mapped_column(String(300), default="")
    fee_rule: Mapped[str] = mapped_column(String(300), default="")
    source: Mapped[str] = mapped_column(String(300), default="")


class ConsortiumMember(Base):
    __tablename__ = "consortium_member"

    consortium_id: Mapped[str] = mapped_column(ForeignKey("consortium.id"), primary_key=True)
    member_code: Mapped[str] = mapped_column(ForeignKey("organization.code"), primary_key=True, index=True)


class ConsortiumSystem(Base):
    """A system the consortium shares. ``published_users`` is the count the consortium
    publishes (e.g. 施設予約 28団体); the members actually recorded are in ConsortiumSystemUser."""

    __tablename__ = "consortium_system"

    consortium_id: Mapped[str] = mapped_column(ForeignKey("consortium.id"), primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("catalog_service.id"), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(200), default="")  # 部会
    published_users: Mapped[int | None] = mapped_column(Integer)
    all_members: Mapped[bool] = mapped_column(Boolean, default=False)  # 全団体事業


class ConsortiumSystemUser(Base):
    __tablename__ = "consortium_system_user"
    __table_args__ = (
        ForeignKeyConstraint(["consortium_id", "service_id"],
                             ["consortium_system.consortium_id", "consortium_system.service_id"]),
        ForeignKeyConstraint(["consortium_id", "member_code"],
                             ["consortium_member.consortium_id", "consortium_member.member_code"]),
    )

    consortium_id: Mapped[str] = mapped_column(String(60), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(60), primary_key=True)
    member_code: Mapped[str] = mapped_column(String(6), primary_key=True)
