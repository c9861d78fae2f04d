"""Delivering the outbox: a durable job (core/jobs) per tenant that sends e-mail over SMTP.

The job ``notify.deliver`` alternates two kinds of chunk, each one transaction committed by the
job runner together with the job's cursor:

1. **claim**: take up to a batch of due messages (待機中 whose retry time has come, or 送信中
   whose claim lapsed) within the tenant's per-minute rate and daily allowance, mark them
   送信中 with a fresh claim token and a lease, and put the token in the cursor;
2. **send**: for the rows still carrying that token (locked on PostgreSQL, so no other job
   reclaims them meanwhile), send each over one SMTP connection and mark it 送信済み, or put
   it back to 待機中 with backoff (temporary failure), or 失敗 (permanent refusal, or too
   many attempts).

Exactly once as far as the recipient can tell: every notification is rendered once, when it
is written, and carries a Message-ID fixed at creation (``<id@lg_code.notify.kiban>``) and a
Date fixed at creation, so every attempt sends the same bytes. The remaining window is honest:
if the worker dies after the SMTP server accepted a message and before the send chunk
commits, the job resumes from its committed cursor (the same token) and sends those messages
again; the recipient's mailbox receives a second copy of the *same* message (same Message-ID,
subject, body and Date), which mail systems that de-duplicate by Message-ID show once. SMTP
has no idempotency key, so no sender can close that window completely; it is bounded by one
send chunk (``Kind.chunk_seconds``) of messages. A message is never sent as two *different*
messages, and never dropped.

With no SMTP server configured (``KIBAN_SMTP_HOST`` unset) e-mails stay 待機中 and staff see
「送信設定がありません」; a job looks again every few minutes, so setting the host and
restarting sends them. In-app notices need no delivery: ``send`` writes them at once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr

import aiosmtplib
from sqlalchemy import and_, event, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kiban.core.jobs import kinds as job_kinds
from kiban.core.jobs import service as jobs
from kiban.core.jobs.kinds import JobContext, Kind, Progress
from kiban.core.jobs.models import QUEUED as JOB_QUEUED
from kiban.core.jobs.models import Job
from kiban.core.notify import sealing
from kiban.core.notify.models import FAILED, QUEUED, SENDING, SENT, Notification
from kiban.kit.db import utcnow
from kiban.kit.settings import get_settings
from kiban.kit.wareki import JST

log = logging.getLogger("kiban.notify")

KIND = "notify.deliver"
BATCH = 200                 # messages claimed at once
LEASE = timedelta(minutes=5)  # a 送信中 claim lapses after this (the job died): reclaimed
MAX_ATTEMPTS = 8
BACKOFF_SECONDS = 30.0
NO_SMTP_RECHECK = timedelta(minutes=5)
CREATED_BY = "kiban-notify"

# Seams for tests: the clock the outbox uses (the runner has its own), and a hook called right
# after the SMTP server accepted a message (a test raises there to "crash" the worker).
clock: Callable[[], datetime] = utcnow
after_accept: Callable[[Notification], None] | None = None


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    per_minute: int
    per_day: int


@dataclass(frozen=True)
class DeliveryConfig:
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "noreply@kiban.localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 10.0
    smtp_connections: int = 4  # messages in flight at once, each on its own SMTP connection
    per_minute: int = 3000
    per_day: int = 50000
    overrides: dict[str, Limits] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        return bool(self.smtp_host)

    def limits_for(self, lg_code: str) -> Limits:
        return self.overrides.get(lg_code) or Limits(self.per_minute, self.per_day)


def parse_overrides(text: str) -> dict[str, Limits]:
    """``"230006:6000:100000,011002:100:1000"`` → per-tenant limits (malformed parts ignored)."""
    found: dict[str, Limits] = {}
    for part in text.split(","):
        bits = [b.strip() for b in part.split(":")]
        if len(bits) == 3 and bits[0].isdigit() and bits[1].isdigit() and bits[2].isdigit():
            found[bits[0]] = Limits(int(bits[1]), int(bits[2]))
    return found


_configured: DeliveryConfig | None = None


def configure(cfg: DeliveryConfig | None) -> None:
    """Use ``cfg`` instead of the environment's settings (tests, benchmarks); None resets."""
    global _configured
    _configured = cfg


