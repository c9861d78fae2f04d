"""Factories for modules/childcare's tenant-owned tables (tests/factories.py merges them into FACTORIES)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.kit.db import utcnow
from kiban.modules.childcare import rules as rulebook
from kiban.modules.childcare.models import (
    ChildcareAllocationRun,
    ChildcareApplication,
    ChildcareEmploymentCertificate,
    ChildcareFacility,
    ChildcareMonthlyReport,
    ChildcarePriceTable,
    ChildcareReferral,
    ChildcareReportPart,
    ChildcareRuleVersion,
)


async def _facility(session: AsyncSession, lg_code: str, marker: str) -> ChildcareFacility:
    return ChildcareFacility(lg_code=lg_code, id=str(uuid.uuid4()), name=f"{marker}保育園", kind="licensed", address="",
                             phone="", operator_name="", operator_type="", operator_corporate_number="",
                             opens_at="07:30", closes_at="18:30", extended_care=False, temporary_care=False,
                             **{f"capacity_{a}": 5 for a in range(6)}, **{f"vacancy_{a}": 1 for a in range(6)},
                             source="", version=1, updated_by="test", updated_at=utcnow())


async def _rule_version(session: AsyncSession, lg_code: str, marker: str) -> ChildcareRuleVersion:
    return ChildcareRuleVersion(lg_code=lg_code, number=1, name=marker, based_on="",
                                rules=rulebook.preset("example_sum")["rules"], note="", created_by="test",
                                created_at=utcnow())


async def _application(session: AsyncSession, lg_code: str, marker: str) -> ChildcareApplication:
    now = utcnow()
    return ChildcareApplication(lg_code=lg_code, id=str(uuid.uuid4()), receipt_no=marker[:20],
                                form_token=uuid.uuid4().hex, principal_id=str(uuid.uuid4()), guardian_name=marker,
                                email="", children=[], preferences=[], household={}, same_facility=True,
                                status="submitted", results={}, submitted_at=now, updated_at=now)


async def _referral(session: AsyncSession, lg_code: str, marker: str) -> ChildcareReferral:
    now = utcnow()
    return ChildcareReferral(lg_code=lg_code, id=str(uuid.uuid4()), residence_lg_code="131121", residence_name="世田谷区",
                             receipt_no=marker[:20], facility_id=str(uuid.uuid4()), facility_name=marker, rank=1,
                             age_classes="1歳", outcome="", created_at=now, updated_at=now)


async def _certificate(session: AsyncSession, lg_code: str, marker: str) -> ChildcareEmploymentCertificate:
    return ChildcareEmploymentCertificate(lg_code=lg_code, id=str(uuid.uuid4()), application_id=str(uuid.uuid4()),
                                          receipt_no=marker[:20], guardian_index=0, guardian_name=marker,
                                          employer_corporate_number="1" * 13, employer_name=marker, status="requested",
                                          employment_type="", certified_by="", requested_at=utcnow())


async def _run(session: AsyncSession, lg_code: str, marker: str) -> ChildcareAllocationRun:
    return ChildcareAllocationRun(lg_code=lg_code, number=1, rule_version=1, mode="default", instance={}, result={},
                                  summary={"rule_name": marker}, created_by="test", created_at=utcnow(),
                                  published_by="", published_at=None)


async def _prices(session: AsyncSession, lg_code: str, marker: str) -> ChildcarePriceTable:
    return ChildcarePriceTable(lg_code=lg_code, number=1, name=marker, bands=[], created_by="test", created_at=utcnow())


async def _report(session: AsyncSession, lg_code: str, marker: str) -> ChildcareMonthlyReport:
    return ChildcareMonthlyReport(lg_code=lg_code, id=str(uuid.uuid4()), facility_id=str(uuid.uuid4()),
                                  facility_name=marker, month="2026-11", corporate_number="1" * 13, submitted_by="test",
                                  totals={}, staff_count=0, staffing={}, residences=[], receipt="", signature="",
                                  submitted_at=utcnow())


async def _part(session: AsyncSession, lg_code: str, marker: str) -> ChildcareReportPart:
    return ChildcareReportPart(lg_code=lg_code, id=str(uuid.uuid4()), report_id=str(uuid.uuid4()),
                               facility_lg_code="131105", facility_id=str(uuid.uuid4()), facility_name=marker,
                               month="2026-11", children={}, attendance_days=0, benefit_yen=None, benefit_detail={},
                               submitted_at=utcnow())


FACTORIES: dict[type, Callable[[AsyncSession, str, str], Awaitable[object]]] = {
    ChildcareFacility: _facility, ChildcareRuleVersion: _rule_version, ChildcareApplication: _application,
    ChildcareReferral: _referral, ChildcareEmploymentCertificate: _certificate, ChildcareAllocationRun: _run,
    ChildcarePriceTable: _prices, ChildcareMonthlyReport: _report, ChildcareReportPart: _part,
}
APPEND_ONLY: set[type] = set()
