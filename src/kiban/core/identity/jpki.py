"""公的個人認証 (JPKI) sign-in, as the My Number Card's 利用者証明用電子証明書 works.

The server issues a single-use random challenge bound to the browser; the card's key signs
it; the server then checks, in this order, and refuses at the first failure:

1. the challenge exists, was issued to this browser, is unused and unexpired;
2. the signature verifies with the certificate's public key (RSA PKCS#1 v1.5 / SHA-256, or ECDSA);
3. the certificate was issued by a configured trust anchor (J-LIS CA certificates in
   production; the development CA only when explicitly enabled), checked by signature;
4. the certificate and its issuer are within their validity dates;
5. the certificate is not on the issuer's CRL (a CRL that is missing, badly signed or past its
   next update is itself a refusal: revocation status unknown is not "not revoked").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.identity.devca import DevCA
from kiban.core.identity.models import JpkiChallenge
from kiban.kit.db import utcnow
from kiban.kit.secrets import derived_key
from kiban.kit.settings import get_settings


class CardRejected(Exception):
    """Why a card sign-in was refused: ``reason`` for the audit log, ``message`` for the person."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class TrustConfig:
    anchors: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...]
    dev_ca_enabled: bool


def _load_pem_certs(path: Path) -> list[x509.Certificate]:
    return list(x509.load_pem_x509_certificates(path.read_bytes()))


def _load_crl(path: Path) -> x509.CertificateRevocationList:
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def _paths(value: str | None) -> list[Path]:
    return [Path(p.strip()) for p in (value or "").split(",") if p.strip()]


def dev_ca() -> DevCA:
    return DevCA(Path(get_settings().jpki_dev_ca_dir))


def trust_config() -> TrustConfig:
    """Trust anchors and CRLs from configuration (read per sign-in, so a renewed CRL applies
    at once), plus the development CA when it is enabled."""
    settings = get_settings()
    anchors: list[x509.Certificate] = []
    crls: list[x509.CertificateRevocationList] = []
    for path in _paths(settings.jpki_trust_anchors):
        anchors.extend(_load_pem_certs(path))
    for path in _paths(settings.jpki_crls):
        crls.append(_load_crl(path))
    if settings.jpki_dev_ca_enabled:
        ca = dev_ca()
        if ca.exists():
            anchors.extend(_load_pem_certs(ca.cert_path))
            crls.append(_load_crl(ca.crl_path))
    return TrustConfig(tuple(anchors), tuple(crls), settings.jpki_dev_ca_enabled)


def browser_binding(csrf_cookie: str | None) -> str:
    return hashlib.sha256((csrf_cookie or "").encode()).hexdigest()


async def issue_challenge(session: AsyncSession, csrf_cookie: str | None) -> JpkiChallenge:
    now = utcnow()
    challenge = JpkiChallenge(
        id=str(uuid.uuid4()), nonce=f"kiban-jpki:{secrets.token_urlsafe(32)}",
        browser_hash=browser_binding(csrf_cookie), created_at=now,
        expires_at=now + timedelta(seconds=get_settings().jpki_challenge_seconds),
    )
    session.add(challenge)
    await session.flush()
    return challenge


async def consume_challenge(session: AsyncSession, challenge_id: str, csrf_cookie: str | None) -> JpkiChallenge:
    challenge = await session.get(JpkiChallenge, challenge_id) if challenge_id else None
    now = utcnow()
    if challenge is None:
        raise CardRejected("challenge_unknown", "認証の手続きが見つかりません。最初からやり直してください。")
    # spent first: after a sign-in the browser holds a new CSRF token, and a replay should
    # still be told the plain truth (already used), not "another browser"
    if challenge.used_at is not None:
        raise CardRejected("challenge_reused", "この認証はすでに使われています。最初からやり直してください。")
    if not hmac.compare_digest(challenge.browser_hash, browser_binding(csrf_cookie)):
        raise CardRejected("challenge_other_session", "この認証は別の画面（別のブラウザー）で開始されたものです。最初からやり直してください。")
    if challenge.expires_at <= now:
        raise CardRejected("challenge_expired", "時間切れです。最初からやり直してください。")
    challenge.used_at = now
    await session.flush()
    return challenge


def parse_certificate(raw: str) -> x509.Certificate:
    text = (raw or "").strip()
    try:
        if "-----BEGIN CERTIFICATE-----" in text:
            return x509.load_pem_x509_certificate(text.encode())
        return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise CardRejected("certificate_unreadable", "電子証明書を読み取れませんでした。") from exc


def verify_signature(certificate: x509.Certificate, message: str, signature_b64: str) -> None:
    try:
        signature = base64.b64decode((signature_b64 or "").strip(), validate=True)
    except binascii.Error:
        raise CardRejected("signature_unreadable", "署名を読み取れませんでした。") from None
    key = certificate.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        else:
            raise CardRejected("key_type", "対応していない種類の鍵です。")
    except InvalidSignature:
        raise CardRejected("bad_signature", "署名を確認できませんでした。カードと暗証番号をご確認ください。") from None


def _issuer_of(certificate: x509.Certificate, anchors: tuple[x509.Certificate, ...]) -> x509.Certificate:
    for anchor in anchors:
        if anchor.subject != certificate.issuer:
            continue
        try:
            certificate.verify_directly_issued_by(anchor)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return anchor
    raise CardRejected("untrusted_ca", "信頼できる認証局が発行した電子証明書ではありません。")


def _check_dates(certificate: x509.Certificate, now: datetime, what: str) -> None:
    if now < certificate.not_valid_before_utc:
        raise CardRejected("not_yet_valid", f"{what}の有効期間がまだ始まっていません。")
    if now > certificate.not_valid_after_utc:
        raise CardRejected("expired", f"{what}の有効期限が切れています。市区町村の窓口で更新してください。")


def _check_revocation(certificate: x509.Certificate, issuer: x509.Certificate,
                      crls: tuple[x509.CertificateRevocationList, ...], now: datetime) -> None:
    for crl in crls:
        if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):
            continue
        if crl.next_update_utc is not None and crl.next_update_utc < now:
            raise CardRejected("crl_stale", "失効情報が古いため、電子証明書の有効性を確認できません。時間をおいてお試しください。")
        if crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None:
            raise CardRejected("revoked", "この電子証明書は失効しています。市区町村の窓口にお問い合わせください。")
        return
    raise CardRejected("crl_missing", "失効情報を確認できないため、サインインできません。")


def verify_card(certificate: x509.Certificate, message: str, signature_b64: str,
                trust: TrustConfig, now: datetime | None = None) -> x509.Certificate:
    """Steps 2–5 above. Returns the issuing trust anchor."""
    now = now or utcnow()
    verify_signature(certificate, message, signature_b64)
    issuer = _issuer_of(certificate, trust.anchors)
    _check_dates(certificate, now, "電子証明書")
    _check_dates(issuer, now, "認証局の証明書")
    _check_revocation(certificate, issuer, trust.crls, now)
    return issuer


def pseudonym(certificate: x509.Certificate) -> str:
    """A stable, keyed, non-reversible identifier for the card certificate."""
    material = f"{certificate.issuer.rfc4514_string()}|{certificate.serial_number}".encode()
    return hmac.new(derived_key("jpki-pseudonym"), material, hashlib.sha256).hexdigest()