def config() -> DeliveryConfig:
    if _configured is not None:
        return _configured
    s = get_settings()
    return DeliveryConfig(smtp_host=s.smtp_host or None, smtp_port=s.smtp_port, smtp_from=s.smtp_from,
                          smtp_username=s.smtp_username, smtp_password=s.smtp_password,
                          smtp_starttls=s.smtp_starttls, smtp_timeout_seconds=s.smtp_timeout_seconds,
                          per_minute=s.notify_rate_per_minute, per_day=s.notify_daily_allowance,
                          overrides=parse_overrides(s.notify_limit_overrides))


async def meter(session: AsyncSession, tenant, service: str, event: str, *, quantity: int = 1) -> None:
    """Count ``event`` ("email" when delivered, "notice" when written) for the usage-based fees
    (core/metering), in the transaction that makes it so: counted exactly when that commits.
    A service id the catalog does not know is logged and not counted: a missing catalog row
    must not stop mail."""
    from kiban.core.metering import service as metering

    try:
        await metering.count(session, tenant, service, event, quantity=quantity)
    except (metering.UnknownService, ValueError) as exc:
        log.warning("notify: not metered (%s): %s", service, exc)


def message_id_for(lg_code: str, notification_id: str) -> str:
    return f"<{notification_id}@{lg_code}.notify.kiban>"


# -- tenant status (limits in use) ---------------------------------------------------------


def day_start(now: datetime) -> datetime:
    local = now.astimezone(JST)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(now.tzinfo)


@dataclass(frozen=True)
class TenantStatus:
    configured: bool
    limits: Limits
    last_minute: int      # messages claimed for sending in the last 60 seconds
    today: int            # sent today (JST) plus those being sent
    oldest_in_minute: datetime | None
    now: datetime

    @property
    def minute_left(self) -> int:
        return max(0, self.limits.per_minute - self.last_minute)

    @property
    def day_left(self) -> int:
        return max(0, self.limits.per_day - self.today)

    @property
    def blocked_reason(self) -> str | None:
        if not self.configured:
            return "送信設定がありません（メール送信サーバーが設定されていないため、送信せずに待機しています）。"
        if self.day_left == 0:
            return (f"本日の送信上限（{self.limits.per_day:,}通）に達したため、"
                    "翌日0時（日本時間）以降に送信します。")
        if self.minute_left == 0:
            return f"1分あたりの送信上限（{self.limits.per_minute:,}通）に達したため、順番に送信します。"
        return None

    def resume_at(self) -> datetime:
        """When sending may go on again (for a blocked tenant)."""
        if not self.configured:
            return self.now + NO_SMTP_RECHECK
        if self.day_left == 0:
            return day_start(self.now) + timedelta(days=1)
        return (self.oldest_in_minute or self.now) + timedelta(seconds=60)


async def tenant_status(session: AsyncSession, lg_code: str, cfg: DeliveryConfig | None = None,
                        now: datetime | None = None) -> TenantStatus:
    cfg = cfg or config()
    now = now or clock()
    since = now - timedelta(seconds=60)
    minute = (await session.execute(
        select(func.count(Notification.id), func.min(Notification.sending_at))
        .where(Notification.lg_code == lg_code, Notification.sending_at >= since))).one()
    today = (await session.execute(
        select(func.count(Notification.id)).where(Notification.lg_code == lg_code, or_(
            and_(Notification.state == SENT, Notification.email.is_not(None), Notification.sent_at >= day_start(now)),
            Notification.state == SENDING)))).scalar_one()
    return TenantStatus(cfg.configured, cfg.limits_for(lg_code), int(minute[0]), int(today), minute[1], now)


# -- scheduling ----------------------------------------------------------------------------


_ENSURED = "kiban.notify.drain_ensured"


