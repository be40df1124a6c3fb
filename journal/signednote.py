"""C2SP signed notes with Ed25519 keys (c2sp.org/signed-note).

A note is text ending in a newline, a blank line, then signature lines
``— <key name> base64(key id || signature)``. The key id is the first four
bytes of ``SHA-256(name || 0x0A || 0x01 || public key)``. A verifier key
(*vkey*) is ``<name>+<hex key id>+base64(0x01 || public key)``; a private key
file holds ``PRIVATE+KEY+<name>+<hex key id>+base64(0x01 || seed)``, the text
format of the Go reference implementation (golang.org/x/mod/sumdb/note).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from journal.errors import LedgerIntegrityError, SigningKeyError

__all__ = ["Signer", "Verifier", "check_key_name", "open_note", "sign_note"]

ED25519 = b"\x01"
SIGNATURE_PREFIX = "\u2014 "
PRIVATE_PREFIX = "PRIVATE+KEY+"
MAX_SIGNATURES = 100


def check_key_name(name: str) -> str:
    """Return ``name`` if it is a valid key name, else raise ``ValueError``.

    A key name is non-empty, printable, and holds no spaces and no ``+``.
    """
    if not name or "+" in name or any(c.isspace() or not c.isprintable() for c in name):
        raise ValueError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


def key_id(name: str, public_key: bytes) -> int:
    """Return the 32-bit key id of an Ed25519 key with this name."""
    digest = hashlib.sha256(name.encode() + b"\n" + ED25519 + public_key).digest()
    return int(struct.unpack(">I", digest[:4])[0])


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 verifier key: its name, key id and public key."""

    name: str
    key_id: int
    public_key: Ed25519PublicKey

    @classmethod
    def from_vkey(cls, text: str) -> Verifier:
        """Parse a verifier key ``<name>+<hex id>+<base64 key>``.

        Raises:
            ValueError: the text is not an Ed25519 vkey or its id does not match.
        """
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise ValueError("a verifier key has three parts joined by '+'")
        name, hex_id, material = parts
        raw = _decode(material, "verifier key")
        if len(raw) != 33 or raw[:1] != ED25519:
            raise ValueError("the verifier key is not an Ed25519 key")
        return cls(check_key_name(name), _check_id(hex_id, name, raw[1:]), _public(raw))

    @property
    def vkey(self) -> str:
        """The verifier key text."""
        material = base64.b64encode(ED25519 + _raw_public(self.public_key)).decode()
        return f"{self.name}+{self.key_id:08x}+{material}"

    def verifies(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``text``."""
        try:
            self.public_key.verify(signature, text)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """An Ed25519 signing key with its name."""

    name: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> Signer:
        """Make a new random key named ``name``."""
        return cls(check_key_name(name), Ed25519PrivateKey.generate())

    @classmethod
    def from_private_key_text(cls, text: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>``.

        Raises:
            SigningKeyError: the text is not such a key, or its id does not match.
        """
        body = text.strip()
        if not body.startswith(PRIVATE_PREFIX):
            raise SigningKeyError("the key file does not start with PRIVATE+KEY+")
        parts = body[len(PRIVATE_PREFIX) :].split("+", 2)
        try:
            if len(parts) != 3:
                raise ValueError("a private key has five parts joined by '+'")
            name, hex_id, material = parts
            raw = _decode(material, "private key")
            if len(raw) != 33 or raw[:1] != ED25519:
                raise ValueError("the private key is not an Ed25519 key")
            signer = cls(
                check_key_name(name), Ed25519PrivateKey.from_private_bytes(raw[1:])
            )
            _check_id(hex_id, name, _raw_public(signer.private_key.public_key()))
        except ValueError as exc:
            raise SigningKeyError(f"bad private key: {exc}") from exc
        return signer

    @property
    def private_key_text(self) -> str:
        """The private key in the signed-note text format (keep it secret)."""
        seed = self.private_key.private_bytes_raw()
        material = base64.b64encode(ED25519 + seed).decode()
        return f"{PRIVATE_PREFIX}{self.name}+{self.verifier.key_id:08x}+{material}"

    @property
    def verifier(self) -> Verifier:
        """The verifier key matching this signer."""
        public = self.private_key.public_key()
        return Verifier(self.name, key_id(self.name, _raw_public(public)), public)


def sign_note(text: str, signer: Signer) -> str:
    """Return the signed note of ``text`` (which must end in a newline)."""
    _check_text(text)
    signature = signer.private_key.sign(text.encode())
    blob = struct.pack(">I", signer.verifier.key_id) + signature
    line = f"{SIGNATURE_PREFIX}{signer.name} {base64.b64encode(blob).decode()}\n"
    return f"{text}\n{line}"


def open_note(note: str, verifier: Verifier) -> str:
    """Check ``note``'s signature by ``verifier`` and return its text.

    Signatures by other keys are ignored, as the spec requires; a signature by
    this key that does not verify, or no signature by it, refuses the note.

    Raises:
        LedgerIntegrityError: the note is malformed or not signed by this key.
    """
    text, lines = _split_note(note)
    found = False
    for line in lines:
        name, blob = _parse_signature(line)
        if name != verifier.name or len(blob) < 4:
            continue
        if struct.unpack(">I", blob[:4])[0] != verifier.key_id:
            continue
        if not verifier.verifies(text.encode(), blob[4:]):
            raise LedgerIntegrityError(f"the signature by {name} does not verify")
        found = True
    if not found:
        raise LedgerIntegrityError(f"the note carries no signature by {verifier.name}")
    return text


def carries_signature_by(note: str, verifier: Verifier) -> bool:
    """Whether ``note`` has a signature line of ``verifier``'s name and key id
    (whether it verifies is `open_note`'s question).

    Raises:
        LedgerIntegrityError: the note is malformed.
    """
    for line in _split_note(note)[1]:
        name, blob = _parse_signature(line)
        if name == verifier.name and blob[:4] == struct.pack(">I", verifier.key_id):
            return True
    return False


def _split_note(note: str) -> tuple[str, list[str]]:
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise LedgerIntegrityError("the note holds a control character")
    if not note.endswith("\n"):
        raise LedgerIntegrityError("the note does not end with a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise LedgerIntegrityError("the note has no blank line before its signatures")
    lines = note[cut + 2 :].splitlines()
    if not lines or len(lines) > MAX_SIGNATURES:
        raise LedgerIntegrityError("the note has no signature lines, or too many")
    return note[: cut + 1], lines


def _parse_signature(line: str) -> tuple[str, bytes]:
    if not line.startswith(SIGNATURE_PREFIX):
        raise LedgerIntegrityError(f"malformed signature line {line[:40]!r}")
    name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    try:
        return name, _decode(encoded, "signature")
    except ValueError as exc:
        raise LedgerIntegrityError(str(exc)) from exc


def _check_text(text: str) -> None:
    if not text.endswith("\n") or any(ord(c) < 0x20 and c != "\n" for c in text):
        raise ValueError("note text must end in a newline and hold no control chars")


def _decode(encoded: str, what: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the {what} is not valid base64") from exc


def _check_id(hex_id: str, name: str, public_key: bytes) -> int:
    if len(hex_id) != 8 or hex_id != hex_id.lower():
        raise ValueError("the key id is not 8 lowercase hex digits")
    expected = key_id(name, public_key)
    if int(hex_id, 16) != expected:
        raise ValueError(f"the key id {hex_id} does not match the key ({expected:08x})")
    return expected


def _public(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw[1:])
