"""Every tenant route that is not public answers 404 to staff of another organisation, whatever
the rest of the URL says: pages, downloads, API twins, and form posts with a valid CSRF token.
New modules are covered the moment they add a route."""

from __future__ import annotations

import re

import pytest

from kiban.main import create_app
from tests.core.test_route_permissions import api_routes, declared
from tests.factories import HAKODATE, SAPPORO

DUMMY = "00000000-0000-4000-8000-000000000000"
# Answers API keys only (a staff session is 401 there); keys of another organisation are tested
# in test_api_keys.py.
API_KEY_ONLY = {"/api/v1/t/{lg_code}/whoami"}


def _tenant_routes() -> list[tuple[str, str]]:
    found = []
    for route in api_routes(create_app()):
        path = route.path
        if "{lg_code}" not in path or declared(route) in ("public", "identity.self.read") or path in API_KEY_ONLY:
            continue
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            found.append((method, path))
    return found


ROUTES = _tenant_routes()


def test_the_walk_covers_the_modules() -> None:
    paths = {path for _, path in ROUTES}
    for expected in ("/t/{lg_code}/adoptions", "/t/{lg_code}/statements/{schedule_id}.{fmt}",
                     "/t/{lg_code}/disasters/{disaster_id}/records/{record_id}", "/api/v1/t/{lg_code}/adoptions",
                     "/t/{lg_code}/consortia/{consortium_id}/schedules", "/t/{lg_code}/audit"):
        assert expected in paths
    assert len(ROUTES) > 40


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_staff_of_another_organisation_get_404(staff, method, path) -> None:
    sapporo = await staff(SAPPORO, "admin")
    url = path.replace("{lg_code}", HAKODATE).replace("{fmt}", "csv")
    url = re.sub(r"\{[a-z_]+\}", DUMMY, url)
    if method == "GET":
        response = await sapporo.client.get(url)
    elif path.startswith("/api/"):
        response = await sapporo.client.request(method, url, json={})
    else:
        response = await sapporo.client.request(method, url, data={"csrf_token": sapporo.csrf})
    assert response.status_code == 404, (method, url, response.status_code, response.text[:200])
