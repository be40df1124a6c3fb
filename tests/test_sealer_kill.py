"""The sealer killed with SIGKILL at random moments while writers append.

Two writers (one per tenant, threads) append steps and complete executions,
starting new ones; sealers (`journal seal --follow`) are started and killed
one after another, in turn at a random moment, at a random moment after a
committed round, and frozen inside an open write transaction
(`tests.sealer_kill_support`). A watcher samples the committed ledger all
along. Then one clean `journal seal`, and the checks (`check_ledger`):

* every checkpoint ever signed (all those stored, and every one the watcher
  saw while the sealers ran, unchanged) has a valid signature and origin,
  the final tree's root at its size, and consistency proofs to the next
  checkpoint and to the latest that verify;
* once per round it advanced in: in every committed state the watcher
  sampled (tracking position and leaves, one snapshot), every execution is
  sealed at least up to its head at that position, and every leaf sealed
  between two samples is of an execution with an event between them;
* exactly once: no (execution, head) has two leaves (heads only move
  forward) and no execution has two leaves in one round (between two of its
  tenant's checkpoints); each leaf holds the stored chain's link at its
  sequence; the sealed-heads table points at each execution's last leaf,
  and after the clean seal that leaf is the execution's head record now.

``JOURNAL_SOAK=1`` kills 100 sealers per backend instead of 10; each run
prints its figures (``sealer kill:``).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import secrets
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest

from journal.chain import head_record
from journal.checkpoint import Checkpoint
from journal.ledger import KEY_FILE_ENV, open_tenant_checkpoint, write_key_file
from journal.log import LogEntry
from journal.merkle import MerkleTree, leaf_hash, verify_consistency
from journal.signednote import Signer
from journal.sqlstore import SQLStore
from journal.urls import open_store
from tests.cli_support import journal_script, script_env
from tests.conftest import isolated_url, new_tenant
from tests.sealer_kill_support import (
    Kills,
    PostgresProbe,
    Sample,
    SQLiteProbe,
    Watcher,
    Writers,
    kill_one,
    rotate,
    start_sealer,
)

#: Kills per backend (SQLite and PostgreSQL: 20 in all by default).
KILLS = 100 if os.environ.get("JOURNAL_SOAK") == "1" else 10
ORIGIN = "ledger.kill"


def report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    """Print a figure line past pytest's capture."""
    with capsys.disabled():
        print(f"\nsealer kill: {text}")


