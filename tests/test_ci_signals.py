"""CI signals agree: the CLI's exit code, its JUnit XML and the pytest plugin
judge every golden journal by one rule (`replay.report.outcome_of`)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest

from replay.report import Outcome, Verdict, outcome_of
from tests.cli_support import Invoke

pytest_plugins = ["pytester", "tests.cli_fixtures"]

REPO = Path(__file__).resolve().parent.parent
GOLDEN = sorted((REPO / "fixtures").glob("*.jsonl"))
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.parametrize(
    ("verdict", "fold_only", "flow", "expected"),
    [
        (Verdict.OK, False, "f", Outcome.PASSED),
        (Verdict.NOT_RERUN, True, "f", Outcome.PASSED),
        (Verdict.NOT_RERUN, True, None, Outcome.PASSED),
        (Verdict.NOT_RERUN, False, None, Outcome.SKIPPED),
        (Verdict.NOT_RERUN, False, "f", Outcome.FAILED),
        (Verdict.DIVERGED, False, "f", Outcome.FAILED),
        (Verdict.SCHEMA_MISMATCH, True, "f", Outcome.FAILED),
        (Verdict.INTEGRITY, True, None, Outcome.FAILED),
    ],
)
def test_the_rule_passes_fails_or_skips_each_verdict(
    verdict: Verdict, fold_only: bool, flow: str | None, expected: Outcome
) -> None:
    assert outcome_of(verdict, fold_only=fold_only, flow=flow) is expected


def _junit(path: Path) -> tuple[int, int]:
    suite = ElementTree.parse(path).getroot()
    return int(suite.get("failures", "-1")), int(suite.get("skipped", "0"))


@pytest.mark.parametrize("journal", GOLDEN, ids=[p.stem for p in GOLDEN])
@pytest.mark.parametrize("mode", ["flows", "no flows", "fold only"])
def test_exit_code_and_junit_agree_for_every_golden_journal(
    invoke: Invoke, workdir: Path, journal: Path, mode: str
) -> None:
    args = ["replay", "--file", str(journal), "--junit", "j.xml"]
    if mode != "no flows":
        args += ["--flows", "fixtures.flows"]
    if mode == "fold only":
        args.append("--fold-only")

    result = invoke(*args)

    failures, _skipped = _junit(workdir / "j.xml")
    assert (result.exit_code == 0) == (failures == 0), result.stdout


@pytest.mark.parametrize("journal", GOLDEN, ids=[p.stem for p in GOLDEN])
@pytest.mark.parametrize("flows", [True, False])
def test_the_plugin_agrees_with_the_exit_code_and_junit(
    invoke: Invoke, pytester: pytest.Pytester, journal: Path, flows: bool
) -> None:
    shutil.copy(journal, pytester.path / journal.name)
    flow_args = ["--flows", "fixtures.flows"] if flows else []
    junit = pytester.path / "j.xml"
    cli = invoke("replay", "--file", str(journal), "--junit", str(junit), *flow_args)
    failures, skipped = _junit(junit)
    plugin_args = ["--journal-flows", "fixtures.flows"] if flows else []

    plugin = pytester.runpytest(
        "-p", "no:cacheprovider", "--journal-replay", journal.name, *plugin_args
    )

    outcomes = plugin.parseoutcomes()
    plugin_failed = outcomes.get("failed", 0) == 1
    assert plugin_failed == (cli.exit_code != 0) == (failures > 0), cli.stdout
    assert (outcomes.get("skipped", 0) == 1) == (skipped > 0)


def test_fold_only_with_junit_exits_0_and_writes_no_failure(
    run_script: Run, workdir: Path
) -> None:
    """The case that once exited 0 while the XML said failures="1"."""
    journal = REPO / "fixtures" / "clean_current.jsonl"
    result = run_script(
        "replay", "--file", str(journal), "--fold-only", "--junit", "j.xml"
    )
    assert result.returncode == 0, result.stderr
    assert _junit(workdir / "j.xml") == (0, 0)


def test_a_journal_recorded_without_a_flow_is_skipped_everywhere(
    invoke: Invoke, workdir: Path
) -> None:
    journal = REPO / "fixtures" / "waited_for_input.jsonl"
    result = invoke("replay", "--file", str(journal), "--junit", "j.xml", "--json")
    assert result.exit_code == 0
    assert '"outcome": "skipped"' in result.stdout
    assert _junit(workdir / "j.xml") == (0, 1)


def test_an_empty_folder_is_a_usage_error_for_the_cli_as_for_the_plugin(
    run_script: Run, workdir: Path, pytester: pytest.Pytester
) -> None:
    (workdir / "empty").mkdir()
    result = run_script("replay", "--file", "empty")
    assert result.returncode == 2
    assert "no *.jsonl file in this folder" in result.stderr
    (pytester.path / "empty").mkdir()
    plugin = pytester.runpytest("-p", "no:cacheprovider", "--journal-replay", "empty")
    assert plugin.ret == pytest.ExitCode.USAGE_ERROR


def test_replay_file_refuses_an_empty_folder_rather_than_pass(tmp_path: Path) -> None:
    import replay
    from journal.errors import ImportFormatError

    with pytest.raises(ImportFormatError, match=r"no \*\.jsonl file in this folder"):
        replay.replay_file(tmp_path)
