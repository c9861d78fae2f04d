"""Staff sign-in pages: password, then TOTP (or enrolment), then the organisation to act for.

How guessing is slowed (per typed name and address, never per account alone), why every
refusal looks and costs the same, and where the session id and CSRF token are renewed: see
「サインインの保護」 in ``service``'s docstring and docs/architecture.md."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.identity import credentials, oidc, service
from kiban.core.identity.dependencies import PUBLIC, SESSION_COOKIE, DbSession, current_web_session
from kiban.core.registry import service as registry_service
from kiban.kit import csrf
from kiban.kit.csrf import verify_csrf
from kiban.kit.errors import InvalidInput
from kiban.kit.templating import templates

router = APIRouter(include_in_schema=False, dependencies=[PUBLIC])
CsrfChecked = [Depends(verify_csrf)]


def _safe_next(target: str | None) -> str | None:
    """Only same-site paths: an open redirect would let a phishing link borrow our sign-in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _set_session_cookie(request: Request, response: Response, token: str) -> None:
    from kiban.kit.settings import get_settings

    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/",
                        max_age=get_settings().session_absolute_hours * 3600)


def _renew(request: Request, response: Response, started: service.NewSession) -> Response:
    """A privilege change: the browser gets the new session and a new CSRF token together, so
    nothing it held before, or was given by someone else, still counts afterwards."""
    _set_session_cookie(request, response, started.token)
    csrf.rotate(request, response)
    return response


async def end_previous_session(request: Request, session) -> None:
    """Whatever session this browser had before a new sign-in (another account, or one planted
    on it) ends; the caller commits."""
    previous = await current_web_session(request, session)
    if previous is not None:
        await service.sign_out(session, previous)


def _render(request: Request, name: str, context: dict, status: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status)


def sign_in_throttle(request: Request) -> service.SignInThrottle:
    """The failure counters, in the application's shared store (``app.state.shared``: Redis or
    the database, so every worker process counts together); made on first use, kept on the app."""
    state = request.app.state
    if getattr(state, "sign_in_throttle", None) is None:
        state.sign_in_throttle = service.SignInThrottle(getattr(state, "shared", None))
    return state.sign_in_throttle


def _signin_page(request: Request, *, next_url: str | None, error: str | None = None, username: str = "",
                 status: int = 200, retry_after: int | None = None) -> HTMLResponse:
    response = _render(request, "identity/signin.html", {
        "next": next_url, "error": error, "username": username,
        # No link to a sign-in that cannot work here: GビズID needs the operator's settings.
        "business_available": oidc.provider_config() is not None}, status)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


@router.get("/signin", response_class=HTMLResponse)
async def sign_in_page(request: Request, next: str | None = None) -> HTMLResponse:  # noqa: A002
    return _signin_page(request, next_url=_safe_next(next))


@router.post("/signin", dependencies=CsrfChecked)
async def sign_in(request: Request, session: DbSession, username: Annotated[str, Form()] = "",
                  password: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "") -> Response:  # noqa: A002
    address = request.client.host if request.client else ""
    try:
        started = await service.sign_in_with_password(session, username, password, address=address,
                                                      throttle=sign_in_throttle(request))
    except service.SignInRefused as exc:
        await session.commit()  # the audit entry must stick
        return _signin_page(request, next_url=_safe_next(next), error=exc.detail, username=username,
                            status=exc.status, retry_after=exc.extra.get("retry_after"))
    await end_previous_session(request, session)
    await session.commit()
    step = "/signin/totp" if started.session.stage == "password" else "/signin/enrol"
    target = _safe_next(next)
    return _renew(request, RedirectResponse(step + (f"?next={target}" if target else ""), status_code=303), started)


async def _pending(request: Request, session, stage: str):
    web_session = await current_web_session(request, session)
    if web_session is None or web_session.stage != stage:
        return None
    return web_session


@router.get("/signin/totp", response_class=HTMLResponse)
async def totp_page(request: Request, session: DbSession, next: str | None = None) -> Response:  # noqa: A002
    if await _pending(request, session, "password") is None:
        return RedirectResponse("/signin", status_code=303)
    return _render(request, "identity/totp.html", {"next": _safe_next(next), "error": None})


