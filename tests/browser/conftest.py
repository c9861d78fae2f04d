"""A real server and a real browser: uvicorn serving the test database's committed data (the
seeded registry) on a free loopback port, and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
import uvicorn

from kiban.core.jobs.kinds import KINDS
from kiban.kit.settings import Settings
from kiban.main import create_app
from tests.conftest import BACKEND

CHROMIUM = os.environ.get("KIBAN_CHROMIUM", "/usr/bin/chromium")
BROWSER_REQUIRED = bool(os.environ.get("CI") or os.environ.get("KIBAN_REQUIRE_BROWSER"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(test_database) -> Iterator[str]:
    port = _free_port()
    # The server's job runner runs the application's kinds only: tests that commit jobs of their
    # own kinds to this database (tests/core/test_jobs.py) count what their runners ran.
    kinds = ",".join(k for k in KINDS if not k.startswith("test."))
    app = create_app(Settings(database_url=test_database.app_url, log_level="WARNING", jobs_kinds=kinds,
                              matcher_warm=False))  # tests reset matchers (matching.forget) as they go
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, name="kiban-live-server", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the live server did not start")
        time.sleep(0.1)
    yield base_url
    server.should_exit = True
    thread.join(timeout=10)


# Which databases the browser tests run on (default: whichever the pass uses). scripts/test, running
# both passes side by side, runs them in the SQLite pass only (the embedded default every demo
# uses) while the PostgreSQL pass runs the contract fuzz: both twice did not fit CI's 30 minutes.
BROWSER_ON = {b.strip() for b in os.environ.get("KIBAN_BROWSER_ON", BACKEND).split(",")}


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser():
    if BACKEND not in BROWSER_ON:
        pytest.skip(f"browser tests run on {os.environ.get('KIBAN_BROWSER_ON')} in this run")
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if BROWSER_REQUIRED:
            pytest.fail(f"{message}; browser tests are required in CI")
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                    args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser, live_server) -> AsyncIterator:
    context = await browser.new_context(base_url=live_server, locale="ja-JP")
    tab = await context.new_page()
    yield tab
    await context.close()


@pytest_asyncio.fixture(loop_scope="session", autouse=True)
async def leave_no_counts(test_database):
    """After each browser test, the notifications, notices, usage counts and delivery jobs it
    committed go: the unit tests that run later in the same database count them from zero (the
    rest of what browser tests commit stays, in tenants no unit test counts)."""
    yield
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession

    from kiban.kit.db import create_engine

    engine = create_engine(test_database.owner_url, pool=False)
    try:
        async with AsyncSession(engine) as session:
            await session.execute(text("DELETE FROM job WHERE kind IN ('notify.deliver', 'surveys.reminders')"))
            for table in ("notify_notice", "notification", "usage_event_key", "usage_counter"):
                await session.execute(text(f"DELETE FROM {table}"))
            await session.commit()
    finally:
        await engine.dispose()


STAFF_PASSWORD = "correct horse battery staple"


async def create_committed_staff(test_database, lg_code: str, display_name: str) -> tuple[str, bytes]:
    """A staff admin committed to the test database (the live server reads committed data).
    Use a tenant no other test reads. Returns (username, TOTP secret)."""
    import uuid

    from sqlalchemy.ext.asyncio import AsyncSession

    from kiban.core.identity import credentials
    from kiban.core.identity import service as identity_service
    from kiban.kit.db import create_engine

    username = f"browser-{uuid.uuid4().hex[:8]}"
    secret = credentials.new_totp_secret()
    engine = create_engine(test_database.owner_url, pool=False)
    try:
        async with AsyncSession(engine) as session:
            await identity_service.create_staff(session, username=username, display_name=display_name,
                                                password=STAFF_PASSWORD, lg_code=lg_code, role="admin",
                                                granted_by="browser test", totp_secret=secret)
            await session.commit()
    finally:
        await engine.dispose()
    return username, secret


async def sign_in(page, username: str, secret: bytes) -> None:
    """Sign in through the real pages: password, then the current TOTP code."""
    from kiban.core.identity import credentials

    await page.goto("/signin")
    await page.get_by_label("ユーザー名").fill(username)
    await page.get_by_label("パスワード").fill(STAFF_PASSWORD)
    await page.get_by_role("button", name="次へ").click()
    await page.get_by_label("確認コード（6桁）").fill(credentials.totp_code(secret))
    await page.get_by_role("button", name="サインイン").click()
