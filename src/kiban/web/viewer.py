"""Who is signed in, for the header every page shares.

``load_viewer`` runs once per request as an application-wide dependency (``create_app``). It
uses the request's own database session and the web session the route's dependencies reuse
(``current_web_session`` keeps it on ``request.state``), which is loaded in one statement with
its principal and organisation (``SessionRepository.by_token_hash``, which also holds them for
the session): the header, ``require(...)`` and the URL's tenant find them in the identity map.
Without a session cookie it costs nothing.

It never fails a page: whatever goes wrong leaves the header signed out and is logged.
Pages that no route matches (a mistyped URL) run no dependency; their header is signed out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import Request

from kiban.core.identity.dependencies import SESSION_COOKIE, DbSession, current_web_session
from kiban.core.identity.models import Principal
from kiban.core.registry.models import Organization

log = logging.getLogger("kiban.web")

_NO_HEADER = ("/api/", "/static/", "/healthz", "/readyz")


@dataclass(frozen=True)
class Viewer:
    """What the header says about the signed-in person, all of it ready to print."""

    name: str
    organisation: str | None  # staff: the organisation they act for
    home_url: str  # their own pages: the organisation's home, /me or /business
    home_label: str
    how: str  # how they signed in, for residents and businesses whose name says little


async def load_viewer(request: Request, session: DbSession) -> None:
    request.state.viewer = None
    # The path from the scope, not ``request.url`` (which builds a URL object): every request passes here
    if request.scope["path"].startswith(_NO_HEADER) or not request.cookies.get(SESSION_COOKIE):
        return
    try:
        request.state.viewer = await _viewer(request, session)
    except Exception:  # noqa: BLE001 - the header must never take the page down with it
        log.warning("signed-in header not loaded", exc_info=True)
        # The rollback expires what this session loaded: the web session kept for the request
        # (``current_web_session``) must be read again by the route, not used expired (reading an
        # expired attribute here is I/O outside the session's await: MissingGreenlet, a 500).
        request.state.web_session = False
        try:
            await session.rollback()  # a failed statement must not poison the route's queries
        except Exception:  # noqa: BLE001
            log.warning("rollback after the header failed", exc_info=True)


async def _viewer(request: Request, session) -> Viewer | None:
    web_session = await current_web_session(request, session)
    if web_session is None or web_session.stage != "active":
        return None
    principal = await session.get(Principal, web_session.principal_id)
    if principal is None or principal.disabled_at is not None:
        return None
    if principal.kind == "resident":
        return Viewer("住民（本人）", None, "/me", "わたしの情報の利用記録", "マイナンバーカード")
    if principal.kind == "business":
        return Viewer(principal.display_name, None, "/business", "事業者ページ", "GビズID")
    if web_session.acting_lg_code is None:
        return Viewer(principal.display_name, None, "/signin/organization", "団体を選ぶ", "")
    org = await session.get(Organization, web_session.acting_lg_code)
    org_name = org.name if org is not None else web_session.acting_lg_code
    return Viewer(principal.display_name, org_name, f"/t/{web_session.acting_lg_code}/",
                  f"{org_name}のページ", "")



def show_viewer_on_unrouted_pages(app) -> None:
    """A mistyped URL matches no route, so ``load_viewer`` never ran: before the 404 page is
    rendered, load the header on a short session of its own (only these rare pages pay it)."""
    from starlette.exceptions import HTTPException

    render = app.exception_handlers[HTTPException]

    async def with_viewer(request: Request, exc: HTTPException):
        loaded = getattr(request.state, "viewer", _UNLOADED) is not _UNLOADED
        if not loaded and not request.url.path.startswith(_NO_HEADER) and request.cookies.get(SESSION_COOKIE):
            request.state.viewer = None
            try:
                async with request.app.state.sessionmaker() as session:
                    request.state.viewer = await _viewer(request, session)
            except Exception:  # noqa: BLE001 - an error page must render whatever happens here
                log.warning("signed-in header not loaded for an error page", exc_info=True)
        return await render(request, exc)

    app.exception_handlers[HTTPException] = with_viewer


_UNLOADED = object()