def test_a_sealer_killed_at_random_moments_seals_every_head_once_per_round(
    sql_backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    began = time.monotonic()
    url = isolated_url(sql_backend, tmp_path)
    signer = Signer.generate(ORIGIN)
    key_file = tmp_path / "ledger.key"
    write_key_file(key_file, signer)
    store = open_store(url)
    assert isinstance(store, SQLStore)
    store.init_ledger(ORIGIN)
    tenants = [new_tenant(), new_tenant()]
    name = f"sealkill{secrets.token_hex(4)}"
    env = script_env(JOURNAL_DB=url, PGAPPNAME=name, **{KEY_FILE_ENV: str(key_file)})
    probe = SQLiteProbe(url) if sql_backend == "sqlite" else PostgresProbe(url, name)
    writers, watcher = Writers(url, tenants), Watcher(url, tenants)
    kills, chance = Kills(), random.Random(os.environ.get("JOURNAL_KILL_SEED"))
    writers.start()
    watcher.start()
    try:
        for number, how in enumerate(rotate(KILLS)):
            errors = tmp_path / f"sealer{number}.err"
            sealer = start_sealer([journal_script(), "seal", "--follow"], env, errors)
            try:
                kill_one(how, sealer, watcher, probe, kills, chance)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; stderr: {errors.read_text()}") from exc
            finally:
                if sealer.poll() is None:  # the test failed: leave no sealer
                    sealer.kill()
                    sealer.wait()
    finally:
        writers.join()
        watcher.stop()
        probe.close()
    assert not writers.errors, writers.errors
    assert not watcher.errors, watcher.errors
    killed_at = time.monotonic() - began
    final = subprocess.run(
        [journal_script(), "seal", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["refused"] == []
    watcher.sample()
    watcher.close()
    figures = check_ledger(store, writers.executions, watcher, signer)
    store.close()
    # The kills landed where they were meant to: most of a third inside the
    # seal round's open transaction, a third after a committed round (the
    # sealers were not all killed at start-up).
    assert kills.in_seal >= KILLS // 3 - KILLS // 10, kills
    assert kills.after_round > 0
    report(
        capsys,
        f"{sql_backend}: {kills.total} kills ({kills.random} at random, "
        f"{kills.after_round} after a round, {kills.in_seal} frozen inside the "
        f"seal round's open transaction, {kills.in_write} in a numbering or "
        f"seal round's, {kills.missed} tries missed; {kills.freezes_let_go} "
        f"freezes let go, {kills.hunt_seconds:.0f} s hunting) in "
        f"{killed_at:.0f} s while "
        f"{writers.appends} appends to {len(writers.executions)} executions of "
        f"{len(tenants)} tenants; {figures}; {time.monotonic() - began:.0f} s "
        "in all",
    )


def check_ledger(
    store: SQLStore, executions: dict[str, str], watcher: Watcher, signer: Signer
) -> str:
    """Check everything the module's docstring lists; return the figures."""
    entries = store.read_log(0, 10**9)
    leaves_of = {t: store.ledger_leaves(t) for t in set(executions.values())}
    checkpoints = sum(
        check_checkpoints(store, tenant, leaves, watcher.notes, signer)
        for tenant, leaves in leaves_of.items()
    )
    intervals = check_samples(watcher.samples, entries, leaves_of)
    check_leaves(store, executions, entries, leaves_of)
    saw = len(watcher.notes)
    rounds = len({sample.position for sample in watcher.samples}) - 1
    return (
        f"{sum(map(len, leaves_of.values()))} heads sealed; {checkpoints} "
        f"checkpoints, each verified; {saw} seen while sealers ran, all kept; "
        f"{intervals} committed states sampled, at least {rounds} rounds"
    )


def check_checkpoints(
    store: SQLStore,
    tenant: str,
    leaves: list[bytes],
    seen: dict[tuple[str, int], str],
    signer: Signer,
) -> int:
    """Every checkpoint: signature, origin, root; consistent with the next
    and the latest (proofs made from the stored leaves, checked as an
    auditor would). Every one seen during the run is still there."""
    stored = store.ledger_checkpoints(tenant)
    assert stored, f"{tenant}: nothing was sealed"
    notes = {size: note for size, _, note in stored}
    for (owner, size), note in seen.items():
        if owner == tenant:
            assert notes.get(size) == note, f"{tenant}: checkpoint {size} changed"
    tree = MerkleTree([leaf_hash(leaf) for leaf in leaves])
    opened: list[Checkpoint] = []
    for size, root, note in stored:
        checkpoint = open_tenant_checkpoint(note, signer.verifier, tenant)
        assert (checkpoint.size, checkpoint.root) == (size, root)
        assert 0 < size <= tree.size, (tenant, size)
        assert tree.root(size) == root, (tenant, size)
        opened.append(checkpoint)
    latest = opened[-1]
    assert (latest.size, latest.root) == (tree.size, tree.root())
    for old, new in itertools.pairwise(opened):
        assert old.size < new.size
        for later in (new, latest):
            proof = tree.consistency_proof(old.size, later.size)
            verify_consistency(old.size, later.size, old.root, later.root, proof)
    return len(opened)


def check_leaves(
    store: SQLStore,
    executions: dict[str, str],
    entries: list[LogEntry],
    leaves_of: dict[str, list[bytes]],
) -> None:
    """Each leaf is the stored chain's head at its sequence; no head twice,
    no execution twice in a round; the last leaf is the head now."""
    links = {(e.execution_id, e.seq): e.link for e in entries}
    for tenant, leaves in leaves_of.items():
        sizes = [0, *(size for size, _, _ in store.ledger_checkpoints(tenant))]
        for start, end in itertools.pairwise(sizes):
            ids = [json.loads(leaf)["execution_id"] for leaf in leaves[start:end]]
            assert len(ids) == len(set(ids)), f"{tenant}: two leaves in round {end}"
        last: dict[str, tuple[int, int]] = {}
        for index, leaf in enumerate(leaves):
            record = json.loads(leaf)
            execution_id, seq = record["execution_id"], record["head_seq"]
            assert executions.get(execution_id) == tenant, record
            link = links[(execution_id, seq)]
            assert record["head"] == link.hex(), f"{execution_id}: not its chain"
            before = last.get(execution_id, (0, -1))[0]
            assert seq > before, f"{execution_id}: sealed {before}, then {seq}"
            last[execution_id] = (seq, index)
        sealed = store.sealed_heads(tenant)
        assert (
            set(sealed)
            == set(last)
            == {e for e, t in executions.items() if t == tenant}
        )
        for execution_id, (seq, index) in last.items():
            summary = store.get_summary(execution_id, tenant)
            assert summary is not None
            head = sealed[execution_id]
            assert (head.head_seq, head.leaf_index) == (seq, index)
            assert (head.head_seq, head.head_link) == (
                summary.head_seq,
                summary.head_hash,
            )
            assert leaves[index] == head_record(
                tenant,
                execution_id,
                summary.flow,
                summary.state,
                summary.head_seq,
                summary.head_hash,
            )


def check_samples(
    samples: list[Sample],
    entries: list[LogEntry],
    leaves_of: dict[str, list[bytes]],
) -> int:
    """In each committed state, every execution is sealed up to its head at
    the tracking position; each leaf sealed between two states is of an
    execution with an event between their positions."""
    records = {
        t: [json.loads(leaf) for leaf in leaves] for t, leaves in leaves_of.items()
    }
    entries = sorted(entries, key=lambda entry: entry.position)
    heads: dict[str, int] = defaultdict(int)
    sealed: dict[str, int] = defaultdict(int)
    done = 0
    for before, after in itertools.pairwise(samples):
        assert before.position <= after.position, (before, after)
        moved = set()
        while done < len(entries) and entries[done].position <= after.position:
            entry = entries[done]
            heads[entry.execution_id] = max(heads[entry.execution_id], entry.seq)
            moved.add(entry.execution_id)
            done += 1
        for tenant, leaves in records.items():
            start, end = before.sizes[tenant], after.sizes[tenant]
            assert start <= end, (before, after)
            for record in leaves[start:end]:
                assert record["execution_id"] in moved, (
                    f"{record['execution_id']} sealed between positions "
                    f"{before.position} and {after.position} without an event"
                )
                sealed[record["execution_id"]] = record["head_seq"]
        # An execution without events here kept its head; its seal only grew.
        for execution_id in moved:
            assert sealed[execution_id] >= heads[execution_id], (
                f"{execution_id}: head {heads[execution_id]} at position "
                f"{after.position}, sealed {sealed[execution_id]}"
            )
    return len(samples)


@pytest.fixture(autouse=True)
def _no_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_SIGNING_KEY", raising=False)
