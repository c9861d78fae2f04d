"""サインインの保護 (issue 10, item 4), as an attacker and as the clerk experience it:

- guessing slows down per (typed name, address) and per address, never per account alone,
  so a stranger cannot keep a clerk out, and a try that must still wait is not evaluated;
- every refusal (unknown name, wrong password, invitation not yet accepted, locked account)
  runs exactly one argon2 verification and the same database statements, with one message;
- the session id changes at the password step, the TOTP step and when switching
  organisation, and the CSRF token with it, so a planted value is worthless after sign-in;
- the GビズID button is offered only where GビズID is configured.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import event, select

from kiban.core.identity import credentials
from kiban.core.identity import service as identity_service
from kiban.core.identity.models import Membership, StaffCredential, WebSession
from kiban.kit.db import utcnow
from tests.conftest import csrf_of, password_step
from tests.factories import HOKKAIDO, SAPPORO

PASSWORD = "correct horse battery staple"
ATTACKER = "198.51.100.7"
OWNER = "203.0.113.20"


@pytest_asyncio.fixture(loop_scope="session")
async def client_at(app) -> AsyncIterator:
    """``client_at("198.51.100.7")``: a browser of its own, connecting from that address."""
    clients: list[httpx.AsyncClient] = []

    def make(address: str) -> httpx.AsyncClient:
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 50000)),
                              base_url="http://testserver")
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()


class Clock:
    """Time for the throttle, moved by the test instead of waited for."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app) -> Clock:
    from kiban.core.identity.service import SignInThrottle

    clock = Clock()
    app.state.sign_in_throttle = SignInThrottle(clock=clock)
    return clock


@pytest.fixture
def argon2_runs(monkeypatch) -> list[bytes]:
    """Every argon2 verification actually computed (the library's low-level call, counted and
    passed through; a hash it cannot parse never gets that far)."""
    import argon2._password_hasher as hasher_module

    runs: list[bytes] = []
    real = hasher_module.verify_secret

    def counted(hash_, secret, type_):
        runs.append(hash_)
        return real(hash_, secret, type_)

    monkeypatch.setattr(hasher_module, "verify_secret", counted)
    return runs


async def _account(session, username: str, *, lg_code: str = SAPPORO, enrolled: bool = True) -> bytes:
    secret = credentials.new_totp_secret()
    await identity_service.create_staff(session, username=username, display_name="札幌 守る人", password=PASSWORD,
                                        lg_code=lg_code, role="admin", granted_by="test",
                                        totp_secret=secret if enrolled else None)
    await session.commit()
    return secret


async def _credential(session, username: str) -> StaffCredential:
    credential = (await session.scalars(select(StaffCredential).where(StaffCredential.username == username))).one()
    await session.refresh(credential)
    return credential


def _alert(response: httpx.Response) -> str:
    found = re.search(r'<div class="alert alert--error" role="alert">(.*?)</div>', response.text, re.S)
    assert found, response.text
    return found.group(1)


async def _sign_in_fully(client: httpx.AsyncClient, username: str, secret: bytes, *, at: float | None = None):
    first = await password_step(client, username, PASSWORD)
    assert first.status_code == 303, first.text
    return await client.post("/signin/totp", data={"code": credentials.totp_code(secret, at),
                                                   "csrf_token": csrf_of(client)})


# -- throttling ------------------------------------------------------------------------------

async def test_guessing_from_one_address_never_locks_the_owner_out(session, client_at) -> None:
    username = "protect-owner"
    secret = await _account(session, username)
    attacker = client_at(ATTACKER)
    for _ in range(12):
        await password_step(attacker, username, "a wrong guess!!")
    assert (await password_step(attacker, username, PASSWORD)).status_code == 429
    # The owner, at their own desk, signs in as if nothing had happened.
    owner = client_at(OWNER)
    done = await _sign_in_fully(owner, username, secret)
    assert done.status_code == 303 and done.headers["location"] == f"/t/{SAPPORO}/"
    credential = await _credential(session, username)
    assert credential.failed_count == 0 and credential.locked_until is None


