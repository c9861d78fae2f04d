"""JSON shapes of an organisation's staff, API keys and access grants. Codes (roles, permissions,
kinds) travel with their Japanese labels, so a system filters by code and a person reads words."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field


class Choice(BaseModel):
    value: str
    label: str


class MemberRead(BaseModel):
    principal_id: str
    display_name: str
    username: str | None = Field(description="サインインに使うユーザー名")
    role: str = Field(description="役割のコード（admin / staff / viewer）")
    role_label: str = Field(description="役割の名前（団体管理者・職員・閲覧者）")
    state: Literal["active", "stopped"] = Field(description="active（利用中）/ stopped（停止中）")
    state_label: str
    granted_by: str
    granted_at: datetime
    stopped_at: datetime | None


class StaffList(BaseModel):
    lg_code: str
    members: list[MemberRead] = Field(description="利用中の職員（登録順）")
    stopped: list[MemberRead] = Field(description="停止中の職員（新しく停止した順）。再開すると元の役割に戻ります")
    roles: list[Choice]


class InviteRequest(BaseModel):
    username: str = Field(max_length=100, description="サインインに使うユーザー名")
    display_name: str = Field(max_length=200, description="氏名")
    role: str = Field("staff", max_length=40, description="役割のコード（admin / staff / viewer）")
    email: str | None = Field(None, max_length=254,
                              description="招待メールの送信先（任意）。指定すると招待リンクは応答に含めず、"
                                          "暗号化して送信待ちにし、送信後に本文を消去します")


class Invitation(BaseModel):
    member: MemberRead
    invite_url: str | None = Field(description="招待リンク（1回だけ表示。本人がパスワードを設定します）。"
                                               "メールで送るとき（email を指定したとき）は null")
    expires_at: datetime
    email_state: Literal["queued", "sending", "sent", "failed"] | None = Field(
        None, description="招待メールの送信状況（メールで送るときだけ）")
    notification_id: str | None = Field(None, description="招待メールの通知 ID（通知の送信状況で確かめられます）")


class InvitationStatus(BaseModel):
    principal_id: str
    display_name: str
    username: str | None
    created_at: datetime
    expires_at: datetime
    expired: bool
    channel: Literal["email", "link"] = Field(description="email: メールで送信 / link: 招待リンクを画面に表示")
    email_state: Literal["queued", "sending", "sent", "failed"] | None
    state_label: str = Field(description="届け方と送信の状況（日本語）")
    email_masked: str | None = Field(description="送信先（一部を伏せたもの）")
    last_error: str | None
    wait_reason: str | None
    notification_id: str | None


class RoleChange(BaseModel):
    role: Literal["admin", "staff", "viewer"] = Field(
        description="新しい役割のコード（admin: 団体管理者 / staff: 職員 / viewer: 閲覧者）")


class NoFields(BaseModel):
    """The body of an action that takes no input: ``{}`` (sent as JSON, so that a cross-site form
    cannot make the request with the session cookie)."""

    model_config = {"extra": "forbid"}


class ApiKeyRead(BaseModel):
    id: str
    name: str
    kind: str = Field(description="live（本番）/ test（テスト）")
    kind_label: str
    permissions: list[Choice] = Field(description="キーに与えた権限（コードと名前）")
    rate_limit_per_minute: int
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    active: bool


class ApiKeyList(BaseModel):
    lg_code: str
    items: list[ApiKeyRead] = Field(description="新しい順。秘密の値は保存されておらず、返しません")
    grantable: list[Choice] = Field(description="キーに与えられる権限")
    create_url: str = Field(description="キーの発行は画面で行います（キーは一度だけ表示されます）")


class GrantRead(BaseModel):
    id: str
    grantee_code: str
    grantee_name: str
    permission: str
    permission_label: str
    purpose: str
    legal_basis: str
    granted_by: str
    granted_at: datetime
    expires_on: date | None
    revoked_at: datetime | None
    active: bool = Field(description="取り消されておらず、期限内")


class GrantList(BaseModel):
    lg_code: str
    items: list[GrantRead]
    grantable: list[Choice] = Field(description="許可できる範囲（閲覧のみ）")


class GrantCreate(BaseModel):
    grantee_code: str = Field(max_length=100, description="相手の団体（6桁・5桁の団体コード、または団体名）")
    permission: str = Field(max_length=60, description="許可する範囲のコード（grantable）")
    purpose: str = Field(max_length=1000, description="利用目的")
    legal_basis: str = Field(max_length=1000, description="法的根拠")
    expires_on: date | None = Field(None, description="有効期限（YYYY-MM-DD。なければ期限なし）")
