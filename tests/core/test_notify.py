"""core/notify: rendering, the outbox in the caller's transaction, delivery over real SMTP
(aiosmtpd on 127.0.0.1), retries with backoff, rate limits and daily allowances, exactly once
across a worker crash (by Message-ID), and what happens with no SMTP server configured.
The runner's clock and the outbox's clock are the test's, so backoffs pass without waiting."""

from __future__ import annotations

import email
import socket
import threading
from collections import Counter
from datetime import timedelta
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from kiban.core.jobs.models import Job
from kiban.core.jobs.runner import Runner
from kiban.core.notify import delivery
from kiban.core.notify import service as notify
from kiban.core.notify.models import Notice, Notification, TemplateOverride
from kiban.core.notify.rendering import TemplateError, check, render
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import bind_tenant, unscoped
from kiban.kit.db import utcnow
from tests.conftest import session_on
from tests.factories import HAKODATE, SAPPORO

RECEIPT = notify.register_template(notify.TemplateDef(
    key="test.receipt", label="テストの受付通知",
    subject="【{municipality}】{title}を受け付けました",
    body="{name}様\n受付番号: {receipt_no}\n{{この括弧は文字です}}",
    placeholders=("municipality", "title", "name", "receipt_no")))


def _context(n: int = 1) -> dict:
    return {"municipality": "札幌市", "title": "粗大ごみ申込", "name": "札幌 花子", "receipt_no": f"R-{n:04d}"}


# -- a real SMTP server ----------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler keeping what it accepted; it can refuse (550) an address, or answer
    451 to the next ``temporary`` messages."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.refuse: set[str] = set()
        self.temporary = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.temporary > 0:
                self.temporary -= 1
                return "451 4.3.0 please try again later"
            self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))
        return "250 Message accepted for delivery"

    def by_message_id(self) -> Counter:
        return Counter(m["Message-ID"] for m in self.messages)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    delivery.configure(delivery.DeliveryConfig(smtp_host="127.0.0.1", smtp_port=controller.port,
                                               smtp_from="noreply@sapporo.example.jp"))
    try:
        yield inbox
    finally:
        delivery.configure(None)
        controller.stop()


class Clock:
    def __init__(self) -> None:
        self.now = utcnow() + timedelta(seconds=1)

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    c = Clock()
    delivery.clock = c
    yield c
    delivery.clock = utcnow


def _runner(connection, clock, name: str = "w") -> Runner:
    return Runner(lambda: session_on(connection), worker=name, kinds=[delivery.KIND], clock=clock, pause_ratio=0)


async def _bound(session, lg_code: str = SAPPORO):
    tenant = await registry_service.tenant_for(session, lg_code)
    await bind_tenant(session, tenant)
    return tenant


async def _send(session, tenant, n: int = 1, *, email_to: str | None = None, principal_id: str | None = None,
                dedupe: bool = True) -> Notification:
    return await notify.send(session, tenant, template=RECEIPT.key,
                             to=notify.Recipient(email=email_to or f"resident{n}@example.jp",
                                                 principal_id=principal_id, name="札幌 花子"),
                             context=_context(n), service="aichi-e-shinsei",
                             dedupe_key=f"test.receipt:{n}" if dedupe else None)


async def _count(session, model, *where) -> int:
    return len((await session.scalars(select(model).where(*where))).all())


async def _usage(session, event: str, service: str = "aichi-e-shinsei") -> int:
    from kiban.core.metering.models import UsageCounter

    return sum((await session.scalars(select(UsageCounter.total).where(
        UsageCounter.service_id == service, UsageCounter.event == event))).all())


async def _states(session) -> Counter:
    return Counter((await session.scalars(select(Notification.state))).all())


# -- rendering -------------------------------------------------------------------------------


def test_rendering_fills_placeholders_and_keeps_doubled_braces_as_text() -> None:
    assert render("{name}様 {{x}}", {"name": "花子"}) == "花子様 {x}"
    with pytest.raises(KeyError):
        render("{name}", {})


def test_unsafe_or_unknown_placeholders_are_named_in_japanese() -> None:
    assert check("{name.__class__}", ["name"], what="本文")[0].startswith("本文: 差し込み項目 {name.__class__}")
    assert "{age}" in check("{age}", ["name"], what="件名")[0]
    assert "波かっこ" in check("{name", ["name"], what="本文")[0]
    with pytest.raises(TemplateError):
        render("{0}", {"0": "x"})


def test_registering_a_template_with_an_undeclared_placeholder_fails() -> None:
    with pytest.raises(ValueError):
        notify.register_template(notify.TemplateDef("test.bad", "不正", "{x}", "本文", ()))


