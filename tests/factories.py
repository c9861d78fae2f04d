"""One row factory per tenant-owned model, used by the isolation tests.

A factory adds whatever non-tenant rows its model needs (e.g. a principal) and returns the
tenant-owned row, not yet added. Adding a tenant-owned model without a factory here fails
``test_every_tenant_owned_model_has_a_factory``: isolation is tested for every table.
"""

from __future__ import annotations

import uuid
from datetime import date
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit.models import AuditChainHead, AuditEntry, AuditPending
from kiban.core.audit.service import GENESIS, entry_hash
from kiban.core.identity.models import ApiKey, Invitation, Membership, Principal
from kiban.core.jobs.models import Job
from kiban.core.tenancy.grants_models import AccessGrant
from kiban.core.tenancy.settings_models import TenantSetting, TenantSettingChange
from kiban.kit.db import utcnow
from kiban.modules.catalog.models import Adoption, CatalogService
from kiban.modules.costs.models import FeeSchedule, FeeStatement
from kiban.modules.disaster.models import Disaster, RosterImport, Shelter, VictimRecord

SAPPORO = "011002"
HAKODATE = "012025"
HOKKAIDO = "010006"
ICHINOMIYA = "232033"
AICHI = "230006"
DIGITAL_AGENCY = "000019"


async def _tenant_setting(session: AsyncSession, lg_code: str, marker: str) -> TenantSetting:
    return TenantSetting(lg_code=lg_code, key=f"test.{marker}", value=marker, version=1,
                         updated_by="test", updated_at=utcnow())


async def _tenant_setting_change(session: AsyncSession, lg_code: str, marker: str) -> TenantSettingChange:
    return TenantSettingChange(lg_code=lg_code, key=f"test.{marker}", version=1, old_value=None,
                               new_value=marker, changed_by="test", reason="", changed_at=utcnow())


async def _principal(session: AsyncSession, marker: str) -> Principal:
    principal = Principal(id=str(uuid.uuid4()), kind="staff", display_name=f"職員 {marker}", created_at=utcnow())
    session.add(principal)
    await session.flush()
    return principal


async def _membership(session: AsyncSession, lg_code: str, marker: str) -> Membership:
    principal = await _principal(session, marker)
    return Membership(lg_code=lg_code, principal_id=principal.id, role="staff", granted_by="test",
                      granted_at=utcnow())


async def _invitation(session: AsyncSession, lg_code: str, marker: str) -> Invitation:
    principal = await _principal(session, marker)
    return Invitation(lg_code=lg_code, id=str(uuid.uuid4()), token_hash=marker.ljust(64, "0")[:64],
                      principal_id=principal.id, role="staff", invited_by="test", created_at=utcnow(),
                      expires_at=utcnow())


async def _api_key(session: AsyncSession, lg_code: str, marker: str) -> ApiKey:
    return ApiKey(lg_code=lg_code, id=uuid.uuid4().hex, name=marker, kind="live", secret_hash="0" * 64,
                  permissions=[], rate_limit_per_minute=60, created_by="test", created_at=utcnow())


async def _access_grant(session: AsyncSession, lg_code: str, marker: str) -> AccessGrant:
    return AccessGrant(lg_code=lg_code, id=str(uuid.uuid4()), grantee_code=DIGITAL_AGENCY,
                       permission="tenancy.setting.read", purpose=marker, legal_basis="test",
                       granted_by="test", granted_at=utcnow())


async def _audit_entry(session: AsyncSession, lg_code: str, marker: str) -> AuditEntry:
    fields = {"lg_code": lg_code, "seq": 1, "entry_id": str(uuid.uuid4()), "occurred_at": utcnow(),
              "actor_id": None, "actor_kind": "system", "actor_label": "test", "action": f"test.{marker}",
              "target_type": None, "target_id": None, "subject_id": None, "purpose": None,
              "legal_basis": None, "outcome": "success", "request_id": None, "details": {},
              "prev_hash": GENESIS}
    return AuditEntry(**fields, hash=entry_hash(fields))


async def _audit_pending(session: AsyncSession, lg_code: str, marker: str) -> AuditPending:
    return AuditPending(lg_code=lg_code, entry_id=str(uuid.uuid4()), occurred_at=utcnow(), actor_id=None,
                        actor_kind="system", actor_label="test", action=f"test.{marker}", outcome="success",
                        details={})


async def _audit_chain_head(session: AsyncSession, lg_code: str, marker: str) -> AuditChainHead:
    return AuditChainHead(lg_code=lg_code, seq=0, hash=GENESIS)


