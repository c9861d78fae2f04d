"""Tables of modules/childcare (imported by kiban.models so Alembic and the isolation tests see them).

Who owns which row (the tenancy of 保活 and 施設管理, decided once here):

- A facility (``childcare_facility``) belongs to the municipality where it stands: that
  municipality licenses or confirms it (子ども・子育て支援法 第31条 確認) and answers for its record.
  The facility's public information (type, place, hours, places free) is read by anyone across
  municipalities through one named read (``service.search_facilities``: 教育・保育情報の公表,
  子ども・子育て支援法 第58条); its operator (GビズID, matched by 法人番号) edits it.
- An application (``childcare_application``) belongs to the municipality of residence: it decides
  the 支給認定 and coordinates the allocation (児童福祉法 第24条). Each other municipality named
  in the preferences receives a referral (``childcare_referral``, owned by it) carrying only what
  concerns its facility: 広域利用の協議, written and audited on both chains.
- The 就労証明書 (``childcare_employment_certificate``) belongs with the application (residence);
  the employer reaches it by 法人番号 only.
- A monthly report is submitted once by the operator. Its header (``childcare_monthly_report``:
  totals, staffing) belongs to the facility's municipality; each part about the children of one
  municipality of residence (``childcare_report_part``) belongs to that municipality, which pays
  their 施設型給付費 (子ども・子育て支援法 第27条: 市町村 of the 支給認定). So each municipality
  reads exactly its residents' part, by ordinary tenant scoping.
- Rules (``childcare_rule_version``), 公定価格 parameters (``childcare_price_table``) and
  allocation runs (``childcare_allocation_run``) belong to the municipality that uses them.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime

AGE_CLASSES = (0, 1, 2, 3, 4, 5)


class FacilityKind(enum.StrEnum):
    licensed = "licensed"
    kodomoen = "kodomoen"
    small = "small"
    family = "family"
    workplace = "workplace"

    @property
    def label(self) -> str:
        return FACILITY_KIND_LABELS[self]


FACILITY_KIND_LABELS = {FacilityKind.licensed: "認可保育所", FacilityKind.kodomoen: "認定こども園",
                        FacilityKind.small: "小規模保育", FacilityKind.family: "家庭的保育",
                        FacilityKind.workplace: "事業所内保育"}


class ChildcareFacility(TenantScoped, Base):
    """A facility, owned by the municipality where it stands. ``capacity_n`` / ``vacancy_n``:
    定員 and places free for the age class n歳 (年度の初めの4月1日の年齢)."""

    __tablename__ = "childcare_facility"
    __table_args__ = (Index("ix_childcare_facility_operator", "lg_code", "operator_corporate_number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default=FacilityKind.licensed.value)
    address: Mapped[str] = mapped_column(String(300), default="")
    phone: Mapped[str] = mapped_column(String(30), default="")
    operator_name: Mapped[str] = mapped_column(String(200), default="")
    operator_type: Mapped[str] = mapped_column(String(20), default="")  # 設置: 区市町村, 社福法人, 営利法人 ...
    operator_corporate_number: Mapped[str] = mapped_column(String(13), default="")
    opens_at: Mapped[str] = mapped_column(String(5), default="07:30")
    closes_at: Mapped[str] = mapped_column(String(5), default="18:30")
    extended_care: Mapped[bool] = mapped_column(Boolean, default=False)
    temporary_care: Mapped[bool] = mapped_column(Boolean, default=False)
    capacity_0: Mapped[int] = mapped_column(Integer, default=0)
    capacity_1: Mapped[int] = mapped_column(Integer, default=0)
    capacity_2: Mapped[int] = mapped_column(Integer, default=0)
    capacity_3: Mapped[int] = mapped_column(Integer, default=0)
    capacity_4: Mapped[int] = mapped_column(Integer, default=0)
    capacity_5: Mapped[int] = mapped_column(Integer, default=0)
    vacancy_0: Mapped[int] = mapped_column(Integer, default=0)
    vacancy_1: Mapped[int] = mapped_column(Integer, default=0)
    vacancy_2: Mapped[int] = mapped_column(Integer, default=0)
    vacancy_3: Mapped[int] = mapped_column(Integer, default=0)
    vacancy_4: Mapped[int] = mapped_column(Integer, default=0)
    vacancy_5: Mapped[int] = mapped_column(Integer, default=0)
    # 管外受入枠: of the places free, how many the facility's municipality still offers to children
    # of other municipalities (広域利用), by age class; None: no separate limit. Set by that
    # municipality's staff, never by the operator; lowered as allocations place such children.
    outside_quota_0: Mapped[int | None] = mapped_column(Integer, default=None)
    outside_quota_1: Mapped[int | None] = mapped_column(Integer, default=None)
    outside_quota_2: Mapped[int | None] = mapped_column(Integer, default=None)
    outside_quota_3: Mapped[int | None] = mapped_column(Integer, default=None)
    outside_quota_4: Mapped[int | None] = mapped_column(Integer, default=None)
    outside_quota_5: Mapped[int | None] = mapped_column(Integer, default=None)
    source: Mapped[str] = mapped_column(String(300), default="")  # where a seeded record came from
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def capacity(self, age: int) -> int:
        return getattr(self, f"capacity_{age}")

    def vacancy(self, age: int) -> int:
        return getattr(self, f"vacancy_{age}")

    def outside_quota(self, age: int) -> int | None:
        return getattr(self, f"outside_quota_{age}")

    @property
    def outside_quotas(self) -> list[int | None]:
        return [self.outside_quota(a) for a in AGE_CLASSES]

    @property
    def total_capacity(self) -> int:
        return sum(self.capacity(a) for a in AGE_CLASSES)

    @property
    def kind_label(self) -> str:
        try:
            return FacilityKind(self.kind).label
        except ValueError:
            return "その他"


class ChildcareRuleVersion(TenantScoped, Base):
    """One version of the municipality's 利用調整基準 (never changed once saved; a new version is
    a new row). ``rules``: see ``rules.py``."""

    __tablename__ = "childcare_rule_version"

    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    based_on: Mapped[str] = mapped_column(String(200), default="")
    rules: Mapped[dict] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApplicationStatus(enum.StrEnum):
    submitted = "submitted"
    placed = "placed"
    waiting = "waiting"
    withdrawn = "withdrawn"

    @property
    def label(self) -> str:
        return {"submitted": "利用調整を待っています", "placed": "内定", "waiting": "保留（待機）",
                "withdrawn": "取下げ"}[self.value]


class ChildcareApplication(TenantScoped, Base):
    """One 保育の利用申込み, owned by the municipality of residence. ``children``: [{key, name,
    birth_date, age_class}]; ``preferences``: ranked [{lg_code, facility_id, facility_name,
    municipality}]; ``household``: the guardians' circumstances and the adjustment items claimed;
    ``results``: per child key, after a published allocation, {facility_id, lg_code, facility_name,
    rank, reason}."""

    __tablename__ = "childcare_application"
    __table_args__ = (UniqueConstraint("lg_code", "receipt_no"), UniqueConstraint("lg_code", "form_token"),
                      Index("ix_childcare_application_principal", "lg_code", "principal_id"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    receipt_no: Mapped[str] = mapped_column(String(20))
    form_token: Mapped[str] = mapped_column(String(64))
    principal_id: Mapped[str] = mapped_column(String(36))
    guardian_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254), default="")
    children: Mapped[list] = mapped_column(JSON, default=list)
    preferences: Mapped[list] = mapped_column(JSON, default=list)
    household: Mapped[dict] = mapped_column(JSON, default=dict)
    same_facility: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(20), default=ApplicationStatus.submitted.value)
    results: Mapped[dict] = mapped_column(JSON, default=dict)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChildcareReferral(TenantScoped, Base):
    """What a municipality named in another municipality's application receives (広域利用): owned
    by the facility's municipality, carrying only the facility, the rank, the age classes and,
    after publication, the outcome at that facility."""

    __tablename__ = "childcare_referral"
    __table_args__ = (UniqueConstraint("lg_code", "residence_lg_code", "receipt_no", "facility_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    residence_lg_code: Mapped[str] = mapped_column(String(6))
    residence_name: Mapped[str] = mapped_column(String(100))
    receipt_no: Mapped[str] = mapped_column(String(20))
    facility_id: Mapped[str] = mapped_column(String(36))
    facility_name: Mapped[str] = mapped_column(String(200))
    rank: Mapped[int] = mapped_column(Integer)
    age_classes: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChildcareEmploymentCertificate(TenantScoped, Base):
    """A 就労証明書 asked of an employer (by 法人番号) for one guardian of an application, owned
    with the application by the municipality of residence; the employer fills it in online."""

    __tablename__ = "childcare_employment_certificate"
    __table_args__ = (Index("ix_childcare_certificate_employer", "lg_code", "employer_corporate_number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    application_id: Mapped[str] = mapped_column(String(36))
    receipt_no: Mapped[str] = mapped_column(String(20))
    guardian_index: Mapped[int] = mapped_column(Integer)
    guardian_name: Mapped[str] = mapped_column(String(100))
    employer_corporate_number: Mapped[str] = mapped_column(String(13))
    employer_name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(20), default="requested")  # requested | certified
    hours_per_week: Mapped[int | None] = mapped_column(Integer)
    days_per_week: Mapped[int | None] = mapped_column(Integer)
    employment_type: Mapped[str] = mapped_column(String(40), default="")
    certified_by: Mapped[str] = mapped_column(String(200), default="")
    certified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChildcareAllocationRun(TenantScoped, Base):
    """One run of the allocation by the coordinating municipality. ``instance`` and ``result`` are
    kept as run; ``published_at`` set once makes the run final (never changed afterwards)."""

    __tablename__ = "childcare_allocation_run"

    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_version: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(20), default="default")
    instance: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_by: Mapped[str] = mapped_column(String(200), default="")
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ChildcarePriceTable(TenantScoped, Base):
    """公定価格 parameters the paying municipality applies, as data: ``bands`` = [{max_capacity,
    prices: {"0": yen, ... "5": yen}}] (per child per month, by the facility's 定員区分)."""

    __tablename__ = "childcare_price_table"

    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    bands: Mapped[list] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChildcareMonthlyReport(TenantScoped, Base):
    """The operator's monthly report as submitted once, owned by the facility's municipality:
    totals by age class, staff, the staffing check, and the receipt's signature."""

    __tablename__ = "childcare_monthly_report"
    __table_args__ = (UniqueConstraint("lg_code", "facility_id", "month"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    facility_id: Mapped[str] = mapped_column(String(36))
    facility_name: Mapped[str] = mapped_column(String(200))
    month: Mapped[str] = mapped_column(String(7))  # 2026-11
    corporate_number: Mapped[str] = mapped_column(String(13))
    submitted_by: Mapped[str] = mapped_column(String(200))
    totals: Mapped[dict] = mapped_column(JSON, default=dict)
    staff_count: Mapped[int] = mapped_column(Integer)
    staffing: Mapped[dict] = mapped_column(JSON, default=dict)
    residences: Mapped[list] = mapped_column(JSON, default=list)  # the codes of the municipalities reported to
    receipt: Mapped[str] = mapped_column(Text, default="")
    signature: Mapped[str] = mapped_column(String(64), default="")
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChildcareReportPart(TenantScoped, Base):
    """The part of a monthly report about the children living in one municipality, owned by that
    municipality (it pays their 施設型給付費)."""

    __tablename__ = "childcare_report_part"
    __table_args__ = (UniqueConstraint("lg_code", "report_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    report_id: Mapped[str] = mapped_column(String(36))
    facility_lg_code: Mapped[str] = mapped_column(String(6))
    facility_id: Mapped[str] = mapped_column(String(36))
    facility_name: Mapped[str] = mapped_column(String(200))
    month: Mapped[str] = mapped_column(String(7))
    children: Mapped[dict] = mapped_column(JSON, default=dict)  # {"0": n, ... "5": n}
    attendance_days: Mapped[int] = mapped_column(Integer, default=0)
    benefit_yen: Mapped[int | None] = mapped_column(Integer)
    benefit_detail: Mapped[dict] = mapped_column(JSON, default=dict)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
