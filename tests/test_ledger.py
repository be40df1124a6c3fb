"""The ledger against attackers, on SQLite and PostgreSQL.

Three attackers, each with more than the last:

* write access to the database, no keys: deletes, truncates or rewrites a
  sealed execution (recomputing its keyless chain): ``verify --all`` exits 6
  naming the execution;
* the same and the HMAC signing key: the rewrite's chain and head MAC are
  valid, so the journal alone cannot tell; the sealer refuses to seal it and
  ``verify --all`` exits 6 (the sealed head is no longer in the store);
* the same and the ledger tables: the leaf is rewritten too, but the attacker
  has no ledger key to sign a checkpoint: ``ledger prove --from`` a
  checkpoint the auditor kept fails.

Raw SQL is the attacker's tool (`tests.tampering`); the guards (append-only
triggers) are dropped first, as an attacker with DDL rights would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import journal
from journal.chain import chain_rows, genesis_link, head_record
from journal.errors import SigningKeyError
from journal.keys import Keyring, SigningKey, generate_key
from journal.ledger import KEY_FILE_ENV, write_key_file
from journal.sealer import SealReport, run_sealer
from journal.signednote import Signer
from journal.sqlstore import SQLStore
from journal.urls import open_store
from tests.cli_support import Invoke
from tests.conftest import isolated_url, new_tenant
from tests.tampering import RawDatabase

pytest_plugins = ["tests.cli_fixtures"]

ORIGIN = "ledger.test"


@dataclass
class Scene:
    """Sealed executions in a store, an auditor's checkpoint, raw access."""

    url: str
    tenant: str
    ids: list[str]
    key: str | None
    raw: RawDatabase
    kept: Path
    pubkey: Path

    @property
    def env(self) -> dict[str, str]:
        return {"JOURNAL_SIGNING_KEY": self.key} if self.key else {}

    def keyring(self) -> Keyring:
        return Keyring(SigningKey.parse(self.key)) if self.key else Keyring()


def record(url: str, tenant: str, keyring: Keyring, count: int) -> list[str]:
    """Running executions (two steps each), so more can be appended."""
    ids = []
    with journal.Journal(open_store(url, keyring=keyring), tenant) as j:
        for _ in range(count):
            handle = j.create(flow="ledger.test", input={"amount": 5})
            handle.start()
            for n in range(2):
                handle.complete_step(handle.start_step(f"s{n}", input=n), {"n": n})
            ids.append(str(handle.id))
    return ids


def step(url: str, tenant: str, keyring: Keyring, execution_id: str) -> None:
    """One more step appended by the journal (a legitimate writer)."""
    with journal.Journal(open_store(url, keyring=keyring), tenant) as j:
        handle = j.handle(execution_id)
        handle.complete_step(handle.start_step("later", input=1), {"n": 9})


def seal(url: str, keyring: Keyring) -> SealReport:
    """One sealing pass, as `journal seal` runs it."""
    store = open_store(url, keyring=keyring)
    store.sequence_log(wait=True)
    target = store.max_position()
    store.close()
    return run_sealer(url, target)


@pytest.fixture
def scene(
    request: pytest.FixtureRequest,
    sql_backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Scene]:
    """Three sealed executions; with the ``signed`` mark, their index rows
    carry an HMAC head MAC (the attacker of those tests holds that key)."""
    url = isolated_url(sql_backend, tmp_path)
    key = generate_key() if request.node.get_closest_marker("signed") else None
    monkeypatch.delenv("JOURNAL_SIGNING_KEY", raising=False)
    if key:
        monkeypatch.setenv("JOURNAL_SIGNING_KEY", key)
    signer = Signer.generate(ORIGIN)
    key_file = tmp_path / "ledger.key"
    write_key_file(key_file, signer)
    pubkey = tmp_path / "ledger.pub"
    pubkey.write_text(signer.verifier.vkey + "\n")
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    keyring = Keyring(SigningKey.parse(key)) if key else Keyring()
    store = open_store(url, keyring=keyring)
    assert isinstance(store, SQLStore)
    store.init_ledger(ORIGIN)
    tenant = new_tenant()
    ids = record(url, tenant, keyring, 3)
    report = seal(url, keyring)
    assert (report.leaves, report.refused) == (3, [])
    kept = tmp_path / "kept.checkpoint"
    kept.write_text(store.ledger_checkpoints(tenant)[-1][2])
    store.close()
    raw = RawDatabase(url)
    raw.drop_guards()
    try:
        yield Scene(url, tenant, ids, key, raw, kept, pubkey)
    finally:
        raw.close()


