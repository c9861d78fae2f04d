"""Business sign-in through OpenID Connect, as GビズID offers it.

Authorization code flow with PKCE (S256). The state, nonce and code verifier are kept server
side, bound to the browser and single-use; the ID token's signature is verified against the
provider's JWKS, and its issuer, audience, expiry and nonce are checked (joserfc). The provider
(issuer, client id and secret) is configuration; its endpoints come from discovery.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.identity.jpki import browser_binding
from kiban.core.identity.models import BusinessIdentity, OidcLogin
from kiban.kit.db import utcnow
from kiban.kit.settings import get_settings

LOGIN_SECONDS = 600
# Every refusal says what happened and what to do, in words a business user reads.
AGAIN = "もう一度「GビズID でサインイン」から始めてください。"
REFUSALS = {
    "issuer_mismatch": ("GビズID の接続先が、この環境に設定された接続先と一致しないため、安全のためサインインを中止しました。"
                        "お手数ですが運用担当にお知らせください。"),
    "provider_unreachable": f"GビズID に接続できませんでした。時間をおいて、{AGAIN}",
    "state_unknown": f"このサインインの手続きは、この画面から始められたものではないため、受け付けられませんでした。{AGAIN}",
    "state_other_browser": f"このサインインは別のブラウザーで始められたものです。いまお使いのブラウザーで、{AGAIN}",
    "state_reused": f"このサインインの手続きはすでに使われています。{AGAIN}",
    "state_expired": f"サインインを始めてから{LOGIN_SECONDS // 60}分が過ぎたため、時間切れになりました。{AGAIN}",
    "token_exchange": f"GビズID から本人確認の結果を受け取れませんでした。時間をおいて、{AGAIN}",
    "no_id_token": f"GビズID から本人確認の情報が届きませんでした。{AGAIN}続く場合は運用担当にお知らせください。",
    "id_token_invalid": ("GビズID から届いた本人確認の情報が正しいことを確かめられなかったため、サインインを中止しました。"
                         f"{AGAIN}続く場合は運用担当にお知らせください。"),
    "provider_denied": ("GビズID の画面でサインインが取り消されたか、許可されなかったため、サインインは完了しませんでした。"
                        f"{AGAIN}"),
}


class OidcRejected(Exception):
    """A refused sign-in: ``reason`` for the audit log, ``message`` (from ``REFUSALS``) for the person."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        message = message or REFUSALS[reason]
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ProviderConfig:
    issuer: str
    client_id: str
    client_secret: str | None
    scope: str
    corporate_number_claim: str


def provider_config() -> ProviderConfig | None:
    settings = get_settings()
    if not (settings.gbizid_issuer and settings.gbizid_client_id):
        return None
    return ProviderConfig(settings.gbizid_issuer.rstrip("/"), settings.gbizid_client_id,
                          settings.gbizid_client_secret, settings.gbizid_scope,
                          settings.gbizid_corporate_number_claim)


_discovery_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_jwks_cache: dict[str, tuple[float, dict[str, Any]]] = {}
CACHE_SECONDS = 300


async def _get_json(url: str, cache: dict, *, refresh: bool = False) -> dict[str, Any]:
    cached = cache.get(url)
    if cached and not refresh and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
        response.raise_for_status()
        document = response.json()
    cache[url] = (time.monotonic(), document)
    return document


async def discovery(config: ProviderConfig) -> dict[str, Any]:
    document = await _get_json(f"{config.issuer}/.well-known/openid-configuration", _discovery_cache)
    if document.get("issuer", "").rstrip("/") != config.issuer:
        raise OidcRejected("issuer_mismatch")
    return document


