"""The ledger commands a user types, through the real console script."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import journal
from journal.ledger import KEY_FILE_ENV
from journal.signednote import Signer, Verifier
from tests.cli_support import journal_script, script_env
from tests.conftest import new_tenant


def run(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [journal_script(), *args],
        capture_output=True,
        text=True,
        env=script_env(**env),
        cwd=tmp,
        timeout=300,
        check=False,
    )


def test_keygen_init_seal_checkpoint_and_prove_as_an_operator_types_them(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    tenant = new_tenant()
    with journal.open(url, tenant=tenant) as j:
        handle = j.create(flow="cli.ledger")
        handle.start()
        handle.complete({"ok": True})
    key = tmp_path / "ledger.key"
    made = run(
        tmp_path, "ledger", "keygen", "--origin", "example.org/j", "--out", "ledger.key"
    )
    assert made.returncode == 0, made.stderr
    assert Verifier.from_vkey(made.stdout).name == "example.org/j"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (
        Signer.from_private_key_text(key.read_text()).verifier.vkey
        == made.stdout.strip()
    )
    env = {"JOURNAL_DB": url, "JOURNAL_TENANT": tenant, KEY_FILE_ENV: str(key)}
    pub = run(tmp_path, "ledger", "pubkey", **env)
    assert pub.stdout == made.stdout
    (tmp_path / "ledger.pub").write_text(pub.stdout)
    assert (
        run(tmp_path, "ledger", "init", "--origin", "example.org/j", **env).returncode
        == 0
    )
    sealed = run(tmp_path, "seal", "--json", **env)
    assert sealed.returncode == 0, sealed.stderr
    assert json.loads(sealed.stdout) == {"rounds": 1, "leaves": 1, "refused": []}
    kept = run(tmp_path, "ledger", "checkpoint", **env)
    assert kept.stdout.startswith(f"example.org/j/{tenant}\n1\n")
    (tmp_path / "kept").write_text(kept.stdout)
    with journal.open(url, tenant=tenant) as j:
        j.create(flow="cli.ledger").start()
    assert run(tmp_path, "seal", **env).returncode == 0
    listed = run(tmp_path, "ledger", "checkpoints", **env)
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["1", "2"]
    proved = run(tmp_path, "ledger", "prove", "--from", "kept", "--pubkey",
                 "ledger.pub", "--json", **env)  # fmt: skip
    assert proved.returncode == 0, proved.stderr
    proof = json.loads(proved.stdout)
    assert (proof["old_size"], proof["size"], proof["ok"]) == (1, 2, True)
    assert len(proof["proof"]) == 1


def test_bad_ledger_input_says_what_was_wrong_with_its_exit_code(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    journal.open(url).close()
    url_origin = run(tmp_path, "ledger", "init", "--origin", "https://u:pw@host/x",
                     JOURNAL_DB=url)  # fmt: skip
    assert url_origin.returncode == 2
    assert "--origin" in url_origin.stderr
    assert "Traceback" not in url_origin.stderr
    (tmp_path / "taken.key").write_text("x")
    taken = run(tmp_path, "ledger", "keygen", "--origin", "o", "--out", "taken.key")
    assert taken.returncode == 2
    assert "never overwritten" in taken.stderr
    assert (tmp_path / "taken.key").read_text() == "x"
    keyless = run(tmp_path, "seal", JOURNAL_DB=url)
    assert keyless.returncode == 10
    assert KEY_FILE_ENV in keyless.stderr
    (tmp_path / "bad.key").write_text("PRIVATE+KEY+o+00000000+AAAA\n")
    bad = run(tmp_path, "seal", JOURNAL_DB=url, **{KEY_FILE_ENV: "bad.key"})
    assert bad.returncode == 10
    assert "bad private key" in bad.stderr
