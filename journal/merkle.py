"""RFC 6962 Merkle tree hashing, inclusion and consistency proofs.

Hashing follows RFC 6962 §2.1: a leaf hashes as ``SHA-256(0x00 || leaf)`` and
an interior node as ``SHA-256(0x01 || left || right)``; the empty tree's hash
is ``SHA-256()``. Proofs are the audit paths and consistency proofs of that
section; their verification follows RFC 9162 §2.1.3.2 and §2.1.4.2.

Proofs are generated from a :class:`MerkleTree` that keeps every level of the
tree (a level's unpaired last node is carried up unchanged, which yields the
same tree as RFC 6962's split at the largest power of two).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from journal.errors import LedgerIntegrityError

__all__ = [
    "EMPTY_ROOT",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()
HASH_SIZE = 32


def leaf_hash(leaf: bytes) -> bytes:
    """Return the RFC 6962 hash of one leaf: ``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 hash of an interior node: ``SHA-256(0x01 || l || r)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleTree:
    """An append-only tree over leaf hashes, with every level kept in memory.

    Args:
        leaf_hashes: the hashes of the leaves in order (see :func:`leaf_hash`).
    """

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for hashed in leaf_hashes:
            self.append_hash(hashed)

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._levels[0])

    def append_hash(self, hashed: bytes) -> None:
        """Append one leaf, given by its leaf hash."""
        level, node = 0, hashed
        self._levels[0].append(node)
        while len(self._levels[level]) % 2 == 0:
            row = self._levels[level]
            node = node_hash(row[-2], row[-1])
            level += 1
            if level == len(self._levels):
                self._levels.append([])
            self._levels[level].append(node)

    def root(self, size: int | None = None) -> bytes:
        """Return the root hash of the tree's first ``size`` leaves (all by default)."""
        size = self.size if size is None else size
        self._check_size(size)
        return self._range_hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the audit path of leaf ``index`` in the tree of ``size`` leaves."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of size {size}")
        return self._path(index, 0, size)

    def consistency_proof(self, old_size: int, size: int | None = None) -> list[bytes]:
        """Return the proof that the first ``old_size`` leaves prefix ``size``."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= old_size <= size:
            raise ValueError(f"size {old_size} is not within a tree of size {size}")
        if old_size in (0, size):
            return []
        return self._subproof(old_size, 0, size, True)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is beyond the {self.size} leaves held")

    def _range_hash(self, start: int, end: int) -> bytes:
        """The hash of the subtree over leaves ``[start, end)``."""
        count = end - start
        if count == 0:
            return EMPTY_ROOT
        if count & (count - 1) == 0 and start % count == 0:
            return self._levels[count.bit_length() - 1][start // count]
        split = _split(count)
        return node_hash(
            self._range_hash(start, start + split), self._range_hash(start + split, end)
        )

    def _path(self, index: int, start: int, end: int) -> list[bytes]:
        count = end - start
        if count == 1:
            return []
        split = _split(count)
        if index < start + split:
            sibling = self._range_hash(start + split, end)
            return [*self._path(index, start, start + split), sibling]
        sibling = self._range_hash(start, start + split)
        return [*self._path(index, start + split, end), sibling]

    def _subproof(
        self, old_size: int, start: int, end: int, whole: bool
    ) -> list[bytes]:
        count = end - start
        if old_size == count:
            return [] if whole else [self._range_hash(start, end)]
        split = _split(count)
        if old_size <= split:
            right = self._range_hash(start + split, end)
            return [*self._subproof(old_size, start, start + split, whole), right]
        left = self._range_hash(start, start + split)
        return [*self._subproof(old_size - split, start + split, end, False), left]


def _split(count: int) -> int:
    """The largest power of two strictly below ``count`` (count >= 2)."""
    return 1 << ((count - 1).bit_length() - 1)


def root_from_inclusion(
    index: int, size: int, hashed_leaf: bytes, proof: Sequence[bytes]
) -> bytes:
    """Return the root an inclusion proof leads to (RFC 9162 §2.1.3.2).

    Raises:
        LedgerIntegrityError: the index is outside the tree or the proof's
            length does not fit the tree.
    """
    if not 0 <= index < size:
        raise LedgerIntegrityError(f"leaf index {index} is outside a tree of {size}")
    _check_hash(hashed_leaf)
    fn, sn, result = index, size - 1, hashed_leaf
    for sibling in proof:
        _check_hash(sibling)
        if sn == 0:
            raise LedgerIntegrityError("inclusion proof is longer than the tree")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise LedgerIntegrityError("inclusion proof is shorter than the tree")
    return result


def verify_inclusion(
    index: int, size: int, hashed_leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf ``index`` with hash ``hashed_leaf`` is in the tree ``root``.

    Raises:
        LedgerIntegrityError: the proof does not lead to ``root``.
    """
    _check_hash(root)
    if root_from_inclusion(index, size, hashed_leaf, proof) != root:
        raise LedgerIntegrityError(
            f"inclusion proof of leaf {index} does not lead to the root of size {size}"
        )


def verify_consistency(
    old_size: int,
    size: int,
    old_root: bytes,
    root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Check that the tree ``old_root`` of ``old_size`` is a prefix of ``root``.

    Follows RFC 9162 §2.1.4.2. Equal sizes need equal roots and an empty proof
    (the empty tree's root is SHA-256 of nothing); a proof from the empty tree
    is refused as meaningless (every tree extends it), as the published test
    vectors of transparency-dev/merkle expect.

    Raises:
        LedgerIntegrityError: the proof does not show consistency.
    """
    if not 0 <= old_size <= size:
        raise LedgerIntegrityError(f"tree size {old_size} is larger than {size}")
    _check_hash(old_root)
    _check_hash(root)
    if old_size == size:
        if proof:
            raise LedgerIntegrityError(
                "consistency proof between equal sizes not empty"
            )
        if old_root != root or (size == 0 and root != EMPTY_ROOT):
            raise LedgerIntegrityError(f"two different roots for tree size {size}")
        return
    if old_size == 0:
        raise LedgerIntegrityError("a consistency proof from the empty tree is void")
    _check_consistency(old_size, size, old_root, root, list(proof))


def _check_consistency(
    old_size: int, size: int, old_root: bytes, root: bytes, path: list[bytes]
) -> None:
    if not path:
        raise LedgerIntegrityError("consistency proof is empty")
    for item in path:
        _check_hash(item)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    old_result = new_result = path[0]
    for item in path[1:]:
        if sn == 0:
            raise LedgerIntegrityError("consistency proof is longer than the tree")
        if fn & 1 or fn == sn:
            old_result = node_hash(item, old_result)
            new_result = node_hash(item, new_result)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            new_result = node_hash(new_result, item)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or old_result != old_root or new_result != root:
        raise LedgerIntegrityError(
            f"consistency proof from tree size {old_size} to {size} does not hold"
        )


def _check_hash(value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise LedgerIntegrityError(f"a hash has {len(value)} bytes, not 32")
