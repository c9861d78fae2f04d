"""Business users: sign-in through GビズID (OpenID Connect) and their page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from kiban.core.identity import oidc, service
from kiban.core.identity.dependencies import PUBLIC, DbSession, SignInRequired, current_web_session
from kiban.core.identity.models import BusinessIdentity, Principal
from kiban.core.identity.web import _renew, _safe_next, end_previous_session
from kiban.kit.csrf import COOKIE as CSRF_COOKIE
from kiban.kit.templating import templates

router = APIRouter(include_in_schema=False)


NOT_CONFIGURED = ("この環境では、GビズID によるサインインはまだ使えません（運用担当が設定していません）。"
                  "事業者の方は運用担当にお問い合わせください。")


def _refused(request: Request, message: str, status: int = 401, *, retry: bool = True) -> HTMLResponse:
    """The business sign-in error page; ``retry`` False when trying again cannot help."""
    return templates.TemplateResponse(request, "identity/business_error.html",
                                      {"message": message, "retry": retry}, status_code=status)


@router.get("/signin/business", dependencies=[PUBLIC])
async def business_sign_in(request: Request, session: DbSession, next: str | None = None) -> Response:  # noqa: A002
    config = oidc.provider_config()
    if config is None:
        # The operator's variable names are in the README and ``kiban check``, not on this page.
        return _refused(request, NOT_CONFIGURED, 503, retry=False)
    try:
        url = await oidc.start(session, config, redirect_uri=str(request.url_for("business_callback")),
                               csrf_cookie=request.state.csrf_token, next_url=_safe_next(next))
    except oidc.OidcRejected as exc:  # the provider answers as another issuer
        return _refused(request, exc.message, 503, retry=False)
    except Exception:  # noqa: BLE001 - the provider being down is the person's problem to hear about
        return _refused(request, oidc.REFUSALS["provider_unreachable"], 503)
    await session.commit()
    return RedirectResponse(url, status_code=303)


@router.get("/signin/business/callback", name="business_callback", dependencies=[PUBLIC])
async def business_callback(request: Request, session: DbSession, state: str = "", code: str = "",
                            error: str | None = None) -> Response:
    config = oidc.provider_config()
    if config is None:
        return _refused(request, NOT_CONFIGURED, 503, retry=False)
    if error:
        await service.refuse_gbizid(session, f"provider:{error}")
        await session.commit()
        return _refused(request, oidc.REFUSALS["provider_denied"])
    try:
        claims, login = await oidc.finish(session, config, state=state, code=code,
                                          csrf_cookie=request.cookies.get(CSRF_COOKIE))
        started = await service.sign_in_with_gbizid(session, config, claims, login)
    except oidc.OidcRejected as exc:
        await service.refuse_gbizid(session, exc.reason)
        await session.commit()
        return _refused(request, exc.message)
    except service.SignInRefused as exc:
        await session.commit()
        return _refused(request, exc.detail)
    await end_previous_session(request, session)
    await session.commit()
    response = RedirectResponse(login.next_url or "/business", status_code=303)
    return _renew(request, response, started)


async def _current_business(request: Request, session: DbSession):
    web_session = await current_web_session(request, session)
    principal = await session.get(Principal, web_session.principal_id) if web_session else None
    if web_session is None or web_session.stage != "active" or principal is None or principal.kind != "business":
        raise SignInRequired("GビズID でサインインしてください。", extra={"sign_in_url": "/signin/business"})
    return principal


_current_business.__kiban_permission__ = "identity.self.read"
CurrentBusiness = Annotated[Principal, Depends(_current_business)]


@router.get("/business", response_class=HTMLResponse)
async def business_home(request: Request, session: DbSession, principal: CurrentBusiness) -> HTMLResponse:
    identity = (await session.scalars(select(BusinessIdentity).where(BusinessIdentity.principal_id == principal.id))).first()
    return templates.TemplateResponse(request, "identity/business.html",
                                      {"principal": principal, "identity": identity})
