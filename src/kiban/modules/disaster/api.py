"""JSON twin of the situation dashboard: statistics the moment records are written, for the
systems of municipalities, prefectures and 内閣府 (staff sessions or API keys)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from kiban.core.identity.dependencies import StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.tenancy.dependencies import DbSession
from kiban.modules.disaster import service

router = APIRouter(prefix="/api/v1/t/{lg_code}/disasters", tags=["広域被災者データベース"])
Reader = Annotated[StaffContext, require(Permission.disaster_record_read)]


class Row(BaseModel):
    label: str
    count: int | None = Field(description="登録件数（registrations と同じ。互換のため）。非表示のときは null")
    registrations: int | None = Field(description=f"登録件数。{service.SMALL_COUNT}人未満で非表示のときは null")
    people: int | None = Field(description="人数（名寄せ後: 同じ人と確認された記録を1人と数える）。"
                                           f"{service.SMALL_COUNT}人未満で非表示のときは null")


class CrowdedShelterRead(BaseModel):
    name: str
    municipality: str
    occupancy: int
    capacity: int
    percent: int = Field(description="収容率（%）")


class DashboardRead(BaseModel):
    disaster_id: str
    disaster_name: str
    scope: str = Field(description="municipality / prefecture / national")
    registrations: int
    people: int = Field(description="名寄せ後の人数")
    small_count_suppressed_below: int | None = Field(description="この人数未満の行を非表示にした基準。正確な集計では null")
    tables: dict[str, list[Row]]
    shelter_warning_percent: int = Field(description="避難所の混雑警告の基準（収容率 %、テナント設定）")
    crowded_shelters: list[CrowdedShelterRead]


@router.get("/{disaster_id}/dashboard", summary="状況把握（人数の集計。団体の範囲に応じて）", response_model=DashboardRead)
async def dashboard(disaster_id: str, staff: Reader, session: DbSession, view: str = "") -> DashboardRead:
    """``view=national``: the whole disaster (prefectures and national bodies)."""
    disaster = await service.get_disaster(session, disaster_id)
    board = await service.dashboard(session, staff.tenant, disaster_id, national=view == "national")
    return DashboardRead(disaster_id=disaster.id, disaster_name=disaster.name, scope=board.scope,
                         registrations=board.total, people=board.people,
                         small_count_suppressed_below=None if board.exact else service.SMALL_COUNT,
                         tables={name: [Row(label=row.label, count=row.registrations, registrations=row.registrations,
                                            people=row.people) for row in rows]
                                 for name, rows in board.tables.items()},
                         shelter_warning_percent=board.warning_percent,
                         crowded_shelters=[CrowdedShelterRead(name=c.name, municipality=c.municipality, occupancy=c.occupancy,
                                                              capacity=c.capacity, percent=c.percent) for c in board.crowded])
