"""Two protections every response and request gets, whatever route serves it.

``SecurityHeadersMiddleware`` adds the browser-side rules: a Content-Security-Policy that allows
scripts only from our own origin (no inline script: a page that needs one sets its own policy
with the script's hash, as the API docs page does), no framing, no MIME sniffing, a strict
referrer policy, and HSTS when the request arrived over HTTPS.

``NulGuardMiddleware`` refuses a NUL character (U+0000) anywhere in the path, the query or a
JSON/form body with 422: no text anyone types contains one, PostgreSQL cannot store one in a
text column (a 500 on nearly every route otherwise), and SQLite would store it silently.

``BodyLimitMiddleware`` refuses a request body larger than its kind allows *before* the route
reads it: from ``Content-Length`` at once, and for a body sent without one (chunked) as soon as
the bytes received pass the limit. Limits per kind: JSON and forms are small, file uploads
(multipart) larger. A refused request gets 413 with a Japanese message (problem+json under
``/api``), and nothing it sent has been processed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kiban.kit.requestid import current_request_id

#: The policy for every HTML page. Inline styles are allowed (server-rendered SVG charts and a
#: few style attributes use them); scripts are not.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)


def script_hash(script: str) -> str:
    """The CSP source expression (``'sha256-…'``) that allows exactly this inline script."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def policy_with_scripts(*hashes: str) -> str:
    """``CONTENT_SECURITY_POLICY`` with the given inline-script hashes allowed as well."""
    return CONTENT_SECURITY_POLICY.replace("script-src 'self'", "script-src 'self' " + " ".join(hashes))


# What every response gets unless the route set its own (built once: this runs on every response).
_BROWSER_RULES = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = (*_BROWSER_RULES, _HSTS) if scope.get("scheme") == "https" else _BROWSER_RULES

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in wanted if name not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


KIB = 1024
MIB = 1024 * KIB

#: Largest body per kind of request. Uploads are rosters and attachments; nothing else is big.
BODY_LIMITS = {
    "json": 1 * MIB,
    "form": 1 * MIB,
    "multipart": 20 * MIB,
    "other": 1 * MIB,
}


def body_kind(content_type: str) -> str:
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype == "application/json" or ctype.endswith("+json"):
        return "json"
    if ctype == "application/x-www-form-urlencoded":
        return "form"
    if ctype == "multipart/form-data":
        return "multipart"
    return "other"


def _limit_label(limit: int) -> str:
    return f"{limit // MIB} MB" if limit >= MIB else f"{limit // KIB} KB"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.limits = limits or BODY_LIMITS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit = self.limits[body_kind(headers.get(b"content-type", b"").decode("latin-1"))]
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                too_large = False  # the server rejects a malformed length itself
            if too_large:
                await self._refuse(scope, send, limit)
                return

        received = 0
        started = refused = False

        async def counting_receive() -> Message:
            # Past the limit: answer 413 at once and tell the app the client went away, so that
            # whatever reads the body stops (frameworks turn a raised error into a 400)
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not started:
                    refused = True
                    await self._refuse(scope, send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent; drop what the app answers after it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except Exception:
            if not refused:
                raise

    @staticmethod
    async def _refuse(scope: Scope, send: Send, limit: int) -> None:
        await refuse(scope, send, 413, "payload-too-large", "送信された内容が大きすぎます",
                     f"この送信先で受け付ける大きさは {_limit_label(limit)} までです。"
                     "ファイルを分けるなどして送り直してください。", close=True)


async def refuse(scope: Scope, send: Send, status: int, slug: str, title: str, detail: str, *,
                 close: bool = False) -> None:
    """Answer from a middleware, before any route: problem+json under ``/api``, else a plain
    Japanese page (no template: nothing here may depend on the database or a session)."""
    if scope["path"].startswith("/api/"):
        body = json.dumps({"type": f"https://kiban.example/problems/{slug}", "title": title, "status": status,
                           "detail": detail, "errors": [], "request_id": current_request_id()},
                          ensure_ascii=False).encode()
        content_type = b"application/problem+json"
    else:
        body = (f'<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>{title}</title>'
                f'<link rel="stylesheet" href="/static/app.css"></head><body><main id="main">'
                f'<h1>{title}</h1><p>{detail}</p><p><a href="/">トップページへ</a></p>'
                f'</main></body></html>').encode()
        content_type = b"text/html; charset=utf-8"
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# \u0000 in JSON is a NUL only when its backslash is not itself escaped (\\u0000 is text)
_NUL_IN_JSON = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)
_NUL_IN_FORM = re.compile(rb"%00")


def _has_nul(raw: bytes, encoded: re.Pattern[bytes]) -> bool:
    return b"\x00" in raw or encoded.search(raw) is not None


def _has_nul_in_url(raw: bytes) -> bool:
    """``_has_nul(raw, _NUL_IN_FORM)`` for a path or query (``%00`` has no letters: a plain search)."""
    return b"\x00" in raw or b"%00" in raw


class NulGuardMiddleware:
    """422 for a NUL in the path, query, or a JSON/urlencoded body (multipart uploads are files:
    their bytes are not text and are left to the parsers). The body is read in full here, which
    the body limit (mounted outside this one) keeps small."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _has_nul_in_url(scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")) \
                or "\x00" in scope["path"] or _has_nul_in_url(scope.get("query_string", b"")):
            await _refuse_nul(scope, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        kind = body_kind(headers.get(b"content-type", b"").decode("latin-1"))
        if kind not in ("json", "form"):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if _has_nul(body, _NUL_IN_JSON if kind == "json" else _NUL_IN_FORM):
            await _refuse_nul(scope, send)
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


async def _refuse_nul(scope: Scope, send: Send) -> None:
    await refuse(scope, send, 422, "invalid-input", "入力内容に誤りがあります",
                 "使えない制御文字（NUL）が含まれています。入力し直してください。")