async def ensure_drain(session: AsyncSession) -> None:
    """Queue a delivery job for the bound tenant in the caller's transaction, once per
    transaction and tenant. The job commits together with the caller's notifications, so when
    a runner takes it up they are there to be claimed. (Reusing a job queued by someone else
    would race: a runner could take it and finish before this transaction commits, leaving the
    new messages without a job.) A job that finds its messages already sent by another ends
    after one short chunk."""
    lg_code = jobs.JobRepository(session).tenant.lg_code
    sync = session.sync_session
    seen: dict = sync.info.setdefault(_ENSURED, {})
    if lg_code in seen:
        return  # queued in a transaction that is still open (the entry goes when it ends)
    await jobs.enqueue(session, KIND, created_by=CREATED_BY, run_after=clock(), message="送信待ちの通知があります。")
    inner = sync.get_nested_transaction() or sync.get_transaction()
    if inner is not None:
        seen[lg_code] = weakref.ref(inner)


@event.listens_for(Session, "after_transaction_end")
def _forget_ensured(session: Session, transaction) -> None:
    """The transaction (or savepoint) that queued a job ended: committed or rolled back, the
    next send queues again (for a released savepoint that is one spare job, never a missing one)."""
    seen = session.info.get(_ENSURED)
    if seen:
        for lg_code in [k for k, ref in seen.items() if ref() is None or ref() is transaction]:
            del seen[lg_code]


async def _follow_up(ctx: JobContext, at: datetime) -> None:
    """Queue the next look at this outbox for ``at``, unless another job will look by then."""
    repo = jobs.JobRepository(ctx.session)
    other = await repo.first(repo.select().where(Job.kind == KIND, Job.state == JOB_QUEUED,
                                                 Job.id != ctx.job.id, Job.run_after <= at))
    if other is None:
        await jobs.enqueue(ctx.session, KIND, created_by=CREATED_BY, run_after=at,
                           message="送信待ちの通知があります。")


# -- the job -------------------------------------------------------------------------------


def _locking(stmt, session: AsyncSession, *, skip_locked: bool):
    if session.bind.dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=skip_locked)
    return stmt  # SQLite: the chunk's transaction already holds the only write lock


async def step(ctx: JobContext) -> Progress:
    sent_so_far = ctx.memo.setdefault("sent", 0)
    token = (ctx.cursor or {}).get("token")
    if token:
        return await _send_claimed(ctx, token)
    return await _claim(ctx, sent_so_far)


async def _claim(ctx: JobContext, sent_so_far: int) -> Progress:
    session, lg_code = ctx.session, ctx.tenant.lg_code
    cfg = config()
    now = clock()
    status = await tenant_status(session, lg_code, cfg, now)
    blocked = status.blocked_reason
    pending = Notification.state == QUEUED
    if blocked:
        waiting = (await session.execute(select(func.count(Notification.id)).where(Notification.lg_code == lg_code, pending))).scalar_one()
        if waiting:
            await _follow_up(ctx, status.resume_at())
        await _close(ctx)
        return Progress(None, sent_so_far, None, blocked, finished=True)
    available = min(BATCH, status.minute_left, status.day_left)
    due = or_(and_(Notification.state == QUEUED, Notification.next_attempt_at <= now),
              and_(Notification.state == SENDING, Notification.lease_until < now))
    ids = list((await session.scalars(_locking(
        select(Notification.id).where(Notification.lg_code == lg_code, due)
        .order_by(Notification.next_attempt_at, Notification.created_at).limit(available),
        session, skip_locked=True))).all())
    if not ids:
        later = (await session.execute(select(func.min(Notification.next_attempt_at))
                                       .where(Notification.lg_code == lg_code, pending))).scalar_one()
        if later is not None:
            # due ones another job holds locked right now are looked at again shortly, not in a spin
            await _follow_up(ctx, max(later, now + timedelta(seconds=5)))
        await _close(ctx)
        return Progress(None, sent_so_far, None, f"送信を終えました（{sent_so_far}通）。", finished=True)
    token = f"{ctx.job.id[:8]}-{uuid.uuid4().hex[:12]}"
    await session.execute(
        update(Notification).where(Notification.lg_code == lg_code, Notification.id.in_(ids), due)
        .values(state=SENDING, claim_token=token, lease_until=now + LEASE, sending_at=now,
                attempts=Notification.attempts + 1, updated_at=now)
        .execution_options(synchronize_session=False))
    return Progress({"token": token}, sent_so_far, None, f"送信中です（{sent_so_far}通送信済み）。")