@router.post("/signin/totp", dependencies=CsrfChecked)
async def totp_submit(request: Request, session: DbSession, code: Annotated[str, Form()] = "",
                      next: Annotated[str, Form()] = "") -> Response:  # noqa: A002
    web_session = await _pending(request, session, "password")
    if web_session is None:
        return RedirectResponse("/signin", status_code=303)
    try:
        started = await service.verify_second_factor(session, web_session, code)
    except service.SignInRefused as exc:
        await session.commit()
        return _render(request, "identity/totp.html", {"next": _safe_next(next), "error": exc.detail}, 401)
    return await _after_sign_in(request, session, started, _safe_next(next))


async def _after_sign_in(request: Request, session, started: service.NewSession, target: str | None) -> Response:
    """Signed in: straight to the one organisation, or to the choice among several. Either way
    the browser leaves with a session id and CSRF token it has never had before."""
    memberships = await service.memberships_of(session, started.session.principal_id)
    if len(memberships) == 1:
        tenant, started = await service.act_for(session, started.session, memberships[0].lg_code)
        await session.commit()
        return _renew(request, RedirectResponse(target or f"/t/{tenant.lg_code}/", status_code=303), started)
    await session.commit()
    return _renew(request, RedirectResponse("/signin/organization" + (f"?next={target}" if target else ""),
                                            status_code=303), started)


@router.get("/signin/enrol", response_class=HTMLResponse)
async def enrol_page(request: Request, session: DbSession, next: str | None = None) -> Response:  # noqa: A002
    web_session = await _pending(request, session, "enrol")
    if web_session is None:
        return RedirectResponse("/signin", status_code=303)
    existing = await service.current_enrolment_secret(session, web_session)
    secret, username = existing or await service.begin_enrolment(session, web_session)
    await session.commit()
    return _render(request, "identity/enrol.html", {
        "next": _safe_next(next), "error": None, "qr": credentials.qr_svg(credentials.provisioning_uri(secret, username)),
        "secret_text": credentials.secret_text(secret),
    })


@router.post("/signin/enrol", dependencies=CsrfChecked)
async def enrol_submit(request: Request, session: DbSession, code: Annotated[str, Form()] = "",
                       next: Annotated[str, Form()] = "") -> Response:  # noqa: A002
    web_session = await _pending(request, session, "enrol")
    if web_session is None:
        return RedirectResponse("/signin", status_code=303)
    try:
        started = await service.confirm_enrolment(session, web_session, code)
    except InvalidInput as exc:
        secret, username = await service.current_enrolment_secret(session, web_session)
        return _render(request, "identity/enrol.html", {
            "next": _safe_next(next), "error": exc.detail,
            "qr": credentials.qr_svg(credentials.provisioning_uri(secret, username)),
            "secret_text": credentials.secret_text(secret)}, 422)
    return await _after_sign_in(request, session, started, _safe_next(next))


@router.get("/signin/organization", response_class=HTMLResponse)
async def organization_page(request: Request, session: DbSession, next: str | None = None) -> Response:  # noqa: A002
    web_session = await current_web_session(request, session)
    if web_session is None or web_session.stage != "active":
        return RedirectResponse("/signin", status_code=303)
    memberships = await service.memberships_of(session, web_session.principal_id)
    orgs = await registry_service.organizations_by_code(session, [m.lg_code for m in memberships])
    return _render(request, "identity/organization.html", {
        "next": _safe_next(next), "choices": [(m, orgs[m.lg_code]) for m in memberships]})


@router.post("/signin/organization", dependencies=CsrfChecked)
async def organization_choose(request: Request, session: DbSession, lg_code: Annotated[str, Form()] = "",
                              next: Annotated[str, Form()] = "") -> Response:  # noqa: A002
    web_session = await current_web_session(request, session)
    if web_session is None or web_session.stage != "active":
        return RedirectResponse("/signin", status_code=303)
    tenant, started = await service.act_for(session, web_session, lg_code)
    await session.commit()
    return _renew(request, RedirectResponse(_safe_next(next) or f"/t/{tenant.lg_code}/", status_code=303), started)


@router.post("/signout", dependencies=CsrfChecked)
async def sign_out(request: Request, session: DbSession) -> Response:
    web_session = await current_web_session(request, session)
    if web_session is not None:
        await service.sign_out(session, web_session)
        await session.commit()
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    csrf.rotate(request, response)  # nothing of the signed-in browser's state carries on
    return response