async def _catalog_service(session: AsyncSession, marker: str) -> CatalogService:
    service = CatalogService(id=f"test-{marker}"[:60], name=f"試験サービス {marker}", domain="試験", pattern="common_b",
                             owner="test", burden_category="common_saas", lifecycle="pilot", updated_at=utcnow())
    session.add(service)
    await session.flush()
    return service


async def _adoption(session: AsyncSession, lg_code: str, marker: str) -> Adoption:
    service = await _catalog_service(session, marker)
    return Adoption(lg_code=lg_code, service_id=service.id, status="in_use", replaced_annual_cost=1_000_000,
                    annual_cost=700_000, note=marker, version=1, updated_by="test", updated_at=utcnow())


def _fee_row(marker: str) -> dict:
    return {"fiscal_year": 2026, "amount": 1000, "subsidy": 0, "allocated": 1000, "method_label": marker}


async def _fee_schedule(session: AsyncSession, lg_code: str, marker: str) -> FeeSchedule:
    return FeeSchedule(lg_code=lg_code, id=str(uuid.uuid4()), consortium_id="aichi-e-gov", service_id="aichi-e-shinsei",
                       subsidy_rate="0", method={}, lines=[], created_by="test", created_at=utcnow(), **_fee_row(marker))


async def _fee_statement(session: AsyncSession, lg_code: str, marker: str) -> FeeStatement:
    return FeeStatement(lg_code=lg_code, schedule_id=str(uuid.uuid4()), secretariat_code=AICHI, consortium_name="test",
                        service_name=marker, member_count=1, member_name=marker, population=1, fee=1000,
                        percent="100", explanation=marker, issued_by="test", issued_at=utcnow(), **_fee_row(marker))


async def _disaster(session: AsyncSession, marker: str) -> Disaster:
    disaster = Disaster(id=str(uuid.uuid4()), name=f"試験災害 {marker}", kind="地震", occurred_on=date(2026, 1, 1),
                        opened_by_code="170003", opened_by="test", opened_at=utcnow())
    session.add(disaster)
    await session.flush()
    return disaster


async def _shelter(session: AsyncSession, lg_code: str, marker: str) -> Shelter:
    disaster = await _disaster(session, marker)
    return Shelter(lg_code=lg_code, id=str(uuid.uuid4()), disaster_id=disaster.id, name=f"避難所 {marker}",
                   updated_by="test", updated_at=utcnow())


async def _victim_record(session: AsyncSession, lg_code: str, marker: str) -> VictimRecord:
    disaster = await _disaster(session, marker)
    now = utcnow()
    return VictimRecord(lg_code=lg_code, id=str(uuid.uuid4()), disaster_id=disaster.id, family_name="試験",
                        given_name=marker[:100], home_lg_code=lg_code, home_pref_code="010006", whereabouts="home",
                        current_lg_code=lg_code, current_pref_code="010006", care_needs=[], supports=[],
                        created_by="test", created_at=now, updated_at=now)


async def _roster_import(session: AsyncSession, lg_code: str, marker: str) -> RosterImport:
    disaster = await _disaster(session, marker)
    return RosterImport(lg_code=lg_code, id=str(uuid.uuid4()), disaster_id=disaster.id, filename=marker,
                        encoding="utf-8", report={}, created_by="test", created_at=utcnow())


async def _job(session: AsyncSession, lg_code: str, marker: str) -> Job:
    now = utcnow()
    return Job(lg_code=lg_code, id=str(uuid.uuid4()), kind="test.isolation", payload={"marker": marker},
               dedupe_key=marker, run_after=now, created_by="test", created_at=now, updated_at=now)


FACTORIES: dict[type, Callable[[AsyncSession, str, str], Awaitable[object]]] = {
    TenantSetting: _tenant_setting,
    TenantSettingChange: _tenant_setting_change,
    Membership: _membership,
    Invitation: _invitation,
    ApiKey: _api_key,
    AccessGrant: _access_grant,
    AuditEntry: _audit_entry,
    AuditChainHead: _audit_chain_head,
    AuditPending: _audit_pending,
    Adoption: _adoption,
    FeeSchedule: _fee_schedule,
    FeeStatement: _fee_statement,
    Shelter: _shelter,
    VictimRecord: _victim_record,
    RosterImport: _roster_import,
    Job: _job,
}

APPEND_ONLY = {AuditEntry}


# -- metering (core/metering, issue #12) ---------------------------------------------------------
from kiban.core.metering.models import UsageCounter, UsageEventKey  # noqa: E402


