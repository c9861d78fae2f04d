"""Notifications every module shares: register a template, ``send`` in your own transaction.

    from kiban.core.notify.service import Recipient, TemplateDef, register_template, send

    RECEIPT = register_template(TemplateDef(
        key="forms.receipt", label="電子申請の受付通知",
        subject="【{municipality}】{form_title}を受け付けました", body="...{receipt_no}...",
        placeholders=("municipality", "form_title", "receipt_no")))

    await send(session, tenant, template="forms.receipt", to=Recipient(email=..., principal_id=...),
               context={...}, service="aichi-e-shinsei", dedupe_key=f"forms.receipt:{receipt_no}")

``send`` does no I/O: it renders the tenant's wording of the template and writes the
notification (and an in-app notice) in the caller's transaction, so the message exists if and
only if the caller's event commits. A delivery job (delivery.py) sends the e-mail later.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.notify import delivery, sealing
from kiban.core.notify.models import QUEUED, SENT, STATES, Notice, Notification, TemplateOverride
from kiban.core.notify.rendering import check, fields, render
from kiban.core.tenancy.context import Tenant, TenantMismatch, bind_tenant, current_tenant, unscoped
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow


@dataclass(frozen=True)
class Recipient:
    email: str | None = None          # e-mail channel when given
    principal_id: str | None = None   # in-app notice (listed under /me) when given (a resident's principal)
    name: str | None = None


@dataclass(frozen=True)
class TemplateDef:
    key: str          # e.g. "forms.receipt"
    label: str        # Japanese name shown to staff, e.g. "電子申請の受付通知"
    subject: str      # default subject with {placeholders}
    body: str         # default body with {placeholders}
    placeholders: tuple[str, ...] = ()
    required: tuple[str, ...] = ()  # placeholders a tenant's wording must keep (e.g. an invitation's link)


TEMPLATES: dict[str, TemplateDef] = {}

PLATFORM_SERVICE = "kiban-notify"
_EMAIL = re.compile(r"^[^@\s<>\"(),;:\\]+@[^@\s<>\"(),;:\\]+\.[^@\s<>\"(),;:\\]+$")


def register_template(t: TemplateDef) -> TemplateDef:
    """Make ``t`` known (call at import time). The defaults must use only their declared
    placeholders; registering a different template under the same key is an error."""
    if not t.key or len(t.key) > 80:
        raise ValueError(f"template key must be 1 to 80 characters: {t.key!r}")
    problems = check(t.subject, t.placeholders, what="件名") + check(t.body, t.placeholders, what="本文")
    if problems:
        raise ValueError(f"template {t.key!r}: {'; '.join(problems)}")
    existing = TEMPLATES.get(t.key)
    if existing is not None and existing != t:
        raise ValueError(f"template {t.key!r} is registered twice with different contents")
    TEMPLATES[t.key] = t
    return t


def template_def(key: str) -> TemplateDef:
    try:
        return TEMPLATES[key]
    except KeyError:
        raise LookupError(f"no notification template {key!r} is registered") from None


# -- repositories --------------------------------------------------------------------------


class OverrideRepository(TenantRepository[TemplateOverride]):
    model = TemplateOverride

    async def for_key(self, key: str) -> TemplateOverride | None:
        return await self.first(self.select().where(TemplateOverride.key == key))

    async def all_keys(self) -> dict[str, TemplateOverride]:
        return {o.key: o for o in await self.all(self.select())}


class NotificationRepository(TenantRepository[Notification]):
    model = Notification

    async def by_dedupe_key(self, dedupe_key: str) -> Notification | None:
        return await self.first(self.select().where(Notification.dedupe_key == dedupe_key))

    async def by_id(self, notification_id: str) -> Notification | None:
        return await self.first(self.select().where(Notification.id == notification_id))

    def filtered(self, *, state: str | None, template_key: str | None):
        stmt = self.select()
        if state:
            stmt = stmt.where(Notification.state == state)
        if template_key:
            stmt = stmt.where(Notification.template_key == template_key)
        return stmt

    async def page(self, *, state: str | None, template_key: str | None, offset: int, limit: int
                   ) -> tuple[Sequence[Notification], int]:
        stmt = self.filtered(state=state, template_key=template_key)
        rows = await self.all(stmt.order_by(Notification.created_at.desc(), Notification.id)
                              .offset(offset).limit(limit))
        return rows, await self.count(stmt)

    async def counts_by_state(self) -> dict[str, int]:
        rows = (await self.session.execute(
            select(Notification.state, func.count()).where(Notification.lg_code == self.tenant.lg_code)
            .group_by(Notification.state))).all()
        found = {s: 0 for s in STATES}
        found.update({s: int(n) for s, n in rows})
        return found


# -- rendering -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Wording:
    subject: str
    body: str
    overridden: bool


async def wording(session: AsyncSession, key: str) -> Wording:
    """The bound tenant's subject and body for template ``key`` (its override or the default)."""
    definition = template_def(key)
    override = await OverrideRepository(session).for_key(key)
    if override is None:
        return Wording(definition.subject, definition.body, False)
    return Wording(override.subject, override.body, True)


