"""Signed notes and checkpoints against the published examples.

Vectors: the example of c2sp.org/signed-note (a verifier key and the note it
verifies) and the example key, text and signed note in the documentation of
golang.org/x/mod/sumdb/note, the reference implementation of the format.
Ed25519 signatures are deterministic, so signing the same text with the same
key must give the published note byte for byte.
"""

from __future__ import annotations

import base64

import pytest

from journal.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from journal.errors import LedgerIntegrityError, SigningKeyError
from journal.merkle import EMPTY_ROOT, leaf_hash
from journal.signednote import Signer, Verifier, open_note, sign_note

SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1"
    "ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
GO_SKEY = (
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
)
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGU"
    "gYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_the_spec_example_note_verifies_under_the_spec_vkey() -> None:
    verifier = Verifier.from_vkey(SPEC_VKEY)
    assert verifier.key_id == 0x530D903A
    assert open_note(SPEC_NOTE, verifier) == "This is an example message.\n"
    assert verifier.vkey == SPEC_VKEY


def test_signing_the_go_example_reproduces_its_published_note() -> None:
    signer = Signer.from_private_key_text(GO_SKEY)
    assert signer.verifier.vkey == GO_VKEY
    assert signer.private_key_text == GO_SKEY
    assert sign_note(GO_TEXT, signer) == GO_NOTE
    assert open_note(GO_NOTE, Verifier.from_vkey(GO_VKEY)) == GO_TEXT


def test_a_changed_text_or_signature_is_refused() -> None:
    verifier = Verifier.from_vkey(GO_VKEY)
    with pytest.raises(LedgerIntegrityError, match="does not verify"):
        open_note(GO_NOTE.replace("cryptography", "cryptographx"), verifier)
    with pytest.raises(LedgerIntegrityError, match="does not verify"):
        open_note(GO_NOTE.replace("x08go/ZJ", "x08go/ZK"), verifier)


def test_a_note_signed_only_by_another_key_is_refused() -> None:
    with pytest.raises(LedgerIntegrityError, match=r"no signature by example\.com/foo"):
        open_note(GO_NOTE, Verifier.from_vkey(SPEC_VKEY))


def test_a_signature_by_an_unknown_key_beside_a_good_one_is_ignored() -> None:
    other = Signer.generate("PeterNeumann")
    extra = sign_note(GO_TEXT, other).split("\n\n")[1]
    assert open_note(GO_NOTE + extra, Verifier.from_vkey(GO_VKEY)) == GO_TEXT


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+AhpcQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each names its own fault
        Verifier.from_vkey(vkey)


def test_a_private_key_with_a_wrong_key_id_is_refused() -> None:
    with pytest.raises(SigningKeyError, match="does not match"):
        Signer.from_private_key_text(GO_SKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(SigningKeyError, match="PRIVATE"):
        Signer.from_private_key_text(GO_VKEY)


def test_a_generated_key_round_trips_through_its_text_forms() -> None:
    signer = Signer.generate("ledger.example/tenant-a")
    again = Signer.from_private_key_text(signer.private_key_text)
    assert again.verifier.vkey == signer.verifier.vkey
    verifier = Verifier.from_vkey(signer.verifier.vkey)
    assert open_note(sign_note("hello\n", again), verifier) == "hello\n"


def test_the_spec_checkpoint_text_parses() -> None:
    text = (
        "example.com/behind-the-sofa\n20852163\n"
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    checkpoint = Checkpoint.parse(text)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root == base64.b64decode(
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    )
    assert checkpoint.text == text


def test_a_signed_checkpoint_opens_only_under_its_own_log_key() -> None:
    signer = Signer.generate("ledger.example/a")
    checkpoint = Checkpoint("ledger.example/a", 3, leaf_hash(b"x"))
    note = sign_checkpoint(checkpoint, signer)
    assert open_checkpoint(note, signer.verifier) == checkpoint
    other = Signer.generate("ledger.example/a")
    with pytest.raises(LedgerIntegrityError):
        open_checkpoint(note, other.verifier)
    forged = note.replace("\n3\n", "\n4\n")
    with pytest.raises(LedgerIntegrityError, match="does not verify"):
        open_checkpoint(forged, signer.verifier)


@pytest.mark.parametrize(
    "text",
    [
        "log\n01\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "log\n-1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "log\n1\nAAAA\n",
        "log\n1\n",
        "log\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nextension\n",
    ],
)
def test_malformed_checkpoint_texts_are_refused(text: str) -> None:
    with pytest.raises(LedgerIntegrityError):
        Checkpoint.parse(text)


def test_a_key_does_not_sign_a_checkpoint_of_another_log() -> None:
    with pytest.raises(ValueError, match="does not sign"):
        sign_checkpoint(Checkpoint("log-b", 0, EMPTY_ROOT), Signer.generate("log-a"))
