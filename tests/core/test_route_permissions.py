"""Every route declares the permission it needs, or that it is public."""

from __future__ import annotations

from fastapi import routing
from fastapi.routing import APIRoute

from kiban.core.identity.dependencies import _public
from kiban.main import create_app


def _calls(dependant) -> list:
    found = [dependant.call]
    for sub in dependant.dependencies:
        found.extend(_calls(sub))
    return found


def api_routes(app) -> list:
    """Every API route with its effective dependencies, including those its routers add
    (FastAPI keeps included routers nested; iter_route_contexts flattens them as OpenAPI does)."""
    return [rc for rc in routing.iter_route_contexts(app.routes) if isinstance(rc.original_route, APIRoute)]


def declared(route) -> str | None:
    for call in _calls(route.dependant):
        if call is _public:
            return "public"
        permission = getattr(call, "__kiban_permission__", None)
        if permission is not None:
            return str(permission)
    return None


def test_every_route_requires_a_permission_or_is_explicitly_public() -> None:
    app = create_app()
    routes = api_routes(app)
    assert len(routes) > 10
    undeclared = [f"{sorted(r.methods)} {r.path}" for r in routes if declared(r) is None]
    assert undeclared == [], f"routes without require(...) or PUBLIC: {undeclared}"


# POSTs that compute an answer from the request body alone: they read and write no stored data.
PURE_CALCULATIONS = {"/api/v1/costs/allocations"}
# 電子申請: anyone may answer a published form without signing in (the form's own rules, its
# CSRF token; procedures that need identity check the My Number Card signature inside).
PUBLIC_FORM_ANSWERS = {"/f/{lg_code}/{slug}/confirm", "/f/{lg_code}/{slug}/submit"}


def test_writes_are_never_public() -> None:
    app = create_app()
    public_writes = [
        f"{sorted(r.methods)} {r.path}" for r in api_routes(app)
        if r.methods & {"POST", "PUT", "PATCH", "DELETE"}
        and declared(r) == "public" and not r.path.startswith(("/signin", "/signout", "/invite"))
        and r.path not in PURE_CALCULATIONS and r.path not in PUBLIC_FORM_ANSWERS
    ]
    assert public_writes == []


def test_settings_history_and_edit_need_their_permissions() -> None:
    app = create_app()
    by_path = {(r.path, tuple(sorted(r.methods))): declared(r) for r in api_routes(app)}
    assert by_path[("/api/v1/t/{lg_code}/settings/history", ("GET",))] == "tenancy.setting.read"
    assert by_path[("/t/{lg_code}/settings/{key}", ("POST",))] == "tenancy.setting.update"


def test_every_html_form_post_checks_its_csrf_token() -> None:
    from kiban.kit.csrf import verify_csrf

    app = create_app()
    unprotected = [
        r.path for r in api_routes(app)
        if r.methods & {"POST", "PUT", "PATCH", "DELETE"} and not r.path.startswith("/api/")
        and verify_csrf not in _calls(r.dependant)
    ]
    assert unprotected == []
