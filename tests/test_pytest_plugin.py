"""The pytest plugin: golden journals as test items, inert unless asked."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
STRICT_INI = """
[pytest]
addopts = --strict-markers --strict-config
filterwarnings = error
"""


@pytest.fixture
def golden(pytester: pytest.Pytester) -> Path:
    """A folder of copies of the golden journals, in a project with strict ini."""
    pytester.makefile(".ini", pytest=STRICT_INI)
    folder = pytester.path / "golden"
    folder.mkdir()
    for path in FIXTURES.glob("*.jsonl"):
        shutil.copy(path, folder / path.name)
    return folder


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "-rfEs", *args)


def test_each_journal_is_an_item_named_after_its_file_and_passes_when_ok(
    pytester: pytest.Pytester, golden: Path
) -> None:
    result = run(
        pytester,
        "-v",
        "--journal-replay",
        "golden/clean_current.jsonl",
        "--journal-replay",
        "golden/child_execution.jsonl",
        "--journal-flows",
        "fixtures.flows",
    )

    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "golden/clean_current.jsonl PASSED*",
            "golden/child_execution.jsonl PASSED*",
        ],
        consecutive=False,
    )


def test_a_diverged_journal_fails_with_the_divergence_report(
    pytester: pytest.Pytester, golden: Path
) -> None:
    result = run(
        pytester,
        "--journal-replay",
        "golden/diverged.jsonl",
        "--journal-flows",
        "fixtures.flows",
    )

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*exec_*: diverged — step 2 (golden_orders.write_note): input differs",
            "*at step index 2*",
            '*-    "total_cents": 2498*',
            '*+    "total_cents": 1998*',
            "FAILED golden/diverged.jsonl*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_folder_gives_one_item_per_journal_with_each_verdict(
    pytester: pytest.Pytester, golden: Path
) -> None:
    result = run(
        pytester, "--journal-replay", "golden", "--journal-flows", "fixtures.flows"
    )

    result.assert_outcomes(passed=4, failed=3, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "FAILED golden/diverged.jsonl*",
            "FAILED golden/schema_mismatch.jsonl*",
            "FAILED golden/tampered.jsonl*",
            "SKIPPED * nothing to re-run (recorded without a flow; state Completed*",
        ],
        consecutive=False,
    )
    result.stdout.fnmatch_lines(
        ["*changed: golden_orders.subtotal output: float -> int*"]
    )
    result.stdout.fnmatch_lines(["*chain broken at seq 6*"])


def test_journal_items_can_be_selected_by_their_marker_and_by_name(
    pytester: pytest.Pytester, golden: Path
) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    args = ["--journal-replay", "golden", "--journal-flows", "fixtures.flows"]

    marked = run(pytester, *args, "-m", "journal_replay", "-k", "clean or retried")
    others = run(pytester, *args, "test_plain.py", "-m", "not journal_replay")

    marked.assert_outcomes(passed=2)
    others.assert_outcomes(passed=1)


def test_typed_with_no_test_paths_only_the_journals_are_collected(
    pytester: pytest.Pytester, golden: Path
) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    assert False\n")
    pytester.makefile(".ini", pytest=STRICT_INI + "testpaths = .\n")

    result = run(
        pytester,
        "--journal-replay",
        "golden/clean_current.jsonl",
        "--journal-flows",
        "fixtures.flows",
    )

    result.assert_outcomes(passed=1)


def test_through_addopts_the_journals_join_the_collected_suite(
    pytester: pytest.Pytester, golden: Path
) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    pytester.makefile(
        ".ini",
        pytest=STRICT_INI.replace(
            "addopts = --strict-markers --strict-config",
            "addopts = --strict-markers --strict-config "
            "--journal-replay=golden/clean_current.jsonl "
            "--journal-flows=fixtures.flows",
        ),
    )

    result = run(pytester)

    result.assert_outcomes(passed=2)


def test_the_fixtures_readme_pytest_command_works_as_written_at_the_root() -> None:
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    command = next(
        line.removeprefix("$ ")
        for line in readme.splitlines()
        if line.startswith("$ pytest --journal-replay")
    )
    program, *args = command.split()
    result = subprocess.run(
        [sys.executable, "-m", program, "-p", "no:cacheprovider", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("=")
    assert " 1 passed in " in result.stdout.splitlines()[-1]


def test_a_journal_whose_flow_is_not_loaded_fails_and_says_how_to_load_it(
    pytester: pytest.Pytester, golden: Path
) -> None:
    result = run(pytester, "--journal-replay", "golden/clean_current.jsonl")

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*not_rerun — flow 'golden_orders' is not loaded*",
            "*pass the module that defines it with --journal-flows*",
        ]
    )


@pytest.mark.slow  # a whole pytest process (about 4 s here)
def test_the_pytest_script_finds_a_flows_module_in_the_current_folder(
    pytester: pytest.Pytester, golden: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pytester.path / "myflows").mkdir()
    (pytester.path / "myflows" / "__init__.py").write_text(
        "from fixtures.flows import fulfilment, orders, shipping\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # for fixtures.flows only
    script = Path(sys.executable).parent / "pytest"

    result = pytester.run(
        script,
        "-p",
        "no:cacheprovider",
        "--journal-replay",
        "golden/retried_step.jsonl",
        "--journal-flows",
        "myflows",
        timeout=120,
    )

    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--journal-replay", "missing.jsonl"],
            "--journal-replay missing.jsonl: no such file or folder",
        ),
        (
            ["--journal-replay", "empty"],
            "--journal-replay empty: no *.jsonl in it",
        ),
        (
            ["--journal-replay", "golden", "--journal-flows", "no_such_module_x"],
            "--journal-flows no_such_module_x: No module named 'no_such_module_x'",
        ),
        (
            ["--journal-replay", "golden", "--journal-flows", "json"],
            "--journal-flows json: defines no Flow at module level",
        ),
    ],
)
def test_bad_options_are_usage_errors_naming_the_option(
    pytester: pytest.Pytester, golden: Path, args: list[str], message: str
) -> None:
    (pytester.path / "empty").mkdir()

    result = run(pytester, *args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_the_plugin_is_inert_without_journal_replay(
    pytester: pytest.Pytester, golden: Path
) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")

    result = run(pytester, "-v", "--journal-flows", "fixtures.flows")

    result.assert_outcomes(passed=1)
    assert ".jsonl" not in result.stdout.str()


def test_the_plugin_is_registered_and_documents_its_options(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest("--help")

    result.stdout.fnmatch_lines(
        ["*--journal-replay=PATH*", "*--journal-flows=MODULE*"], consecutive=False
    )


def test_importing_the_plugin_imports_nothing_of_the_journal() -> None:
    code = (
        "import sys, replay.pytest_plugin\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('journal', 'msgspec', 'eventsourcing', 'replay'))\n"
        "print(loaded)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert completed.stdout.strip() == "['replay', 'replay.pytest_plugin']"
