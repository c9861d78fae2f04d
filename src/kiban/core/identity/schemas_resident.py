"""JSON shapes of a resident's own pages (/me)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class MeRead(BaseModel):
    kind: str = Field(description="resident")
    kind_label: str = Field(description="住民")
    display_name: str
    signed_in_at: datetime = Field(description="このセッションでサインインした日時")
    session_expires_at: datetime
    access_log_url: str = Field(description="わたしの情報の利用記録（JSON）")


class AccessLogEntry(BaseModel):
    occurred_at: datetime
    lg_code: str = Field(description="記録した団体のコード")
    organisation: str = Field(description="記録した団体の名前")
    actor: str = Field(description="操作者")
    action: str = Field(description="操作のコード")
    action_label: str = Field(description="操作の名前（例: 住民のサインイン（マイナンバーカード））")
    outcome: str = Field(description="success / failure")
    outcome_label: str
    purpose: str | None = Field(description="利用目的")
    legal_basis: str | None = Field(description="法的根拠")


class AccessLog(BaseModel):
    items: list[AccessLogEntry] = Field(description="新しい順（最大500件）")
    limit: int