async def _usage_counter(session: AsyncSession, lg_code: str, marker: str) -> UsageCounter:
    return UsageCounter(lg_code=lg_code, service_id="aichi-e-shinsei", event=marker[:40], month=date(2026, 11, 1),
                        shard=0, total=1, updated_at=utcnow())


async def _usage_event_key(session: AsyncSession, lg_code: str, marker: str) -> UsageEventKey:
    return UsageEventKey(lg_code=lg_code, service_id="aichi-e-shinsei", event="submission", key=marker,
                         month=date(2026, 11, 1), quantity=1, counted_at=utcnow())


FACTORIES[UsageCounter] = _usage_counter
FACTORIES[UsageEventKey] = _usage_event_key


# -- notifications (core/notify, issue #12) ------------------------------------------------------
from kiban.core.notify.models import Notice, Notification, TemplateOverride  # noqa: E402


async def _notify_template_override(session: AsyncSession, lg_code: str, marker: str) -> TemplateOverride:
    return TemplateOverride(lg_code=lg_code, key=f"test.{marker}", subject=marker, body=marker, updated_by="test",
                            updated_at=utcnow())


async def _notification(session: AsyncSession, lg_code: str, marker: str) -> Notification:
    now, nid = utcnow(), str(uuid.uuid4())
    return Notification(lg_code=lg_code, id=nid, template_key="test", service="kiban-notify", dedupe_key=marker,
                        email=f"{marker}@example.jp", subject=marker, body=marker,
                        message_id=f"<{nid}@{lg_code}.notify.kiban>", state="queued", attempts=0,
                        next_attempt_at=now, created_at=now, updated_at=now)


async def _notify_notice(session: AsyncSession, lg_code: str, marker: str) -> Notice:
    principal = await _principal(session, marker)
    return Notice(lg_code=lg_code, id=str(uuid.uuid4()), notification_id=str(uuid.uuid4()),
                  principal_id=principal.id, subject=marker, body=marker, created_at=utcnow())


FACTORIES[TemplateOverride] = _notify_template_override
FACTORIES[Notification] = _notification
FACTORIES[Notice] = _notify_notice


# -- 電子申請 (modules/forms, issue #12) -----------------------------------------------------------
from kiban.modules.forms.models import Form, FormSubmission, FormSubmissionEvent, FormUpload, FormVersion  # noqa: E402


async def _form(session: AsyncSession, lg_code: str, marker: str) -> Form:
    now = utcnow()
    return Form(lg_code=lg_code, id=str(uuid.uuid4()), slug=f"test-{uuid.uuid4().hex[:8]}", title=marker,
                description="", contact="", fields=[], identity_required=False, is_open=True, published_version=0,
                shared=False, shared_summary="", copied_from="", version=1, created_by="test", created_at=now,
                updated_by="test", updated_at=now)


async def _form_version(session: AsyncSession, lg_code: str, marker: str) -> FormVersion:
    return FormVersion(lg_code=lg_code, form_id=str(uuid.uuid4()), number=1, title=marker, description="", contact="",
                       fields=[], identity_required=False, published_by="test", published_at=utcnow())


async def _form_submission(session: AsyncSession, lg_code: str, marker: str) -> FormSubmission:
    now = utcnow()
    return FormSubmission(lg_code=lg_code, id=str(uuid.uuid4()), form_id=str(uuid.uuid4()), version_number=1,
                          receipt_no=uuid.uuid4().hex[:18], form_token=uuid.uuid4().hex, answers={"q1": marker},
                          email="", status="received", assignee_name="", submitted_at=now, updated_at=now, version=1)


async def _form_submission_event(session: AsyncSession, lg_code: str, marker: str) -> FormSubmissionEvent:
    return FormSubmissionEvent(lg_code=lg_code, id=str(uuid.uuid4()), submission_id=str(uuid.uuid4()), kind="comment",
                               body=marker, from_status="", to_status="", actor_name="test", created_at=utcnow())


FACTORIES[Form] = _form
FACTORIES[FormVersion] = _form_version
FACTORIES[FormSubmission] = _form_submission
FACTORIES[FormSubmissionEvent] = _form_submission_event


async def _form_upload(session: AsyncSession, lg_code: str, marker: str) -> FormUpload:
    return FormUpload(lg_code=lg_code, id=str(uuid.uuid4()), form_id=str(uuid.uuid4()), field_key="q1",
                      submission_id=None, filename=f"{marker}.pdf", kind="pdf", media_type="application/pdf",
                      size=9, sha256="0" * 64, data=b"%PDF-1.4\n", created_at=utcnow())


FACTORIES[FormUpload] = _form_upload