async def test_a_name_and_address_wait_longer_after_each_failure_and_are_heard_after_the_wait(
        session, client_at, clock, argon2_runs) -> None:
    username = "protect-pair"
    secret = await _account(session, username)
    browser = client_at(ATTACKER)
    for _ in range(2):
        assert "次は" not in _alert(await password_step(browser, username, "a wrong guess!!"))
    third = await password_step(browser, username, "a wrong guess!!")
    assert third.status_code == 401 and "次は4秒後から試せます" in _alert(third)
    assert third.headers["retry-after"] == "4"
    # Within the wait even the right password is not heard: the try is not evaluated at all.
    runs_before = len(argon2_runs)
    early = await password_step(browser, username, PASSWORD)
    assert early.status_code == 429 and early.headers["retry-after"] == "4"
    assert "4秒後まで受け付けません" in _alert(early) and 'value="protect-pair"' in early.text
    assert len(argon2_runs) == runs_before and "kiban_session" not in early.headers.get("set-cookie", "")
    clock.now += 4
    fourth = await password_step(browser, username, "a wrong guess!!")
    assert "次は8秒後から試せます" in _alert(fourth)  # and longer each time
    clock.now += 8
    done = await _sign_in_fully(browser, username, secret)
    assert done.status_code == 303
    # Success starts the pair afresh: a typo now costs no wait.
    await browser.post("/signout", data={"csrf_token": csrf_of(browser)})
    again = await password_step(browser, username, "a wrong guess!!")
    assert again.status_code == 401 and "次は" not in _alert(again)


async def test_an_address_trying_many_names_is_slowed_and_other_addresses_are_not(session, client_at, clock) -> None:
    sprayer = client_at(ATTACKER)
    for n in range(20):
        refused = await password_step(sprayer, f"sprayed-{n}", "Spring2026!!")
        assert refused.status_code == 401, n
    assert (await password_step(sprayer, "sprayed-new", "Spring2026!!")).status_code == 429
    elsewhere = await password_step(client_at(OWNER), "sprayed-new", "Spring2026!!")
    assert elsewhere.status_code == 401 and "次は" not in _alert(elsewhere)
    clock.now += 4
    assert (await password_step(sprayer, "sprayed-new", "Spring2026!!")).status_code == 401


async def test_an_ipv6_host_counts_as_its_whole_64(session, client_at, clock) -> None:
    """One IPv6 host may use any address of its /64: changing the last bits changes nothing."""
    for n in range(3):
        await password_step(client_at(f"2001:db8:1:2::{n + 1}"), "protect-v6", "a wrong guess!!")
    assert (await password_step(client_at("2001:db8:1:2::ffff"), "protect-v6", PASSWORD)).status_code == 429
    assert (await password_step(client_at("2001:db8:1:3::1"), "protect-v6", PASSWORD)).status_code == 401


async def test_throttling_answers_the_same_for_an_unknown_name(session, client_at, clock) -> None:
    await _account(session, "protect-known")
    known, unknown = client_at(ATTACKER), client_at(OWNER)
    for _ in range(4):
        a = await password_step(known, "protect-known", "a wrong guess!!")
        b = await password_step(unknown, "protect-unknown", "a wrong guess!!")
        assert a.status_code == b.status_code and _alert(a) == _alert(b)
        assert a.headers.get("retry-after") == b.headers.get("retry-after")


# -- the same answer after the same work -----------------------------------------------------

async def _invited(session, username: str) -> None:
    from kiban.core.audit import service as audit
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.context import as_tenant

    async with as_tenant(session, await registry_service.tenant_for(session, SAPPORO)):
        await identity_service.invite_staff(session, "test", audit.Actor("operator", "test"), username=username,
                                            display_name="札幌 招待中", role="staff")
    await session.commit()


