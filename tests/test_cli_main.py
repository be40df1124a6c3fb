"""Global options, their precedence, and how errors become exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.options import GlobalFlags, resolve
from tests.cli_support import Invoke

pytest_plugins = ["tests.cli_fixtures"]


def test_version_prints_the_package_version(invoke: Invoke) -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("journal 0.")


@pytest.mark.parametrize(
    "args",
    [
        ("--db", "{db}", "--json", "list"),
        ("list", "--db", "{db}", "--json"),
        ("--json", "list", "--db", "{db}"),
    ],
)
def test_global_options_are_accepted_before_or_after_the_command(
    invoke: Invoke, db: str, demo_ids: dict[str, str], args: tuple[str, ...]
) -> None:
    result = invoke(*(arg.format(db=db) for arg in args))
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)["executions"]) == 4


def test_settings_precedence_is_flag_then_environment_then_pyproject_then_default(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "pyproject.toml").write_text(
        '[tool.journal]\ndb = "sqlite:///py.db"\nflows = ["a", "b"]\n'
        'tenant = "tenant_py"\n'
    )
    assert resolve(GlobalFlags()).db == "sqlite:///py.db"
    assert resolve(GlobalFlags()).flow_modules == ("a", "b")
    monkeypatch.setenv("JOURNAL_DB", "sqlite:///env.db")
    monkeypatch.setenv("JOURNAL_FLOWS", "c, d")
    assert resolve(GlobalFlags()).db == "sqlite:///env.db"
    assert resolve(GlobalFlags()).flow_modules == ("c", "d")
    flags = GlobalFlags(db="sqlite:///flag.db", flows=["e"])
    assert resolve(flags).db == "sqlite:///flag.db"
    assert resolve(flags).flow_modules == ("e",)
    assert resolve(flags).tenant == "tenant_py"
    (workdir / "pyproject.toml").unlink()
    assert resolve(GlobalFlags()).tenant == "tenant_default"


def test_environment_selects_store_and_tenant(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("list", "--json", env={"JOURNAL_DB": db})
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)["executions"]) == 4
    other = invoke(
        "list", "--json", env={"JOURNAL_DB": db, "JOURNAL_TENANT": "tenant_x"}
    )
    assert other.exit_code == 0
    assert json.loads(other.stdout)["executions"] == []


def test_flows_are_read_from_the_pyproject_of_the_current_directory(
    invoke: Invoke, workdir: Path
) -> None:
    (workdir / "pyproject.toml").write_text(
        '[tool.journal]\nflows = ["journal.demo"]\n'
    )
    result = invoke("schema", "--json")
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)["flows"]) == 2


def test_a_flows_module_that_fails_to_import_is_one_line_and_exit_1(
    invoke: Invoke, workdir: Path
) -> None:
    (workdir / "broken_flows.py").write_text("import nonexistent_package_xyz\n")
    result = invoke("schema", "--flows", "broken_flows")
    assert result.exit_code == 1
    assert result.stderr == (
        "journal: error: cannot import flows module 'broken_flows': "
        "ModuleNotFoundError: No module named 'nonexistent_package_xyz'\n"
    )


def test_a_bad_option_is_a_usage_error_exit_2(invoke: Invoke) -> None:
    result = invoke("list", "--bogus")
    assert result.exit_code == 2
    assert result.stderr == (
        "journal: error: No such option '--bogus'. (try 'journal list --help')\n"
    )
    assert result.stdout == ""


def test_an_unknown_command_is_a_usage_error_exit_2(invoke: Invoke) -> None:
    result = invoke("frobnicate")
    assert result.exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("show", "exec_" + "0" * 27),
        ("verify", "--all"),
        ("export", "exec_" + "0" * 27),
        ("replay", "exec_" + "0" * 27),
        ("diff", "exec_" + "0" * 27, "exec_" + "1" * 27),
    ],
)
def test_read_only_commands_on_a_missing_store_exit_1_and_create_nothing(
    invoke: Invoke, workdir: Path, args: tuple[str, ...]
) -> None:
    result = invoke(*args)
    assert result.exit_code == 1
    assert result.stderr == (
        "journal: error: no journal at journal.db (nothing was created)\n"
    )
    assert list(workdir.iterdir()) == []


def test_errors_with_json_are_also_an_object_on_stdout(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("--json", "show", "exec_nope", "--db", db)
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {
        "error": {
            "exit_code": 2,
            "type": "BadParameter",
            "message": "Invalid value for 'EXECUTION_ID': invalid execution id "
            "'exec_nope': the body must be 27 base62 characters "
            "(try 'journal show --help')",
        }
    }
    assert result.stderr.startswith(
        "journal: error: Invalid value for 'EXECUTION_ID': invalid execution id"
    )


def test_an_unexpected_error_is_one_line_and_a_traceback_only_with_debug(
    invoke: Invoke, workdir: Path
) -> None:
    source = 'import journal\nhalf = journal.Flow("half")\n'
    (workdir / "half_flows.py").write_text(source)
    result = invoke("schema", "--flows", "half_flows")
    assert result.exit_code == 1
    assert (
        result.stderr == "journal: error: TypeError: flow 'half' has no @flow.entry\n"
    )
    debug = invoke("schema", "--flows", "half_flows", "--debug")
    assert debug.exit_code == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.endswith(
        "journal: error: TypeError: flow 'half' has no @flow.entry\n"
    )


def test_without_a_terminal_there_is_no_colour_or_box_drawing(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("list", "--db", db)
    assert result.exit_code == 0
    assert "\x1b[" not in result.stdout
    assert "━" not in result.stdout
    assert "─" not in result.stdout


def test_demo_records_lists_replays_and_prints_next_commands(
    invoke: Invoke, workdir: Path
) -> None:
    result = invoke("demo", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["db"] == "sqlite:///journal.db"
    assert data["replay"]["verdict"] == "ok"
    assert [s["flow"] for s in data["recorded"]].count("demo.notify") == 1
    first = data["recorded"][0]["execution_id"]
    assert f"journal replay {first} --flows journal.demo" in data["next"]
    assert (workdir / "journal.db").exists()


def test_demo_next_commands_repeat_a_db_flag(invoke: Invoke, workdir: Path) -> None:
    result = invoke("demo", "--db", "other.db")
    assert result.exit_code == 0
    assert "Next, try:" in result.stdout
    assert "  journal --db other.db list" in result.stdout
    assert (workdir / "other.db").exists()


def test_a_narrow_terminal_never_cuts_an_id_a_state_or_a_head(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli.output import Output

    monkeypatch.setenv("COLUMNS", "80")
    out = Output(json_mode=False)
    out.terminal = True
    execution_id = "exec_3MrtBynJ4gTGvX4MrU2io6Eqfyr"
    head = "17:" + "2e00df458660e4e8252db36b0db0b2d3bd3436ad45f295fef462f5f0542bac80"

    out.table(("id", "state", "head"), [(execution_id, "Waiting(approval)", head)])

    lines = [line.rstrip() for line in capsys.readouterr().out.splitlines()]
    body = [line for line in lines if line.strip() and "─" not in line][1:]
    assert execution_id in body[0]
    assert "Waiting(approval)" in body[0]
    assert "".join(line.split()[-1] for line in body) == head
    assert "…" not in "\n".join(lines)
    assert max(len(line) for line in lines) <= 80


def test_demo_lists_each_run_with_its_chain_status(
    invoke: Invoke, workdir: Path
) -> None:
    result = invoke("demo")
    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()]
    listed = [r for r in rows if r and r[0].startswith("exec_") and r[0][-1] != ":"]
    assert len(listed) == 4
    assert {row[-1] for row in listed} == {"ok"}
