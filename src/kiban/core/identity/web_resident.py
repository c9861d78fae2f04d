"""Residents: sign-in with the My Number Card, and 「わたしの情報の利用記録」."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.audit import service as audit_service
from kiban.core.identity import jpki, service
from kiban.core.identity.dependencies import PUBLIC, CurrentResident, DbSession
from kiban.core.identity.web import _renew, _safe_next, end_previous_session
from kiban.core.registry import service as registry_service
from kiban.kit.csrf import COOKIE as CSRF_COOKIE
from kiban.kit.csrf import verify_csrf
from kiban.kit.settings import get_settings
from kiban.kit.templating import templates

router = APIRouter(include_in_schema=False)


async def _card_page(request: Request, session, next_url: str | None, error: str | None = None,
                     status: int = 200) -> HTMLResponse:
    challenge = await jpki.issue_challenge(session, request.state.csrf_token)
    await session.commit()
    return templates.TemplateResponse(request, "identity/signin_card.html", {
        "challenge": challenge, "next": next_url, "error": error,
        "dev_ca": get_settings().jpki_dev_ca_enabled}, status_code=status)


@router.get("/signin/card", response_class=HTMLResponse, dependencies=[PUBLIC])
async def card_page(request: Request, session: DbSession, next: str | None = None) -> HTMLResponse:  # noqa: A002
    return await _card_page(request, session, _safe_next(next))


@router.post("/signin/card", dependencies=[PUBLIC, Depends(verify_csrf)])
async def card_submit(request: Request, session: DbSession,
                      challenge_id: Annotated[str, Form()] = "", certificate: Annotated[str, Form()] = "",
                      signature: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "") -> Response:  # noqa: A002
    try:
        started = await service.sign_in_with_card(session, challenge_id=challenge_id, certificate=certificate,
                                                   signature=signature,
                                                   csrf_cookie=request.cookies.get(CSRF_COOKIE))
    except service.SignInRefused as exc:
        await session.commit()  # the spent challenge and the audit entry stay
        return await _card_page(request, session, _safe_next(next), exc.detail, 401)
    await end_previous_session(request, session)
    await session.commit()
    response = RedirectResponse(_safe_next(next) or "/me", status_code=303)
    return _renew(request, response, started)


@router.get("/me", response_class=HTMLResponse)
async def my_page(request: Request, session: DbSession, resident: CurrentResident) -> HTMLResponse:
    """Every recorded access to this resident's data, by any organisation, with its purpose."""
    entries = await audit_service.entries_about(session, resident.principal.id)  # the API twin reads the same
    orgs = await registry_service.organizations_by_code(session, sorted({e.lg_code for e in entries}))
    return templates.TemplateResponse(request, "identity/me.html", {
        # The log keeps codes; residents read 「住民のサインイン」 (the action_label filter).
        "resident": resident, "entries": entries, "orgs": orgs})