async def test_every_refusal_runs_argon2_once_and_the_same_statements(
        session, connection, client_at, argon2_runs) -> None:
    await _account(session, "protect-wrong")
    await _account(session, "protect-locked")
    locked = await _credential(session, "protect-locked")
    locked.failed_count, locked.locked_until = 5, utcnow() + timedelta(minutes=30)
    await session.commit()
    await _invited(session, "protect-invited")
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement.split()[0].upper())

    cases = {"unknown": ("protect-nobody", PASSWORD), "wrong": ("protect-wrong", "a wrong guess!!"),
             "locked": ("protect-locked", "a wrong guess!!"), "invited": ("protect-invited", "anything at all!")}
    # The platform's log exists in any running deployment: its first entry is not under test.
    await password_step(client_at("192.0.2.99"), "protect-warm-up", PASSWORD)
    alerts, runs, work = {}, {}, {}
    for n, (case, (username, password)) in enumerate(cases.items()):
        browser = client_at(f"192.0.2.{n + 1}")
        await browser.get("/signin")
        argon2_runs.clear()
        statements.clear()
        event.listen(connection.sync_connection, "before_cursor_execute", seen)
        try:
            refused = await browser.post("/signin", data={"username": username, "password": password,
                                                          "csrf_token": csrf_of(browser)})
        finally:
            event.remove(connection.sync_connection, "before_cursor_execute", seen)
        assert refused.status_code == 401, case
        alerts[case], runs[case] = _alert(refused), len(argon2_runs)
        work[case] = sorted(s for s in statements if s not in ("SAVEPOINT", "RELEASE", "ROLLBACK"))
    assert runs == dict.fromkeys(cases, 1)
    assert len(set(alerts.values())) == 1
    assert work["unknown"] == work["wrong"] == work["locked"] == work["invited"], work


async def test_the_invited_marker_costs_a_full_verification() -> None:
    """``!invited`` is no hash: checked as such it failed in microseconds, telling invited
    accounts apart by timing."""
    import argon2._password_hasher as hasher_module

    runs = []
    real = hasher_module.verify_secret
    hasher_module.verify_secret = lambda *a: runs.append(1) or real(*a)
    try:
        assert credentials.verify_password("!invited", "!invited") is False
        assert credentials.verify_password(None, "x") is False
        assert credentials.verify_password("$argon2id$broken", "x") is False
    finally:
        hasher_module.verify_secret = real
    assert len(runs) == 3


# -- a new session id and CSRF token at each privilege change ---------------------------------

def _planted(client_at, token: str) -> httpx.AsyncClient:
    """Another browser holding a session id seen (or planted) earlier."""
    thief = client_at(ATTACKER)
    thief.cookies.set("kiban_session", token)
    return thief


async def test_the_totp_step_issues_a_new_session_and_the_old_one_opens_nothing(session, client_at) -> None:
    secret = await _account(session, "protect-rotate")
    victim = client_at(OWNER)
    first = await password_step(victim, "protect-rotate", PASSWORD)
    after_password = victim.cookies.get("kiban_session")
    assert first.status_code == 303 and after_password
    done = await victim.post("/signin/totp", data={"code": credentials.totp_code(secret), "csrf_token": csrf_of(victim)})
    assert done.status_code == 303
    after_totp = victim.cookies.get("kiban_session")
    assert after_totp != after_password
    # Whoever saw (or planted) the id of the half-signed-in session gets nothing from it.
    thief = _planted(client_at, after_password)
    assert (await thief.get(f"/api/v1/t/{SAPPORO}/settings/history")).status_code == 401
    assert (await thief.get("/signin/totp")).headers["location"] == "/signin"
    assert (await victim.get(f"/api/v1/t/{SAPPORO}/settings/history")).status_code == 200