async def test_send_renders_the_tenants_own_wording_when_it_has_one(session) -> None:
    tenant = await _bound(session)
    first = await _send(session, tenant, 1)
    assert first.subject == "【札幌市】粗大ごみ申込を受け付けました"
    assert "受付番号: R-0001" in first.body and "{この括弧は文字です}" in first.body
    session.add(TemplateOverride(lg_code=SAPPORO, key=RECEIPT.key, subject="{title}の受付（{receipt_no}）",
                                 body="{name}様、受け付けました。", updated_by="test", updated_at=utcnow()))
    await session.flush()
    second = await _send(session, tenant, 2)
    assert (second.subject, second.body) == ("粗大ごみ申込の受付（R-0002）", "札幌 花子様、受け付けました。")
    hakodate = await _bound(session, HAKODATE)
    other = await _send(session, hakodate, 3)
    assert other.subject == "【札幌市】粗大ごみ申込を受け付けました"  # 函館市 has no override


async def test_a_line_break_in_a_value_cannot_start_another_mail_header(session) -> None:
    tenant = await _bound(session)
    ctx = {**_context(), "title": "申込\r\nBcc: victim@example.jp"}
    n = await notify.send(session, tenant, template=RECEIPT.key, to=notify.Recipient(email="a@example.jp"),
                          context=ctx, service="kiban-notify")
    assert "\n" not in n.subject and "\r" not in n.subject


async def test_send_refuses_a_recipient_without_a_channel_or_with_a_bad_address(session) -> None:
    tenant = await _bound(session)
    for to in (notify.Recipient(), notify.Recipient(email="not-an-address"), notify.Recipient(email="a@b.jp\nBcc: x")):
        with pytest.raises(ValueError):
            await notify.send(session, tenant, template=RECEIPT.key, to=to, context=_context(), service="kiban-notify")
    with pytest.raises(LookupError):
        await notify.send(session, tenant, template="no.such", to=notify.Recipient(email="a@example.jp"),
                          context={}, service="kiban-notify")


# -- the outbox ------------------------------------------------------------------------------


async def test_the_same_dedupe_key_gives_the_same_notification(session) -> None:
    tenant = await _bound(session)
    first = await _send(session, tenant, 7)
    again = await _send(session, tenant, 7)
    assert again.id == first.id
    assert await _count(session, Notification) == 1
    # the key is the tenant's: 函館市 may use the same one
    hakodate = await _bound(session, HAKODATE)
    assert (await _send(session, hakodate, 7)).id != first.id


async def test_a_rolled_back_event_leaves_no_message_and_no_delivery_job(session) -> None:
    tenant = await _bound(session)
    await session.commit()
    resident = await _resident_principal(session)
    await _send(session, tenant, 1, principal_id=resident)
    await session.rollback()
    await _bound(session)
    assert await _count(session, Notification) == 0
    assert await _count(session, Notice) == 0
    assert await _count(session, Job, Job.kind == delivery.KIND) == 0
    await _send(session, tenant, 1)
    await session.commit()
    assert await _count(session, Job, Job.kind == delivery.KIND) == 1


async def _resident_principal(session) -> str:
    import uuid

    from kiban.core.identity.models import Principal

    principal = Principal(id=str(uuid.uuid4()), kind="resident", display_name="札幌 花子", created_at=utcnow())
    session.add(principal)
    await session.flush()
    return principal.id


async def test_an_in_app_notice_is_written_at_once_and_needs_no_delivery(session) -> None:
    tenant = await _bound(session)
    resident = await _resident_principal(session)
    n = await notify.send(session, tenant, template=RECEIPT.key, to=notify.Recipient(principal_id=resident),
                          context=_context(), service="aichi-e-shinsei")
    assert n.state == "sent" and n.sent_at is not None
    assert await _usage(session, "notice") == 1
    again = await notify.send(session, tenant, template=RECEIPT.key, to=notify.Recipient(principal_id=resident),
                              context=_context(), service="aichi-e-shinsei", dedupe_key="once")
    await notify.send(session, tenant, template=RECEIPT.key, to=notify.Recipient(principal_id=resident),
                      context=_context(), service="aichi-e-shinsei", dedupe_key="once")
    assert await _usage(session, "notice") == 2 and again.state == "sent"
    notices, total = await notify.notices_for(session, resident)
    assert total == 2 and notices[-1].subject == n.subject
    assert await _count(session, Job, Job.kind == delivery.KIND) == 0


# -- delivery --------------------------------------------------------------------------------


