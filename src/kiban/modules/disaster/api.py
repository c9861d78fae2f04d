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
    count: int | None = Field(description=f"人数。{service.SMALL_COUNT}人未満で非表示のときは null")


class DashboardRead(BaseModel):
    disaster_id: str
    disaster_name: str
    scope: str = Field(description="municipality / prefecture / national")
    registrations: int
    people: int = Field(description="名寄せ後の人数")
    small_count_suppressed_below: int
    tables: dict[str, list[Row]]


@router.get("/{disaster_id}/dashboard", summary="状況把握（人数の集計。団体の範囲に応じて）", response_model=DashboardRead)
async def dashboard(disaster_id: str, staff: Reader, session: DbSession, view: str = "") -> DashboardRead:
    """``view=national``: the whole disaster (prefectures and national bodies)."""
    disaster = await service.get_disaster(session, disaster_id)
    board = await service.dashboard(session, staff.tenant, disaster_id, national=view == "national")
    return DashboardRead(disaster_id=disaster.id, disaster_name=disaster.name, scope=board.scope,
                         registrations=board.total, people=board.people, small_count_suppressed_below=service.SMALL_COUNT,
                         tables={name: [Row(label=label, count=count) for label, count in rows]
                                 for name, rows in board.tables.items()})
