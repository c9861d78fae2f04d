"""Business sign-in through OpenID Connect against a real provider on localhost
(oidc-provider-mock: authlib-based, issues signed ID tokens and serves its JWKS), as GビズID."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from oidc_provider_mock import run_server_in_thread

from kiban.core.identity import oidc
from kiban.core.registry.corporate_number import corporate_check_digit, corporate_number_problem
from kiban.kit.settings import get_settings
from tests.core.test_japanese_only import foreign_words, read

CLIENT_ID = "kiban-test-client"
CORPORATE_NUMBER = corporate_check_digit("123456789012") + "123456789012"


@pytest.fixture(scope="module")
def provider():
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def gbizid(provider, monkeypatch):
    monkeypatch.setenv("KIBAN_GBIZID_ISSUER", provider)
    monkeypatch.setenv("KIBAN_GBIZID_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("KIBAN_GBIZID_CLIENT_SECRET", "test-secret")
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the test provider speaks plain HTTP
    get_settings.cache_clear()
    oidc._discovery_cache.clear()
    oidc._jwks_cache.clear()
    yield provider
    get_settings.cache_clear()


def _user(provider: str, sub: str, **claims) -> None:
    httpx.put(f"{provider}/users/{sub}", json=claims).raise_for_status()


async def _authorize(client, provider: str, sub: str) -> tuple[str, dict[str, str]]:
    """Our app sends the browser to the provider; the person signs in there; the provider sends
    the browser back with a code. Returns our callback path and its query."""
    start = await client.get("/signin/business")
    assert start.status_code == 303
    authorize_url = start.headers["location"]
    params = parse_qs(urlsplit(authorize_url).query)
    assert params["code_challenge_method"] == ["S256"] and params["code_challenge"][0]
    assert params["state"][0] and params["nonce"][0]
    approved = httpx.post(authorize_url, data={"sub": sub, "action": "allow"}, follow_redirects=False)
    assert approved.status_code in (302, 303), approved.text
    back = urlsplit(approved.headers["location"])
    return back.path, {k: v[0] for k, v in parse_qs(back.query).items()}


async def test_business_user_signs_in_and_is_linked_to_their_corporation(gbizid, new_client) -> None:
    _user(gbizid, "gbiz-user-1", name="株式会社テスト 担当者", corporate_number=CORPORATE_NUMBER)
    client = new_client()
    path, query = await _authorize(client, gbizid, "gbiz-user-1")
    assert path == "/signin/business/callback" and query["code"]
    done = await client.get(path, params=query)
    assert done.status_code == 303 and done.headers["location"] == "/business"
    page = await client.get("/business")
    assert page.status_code == 200 and CORPORATE_NUMBER in page.text and "株式会社テスト 担当者" in page.text


async def test_a_callback_cannot_be_replayed(gbizid, new_client) -> None:
    _user(gbizid, "gbiz-user-2", name="担当", corporate_number=CORPORATE_NUMBER)
    client = new_client()
    path, query = await _authorize(client, gbizid, "gbiz-user-2")
    assert (await client.get(path, params=query)).status_code == 303
    again = await client.get(path, params=query)
    assert again.status_code == 401 and "すでに使われています" in again.text


async def test_a_forged_state_is_refused(gbizid, new_client) -> None:
    _user(gbizid, "gbiz-user-3", name="担当", corporate_number=CORPORATE_NUMBER)
    client = new_client()
    path, query = await _authorize(client, gbizid, "gbiz-user-3")
    forged = await client.get(path, params={**query, "state": "attacker-state"})
    assert forged.status_code == 401 and "この画面から始められたものではない" in forged.text
    assert "state" not in read(forged)[0]


async def test_a_callback_in_another_browser_is_refused(gbizid, new_client) -> None:
    _user(gbizid, "gbiz-user-4", name="担当", corporate_number=CORPORATE_NUMBER)
    victim, attacker = new_client(), new_client()
    path, query = await _authorize(victim, gbizid, "gbiz-user-4")
    await attacker.get("/")
    response = await attacker.get(path, params=query)
    assert response.status_code == 401 and "別のブラウザー" in response.text


async def test_an_invalid_corporate_number_is_refused(gbizid, new_client) -> None:
    bad = CORPORATE_NUMBER[:-1] + str((int(CORPORATE_NUMBER[-1]) + 1) % 10)
    _user(gbizid, "gbiz-user-5", name="担当", corporate_number=bad)
    client = new_client()
    path, query = await _authorize(client, gbizid, "gbiz-user-5")
    response = await client.get(path, params=query)
    assert response.status_code == 401 and "検査数字" in response.text


async def test_provider_denial_is_explained(gbizid, new_client) -> None:
    client = new_client()
    response = await client.get("/signin/business/callback", params={"error": "access_denied", "state": "x"})
    assert response.status_code == 401 and "完了しませんでした" in response.text
    assert "もう一度「GビズID でサインイン」から始めてください" in response.text


def test_every_refusal_says_in_japanese_what_happened_and_what_to_do() -> None:
    import inspect

    raised = set(re.findall(r'OidcRejected\("(\w+)"', inspect.getsource(oidc)))
    assert raised <= set(oidc.REFUSALS), raised - set(oidc.REFUSALS)  # each refusal has its message
    for reason, message in oidc.REFUSALS.items():
        assert not foreign_words(message), (reason, message)  # no 「（issuer）」「（state 不一致）」
        assert "もう一度" in message or "運用担当" in message, (reason, message)  # what to do next
        assert oidc.OidcRejected(reason).message == message


async def test_business_page_requires_a_business_sign_in(client) -> None:
    response = await client.get("/business")
    assert response.status_code == 303 and response.headers["location"] == "/signin/business"


# -- the ID token checks, one by one, with keys we control -----------------------------------

ISSUER = "https://gbizid.example"


@pytest.fixture
def signing_key():
    key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})
    oidc._jwks_cache["https://gbizid.example/jwks"] = (time.monotonic(), KeySet([key]).as_dict(private=False))
    yield key
    oidc._jwks_cache.clear()


def _token(key, **overrides) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT_ID, "sub": "u1", "nonce": "n1", "iat": now, "exp": now + 300,
              **overrides}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


CONFIG = oidc.ProviderConfig(ISSUER, CLIENT_ID, None, "openid", "corporate_number")
META = {"jwks_uri": "https://gbizid.example/jwks"}


async def test_a_valid_id_token_is_accepted(signing_key) -> None:
    claims = await oidc.verify_id_token(CONFIG, META, _token(signing_key), "n1")
    assert claims["sub"] == "u1"


@pytest.mark.parametrize("overrides", [
    {"iss": "https://evil.example"},
    {"aud": "another-client"},
    {"nonce": "replayed-nonce"},
    {"exp": int(time.time()) - 60},
])
async def test_id_tokens_with_wrong_issuer_audience_nonce_or_expiry_are_refused(signing_key, overrides) -> None:
    with pytest.raises(oidc.OidcRejected):
        await oidc.verify_id_token(CONFIG, META, _token(signing_key, **overrides), "n1")


async def test_an_id_token_signed_by_another_key_is_refused(signing_key, monkeypatch) -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})

    async def no_refresh(url, cache, *, refresh=False):
        return cache[url][1]

    monkeypatch.setattr(oidc, "_get_json", no_refresh)
    with pytest.raises(oidc.OidcRejected):
        await oidc.verify_id_token(CONFIG, META, _token(other), "n1")


def test_corporate_number_check_digit() -> None:
    assert corporate_number_problem("7000012050002") is None  # 国税庁
    assert "検査数字" in corporate_number_problem("8000012050002")
    assert "13桁" in corporate_number_problem("700001205000")
    assert "数字以外" in corporate_number_problem("70000120500O2")
