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


class OidcRejected(Exception):
    def __init__(self, reason: str, message: str) -> None:
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
        raise OidcRejected("issuer_mismatch", "認証サービスの設定が一致しません（issuer）。")
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
        raise OidcRejected("state_unknown", "認証の手続きが見つかりません（state 不一致）。最初からやり直してください。")
    if login.browser_hash != browser_binding(csrf_cookie):
        raise OidcRejected("state_other_browser", "この認証は別のブラウザーで開始されたものです。最初からやり直してください。")
    if login.used_at is not None:
        raise OidcRejected("state_reused", "この認証はすでに使われています。最初からやり直してください。")
    if login.expires_at <= now:
        raise OidcRejected("state_expired", "時間切れです。最初からやり直してください。")
    login.used_at = now
    await session.flush()
    meta = await discovery(config)
    async with AsyncOAuth2Client(config.client_id, config.client_secret, redirect_uri=login.redirect_uri,
                                 code_challenge_method="S256") as client:
        try:
            token = await client.fetch_token(meta["token_endpoint"], code=code,
                                             code_verifier=login.code_verifier, grant_type="authorization_code")
        except Exception as exc:  # noqa: BLE001 - any failure of the exchange is a refusal
            raise OidcRejected("token_exchange", "認証サービスから応答を受け取れませんでした。") from exc
    claims = await verify_id_token(config, meta, token.get("id_token"), login.nonce)
    if config.corporate_number_claim not in claims and token.get("access_token") and meta.get("userinfo_endpoint"):
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(meta["userinfo_endpoint"],
                                      headers={"Authorization": f"Bearer {token['access_token']}"})
            if response.status_code == 200:
                info = response.json()
                if info.get("sub") == claims["sub"]:
                    claims = {**info, **claims}
    return claims, login


async def verify_id_token(config: ProviderConfig, meta: dict[str, Any], id_token: str | None,
                          nonce: str) -> dict[str, Any]:
    if not id_token:
        raise OidcRejected("no_id_token", "認証サービスから本人確認の情報が届きませんでした。")
    jwks = await _get_json(meta["jwks_uri"], _jwks_cache)
    try:
        try:
            decoded = jwt.decode(id_token, KeySet.import_key_set(jwks))
        except JoseError:
            # The provider may have rotated its keys since we cached them.
            jwks = await _get_json(meta["jwks_uri"], _jwks_cache, refresh=True)
            decoded = jwt.decode(id_token, KeySet.import_key_set(jwks))
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": config.issuer},
            aud={"essential": True, "value": config.client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        registry.validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise OidcRejected("id_token_invalid", "本人確認の情報（ID トークン）を検証できませんでした。") from exc
    return dict(decoded.claims)


def new_business_identity(issuer: str, subject: str, principal_id: str, corporate_number: str) -> BusinessIdentity:
    now = utcnow()
    return BusinessIdentity(issuer=issuer, subject=subject, principal_id=principal_id,
                            corporate_number=corporate_number, created_at=now, last_sign_in_at=now)


def new_principal_id() -> str:
    return str(uuid.uuid4())