def verify_all(invoke: Invoke, scene: Scene) -> tuple[int, str]:
    result = invoke(
        "verify", "--all", "--db", scene.url, "--tenant", scene.tenant, env=scene.env
    )
    return result.exit_code, result.output


def rewrite(scene: Scene, execution_id: str, *, mac: bool) -> bytes:
    """Edit a step's output and relink the keyless chain (and, with the HMAC
    key, recompute the head MAC); return the new head link."""
    key = scene.raw.key(execution_id)
    payloads = [payload for _seq, payload, _link in scene.raw.rows(key)]
    payloads[3] = payloads[3].replace(b'"n":0', b'"n":7')
    [(genesis,)] = scene.raw.run(
        "SELECT genesis FROM journal_executions WHERE exec_key = ?", key
    )
    relinked = chain_rows(genesis_link(bytes(genesis)), 1, payloads)
    for row in relinked:
        scene.raw.set_row(key, row.seq, row.payload, row.hash)
    head = relinked[-1].hash
    scene.raw.run(
        "UPDATE journal_executions SET head_hash = ? WHERE exec_key = ?", head, key
    )
    if mac:
        assert scene.key is not None
        store = open_store(scene.url, keyring=scene.keyring())
        summary = store.get_summary(execution_id, scene.tenant)
        store.close()
        assert summary is not None
        signing = SigningKey.parse(scene.key)
        scene.raw.run(
            "UPDATE journal_executions SET head_mac = ? WHERE exec_key = ?",
            signing.head_mac(summary.head_record()),
            key,
        )
    return head


def test_an_untouched_store_verifies_against_its_ledger(
    invoke: Invoke, scene: Scene
) -> None:
    code, output = verify_all(invoke, scene)
    assert code == 0, output
    assert "3 verified, 0 broken" in output


def test_a_deleted_sealed_execution_exits_6_naming_it(
    invoke: Invoke, scene: Scene
) -> None:
    victim = scene.ids[1]
    key = scene.raw.key(victim)
    scene.raw.run("DELETE FROM journal_events WHERE exec_key = ?", key)
    scene.raw.run("DELETE FROM journal_executions WHERE exec_key = ?", key)
    code, output = verify_all(invoke, scene)
    assert code == 6, output
    assert victim in output
    assert "deleted" in output


def test_a_truncated_sealed_execution_exits_6_naming_it(
    invoke: Invoke, scene: Scene
) -> None:
    victim = scene.ids[0]
    key = scene.raw.key(victim)
    rows = scene.raw.rows(key)
    scene.raw.run("DELETE FROM journal_events WHERE exec_key = ? AND seq > ?", key, 4)
    scene.raw.run(
        "UPDATE journal_executions SET head_seq = ?, head_hash = ?, step_count = ? "
        "WHERE exec_key = ?",
        4,
        rows[3][2],
        1,
        key,
    )
    alone = invoke("verify", victim, "--db", scene.url, "--tenant", scene.tenant)
    assert alone.exit_code == 0, alone.output  # a consistent, shorter history
    code, output = verify_all(invoke, scene)
    assert code == 6, output
    assert victim in output
    assert "truncated: head 4, sealed 6" in output


def test_a_rewrite_with_the_chain_recomputed_exits_6_naming_it(
    invoke: Invoke, scene: Scene
) -> None:
    victim = scene.ids[2]
    rewrite(scene, victim, mac=False)
    alone = invoke("verify", victim, "--db", scene.url, "--tenant", scene.tenant)
    assert alone.exit_code == 0, alone.output  # a valid keyless chain
    code, output = verify_all(invoke, scene)
    assert code == 6, output
    assert victim in output