async def test_the_worker_delivers_each_message_over_smtp_with_its_own_message_id(connection, session, smtp,
                                                                                   clock) -> None:
    tenant = await _bound(session)
    sent = [await _send(session, tenant, i) for i in range(1, 6)]
    await session.commit()
    assert await _runner(connection, clock).run_until_idle() >= 1
    assert await _states(session) == Counter({"sent": 5})
    assert smtp.by_message_id() == Counter({n.message_id: 1 for n in sent})
    received = {m["Message-ID"]: m for m in smtp.messages}
    first = received[sent[0].message_id]
    assert first["Subject"] == "【札幌市】粗大ごみ申込を受け付けました"
    assert first["To"].addresses[0].addr_spec == "resident1@example.jp"
    assert "受付番号: R-0001" in first.get_content()
    jobs = (await session.scalars(select(Job).where(Job.kind == delivery.KIND))).all()
    assert {j.state for j in jobs} == {"done"}
    assert await _usage(session, "email") == 5  # metered for usage-based fees when delivered, [(j.state, j.run_after, j.message, clock.now, j.attempts) for j in jobs]


async def test_a_temporary_smtp_failure_is_retried_after_a_backoff(connection, session, smtp, clock) -> None:
    tenant = await _bound(session)
    n = await _send(session, tenant, 1)
    await session.commit()
    smtp.temporary = 1
    await _runner(connection, clock).run_until_idle()
    await session.refresh(n)
    assert (n.state, n.attempts) == ("queued", 1)
    assert "451" in n.last_error and n.next_attempt_at == clock.now + timedelta(seconds=30)
    page = await notify.delivery_page(session, state=None, template_key=None, offset=0)
    assert "再送待ち" in page.reasons[n.id]
    clock.advance(10)
    await _runner(connection, clock).run_until_idle()  # not due yet
    assert smtp.messages == []
    clock.advance(21)
    await _runner(connection, clock).run_until_idle()  # the follow-up job runs, the message goes
    await session.refresh(n)
    assert (n.state, n.attempts, n.last_error) == ("sent", 2, None)
    assert smtp.by_message_id() == Counter({n.message_id: 1})


async def test_backoff_doubles_and_a_message_fails_after_the_last_attempt(connection, session, smtp, clock) -> None:
    assert [delivery.backoff(a).total_seconds() for a in (1, 2, 3)] == [30, 60, 120]
    tenant = await _bound(session)
    n = await _send(session, tenant, 1)
    await session.commit()
    smtp.temporary = delivery.MAX_ATTEMPTS
    for _ in range(delivery.MAX_ATTEMPTS):
        await _runner(connection, clock).run_until_idle()
        clock.advance(3600)
    await session.refresh(n)
    assert (n.state, n.attempts) == ("failed", delivery.MAX_ATTEMPTS) and n.failed_at is not None
    assert smtp.messages == []


async def test_a_refused_address_fails_at_once_and_the_others_still_go(connection, session, smtp, clock) -> None:
    tenant = await _bound(session)
    bad = await _send(session, tenant, 1, email_to="nobody@example.jp")
    good = await _send(session, tenant, 2)
    await session.commit()
    smtp.refuse.add("nobody@example.jp")
    await _runner(connection, clock).run_until_idle()
    await session.refresh(bad), await session.refresh(good)
    assert (bad.state, good.state) == ("failed", "sent")
    assert "550" in bad.last_error


async def test_an_unreachable_smtp_server_puts_messages_back_to_wait(connection, session, clock) -> None:
    delivery.configure(delivery.DeliveryConfig(smtp_host="127.0.0.1", smtp_port=_free_port(),
                                               smtp_timeout_seconds=2))
    try:
        tenant = await _bound(session)
        n = await _send(session, tenant, 1)
        await session.commit()
        await _runner(connection, clock).run_until_idle()
        await session.refresh(n)
        assert (n.state, n.attempts) == ("queued", 1) and "接続できません" in n.last_error
    finally:
        delivery.configure(None)


# -- limits ----------------------------------------------------------------------------------


async def test_over_the_rate_messages_wait_with_the_reason_and_go_in_the_next_minute(connection, session, smtp,
                                                                                     clock) -> None:
    cfg = delivery.config()
    delivery.configure(delivery.DeliveryConfig(smtp_host=cfg.smtp_host, smtp_port=cfg.smtp_port,
                                               overrides={SAPPORO: delivery.Limits(per_minute=2, per_day=100)}))
    tenant = await _bound(session)
    for i in range(1, 6):
        await _send(session, tenant, i)
    await session.commit()
    await _runner(connection, clock).run_until_idle()
    assert await _states(session) == Counter({"sent": 2, "queued": 3})
    page = await notify.delivery_page(session, state="queued", template_key=None, offset=0)
    assert "1分あたりの送信上限（2通）" in page.status.blocked_reason
    assert all("1分あたり" in r for r in page.reasons.values())
    clock.advance(61)
    await _runner(connection, clock).run_until_idle()
    assert await _states(session) == Counter({"sent": 4, "queued": 1})
    clock.advance(61)
    await _runner(connection, clock).run_until_idle()
    assert await _states(session) == Counter({"sent": 5})
    assert len(smtp.by_message_id()) == 5


