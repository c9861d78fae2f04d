"""Errors that reach people: Japanese messages, problem+json on the API, friendly HTML pages.

Raise a ``KibanError`` subclass from anywhere; the handlers installed by ``install_handlers``
turn it into ``application/problem+json`` (RFC 9457) under ``/api`` and into a Japanese page
elsewhere. Nothing else needs to know how errors are rendered.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from kiban.kit.db import is_sqlite_lock_error
from kiban.kit.requestid import current_request_id

log = logging.getLogger("kiban.errors")

PROBLEM_JSON = "application/problem+json"


class KibanError(Exception):
    status = 500
    title = "システムエラーが発生しました"
    type_slug = "internal"

    def __init__(self, detail: str | None = None, *, errors: list[dict[str, Any]] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors or []
        self.extra = extra or {}


class NotFound(KibanError):
    status = 404
    title = "見つかりません"
    type_slug = "not-found"


class InvalidInput(KibanError):
    status = 422
    title = "入力内容に誤りがあります"
    type_slug = "invalid-input"


class Gone(KibanError):
    """A record that existed but was retired (e.g. a merged municipality's code)."""

    status = 410
    title = "この情報は廃止されました"
    type_slug = "gone"


class Conflict(KibanError):
    status = 409
    title = "ほかの変更と競合しました"
    type_slug = "conflict"


_STATUS_TITLES = {
    400: "リクエストの形式が正しくありません",
    401: "サインインが必要です",
    403: "この操作を行う権限がありません",
    404: "ページが見つかりません",
    405: "この方法では操作できません",
    409: "ほかの変更と競合しました",
    410: "この情報は廃止されました",
    422: "入力内容に誤りがあります",
    429: "アクセスが集中しています。しばらくしてからもう一度お試しください",
    500: "システムエラーが発生しました",
    503: "ただいまサービスを利用できません",
}

# Pydantic error types in words a clerk understands.
_PYDANTIC_MESSAGES = {
    "missing": "入力してください。",
    "int_parsing": "半角数字（整数）で入力してください。",
    "int_type": "整数で入力してください。",
    "float_parsing": "数値で入力してください。",
    "bool_parsing": "「はい」か「いいえ」で指定してください。",
    "greater_than_equal": "{ge} 以上の値を入力してください。",
    "less_than_equal": "{le} 以下の値を入力してください。",
    "greater_than": "{gt} より大きい値を入力してください。",
    "less_than": "{lt} より小さい値を入力してください。",
    "string_too_short": "{min_length} 文字以上で入力してください。",
    "string_too_long": "{max_length} 文字以内で入力してください。",
    "string_pattern_mismatch": "形式が正しくありません。",
    "too_short": "{min_length} 件以上指定してください。",
    "too_long": "{max_length} 件以内で指定してください。",
    "literal_error": "次のいずれかを指定してください: {expected}",
    "enum": "次のいずれかを指定してください: {expected}",
    "json_invalid": "JSON の形式が正しくありません。",
    "date_from_datetime_parsing": "日付は YYYY-MM-DD の形式で入力してください。",
    "date_parsing": "日付は YYYY-MM-DD の形式で入力してください。",
}

_LOCATION_NAMES = {"query": "クエリ", "path": "パス", "body": "本文", "header": "ヘッダー"}


def japanese_message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "value_error":
        message = str(error.get("msg", ""))
        return message.removeprefix("Value error, ")
    template = _PYDANTIC_MESSAGES.get(kind)
    if template is None:
        return "値が正しくありません。"
    ctx = dict(error.get("ctx") or {})
    if isinstance(ctx.get("expected"), str):  # pydantic joins choices with an English " or "
        ctx["expected"] = ctx["expected"].replace(" or ", ", ")
    try:
        return template.format(**ctx)
    except (KeyError, IndexError):
        return template


def _field_label(loc: tuple | list) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in _LOCATION_NAMES:
        parts = parts[1:]
    return ".".join(parts)


# A permission code quoted in a message (「tenancy.setting.update」): people read what it lets
# them do instead. Other dotted text in quotes (a setting key someone typed) is left as it is.
_QUOTED_CODE = re.compile(r"「([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+)」")


def words_for_codes(detail: str) -> tuple[str, list[str]]:
    """``detail`` with each quoted permission code replaced by its Japanese name, and the codes
    found (kept for API clients as ``permission``)."""
    codes: list[str] = []

    def name(match: re.Match) -> str:
        # kit does not depend on identity at import time; the table of names lives with the roles.
        from kiban.core.identity.permissions import Permission, permission_label

        if match.group(1) not in Permission._value2member_map_:
            return match.group(0)
        codes.append(match.group(1))
        return f"「{permission_label(match.group(1))}」"

    return _QUOTED_CODE.sub(name, detail), codes


def is_api_request(request: Request) -> bool:
    if request.url.path.startswith("/api/"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def problem(request: Request, status: int, title: str, detail: str, *, type_slug: str,
            errors: list[dict[str, Any]] | None = None, extra: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> Response:
    detail, codes = words_for_codes(detail)
    if codes:
        extra = {**(extra or {}), "permission": codes[0]}
    body: dict[str, Any] = {
        "type": f"https://kiban.example/problems/{type_slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": current_request_id(),
    }
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    if is_api_request(request):
        return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)
    from kiban.kit.templating import templates

    return templates.TemplateResponse(
        request, "error.html", {"problem": body}, status_code=status, headers=headers
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method the routes of this URL's resource answer. Starlette's 405 names only the
    first route whose path matched, so a URL served by a GET route and a POST route would claim
    GET alone. The resource is the most specific path template that matches (``/settings/history``
    rather than ``/settings/{key}``), as the OpenAPI document lists methods per template."""
    from fastapi import routing

    path = request.scope.get("path", request.url.path)
    by_template: dict[str, set[str]] = {}
    for route in routing.iter_route_contexts(request.app.routes):
        pattern = getattr(route, "path_regex", None)
        if pattern is not None and route.methods and pattern.match(path):
            by_template.setdefault(route.path_format, set()).update(route.methods)
    if not by_template:
        return []
    specific = min(by_template, key=lambda template: (template.count("{"), -len(template)))
    return sorted(by_template[specific])


BUSY_TITLE = "混み合っています"
BUSY_DETAIL = ("ただいま処理が混み合っているため、完了できませんでした。内容は保存されていません。"
               "しばらくしてから、もう一度お試しください。")
BUSY_RETRY_AFTER = 5


def database_busy(exc: BaseException) -> bool:
    """The database did not give the request its turn in time: SQLite's write lock held by
    another connection past the busy timeout (``database is locked``), no connection free in
    the pool within its timeout, or a pooled connection the server had dropped (a restart; the
    pool is then renewed). The request changed nothing (its transaction was rolled back)
    and may be tried again: 503 with Retry-After, not an unexplained 500."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:  # the server dropped it
        return True
    return isinstance(exc, sa_exc.TimeoutError) or is_sqlite_lock_error(exc)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(KibanError)
    async def _kiban_error(request: Request, exc: KibanError) -> Response:
        if exc.status >= 500:
            log.exception("internal error", exc_info=exc)
        if exc.status == 401 and "sign_in_url" in exc.extra and not is_api_request(request):
            return RedirectResponse(exc.extra["sign_in_url"], status_code=303)
        headers = {"Retry-After": str(exc.extra["retry_after"])} if "retry_after" in exc.extra else None
        if exc.status == 401 and "sign_in_url" not in exc.extra:
            headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
        return problem(request, exc.status, exc.title, exc.detail, type_slug=exc.type_slug,
                       errors=exc.errors, extra=exc.extra, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": _field_label(e.get("loc", ())), "message": japanese_message(e)}
            for e in exc.errors()
        ]
        if is_api_request(request):
            detail = " ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
        else:  # a page lists the messages; its form's field names are not words for people
            detail = "入力内容を確認してください。"
        return problem(request, 422, _STATUS_TITLES[422], detail, type_slug="invalid-input",
                       errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = _STATUS_TITLES.get(exc.status_code, "エラーが発生しました")
        detail = exc.detail if isinstance(exc.detail, str) and not exc.detail.isascii() else title
        headers = getattr(exc, "headers", None)
        if exc.status_code == 404:
            detail = "お探しのページは見つかりませんでした。URL をご確認ください。"
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return problem(request, exc.status_code, title, detail, type_slug=f"http-{exc.status_code}",
                       headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if database_busy(exc):
            log.warning("database busy: %s %s answered 503 (%s)", request.method, request.url.path, exc)
            return problem(request, 503, BUSY_TITLE, BUSY_DETAIL, type_slug="busy",
                           headers={"Retry-After": str(BUSY_RETRY_AFTER)})
        log.exception("unhandled error", exc_info=exc)
        return problem(request, 500, _STATUS_TITLES[500],
                       "申し訳ありません。時間をおいてもう一度お試しください。問題が続く場合は、"
                       "表示されている受付番号（request_id）を添えて運用担当にお知らせください。",
                       type_slug="internal")
