"""JSON twins of /indicators: public, disclosure-controlled. Errors are problem+json (422 with
every wrong parameter named)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from kiban.core.identity.dependencies import PUBLIC
from kiban.core.tenancy.dependencies import DbSession
from kiban.kit.errors import NotFound
from kiban.kit.openapi import problem_responses
from kiban.modules.indicators import service

public = APIRouter(prefix="/api/v1/indicators", tags=["調査によらない指標（公開）"], dependencies=[PUBLIC])

Prefecture = Annotated[str | None, Query(description="都道府県の6桁の団体コード（例: 北海道 010006）。"
                                         "指定すると、その都道府県の団体ごとの表になります。")]
LgCode = Annotated[str | None, Query(description="地方公共団体の6桁の団体コード（例: 札幌市 011002）。その団体の行と時系列だけを返します。")]
Grain = Annotated[str | None, Query(description="時系列の単位: fy（年度、既定）または month（月）。負担金は常に年度。")]


class CellOut(BaseModel):
    value: float | None = Field(description="値。秘匿のときは null")
    contributors: int | None = Field(description="値のもとになった団体数（災害は名寄せ後の人数）。秘匿のときは null")
    suppressed: bool = Field(description="秘匿（少数のセル、または合計から逆算できるため）")
    empty: bool = Field(description="該当なし")


class RowOut(BaseModel):
    key: str = Field(description="都道府県番号（2桁）、団体コード（6桁）または期間（2026 / 2026-04）")
    label: str
    cells: list[CellOut]
    total: CellOut


class ColumnOut(BaseModel):
    key: str
    label: str


class GridOut(BaseModel):
    row_label: str
    columns: list[ColumnOut]
    rows: list[RowOut]
    column_totals: list[CellOut] | None
    total: CellOut | None


class PeriodOut(BaseModel):
    period: str
    cell: CellOut


class IndicatorOut(BaseModel):
    key: str
    title: str
    description: str
    unit: str
    contributor_unit: str = Field(description="秘匿の基準に数えるもの（団体・人）")
    min_contributors: int = Field(description="これ未満の団体数（人数）のセルは秘匿")
    category_label: str
    scope: str = Field(description="全国・都道府県名・団体名")
    area: GridOut
    series: list[PeriodOut] = Field(description="範囲全体（団体指定のときはその団体）の期間ごとの値")
    series_by_area: GridOut | None = Field(description="期間×都道府県（または団体）の表。団体指定のときは null")
    csv_url: str


class IndicatorsOut(BaseModel):
    scope: str
    prefecture: str | None
    lg_code: str | None
    grain: str
    demo_note: str | None = Field(description="デモ用の架空のデータを含むときの注意書き")
    indicators: list[IndicatorOut]


def _cell(c: service.Cell) -> CellOut:
    return CellOut(value=c.value, contributors=c.contributors, suppressed=c.suppressed, empty=c.empty)


def _grid(g: service.Grid | None) -> GridOut | None:
    if g is None:
        return None
    return GridOut(row_label=g.row_label, columns=[ColumnOut(key=k, label=label) for k, label in g.cols],
                   rows=[RowOut(key=r.key, label=r.label, cells=[_cell(c) for c in r.cells], total=_cell(r.total))
                         for r in g.rows],
                   column_totals=[_cell(c) for c in g.col_totals] if g.col_totals is not None else None,
                   total=_cell(g.total) if g.total is not None else None)


def query_string(scope: service.Scope, **extra: str) -> str:
    params = {"prefecture": scope.prefecture.code if scope.prefecture and not scope.organization else "",
              "lg_code": scope.organization.code if scope.organization else "", "grain": scope.grain, **extra}
    text = "&".join(f"{k}={v}" for k, v in params.items() if v)
    return f"?{text}" if text else ""


def indicator_out(item: service.Indicator) -> IndicatorOut:
    d = item.definition
    return IndicatorOut(key=d.key, title=d.title, description=d.description, unit=d.unit,
                        contributor_unit=d.contributor_unit, min_contributors=d.minimum,
                        category_label=d.category_label, scope=item.scope.label, area=_grid(item.area),
                        series=[PeriodOut(period=p, cell=_cell(c)) for p, c in item.series],
                        series_by_area=_grid(item.series_by_area),
                        csv_url=f"/indicators/{d.key}.csv{query_string(item.scope)}")


@public.get("", summary="調査によらない指標（全国・都道府県別・団体別、時系列。少数のセルは秘匿）",
            response_model=IndicatorsOut, responses=problem_responses(422))
async def all_indicators(session: DbSession, prefecture: Prefecture = None, lg_code: LgCode = None,
                         grain: Grain = None) -> IndicatorsOut:
    scope = await service.scope_of(session, prefecture, lg_code, grain)
    items = await service.indicators(session, scope)
    return IndicatorsOut(scope=scope.label, prefecture=scope.prefecture.code if scope.prefecture else None,
                         lg_code=scope.organization.code if scope.organization else None, grain=scope.grain,
                         demo_note=await service.demo_note(session), indicators=[indicator_out(i) for i in items])


@public.get("/{key}", summary="調査によらない指標の1つ（" + "・".join(service.DEFINITIONS) + "）",
            response_model=IndicatorOut, responses=problem_responses(404, 422))
async def one_indicator(key: str, session: DbSession, prefecture: Prefecture = None, lg_code: LgCode = None,
                        grain: Grain = None) -> IndicatorOut:
    if key not in service.DEFINITIONS:
        raise NotFound(f"お探しの指標はありません。{'・'.join(service.DEFINITIONS)} のいずれかです。")
    scope = await service.scope_of(session, prefecture, lg_code, grain)
    return indicator_out(await service.indicator(session, key, scope))
