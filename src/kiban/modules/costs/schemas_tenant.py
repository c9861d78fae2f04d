"""JSON shapes of the consortium pages: the public list and detail, the secretariat's allocation
(preview, decision, replacement), usage per member, and each member's 負担金算定書. Files (PDF,
CSV, ZIP) stay downloads; the JSON names their URLs."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from kiban.modules.costs.service import MethodKind


class OrganisationRef(BaseModel):
    code: str
    name: str
    population: int | None = None


class ConsortiumSummary(BaseModel):
    id: str
    name: str
    secretariat_code: str
    member_count: int
    contract: str
    fee_rule: str = Field(description="負担金の考え方")
    source: str


class SharedSystemRead(BaseModel):
    service_id: str
    service_name: str
    group_name: str = Field(description="部会")
    published_users: int | None = Field(description="協議会が公表している利用団体数")
    recorded_users: int = Field(description="登録されている利用団体数")
    all_members: bool = Field(description="全団体事業")


class ConsortiumDetail(ConsortiumSummary):
    secretariat: OrganisationRef | None
    population: int = Field(description="構成団体の人口の合計")
    members: list[OrganisationRef]
    systems: list[SharedSystemRead]


class FeeLine(BaseModel):
    code: str
    name: str
    population: int | None
    fee: int = Field(description="負担金（円）")
    percent: str = Field(description="総額に占める割合（%）")
    explanation: str = Field(description="計算の説明")


class ScheduleSummary(BaseModel):
    id: str
    service_id: str
    service_name: str
    fiscal_year: int
    fiscal_year_label: str = Field(description="和暦の年度（例: 令和8年度）")
    number: str | None = Field(description="文書番号")
    amount: int
    subsidy: int
    allocated: int
    method_label: str
    due_on: date | None = Field(description="納付期限")
    created_by: str
    created_at: datetime
    in_force: bool
    status_label: str = Field(description="有効 / 取消（差替え済み）")
    replaces_id: str | None
    replaced_by_id: str | None
    url: str


class MemberFeeLine(FeeLine):
    pdf_url: str
    csv_url: str


class UsageBasis(BaseModel):
    """Where the 利用量割 figures came from: entered by the secretariat for a fiscal year, or
    metered (one event of one shared system over whole months)."""

    source: str = Field(description="entered（事務局が入力）または metered（計測値）")
    description: str
    total: int = Field(description="利用量の合計")
    units: dict[str, int] = Field(description="団体コード → 利用量")
    fiscal_year: int | None = None
    service_id: str | None = None
    service_name: str | None = None
    event: str | None = None
    event_label: str | None = None
    month_from: str | None = Field(None, description="計測値の開始月（YYYY-MM）")
    month_to: str | None = Field(None, description="計測値の終了月（YYYY-MM）")


class ScheduleRead(ScheduleSummary):
    usage_basis: UsageBasis | None = Field(None, description="利用量割の利用量の出典（利用量を使う方法のとき）")
    replacement_reason: str | None
    replaced_at: datetime | None
    issuer: str
    total: int = Field(description="負担金の合計（allocated と必ず一致）")
    lines: list[MemberFeeLine]
    csv_url: str = Field(description="全団体の一覧（CSV）")
    zip_url: str = Field(description="全団体の算定書（PDF）をまとめた ZIP")


class SecretariatSystem(SharedSystemRead):
    user_codes: list[str] = Field(description="利用団体のコード")
    usage_url: str


class SecretariatConsortium(BaseModel):
    consortium: ConsortiumSummary
    members: list[OrganisationRef]
    systems: list[SecretariatSystem]
    schedules: list[ScheduleSummary] = Field(description="決定した算定（新しい順）")
    methods: dict[str, str] = Field(description="配分の方法のコードと名前")


class AllocationInput(BaseModel):
    """What the secretariat's form asks: the system, the year, the total and the method. Checked
    by the same rules as the form (one message per problem, in Japanese)."""

    service: str = Field(max_length=60, description="対象システム（カタログの ID）")
    fiscal_year: int = Field(description="年度（西暦。例: 2026）")
    amount: int = Field(description="配分する総経費（円）")
    kind: MethodKind = Field("weighted", description="配分の方法")
    ratio: Decimal = Field(Decimal("1.5"), ge=-1000, le=1000, description="重み係数 r（人口が2倍で負担が r 倍）")
    equal_percent: Decimal = Field(Decimal(30), ge=-1000, le=1000, description="組み合わせのときの均等割の割合（%）")
    rest: str = Field("weighted", max_length=20, description="組み合わせる方法（population / weighted / usage）")
    subsidy_percent: Decimal = Field(Decimal(0), ge=-1000, le=1000, description="国の補助率（%）")
    prefecture_share: str = Field("", max_length=20, description="都道府県の固定割合（例: 1/2）。空なら他の団体と同じ方法")
    usage_source: str = Field("entered", max_length=20,
                              description="利用量割の利用量: entered（事務局が入力した年度の利用量）または metered（計測値）")
    usage_service: str = Field("", max_length=60, description="計測値のシステム（カタログの ID）。空なら service と同じ")
    usage_event: str = Field("", max_length=40, description="計測値の利用の種類（submission, booking, email, notice ...）")
    usage_from: str = Field("", max_length=20, description="計測値の開始月（YYYY-MM）。空なら年度の4月")
    usage_to: str = Field("", max_length=20, description="計測値の終了月（YYYY-MM）。空なら年度の翌年3月")

    def form(self) -> dict[str, str]:
        """The same fields as the form posts them, for the same checks."""
        return {"service": self.service, "amount": str(self.amount), "kind": self.kind, "ratio": str(self.ratio),
                "equal_percent": str(self.equal_percent), "rest": self.rest,
                "subsidy_percent": str(self.subsidy_percent), "prefecture_share": self.prefecture_share,
                "fiscal_year": str(self.fiscal_year), "usage_source": self.usage_source,
                "usage_service": self.usage_service, "usage_event": self.usage_event,
                "usage_from": self.usage_from, "usage_to": self.usage_to}


class AllocationPreview(BaseModel):
    service_id: str
    service_name: str
    fiscal_year: int
    amount: int
    subsidy: int
    allocated: int
    total: int = Field(description="負担金の合計（allocated と必ず一致）")
    method_label: str
    fees: list[FeeLine]
    current: ScheduleSummary | None = Field(description="この年度・システムで有効な算定（あれば、決定には差替が必要）")
    usage_basis: UsageBasis | None = Field(None, description="利用量割の利用量の出典（利用量を使う方法のとき）")


class ScheduleDecision(AllocationInput):
    due_on: str = Field(max_length=40, description="納付期限（YYYY-MM-DD）")
    replace: str = Field("", max_length=36, description="差し替える有効な算定の ID（差替のときだけ）")
    reason: str = Field("", max_length=2000, description="差替の理由（差替のとき必須、500文字以内）")


class SystemUsers(BaseModel):
    members: list[str] = Field(max_length=2000, description="このシステムを利用する構成団体のコード")


class UsageLine(BaseModel):
    code: str
    name: str
    units: int | None = Field(description="利用量（未入力は null）")


class UsageRead(BaseModel):
    service_id: str
    service_name: str
    fiscal_year: int
    members: list[UsageLine] = Field(description="このシステムの利用団体")


class UsageWrite(BaseModel):
    fiscal_year: int = Field(description="年度（西暦）")
    units: dict[str, int | None] = Field(max_length=2000, description="団体コード → 利用量（null で消去）")


class StatementRead(BaseModel):
    schedule_id: str
    document_no: str | None = Field(description="文書番号")
    in_force: bool
    status_label: str = Field(description="有効 / 取消")
    consortium_name: str
    service_name: str
    fiscal_year: int
    fiscal_year_label: str
    member_name: str
    population: int | None
    fee: int = Field(description="負担金（円）")
    percent: str
    explanation: str
    amount: int
    subsidy: int
    allocated: int
    member_count: int
    method_label: str
    issuer: str
    issued_at: datetime
    due_on: date | None = Field(description="納付期限")
    cancelled_at: datetime | None
    cancel_reason: str | None
    replaced_by_id: str | None = Field(description="差替後の算定（この団体が含まれるとき、その算定書の schedule_id）")
    cancellation: str = Field(description="取消の説明（算定書に印字される文）")
    pdf_url: str
    csv_url: str
    url: str


class ConsortiumRef(BaseModel):
    id: str
    name: str
    url: str


class StatementList(BaseModel):
    lg_code: str
    consortia: list[ConsortiumRef] = Field(description="参加している共同利用の枠組み")
    items: list[StatementRead] = Field(description="新しい年度から")


class MeteredMemberUsage(BaseModel):
    code: str
    name: str
    uses_system: bool = Field(description="このシステムの利用団体として登録済みか")
    counts: dict[str, int] = Field(description="利用の種類 → 件数")
    total: int


class MeteredUsageRead(BaseModel):
    """構成団体ごとの計測した利用実績（協議会の共同利用システム1つ、期間は月単位）."""

    consortium_id: str
    service_id: str
    service_name: str
    month_from: str
    month_to: str
    events: dict[str, str] = Field(description="利用の種類 → 画面での呼び方")
    members: list[MeteredMemberUsage]
    totals: dict[str, int] = Field(description="利用の種類 → 全団体の合計")
    rule: str = Field(description="誰が誰の利用実績を見られるか")
    csv_url: str
