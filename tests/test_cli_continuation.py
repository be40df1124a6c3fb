"""``journal resume``, ``recover`` and ``fork`` through the CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import journal
from tests import continuation_flows as cf
from tests.cli_support import Invoke

pytest_plugins = ["tests.cli_fixtures"]

FLOWS = "tests.continuation_flows"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def effects(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = workdir / "effects.log"
    monkeypatch.setenv("JOURNAL_TEST_EFFECTS", str(log))
    monkeypatch.delenv("JOURNAL_TEST_BLOCK", raising=False)
    monkeypatch.syspath_prepend(str(REPO))
    return log


def dump(db_path: Path) -> list[str]:
    """Every row of every table, as text (the store's whole content)."""
    connection = sqlite3.connect(db_path)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def waiting_refund(db: str) -> journal.Execution:
    with journal.open(db) as journal_:
        return cf.approvals.run(journal_, "ord_42")


def test_show_prints_the_digest_to_approve_and_resume_completes_it(
    db: str, invoke: Invoke, effects: Path
) -> None:
    execution = waiting_refund(db)
    digest = execution.waits[0].digest
    assert digest is not None

    shown = invoke("--db", db, "show", execution.id)
    done = invoke(
        "--db", db, "--flows", FLOWS, "resume", execution.id,
        "--input", '"ok"', "--approver", "alice", "--digest", digest,
    )  # fmt: skip

    assert shown.exit_code == 0, shown.stderr
    assert f"digest     {digest}" in shown.stdout
    assert "prompt     refund 40 for ord_42?" in shown.stdout
    assert "approver   required" in shown.stdout
    assert done.exit_code == 0, done.stderr
    assert done.stdout == f"{execution.id} Completed\n"


def test_a_refused_approval_exits_9_and_a_wrong_state_exits_8(
    db: str, invoke: Invoke, effects: Path
) -> None:
    execution = waiting_refund(db)

    wrong = invoke(
        "--db", db, "--flows", FLOWS, "resume", execution.id,
        "--approver", "alice", "--digest", "sha256:" + "0" * 64,
    )  # fmt: skip
    denied = invoke(
        "--db", db, "--flows", FLOWS, "resume", execution.id,
        "--deny", "--approver", "bob", "--reason", "no",
    )  # fmt: skip
    again = invoke("--db", db, "--flows", FLOWS, "resume", execution.id)
    bad_json = invoke(
        "--db", db, "--flows", FLOWS, "resume", execution.id, "--input", "{"
    )  # fmt: skip

    assert wrong.exit_code == 9
    assert wrong.stderr.startswith(f"journal: error: {execution.id} seq ")
    assert "approval names digest sha256:000" in wrong.stderr
    assert denied.exit_code == 0, denied.stderr
    assert again.exit_code == 8
    assert "Completed: it has ended" in again.stderr
    assert bad_json.exit_code == 2


def test_resume_without_the_flow_loaded_exits_1(
    db: str, invoke: Invoke, effects: Path
) -> None:
    execution = waiting_refund(db)

    result = invoke("--db", db, "resume", execution.id)

    assert result.exit_code == 1
    assert "flow 't.approvals', which is not loaded" in result.stderr


def test_a_resume_whose_prefix_diverges_exits_5_and_leaves_the_store_as_it_was(
    db: str, db_path: Path, invoke: Invoke, effects: Path, workdir: Path
) -> None:
    execution = waiting_refund(db)
    source = (REPO / "tests" / "continuation_flows.py").read_text()
    changed = source.replace("amount = quote(order)", "amount = quote(order + '!')")
    assert changed != source
    (workdir / "changed_flows.py").write_text(changed)
    before = dump(db_path)

    result = invoke(
        "--db", db, "--flows", "changed_flows", "resume", execution.id,
        "--input", '"ok"', "--approver", "alice",
        "--digest", str(execution.waits[0].digest),
    )  # fmt: skip

    assert result.exit_code == 5
    assert "the recorded prefix diverges" in result.stderr
    assert dump(db_path) == before


def test_fork_goes_on_from_a_step_and_a_bad_step_is_a_usage_error(
    db: str, invoke: Invoke, effects: Path
) -> None:
    with journal.open(db) as journal_:
        original = cf.charges.run(journal_, "ord_5")

    forked = invoke(
        "--db", db, "--flows", FLOWS, "--json", "fork", original.id,
        "--at-step", "2", "--input", '{"charge": "charged twice"}',
    )  # fmt: skip
    missing = invoke(
        "--db", db, "--flows", FLOWS, "fork", original.id, "--at-step", "9"
    )  # fmt: skip

    assert forked.exit_code == 0, forked.stderr
    document = json.loads(forked.stdout)
    assert document["state"] == "Completed"
    with journal.open(db) as journal_:
        fork = journal_.get(document["execution_id"])
    assert fork.decode_output(str) == "shipped after charged twice"
    assert missing.exit_code == 2
    assert "no step 9 to fork at" in missing.stderr


def test_recover_dry_run_lists_and_recover_completes_a_dead_run(
    db: str, invoke: Invoke, effects: Path
) -> None:
    flow_crash = ["once"]

    def dies(reservation: str) -> str:
        if flow_crash and flow_crash.pop():
            raise SystemExit("killed")
        return f"charged {reservation}"

    step = cf.charges.steps["t.charges.slow_charge"]
    original_function = step.function
    object.__setattr__(step, "function", dies)
    try:
        with journal.open(db) as journal_, pytest.raises(SystemExit):
            cf.charges.run(journal_, "ord_6")
    finally:
        object.__setattr__(step, "function", original_function)
    with journal.open(db) as journal_:
        (summary,) = journal_.list()

    listed = invoke(
        "--db", db, "--flows", FLOWS, "recover", "--older-than", "0s", "--dry-run"
    )  # fmt: skip
    done = invoke("--db", db, "--flows", FLOWS, "recover", "--older-than", "0s")
    bad = invoke("--db", db, "recover", "--older-than", "soon")

    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout == f"{summary.execution_id} would recover\n"
    assert done.exit_code == 0, done.stderr
    assert done.stdout == f"{summary.execution_id} recovered Completed\n"
    assert bad.exit_code == 2


def test_the_console_script_resumes_an_approval_in_another_process(
    db: str,
    run_script: Callable[..., subprocess.CompletedProcess[str]],
    effects: Path,
) -> None:
    execution = waiting_refund(db)
    digest = str(execution.waits[0].digest)

    done = run_script(
        "--db", db, "--flows", FLOWS, "resume", execution.id, "--input", '"ok"',
        "--approver", "alice", "--digest", digest,
        PYTHONPATH=str(REPO), JOURNAL_TEST_EFFECTS=str(effects),
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{execution.id} Completed\n"
    assert effects.read_text().splitlines() == ["quote ord_42", "refund ord_42 40"]


def test_with_a_keyring_the_cli_accepts_only_a_signed_approval(
    db: str, invoke: Invoke, effects: Path, workdir: Path
) -> None:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from journal.approvals import sign_digest

    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    keyring = workdir / "approvers.json"
    approvers = {"alice": base64.b64encode(public).decode()}
    keyring.write_text(json.dumps({"approvers": approvers}))
    execution = waiting_refund(db)
    digest = str(execution.waits[0].digest)
    approve = (
        "--db", db, "--flows", FLOWS, "resume", execution.id, "--input", '"ok"',
        "--approver", "alice", "--digest", digest, "--keyring", str(keyring),
    )  # fmt: skip

    unsigned = invoke(*approve)
    forged = invoke(*approve, "--signature", "00" * 64)
    signed = invoke(
        *approve, "--signature", sign_digest(key.private_bytes_raw(), digest)
    )

    assert unsigned.exit_code == 9
    assert "unsigned approval by alice" in unsigned.stderr
    assert forged.exit_code == 9
    assert "bad signature by alice" in forged.stderr
    assert signed.exit_code == 0, signed.stderr
    assert signed.stdout == f"{execution.id} Completed\n"