async def test_over_the_daily_allowance_messages_wait_until_tomorrow_not_dropped(connection, session, smtp,
                                                                                 clock) -> None:
    cfg = delivery.config()
    delivery.configure(delivery.DeliveryConfig(smtp_host=cfg.smtp_host, smtp_port=cfg.smtp_port,
                                               overrides={SAPPORO: delivery.Limits(per_minute=100, per_day=3)}))
    tenant = await _bound(session)
    for i in range(1, 6):
        await _send(session, tenant, i)
    await session.commit()
    await _runner(connection, clock).run_until_idle()
    assert await _states(session) == Counter({"sent": 3, "queued": 2})
    status = await delivery.tenant_status(session, SAPPORO)
    assert "本日の送信上限（3通）" in status.blocked_reason and status.resume_at() == delivery.day_start(clock.now) + timedelta(days=1)
    waiting = (await session.scalars(select(Job).where(Job.kind == delivery.KIND, Job.state == "queued"))).all()
    assert [j.run_after for j in waiting] == [status.resume_at()]
    clock.now = status.resume_at() + timedelta(seconds=1)
    await _runner(connection, clock).run_until_idle()
    assert await _states(session) == Counter({"sent": 5})


async def test_one_tenants_limit_does_not_hold_back_another(connection, session, smtp, clock) -> None:
    cfg = delivery.config()
    delivery.configure(delivery.DeliveryConfig(smtp_host=cfg.smtp_host, smtp_port=cfg.smtp_port,
                                               overrides={SAPPORO: delivery.Limits(per_minute=1, per_day=1)}))
    sapporo = await _bound(session)
    for i in range(1, 4):
        await _send(session, sapporo, i)
    hakodate = await _bound(session, HAKODATE)
    for i in range(1, 4):
        await _send(session, hakodate, i)
    await session.commit()
    await _runner(connection, clock).run_until_idle()
    async with unscoped(session, "test: both tenants' states"):
        rows = (await session.execute(select(Notification.lg_code, Notification.state))).all()
    assert Counter(rows) == Counter({(SAPPORO, "sent"): 1, (SAPPORO, "queued"): 2, (HAKODATE, "sent"): 3})


# -- exactly once across a crash -------------------------------------------------------------


