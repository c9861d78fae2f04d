"""The JPKI signature of a submission to a procedure marked 本人確認が必要.

The confirmation page shows ``message``: 「kiban-forms-v1:」 and the SHA-256 of the canonical JSON
of what is being applied for (tenant, form, version, answers, and the confirmation's one-time
token, which ties the signature to this one submission). The resident's card signs it (the
sign-in card's key; with a real card reader, the 署名用電子証明書). On submit the signature is
checked like a card sign-in (``identity.jpki.verify_card``: signature, chain to the J-LIS CA,
validity, revocation) and the certificate must be the signed-in resident's own card. Staff
verify it again later from what is stored: the answers as kept, the certificate, the signature.
Any change to the stored answers breaks it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.identity import jpki
from kiban.core.identity.models import ResidentIdentity
from kiban.kit.errors import InvalidInput

PREFIX = "kiban-forms-v1:"


def message(lg_code: str, form_id: str, version: int, answers: dict[str, Any], form_token: str) -> str:
    canonical = json.dumps({"lg_code": lg_code, "form_id": form_id, "version": version, "answers": answers,
                            "form_token": form_token}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def check(session: AsyncSession, text: str, certificate_pem: str, signature: str, principal_id: str) -> None:
    """InvalidInput (Japanese, naming the field) unless ``signature`` over ``text`` verifies with a
    card certificate that chains to a trusted CA and belongs to ``principal_id``."""
    if not certificate_pem.strip() or not signature.strip():
        raise InvalidInput("電子証明書と署名を貼り付けてください。",
                           errors=[{"field": "signature", "message": "電子証明書と署名を貼り付けてください。"}])
    try:
        certificate = jpki.parse_certificate(certificate_pem)
        jpki.verify_card(certificate, text, signature.strip(), jpki.trust_config())
    except (jpki.CardRejected, ValueError) as exc:
        reason = getattr(exc, "message", None) or "署名を確認できませんでした。"
        raise InvalidInput(f"電子署名を確認できませんでした: {reason}",
                           errors=[{"field": "signature", "message": f"電子署名を確認できませんでした: {reason}"}]) from None
    owner = await session.scalar(select(ResidentIdentity.principal_id)
                                 .where(ResidentIdentity.pseudonym == jpki.pseudonym(certificate)))
    if owner != principal_id:
        raise InvalidInput("サインインに使ったマイナンバーカードで署名してください。",
                           errors=[{"field": "signature", "message": "サインインに使ったマイナンバーカードで署名してください。"}])


@dataclass
class Verdict:
    signed: bool
    valid: bool
    detail: str


def verify_stored(lg_code: str, submission) -> Verdict:
    """Staff's later check, from what is stored (no database access)."""
    if not submission.signature or not submission.signer_certificate:
        return Verdict(False, False, "電子署名はありません。")
    text = message(lg_code, submission.form_id, submission.version_number, submission.answers, submission.form_token)
    try:
        certificate = jpki.parse_certificate(submission.signer_certificate)
        jpki.verify_signature(certificate, text, submission.signature)
        jpki._issuer_of(certificate, jpki.trust_config().anchors)  # still chains to a trusted CA
    except (jpki.CardRejected, ValueError) as exc:
        reason = getattr(exc, "message", None) or "署名を確認できませんでした。"
        return Verdict(True, False, f"電子署名を検証できません（申請の内容が変わったか、署名が正しくありません）: {reason}")
    return Verdict(True, True, "電子署名を検証しました。申請の内容は署名されたときのままで、電子証明書は信頼できる認証局が"
                               f"発行したものです（有効期限 {certificate.not_valid_after_utc:%Y年%m月%d日}）。")
