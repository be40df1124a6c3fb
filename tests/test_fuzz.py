"""The fuzz suite: import files, event payloads and CLI arguments (Hypothesis).

Every input ends in a documented exit code (or, through the library, in a
`JournalError`), never in an unexpected exception type (no
``RecursionError``, ``OverflowError``, ``TypeError``… as a message), and an
input that is refused leaves the store byte-identical. An accepted import
leaves a tenant that still lists, verifies and shows.

Bounded by default (a few seconds). ``JOURNAL_SOAK=1`` runs the release
configuration, at least 100,000 inputs in all; each test prints its counts
(see docs/reliability.md, "Fuzzing").
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import journal
from cli.main import cli
from journal.errors import JournalError
from tests.forge import forged_lines, template

SOAK = os.environ.get("JOURNAL_SOAK") == "1"
#: Inputs per test: bounded by default; at least 100,000 in all with SOAK.
EXAMPLES = {
    "files": 40_000 if SOAK else 60,
    "payloads": 35_000 if SOAK else 60,
    "arguments": 30_000 if SOAK else 60,
}
DOCUMENTED = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 130}
#: How `cli.errors` renders an exception it did not expect.
UNEXPECTED = re.compile(
    r"^journal: error: [A-Za-z_.]*(Error|Exception|Warning)\b:", re.MULTILINE
)

COUNTS: dict[str, Counter[str]] = {}
FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture(scope="module", autouse=True)
def report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print each test's counts when the module ends (JOURNAL_SOAK=1: the
    figures docs/reliability.md quotes)."""
    yield
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for name, counts in COUNTS.items():
            items = sorted(counts.items())
            line = ", ".join(f"{key} {value:,}" for key, value in items)
            reporter.write_line(
                f"fuzz {name}: {sum(counts.values()):,} inputs ({line})"
            )


def _count(test: str, outcome: str) -> None:
    COUNTS.setdefault(test, Counter())[outcome] += 1


def _store_bytes(path: Path) -> tuple[bytes, ...]:
    return tuple(
        Path(f"{path}{suffix}").read_bytes()
        for suffix in ("", "-wal")
        if Path(f"{path}{suffix}").exists()
    )


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.stderr


def _check_ending(code: int, stderr: str) -> None:
    assert code in DOCUMENTED, (code, stderr)
    assert UNEXPECTED.search(stderr) is None, stderr
    if code != 0:
        assert "journal: error: " in stderr, stderr


# --- values -------------------------------------------------------------

