"""The tamper matrix: raw SQL on the index row and the chain, on SQLite and
PostgreSQL, with and without a signing key. Every case makes `verify`,
`show`, `replay`, `diff` and `list --verify` exit 6 naming what is wrong.

The attacker drops the append-only triggers first (DDL rights), so the
chain and index checks are tested on their own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import journal
from journal.chain import chain_rows, genesis_link
from journal.keys import Keyring, SigningKey, generate_key
from journal.urls import open_store
from tests.cli_support import Invoke
from tests.conftest import isolated_url, new_tenant
from tests.tampering import RawDatabase, link

pytest_plugins = ["tests.cli_fixtures"]

EVENTS = 7  # created, started, 2 x (step started, step completed), completed


@dataclass
class Scene:
    """A recorded execution in its store, and a raw connection to it."""

    url: str
    tenant: str
    execution_id: str
    key: int
    raw: RawDatabase
    env: dict[str, str]


def record(url: str, tenant: str, keyring: Keyring) -> str:
    with journal.Journal(open_store(url, keyring=keyring), tenant) as journal_:
        handle = journal_.create(flow="matrix", input={"amount": 5})
        handle.start()
        for n in range(2):
            handle.complete_step(handle.start_step(f"step{n}", input=n), {"n": n})
        handle.complete({"total": 2})
        assert handle.state.version == EVENTS
        return str(handle.id)


def move_tenant(scene: Scene) -> str:
    destination = new_tenant()
    scene.raw.run(
        "UPDATE journal_executions SET tenant_id = ? WHERE exec_key = ?",
        destination,
        scene.key,
    )
    return destination


def set_column(column: str, value: object) -> Callable[[Scene], None]:
    def tamper(scene: Scene) -> None:
        scene.raw.run(
            f"UPDATE journal_executions SET {column} = ? WHERE exec_key = ?",
            value,
            scene.key,
        )

    return tamper


def head_backwards(scene: Scene) -> None:
    rows = scene.raw.rows(scene.key)
    scene.raw.run(
        "UPDATE journal_executions SET head_seq = ?, head_hash = ? WHERE exec_key = ?",
        EVENTS - 1,
        rows[-2][2],
        scene.key,
    )


def head_forwards(scene: Scene) -> None:
    scene.raw.run(
        "UPDATE journal_executions SET head_seq = ?, head_hash = ? WHERE exec_key = ?",
        EVENTS + 1,
        secrets.token_bytes(32),
        scene.key,
    )


def append_beyond_the_index(scene: Scene) -> None:
    last = scene.raw.rows(scene.key)[-1]
    payload = b'{"at":"2024-01-01T00:00:00Z","reason":"x","type":"ExecutionCancelled"}'
    scene.raw.insert(scene.key, EVENTS + 1, payload, link(last[2], EVENTS + 1, payload))


def recompute_without_the_key(scene: Scene) -> None:
    """Edit a step's output, relink the whole keyless chain, move the head."""
    rows = scene.raw.rows(scene.key)
    payloads = [payload for _seq, payload, _link in rows]
    payloads[3] = payloads[3].replace(b'"n":0', b'"n":7')
    [(genesis,)] = scene.raw.run(
        "SELECT genesis FROM journal_executions WHERE exec_key = ?", scene.key
    )
    relinked = chain_rows(genesis_link(bytes(genesis)), 1, payloads)
    for row in relinked:
        scene.raw.set_row(scene.key, row.seq, row.payload, row.hash)
    scene.raw.run(
        "UPDATE journal_executions SET head_hash = ? WHERE exec_key = ?",
        relinked[-1].hash,
        scene.key,
    )


