"""What a sealer must have left behind, checked from the store alone."""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from pathlib import Path

from journal.ledger import open_tenant_checkpoint, write_key_file
from journal.merkle import MerkleTree, leaf_hash, verify_consistency
from journal.signednote import Signer
from journal.sqlstore import SQLStore
from journal.urls import open_store


def check_sealed(store: SQLStore, tenant: str, ids: list[str], signer: Signer) -> None:
    """Every head of `ids` sealed up to date, never twice, at most once per
    round; every checkpoint signed by `signer` and consistent with the tree."""
    leaves = [json.loads(leaf) for leaf in store.ledger_leaves(tenant)]
    checkpoints = store.ledger_checkpoints(tenant)
    assert checkpoints, "nothing was sealed"
    # Never the same head twice; heads only move forward.
    for execution_id in ids:
        seqs = [
            leaf["head_seq"] for leaf in leaves if leaf["execution_id"] == execution_id
        ]
        assert seqs == sorted(set(seqs)), (execution_id, seqs)
    # At most one leaf per execution per round (between two checkpoints).
    sizes = [0, *(size for size, _, _ in checkpoints)]
    for start, end in itertools.pairwise(sizes):
        round_ids = [leaf["execution_id"] for leaf in leaves[start:end]]
        assert len(round_ids) == len(set(round_ids)), (start, end)
    # The last sealed head of each execution is its head now.
    sealed = store.sealed_heads(tenant)
    for execution_id in ids:
        summary = store.get_summary(execution_id, tenant)
        assert summary is not None
        assert sealed[execution_id].head_seq == summary.head_seq
        assert sealed[execution_id].head_link == summary.head_hash
    # Every checkpoint ever signed verifies against the final tree.
    tree = MerkleTree([leaf_hash(leaf) for leaf in store.ledger_leaves(tenant)])
    latest = open_tenant_checkpoint(checkpoints[-1][2], signer.verifier, tenant)
    assert latest.size == tree.size
    assert latest.root == tree.root()
    for size, root, note in checkpoints:
        checkpoint = open_tenant_checkpoint(note, signer.verifier, tenant)
        assert (checkpoint.size, checkpoint.root) == (size, root)
        assert tree.root(size) == root
        if 0 < size < tree.size:
            proof = tree.consistency_proof(size)
            verify_consistency(size, tree.size, root, latest.root, proof)


def wait_until_sealed(
    store: SQLStore,
    tenant: str,
    ids: list[str],
    sealer: subprocess.Popen[str],
    timeout: float,
) -> None:
    """Until the running `sealer` has sealed each of `ids` at its head now."""
    deadline = time.monotonic() + timeout
    while True:
        sealed = store.sealed_heads(tenant)
        heads = [store.get_summary(i, tenant) for i in ids]
        if all(
            h is not None and i in sealed and sealed[i].head_seq == h.head_seq
            for i, h in zip(ids, heads, strict=True)
        ):
            return
        assert sealer.poll() is None, "the sealer ended"
        assert time.monotonic() < deadline, "not sealed in time"
        time.sleep(0.05)


def ledger_store(
    url: str, directory: Path, origin: str
) -> tuple[SQLStore, Signer, Path]:
    """The store at `url` with a ledger named `origin`, its signer, and the
    signer's key file (in `directory`) for ``JOURNAL_LEDGER_KEY_FILE``."""
    signer = Signer.generate(origin)
    key_file = directory / "ledger.key"
    write_key_file(key_file, signer)
    store = open_store(url)
    assert isinstance(store, SQLStore)
    store.init_ledger(signer.name)
    return store, signer, key_file
