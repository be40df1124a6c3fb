"""The sealer killed with SIGKILL at random moments while writers append.

Afterwards every head is sealed at most once per round (no execution has two
leaves for one head, nor two leaves between consecutive checkpoints), the
last sealed head of every execution is its head, and the tree verifies
against every checkpoint ever signed (signature, root, consistency with the
latest). ``JOURNAL_SOAK=1`` kills it 100 times per backend instead of 10.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import journal
from journal.ledger import KEY_FILE_ENV, open_tenant_checkpoint, write_key_file
from journal.merkle import MerkleTree, leaf_hash, verify_consistency
from journal.signednote import Signer
from journal.sqlstore import SQLStore
from journal.urls import open_store
from tests.cli_support import journal_script, script_env
from tests.conftest import isolated_url, new_tenant

#: Kills per backend (SQLite and PostgreSQL: 20 in all by default).
KILLS = 100 if os.environ.get("JOURNAL_SOAK") == "1" else 10
ORIGIN = "ledger.kill"


def write_steadily(url: str, tenant: str, stop: threading.Event) -> list[str]:
    """Three executions, a step at a time, round robin, until stopped."""
    ids: list[str] = []
    with journal.open(url, tenant=tenant) as j:
        handles = [j.create(flow="kill.test") for _ in range(3)]
        for handle in handles:
            handle.start()
            ids.append(str(handle.id))
        while not stop.is_set():
            for handle in handles:
                handle.complete_step(handle.start_step("s", input=1), {"ok": 1})
            time.sleep(0.01)
    return ids


def test_a_sealer_killed_at_random_moments_seals_every_head_once_per_round(
    sql_backend: str, tmp_path: Path
) -> None:
    url = isolated_url(sql_backend, tmp_path)
    signer = Signer.generate(ORIGIN)
    key_file = tmp_path / "ledger.key"
    write_key_file(key_file, signer)
    store = open_store(url)
    assert isinstance(store, SQLStore)
    store.init_ledger(ORIGIN)
    tenant = new_tenant()
    env = script_env(JOURNAL_DB=url, **{KEY_FILE_ENV: str(key_file)})
    stop = threading.Event()
    written: list[str] = []
    writer = threading.Thread(
        target=lambda: written.extend(write_steadily(url, tenant, stop))
    )
    writer.start()
    chance = random.Random(os.environ.get("JOURNAL_KILL_SEED"))
    try:
        for _ in range(KILLS):
            sealer = subprocess.Popen(
                [journal_script(), "seal", "--follow"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # A sealer needs about a second to start (imports, connections).
            time.sleep(chance.uniform(0.3, 2.0))
            sealer.send_signal(signal.SIGKILL)
            sealer.wait(timeout=60)
    finally:
        stop.set()
        writer.join(timeout=60)
    # The killed sealers did seal rounds (they were not all killed at start-up).
    assert store.ledger_checkpoints(tenant)
    final = subprocess.run(
        [journal_script(), "seal", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["refused"] == []
    check_ledger(store, tenant, written, signer)
    store.close()


def check_ledger(store: SQLStore, tenant: str, ids: list[str], signer: Signer) -> None:
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


@pytest.fixture(autouse=True)
def _no_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_SIGNING_KEY", raising=False)