def _one_line(text: str) -> str:
    # a subject is a mail header: a value with a line break must not start another header
    return " ".join(text.split())[:200]


def render_message(definition: TemplateDef, subject: str, body: str, context: Mapping[str, object]
                   ) -> tuple[str, str]:
    missing = [p for p in definition.placeholders if p not in context]
    if missing:
        raise KeyError(f"template {definition.key!r} needs context values {missing}")
    return _one_line(render(subject, context)), render(body, context)


def sample_context(definition: TemplateDef) -> dict[str, str]:
    """Values for a preview: each placeholder shown as 〈name〉."""
    return {p: f"〈{p}〉" for p in definition.placeholders}


# -- sending -------------------------------------------------------------------------------


def _check_recipient(to: Recipient) -> None:
    if not to.email and not to.principal_id:
        raise ValueError("a notification needs an e-mail address or a principal")
    if to.email is not None and (len(to.email) > 254 or not _EMAIL.match(to.email)):
        raise ValueError(f"not an e-mail address: {to.email!r}")


def valid_email(address: str | None) -> bool:
    """Whether ``address`` is an e-mail address ``send`` accepts."""
    return bool(address) and len(address) <= 254 and bool(_EMAIL.match(address))


async def send(session: AsyncSession, tenant: Tenant, *, template: str, to: Recipient, context: dict,
               service: str, dedupe_key: str | None = None, sealed: bool = False) -> Notification:
    """Write a notification for ``tenant`` in the caller's transaction; no I/O, no commit.

    Renders the tenant's wording of ``template`` with ``context`` (every declared placeholder
    must be given: KeyError otherwise). With ``to.email`` an e-mail waits in the outbox as
    待機中 and a delivery job is queued; with ``to.principal_id`` an in-app notice is written
    now. The same (tenant, ``dedupe_key``) returns the notification already written, so a
    retried event does not notify twice. ``service`` is the catalog service id the message is
    counted under (platform messages: "kiban-notify"). Raises ValueError on a recipient
    with neither channel or a malformed address, LookupError on an unknown template.

    ``sealed``: the body carries a secret (an invitation link). It is stored encrypted
    (sealing.py), opened only to build the e-mail, and wiped once the message is sent or given
    up. A sealed message is e-mail only (an in-app notice would keep the body in clear).
    """
    bound = current_tenant(session)
    if bound is None:
        await bind_tenant(session, tenant)
    elif bound.lg_code != tenant.lg_code:
        raise TenantMismatch(f"send() for {tenant.lg_code} on a session bound to {bound.lg_code}")
    definition = template_def(template)
    _check_recipient(to)
    if sealed and (not to.email or to.principal_id):
        raise ValueError("a sealed notification is e-mail only (no in-app notice)")
    if dedupe_key is not None and not 0 < len(dedupe_key) <= 200:
        raise ValueError("dedupe_key must be 1 to 200 characters")
    repo = NotificationRepository(session)
    if dedupe_key is not None:
        existing = await repo.by_dedupe_key(dedupe_key)
        if existing is not None:
            return existing
    words = await wording(session, definition.key)
    subject, body = render_message(definition, words.subject, words.body, context)
    now = utcnow()
    notification_id = str(uuid.uuid4())
    notification = Notification(
        id=notification_id, template_key=definition.key, service=service[:80],
        dedupe_key=dedupe_key, email=to.email, principal_id=to.principal_id,
        recipient_name=(to.name or None) and to.name[:200], subject=subject,
        body=sealing.seal(body, tenant.lg_code, notification_id) if sealed else body,
        message_id=delivery.message_id_for(tenant.lg_code, notification_id),
        state=QUEUED if to.email else SENT, attempts=0, next_attempt_at=delivery.clock(),
        created_at=now, sent_at=None if to.email else now, updated_at=now)
    notice = None
    if to.principal_id:
        notice = Notice(id=str(uuid.uuid4()), notification_id=notification_id, principal_id=to.principal_id,
                        subject=subject, body=body, created_at=now)
    if dedupe_key is None:
        repo.add(notification)
        if notice is not None:
            NoticeRepository(session).add(notice)
        await session.flush()
    else:
        # a concurrent send with the same key loses the race on the unique constraint: take
        # the winner's notification instead of failing the caller's transaction
        try:
            async with session.begin_nested():
                repo.add(notification)
                if notice is not None:
                    NoticeRepository(session).add(notice)
                await session.flush()
        except IntegrityError:
            existing = await repo.by_dedupe_key(dedupe_key)
            if existing is None:
                raise
            return existing
    if notice is not None:
        await delivery.meter(session, tenant, notification.service, "notice")
    if to.email:
        await delivery.ensure_drain(session)
    return notification


