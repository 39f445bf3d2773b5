"""AES-GCM secret box with a key ring.

Ciphertext text format: ``v1.<kid>.<base64url(nonce || ciphertext+tag)>``. The associated data binds a
ciphertext to its row and column (``<scope>|<column>|<kid>``), so a value copied to another tenant's
row, or to another column, does not decrypt. The first key encrypts; every key decrypts.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"
_NONCE_BYTES = 12


class CryptoError(Exception):
    """A secret could not be decrypted or a key is malformed. Never carries secret material."""


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def generate_key() -> str:
    """A new 256-bit key, base64url, suitable for MASTER_KEYS."""
    return _b64e(secrets.token_bytes(32))


@dataclass(frozen=True)
class _Key:
    kid: str
    aead: AESGCM


def key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:8]


class KeyRing:
    def __init__(self, encoded_keys: list[str]) -> None:
        if not encoded_keys:
            raise CryptoError("MASTER_KEYS holds no key")
        keys: list[_Key] = []
        for position, encoded in enumerate(encoded_keys, start=1):
            try:
                raw = _b64d(encoded.strip())
            except (ValueError, TypeError):
                raise CryptoError(f"MASTER_KEYS key #{position} is not base64") from None
            if len(raw) != 32:
                raise CryptoError(f"MASTER_KEYS key #{position} must decode to 32 bytes, got {len(raw)}")
            keys.append(_Key(key_id(raw), AESGCM(raw)))
        self._keys = keys
        self._by_kid = {k.kid: k for k in keys}

    @classmethod
    def from_setting(cls, value: str) -> KeyRing:
        return cls([part for part in value.split(",") if part.strip()])

    @property
    def primary_kid(self) -> str:
        return self._keys[0].kid

    @staticmethod
    def _aad(scope: str, column: str, kid: str) -> bytes:
        return f"{scope}|{column}|{kid}".encode()

    def encrypt(self, plaintext: str, *, scope: str, column: str) -> str:
        key = self._keys[0]
        nonce = os.urandom(_NONCE_BYTES)
        sealed = key.aead.encrypt(nonce, plaintext.encode(), self._aad(scope, column, key.kid))
        return f"{_VERSION}.{key.kid}.{_b64e(nonce + sealed)}"

    def decrypt(self, token: str, *, scope: str, column: str) -> str:
        try:
            version, kid, body = token.split(".", 2)
        except ValueError:
            raise CryptoError(f"{column}: malformed ciphertext") from None
        if version != _VERSION:
            raise CryptoError(f"{column}: unknown ciphertext version")
        key = self._by_kid.get(kid)
        if key is None:
            raise CryptoError(f"{column}: encrypted with key {kid}, which is not in MASTER_KEYS")
        raw = _b64d(body)
        try:
            return key.aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], self._aad(scope, column, kid)).decode()
        except InvalidTag:
            raise CryptoError(f"{column}: ciphertext does not belong to this row or was altered") from None

    def needs_rotation(self, token: str) -> bool:
        return not token.startswith(f"{_VERSION}.{self.primary_kid}.")
