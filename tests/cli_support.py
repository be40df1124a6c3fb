"""Helpers for the CLI tests (their fixtures are in `tests.cli_fixtures`).

Every test runs in its own `tmp_path` as the current directory, with the
``JOURNAL_*`` variables removed, so no user configuration leaks in.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from click.testing import Result

import journal

ENV_VARS = (
    "JOURNAL_DB",
    "JOURNAL_TENANT",
    "JOURNAL_FLOWS",
    "JOURNAL_SIGNING_KEY",
    "JOURNAL_SIGNING_KEYS",
    "JOURNAL_ALLOW_UNSIGNED",
)

CALC_V1 = """
import journal

calc = journal.Flow("t.calc")


@calc.step(step_type="FunctionNode", pure=True)
def double(x: int) -> int:
    return x * 2


@calc.entry
def main(x: int) -> int:
    return double(x) + 1
"""
#: Same schema as v1, different behaviour: replay diverges (exit 5).
CALC_DIVERGED = CALC_V1.replace("return x * 2", "return x * 3")
#: The step's output type changed (int -> str): the schema gate refuses (exit 4).
CALC_CHANGED = CALC_V1.replace(
    "def double(x: int) -> int:", "def double(x: int) -> str:"
)
CALC_CHANGED = CALC_CHANGED.replace("return x * 2", "return str(x * 2)")
CALC_CHANGED = CALC_CHANGED.replace("double(x) + 1", "int(double(x)) + 1")


Invoke = Callable[..., Result]


def write_module(directory: Path, source: str) -> str:
    """Write a flows module with a name no other test uses; return the name."""
    name = f"flows_{secrets.token_hex(6)}"
    (directory / f"{name}.py").write_text(source, encoding="utf-8")
    return name


def load_module(directory: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, directory / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record_calc(directory: Path, url: str, x: int = 5, tenant: str = "") -> str:
    """Record one run of the v1 calc flow; return its execution id."""
    module = load_module(directory, write_module(directory, CALC_V1))
    with journal.open(url, tenant=tenant or "tenant_default") as journal_:
        execution: Any = module.calc.run(journal_, x)
    return str(execution.id)


def dump(path: Path) -> list[str]:
    """Every table's rows, as SQL text (to compare a store before/after)."""
    connection = sqlite3.connect(path)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def drop_sqlite_guards(connection: sqlite3.Connection) -> None:
    """What an attacker with DDL rights does first: drop the append-only
    triggers, so that the chain checks are tested on their own."""
    triggers = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    ).fetchall()
    for (name,) in triggers:
        connection.execute(f"DROP TRIGGER {name}")


def edit_payload(path: Path, execution_id: str, seq: int) -> None:
    """Overwrite one stored event's bytes, directly in the database, with
    those of the next event (valid bytes, in the wrong place)."""
    connection = sqlite3.connect(path)
    drop_sqlite_guards(connection)
    key_sql = "SELECT exec_key FROM journal_executions WHERE execution_id = ?"
    with connection:
        (key,) = connection.execute(key_sql, (execution_id,)).fetchone()
        cursor = connection.execute(
            "UPDATE journal_events SET payload = (SELECT payload FROM journal_events "
            "WHERE exec_key = ? AND seq = ?) WHERE exec_key = ? AND seq = ?",
            (key, seq + 1, key, seq),
        )
        assert cursor.rowcount == 1
    connection.close()


def script_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(extra)
    return env


def journal_script() -> str:
    """The installed console script next to this interpreter."""
    path = Path(sys.executable).parent / "journal"
    assert path.exists(), f"console script missing: {path}"
    return str(path)
