"""The base registry of organisations: every local government, the wards of designated
cities, and the national bodies and associations of local governments that use the platform.
Not tenant-owned: it is the shared public register every tenant reads."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Date, Float, ForeignKey, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from kiban.kit.db import Base, UTCDateTime


class OrgType(enum.StrEnum):
    prefecture = "都道府県"
    designated_city = "政令市"
    special_ward = "特別区"
    city = "市"
    town = "町"
    village = "村"
    ward = "行政区"
    national = "府省庁"
    # 全国知事会・全国市長会・全国町村会 (地方自治法第263条の3「全国的連合組織」): they sit on the
    # national–local council and submit needs; not local governments, so never counted as one.
    association = "全国的連合組織"

    @property
    def is_municipality(self) -> bool:
        return self in MUNICIPAL_TYPES


MUNICIPAL_TYPES = frozenset({OrgType.designated_city, OrgType.special_ward, OrgType.city,
                             OrgType.town, OrgType.village})


class Organization(Base):
    __tablename__ = "organization"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kana: Mapped[str | None] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(10), index=True)
    prefecture_number: Mapped[str | None] = mapped_column(String(2), index=True)
    prefecture_name: Mapped[str | None] = mapped_column(String(10))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("organization.code"), index=True)
    population: Mapped[int | None] = mapped_column(Integer)
    households: Mapped[int | None] = mapped_column(Integer)
    population_source: Mapped[str | None] = mapped_column(String(60))
    area_km2: Mapped[float | None] = mapped_column(Float)
    habitable_area_km2: Mapped[float | None] = mapped_column(Float)
    search_key: Mapped[str] = mapped_column(String(400), default="")
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    retired_on: Mapped[date | None] = mapped_column(Date)
    successor_code: Mapped[str | None] = mapped_column(ForeignKey("organization.code"))
    retirement_reason: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now()
    )

    @property
    def is_retired(self) -> bool:
        return self.retired_on is not None


class RegistryRevision(Base):
    """A counter bumped in the same transaction as every registry change (seed, merge), so
    that processes holding the registry in memory can tell cheaply whether it is stale."""

    __tablename__ = "registry_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
