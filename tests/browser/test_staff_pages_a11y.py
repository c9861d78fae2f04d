"""Accessibility of the pages staff use after signing in (axe-core, no serious violations)."""

from __future__ import annotations

import pytest
import pytest_asyncio
from axe_playwright_python.async_playwright import Axe

from tests.browser.conftest import create_committed_staff, sign_in
TENANT = "454311"  # 宮崎県美郷町: no other test reads it


@pytest_asyncio.fixture(loop_scope="session")
async def signed_in_page(page, test_database):
    username, secret = await create_committed_staff(test_database, TENANT, "美郷 点検")
    await sign_in(page, username, secret)
    await page.wait_for_url(f"**/t/{TENANT}/")
    return page


@pytest.mark.parametrize("path", ["/", "/settings", "/staff", "/apikeys", "/grants", "/audit", "/adoptions",
                                  "/adoptions/madoguchi-dx-saas", "/statements", "/disasters",
                                  "/simulator?service=madoguchi-dx-saas&amount=100000000&extra=5"])
async def test_staff_pages_have_no_serious_accessibility_violations(signed_in_page, path) -> None:
    await signed_in_page.goto(f"/t/{TENANT}{path}")
    results = await Axe().run(signed_in_page)
    blocking = [f"{v['id']} ({v['impact']}): {v['help']} -> "
                + "; ".join(", ".join(n["target"]) for n in v["nodes"])
                for v in results.response["violations"] if v["impact"] in {"serious", "critical"}]
    assert blocking == []