class WorkerDied(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the runner handles it."""


@pytest.mark.parametrize("die_after", [0, 3])
async def test_a_worker_crash_between_claim_and_commit_gives_the_recipient_one_message_each(
        connection, session, smtp, clock, die_after) -> None:
    """The worker dies after its claim was committed (送信中) and after the SMTP server accepted
    ``die_after`` messages, before the send chunk commits. Another worker takes the job up
    when its lease lapses and sends what is left of the claim: every notification arrives,
    and any message accepted twice is the same message (same Message-ID, same bytes)."""
    tenant = await _bound(session)
    sent = [await _send(session, tenant, i) for i in range(1, 8)]
    await session.commit()
    accepted = []

    def die(n) -> None:
        accepted.append(n.id)
        if len(accepted) > die_after:
            raise WorkerDied()

    delivery.after_accept = die
    crashed = _runner(connection, clock, "crashed")
    claim = await crashed.claim()
    try:
        with pytest.raises(WorkerDied):
            await crashed.run(claim)
    finally:
        delivery.after_accept = None
    assert await _states(session) == Counter({"sending": 7})  # the claim committed, the sends did not
    before_crash = len(smtp.messages)  # up to a group of messages in flight at once (one per connection)
    assert before_crash >= die_after + 1
    clock.advance(61)  # the job's lease lapses
    assert await _runner(connection, clock, "later").run_until_idle() >= 1
    assert await _states(session) == Counter({"sent": 7})
    by_id = smtp.by_message_id()
    assert set(by_id) == {n.message_id for n in sent}, "every notification arrived"
    for message_id in by_id:
        copies = {m.as_bytes() for m in smtp.messages if m["Message-ID"] == message_id}
        assert len(copies) == 1, "a resent message is the same message, never a different one"
    assert sum(by_id.values()) == 7 + before_crash  # the window: those accepted before the crash, again
    assert await _usage(session, "email") == 7  # each notification metered once, resent or not


async def test_a_claim_whose_job_is_gone_is_taken_up_when_its_lease_lapses(connection, session, smtp,
                                                                          clock) -> None:
    tenant = await _bound(session)
    n = await _send(session, tenant, 1)
    await session.commit()
    await session.execute(update(Notification).values(
        state="sending", claim_token="lost-worker", lease_until=clock.now + delivery.LEASE))
    await session.commit()
    await _runner(connection, clock).run_until_idle()
    assert smtp.messages == []  # still leased to the lost worker
    clock.advance(delivery.LEASE.total_seconds() + 1)
    await _bound(session)
    await _send(session, tenant, 2)  # a new message brings a job that also reclaims the stale one
    await session.commit()
    await _runner(connection, clock).run_until_idle()
    assert await _states(session) == Counter({"sent": 2})
    assert smtp.by_message_id()[n.message_id] == 1


# -- no SMTP server configured ---------------------------------------------------------------


async def test_without_an_smtp_server_messages_wait_and_staff_see_why(connection, session, clock) -> None:
    delivery.configure(delivery.DeliveryConfig(smtp_host=None))
    try:
        tenant = await _bound(session)
        n = await _send(session, tenant, 1)
        await _send(session, tenant, 2)
        await session.commit()
        await _runner(connection, clock).run_until_idle()
        assert await _states(session) == Counter({"queued": 2})
        page = await notify.delivery_page(session, state=None, template_key=None, offset=0)
        assert page.reasons[n.id].startswith("送信設定がありません")
        jobs = (await session.scalars(select(Job).where(Job.kind == delivery.KIND, Job.state == "queued"))).all()
        assert len(jobs) == 1 and jobs[0].run_after == clock.now + delivery.NO_SMTP_RECHECK
    finally:
        delivery.configure(None)


async def test_each_sending_transaction_queues_its_own_delivery_job_once(session) -> None:
    """One job per transaction and tenant, committed with its messages: a job queued by an
    earlier transaction is not relied on (a runner could finish it before this one commits)."""
    tenant = await _bound(session)
    for i in range(1, 4):
        await _send(session, tenant, i)
    await session.commit()
    assert await _count(session, Job, Job.kind == delivery.KIND) == 1
    await _send(session, tenant, 4)
    await session.commit()
    assert await _count(session, Job, Job.kind == delivery.KIND) == 2


async def test_a_rolled_back_savepoint_does_not_take_the_delivery_job_with_it(session) -> None:
    tenant = await _bound(session)
    savepoint = await session.begin_nested()
    await _send(session, tenant, 1)
    await savepoint.rollback()
    await _send(session, tenant, 2)
    await session.commit()
    assert await _count(session, Notification) == 1
    assert await _count(session, Job, Job.kind == delivery.KIND, Job.state == "queued") == 1


async def test_two_transactions_sending_the_same_key_at_once_write_one_notification(app_engine) -> None:
    """A retried request racing the first: the second waits on the unique key, loses, and gets
    the first one's notification without failing its own transaction."""
    import asyncio

    from kiban.core.tenancy import safety  # noqa: F401 - the tenant context in every transaction
    from kiban.kit.db import make_sessionmaker
    from tests.factories import HOKKAIDO

    sessions = make_sessionmaker(app_engine)
    key = f"race:{utcnow().timestamp()}"

    async def send_in(session):
        tenant = await registry_service.tenant_for(session, HOKKAIDO)
        await bind_tenant(session, tenant)
        return await notify.send(session, tenant, template=RECEIPT.key, to=notify.Recipient(email="a@example.jp"),
                                 context=_context(), service="kiban-notify", dedupe_key=key)

    async with sessions() as first, sessions() as second:
        try:
            mine = await send_in(first)
            racing = asyncio.create_task(send_in(second))
            await asyncio.sleep(0.3)  # the second is now waiting on the key (PostgreSQL) or the lock (SQLite)
            await first.commit()
            theirs = await racing
            await second.commit()
            assert theirs.id == mine.id
            assert await _count(second, Notification, Notification.dedupe_key == key) == 1
        finally:
            for s in (first, second):
                await s.rollback()
            async with sessions() as cleanup:
                await bind_tenant(cleanup, await registry_service.tenant_for(cleanup, HOKKAIDO))
                from sqlalchemy import delete
                await cleanup.execute(delete(Notification).where(Notification.dedupe_key == key))
                await cleanup.execute(delete(Job).where(Job.kind == delivery.KIND))
                await cleanup.commit()
