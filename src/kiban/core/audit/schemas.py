"""The audit log as JSON: every coded value with its Japanese label next to it, so a system can
filter by code and a person can read the label."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AuditEntryRead(BaseModel):
    seq: int = Field(description="団体の監査ログの中の番号（1から連番）")
    entry_id: str
    occurred_at: datetime
    actor_id: str | None
    actor: str = Field(description="操作者（氏名・キーの名前など）")
    actor_kind: str = Field(description="操作者の種別のコード（staff / api_client / resident ...）")
    actor_kind_label: str
    action: str = Field(description="操作のコード（例: identity.membership.revoked）")
    action_label: str = Field(description="操作の名前（例: 職員の利用停止）")
    outcome: str = Field(description="success / failure")
    outcome_label: str
    target_type: str | None
    target_type_label: str
    target_id: str | None
    target: str = Field(description="対象の名前（分かるもの）")
    details: dict[str, Any] = Field(description="記録された詳細（コードのまま）")
    details_text: str = Field(description="詳細の読める部分（画面と同じ）")
    subject_id: str | None = Field(description="本人（住民など）の識別子")
    purpose: str | None
    legal_basis: str | None
    request_id: str | None = Field(description="受付番号")
    hash: str


class Choice(BaseModel):
    value: str
    label: str


class AuditFilters(BaseModel):
    """What the filters accept: the people and actions that occur in this log."""

    actors: list[Choice]
    actions: list[Choice]
    outcomes: list[Choice]


class AuditPage(BaseModel):
    lg_code: str
    total: int = Field(description="条件に合う記録の件数")
    page: int
    page_size: int
    items: list[AuditEntryRead] = Field(description="新しい順")
    filters: AuditFilters
    csv_url: str = Field(description="この条件の記録を CSV（Excel 対応）で書き出す URL")
