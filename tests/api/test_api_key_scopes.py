"""API keys are usable on the documented API (issue 10, item 6): every permission the key page
offers has an /api route that requires it, every read permission a documented route requires can
be given to a key, and the permissions withheld from keys are named with their reason, never
offered and refused if sent anyway."""

from __future__ import annotations

import re

from kiban.core.identity.permissions import API_KEY_GRANTABLE, API_KEY_WITHHELD, Permission
from kiban.kit.openapi import route_access
from kiban.main import create_app
from tests.core.test_route_permissions import api_routes
from tests.factories import AICHI, SAPPORO


def _api_permissions() -> dict[str, set[tuple[str, str]]]:
    """permission -> {(method, path)} of the documented /api routes that require it."""
    found: dict[str, set[tuple[str, str]]] = {}
    for route in api_routes(create_app()):
        if not route.path.startswith("/api/") or not route.original_route.include_in_schema:
            continue
        kind, permission = route_access(route)
        if kind == "staff":
            for method in route.methods - {"HEAD", "OPTIONS"}:
                found.setdefault(permission, set()).add((method, route.path))
    return found


def test_every_permission_the_key_page_offers_has_an_api_route() -> None:
    routes = _api_permissions()
    missing = [str(p) for p in API_KEY_GRANTABLE if str(p) not in routes]
    assert missing == [], f"offered to keys but no /api route requires them: {missing}"


def test_every_permission_an_api_route_requires_can_be_held_by_a_key_or_is_withheld_for_a_reason() -> None:
    grantable = {str(p) for p in API_KEY_GRANTABLE}
    withheld = {str(p) for p in API_KEY_WITHHELD}
    routes = _api_permissions()
    unusable = {p: sorted(r) for p, r in routes.items() if p not in grantable | withheld}
    assert unusable == {}, f"/api routes no key can call and no reason given: {unusable}"
    reads = {p for p in routes if p.endswith(".read")}
    assert reads <= grantable
    assert grantable.isdisjoint(withheld)
    assert all(API_KEY_WITHHELD.values())


async def test_withheld_permissions_are_not_offered_and_are_refused(staff) -> None:
    admin = await staff(SAPPORO, "admin")
    page = await admin.client.get(f"/t/{SAPPORO}/apikeys")
    offered = set(re.findall(r'name="permissions" value="([^"]+)"', page.text))
    assert offered == {str(p) for p in API_KEY_GRANTABLE}
    for permission in API_KEY_WITHHELD:
        refused = await admin.client.post(f"/t/{SAPPORO}/apikeys", data={
            "name": "管理用", "kind": "live", "permissions": [str(permission)], "rate_limit_per_minute": "60",
            "csrf_token": admin.csrf})
        assert refused.status_code == 422 and 'id="new-api-key"' not in refused.text


async def _key(admin, lg_code: str, *permissions: Permission) -> dict[str, str]:
    page = await admin.client.post(f"/t/{lg_code}/apikeys", data={
        "name": "連携", "kind": "live", "permissions": [str(p) for p in permissions],
        "rate_limit_per_minute": "600", "csrf_token": admin.csrf})
    assert page.status_code == 200, page.text
    token = re.search(r'<code id="new-api-key">([^<]+)</code>', page.text).group(1)
    return {"Authorization": f"Bearer {token}"}


async def test_a_key_holding_every_offered_permission_reads_the_tenant_twins(staff, client) -> None:
    admin = await staff(SAPPORO, "admin")
    key = await _key(admin, SAPPORO, *API_KEY_GRANTABLE)
    for path in ("/audit", "/staff", "/settings/history", "/adoptions", "/statements"):
        answer = await client.get(f"/api/v1/t/{SAPPORO}{path}", headers=key)
        assert answer.status_code == 200, (path, answer.text[:200])
    # Managing people, keys and grants stays with a signed-in person.
    for path in ("/apikeys", "/grants"):
        assert (await client.get(f"/api/v1/t/{SAPPORO}{path}", headers=key)).status_code == 403
    secretariat = await staff(AICHI, "admin")
    schedules = await _key(secretariat, AICHI, Permission.costs_schedule_manage)
    answer = await client.get(f"/api/v1/t/{AICHI}/consortia/aichi-e-gov", headers=schedules)
    assert answer.status_code == 200 and answer.json()["consortium"]["id"] == "aichi-e-gov"
