"""CSRF protection for every HTML form: a random token in an HttpOnly, SameSite=Lax cookie,
repeated in a hidden field that only our own pages can render. ``verify_csrf`` compares the
two (constant time) on every unsafe request that carries a form.

``rotate`` issues a new token: sign-in calls it at every privilege change (with the new
session id), so a token planted in the browser before signing in (by a neighbouring site
that can set cookies, say) is worthless afterwards."""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kiban.kit.errors import KibanError

COOKIE = "kiban_csrf"
FIELD = "csrf_token"
MIN_LENGTH = 20  # a shorter cookie is not one we issued: replaced, and never accepted
_NO_FORMS = ("/api/", "/static/", "/healthz", "/readyz")


def _cookie_header(token: str, secure: bool) -> str:
    # Lax, not Strict: the cookie also binds sign-in flows to the browser, and the return
    # from GビズID is a top-level navigation from another site.
    return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax{'; Secure' if secure else ''}"


def rotate(request: Request, response) -> str:
    """Give the browser a new CSRF token with ``response`` (and to pages rendered later in
    this request); the old one stops matching at once."""
    token = secrets.token_urlsafe(32)
    request.state.csrf_token = token
    response.headers.append("set-cookie", _cookie_header(token, request.url.scheme == "https"))
    return token


class CsrfFailed(KibanError):
    status = 403
    title = "フォームの有効期限が切れました"
    type_slug = "csrf"


class CsrfCookieMiddleware:
    """Ensures a CSRF cookie exists and exposes it to templates as ``request.state.csrf_token``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The JSON API and static files have no forms: no cookie to set or read there.
        if scope["type"] != "http" or scope["path"].startswith(_NO_FORMS):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        token = request.cookies.get(COOKIE)
        fresh = token is None or len(token) < MIN_LENGTH
        if fresh:
            token = secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf_token"] = token
        secure = scope.get("scheme") == "https"

        async def send_with_cookie(message: Message) -> None:
            if fresh and message["type"] == "http.response.start":
                headers = message.get("headers", [])
                # A route that rotated the token already set the cookie: its value wins.
                if not any(name.lower() == b"set-cookie" and value.startswith(f"{COOKIE}=".encode())
                           for name, value in headers):
                    headers = [*headers, (b"set-cookie", _cookie_header(token, secure).encode())]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookie)


async def verify_csrf(request: Request) -> None:
    """Dependency for form posts: 403 with a Japanese explanation when the token is missing
    or does not match the cookie."""
    form = await request.form()
    sent = str(form.get(FIELD, ""))
    expected = request.cookies.get(COOKIE, "")
    if len(expected) < MIN_LENGTH or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfFailed("画面を開いてから時間がたったか、別の画面から送信されました。"
                         "ページを開き直して、もう一度操作してください。")
