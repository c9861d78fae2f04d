"""Resident sign-in with the My Number Card (virtual cards from a development CA), over HTTP.
Every refusal is tested, and each leaves an audit entry with its reason."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from kiban.core.audit.models import AuditEntry
from kiban.core.identity.devca import DevCA, load_card
from kiban.core.identity.models import JpkiChallenge
from kiban.core.tenancy.context import unscoped
from kiban.kit.settings import get_settings
from tests.conftest import csrf_of


@pytest.fixture
def ca(tmp_path, monkeypatch) -> DevCA:
    monkeypatch.setenv("KIBAN_JPKI_DEV_CA_ENABLED", "1")
    monkeypatch.setenv("KIBAN_JPKI_DEV_CA_DIR", str(tmp_path / "dev-ca"))
    get_settings.cache_clear()
    authority = DevCA(tmp_path / "dev-ca")
    authority.init()
    yield authority
    get_settings.cache_clear()


async def _challenge(client) -> tuple[str, str]:
    page = await client.get("/signin/card")
    assert page.status_code == 200
    challenge_id = re.search(r'name="challenge_id" value="([^"]+)"', page.text).group(1)
    nonce = re.search(r'<code id="challenge">([^<]+)</code>', page.text).group(1)
    return challenge_id, nonce


async def _submit(client, challenge_id: str, certificate: str, signature: str):
    return await client.post("/signin/card", data={"challenge_id": challenge_id, "certificate": certificate,
                                                   "signature": signature, "csrf_token": csrf_of(client)})


async def _sign_in(client, card_path):
    card = load_card(card_path)
    challenge_id, nonce = await _challenge(client)
    return await _submit(client, challenge_id, card.certificate_pem, card.sign(nonce)), challenge_id, card


async def _refusal_reasons(session) -> list[str]:
    async with unscoped(session, "test: read platform audit"):
        entries = (await session.scalars(select(AuditEntry).where(
            AuditEntry.action == "identity.resident.sign_in", AuditEntry.outcome == "failure"))).all()
    return [e.details.get("reason") for e in entries]


async def test_a_virtual_card_signs_in_and_the_resident_sees_their_access_log(ca, new_client) -> None:
    client = new_client()
    response, _, _ = await _sign_in(client, ca.issue("taro"))
    assert response.status_code == 303 and response.headers["location"] == "/me"
    me = await client.get("/me")
    assert me.status_code == 200 and "わたしの情報の利用記録" in me.text
    assert "identity.resident.sign_in" in me.text  # their own sign-in, on record


async def test_the_same_card_is_the_same_resident_and_no_my_number_is_stored(ca, new_client, session) -> None:
    from kiban.core.identity.models import ResidentIdentity

    path = ca.issue("hanako")
    for _ in range(2):
        response, _, _ = await _sign_in(new_client(), path)
        assert response.status_code == 303
    from kiban.core.identity.jpki import pseudonym

    certificate = load_card(path).certificate
    identities = (await session.scalars(select(ResidentIdentity).where(
        ResidentIdentity.pseudonym == pseudonym(certificate)))).all()
    assert len(identities) == 1
    assert re.fullmatch(r"[0-9a-f]{64}", identities[0].pseudonym)


async def test_bad_signature_is_refused(ca, new_client, session) -> None:
    client = new_client()
    card = load_card(ca.issue("jiro"))
    challenge_id, nonce = await _challenge(client)
    response = await _submit(client, challenge_id, card.certificate_pem, card.sign(nonce + "tampered"))
    assert response.status_code == 401 and "署名を確認できませんでした" in response.text
    assert "bad_signature" in await _refusal_reasons(session)


async def test_certificate_from_an_untrusted_ca_is_refused(ca, tmp_path, new_client, session) -> None:
    rogue = DevCA(tmp_path / "rogue-ca")
    rogue.init()
    response, _, _ = await _sign_in(new_client(), rogue.issue("mallory"))
    assert response.status_code == 401 and "信頼できる認証局" in response.text
    assert "untrusted_ca" in await _refusal_reasons(session)


async def test_expired_certificate_is_refused(ca, new_client, session) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    path = ca.issue("old", not_before=past - timedelta(days=365), not_after=past)
    response, _, _ = await _sign_in(new_client(), path)
    assert response.status_code == 401 and "有効期限が切れています" in response.text
    assert "expired" in await _refusal_reasons(session)


async def test_not_yet_valid_certificate_is_refused(ca, new_client, session) -> None:
    future = datetime.now(UTC) + timedelta(days=1)
    path = ca.issue("early", not_before=future, not_after=future + timedelta(days=365))
    response, _, _ = await _sign_in(new_client(), path)
    assert response.status_code == 401 and "まだ始まっていません" in response.text
    assert "not_yet_valid" in await _refusal_reasons(session)


async def test_revoked_certificate_is_refused(ca, new_client, session) -> None:
    path = ca.issue("lost")
    ca.revoke("lost")
    response, _, _ = await _sign_in(new_client(), path)
    assert response.status_code == 401 and "失効しています" in response.text
    assert "revoked" in await _refusal_reasons(session)


async def test_a_challenge_cannot_be_used_twice(ca, new_client, session) -> None:
    client = new_client()
    response, challenge_id, card = await _sign_in(client, ca.issue("saburo"))
    assert response.status_code == 303
    nonce = (await session.get(JpkiChallenge, challenge_id)).nonce
    again = await _submit(client, challenge_id, card.certificate_pem, card.sign(nonce))
    assert again.status_code == 401 and "すでに使われています" in again.text
    assert "challenge_reused" in await _refusal_reasons(session)


async def test_an_expired_challenge_is_refused(ca, new_client, session) -> None:
    client = new_client()
    card = load_card(ca.issue("shiro"))
    challenge_id, nonce = await _challenge(client)
    await session.execute(update(JpkiChallenge).where(JpkiChallenge.id == challenge_id)
                          .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    await session.commit()
    response = await _submit(client, challenge_id, card.certificate_pem, card.sign(nonce))
    assert response.status_code == 401 and "時間切れ" in response.text
    assert "challenge_expired" in await _refusal_reasons(session)


async def test_a_challenge_issued_to_another_browser_is_refused(ca, new_client, session) -> None:
    victim, attacker = new_client(), new_client()
    card = load_card(ca.issue("goro"))
    challenge_id, nonce = await _challenge(victim)
    await attacker.get("/signin/card")  # the attacker's own CSRF cookie
    response = await _submit(attacker, challenge_id, card.certificate_pem, card.sign(nonce))
    assert response.status_code == 401 and "別の画面" in response.text
    assert "challenge_other_session" in await _refusal_reasons(session)


async def test_virtual_cards_are_refused_unless_the_development_ca_is_enabled(ca, new_client, monkeypatch) -> None:
    path = ca.issue("rokuro")
    monkeypatch.setenv("KIBAN_JPKI_DEV_CA_ENABLED", "0")
    get_settings.cache_clear()
    client = new_client()
    page = await client.get("/signin/card")
    assert 'id="card-file"' not in page.text  # no development panel
    response, _, _ = await _sign_in(client, path)
    assert response.status_code == 401 and "信頼できる認証局" in response.text


async def test_me_requires_a_resident(client, staff) -> None:
    anonymous = await client.get("/me")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin/card")
    clerk = await staff("011002", "staff")
    assert (await clerk.client.get("/me")).status_code == 303


async def test_card_sign_in_renews_the_csrf_token_and_ends_the_previous_session(ca, new_client) -> None:
    client = new_client()
    response, _, _ = await _sign_in(client, ca.issue("taro"))
    first_session = client.cookies.get("kiban_session")
    planted = csrf_of(client)
    response, _, _ = await _sign_in(client, ca.issue("hanako"))
    assert response.status_code == 303
    assert csrf_of(client) != planted  # a token set before (or by someone else) no longer counts
    assert client.cookies.get("kiban_session") != first_session
    old = new_client()
    old.cookies.set("kiban_session", first_session)
    assert (await old.get("/me")).status_code in (302, 303, 401)  # taro's session ended
