"""``journal follow`` through the real console script, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import journal
from tests.cli_support import journal_script, script_env
from tests.conftest import new_tenant
from tests.followers import TIMEOUT, Follower


@pytest.fixture
def follow() -> Iterator[list[Follower]]:
    started: list[Follower] = []
    yield started
    for follower in started:
        follower.kill()


def record(url: str, tenant: str, steps: int = 1) -> tuple[str, list[bytes]]:
    with journal.open(url, tenant=tenant) as j:
        handle = j.create(flow="follow.test")
        handle.start()
        for index in range(steps):
            step = handle.start_step("fetch", "Tool", input={"i": index})
            handle.complete_step(step, {"ok": index})
        execution_id = str(handle.id)
        payloads = [row.payload for row in j.store.load_rows(execution_id, tenant)]
    return execution_id, payloads


def test_follow_streams_a_tenants_events_verbatim_and_waits_for_new_ones(
    sql_backend: str, tmp_path: Path, follow: list[Follower]
) -> None:
    from tests.conftest import backend_url

    url = backend_url(sql_backend, tmp_path)
    tenant, other = new_tenant(), new_tenant()
    first, payloads = record(url, tenant)
    record(url, other)
    follower = Follower("follow", "--db", url, "--tenant", tenant)
    follow.append(follower)
    lines = follower.take(len(payloads))
    assert [(line["execution_id"], line["seq"]) for line in lines] == [
        (first, seq) for seq in range(1, len(payloads) + 1)
    ]
    assert {line["tenant"] for line in lines} == {tenant}
    assert [json.dumps(line["payload"], separators=(",", ":")) for line in lines] == [
        p.decode() for p in payloads
    ]
    positions = [line["position"] for line in lines]
    assert positions == sorted(positions)
    assert all(len(bytes.fromhex(line["link"])) == 32 for line in lines)
    # It keeps waiting: a later execution arrives without restarting it.
    second, later = record(url, tenant)
    arrived = follower.take(len(later))
    assert {line["execution_id"] for line in arrived} == {second}
    assert arrived[0]["position"] > positions[-1]
    assert follower.interrupt() == 130


def test_follow_from_a_position_resumes_after_it_and_all_tenants_sees_everyone(
    tmp_path: Path, follow: list[Follower]
) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    tenant, other = new_tenant(), new_tenant()
    _, mine = record(url, tenant)
    _, theirs = record(url, other)
    everyone = Follower("follow", "--db", url, "--all-tenants")
    follow.append(everyone)
    lines = everyone.take(len(mine) + len(theirs))
    assert {line["tenant"] for line in lines} == {tenant, other}
    assert [line["position"] for line in lines] == list(range(1, len(lines) + 1))
    resumed = Follower("follow", "--db", url, "--all-tenants", "--from", "3")
    follow.append(resumed)
    again = resumed.take(len(lines) - 3)
    assert [line["position"] for line in again] == list(range(4, len(lines) + 1))
    assert again == lines[3:]


def test_follow_with_a_negative_position_is_a_usage_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    record(url, new_tenant())
    done = subprocess.run(
        [journal_script(), "follow", "--db", url, "--from", "-1"],
        capture_output=True,
        text=True,
        env=script_env(),
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 2
    assert "--from" in done.stderr


def test_follow_no_wait_streams_what_committed_and_exits_0(
    sql_backend: str, tmp_path: Path
) -> None:
    from tests.conftest import backend_url

    url = backend_url(sql_backend, tmp_path)
    tenant = new_tenant()
    first, payloads = record(url, tenant)
    done = subprocess.run(
        [journal_script(), "follow", "--no-wait", "--db", url, "--tenant", tenant],
        capture_output=True,
        text=True,
        env=script_env(),
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(line["execution_id"], line["seq"]) for line in lines] == [
        (first, seq) for seq in range(1, len(payloads) + 1)
    ]
