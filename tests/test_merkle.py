"""The Merkle tree code against RFC 6962's own definitions and published vectors.

The oracle below is written from RFC 6962 §2.1's text (MTH, PATH, PROOF and
SUBPROOF, recursive over the leaf list), independently of journal.merkle,
which keeps levels and verifies with RFC 9162's iterative algorithms.
The vectors in tests/vectors/merkle_proofs.json are the test data published by
transparency-dev/merkle (testdata/), copied as data with their file names.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from journal.errors import LedgerIntegrityError
from journal.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "merkle_proofs.json").read_text()
)

# transparency-dev/merkle testonly/constants.go: leaf inputs and the root hash
# of every prefix of them (published RFC 6962 test data).
LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
PUBLISHED_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

STRICTER = {
    "testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"
}

# --- RFC 6962 §2.1, transcribed -------------------------------------------


def rfc_k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_mth(d: list[bytes]) -> bytes:
    """MTH(D[n]) as RFC 6962 §2.1 defines it."""
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = rfc_k(n)
    return hashlib.sha256(b"\x01" + rfc_mth(d[:k]) + rfc_mth(d[k:])).digest()


def rfc_path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]), the audit path of RFC 6962 §2.1.1."""
    n = len(d)
    if n == 1:
        return []
    k = rfc_k(n)
    if m < k:
        return [*rfc_path(m, d[:k]), rfc_mth(d[k:])]
    return [*rfc_path(m - k, d[k:]), rfc_mth(d[:k])]


def rfc_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 6962 §2.1.2."""
    n = len(d)
    if m == n:
        return [] if b else [rfc_mth(d)]
    k = rfc_k(n)
    if m <= k:
        return [*rfc_subproof(m, d[:k], b), rfc_mth(d[k:])]
    return [*rfc_subproof(m - k, d[k:], False), rfc_mth(d[:k])]


def rfc_proof(m: int, d: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 6962 §2.1.2."""
    return rfc_subproof(m, d, True)


# --- helpers ----------------------------------------------------------------


def leaves(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


def tree_of(data: list[bytes]) -> MerkleTree:
    return MerkleTree([leaf_hash(item) for item in data])


def b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def flip(proof: list[bytes], at: int) -> list[bytes]:
    changed = bytearray(proof[at])
    changed[0] ^= 1
    return [*proof[:at], bytes(changed), *proof[at + 1 :]]


# --- tests -------------------------------------------------------------------


def test_roots_of_every_prefix_equal_the_published_rfc6962_roots() -> None:
    tree = MerkleTree()
    assert tree.root().hex() == PUBLISHED_ROOTS[0]
    for size, item in enumerate(LEAF_INPUTS, start=1):
        tree.append_hash(leaf_hash(item))
        assert tree.root().hex() == PUBLISHED_ROOTS[size]
        assert rfc_mth(LEAF_INPUTS[:size]).hex() == PUBLISHED_ROOTS[size]


def test_the_empty_tree_hashes_to_sha256_of_nothing() -> None:
    assert MerkleTree().root() == EMPTY_ROOT == bytes.fromhex(PUBLISHED_ROOTS[0])


@pytest.mark.parametrize("size", range(1, 34))
def test_roots_of_earlier_sizes_equal_mth_of_the_prefix(size: int) -> None:
    data = leaves(size)
    tree = tree_of(data)
    assert [tree.root(m) for m in range(size + 1)] == [
        rfc_mth(data[:m]) for m in range(size + 1)
    ]


@pytest.mark.parametrize("size", range(1, 34))
def test_inclusion_proofs_equal_rfc_paths_and_verify(size: int) -> None:
    data = leaves(size)
    tree = tree_of(data)
    root = rfc_mth(data)
    for index in range(size):
        proof = tree.inclusion_proof(index)
        assert proof == rfc_path(index, data)
        verify_inclusion(index, size, leaf_hash(data[index]), proof, root)


@pytest.mark.parametrize("size", range(2, 34))
def test_consistency_proofs_equal_rfc_proofs_and_verify(size: int) -> None:
    data = leaves(size)
    tree = tree_of(data)
    for old in range(1, size):
        proof = tree.consistency_proof(old)
        assert proof == rfc_proof(old, data)
        verify_consistency(old, size, rfc_mth(data[:old]), rfc_mth(data), proof)


@given(st.integers(2, 70), st.data())
def test_a_changed_inclusion_proof_or_leaf_is_refused(size: int, data: Any) -> None:
    items = leaves(size)
    tree = tree_of(items)
    index = data.draw(st.integers(0, size - 1))
    proof = tree.inclusion_proof(index)
    root = tree.root()
    at = data.draw(st.integers(0, len(proof) - 1))
    with pytest.raises(LedgerIntegrityError):
        verify_inclusion(index, size, leaf_hash(items[index]), flip(proof, at), root)
    with pytest.raises(LedgerIntegrityError):
        verify_inclusion(index, size, leaf_hash(b"other"), proof, root)
    with pytest.raises(LedgerIntegrityError):
        verify_inclusion(index, size, leaf_hash(items[index]), proof[:-1], root)


@given(st.integers(3, 70), st.data())
def test_a_changed_consistency_proof_or_root_is_refused(size: int, data: Any) -> None:
    tree = tree_of(leaves(size))
    old = data.draw(st.integers(1, size - 1))
    proof = tree.consistency_proof(old)
    old_root, root = tree.root(old), tree.root()
    at = data.draw(st.integers(0, len(proof) - 1))
    with pytest.raises(LedgerIntegrityError):
        verify_consistency(old, size, old_root, root, flip(proof, at))
    with pytest.raises(LedgerIntegrityError):
        verify_consistency(old, size, old_root, tree.root(size - 1), proof)
    with pytest.raises(LedgerIntegrityError):
        verify_consistency(old, size, tree.root(old - 1), root, proof)


@pytest.mark.parametrize(
    "case", VECTORS["inclusion"], ids=[c["file"] for c in VECTORS["inclusion"]]
)
def test_published_inclusion_vectors(case: dict[str, Any]) -> None:
    proof = [b64(p) for p in case["proof"] or []]

    def check() -> None:
        verify_inclusion(
            case["leafIdx"],
            case["treeSize"],
            b64(case["leafHash"]),
            proof,
            b64(case["root"]),
        )

    if case["wantErr"]:
        with pytest.raises(LedgerIntegrityError):
            check()
    else:
        check()


@pytest.mark.parametrize(
    "case", VECTORS["consistency"], ids=[c["file"] for c in VECTORS["consistency"]]
)
def test_published_consistency_vectors(case: dict[str, Any]) -> None:
    proof = [b64(p) for p in case["proof"] or []]

    def check() -> None:
        verify_consistency(
            case["size1"],
            case["size2"],
            b64(case["root1"]),
            b64(case["root2"]),
            proof,
        )

    if case["file"] in STRICTER:
        # Their verifier compares equal-size roots without checking them; ours
        # also refuses a root that is not a 32-byte hash (this one has 12).
        with pytest.raises(LedgerIntegrityError, match="12 bytes"):
            check()
    elif case["wantErr"]:
        with pytest.raises(LedgerIntegrityError):
            check()
    else:
        check()


def test_proofs_for_sizes_beyond_the_tree_are_refused() -> None:
    tree = tree_of(leaves(4))
    with pytest.raises(ValueError, match="beyond"):
        tree.root(5)
    with pytest.raises(ValueError, match="not in a tree"):
        tree.inclusion_proof(4)
    with pytest.raises(ValueError, match="not within"):
        tree.consistency_proof(5, 4)
