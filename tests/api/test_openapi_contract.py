"""The API is a contract (issue 10, item 6): the OpenAPI document declares every parameter, the
security of every operation and every error it can answer (problem+json), and schemathesis, with
all its checks, finds nothing against the live app: anonymous, as 札幌市's administrator signed
in, and with an API key holding every permission a key can hold.

schemathesis drives the app from a thread of its own (its ASGI client runs an event loop there).
The app's database session lives on the test's event loop, inside the test's rolled-back
transaction, so ``LoopBridge`` hands each request over to that loop: whatever schemathesis
writes is gone after the test, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import re

import pytest

from kiban.kit.openapi import route_access
from tests.factories import SAPPORO

OPENAPI = "/api/v1/openapi.json"
PROBLEM = "application/problem+json"
METHODS = {"get", "put", "post", "patch", "delete"}


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


@pytest.fixture
def document(app) -> dict:
    return app.openapi()


# -- the document, read statically ----------------------------------------------------------

def test_every_operation_declares_each_parameter_of_its_path(document) -> None:
    missing = [
        f"{method.upper()} {path}: {name}"
        for path, method, operation in _operations(document)
        for name in re.findall(r"{([^}]+)}", path)
        if not any(p["name"] == name and p["in"] == "path" and p.get("required")
                   for p in operation.get("parameters", []))
    ]
    assert missing == []


def test_lg_code_is_declared_as_a_six_digit_code(document) -> None:
    tenant_operations = [(p, m, o) for p, m, o in _operations(document) if "{lg_code}" in p]
    assert len(tenant_operations) >= 5
    for path, method, operation in tenant_operations:
        (lg_code,) = [p for p in operation["parameters"] if p["name"] == "lg_code"]
        assert lg_code["schema"]["pattern"] == "^[0-9]{6}$", (method, path)


def test_security_schemes_are_the_session_cookie_and_the_api_key(document) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["sessionCookie"] == {**schemes["sessionCookie"], "type": "apiKey", "in": "cookie",
                                        "name": "kiban_session"}
    assert schemes["apiKey"]["type"] == "http" and schemes["apiKey"]["scheme"] == "bearer"


def test_every_operation_declares_its_security_as_its_route_enforces_it(app, document) -> None:
    from fastapi import routing
    from fastapi.routing import APIRoute

    expected = {"public": [], "staff": [{"sessionCookie": []}, {"apiKey": []}], "api_key": [{"apiKey": []}],
                "resident": [{"sessionCookie": []}], "optional": [{}, {"sessionCookie": []}]}
    seen = 0
    for context in routing.iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute) or not context.original_route.include_in_schema:
            continue
        kind, _ = route_access(context)
        for method in context.methods:
            operation = document["paths"][context.path_format][method.lower()]
            assert "security" in operation, f"{method} {context.path_format}"
            assert operation["security"] == expected[kind], f"{method} {context.path_format}"
            seen += 1
    assert seen == len(list(_operations(document)))
    history = document["paths"]["/api/v1/t/{lg_code}/settings/history"]["get"]
    assert history["x-kiban-permission"] == "tenancy.setting.read"
    assert "テナント設定" in history["description"]
    assert document["paths"]["/api/v1/t/{lg_code}/whoami"]["get"]["security"] == [{"apiKey": []}]
    assert document["paths"]["/api/v1/organizations"]["get"]["security"] == []


def _statuses(operation) -> set[int]:
    return {int(s) for s in operation["responses"] if s.isdigit()}


def test_every_error_status_is_problem_json_with_the_shared_schema(document) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert problem["properties"]["errors"]["type"] == "array"
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, method, operation in _operations(document):
        assert operation["responses"], f"{method} {path} declares no response"
        assert any(200 <= s < 300 for s in _statuses(operation)), f"{method} {path}"
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert list(response["content"]) == [PROBLEM], f"{method} {path} {status}"
                assert response["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
                assert response["description"].isascii() is False, f"{method} {path} {status}"


def test_error_statuses_follow_from_how_each_route_is_reached(document) -> None:
    for path, method, operation in _operations(document):
        statuses = _statuses(operation)
        label = f"{method.upper()} {path}"
        guarded = operation["security"] not in ([], [{}, {"sessionCookie": []}])
        assert (401 in statuses) == guarded, label
        if {"apiKey": []} in operation["security"]:
            assert 429 in statuses and operation["responses"]["429"]["headers"]["Retry-After"]["required"], label
        if {"sessionCookie": []} in operation["security"] and {"apiKey": []} in operation["security"]:
            assert 403 in statuses, label
        if "{" in path:
            assert {404, 422} <= statuses, label
        if operation.get("parameters") or "requestBody" in operation:
            assert 422 in statuses, label
        if "requestBody" in operation:
            assert {400, 413} <= statuses, label


def test_a_route_declares_the_conflict_it_can_raise(document) -> None:
    put = document["paths"]["/api/v1/t/{lg_code}/adoptions/{service_id}"]["put"]
    assert put["responses"]["409"]["content"][PROBLEM]


async def test_the_live_validation_error_is_what_the_document_says(client, document) -> None:
    response = await client.get("/api/v1/organizations", params={"limit": "many"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    declared = document["components"]["schemas"]["Problem"]
    assert set(declared["required"]) <= set(body)
    assert body["errors"] and {"field", "message"} <= set(body["errors"][0])


async def test_a_wrong_method_is_told_every_method_the_url_answers(client, document) -> None:
    """Starlette's 405 named only the first route matching the path (GET where GET and POST exist)."""
    shared = [(path, {m.upper() for m in item if m in METHODS}) for path, item in document["paths"].items()
              if len(set(item) & METHODS) >= 2]
    assert shared, "no URL answers two methods"
    for path, methods in shared:
        url = re.sub(r"{[^}]+}", "x", path.replace("{lg_code}", SAPPORO))
        response = await client.request("PATCH" if "PATCH" not in methods else "TRACE", url)
        assert response.status_code == 405, url
        assert response.headers["content-type"].startswith(PROBLEM)
        assert set(response.headers["allow"].split(", ")) == methods, url