async def start(session: AsyncSession, config: ProviderConfig, *, redirect_uri: str, csrf_cookie: str | None,
                next_url: str | None) -> str:
    """The provider URL to send the browser to."""
    meta = await discovery(config)
    now = utcnow()
    login = OidcLogin(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
                      code_verifier=secrets.token_urlsafe(64), browser_hash=browser_binding(csrf_cookie),
                      redirect_uri=redirect_uri, next_url=next_url, created_at=now,
                      expires_at=now + timedelta(seconds=LOGIN_SECONDS))
    session.add(login)
    await session.flush()
    client = AsyncOAuth2Client(config.client_id, config.client_secret, scope=config.scope,
                               redirect_uri=redirect_uri, code_challenge_method="S256")
    url, _ = client.create_authorization_url(meta["authorization_endpoint"], state=login.state,
                                             nonce=login.nonce, code_verifier=login.code_verifier)
    return url


async def finish(session: AsyncSession, config: ProviderConfig, *, state: str, code: str,
                 csrf_cookie: str | None) -> tuple[dict[str, Any], OidcLogin]:
    """Exchange the code and verify the ID token. Returns its claims (merged with userinfo)."""
    login = await session.get(OidcLogin, state) if state else None
    now = utcnow()
    if login is None:
        raise OidcRejected("state_unknown")
    if login.used_at is not None:  # before the browser check: see jpki.consume_challenge
        raise OidcRejected("state_reused")
    if login.browser_hash != browser_binding(csrf_cookie):
        raise OidcRejected("state_other_browser")
    if login.expires_at <= now:
        raise OidcRejected("state_expired")
    login.used_at = now
    await session.flush()
    try:
        meta = await discovery(config)
    except httpx.HTTPError as exc:
        raise OidcRejected("provider_unreachable") from exc
    async with AsyncOAuth2Client(config.client_id, config.client_secret, redirect_uri=login.redirect_uri,
                                 code_challenge_method="S256") as client:
        try:
            token = await client.fetch_token(meta["token_endpoint"], code=code,
                                             code_verifier=login.code_verifier, grant_type="authorization_code")
        except Exception as exc:  # noqa: BLE001 - any failure of the exchange is a refusal
            raise OidcRejected("token_exchange") from exc
    claims = await verify_id_token(config, meta, token.get("id_token"), login.nonce)
    if config.corporate_number_claim not in claims and token.get("access_token") and meta.get("userinfo_endpoint"):
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.get(meta["userinfo_endpoint"],
                                          headers={"Authorization": f"Bearer {token['access_token']}"})
        except httpx.HTTPError as exc:
            raise OidcRejected("provider_unreachable") from exc
        if response.status_code == 200:
            info = response.json()
            if info.get("sub") == claims["sub"]:
                claims = {**info, **claims}
    return claims, login


async def verify_id_token(config: ProviderConfig, meta: dict[str, Any], id_token: str | None,
                          nonce: str) -> dict[str, Any]:
    if not id_token:
        raise OidcRejected("no_id_token")
    try:
        jwks = await _get_json(meta["jwks_uri"], _jwks_cache)
        try:
            decoded = jwt.decode(id_token, KeySet.import_key_set(jwks))
        except JoseError:
            # The provider may have rotated its keys since we cached them.
            jwks = await _get_json(meta["jwks_uri"], _jwks_cache, refresh=True)
            decoded = jwt.decode(id_token, KeySet.import_key_set(jwks))
    except httpx.HTTPError as exc:
        raise OidcRejected("provider_unreachable") from exc
    except (JoseError, ValueError) as exc:
        raise OidcRejected("id_token_invalid") from exc
    try:
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": config.issuer},
            aud={"essential": True, "value": config.client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        registry.validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise OidcRejected("id_token_invalid") from exc
    return dict(decoded.claims)


def new_business_identity(issuer: str, subject: str, principal_id: str, corporate_number: str) -> BusinessIdentity:
    now = utcnow()
    return BusinessIdentity(issuer=issuer, subject=subject, principal_id=principal_id,
                            corporate_number=corporate_number, created_at=now, last_sign_in_at=now)


def new_principal_id() -> str:
    return str(uuid.uuid4())