_offsets = st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m)))
times = st.one_of(
    st.datetimes(timezones=st.none() | _offsets),
    st.sampled_from(
        [
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
            datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-14))),
            datetime(1, 1, 1),
        ]
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**62).map(lambda n: n * 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _nested(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value] if levels % 2 else {"k": value}
    return value


values = st.one_of(json_values, st.integers(90, 1200).map(_nested))
time_texts = st.one_of(
    times.map(datetime.isoformat),
    st.text(max_size=30),
    st.sampled_from(["0001-01-01T00:00:00+14:00", "2026-01-01T00:00:00", "Z"]),
)


# --- fuzzed import files -------------------------------------------------

TEMPLATE = template()


def _json(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=True)
    except RecursionError:
        return "[" * 2000 + "]" * 2000


@st.composite
def import_files(draw: st.DrawFn) -> bytes:
    """A file: a valid export edited in its values (the chain re-forged, so
    the value checks are what decides), or edited byte by byte."""
    header = dict(TEMPLATE["header"])
    payloads = [json.loads(p) for p in TEMPLATE["payloads"]]
    kind = draw(st.sampled_from(["value", "time", "header", "bytes", "drop"]))
    if kind == "value":
        index = draw(st.integers(0, len(payloads) - 1))
        field = draw(st.sampled_from(["output", "input", "extra", "type"]))
        payloads[index][field] = "\0VALUE\0"
        text = [json.dumps(p) for p in payloads]
        text[index] = text[index].replace('"\\u0000VALUE\\u0000"', _json(draw(values)))
        return b"\n".join(forged_lines(header, [t.encode() for t in text])) + b"\n"
    if kind == "time":
        index = draw(st.integers(0, len(payloads) - 1))
        payloads[index]["at"] = draw(time_texts)
    elif kind == "header":
        field = draw(st.sampled_from(sorted(header)))
        header[field] = draw(values)
    elif kind == "drop":
        del payloads[draw(st.integers(0, len(payloads) - 1))]
    encoded = [json.dumps(p).encode() for p in payloads]
    try:
        data = b"\n".join(forged_lines(header, encoded)) + b"\n"
    except (KeyError, TypeError, AttributeError, ValueError):
        data = json.dumps(header).encode() + b"\n"  # a header it cannot forge
    if kind == "bytes":
        edits = draw(st.lists(st.tuples(st.integers(0), st.binary(max_size=3))))
        for position, new in edits[:8]:
            at = position % (len(data) + 1)
            data = data[:at] + new + data[at + 1 :]
    return data


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A SQLite store holding one completed execution."""
    path = tmp_path / "store.db"
    with journal.open(f"sqlite:///{path}") as journal_:
        handle = journal_.create()
        handle.start()
        handle.complete({"kept": True})
    return path


@settings(FUZZ, max_examples=EXAMPLES["files"])
@given(data=import_files())
def test_fuzzed_import_files_end_in_a_documented_code(
    store: Path, tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "fuzzed.jsonl"
    path.write_bytes(data)
    before = _store_bytes(store)

    code, stderr = _run(["import", str(path), "--db", f"sqlite:///{store}"])

    _check_ending(code, stderr)
    _count("import files", f"exit {code}")
    if code != 0:
        assert _store_bytes(store) == before, stderr
        return
    for args in (["list"], ["verify", "--all"]):  # the tenant is not poisoned
        after, said = _run([*args, "--db", f"sqlite:///{store}"])
        assert after == 0, said


# --- fuzzed event payloads -----------------------------------------------


def _dump(path: Path) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


@settings(FUZZ, max_examples=EXAMPLES["payloads"])
@given(
    value=values,
    raw=st.one_of(st.none(), st.binary(max_size=12)),
    at=times,
    where=st.sampled_from(["output", "input", "value", "time"]),
)
def test_fuzzed_payloads_are_stored_readably_or_refused_unchanged(
    store: Path, value: Any, raw: bytes | None, at: datetime, where: str
) -> None:
    from journal import events as ev

    url = f"sqlite:///{store}"
    with journal.open(url) as journal_:
        handle = journal_.create()
        handle.start()
        before = _dump(store)
        given_value = msgspec.Raw(raw) if raw is not None else value
        try:
            if where == "output":
                handle.complete(given_value)
            elif where == "input":
                handle.start_step("s", input=given_value)
            elif where == "value":
                handle.record_value("now", given_value)
            else:
                handle.record(ev.ExecutionPaused(at=at))
        except JournalError as e:
            _count("event payloads", f"refused {type(e).__name__}")
            assert _dump(store) == before
            return
        _count("event payloads", "stored")
        journal_.verify(handle.id)
        journal_.get(handle.id)
    code, stderr = _run(["show", handle.id, "--db", url, "--events"])
    assert code == 0, stderr
    code, stderr = _run(["list", "--db", url, "--json"])
    assert code == 0, stderr


# --- fuzzed CLI arguments ------------------------------------------------

WORDS = [
    "list", "show", "verify", "replay", "export", "diff", "schema", "import",
    "pause", "cancel", "--all", "--json", "--debug", "--limit", "--state",
    "--since", "--until", "--flow", "--tenant", "--db", "--file", "--fold-only",
    "--junit", "--expect-head", "--at", "--events", "--reason", "-o", "--flows",
    "journal.demo", "0", "-1", "99999999999999999999999", "Completed", "7d",
    "exec_", "tenant_x", "1:00", "Waiting(approval)", "nul\x00l", "",
]  # fmt: skip


COMMANDS = [w for w in WORDS[:10]]


@st.composite
def arguments(draw: st.DrawFn, execution_id: str) -> list[str]:
    """A command (usually), then words of the CLI's vocabulary and noise."""
    words = st.sampled_from([*WORDS, execution_id] * 3) | st.text(max_size=12)
    first = draw(st.sampled_from(COMMANDS) | words)
    return [first, *draw(st.lists(words, max_size=6))]


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("cli") / "journal.db"
    from journal import demo

    with journal.open(f"sqlite:///{path}") as journal_:
        first = demo.refund.run(journal_, *demo.DEMO_REQUESTS[0])
    return path, str(first.id)


@settings(FUZZ, max_examples=EXAMPLES["arguments"])
@given(data=st.data())
def test_fuzzed_cli_arguments_end_in_a_documented_code(
    populated: tuple[Path, str], tmp_path: Path, data: st.DataObject
) -> None:
    path, execution_id = populated
    args = data.draw(arguments(execution_id))
    if any("\x00" in word for word in args):
        args = [word.replace("\x00", "") for word in args]
    before = _store_bytes(path)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # outputs (-o, --junit) land here
    try:
        code, stderr = _run([*args, "--db", f"sqlite:///{path}"])
    finally:
        os.chdir(cwd)
    _check_ending(code, stderr)
    _count("CLI arguments", f"exit {code}")
    if code != 0:
        assert _store_bytes(path) == before, (args, stderr)
