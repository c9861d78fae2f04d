"""Password hashing (argon2id) and TOTP (RFC 6238), with the secret encrypted at rest."""

from __future__ import annotations

import base64
import secrets
import time

import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from kiban.kit.secrets import fernet

# argon2id with the library's recommended parameters (RFC 9106's low-memory profile: t=3, 64 MiB, p=4)
PRODUCTION_HASHER = PasswordHasher()
_hasher = PRODUCTION_HASHER
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def use_hasher(hasher: PasswordHasher) -> None:
    """Hash and verify with other argon2id parameters from now on. Only the test suite calls it:
    its thousands of sign-ins at 0.1 s each cost CI minutes. Stored hashes carry their own
    parameters, so either kind verifies; tests/core/test_password_hashing.py checks production's."""
    global _hasher, _DUMMY_HASH
    _hasher = hasher
    _DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))


TOTP_DIGITS = 6
TOTP_STEP = 30
ISSUER = "Kiban"
MIN_PASSWORD_LENGTH = 12


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def usable_hash(password_hash: str | None) -> bool:
    """Whether a stored value is a password hash at all: an invited account that has not set
    its password yet holds the marker ``!invited``, which no password matches."""
    return bool(password_hash) and password_hash.startswith("$argon2")


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches. Exactly one argon2 verification runs whatever is stored:
    with no usable hash (an unknown user, an invitation not yet accepted) a dummy hash is
    checked, so that every refusal costs the same ~0.1 s and timing tells no account apart."""
    usable = usable_hash(password_hash)
    try:
        return _hasher.verify(password_hash if usable else _DUMMY_HASH, password) and usable
    except VerificationError:
        return False
    except InvalidHashError:  # a damaged stored value is refused only after the same work
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        return False


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"パスワードは{MIN_PASSWORD_LENGTH}文字以上にしてください。"
    return None


def new_totp_secret() -> bytes:
    return secrets.token_bytes(20)


def encrypt_secret(secret: bytes) -> str:
    return fernet("totp").encrypt(secret).decode()


def decrypt_secret(token: str) -> bytes:
    return fernet("totp").decrypt(token.encode())


def _totp(secret: bytes) -> TOTP:
    return TOTP(secret, TOTP_DIGITS, SHA1(), TOTP_STEP)


def totp_code(secret: bytes, at: float | None = None) -> str:
    return _totp(secret).generate(int(at if at is not None else time.time())).decode()


def verify_totp(secret: bytes, code: str, *, last_step: int | None, at: float | None = None) -> int | None:
    """The time step the code belongs to (±1 step for clock drift), or None. A step at or
    before ``last_step`` is refused, so an observed code cannot be replayed."""
    code = (code or "").strip().replace(" ", "")
    if not (code.isdigit() and len(code) == TOTP_DIGITS):
        return None
    now = int(at if at is not None else time.time())
    for drift in (0, -1, 1):
        step = now // TOTP_STEP + drift
        if last_step is not None and step <= last_step:
            continue
        try:
            _totp(secret).verify(code.encode(), step * TOTP_STEP)
        except InvalidToken:
            continue
        return step
    return None


def provisioning_uri(secret: bytes, username: str) -> str:
    return _totp(secret).get_provisioning_uri(username, ISSUER)


def secret_text(secret: bytes) -> str:
    """Base32 for manual entry, in groups of four."""
    text = base64.b32encode(secret).decode().rstrip("=")
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


def qr_svg(uri: str) -> str:
    return segno.make(uri, error="m").svg_inline(scale=5, title="二要素認証アプリで読み取るQRコード")