def build_message(n: Notification, sender: str) -> EmailMessage:
    """The message for ``n``: the same bytes on every attempt (fixed Message-ID and Date)."""
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = sender
    msg["To"] = formataddr((n.recipient_name, n.email)) if n.recipient_name else n.email
    msg["Subject"] = n.subject
    msg["Date"] = format_datetime(n.created_at)
    msg["Message-ID"] = n.message_id
    msg["X-Kiban-Notification"] = f"{n.lg_code}/{n.id}"
    # a sealed body (sealing.py) is opened here, for this message only; the row keeps it sealed
    msg.set_content(sealing.open_body(n.body, n.lg_code, n.id), charset="utf-8", cte="base64")
    return msg


async def _smtp_pool(ctx: JobContext, cfg: DeliveryConfig) -> list[aiosmtplib.SMTP]:
    """Up to ``cfg.smtp_connections`` connected clients, kept between the chunks of one claim.
    Raises if not even one connects."""
    pool = [c for c in ctx.memo.get("smtp", []) if c.is_connected]
    error: Exception | None = None
    while len(pool) < max(1, cfg.smtp_connections):
        client = aiosmtplib.SMTP(hostname=cfg.smtp_host, port=cfg.smtp_port, timeout=cfg.smtp_timeout_seconds,
                                 start_tls=cfg.smtp_starttls, username=cfg.smtp_username,
                                 password=cfg.smtp_password)
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            error = exc
            break
        pool.append(client)
    ctx.memo["smtp"] = pool
    if not pool:
        raise error or OSError("no SMTP connection")
    return pool


async def _close(ctx: JobContext) -> None:
    for client in ctx.memo.pop("smtp", []):
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
                client.close()


async def _try_send(client: aiosmtplib.SMTP, n: Notification, sender: str) -> Exception | None:
    try:
        message = build_message(n, sender)
    except sealing.Unopenable as exc:
        return exc  # nothing was sent; permanent (the key changed), the connection is fine
    try:
        await client.send_message(message, sender=sender, recipients=[n.email])
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
        return exc
    return None


def _permanent(exc: Exception) -> bool:
    if isinstance(exc, sealing.Unopenable):
        return True
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(r.code >= 500 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return False  # our own From is refused: a setting to fix, not this message's fault
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code >= 500
    return False


def _describe(exc: Exception) -> str:
    if isinstance(exc, sealing.Unopenable):
        return "暗号化した本文を復号できませんでした（秘密鍵が変更された可能性があります）。送信しませんでした。"
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        r = exc.recipients[0] if exc.recipients else None
        return f"宛先が受け付けられませんでした（{r.code if r else ''} {r.message if r else ''}）"[:400]
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"メール送信サーバーが受け付けませんでした（{exc.code} {exc.message}）"[:400]
    return f"メール送信サーバーに接続できませんでした（{type(exc).__name__}: {exc}）"[:400]


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_SECONDS * 2 ** max(attempts - 1, 0), 3600.0))


def _retry_or_fail(n: Notification, error: str, now: datetime, *, permanent: bool) -> None:
    n.claim_token, n.lease_until, n.updated_at, n.last_error = None, None, now, error
    if permanent or n.attempts >= MAX_ATTEMPTS:
        n.state, n.failed_at = FAILED, now
        if sealing.is_sealed(n.body):
            n.body = sealing.WIPED_FAILED  # given up: the secret is not kept
    else:
        n.state, n.next_attempt_at = QUEUED, now + backoff(n.attempts)


SEND_CHUNK = 100  # rows of a claim loaded (and locked) by one send chunk


