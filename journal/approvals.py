"""Approvals that prove who approved what.

A wait's digest binds what the approver is shown: ``sha256:`` + the hex
SHA-256 of the canonical JSON of the execution id, the wait's ordinal in
that execution, the reason, the prompt and the action. An approval names the
digest it approves; one for any other digest, after the wait's deadline, or
without an approver where one is required is refused
(`ApprovalRefusedError`, exit 9). An approval may carry the approver's
Ed25519 signature over the digest's ASCII bytes (hex); with a keyring
configured, an approval is accepted only with a good signature by a key the
keyring holds for that approver.

A keyring is a JSON file ``{"approvers": {"alice": "<base64 of the raw
32-byte Ed25519 public key>"}}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from journal.errors import ApprovalRefusedError, SigningKeyError
from journal.model import Wait, is_null
from journal.schema import canonical

if TYPE_CHECKING:
    from journal.waits import WaitRequest


def digest_of(
    execution_id: str, ordinal: int, reason: str, prompt: str | None, action: bytes
) -> str:
    """The digest an approval of this wait must name."""
    document = {
        "action": msgspec.json.decode(action) if action else None,
        "execution_id": execution_id,
        "ordinal": ordinal,
        "prompt": prompt,
        "reason": reason,
    }
    return "sha256:" + hashlib.sha256(canonical(document)).hexdigest()


def wait_digest(execution_id: str, ordinal: int, request: WaitRequest) -> str:
    """The digest of the `ordinal`-th `wait_for` of an execution."""
    return digest_of(
        execution_id, ordinal, request.reason.value, request.prompt, request.action
    )


@dataclass(frozen=True)
class Keyring:
    """Approvers' Ed25519 public keys, by name."""

    keys: Mapping[str, bytes]

    @classmethod
    def load(cls, path: str | Path) -> Keyring:
        """Read a keyring file (see the module docstring)."""
        try:
            document = msgspec.json.decode(Path(path).read_bytes())
            approvers = document["approvers"]
            keys = {
                str(k): base64.b64decode(v, validate=True) for k, v in approvers.items()
            }
        except (OSError, msgspec.DecodeError, KeyError, TypeError, AttributeError) as e:
            raise SigningKeyError(f"{path}: not an approver keyring: {e}") from e
        except binascii.Error as e:
            raise SigningKeyError(f"{path}: a key is not base64: {e}") from e
        bad = [name for name, key in keys.items() if len(key) != 32]
        if bad:
            raise SigningKeyError(f"{path}: key of {bad[0]} is not 32 bytes")
        return cls(keys)

    def verify(self, approver: str, digest: str, signature: str) -> bool:
        """True if `signature` (hex) is `approver`'s over `digest`."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (
            Ed25519PublicKey,
        )

        key = self.keys.get(approver)
        if key is None:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(
                bytes.fromhex(signature), digest.encode()
            )
        except (InvalidSignature, ValueError):
            return False
        return True


def sign_digest(private_key: bytes, digest: str) -> str:
    """An approver's signature (hex) over a digest, with their raw 32-byte
    Ed25519 private key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(private_key).sign(digest.encode()).hex()


@dataclass(frozen=True)
class Approval:
    """What a resume brings to a waiting execution."""

    input: Any = None
    approver: str | None = None
    digest: str | None = None
    signature: str | None = None
    deny: bool = False
    reason: str | None = None

    @property
    def answers(self) -> bool:
        """True if it approves, denies or gives input (not a bare resume)."""
        return (
            self.deny
            or self.approver is not None
            or self.digest is not None
            or (self.input is not None and not _is_null_raw(self.input))
        )


def _is_null_raw(value: Any) -> bool:
    return isinstance(value, msgspec.Raw) and is_null(value)


def check_approval(
    execution_id: str,
    wait: Wait,
    approval: Approval,
    now: datetime,
    keyring: Keyring | None,
) -> bool:
    """Refuse an approval the wait does not allow; return True when the
    wait's deadline has passed (a bare resume then times the wait out)."""
    where = f"{execution_id} seq {wait.seq}"
    timed_out = wait.timeout_at is not None and now >= wait.timeout_at
    if timed_out:
        if approval.answers:
            raise ApprovalRefusedError(
                f"{where}: the wait timed out at {wait.timeout_at:%Y-%m-%dT%H:%M:%SZ}; "
                "resume without input to go on with journal.WaitTimeout"
            )
        return True
    if approval.deny and not approval.approver:
        raise ApprovalRefusedError(f"{where}: a denial must name its approver")
    if wait.require_approver and not approval.approver:
        raise ApprovalRefusedError(f"{where}: this wait requires an approver")
    if wait.digest is not None and approval.digest is not None:
        if approval.digest != wait.digest:
            raise ApprovalRefusedError(
                f"{where}: approval names digest {approval.digest}, "
                f"the wait's is {wait.digest}"
            )
    elif wait.digest is not None and approval.approver and not approval.deny:
        # Approving means approving *this*; denying needs no proof of what.
        raise ApprovalRefusedError(f"{where}: an approval must name the digest")
    if keyring is not None and (
        approval.approver is not None or wait.reason == "approval"
    ):
        _check_signature(where, wait, approval, keyring)
    return False


def _check_signature(
    where: str, wait: Wait, approval: Approval, keyring: Keyring
) -> None:
    digest = wait.digest or ""
    if approval.approver is None:
        raise ApprovalRefusedError(f"{where}: an approval must name its approver")
    if approval.signature is None:
        raise ApprovalRefusedError(
            f"{where}: unsigned approval by {approval.approver} (a keyring is set)"
        )
    if not keyring.verify(approval.approver, digest, approval.signature):
        raise ApprovalRefusedError(
            f"{where}: bad signature by {approval.approver} over {digest}"
        )
