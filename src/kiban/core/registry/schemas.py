"""What the registry API says about an organisation."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class OrganizationRead(BaseModel):
    code: str = Field(description="6桁の全国地方公共団体コード（検査数字を含む）。府省庁は Kiban が 00 で始まるコードを割り当てています。")
    name: str
    kana: str | None = Field(description="読み（全角カタカナ）")
    type: str = Field(description="都道府県 / 政令市 / 特別区 / 市 / 町 / 村 / 行政区 / 府省庁")
    prefecture: str | None = Field(description="2桁の都道府県番号（例: 01 = 北海道）")
    prefecture_name: str | None
    parent_code: str | None
    population: int | None
    households: int | None
    population_source: str | None
    area_km2: float | None
    retired_on: date | None = None
    successor_code: str | None = None

    model_config = {"from_attributes": True}

    @classmethod
    def of(cls, org) -> OrganizationRead:
        return cls(
            code=org.code, name=org.name, kana=org.kana, type=org.type,
            prefecture=org.prefecture_number, prefecture_name=org.prefecture_name,
            parent_code=org.parent_code, population=org.population, households=org.households,
            population_source=org.population_source, area_km2=org.area_km2,
            retired_on=org.retired_on, successor_code=org.successor_code,
        )


class OrganizationPage(BaseModel):
    items: list[OrganizationRead]
    total: int
    limit: int
    offset: int


class Retirement(BaseModel):
    retired_on: date
    reason: str | None
    successors: list[OrganizationRead] = Field(description="この団体を引き継いだ団体（合併が続いた場合は順に）")
    message: str


class OrganizationDetail(OrganizationRead):
    habitable_area_km2: float | None
    parent: OrganizationRead | None
    children: list[OrganizationRead] = Field(description="都道府県なら市区町村、政令市なら行政区")
    predecessors: list[OrganizationRead] = Field(description="合併でこの団体に加わった団体")
    retirement: Retirement | None