@pytest.mark.signed
def test_with_the_hmac_key_the_rewrite_verifies_alone_but_is_never_sealed(
    invoke: Invoke, scene: Scene
) -> None:
    victim = scene.ids[0]
    rewrite(scene, victim, mac=True)
    # The journal alone cannot tell: chain and MAC are valid.
    alone = invoke(
        "verify", victim, "--db", scene.url, "--tenant", scene.tenant, env=scene.env
    )
    assert alone.exit_code == 0, alone.output
    # The store moves on (a writer appends to the forged history) ...
    step(scene.url, scene.tenant, scene.keyring(), victim)
    step(scene.url, scene.tenant, scene.keyring(), scene.ids[1])
    # ... the sealer seals the honest execution and refuses the forged one.
    result = invoke("seal", "--db", scene.url, env=scene.env)
    assert result.exit_code == 6, result.output
    assert victim in result.output
    assert "rewritten" in result.output
    assert "sealed 1 heads" in result.output
    code, output = verify_all(invoke, scene)
    assert code == 6, output
    assert victim in output
    assert "rewritten" in output


@pytest.mark.signed
def test_with_the_ledger_tables_rewritten_too_the_kept_checkpoint_exposes_it(
    invoke: Invoke, scene: Scene
) -> None:
    prove = ("ledger", "prove", "--from", str(scene.kept), "--pubkey")
    before = invoke(*prove, str(scene.pubkey), "--db", scene.url, "--tenant",
                    scene.tenant, env=scene.env)  # fmt: skip
    assert before.exit_code == 0, before.output
    victim = scene.ids[1]
    exported = scene.kept.parent / "before.jsonl"
    done = invoke("export", victim, "--proof", "-o", str(exported), "--db",
                  scene.url, "--tenant", scene.tenant, env=scene.env)  # fmt: skip
    assert done.exit_code == 0, done.output
    head = rewrite(scene, victim, mac=True)
    store = open_store(scene.url, keyring=scene.keyring())
    summary = store.get_summary(victim, scene.tenant)
    store.close()
    assert summary is not None
    forged = head_record(
        scene.tenant, victim, summary.flow, summary.state, summary.head_seq, head
    )
    scene.raw.run(
        "UPDATE journal_ledger_leaves SET leaf = ? WHERE execution_id = ?",
        forged,
        victim,
    )
    scene.raw.run(
        "UPDATE journal_ledger_heads SET head_link = ? WHERE execution_id = ?",
        head,
        victim,
    )
    after = invoke(*prove, str(scene.pubkey), "--db", scene.url, "--tenant",
                   scene.tenant, env=scene.env)  # fmt: skip
    assert after.exit_code == 6, after.output
    # The export made before the rewrite still proves what was sealed, offline.
    offline = invoke("verify", "--file", str(exported), "--pubkey", str(scene.pubkey),
                     env={"JOURNAL_DB": "", KEY_FILE_ENV: ""})  # fmt: skip
    assert offline.exit_code == 0, offline.output
    assert "inclusion proof and signature ok" in offline.output
    sealed = json.loads(exported.read_text().splitlines()[0])["proofs"]["ledger"]
    assert json.loads(sealed["leaf"])["head"] != head.hex()
    code, output = verify_all(invoke, scene)
    assert code == 6, output
    assert "ledger" in output


def test_the_sealer_refuses_another_ledgers_key_and_signs_nothing(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    step(scene.url, scene.tenant, scene.keyring(), scene.ids[0])  # a head to seal
    store = open_store(scene.url, keyring=scene.keyring())
    assert isinstance(store, SQLStore)
    before = store.ledger_checkpoints(scene.tenant)
    # Named for another ledger; and a new key under this ledger's own name,
    # which would sign checkpoints no kept verifier key accepts.
    for origin in ("other.test", ORIGIN):
        key_file = scene.kept.parent / f"{origin}.key"
        write_key_file(key_file, Signer.generate(origin))
        monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
        with pytest.raises(SigningKeyError, match="wrong ledger key"):
            seal(scene.url, scene.keyring())
    assert store.ledger_checkpoints(scene.tenant) == before
    store.close()