#: case -> (tamper, what the message names). `move_tenant` returns the
#: tenant to look in.
CASES: dict[str, tuple[Callable[[Scene], object], str]] = {
    "tenant moved": (move_tenant, "tenant_id"),
    "state changed": (set_column("state", "Cancelled"), "index column state"),
    "flow changed": (set_column("flow", "other_flow"), "index column flow"),
    "step count changed": (set_column("step_count", 9), "index column step_count"),
    "failed steps changed": (
        set_column("failed_steps", 1),
        "index column failed_steps",
    ),
    "output changed": (set_column("output", b'{"total":99}'), "index column output"),
    "error changed": (
        set_column("error", b'{"category":"x","message":"y"}'),
        "index column error",
    ),
    "head moved backwards": (head_backwards, "head_seq is 6 but the chain ends"),
    "head moved forwards": (head_forwards, "head_seq is 8 but the chain ends"),
    "event appended beyond the index": (
        append_beyond_the_index,
        "head_seq is 7 but the chain ends at seq 8",
    ),
}
COMMANDS = (
    ("verify", "{id}"),
    ("show", "{id}"),
    ("replay", "{id}"),
    ("diff", "{id}", "{id}"),
    ("list", "--verify"),
)


def scene_for(url: str, key: str | None) -> Scene:
    keyring = Keyring(SigningKey.parse(key)) if key else Keyring()
    tenant = new_tenant()
    execution_id = record(url, tenant, keyring)
    raw = RawDatabase(url)
    raw.drop_guards()
    env = {"JOURNAL_SIGNING_KEY": key} if key else {}
    return Scene(url, tenant, execution_id, raw.key(execution_id), raw, env)


def check_every_command(invoke: Invoke, scene: Scene, tenant: str, names: str) -> None:
    for command in COMMANDS:
        args = [part.format(id=scene.execution_id) for part in command]
        result = invoke(*args, "--db", scene.url, "--tenant", tenant, env=scene.env)
        assert result.exit_code == 6, (command, result.output)
        assert names in result.output, (command, result.output)


@pytest.mark.parametrize("signed", [False, True], ids=["no key", "key"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_reader_exits_6_naming_the_tampered_column_or_head(
    invoke: Invoke, sql_backend: str, tmp_path: Path, case: str, signed: bool
) -> None:
    url = isolated_url(sql_backend, tmp_path)
    scene = scene_for(url, generate_key() if signed else None)
    try:
        # Untouched, every reader is happy.
        result = invoke("verify", scene.execution_id, "--db", url, "--tenant",
                        scene.tenant, env=scene.env)  # fmt: skip
        assert result.exit_code == 0, result.output
        tamper, names = CASES[case]
        moved = tamper(scene)
        tenant = moved if isinstance(moved, str) else scene.tenant
        check_every_command(invoke, scene, tenant, names)
    finally:
        scene.raw.close()


def test_a_chain_recomputed_without_the_key_exits_6_from_every_reader(
    invoke: Invoke, sql_backend: str, tmp_path: Path
) -> None:
    url = isolated_url(sql_backend, tmp_path)
    scene = scene_for(url, generate_key())
    try:
        recompute_without_the_key(scene)
        check_every_command(invoke, scene, scene.tenant, "head MAC")
        # Without the key the forgery is a valid keyless chain, but its MAC
        # cannot be checked: reported as a missing key (10), not as intact.
        result = invoke("verify", scene.execution_id, "--db", url, "--tenant",
                        scene.tenant)  # fmt: skip
        assert result.exit_code == 10, result.output
        assert "not in the keyring" in result.output
    finally:
        scene.raw.close()


@pytest.mark.parametrize(
    ("case", "signed", "caught"),
    [
        ("head moved backwards", False, True),
        ("event appended beyond the index", False, True),
        ("state changed", True, True),  # the MAC no longer matches
        ("state changed", False, False),  # only list --verify folds
    ],
)
def test_list_shows_a_cheap_chain_status_per_row(
    invoke: Invoke,
    sql_backend: str,
    tmp_path: Path,
    case: str,
    signed: bool,
    caught: bool,
) -> None:
    scene = scene_for(
        isolated_url(sql_backend, tmp_path), generate_key() if signed else None
    )
    try:
        args = ("list", "--json", "--db", scene.url, "--tenant", scene.tenant)
        clean = invoke(*args, env=scene.env)
        assert clean.exit_code == 0, clean.output
        assert '"status": "ok"' in clean.stdout
        CASES[case][0](scene)
        listed = invoke(*args, env=scene.env)
        assert listed.exit_code == (6 if caught else 0), listed.output
        status = "broken" if caught else "ok"
        assert f'"status": "{status}"' in listed.stdout
        assert invoke(*args, "--verify", env=scene.env).exit_code == 6
    finally:
        scene.raw.close()
