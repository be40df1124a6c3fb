"""Signing keys: parsing, key ids, the keyring, head MACs.

A key is at least 32 random bytes, given hex- or base64-encoded
(``journal keys generate`` prints one). ``JOURNAL_SIGNING_KEY`` is the
current key (new heads are signed with it); ``JOURNAL_SIGNING_KEYS``
(comma-separated) holds older keys, used only to verify (rotation).

A chain records the *id* of the key that signed its head, never the key:
``key_id = HMAC-SHA-256(key, "journal key id")[:8]`` as 16 hex digits. Keys
are never shown by ``repr``, messages or tracebacks; MACs are compared in
constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from journal.errors import SigningKeyError

SIGNING_KEY_ENV = "JOURNAL_SIGNING_KEY"
SIGNING_KEYS_ENV = "JOURNAL_SIGNING_KEYS"
ALLOW_UNSIGNED_ENV = "JOURNAL_ALLOW_UNSIGNED"
MIN_KEY_BYTES = 32
_KEY_ID_LABEL = b"journal key id"
_HEAD_MAC_PREFIX = b"journal-head/v2\0"


class SigningKey:
    """A secret key and its public id; ``repr`` shows only the id."""

    __slots__ = ("_secret", "_v1_secret", "key_id")

    def __init__(self, secret: bytes, v1_secret: bytes | None = None) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise SigningKeyError(
                f"a signing key must be at least {MIN_KEY_BYTES} random bytes "
                f"(this one has {len(secret)}); make one with `journal keys generate`"
            )
        self._secret = secret
        # First-round (v1) chains were keyed with the variable's text itself.
        self._v1_secret = v1_secret or secret
        self.key_id = hmac.new(secret, _KEY_ID_LABEL, hashlib.sha256).digest()[:8].hex()

    @classmethod
    def parse(cls, text: str, where: str = SIGNING_KEY_ENV) -> SigningKey:
        """A key from its hex or base64 text; errors never quote the text."""
        try:
            return cls(_decode_key(text.strip()), text.strip().encode())
        except SigningKeyError as e:
            raise SigningKeyError(f"{where}: {e}") from None

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a SigningKey is not pickled (it would copy the secret)")

    def head_mac(self, head_record: bytes) -> bytes:
        """``HMAC-SHA-256(key, "journal-head/v2\\0" + head record)``."""
        return hmac.new(
            self._secret, _HEAD_MAC_PREFIX + head_record, hashlib.sha256
        ).digest()

    def v1_digest(self) -> Callable[[bytes], bytes]:
        """The keyed digest of a first-round (v1) ``hmac-sha256`` chain."""
        secret = self._v1_secret
        return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def _decode_key(text: str) -> bytes:
    if not text:
        raise SigningKeyError("the key is empty")
    if all(c in "0123456789abcdefABCDEF" for c in text) and len(text) % 2 == 0:
        return bytes.fromhex(text)
    try:
        padded = text + "=" * (-len(text) % 4)
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise SigningKeyError(
            "the key is neither hex nor base64; make one with `journal keys generate`"
        ) from None


def generate_key() -> str:
    """A new random key (32 bytes), hex-encoded."""
    return secrets.token_hex(MIN_KEY_BYTES)


@dataclass(frozen=True, slots=True)
class Keyring:
    """The current signing key (or none), older keys for verification, and
    whether unsigned writes into a signed store are allowed."""

    current: SigningKey | None = None
    older: tuple[SigningKey, ...] = ()
    allow_unsigned: bool = False

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, allow_unsigned: bool = False
    ) -> Keyring:
        """Read ``JOURNAL_SIGNING_KEY``, ``JOURNAL_SIGNING_KEYS`` and
        ``JOURNAL_ALLOW_UNSIGNED=1``.

        A variable that is set but holds a bad key (an empty one included)
        raises `SigningKeyError`: it never silently means "unsigned".
        """
        env = os.environ if environ is None else environ
        text = env.get(SIGNING_KEY_ENV)
        current = None if text is None else SigningKey.parse(text)
        older = tuple(
            SigningKey.parse(part, f"{SIGNING_KEYS_ENV} (key {n})")
            for n, part in enumerate(env.get(SIGNING_KEYS_ENV, "").split(","), 1)
            if part.strip()
        )
        allow = allow_unsigned or env.get(ALLOW_UNSIGNED_ENV, "") not in ("", "0")
        return cls(current, older, allow)

    @property
    def unsigned_write_needs_unsigned_store(self) -> bool:
        """This keyring writes unsigned (no current key) and may not do so
        into a store holding signed chains (no ``allow_unsigned``): whether a
        write must ask if the store is signed."""
        return self.current is None and not self.allow_unsigned

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """Every key, the current one first."""
        return ((self.current,) if self.current else ()) + self.older

    def find(self, key_id: str) -> SigningKey | None:
        """The key with this id, or None."""
        wanted = key_id.encode()  # bytes: a stored id may be any text
        for key in self.keys:
            if hmac.compare_digest(key.key_id.encode(), wanted):
                return key
        return None

    def with_allow_unsigned(self, allow: bool = True) -> Keyring:
        """This keyring, allowing (or not) unsigned writes and chains."""
        return Keyring(self.current, self.older, allow)

    def __repr__(self) -> str:
        ids = [k.key_id for k in self.keys]
        return f"Keyring(key_ids={ids!r}, allow_unsigned={self.allow_unsigned})"
