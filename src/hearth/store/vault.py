"""Secrets at rest: AES-256-GCM, a random 96-bit nonce per value, and the function's name and
the secret's name as associated data, so a value moved to another row does not open.

The key is 32 bytes in base64: HEARTH_SECRET_KEY, or else DATA_DIR/secret.key, written
(mode 0600) on first start. Lose it and the secrets are lost: set them again.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE = "secret.key"
KEY_VARIABLE = "HEARTH_SECRET_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12
MAKE_KEY = "head -c 32 /dev/urandom | base64"


class VaultError(ValueError):
    """A key that cannot be used, or a sealed value that does not open with it."""


def load_key(data_dir: Path, environ: Mapping[str, str]) -> bytes:
    """HEARTH_SECRET_KEY if set, else the key file (created on first use)."""
    text = environ.get(KEY_VARIABLE)
    source = KEY_VARIABLE
    if text is None:
        path = data_dir / KEY_FILE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as file:
                file.write(base64.b64encode(os.urandom(KEY_BYTES)).decode() + "\n")
        text = path.read_text()
        source = str(path)
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VaultError(
            f"{source} is not base64: it must hold a 256-bit key in base64 (make one with "
            f"'{MAKE_KEY}')"
        ) from None
    if len(key) != KEY_BYTES:
        raise VaultError(
            f"{source} holds {len(key)} bytes; the secret key is {KEY_BYTES} bytes (256 bits) "
            f"in base64 (make one with '{MAKE_KEY}')"
        )
    return key


class Vault:
    """Seals and opens secret values with one key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "<Vault AES-256-GCM>"  # never the key

    def seal(self, function: str, name: str, value: str) -> tuple[bytes, bytes]:
        """(nonce, ciphertext with its tag) for `value`, bound to function and name."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce, self._aead.encrypt(nonce, value.encode(), _bound_to(function, name))

    def open(self, function: str, name: str, nonce: bytes, sealed: bytes) -> str:
        try:
            plain = self._aead.decrypt(nonce, sealed, _bound_to(function, name))
        except (InvalidTag, ValueError):
            raise VaultError(
                f"secret {name} of {function} does not open with this daemon's secret key "
                f"({KEY_VARIABLE} or DATA_DIR/{KEY_FILE} changed, or the stored value was "
                "altered): start with the key it was stored with, or set the secret again"
            ) from None
        return plain.decode()


def _bound_to(function: str, name: str) -> bytes:
    # Neither a function name nor a variable name holds NUL: the pair reads back one way.
    return b"hearth secret\0" + function.encode() + b"\0" + name.encode()
