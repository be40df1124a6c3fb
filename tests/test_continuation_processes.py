"""Continuation across real processes, on SQLite and PostgreSQL.

A flow waits for approval and its process exits; another process resumes it.
A run is killed with SIGKILL inside an effect step; two ``journal recover``
processes started together take it over: exactly one runs it, and no effect
step recorded as completed runs twice (the side-effect log shows it). A
pause from another process during a running step keeps the step's output.
A fork verifies, names its origin, and leaves the original as it was.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_support import journal_script
from tests.conftest import backend_url, new_tenant

REPO = Path(__file__).resolve().parent.parent
FLOWS = "tests.continuation_flows"
LIMIT_S = 60.0  # only stops a hung test: never a timed assertion


@dataclass
class World:
    """One store and tenant, a side-effect log, and how to run processes."""

    url: str
    tenant: str
    folder: Path

    @property
    def effects(self) -> Path:
        return self.folder / "effects.log"

    @property
    def block(self) -> Path:
        return self.folder / "block"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNAL_")}
        env.update(
            PYTHONPATH=str(REPO),
            JOURNAL_DB=self.url,
            JOURNAL_TENANT=self.tenant,
            JOURNAL_FLOWS=FLOWS,
            JOURNAL_TEST_EFFECTS=str(self.effects),
            JOURNAL_HEARTBEAT_S="0.2",
        )
        env.update(extra)
        return env

    def journal(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [journal_script(), *args],
            cwd=self.folder,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=LIMIT_S * 2,
            check=False,
        )

    def start_journal(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [journal_script(), *args],
            cwd=self.folder,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def start_flow(self, flow: str, argument: str, **env: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "tests.continuation_run"]
        return subprocess.Popen(
            [*command, self.url, self.tenant, flow, argument],
            cwd=self.folder,
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def effect_lines(self) -> list[str]:
        return self.effects.read_text().splitlines() if self.effects.exists() else []

    def only_execution(self) -> str:
        listed = self.journal("list", "--json")
        assert listed.returncode == 0, listed.stderr
        (found,) = json.loads(listed.stdout)["executions"]
        return str(found["execution_id"])

    def export(self, execution_id: str) -> str:
        exported = self.journal("export", execution_id)
        assert exported.returncode == 0, exported.stderr
        return exported.stdout


@pytest.fixture
def world(sql_backend: str, tmp_path: Path) -> World:
    return World(backend_url(sql_backend, tmp_path), new_tenant(), tmp_path)


def wait_for_file(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + LIMIT_S
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the run ended early: {process.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {path}")
        time.sleep(0.02)


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=LIMIT_S * 2)
    return process.returncode, out, err


def replays_ok(world: World, execution_id: str) -> None:
    replayed = world.journal("replay", execution_id)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr


def test_an_approval_waits_its_process_exits_and_another_process_completes_it(
    world: World,
) -> None:
    code, out, err = finish(world.start_flow("approvals", "ord_42"))
    assert code == 0, err
    execution_id, state = out.split()
    shown = world.journal("show", execution_id, "--json")
    digest = json.loads(shown.stdout)["execution"]["waits"][0]["digest"]

    resumed = world.journal(
        "resume", execution_id, "--input", '"ok"',
        "--approver", "alice", "--digest", digest,
    )  # fmt: skip

    assert state == "Waiting(approval)"
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == f"{execution_id} Completed\n"
    assert world.effect_lines() == ["quote ord_42", "refund ord_42 40"]
    replays_ok(world, execution_id)


def test_a_killed_run_is_recovered_by_exactly_one_of_two_recoverers(
    world: World,
) -> None:
    run = world.start_flow("charges", "ord_7", JOURNAL_TEST_BLOCK=str(world.block))
    wait_for_file(world.block, run)
    execution_id = world.only_execution()
    alive = world.journal("recover", "--older-than", "1s")
    run.send_signal(signal.SIGKILL)
    run.communicate()
    deadline = time.monotonic() + LIMIT_S
    while world.journal("recover", "--dry-run", "--older-than", "3s").stdout == "":
        assert time.monotonic() < deadline, "the dead run's lease never went stale"
        time.sleep(0.1)

    recoverers = [world.start_journal("recover", "--older-than", "3s") for _ in "ab"]
    results = [finish(r) for r in recoverers]

    assert alive.returncode == 0, alive.stderr
    assert alive.stdout == ""  # a live run (fresh heartbeat) is never taken
    assert [code for code, _, _ in results] == [0, 0], results
    recovered = [out for _, out, _ in results if "recovered" in out]
    assert recovered == [f"{execution_id} recovered Completed\n"], results
    key = f"{execution_id}:1"
    assert world.effect_lines() == [
        "reserve ord_7",
        f"charge r-ord_7 key={key}",  # killed inside: the one rerun allowed
        f"charge r-ord_7 key={key}",
        "ship charged r-ord_7",
    ]
    replays_ok(world, execution_id)


def test_a_pause_from_another_process_keeps_the_running_steps_output(
    world: World,
) -> None:
    run = world.start_flow("charges", "ord_8", JOURNAL_TEST_BLOCK=str(world.block))
    wait_for_file(world.block, run)
    execution_id = world.only_execution()

    paused = world.journal("pause", execution_id, "--reason", "hold")
    world.block.unlink()
    code, out, err = finish(run)
    resumed = world.journal("resume", execution_id)

    assert paused.returncode == 0, paused.stderr
    assert code == 0, err
    assert out == f"{execution_id} Paused\n"
    assert resumed.stdout == f"{execution_id} Completed\n", resumed.stderr
    assert world.effect_lines() == [
        "reserve ord_8",
        f"charge r-ord_8 key={execution_id}:1",
        "ship charged r-ord_8",
    ]
    replays_ok(world, execution_id)


def test_a_fork_verifies_names_its_origin_and_leaves_the_original_unchanged(
    world: World,
) -> None:
    code, out, err = finish(world.start_flow("charges", "ord_9"))
    assert code == 0, err
    original_id = out.split()[0]
    before = world.export(original_id)

    forked = world.journal("--json", "fork", original_id, "--at-step", "1")

    assert forked.returncode == 0, forked.stderr
    fork_id = json.loads(forked.stdout)["execution_id"]
    verified = world.journal("verify", fork_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    header = json.loads(world.export(fork_id).splitlines()[0])
    assert header["origin"]["execution_id"] == original_id
    assert world.export(original_id) == before
    replays_ok(world, fork_id)
    replays_ok(world, original_id)


def test_a_resume_whose_prefix_diverges_exits_5_and_writes_nothing(
    world: World,
) -> None:
    code, out, err = finish(world.start_flow("approvals", "ord_10"))
    assert code == 0, err
    execution_id = out.split()[0]
    source = (REPO / "tests" / "continuation_flows.py").read_text()
    (world.folder / "changed_flows.py").write_text(
        source.replace("amount = quote(order)", "amount = quote(order + '!')")
    )
    before = world.export(execution_id)

    refused = world.journal(
        "--flows", "changed_flows", "resume", execution_id, "--deny",
        "--approver", "bob",
    )  # fmt: skip

    assert refused.returncode == 5, refused.stderr
    assert "the recorded prefix diverges" in refused.stderr
    assert world.export(execution_id) == before


def test_recover_follow_supervises_and_completes_a_run_killed_later(
    world: World,
) -> None:
    if "postgresql" in world.url:
        pytest.skip("one backend is enough for the supervisor loop")
    run = world.start_flow("charges", "ord_11", JOURNAL_TEST_BLOCK=str(world.block))
    wait_for_file(world.block, run)  # the store exists from here on
    follower = world.start_journal(
        "recover", "--follow", "--every", "0.1s", "--older-than", "1s"
    )
    try:
        run.send_signal(signal.SIGKILL)
        run.communicate()
        assert follower.stdout is not None
        ready, _, _ = select.select([follower.stdout], [], [], LIMIT_S)
        assert ready, "the supervisor never recovered it"
        line = follower.stdout.readline()  # flushed after each round
    finally:
        follower.send_signal(signal.SIGINT)
        code, _out, _err = finish(follower)
    assert code == 130
    assert line.endswith(" recovered Completed\n"), line
    replays_ok(world, world.only_execution())
