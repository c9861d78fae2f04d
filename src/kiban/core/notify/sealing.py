"""Sealed notification bodies: a message whose body is a secret (a staff invitation's one-time
link) waits in the outbox encrypted, and is wiped once it has gone.

``seal`` encrypts with AES-256-GCM under a key derived from the deployment's secret
(``kit.secrets.derived_key``, HKDF-SHA256, purpose ``notify.sealed-body``); the associated data is
the notification's ``lg_code/id``, so a sealed body copied onto another row does not open. The
stored text is ``sealed:v1:`` + base64url(nonce ‖ ciphertext), in the ordinary ``body`` column
(no schema change). Delivery (delivery.py) opens it only to build the SMTP message; when the
message is accepted (送信済み) or given up (失敗) the body is replaced by a note, so the secret
exists at rest only while the message waits.

If the secret key changes while a sealed message waits, it cannot be opened any more: delivery
marks it 失敗 with a Japanese reason (the invitation can be made again); it is never sent garbled.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kiban.kit.secrets import derived_key

PREFIX = "sealed:v1:"
PURPOSE = "notify.sealed-body"
WIPED_SENT = "送信済みのため本文は消去しました。"
WIPED_FAILED = "送信できなかったため本文は消去しました。"
PENDING_LABEL = "本文は暗号化して保存しています（送信後に消去します）。"


class Unopenable(Exception):
    """A sealed body that does not open with this deployment's key (the key changed)."""


def _aad(lg_code: str, notification_id: str) -> bytes:
    return f"{lg_code}/{notification_id}".encode()


def seal(body: str, lg_code: str, notification_id: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(derived_key(PURPOSE)).encrypt(nonce, body.encode("utf-8"), _aad(lg_code, notification_id))
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def is_sealed(body: str | None) -> bool:
    return bool(body) and body.startswith(PREFIX)


def open_body(body: str, lg_code: str, notification_id: str) -> str:
    """The clear body of a sealed one (an unsealed body is returned as it is)."""
    if not is_sealed(body):
        return body
    try:
        raw = base64.urlsafe_b64decode(body[len(PREFIX):].encode("ascii"))
        clear = AESGCM(derived_key(PURPOSE)).decrypt(raw[:12], raw[12:], _aad(lg_code, notification_id))
    except (InvalidTag, ValueError) as exc:
        raise Unopenable("sealed notification body does not open with this key") from exc
    return clear.decode("utf-8")


def shown(body: str | None) -> str:
    """What a screen may show of a stored body: never the sealed text itself."""
    return PENDING_LABEL if is_sealed(body) else (body or "")
