"""Read-only evidence: every read command works on a write-protected file, a
write-protected directory and a read-only copy, with and without a WAL
file, and creates nothing beside the store.

Tests run as root, which ignores file modes: the CLI runs as ``nobody``
(``setpriv``), in a directory of its own that nobody may enter.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import journal

SETPRIV = shutil.which("setpriv")
JOURNAL = str(Path(sys.executable).with_name("journal"))
NOBODY = 65534
pytestmark = [
    pytest.mark.skipif(
        SETPRIV is None or os.geteuid() != 0, reason="needs root and setpriv"
    ),
    # One worker runs the whole module: its fixture changes and restores
    # directory modes that another worker's run of it would race with.
    pytest.mark.xdist_group("run_as_nobody"),
]


#: Runs several ``journal`` command lines in one process (one interpreter
#: start as nobody instead of one per command); prints each exit code.
RUN_MANY = """
import json, sys
from click.testing import CliRunner
from cli.main import cli
results = []
for args in json.loads(sys.argv[1]):
    result = CliRunner().invoke(cli, args)
    results.append([result.exit_code, result.output[-400:]])
print(json.dumps(results))
"""


def as_nobody(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert SETPRIV is not None
    command = [SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _traversable_for_others(paths: list[Path]) -> list[tuple[Path, int]]:
    """Give others search (x) permission on each path and its ancestors that
    lack it; returns what was changed, to restore afterwards."""
    changed: list[tuple[Path, int]] = []
    for path in paths:
        for directory in [path, *path.parents]:
            mode = directory.stat().st_mode & 0o7777
            if not mode & 0o001:
                directory.chmod(mode | 0o001)
                changed.append((directory, mode))
    return changed


@pytest.fixture(scope="module", autouse=True)
def installation_reachable_by_nobody() -> Iterator[None]:
    """Let nobody reach the virtual environment and the source tree: CI
    makes both under root-only temporary directories (``mktemp -d``)."""
    import cli

    source_root = Path(cli.__file__).resolve().parents[1]
    changed = _traversable_for_others([Path(sys.prefix), source_root])
    yield
    for directory, mode in reversed(changed):
        directory.chmod(mode)


@pytest.fixture
def evidence() -> Iterator[Path]:
    """A directory nobody can reach (pytest's own tmp dirs are root-only)."""
    root = Path(tempfile.mkdtemp(prefix="journal-evidence-"))
    root.chmod(0o755)
    yield root
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(root)


def make_store(directory: Path, *, with_wal: bool) -> int:
    """Record the demo into ``directory/journal.db``; with `with_wal`, one more
    execution is left committed only in the ``-wal`` file. Returns how many
    executions the store holds."""
    path = directory / "journal.db"
    url = f"sqlite:///{path}"
    with journal.open(url) as journal_:
        for n in range(2):
            handle = journal_.create(flow="evidence", input={"n": n})
            handle.start()
            handle.complete(n)
    if not with_wal:
        return 2
    holder = sqlite3.connect(path)  # keeps the WAL from being checkpointed away
    holder.execute("PRAGMA wal_autocheckpoint = 0")
    holder.execute("SELECT count(*) FROM journal_events").fetchone()
    with journal.open(url) as journal_:
        journal_.create(flow="evidence", input={"n": 9})
    staged = directory / "staged"
    staged.mkdir()
    for name in ("journal.db", "journal.db-wal"):
        shutil.copyfile(directory / name, staged / name)
    holder.close()
    for name in ("journal.db", "journal.db-wal"):
        (staged / name).replace(directory / name)
    staged.rmdir()
    (directory / "journal.db-shm").unlink(missing_ok=True)
    assert (directory / "journal.db-wal").stat().st_size > 0
    return 3


def protect(directory: Path, mode: str) -> None:
    """``file``: the store is read-only; ``directory``: the folder is;
    ``copy``: both (a read-only copy)."""
    os.chown(directory, NOBODY, NOBODY)
    for path in directory.iterdir():
        os.chown(path, NOBODY, NOBODY)
        path.chmod(0o444 if mode in ("file", "copy") else 0o644)
    directory.chmod(0o555 if mode in ("directory", "copy") else 0o755)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("with_wal", [False, True], ids=["no WAL", "WAL"])
@pytest.mark.parametrize("mode", ["file", "directory", "copy"])
def test_every_read_command_works_on_protected_evidence_and_creates_nothing(
    evidence: Path, mode: str, with_wal: bool
) -> None:
    store = evidence / "store"
    store.mkdir()
    count = make_store(store, with_wal=with_wal)
    protect(store, mode)
    before = snapshot(store)
    db = ["--db", str(store / "journal.db")]
    # The console script itself, as nobody:
    listed = as_nobody(JOURNAL, "list", "--json", *db, cwd=evidence)
    assert listed.returncode == 0, listed.stderr
    ids = [e["execution_id"] for e in json.loads(listed.stdout)["executions"]]
    assert len(ids) == count  # the WAL's execution is read, never ignored
    commands = [
        ["show", ids[0]],
        ["verify", "--all"],
        ["verify", ids[0]],
        ["replay", ids[0], "--fold-only"],
        ["export", ids[0]],
        ["diff", ids[0], ids[1]],
        ["list", "--verify"],
    ]
    ran = as_nobody(
        sys.executable, "-c", RUN_MANY, json.dumps([[*c, *db] for c in commands]),
        cwd=evidence,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    for command, (code, output) in zip(commands, json.loads(ran.stdout), strict=True):
        assert code == 0, (command, output)
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("mode", "with_wal"),
    [("file", False), ("directory", True), ("copy", True)],
    ids=["file, no WAL", "directory, WAL", "copy, WAL"],
)
def test_follow_on_protected_evidence_streams_what_is_numbered_and_ends(
    evidence: Path, mode: str, with_wal: bool
) -> None:
    store = evidence / "store"
    store.mkdir()
    path = store / "journal.db"
    with journal.open(f"sqlite:///{path}") as journal_:
        handle = journal_.create(flow="numbered")
        handle.start()
        handle.complete(1)
        assert journal_.store.sequence_log() == 3  # a round numbered these
    # These wait for the next round: two executions of three events, and one
    # of one event left in the WAL (not opened here: closing would fold it in).
    executions = make_store(store, with_wal=with_wal)
    total = 3 + 2 * 3 + (executions - 2)
    assert (store / "journal.db-wal").exists() == with_wal
    protect(store, mode)
    before = snapshot(store)
    followed = as_nobody(JOURNAL, "follow", "--db", str(path), cwd=evidence)
    assert followed.returncode == 0, followed.stderr
    lines = [json.loads(line) for line in followed.stdout.splitlines()]
    assert [line["position"] for line in lines] == [1, 2, 3]
    assert {line["execution_id"] for line in lines} == {str(handle.id)}
    assert followed.stderr == (
        f"journal: {total - 3} events are not numbered yet (the store is "
        "read-only): `journal follow --no-wait` with write access numbers them\n"
    )
    assert snapshot(store) == before
    # As the note says: with write access they are numbered, and streamed.
    numbered = subprocess.run(
        [JOURNAL, "follow", "--no-wait", "--db", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert numbered.returncode == 0, numbered.stderr
    assert numbered.stderr == ""
    positions = [json.loads(line)["position"] for line in numbered.stdout.splitlines()]
    assert positions == list(range(1, total + 1))
