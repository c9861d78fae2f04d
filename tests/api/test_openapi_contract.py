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

import asyncio
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import schemathesis
from schemathesis.engine import events
from schemathesis.engine import from_schema as engine_for

from kiban.core.identity.apikeys import RateLimiter
from kiban.core.identity.permissions import API_KEY_GRANTABLE
from kiban.kit.openapi import route_access
from kiban.kit.shared import MemoryState
from kiban.main import create_app
from tests.conftest import BACKEND
from tests.factories import SAPPORO

OPENAPI = "/api/v1/openapi.json"
PROBLEM = "application/problem+json"
METHODS = {"get", "put", "post", "patch", "delete"}

SEED = 20240410
MAX_EXAMPLES = 5  # per operation and identity: three new modules took the fuzz from 6,300 to 10,200 requests per identity (12 examples), and CI past its 30 minutes

# Checks switched off for single operations, each with the defect schemathesis still finds there
# (their routes belong to other work in progress; reported to its owners). Every other check
# still runs on them. The list must only shrink.
KNOWN_FAILING: dict[str, tuple[str, str]] = {}

# Operations whose well-formed input can still be refused with 422 for a rule JSON Schema cannot
# state; schemathesis's positive_data_acceptance accepts 422 there and nowhere else.
SEMANTIC_422: dict[str, str] = {
    "GET /api/v1/organizations/{code}": "団体コードの検査数字（JIS X 0402）",
    "POST /api/v1/costs/allocations": "按分の基準（人口・利用量）の合計が0のときは配分できない",
    "PUT /api/v1/t/{lg_code}/adoptions/{service_id}": "vendor_id はそのサービスの事業者として登録されたものだけ",
    "PUT /api/v1/t/{lg_code}/settings/{key}": "value の型と範囲は設定項目（key）ごとに決まる",
}


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


@pytest.fixture(scope="module")
def document() -> dict:
    # The document follows from the routes alone, not from a test's database or settings: built
    # once for the module (about 2 s each time) and never changed by the tests that read it.
    return create_app().openapi()


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
                "resident": [{"sessionCookie": []}], "business": [{"sessionCookie": []}], "optional": [{}, {"sessionCookie": []}]}
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
    resources = [(path, {m.upper() for m in item if m in METHODS}) for path, item in document["paths"].items()]
    assert resources
    for path, methods in resources:
        url = re.sub(r"{[^}]+}", "x", path.replace("{lg_code}", SAPPORO))
        response = await client.request("PATCH" if "PATCH" not in methods else "TRACE", url)
        assert response.status_code == 405, url
        if path.startswith("/api/"):
            assert response.headers["content-type"].startswith(PROBLEM)
        assert set(response.headers["allow"].split(", ")) == methods, url


# -- schemathesis against the live app ------------------------------------------------------

class LoopBridge:
    """An ASGI app that serves each request on ``loop`` (the test's), whichever loop calls it.

    The request body is read whole first, the app runs on ``loop``, and its messages are replayed
    to the caller: no awaitable ever crosses between the two loops."""

    def __init__(self, app, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.requests = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":  # the test's app is already started by its fixtures
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests += 1
        answered = asyncio.run_coroutine_threadsafe(self._serve(scope, body), self.loop)
        for message in await asyncio.wrap_future(answered):
            await send(message)

    async def _serve(self, scope, body: bytes) -> list[dict]:
        sent: list[dict] = []
        done = asyncio.Event()
        delivered = False

        async def receive() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        await self.app(dict(scope), receive, send)
        done.set()
        return sent


@dataclass
class RunReport:
    who: str
    requests: int = 0
    cases: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"schemathesis [{BACKEND}] {self.who}: {self.requests} requests, {self.cases} cases, "
                f"{self.seconds:.1f}s, statuses {dict(sorted(self.statuses.items()))}, "
                f"{len(self.failures)} failures, {len(self.errors)} errors")


def _config(auth: dict[str, dict[str, str]]) -> schemathesis.Config:
    operations = [
        {"include-method": label.split()[0], "include-path": label.split()[1],
         "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]}}}
        for label in SEMANTIC_422
    ] + [
        {"include-method": label.split()[0], "include-path": label.split()[1],
         "checks": {check: {"enabled": False}}}
        for label, (check, _) in KNOWN_FAILING.items()
    ]
    config = {
        "seed": SEED,
        "workers": 1,
        "parameters": {"path.lg_code": SAPPORO},
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "mode": "all",
                       "database": "none"},
        "checks": {"enabled": True},
        "phases": {"stateful": {"enabled": False}},
        "warnings": False,
        "operations": operations,
    }
    if auth:
        config["auth"] = {"openapi": auth}
    return schemathesis.Config.from_dict(config)


