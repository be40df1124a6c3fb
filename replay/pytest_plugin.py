"""A pytest plugin that replays golden journals against your flows.

```console
$ pytest --journal-replay fixtures/journals --journal-flows myapp.flows
```

Each ``*.jsonl`` export (a file, or every one under a folder) becomes a test
item named after its file, marked ``journal_replay``. Whether it passes,
fails or is skipped follows the one rule the CLI's exit code and its JUnit
XML use too (`replay.report.outcome_of`, docs/replay-ci.md): it fails with
the replay report (the step index, both sides, a diff) when any execution
in it fails; it is skipped when every execution in it was recorded without
a flow (nothing to re-run); otherwise it passes. A missing path or a folder
without journals is a usage error.

Given on the command line with no test paths (``pytest --journal-replay X``),
only the journals are collected, not the project's test suite; given through
``addopts`` or beside test paths, the journals join the collected tests.

Registered through the ``pytest11`` entry point. Without ``--journal-replay``
it does nothing, and it imports nothing beyond pytest until that option is
given.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from journal.flow import Flow
    from replay.report import BatchResult

MARKER = "journal_replay"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("journal-replay", "replay golden execution journals")
    group.addoption(
        "--journal-replay",
        action="append",
        default=[],
        metavar="PATH",
        help="a journal export (.jsonl) or a folder of them to replay as tests "
        "(repeatable)",
    )
    group.addoption(
        "--journal-flows",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module defining the Flow objects to replay against (repeatable)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("journal_replay"):
        config.addinivalue_line(
            "markers", f"{MARKER}: a golden journal replayed against today's flows"
        )
        if _journals_only(config):
            config.args = []  # collect nothing but the journals


def _journals_only(config: pytest.Config) -> bool:
    """``pytest --journal-replay X`` typed with no test paths: the user asked
    for the journals, not for the suite its ``testpaths`` would collect."""
    if config.args_source is pytest.Config.ArgsSource.ARGS:
        return False
    typed = config.invocation_params.args
    return any(str(arg).startswith("--journal-replay") for arg in typed)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Append one item per journal (before -k/-m deselection runs)."""
    paths: list[str] = config.getoption("journal_replay")
    if not paths:
        return
    flows = load_flows(config.getoption("journal_flows"))
    for journal_path in journal_files(paths, config.invocation_params.dir):
        name = _display_name(journal_path, config.rootpath)
        item = JournalItem.from_parent(
            session, name=name, nodeid=name, path=journal_path, flows=flows
        )
        item.add_marker(MARKER)
        items.append(item)


def journal_files(paths: list[str], base: Path) -> list[Path]:
    """The ``.jsonl`` files the options name (folders searched recursively)."""
    found: list[Path] = []
    for given in paths:
        path = (base / given).resolve()
        if path.is_dir():
            files = sorted(path.rglob("*.jsonl"))
            if not files:
                raise pytest.UsageError(f"--journal-replay {given}: no *.jsonl in it")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        else:
            raise pytest.UsageError(f"--journal-replay {given}: no such file or folder")
    return list(dict.fromkeys(found))


def load_flows(modules: list[str]) -> list[Flow]:
    """Every `Flow` defined at module level in the ``--journal-flows`` modules."""
    from journal.flow import Flow

    flows: list[Flow] = []
    for name in modules:
        module = _import(name)
        defined = [value for value in vars(module).values() if isinstance(value, Flow)]
        if not defined:
            raise pytest.UsageError(
                f"--journal-flows {name}: defines no Flow at module level"
            )
        flows.extend(defined)
    return flows


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        # As `python -m pytest` would: modules of the project being tested.
        cwd = str(Path.cwd())
        if e.name is None or not name.startswith(e.name) or cwd in sys.path:
            raise pytest.UsageError(f"--journal-flows {name}: {e}") from e
        sys.path.insert(0, cwd)
        return _import(name)
    except Exception as e:
        raise pytest.UsageError(
            f"--journal-flows {name}: import failed: {type(e).__name__}: {e}"
        ) from e


def _display_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


class JournalReplayFailed(Exception):
    """A journal did not replay ok; the message is the full report."""


class JournalItem(pytest.Item):
    """One golden journal file, replayed against the loaded flows."""

    def __init__(self, *, flows: list[Flow], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.flows = flows

    def runtest(self) -> None:
        from replay.replayer import replay_file
        from replay.report import Outcome

        batch = replay_file(self.path, self.flows)
        failing = _failing(batch)
        if failing:
            raise JournalReplayFailed("\n\n".join(failing))
        if batch.results and all(r.outcome is Outcome.SKIPPED for r in batch.results):
            pytest.skip(
                "nothing to re-run ("
                + "; ".join(r.message for r in batch.results)
                + ")"
            )

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str:
        if isinstance(excinfo.value, JournalReplayFailed):
            return str(excinfo.value)
        from journal.errors import JournalError

        if isinstance(excinfo.value, JournalError):
            return f"{type(excinfo.value).__name__}: {excinfo.value}"
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"journal replay: {self.name}"


def _failing(batch: BatchResult) -> list[str]:
    """Reports of the executions that failed (`BatchResult.failed`)."""
    from replay.report import Verdict

    reports = []
    for result in batch.failed:
        report = result.report()
        if result.verdict is Verdict.NOT_RERUN:
            report += "\n  (pass the module that defines it with --journal-flows)"
        reports.append(report)
    return reports
