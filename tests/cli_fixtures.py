"""Fixtures of the CLI tests; test modules load them with ``pytest_plugins``.

Every test runs in its own `tmp_path` as the current directory, with the
``JOURNAL_*`` variables removed, so no user configuration leaks in.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import journal
from cli.main import cli
from journal import demo
from tests.cli_support import ENV_VARS, Invoke, journal_script, script_env


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's current directory, with no JOURNAL_* configuration."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def db_path(workdir: Path) -> Path:
    return workdir / "journal.db"


@pytest.fixture
def db(db_path: Path) -> str:
    """An absolute SQLite URL in this test's directory."""
    return f"sqlite:///{db_path}"


@pytest.fixture
def runner(workdir: Path) -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner: CliRunner) -> Invoke:
    """Run ``journal ARGS...`` in-process; stdout and stderr stay separate."""

    def invoke_(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke_


@pytest.fixture
def demo_ids(db: str) -> dict[str, str]:
    """The demo flows recorded into `db`: refund (with retry and child),
    declined, failed, and the child."""
    with journal.open(db) as journal_:
        runs = [demo.refund.run(journal_, *request) for request in demo.DEMO_REQUESTS]
        child = journal_.list(journal.ListFilter(flow="demo.notify"))[0]
    return {
        "refund": runs[0].id,
        "declined": runs[1].id,
        "failed": runs[2].id,
        "child": child.execution_id,
    }


@pytest.fixture
def run_script(
    workdir: Path,
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real ``journal`` console script in a subprocess."""

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [journal_script(), *args],
            cwd=workdir,
            env=script_env(**env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run
