"""Staff sign-in pages: password, then TOTP (or enrolment), then the organisation to act for."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.identity import credentials, service
from kiban.core.identity.dependencies import PUBLIC, SESSION_COOKIE, DbSession, current_web_session
from kiban.core.registry import service as registry_service
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


def _render(request: Request, name: str, context: dict, status: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status)


@router.get("/signin", response_class=HTMLResponse)
async def sign_in_page(request: Request, next: str | None = None) -> HTMLResponse:  # noqa: A002
    return _render(request, "identity/signin.html", {"next": _safe_next(next), "error": None, "username": ""})


@router.post("/signin", dependencies=CsrfChecked)
async def sign_in(request: Request, session: DbSession, username: Annotated[str, Form()] = "",
                  password: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "") -> Response:  # noqa: A002
    try:
        started = await service.sign_in_with_password(session, username, password)
    except service.SignInRefused as exc:
        await session.commit()  # the failure counter and the audit entry must stick
        return _render(request, "identity/signin.html",
                       {"next": _safe_next(next), "error": exc.detail, "username": username}, 401)
    await session.commit()
    step = "/signin/totp" if started.session.stage == "password" else "/signin/enrol"
    target = _safe_next(next)
    response = RedirectResponse(step + (f"?next={target}" if target else ""), status_code=303)
    _set_session_cookie(request, response, started.token)
    return response


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
        await service.verify_second_factor(session, web_session, code)
    except service.SignInRefused as exc:
        await session.commit()
        return _render(request, "identity/totp.html", {"next": _safe_next(next), "error": exc.detail}, 401)
    return await _after_sign_in(session, web_session, _safe_next(next))


async def _after_sign_in(session, web_session, target: str | None) -> Response:
    memberships = await service.memberships_of(session, web_session.principal_id)
    if len(memberships) == 1:
        tenant = await service.act_for(session, web_session, memberships[0].lg_code)
        await session.commit()
        return RedirectResponse(target or f"/t/{tenant.lg_code}/", status_code=303)
    await session.commit()
    return RedirectResponse("/signin/organization" + (f"?next={target}" if target else ""), status_code=303)


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
        await service.confirm_enrolment(session, web_session, code)
    except InvalidInput as exc:
        secret, username = await service.current_enrolment_secret(session, web_session)
        return _render(request, "identity/enrol.html", {
            "next": _safe_next(next), "error": exc.detail,
            "qr": credentials.qr_svg(credentials.provisioning_uri(secret, username)),
            "secret_text": credentials.secret_text(secret)}, 422)
    return await _after_sign_in(session, web_session, _safe_next(next))


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
    tenant = await service.act_for(session, web_session, lg_code)
    await session.commit()
    return RedirectResponse(_safe_next(next) or f"/t/{tenant.lg_code}/", status_code=303)


@router.post("/signout", dependencies=CsrfChecked)
async def sign_out(request: Request, session: DbSession) -> Response:
    web_session = await current_web_session(request, session)
    if web_session is not None:
        await service.sign_out(session, web_session)
        await session.commit()
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
