"""A running sealer keeps each tenant's Merkle tree between rounds.

A round then reads no leaves (it costs what it adds, not the whole ledger);
a kept tree that is not the latest checkpointed one (same size and root) is
rebuilt from the stored leaves, so a round that was not stored, or a ledger
changed behind the sealer's back, can never make it sign a wrong root.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import journal
from journal.ledger import KEY_FILE_ENV
from journal.sealer import Sealer, sealer_runner
from tests.conftest import isolated_url, new_tenant
from tests.ledger_checks import check_sealed, ledger_store


def test_a_running_sealer_reuses_its_tree_and_rebuilds_a_wrong_one(
    sql_backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = isolated_url(sql_backend, tmp_path)
    monkeypatch.delenv("JOURNAL_SIGNING_KEY", raising=False)
    store, signer, key_file = ledger_store(url, tmp_path, "ledger.tree")
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    tenant = new_tenant()
    ids: list[str] = []

    def add_execution() -> None:
        with journal.open(url, tenant=tenant) as j:
            handle = j.create(flow="tree")
            handle.start()
            ids.append(str(handle.id))
        store.sequence_log(wait=True)

    runner = sealer_runner(url)
    with runner:
        sealer = runner.projection
        assert isinstance(sealer, Sealer)
        reads: list[str] = []
        leaves_of = sealer.store.ledger_leaves

        def counted(tenant_id: str) -> list[bytes]:
            reads.append(tenant_id)
            return leaves_of(tenant_id)

        monkeypatch.setattr(sealer.store, "ledger_leaves", counted)
        for expected_reads in (1, 1, 1):  # built once, then kept
            add_execution()
            runner.wait(store.max_position(), timeout=30)
            assert len(reads) == expected_reads
        # A tree that is not the stored one (as after a round that failed to
        # commit): rebuilt, never signed.
        sealer._trees[tenant].append_hash(bytes(32))
        add_execution()
        runner.wait(store.max_position(), timeout=30)
        assert len(reads) == 2
    runner.view.store.close()
    check_sealed(store, tenant, ids, signer)
    assert len(store.ledger_checkpoints(tenant)) == 4
    store.close()
