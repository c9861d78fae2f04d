"""The OpenAPI document as a contract: what every operation needs, and every answer it can give.

FastAPI describes a route from its signature. What it cannot see, this module adds from the same
declarations the app enforces, so the document cannot drift from the code:

- **Path parameters** a dependency reads from the URL (``/t/{lg_code}/...`` is resolved by
  ``tenant_from_path``, not by the endpoint's signature) are declared on every operation.
- **Security**: each operation's ``security`` comes from its permission dependency — ``PUBLIC``
  means none, ``require(...)`` a staff session cookie or an API key, an API-key-only route the key,
  a resident's route the resident's session — and the schemes are declared once.
- **Errors**: every error answer is ``application/problem+json`` (RFC 9457) with one shared
  ``Problem`` schema, including FastAPI's 422 (the app never answers ``HTTPValidationError``).
  Which statuses apply follows from the route: 401/403/429 where credentials are checked, 404
  and 422 where the URL names something, 413 and 422 where a body is read, 503 everywhere (the
  database busy past its timeout: nothing changed, try again). What only the route
  knows (a 409 on a stale ``expected_version``) it declares with ``problem_responses(409)``.

``install(app)`` wraps ``app.openapi``; the document is still built once and cached by FastAPI.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI, routing
from fastapi.routing import APIRoute

from kiban.kit.errors import PROBLEM_JSON

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

SESSION_SCHEME = "sessionCookie"
API_KEY_SCHEME = "apiKey"

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    SESSION_SCHEME: {
        "type": "apiKey",
        "in": "cookie",
        "name": "kiban_session",
        "description": "画面でサインインした職員・住民のセッション（パスワードと二要素認証、またはマイナンバーカード）。"
                       "変更を伴う画面の送信には CSRF トークンも必要です。",
    },
    API_KEY_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "kiban_<live|test>_<団体コード>_<id>_<secret>",
        "description": "団体の API キー（`Authorization: Bearer kiban_live_...`）。キーを発行した団体の URL だけで使え、"
                       "キーに与えた権限の操作だけができます。テスト用のキーは団体のデータを読み書きできません。",
    },
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 の問題の詳細（application/problem+json）。detail は利用者に見せられる日本語です。",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri", "description": "問題の種類を表す URI"},
        "title": {"type": "string", "description": "問題の種類の日本語の見出し"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "HTTP ステータスコード"},
        "detail": {"type": "string", "description": "この回の問題の日本語の説明"},
        "instance": {"type": "string", "description": "問題が起きた URL のパス"},
        "request_id": {"type": ["string", "null"], "description": "受付番号（問い合わせのときに伝えてください）"},
        "errors": {
            "type": "array",
            "description": "入力項目ごとの誤り（すべての誤りを一度に返します）",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {"type": "string", "description": "項目（本文・クエリ内の位置。空は全体）"},
                    "message": {"type": "string", "description": "日本語の説明"},
                },
            },
        },
        "permission": {"type": "string", "description": "不足している権限のコード（403 のとき）"},
    },
    "additionalProperties": True,
}

STATUS_DESCRIPTIONS: dict[int, str] = {
    400: "リクエストの形式が正しくありません",
    401: "サインインまたは API キーが必要です（キーが正しくない・失効している・他の団体のキーのときも）",
    403: "この操作を行う権限がありません（テスト用の API キーを含む）",
    404: "見つかりません（存在しないもの、他の団体のもの、団体の職員でないときも同じ答えです）",
    409: "ほかの変更と競合しました（読み取った後に更新されています）",
    410: "この情報は廃止されました",
    413: "送信された内容が大きすぎます",
    415: "送信の形式（Content-Type）が受け付けられません",
    422: "入力内容に誤りがあります（errors に項目ごとの理由）",
    429: "リクエストが多すぎます（Retry-After 秒後にもう一度）",
    503: "混み合っているか、使えない状態です（何も変わっていません。Retry-After があればその秒数の後にもう一度）",
}

_RESPONSE_HEADERS: dict[int, dict[str, Any]] = {
    429: {"Retry-After": {"description": "再試行までの秒数", "required": True,
                          "schema": {"type": "integer", "minimum": 0}}},
    503: {"Retry-After": {"description": "再試行までの秒数（データベースが混み合っているとき）",
                          "schema": {"type": "integer", "minimum": 0}}},
    401: {"WWW-Authenticate": {"description": "API キーで呼んだとき `Bearer`", "schema": {"type": "string"}}},
}

_PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "lg_code": {
        "description": "全国地方公共団体コード（6桁、検査数字つき）。例: 011002（札幌市）",
        "schema": {"type": "string", "pattern": "^[0-9]{6}$", "title": "団体コード", "examples": ["011002"]},
    },
}


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """One ``responses=`` entry: ``status`` answered as problem+json."""
    return {"description": description or STATUS_DESCRIPTIONS.get(status, "エラー"),
            "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}}


def problem_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """For a route's ``responses=``: the statuses only the route knows it can answer, e.g.
    ``problem_responses(409)``; ``descriptions`` by ``s409="..."`` replace the generic words."""
    return {status: problem_response(status, descriptions.get(f"s{status}")) for status in statuses}


# -- how a route is protected ---------------------------------------------------------------

def _calls(dependant) -> list[Callable]:
    found = [dependant.call]
    for sub in dependant.dependencies:
        found.extend(_calls(sub))
    return found


def route_access(route) -> tuple[str, str | None]:
    """(kind, permission) for a route, from the dependencies it declares: ``public``, ``staff``
    (``require(...)``: a staff session or an API key), ``api_key`` (any valid key of the tenant),
    ``resident`` (a resident's session), ``business`` (a GビズID session), or ``undeclared``
    (the route walker test fails on it)."""
    from kiban.core.identity import dependencies as identity
    from kiban.core.identity import web_business

    calls = _calls(route.dependant)
    if identity._public in calls:
        return ("optional" if identity.optional_staff in calls else "public"), None
    for call in calls:
        permission = getattr(call, "__kiban_permission__", None)
        if permission is None:
            continue
        if call is identity._any_api_key:
            return "api_key", str(permission)
        if call is identity._current_resident:
            return "resident", str(permission)
        if call is web_business._current_business:
            return "business", str(permission)
        return "staff", str(permission)
    return "undeclared", None


_SECURITY: dict[str, list[dict[str, list]]] = {
    "public": [],
    "optional": [{}, {SESSION_SCHEME: []}],
    "staff": [{SESSION_SCHEME: []}, {API_KEY_SCHEME: []}],
    "api_key": [{API_KEY_SCHEME: []}],
    "resident": [{SESSION_SCHEME: []}],
    "business": [{SESSION_SCHEME: []}],
}

# Statuses the credential check itself can answer.
_AUTH_STATUSES: dict[str, tuple[int, ...]] = {
    "public": (),
    "optional": (),
    "staff": (401, 403, 429),
    "api_key": (401, 429),
    "resident": (401,),
    "business": (401,),
}

_ACCESS_WORDS = {
    "staff": "団体の職員（サインイン）または API キーで、権限「{label}」が必要です。",
    "api_key": "団体の API キーが必要です（テスト用のキーでも使えます）。",
    "resident": "マイナンバーカードでサインインした住民本人だけが使えます。",
    "business": "GビズIDでサインインした事業者だけが使えます。",
}


def _permission_label(permission: str) -> str:
    from kiban.core.identity.permissions import permission_label

    return permission_label(permission)


# -- the document ---------------------------------------------------------------------------

_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def _ensure_path_parameters(path: str, operation: dict[str, Any]) -> list[str]:
    names = _PATH_PARAM.findall(path)
    parameters = operation.setdefault("parameters", [])
    declared = {p["name"] for p in parameters if p.get("in") == "path"}
    added = []
    for parameter in parameters:
        known = _PATH_PARAMETERS.get(parameter["name"])
        if known and parameter.get("in") == "path" and set(parameter.get("schema", {})) <= {"type", "title"}:
            parameter.update(known)  # a plain ``lg_code: str`` in a signature: say what a code is
    for name in names:
        if name in declared:
            continue
        extra = _PATH_PARAMETERS.get(name, {"schema": {"type": "string"}})
        parameters.append({"name": name, "in": "path", "required": True, **extra})
        added.append(name)
    # the URL names the tenant first: keep parameters in the order the path names them
    order = {name: i for i, name in enumerate(names)}
    parameters.sort(key=lambda p: (p.get("in") != "path", order.get(p["name"], 0)))
    return names


def _error_statuses(route: APIRoute, operation: dict[str, Any], access: str, path_names: list[str]) -> set[int]:
    # 503: any operation may find the database busy past its timeout (kit/errors.database_busy)
    statuses = set(_AUTH_STATUSES.get(access, ())) | {503}
    if path_names:
        statuses |= {404, 422}
    if operation.get("parameters"):
        statuses.add(422)
    if "requestBody" in operation:
        statuses |= {400, 413, 422}  # 400: a body that cannot be parsed at all
    return statuses


def _as_problem(response: dict[str, Any], status: int) -> None:
    response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
    if status in _RESPONSE_HEADERS:
        response.setdefault("headers", {}).update(_RESPONSE_HEADERS[status])


def _drop_unused_schemas(document: dict[str, Any], names: Iterable[str]) -> None:
    schemas = document.get("components", {}).get("schemas", {})
    text = repr(document["paths"]) + repr({k: v for k, v in schemas.items() if k not in names})
    for name in names:
        if f"#/components/schemas/{name}'" not in text:
            schemas.pop(name, None)


def complete(document: dict[str, Any], routes: Iterable) -> dict[str, Any]:
    """``document`` (FastAPI's) with path parameters, security and problem+json answers filled in
    from ``routes``; changed in place and returned."""
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for context in routing.iter_route_contexts(list(routes)):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        path = context.path_format
        for method in context.methods or ():
            operation = document["paths"].get(path, {}).get(method.lower())
            if operation is None:
                continue
            access, permission = route_access(context)
            path_names = _ensure_path_parameters(path, operation)
            if not operation["parameters"]:
                del operation["parameters"]
            if access in _SECURITY:
                operation["security"] = _SECURITY[access]
            if permission and access in _ACCESS_WORDS:
                operation["x-kiban-permission"] = permission
                words = _ACCESS_WORDS[access].format(label=_permission_label(permission))
                operation["description"] = (operation.get("description", "") + "\n\n" + words).strip()
            responses = operation.setdefault("responses", {})
            for status in _error_statuses(context, operation, access, path_names):
                responses.setdefault(str(status), {"description": STATUS_DESCRIPTIONS[status]})
            for key, response in responses.items():
                if key.isdigit() and int(key) >= 400:
                    if response.get("description") in (None, "", "Validation Error"):
                        response["description"] = STATUS_DESCRIPTIONS.get(int(key), "エラー")
                    _as_problem(response, int(key))
            operation["responses"] = dict(sorted(responses.items()))
    _drop_unused_schemas(document, ("HTTPValidationError", "ValidationError"))
    return document


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (built once, as FastAPI caches it)."""
    build = app.openapi
    completed: list[int] = []

    def openapi() -> dict[str, Any]:
        document = build()
        if not completed or completed[-1] != id(document):
            complete(document, app.routes)
            completed[:] = [id(document)]
        return document

    app.openapi = openapi  # type: ignore[method-assign]