# -- 施設予約 (modules/reservations, issue #12) ------------------------------------------------------
from datetime import timedelta  # noqa: E402

from kiban.modules.reservations.models import Booker, Booking, Facility, Lottery, LotteryEntry, Room  # noqa: E402

WEEK_OPEN = {str(d): ["09:00", "21:00"] for d in range(7)}


async def _facility(session: AsyncSession, lg_code: str, marker: str) -> Facility:
    now = utcnow()
    return Facility(lg_code=lg_code, id=str(uuid.uuid4()), name=marker, kind="gym", address="", description="",
                    eligibility="anyone", slot_minutes=60, opening_hours=WEEK_OPEN, booking_window_days=30,
                    cancel_deadline_hours=24, max_active_per_person=3, created_by="test", created_at=now,
                    updated_at=now)


async def _facility_room(session: AsyncSession, lg_code: str, marker: str) -> Room:
    return Room(lg_code=lg_code, id=str(uuid.uuid4()), facility_id=str(uuid.uuid4()), name=marker, fee_yen=0,
                created_at=utcnow())


async def _facility_booker(session: AsyncSession, lg_code: str, marker: str) -> Booker:
    return Booker(lg_code=lg_code, principal_id=str(uuid.uuid4()), kind="resident", name=marker, group_name="",
                  email="test@example.jp", status="active", feed_version=1, created_at=utcnow())


async def _facility_booking(session: AsyncSession, lg_code: str, marker: str) -> Booking:
    now = utcnow()
    return Booking(lg_code=lg_code, id=str(uuid.uuid4()), facility_id=str(uuid.uuid4()), room_id=str(uuid.uuid4()),
                   starts_at=now, ends_at=now + timedelta(hours=1), principal_id=str(uuid.uuid4()), booker_name=marker,
                   status="active", fee_yen=0, source="direct", created_at=now)


async def _facility_lottery(session: AsyncSession, lg_code: str, marker: str) -> Lottery:
    now = utcnow()
    return Lottery(lg_code=lg_code, id=str(uuid.uuid4()), facility_id=str(uuid.uuid4()), title=marker, slots=[],
                   closes_at=now, status="open", applicants=0, created_by="test", created_at=now)


async def _facility_lottery_entry(session: AsyncSession, lg_code: str, marker: str) -> LotteryEntry:
    now = utcnow()
    return LotteryEntry(lg_code=lg_code, id=str(uuid.uuid4()), lottery_id=str(uuid.uuid4()),
                        principal_id=str(uuid.uuid4()), room_id=str(uuid.uuid4()), starts_at=now, status="applied",
                        created_at=now)


FACTORIES[Facility] = _facility
FACTORIES[Room] = _facility_room
FACTORIES[Booker] = _facility_booker
FACTORIES[Booking] = _facility_booking
FACTORIES[Lottery] = _facility_lottery
FACTORIES[LotteryEntry] = _facility_lottery_entry


# -- 書き出し (core/exports) ---------------------------------------------------------------------------
from kiban.core.exports.models import ExportFile, ExportPart  # noqa: E402
from kiban.core.tenancy.context import unscoped  # noqa: E402


def _export_file_row(lg_code: str, marker: str) -> ExportFile:
    now = utcnow()
    return ExportFile(lg_code=lg_code, id=str(uuid.uuid4()), exporter="audit.log", title=marker, filename=f"{marker}.csv",
                      media_type="text/csv", params={}, state="ready", rows=0, size=0, parts=0, message="",
                      requested_by=str(uuid.uuid4()), requested_by_label="test", created_at=now, finished_at=now,
                      expires_at=now + timedelta(days=7))


async def _export_file(session: AsyncSession, lg_code: str, marker: str) -> ExportFile:
    return _export_file_row(lg_code, marker)


async def _export_part(session: AsyncSession, lg_code: str, marker: str) -> ExportPart:
    parent = _export_file_row(lg_code, marker)
    async with unscoped(session, "test factory: the file the part belongs to"):
        session.add(parent)
        await session.flush()
    return ExportPart(lg_code=lg_code, export_id=parent.id, seq=0, data=marker.encode())


FACTORIES[ExportFile] = _export_file
FACTORIES[ExportPart] = _export_part


# Modules added in session 5 keep their factories in files of their own.
from tests import factories_childcare, factories_governance, factories_opinions, factories_surveys  # noqa: E402

for _module in (factories_childcare, factories_surveys, factories_governance, factories_opinions):
    FACTORIES.update(_module.FACTORIES)
    APPEND_ONLY |= _module.APPEND_ONLY
