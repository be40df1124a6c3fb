"""Approvals prove who approved what: digests, deadlines, approvers and
Ed25519 signatures checked against a keyring."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from journal.approvals import (
    Approval,
    Keyring,
    check_approval,
    digest_of,
    sign_digest,
)
from journal.errors import ApprovalRefusedError, SigningKeyError
from journal.model import Wait, WaitReason

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ACTION = b'{"amount":40,"order":"ord_42"}'


def a_wait(**changes: object) -> Wait:
    fields: dict[str, object] = {
        "reason": WaitReason.APPROVAL,
        "at": T0,
        "seq": 7,
        "prompt": "refund 40?",
        "action": msgspec.Raw(ACTION),
        "digest": digest_of("exec_x", 0, "approval", "refund 40?", ACTION),
        "timeout_at": T0 + timedelta(hours=1),
        "require_approver": True,
    }
    fields.update(changes)
    return Wait(**fields)  # type: ignore[arg-type]


def private_key() -> tuple[bytes, bytes]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return key.private_bytes_raw(), public


def keyring_file(tmp_path: Path, **keys: bytes) -> Path:
    path = tmp_path / "approvers.json"
    approvers = {name: base64.b64encode(key).decode() for name, key in keys.items()}
    path.write_text(json.dumps({"approvers": approvers}))
    return path


def test_the_digest_binds_execution_ordinal_reason_prompt_and_action() -> None:
    base = digest_of("exec_x", 0, "approval", "refund 40?", ACTION)

    others = {
        digest_of("exec_y", 0, "approval", "refund 40?", ACTION),
        digest_of("exec_x", 1, "approval", "refund 40?", ACTION),
        digest_of("exec_x", 0, "user_input", "refund 40?", ACTION),
        digest_of("exec_x", 0, "approval", "refund 41?", ACTION),
        digest_of("exec_x", 0, "approval", "refund 40?", b'{"amount":41}'),
    }

    assert base.startswith("sha256:")
    assert len(base) == len("sha256:") + 64
    assert base not in others
    assert len(others) == 5


def test_an_approval_naming_the_digest_of_and_an_approver_is_accepted() -> None:
    wait = a_wait()

    timed_out = check_approval(
        "exec_x", wait, Approval(approver="alice", digest=wait.digest), T0, None
    )

    assert timed_out is False


@pytest.mark.parametrize(
    ("approval", "message"),
    [
        (Approval(approver="alice", digest="sha256:" + "0" * 64), "names digest"),
        (Approval(digest="D"), "requires an approver"),
        (Approval(approver="alice"), "must name the digest"),
        (Approval(deny=True), "denial must name its approver"),
    ],
)
def test_an_approval_the_wait_does_not_allow_is_refused(
    approval: Approval, message: str
) -> None:
    wait = a_wait()
    if approval.digest == "D":
        approval = Approval(digest=wait.digest)

    with pytest.raises(ApprovalRefusedError, match=message) as refused:
        check_approval("exec_x", wait, approval, T0, None)

    assert "exec_x seq 7" in str(refused.value)
    assert refused.value.exit_code == 9


def test_after_the_deadline_an_approval_is_refused_and_a_bare_resume_times_out() -> (
    None
):
    wait = a_wait()
    late = T0 + timedelta(hours=2)

    with pytest.raises(ApprovalRefusedError, match="timed out"):
        check_approval(
            "exec_x", wait, Approval(approver="alice", digest=wait.digest), late, None
        )
    assert check_approval("exec_x", wait, Approval(), late, None) is True


def test_with_a_keyring_only_a_good_signature_by_that_approver_is_accepted(
    tmp_path: Path,
) -> None:
    alice_private, alice_public = private_key()
    mallory_private, _ = private_key()
    keyring = Keyring.load(keyring_file(tmp_path, alice=alice_public))
    wait = a_wait()
    assert wait.digest is not None
    good = sign_digest(alice_private, wait.digest)
    forged = sign_digest(mallory_private, wait.digest)
    other_digest = sign_digest(alice_private, "sha256:" + "1" * 64)

    accepted = check_approval(
        "exec_x",
        wait,
        Approval(approver="alice", digest=wait.digest, signature=good),
        T0,
        keyring,
    )

    assert accepted is False
    for signature, message in [
        (None, "unsigned approval by alice"),
        (forged, "bad signature by alice"),
        (other_digest, "bad signature by alice"),
        ("zz", "bad signature by alice"),
    ]:
        approval = Approval(approver="alice", digest=wait.digest, signature=signature)
        with pytest.raises(ApprovalRefusedError, match=message):
            check_approval("exec_x", wait, approval, T0, keyring)
    unknown = Approval(approver="bob", digest=wait.digest, signature=good)
    with pytest.raises(ApprovalRefusedError, match="bad signature by bob"):
        check_approval("exec_x", wait, unknown, T0, keyring)


def test_a_malformed_keyring_is_a_signing_key_error(tmp_path: Path) -> None:
    path = tmp_path / "approvers.json"
    path.write_text('{"approvers": {"alice": "c2hvcnQ="}}')

    with pytest.raises(SigningKeyError, match="key of alice is not 32 bytes"):
        Keyring.load(path)
    with pytest.raises(SigningKeyError, match="not an approver keyring"):
        Keyring.load(tmp_path / "missing.json")