# -- in-app notices ------------------------------------------------------------------------


class NoticeRepository(TenantRepository[Notice]):
    model = Notice


NOTICES_REASON = "住民本人のお知らせ一覧: 本人あての通知だけを、全自治体から読む"


async def notices_for(session: AsyncSession, principal_id: str, *, offset: int = 0, limit: int = 50
                      ) -> tuple[list[Notice], int]:
    """A principal's notices from every municipality, newest first. A resident is not bound to
    one tenant, so this reads across tenants, filtered to the principal's own rows."""
    stmt = select(Notice).where(Notice.principal_id == principal_id)
    async with unscoped(session, NOTICES_REASON):
        rows = list((await session.scalars(stmt.order_by(Notice.created_at.desc(), Notice.id)
                                            .offset(offset).limit(limit))).all())
        total = int((await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one())
    return rows, total


async def staff_notices(session: AsyncSession, principal_id: str, *, offset: int = 0, limit: int = 50
                        ) -> tuple[list[Notice], int]:
    """A staff member's notices in the bound organisation (tenant-scoped), newest first."""
    repo = NoticeRepository(session)
    stmt = repo.select().where(Notice.principal_id == principal_id)
    rows = list(await repo.all(stmt.order_by(Notice.created_at.desc(), Notice.id).offset(offset).limit(limit)))
    return rows, await repo.count(stmt)


async def mark_staff_notice_read(session: AsyncSession, principal_id: str, notice_id: str) -> Notice | None:
    repo = NoticeRepository(session)
    notice = await repo.first(repo.select().where(Notice.id == notice_id, Notice.principal_id == principal_id))
    if notice is not None and notice.read_at is None:
        notice.read_at = utcnow()
        await session.flush()
    return notice


async def mark_notice_read(session: AsyncSession, principal_id: str, notice_id: str) -> Notice | None:
    """Mark the principal's own notice read; None if it is not theirs (or does not exist).
    Notice ids are UUIDs, so the id and the principal find it without naming the municipality."""
    async with unscoped(session, NOTICES_REASON):
        notice = (await session.scalars(select(Notice).where(
            Notice.id == notice_id, Notice.principal_id == principal_id))).first()
        if notice is None:
            return None
        if notice.read_at is None:
            notice.read_at = utcnow()
            await session.flush()
    return notice


# -- status for staff ----------------------------------------------------------------------


def wait_reason(n: Notification, status: "delivery.TenantStatus", now: datetime | None = None) -> str | None:
    """Why a 待機中 message has not gone yet, in Japanese (None when it simply is next)."""
    now = now or utcnow()
    if n.state != QUEUED:
        return None
    if n.attempts and n.next_attempt_at > now:
        return f"一時的な送信失敗のため再送待ちです（{n.attempts}回試行）。"
    if status.blocked_reason:
        return status.blocked_reason
    return None




# -- staff: delivery status and template wording -------------------------------------------

PAGE_SIZE = 50
SUBJECT_MAX, BODY_MAX = 200, 10_000


@dataclass(frozen=True)
class DeliveryPage:
    rows: Sequence[Notification]
    total: int
    counts: dict[str, int]
    status: delivery.TenantStatus
    reasons: dict[str, str | None]


async def delivery_page(session: AsyncSession, *, state: str | None, template_key: str | None, offset: int,
                        limit: int = PAGE_SIZE) -> DeliveryPage:
    """The bound tenant's notifications, newest first, filtered and paged in SQL, with why the
    waiting ones wait (no SMTP set up, the minute's rate, the day's allowance, a retry)."""
    repo = NotificationRepository(session)
    rows, total = await repo.page(state=state or None, template_key=template_key or None, offset=offset, limit=limit)
    status = await delivery.tenant_status(session, repo.tenant.lg_code)
    return DeliveryPage(rows, total, await repo.counts_by_state(), status,
                        {n.id: wait_reason(n, status, status.now) for n in rows})


async def notification(session: AsyncSession, notification_id: str) -> Notification:
    from kiban.kit.errors import NotFound

    found = await NotificationRepository(session).by_id(notification_id)
    if found is None:
        raise NotFound("お探しの通知は見つかりませんでした。")
    return found


def check_wording(definition: TemplateDef, subject: str, body: str) -> list[dict[str, str]]:
    """Every problem with a tenant's wording at once: [{"field", "message"}] in Japanese."""
    errors: list[dict[str, str]] = []
    if not subject.strip():
        errors.append({"field": "subject", "message": "件名を入力してください。"})
    elif len(subject) > SUBJECT_MAX:
        errors.append({"field": "subject", "message": f"件名は{SUBJECT_MAX}文字以内で入力してください（{len(subject)}文字）。"})
    else:
        errors += [{"field": "subject", "message": m} for m in check(subject, definition.placeholders, what="件名")]
    if not body.strip():
        errors.append({"field": "body", "message": "本文を入力してください。"})
    elif len(body) > BODY_MAX:
        errors.append({"field": "body", "message": f"本文は{BODY_MAX:,}文字以内で入力してください（{len(body):,}文字）。"})
    else:
        errors += [{"field": "body", "message": m} for m in check(body, definition.placeholders, what="本文")]
        errors += [{"field": "body", "message": f"本文には {{{p}}} を必ず入れてください（この通知に欠かせない情報です）。"}
                   for p in definition.required if p not in fields(body)]
    return errors


def preview(definition: TemplateDef, subject: str, body: str) -> tuple[str, str]:
    """``subject`` and ``body`` filled with sample values (checked first by ``check_wording``)."""
    return render_message(definition, subject, body, sample_context(definition))


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


async def save_wording(session: AsyncSession, staff, key: str, subject: str, body: str) -> TemplateOverride:
    """Store the tenant's own wording of ``key`` (audited). InvalidInput lists every problem."""
    from kiban.core.audit import service as audit
    from kiban.kit.errors import InvalidInput

    definition = template_def_or_404(key)
    subject, body = subject.strip(), _normalise(body)
    errors = check_wording(definition, subject, body)
    if errors:
        raise InvalidInput("\n".join(e["message"] for e in errors), errors=errors)
    repo = OverrideRepository(session)
    override = await repo.for_key(key)
    now = utcnow()
    actor_id = staff.principal.id[:36]
    if override is None:
        override = repo.add(TemplateOverride(key=key, subject=subject, body=body, updated_by=actor_id, updated_at=now))
    else:
        override.subject, override.body, override.updated_by, override.updated_at = subject, body, actor_id, now
    await audit.record(session, audit.Actor.of_staff(staff), "notify.template.updated", target_type="notify_template",
                       target_id=key, details={"template": definition.label})
    await session.flush()
    return override


async def reset_wording(session: AsyncSession, staff, key: str) -> bool:
    """Go back to the standard wording of ``key`` (audited); False if there was no override."""
    from kiban.core.audit import service as audit

    definition = template_def_or_404(key)
    repo = OverrideRepository(session)
    override = await repo.for_key(key)
    if override is None:
        return False
    await session.delete(override)
    await audit.record(session, audit.Actor.of_staff(staff), "notify.template.reset", target_type="notify_template",
                       target_id=key, details={"template": definition.label})
    await session.flush()
    return True


def template_def_or_404(key: str) -> TemplateDef:
    from kiban.kit.errors import NotFound

    if key not in TEMPLATES:
        raise NotFound("お探しの通知テンプレートは見つかりませんでした。")
    return TEMPLATES[key]


async def template_list(session: AsyncSession) -> list[tuple[TemplateDef, TemplateOverride | None]]:
    overrides = await OverrideRepository(session).all_keys()
    return [(t, overrides.get(t.key)) for t in sorted(TEMPLATES.values(), key=lambda t: t.key)]


# The platform's own test message: staff send it to check that e-mail reaches residents.
TEST_MESSAGE = register_template(TemplateDef(
    key="notify.test", label="送信テスト",
    subject="【{municipality}】メール送信のテスト",
    body="{municipality}からのメール送信のテストです。\nこのメールが届いていれば、通知のメールは正しく送信されています。\n\n"
         "このメールには返信できません。",
    placeholders=("municipality",)))


async def send_test(session: AsyncSession, staff, email: str) -> Notification:
    """Queue the test message to ``email`` for staff's tenant (InvalidInput on a bad address)."""
    from kiban.kit.errors import InvalidInput

    email = email.strip()
    if not email or len(email) > 254 or not _EMAIL.match(email):
        raise InvalidInput("送信先のメールアドレスを正しく入力してください（例: taro@example.jp）。",
                           errors=[{"field": "email", "message": "送信先のメールアドレスを正しく入力してください（例: taro@example.jp）。"}])
    return await send(session, staff.tenant, template=TEST_MESSAGE.key, to=Recipient(email=email),
                      context={"municipality": staff.tenant.name}, service=PLATFORM_SERVICE)