async def test_switching_organisation_issues_a_new_session(session, client_at) -> None:
    from kiban.core.identity.repository import MembershipRepository
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.context import as_tenant

    secret = await _account(session, "protect-two")
    credential = await _credential(session, "protect-two")
    async with as_tenant(session, await registry_service.tenant_for(session, HOKKAIDO)):
        MembershipRepository(session).add(Membership(principal_id=credential.principal_id, role="viewer",
                                                     granted_by="test", granted_at=utcnow()))
        await session.flush()
    await session.commit()
    browser = client_at(OWNER)
    assert (await _sign_in_fully(browser, "protect-two", secret)).headers["location"] == "/signin/organization"
    before, csrf_before = browser.cookies.get("kiban_session"), csrf_of(browser)
    chosen = await browser.post("/signin/organization", data={"lg_code": SAPPORO, "csrf_token": csrf_before})
    assert chosen.status_code == 303
    assert browser.cookies.get("kiban_session") != before and csrf_of(browser) != csrf_before
    switched = await browser.post("/signin/organization", data={"lg_code": HOKKAIDO, "csrf_token": csrf_of(browser)})
    assert switched.headers["location"] == f"/t/{HOKKAIDO}/"
    thief = _planted(client_at, before)
    assert (await thief.get(f"/api/v1/t/{SAPPORO}/settings/history")).status_code == 401
    live = (await session.scalars(select(WebSession).where(WebSession.principal_id == credential.principal_id,
                                                           WebSession.revoked_at.is_(None)))).all()
    assert [s.acting_lg_code for s in live] == [HOKKAIDO]


async def test_signing_in_ends_the_session_the_browser_had(session, client_at) -> None:
    secret = await _account(session, "protect-first")
    await _account(session, "protect-second")
    browser = client_at(OWNER)
    await _sign_in_fully(browser, "protect-first", secret)
    first = browser.cookies.get("kiban_session")
    assert (await password_step(browser, "protect-second", PASSWORD)).status_code == 303
    old = _planted(client_at, first)
    assert (await old.get(f"/api/v1/t/{SAPPORO}/settings/history")).status_code == 401


async def test_a_csrf_token_planted_before_sign_in_is_refused_after_it(session, client_at) -> None:
    secret = await _account(session, "protect-csrf")
    victim = client_at(OWNER)
    planted = "planted-by-a-neighbour-" + "x" * 20
    victim.cookies.set("kiban_csrf", planted, domain="testserver.local")
    page = await victim.get("/signin")
    assert f'value="{planted}"' in page.text  # before sign-in the planted value is the browser's
    first = await victim.post("/signin", data={"username": "protect-csrf", "password": PASSWORD,
                                               "csrf_token": planted})
    assert first.status_code == 303 and csrf_of(victim) != planted
    step = await victim.post("/signin/totp", data={"code": credentials.totp_code(secret), "csrf_token": planted})
    assert step.status_code == 403
    after_password = csrf_of(victim)
    done = await victim.post("/signin/totp", data={"code": credentials.totp_code(secret),
                                                   "csrf_token": after_password})
    assert done.status_code == 303 and csrf_of(victim) not in (planted, after_password)
    # The attacker's form, with the value they planted, now changes nothing.
    forged = await victim.post(f"/t/{SAPPORO}/settings/childcare.application_deadline_day",
                               data={"value": "3", "expected_version": "0", "csrf_token": planted})
    assert forged.status_code == 403
    page = await victim.get(f"/t/{SAPPORO}/settings")
    assert csrf_of(victim) in page.text and planted not in page.text


@pytest.mark.parametrize(("cookie", "sent"), [("x", "x"), ("short-token", "short-token"), ("a" * 43, "ｘ" * 30)])
async def test_a_short_or_foreign_csrf_cookie_is_never_accepted(client_at, cookie, sent) -> None:
    """A cookie we would not have issued (too short) is replaced, and a form quoting it is
    refused; a token in other characters is refused too, not a 500."""
    browser = client_at(OWNER)
    browser.cookies.set("kiban_csrf", cookie)
    refused = await browser.post("/signin", data={"username": "protect-x", "password": PASSWORD,
                                                  "csrf_token": sent})
    assert refused.status_code == 403


# -- GビズID only where it works ----------------------------------------------------------------

async def test_the_business_button_shows_only_where_gbizid_is_configured(client, monkeypatch) -> None:
    from kiban.kit.settings import get_settings

    page = (await client.get("/signin")).text
    assert 'href="/signin/business"' not in page and "GビズID" not in page
    assert 'href="/signin/card"' in page
    monkeypatch.setenv("KIBAN_GBIZID_ISSUER", "https://gbiz.example")
    monkeypatch.setenv("KIBAN_GBIZID_CLIENT_ID", "kiban")
    get_settings.cache_clear()
    try:
        assert 'href="/signin/business"' in (await client.get("/signin")).text
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