def _run(bridge: LoopBridge, who: str, auth: dict[str, dict[str, str]]) -> RunReport:
    """One schemathesis run (in a worker thread: the test's loop keeps serving the bridge)."""
    report = RunReport(who)
    schema = schemathesis.openapi.from_asgi(OPENAPI, bridge, config=_config(auth))
    started, before = time.monotonic(), bridge.requests
    for event in engine_for(schema).execute():
        if isinstance(event, (events.ScenarioFinished, events.FuzzScenarioFinished)):
            recorder = event.recorder
            report.cases += len(recorder.cases)
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    report.statuses[interaction.response.status_code] += 1
            for checks in recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        report.failures.append(f"{failure.operation}: {check.name}: {failure.title}: "
                                               f"{failure.message}\n    {check.failure_info.code_sample}")
        elif isinstance(event, events.NonFatalError):
            report.errors.append(f"{event.label}: {event.info.format() if hasattr(event.info, 'format') else event.value}")
        elif isinstance(event, events.FatalError):
            report.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            report.failures.extend(f"{f.operation}: {f.title}: {f.message}" for f in event.failures)
    report.seconds = time.monotonic() - started
    report.requests = bridge.requests - before
    return report


async def _api_key_with_every_permission(admin) -> str:
    page = await admin.client.post(f"/t/{SAPPORO}/apikeys", data={
        "name": "契約テスト", "kind": "live", "permissions": sorted(p.value for p in API_KEY_GRANTABLE),
        "rate_limit_per_minute": "10000", "csrf_token": admin.csrf})
    assert page.status_code == 200, page.text
    return re.search(r'<code id="new-api-key">([^<]+)</code>', page.text).group(1)


def _unique(lines: list[str]) -> list[str]:
    return sorted(set(lines))


# Which databases the fuzz runs on (default: whichever the pass uses): KIBAN_CONTRACT_FUZZ lists
# databases (every identity fuzzed there) and identity=database pairs (identities: anonymous,
# session, apikey). scripts/test runs both passes side by side and fuzzes each identity once:
# 27,000 requests a pass, twice, did not fit CI's 30 minutes once the three new modules came. The
# signed-in identities run on PostgreSQL, where the fuzz found its database-specific bugs (a value
# longer than its column, the lock table); the anonymous one, which writes nothing (8 in 10 of
# its requests are refused at the door), on SQLite, whose pass had the time to spare.
FUZZ_ITEMS = [item.strip() for item in os.environ.get("KIBAN_CONTRACT_FUZZ", BACKEND).split(",") if item.strip()]
IDENTITIES = {"anonymous": "anonymous", "session": "札幌市 admin (session)", "apikey": "札幌市 API key (every permission)"}


def fuzzed_here(identity: str) -> bool:
    return any(item == BACKEND or item == f"{identity}={BACKEND}" for item in FUZZ_ITEMS)


@pytest.mark.parametrize("identity", [
    pytest.param(key, id=who, marks=pytest.mark.skipif(
        not fuzzed_here(key), reason=f"the contract fuzz of this identity runs elsewhere in this run "
                                     f"(KIBAN_CONTRACT_FUZZ={os.environ.get('KIBAN_CONTRACT_FUZZ')})"))
    for key, who in IDENTITIES.items()])
async def test_schemathesis_finds_nothing_anonymous_signed_in_or_with_an_api_key(app, staff, capsys, identity) -> None:
    """One identity per test: every request of a run shares the test's one PostgreSQL transaction,
    and PostgreSQL keeps a lock for each of its subtransactions that wrote until that transaction
    ends; three runs in one transaction exhausted the lock table ("out of shared memory")."""
    who = IDENTITIES[identity]
    admin = await staff(SAPPORO, "admin")
    # The fuzz keeps the API keys' rate-limit counters in memory (one write fewer per request);
    # tests/core/test_shared_state.py covers the database's.
    app.state.shared = MemoryState()
    app.state.rate_limiter = RateLimiter(app.state.shared)
    if who == "anonymous":
        auth = {}
    elif who.endswith("(session)"):
        auth = {"sessionCookie": {"api_key": admin.client.cookies.get("kiban_session")}}
    else:
        auth = {"apiKey": {"bearer": await _api_key_with_every_permission(admin)}}
    bridge = LoopBridge(app, asyncio.get_running_loop())
    report = await asyncio.to_thread(_run, bridge, who, auth)
    with capsys.disabled():
        print()
        print(report.line())
    problems = _unique(report.failures) + _unique(report.errors)
    if problems:
        with capsys.disabled():
            print(f"== {who}\n" + "\n".join(problems))
    assert problems == [], "schemathesis failures are listed above"
    assert report.requests > 50, report.line()
    if who == "anonymous":
        assert report.statuses[401] > 0
    else:  # each identity reached the data it may read, not only the doors
        assert report.statuses[200] > 0
