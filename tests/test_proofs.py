"""``export --proof`` and ``verify --file --pubkey``: an auditor's offline check.

The verifier needs only the export and the ledger's public key: no store, no
secret. A tampered export, a wrong public key, a forged checkpoint and a
proof for another tree are each refused with exit 6 naming what failed. An
export made before an attacker rewrote the store and its ledger tables still
proves what was sealed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import journal
from journal.ledger import KEY_FILE_ENV, write_key_file
from journal.sealer import run_sealer
from journal.signednote import Signer
from journal.sqlstore import SQLStore
from journal.urls import open_store
from tests.cli_support import Invoke, journal_script, script_env
from tests.conftest import isolated_url, new_tenant

pytest_plugins = ["tests.cli_fixtures"]

ORIGIN = "ledger.proofs"


@dataclass
class Sealed:
    url: str
    tenant: str
    ids: list[str]
    pubkey: Path
    export: Path
    tmp: Path


def record(url: str, tenant: str) -> list[str]:
    with journal.open(url, tenant=tenant) as j:
        ids = []
        for amount in (1, 2):
            handle = j.create(flow="proofs.test", input={"amount": amount})
            handle.start()
            handle.complete_step(handle.start_step("s", input=amount), {"n": amount})
            handle.complete({"total": amount})
            ids.append(str(handle.id))
    return ids


@pytest.fixture
def sealed(
    invoke: Invoke, sql_backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Sealed:
    monkeypatch.delenv("JOURNAL_SIGNING_KEY", raising=False)
    url = isolated_url(sql_backend, tmp_path)
    signer = Signer.generate(ORIGIN)
    key_file = tmp_path / "ledger.key"
    write_key_file(key_file, signer)
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    pubkey = tmp_path / "ledger.pub"
    pubkey.write_text(signer.verifier.vkey + "\n")
    store = open_store(url)
    assert isinstance(store, SQLStore)
    store.init_ledger(ORIGIN)
    tenant = new_tenant()
    ids = record(url, tenant)
    store.sequence_log(wait=True)
    assert run_sealer(url, store.max_position()).leaves == 2
    store.close()
    export = tmp_path / "export.jsonl"
    done = invoke("export", ids[0], "--proof", "-o", str(export), "--db", url,
                  "--tenant", tenant)  # fmt: skip
    assert done.exit_code == 0, done.output
    return Sealed(url, tenant, ids, pubkey, export, tmp_path)


def verify_file(path: Path, pubkey: Path) -> subprocess.CompletedProcess[str]:
    """The real console script, with no store and no key in its environment."""
    env = script_env()
    env.pop(KEY_FILE_ENV, None)
    return subprocess.run(
        [journal_script(), "verify", "--file", str(path), "--pubkey", str(pubkey)],
        capture_output=True,
        text=True,
        env=env,
        cwd=path.parent,
        timeout=120,
        check=False,
    )


def lines_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_lines(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_an_export_with_proofs_verifies_offline_with_only_the_public_key(
    sealed: Sealed,
) -> None:
    done = verify_file(sealed.export, sealed.pubkey)
    assert done.returncode == 0, done.stderr
    assert "inclusion proof and signature ok" in done.stdout
    header = lines_of(sealed.export)[0]
    leaf = json.loads(header["proofs"]["ledger"]["leaf"])  # type: ignore[index]
    assert leaf["execution_id"] == sealed.ids[0]
    assert leaf["tenant_id"] == sealed.tenant


def test_a_tampered_export_is_refused(sealed: Sealed) -> None:
    lines = lines_of(sealed.export)
    payload = str(lines[3]["payload"])  # the step's start: its input is 1
    lines[3]["payload"] = payload.replace('"input":1', '"input":5')
    assert lines[3]["payload"] != payload
    done = verify_file(write_lines(sealed.tmp / "tampered.jsonl", lines), sealed.pubkey)
    assert done.returncode == 6, done.stderr
    assert sealed.ids[0] in done.stderr


def test_a_wrong_public_key_is_refused(sealed: Sealed) -> None:
    other = sealed.tmp / "other.pub"
    other.write_text(Signer.generate(ORIGIN).verifier.vkey)
    done = verify_file(sealed.export, other)
    assert done.returncode == 6, done.stderr
    assert "checkpoint" in done.stderr


def test_a_forged_checkpoint_is_refused(sealed: Sealed) -> None:
    lines = lines_of(sealed.export)
    ledger = lines[0]["proofs"]["ledger"]  # type: ignore[index]
    origin, size, _root, *rest = ledger["checkpoint"].split("\n")
    forged_root = base64.b64encode(bytes(32)).decode()
    ledger["checkpoint"] = "\n".join([origin, size, forged_root, *rest])
    done = verify_file(write_lines(sealed.tmp / "forged.jsonl", lines), sealed.pubkey)
    assert done.returncode == 6, done.stderr
    assert "does not verify" in done.stderr


def test_a_proof_for_another_tree_is_refused(invoke: Invoke, sealed: Sealed) -> None:
    other = sealed.tmp / "other.jsonl"
    done = invoke("export", sealed.ids[1], "--proof", "-o", str(other), "--db",
                  sealed.url, "--tenant", sealed.tenant)  # fmt: skip
    assert done.exit_code == 0, done.output
    lines = lines_of(sealed.export)
    lines[0]["proofs"] = lines_of(other)[0]["proofs"]
    swapped = verify_file(
        write_lines(sealed.tmp / "swapped.jsonl", lines), sealed.pubkey
    )
    assert swapped.returncode == 6, swapped.stderr
    assert "another execution" in swapped.stderr
    # A proof path of another tree (one hash changed) does not lead to the root.
    lines = lines_of(sealed.export)
    ledger = lines[0]["proofs"]["ledger"]  # type: ignore[index]
    ledger["proof"] = [base64.b64encode(bytes(32)).decode() for _ in ledger["proof"]]
    bent = verify_file(write_lines(sealed.tmp / "bent.jsonl", lines), sealed.pubkey)
    assert bent.returncode == 6, bent.stderr
    assert "inclusion" in bent.stderr


def test_an_export_without_proofs_is_refused_under_pubkey(
    invoke: Invoke, sealed: Sealed
) -> None:
    plain = sealed.tmp / "plain.jsonl"
    done = invoke("export", sealed.ids[0], "-o", str(plain), "--db", sealed.url,
                  "--tenant", sealed.tenant)  # fmt: skip
    assert done.exit_code == 0, done.output
    checked = verify_file(plain, sealed.pubkey)
    assert checked.returncode == 6, checked.stderr
    assert "no ledger proof" in checked.stderr


@pytest.mark.skipif(
    os.environ.get("JOURNAL_SOAK") != "1",
    reason="builds a virtual environment (JOURNAL_SOAK=1)",
)
def test_verify_file_runs_in_a_fresh_venv_with_only_the_package(
    sealed: Sealed, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(root)],
        check=True,
        timeout=900,
    )
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [str(venv / "bin" / "journal"), "verify", "--file", str(sealed.export),
         "--pubkey", str(sealed.pubkey)],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    wrong = tmp_path / "wrong.pub"
    wrong.write_text(Signer.generate(ORIGIN).verifier.vkey)
    refused = subprocess.run(
        [str(venv / "bin" / "journal"), "verify", "--file", str(sealed.export),
         "--pubkey", str(wrong)],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert refused.returncode == 6, refused.stderr