async def _send_claimed(ctx: JobContext, token: str) -> Progress:
    session, lg_code = ctx.session, ctx.tenant.lg_code
    cfg = config()
    now = clock()
    mine = and_(Notification.lg_code == lg_code, Notification.claim_token == token, Notification.state == SENDING)
    rows = list((await session.scalars(_locking(
        select(Notification).where(mine).order_by(Notification.next_attempt_at, Notification.created_at)
        .limit(SEND_CHUNK), session, skip_locked=False)
        .execution_options(populate_existing=True))).all())
    sent = ctx.memo["sent"]
    if not rows:
        return Progress(None, sent, None, f"送信中です（{sent}通送信済み）。")
    await session.execute(update(Notification).where(mine).values(lease_until=now + LEASE)
                          .execution_options(synchronize_session=False))
    if not cfg.configured:
        await session.execute(update(Notification).where(mine).values(
            state=QUEUED, claim_token=None, lease_until=None, attempts=Notification.attempts - 1)
            .execution_options(synchronize_session=False))
        return Progress(None, sent, None, "送信設定がありません。")
    try:
        pool = await _smtp_pool(ctx, cfg)
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
        error = _describe(exc)
        log.warning("notify %s: SMTP connection failed: %s", lg_code, exc)
        for n in rows:
            _retry_or_fail(n, error, now, permanent=False)
        return Progress(None, sent, None, error)
    accepted: list[str] = []
    i = 0
    while i < len(rows):
        if i and ctx.out_of_time():
            break  # the rest keep the token: the next chunk sends them
        group = rows[i:i + len(pool)]
        i += len(group)
        outcomes = await asyncio.gather(*(_try_send(c, n, cfg.smtp_from) for c, n in zip(pool, group)))
        broken: Exception | None = None
        for n, exc in zip(group, outcomes):
            if exc is None:
                if after_accept is not None:
                    after_accept(n)
                accepted.append(n.id)
                continue
            _retry_or_fail(n, _describe(exc), clock(), permanent=_permanent(exc))
            if not isinstance(exc, (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException,
                                    sealing.Unopenable)) \
                    or isinstance(exc, aiosmtplib.SMTPServerDisconnected):
                broken = exc
        if broken is not None:
            # a connection is gone: the rest go back to the queue, tried again after a backoff
            for rest in rows[i:]:
                _retry_or_fail(rest, _describe(broken), clock(), permanent=False)
            await _close(ctx)
            break
    if accepted:
        # metered in the transaction that marks them 送信済み: a chunk rolled back after a crash
        # takes its count with it, so each notification is counted once however often it was sent
        by_id = {n.id: n for n in rows}
        for service, count in Counter(by_id[i].service for i in accepted).items():
            await meter(session, ctx.tenant, service, "email", quantity=count)
        # one statement for the chunk's accepted messages (the rows' own failures are flushed apart)
        now = clock()
        await session.execute(
            update(Notification).where(Notification.lg_code == lg_code, Notification.id.in_(accepted))
            .values(state=SENT, sent_at=now, claim_token=None, lease_until=None, updated_at=now, last_error=None)
            .execution_options(synchronize_session=False))
        # sealed bodies (an invitation link) are wiped in the same transaction that marks them sent
        await session.execute(
            update(Notification).where(Notification.lg_code == lg_code, Notification.id.in_(accepted),
                                       Notification.body.startswith(sealing.PREFIX, autoescape=True))
            .values(body=sealing.WIPED_SENT)
            .execution_options(synchronize_session=False))
    sent += len(accepted)
    ctx.memo["sent"] = sent
    return Progress({"token": token}, sent, None, f"送信中です（{sent}通送信済み）。")


async def on_failure(ctx: JobContext, message: str) -> None:
    """The job gave up (the database kept failing): hand its claimed messages back, unsent."""
    token = (ctx.cursor or {}).get("token")
    await _close(ctx)
    if token:
        await ctx.session.execute(
            update(Notification).where(Notification.lg_code == ctx.tenant.lg_code, Notification.claim_token == token,
                                       Notification.state == SENDING)
            .values(state=QUEUED, claim_token=None, lease_until=None)
            .execution_options(synchronize_session=False))
    await _follow_up(ctx, clock() + NO_SMTP_RECHECK)


DELIVER = job_kinds.register(Kind(KIND, "通知の配信", step, on_failure=on_failure, max_attempts=10,
                                  backoff_seconds=5.0, lease_seconds=60.0, chunk_seconds=0.5))
