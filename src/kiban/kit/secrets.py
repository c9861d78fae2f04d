"""The deployment's secret key and what is derived from it.

``KIBAN_SECRET_KEY`` in production. For the embedded default a random key is created once in
``./var/secret.key`` (mode 0600), so that a demo needs no set-up and restarts keep sessions
and TOTP enrolments valid.
"""

from __future__ import annotations

import base64
import os
import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kiban.kit.settings import get_settings


def _key_file() -> Path:
    return Path("var").resolve() / "secret.key"


@lru_cache
def secret_key() -> bytes:
    configured = get_settings().secret_key
    if configured:
        return configured.encode()
    path = _key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def derived_key(purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=f"kiban:{purpose}".encode()).derive(secret_key())


def fernet(purpose: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derived_key(purpose)))
