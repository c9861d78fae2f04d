"""JSON shapes of the 広域被災者データベース API (the twins of the tenant pages). Codes are
returned with their Japanese labels; another municipality's record appears only where the sharing
rules let the caller read it, and a candidate it cannot read carries only what the page's card
shows (name, kana, who registered it, the probability and the reasons)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

SHORT = 200
TEXT = 2000


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Choice(BaseModel):
    value: str
    label: str


class DisasterRead(BaseModel):
    id: str
    name: str
    kind: str
    occurred_on: date
    description: str
    opened_by_code: str
    opened_by: str
    opened_at: datetime
    closed_at: datetime | None
    state_label: str = Field(description="対応中 / 対応終了")
    may_close: bool = Field(description="この団体のこの職員（またはキー）が対応を終了できるか")
    url: str


class DisasterList(BaseModel):
    items: list[DisasterRead]
    may_open: bool = Field(description="この団体（都道府県・内閣府）のこの職員が災害を開設できるか")
    kinds: list[str]


class DisasterOpen(_In):
    name: str = Field(max_length=SHORT, description="災害の名称（例: 令和8年〇〇地震）")
    kind: str = Field(max_length=20, description="種類（kinds の一つ）")
    occurred_on: str = Field(max_length=40, description="発生日（例: 2026-01-01）")
    description: str = Field("", max_length=TEXT)
    affected: list[str] = Field(default_factory=list, max_length=300,
                                description="被害のある市町村（団体コード、または「輪島市」のような名称）")
    relief_act: list[str] = Field(default_factory=list, max_length=300, description="災害救助法を適用する市町村")


class Confirm(_In):
    confirm: bool = Field(False, description="確認のうえ実行するときは true（画面の確認のチェック）")


class ShelterRead(BaseModel):
    id: str
    name: str
    address: str
    capacity: int
    occupancy: int
    percent: int | None = Field(description="収容率（%）。収容人数が未設定なら null")
    crowded: bool = Field(description="混雑警告の基準（テナント設定）以上か")
    is_open: bool
    needs: str
    version: int
    updated_by: str
    updated_at: datetime
    register_url: str = Field(description="住民がマイナンバーカードで自分を登録する画面")


class ShelterList(BaseModel):
    items: list[ShelterRead]
    warning_percent: int


class ShelterWrite(_In):
    name: str = Field(max_length=SHORT)
    address: str = Field("", max_length=300)
    capacity: int = Field(0, ge=0, le=1_000_000, description="収容人数（0 = 未設定）")
    occupancy: int = Field(0, ge=0, le=1_000_000, description="避難者数")
    is_open: bool = True
    needs: str = Field("", max_length=TEXT)
    over_capacity_confirmed: bool = Field(False, description="避難者数が収容人数を超えていることを確認したときは true")


class ShelterUpdate(ShelterWrite):
    expected_version: int = Field(ge=0, le=2_147_483_647, description="読んだときの version（先に更新されていれば 409）")


class RecordWrite(_In):
    family_name: str = Field(max_length=100)
    given_name: str = Field(max_length=100)
    family_kana: str = Field("", max_length=100)
    given_kana: str = Field("", max_length=100)
    birth_date: str = Field("", max_length=40, description="生年月日（例: 1980-05-12）。不明なら空")
    sex: str = Field("", max_length=10, description="male / female / 空")
    home_lg_code: str = Field(max_length=60, description="住所地の市町村（団体コード、または名称）")
    home_address: str = Field("", max_length=300)
    whereabouts: str = Field("unknown", max_length=20)
    shelter_id: str = Field("", max_length=36)
    wide_area_lg_code: str = Field("", max_length=60, description="広域避難先の市町村（whereabouts が wide_area のとき）")
    phone: str = Field("", max_length=30)
    household_key: str = Field("", max_length=60)
    household_size: int = Field(1, ge=1, le=99)
    care_needs: list[str] = Field(default_factory=list, max_length=20)
    damage_level: str = Field("未調査", max_length=30)
    risai_status: str = Field("未申請", max_length=10)
    rebuild_plan: str = Field("未定", max_length=20)
    demolished: bool = False
    long_term_evacuation: bool = False
    supports: list[str] = Field(default_factory=list, max_length=20)
    note: str = Field("", max_length=400)
    protected: bool = Field(False, description="支援措置対象（DV等）: 登録した団体と都道府県だけが見られます")


class RecordUpdate(RecordWrite):
    expected_version: int = Field(ge=0, le=2_147_483_647, description="読んだときの version（先に更新されていれば 409）")


class RecordSummary(BaseModel):
    id: str
    family_name: str
    given_name: str
    family_kana: str
    given_kana: str
    registered_by_code: str
    registered_by: str
    whereabouts: str
    whereabouts_label: str
    current_lg_code: str
    current_lg_name: str
    own: bool = Field(description="この団体が登録した記録か")
    url: str


class RecordList(BaseModel):
    total: int = Field(description="該当件数。more が true のときは下限（数えるのを途中で止めています）")
    more: bool = Field(False, description="total より多く該当する（次のページがある）")
    page: int
    pages: int
    page_size: int
    q: str
    items: list[RecordSummary]


class RecordRead(RecordSummary):
    birth_date: date | None
    sex: str | None
    home_lg_code: str
    home_lg_name: str
    home_address: str
    shelter_id: str | None
    wide_area_lg_code: str | None
    phone: str
    household_key: str
    household_size: int
    care_needs: list[str]
    damage_level: str
    risai_status: str
    rebuild_plan: str
    demolished: bool
    long_term_evacuation: bool
    supports: list[str]
    note: str
    protected: bool
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class LinkedRecord(BaseModel):
    id: str
    registered_by_code: str
    registered_by: str
    family_name: str
    given_name: str
    whereabouts_label: str
    current_lg_name: str


class Waiting(BaseModel):
    decision_id: str
    awaiting_code: str
    awaiting_name: str
    contact: str = Field(description="問い合わせ先（その団体、または都道府県）")
    decided_by: str
    decided_at: datetime


class AskerRecord(BaseModel):
    registered_by_code: str
    registered_by: str
    family_name: str
    given_name: str
    family_kana: str
    given_kana: str
    birth_date: date | None


class MatchRequest(BaseModel):
    decision_id: str
    probability: float | None
    reasons: list[str]
    decided_by: str
    decided_at: datetime
    asker_record: AskerRecord


class DecisionRead(BaseModel):
    id: str
    record_ids: list[str]
    decision: str
    decision_label: str
    probability: float | None
    reasons: list[str]
    decided_by_code: str
    decided_by: str
    decided_at: datetime
    acceptance: str = Field(description="空 / pending（受け入れ待ち） / accepted / declined")
    state_label: str
    awaiting_code: str | None
    reverted_at: datetime | None


class SupportEstimate(BaseModel):
    available: bool
    eligible: bool | None = None
    total: int | None = None
    lines: list[str] = []
    message: str = ""


class RecordDetail(BaseModel):
    record: RecordRead
    linked: list[LinkedRecord] = Field(description="同じ人と確認された記録（見てよいものだけ）")
    waiting: list[Waiting] = Field(description="この団体が確認を依頼し、相手の受け入れ待ちのもの（相手の記録の内容は含みません）")
    requests: list[MatchRequest] = Field(description="この団体が受け入れ・断りを求められている依頼")
    decisions: list[DecisionRead]
    support: SupportEstimate


class CandidateRead(BaseModel):
    record_id: str
    family_name: str
    given_name: str
    family_kana: str
    given_kana: str
    registered_by_code: str
    registered_by: str
    shared: bool = Field(description="この団体が共有の範囲で読める記録か（読めない記録は生年月日を含みません）")
    birth_date: date | None = Field(description="shared のときだけ")
    probability: float
    reasons: list[str]
    decision: DecisionRead | None = Field(description="この組に対する有効な判断（あれば）")


class CandidateList(BaseModel):
    record_id: str
    items: list[CandidateRead]


class MatchWrite(_In):
    record_id: str = Field(max_length=36, description="この団体が見られる記録")
    other_id: str = Field(max_length=36, description="その記録の候補")
    decision: str = Field(max_length=20, description="confirmed（同じ人） / rejected（別の人）")


class LinkagePair(BaseModel):
    a: str
    b: str
    a_code: str
    b_code: str
    a_name: str | None = Field(description="見てよい記録だけ氏名")
    b_name: str | None
    probability: float
    action: str
    action_label: str
    reasons: list[str]


class LinkageRead(BaseModel):
    id: str
    status: str
    records: int
    threshold: str
    counts: dict[str, int]
    pairs: list[LinkagePair] = Field(description=f"最初の {500} 組まで")
    linked: int
    undone: int
    created_by: str
    created_at: datetime
    applied_by: str | None
    applied_at: datetime | None
    undone_by: str | None
    undone_at: datetime | None


class ImportRow(BaseModel):
    line: int
    errors: list[str]
    warnings: list[str]
    already_registered: bool
    values: dict | None
    proposal: dict | None = Field(description="氏と名の分け方の推測（確認が必要）")


class ImportRead(BaseModel):
    id: str
    filename: str
    encoding: str
    status: str = Field(description="staged（確認待ち） / imported（反映済み）")
    status_label: str
    imported_count: int
    created_by: str
    created_at: datetime
    file_errors: list[str]
    warnings: list[str]
    valid: int
    invalid: int
    proposals: int
    rows: list[ImportRow]


class SplitConfirmation(_In):
    line: int = Field(ge=1, le=1_000_000)
    family_name: str = Field(max_length=100)
    given_name: str = Field(max_length=100)
    family_kana: str = Field("", max_length=100)
    given_kana: str = Field("", max_length=100)


class ImportAccept(_In):
    valid_only: bool = Field(False, description="誤りのある行を除いて取り込む")
    skip_unconfirmed: bool = Field(False, description="氏と名の分け方を確認していない行を除いて取り込む")
    splits: list[SplitConfirmation] = Field(default_factory=list, max_length=10_000,
                                            description="確認した（または直した）氏と名の分け方")
