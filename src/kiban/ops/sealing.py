"""Passphrase encryption of a backup's payload (``kiban backup --encrypt``).

A key is derived from the passphrase with scrypt (a fresh random salt per backup), and the
payload is encrypted in 1 MiB chunks with AES-256-GCM, so that backups of any size stream
through in constant memory. Each chunk is stored as ``nonce (12 bytes) || ciphertext || tag (16)``
and authenticated with its index and whether it is the last chunk, so that chunks cannot be
edited, reordered, dropped or cut off at the end without decryption failing.

The parameters (salt, scrypt cost, chunk size) travel in the backup's manifest; they are not
secret. Without the passphrase the payload cannot be read or changed undetected.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

SCHEME = "scrypt+aes-256-gcm-chunked/1"
CHUNK = 1024 * 1024
NONCE = 12
TAG = 16
MIN_PASSPHRASE = 12
# scrypt cost: 2**17 × 8 × 128 bytes = 128 MiB and about half a second per derivation.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1


class SealingError(Exception):
    """Wrong passphrase, or a payload that was altered after it was encrypted."""


def passphrase_problem(passphrase: str) -> str | None:
    if len(passphrase) < MIN_PASSPHRASE:
        return f"パスフレーズは {MIN_PASSPHRASE} 文字以上にしてください。"
    return None


def new_parameters() -> dict:
    return {"scheme": SCHEME, "salt": base64.b64encode(os.urandom(16)).decode("ascii"),
            "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "chunk": CHUNK}


def _key(passphrase: str, parameters: dict) -> bytes:
    if parameters.get("scheme") != SCHEME:
        raise SealingError(f"暗号化の方式「{parameters.get('scheme')}」はこの版の Kiban では読めません。")
    kdf = Scrypt(salt=base64.b64decode(parameters["salt"]), length=32,
                 n=int(parameters["n"]), r=int(parameters["r"]), p=int(parameters["p"]))
    return kdf.derive(passphrase.encode("utf-8"))


def _aad(index: int, last: bool) -> bytes:
    return SCHEME.encode("ascii") + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")


def _chunks(source: BinaryIO, size: int) -> Iterator[tuple[bytes, bool]]:
    """(chunk, is_last) with one chunk of look-ahead; an empty source gives one empty last chunk."""
    current = source.read(size)
    while True:
        following = source.read(size)
        yield current, not following
        if not following:
            return
        current = following


def encrypt(source: BinaryIO, target: BinaryIO, passphrase: str, parameters: dict) -> None:
    aead = AESGCM(_key(passphrase, parameters))
    for index, (chunk, last) in enumerate(_chunks(source, int(parameters["chunk"]))):
        nonce = os.urandom(NONCE)
        target.write(nonce + aead.encrypt(nonce, chunk, _aad(index, last)))


def decrypt(source: BinaryIO, target: BinaryIO, passphrase: str, parameters: dict) -> None:
    aead = AESGCM(_key(passphrase, parameters))
    for index, (frame, last) in enumerate(_chunks(source, NONCE + int(parameters["chunk"]) + TAG)):
        try:
            target.write(aead.decrypt(frame[:NONCE], frame[NONCE:], _aad(index, last)))
        except (InvalidTag, ValueError) as exc:
            raise SealingError("復号できません。パスフレーズが違うか、ファイルが暗号化の後に変更されています。") from exc
