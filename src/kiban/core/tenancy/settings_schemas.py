from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class EffectiveSettingRead(BaseModel):
    key: str
    label: str
    description: str
    value: Any
    source: str = Field(description="この団体の設定 / 都道府県の設定 / 国の既定値")
    source_code: str | None = Field(description="値を決めた団体のコード（国の既定値なら null）")
    national_default: Any
    version: int | None = Field(description="この団体の設定の版（独自の値がなければ null）")


class TenantSettings(BaseModel):
    lg_code: str
    name: str
    items: list[EffectiveSettingRead]


class SettingChangeRead(BaseModel):
    key: str
    version: int
    old_value: Any | None = Field(description="変更前（null は上位の値を継承）")
    new_value: Any | None = Field(description="変更後（null は上位の値を継承に戻した）")
    changed_by: str
    reason: str
    changed_at: datetime


class SettingHistory(BaseModel):
    lg_code: str
    items: list[SettingChangeRead]
