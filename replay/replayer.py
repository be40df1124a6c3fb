"""The replayer: verify -> fold -> schema gate -> re-run -> verdict.

1. The hash chain is verified; if it is broken the verdict is `integrity`
   and no flow code runs.
2. The events are folded (read-only replay needs nothing more); with no flow
   loaded for the execution the verdict is `not_rerun`.
3. The recorded ``schema_version`` is checked against the loaded flow's
   before any flow code runs: `schema_mismatch`, naming what changed.
4. The entry is re-run against the record (`journal.driving.replay_record`).
5. Output or error and the terminal state are compared: `ok` or `diverged`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from journal import events as ev
from journal.application import Journal
from journal.chain import format_head
from journal.driving import replay_record
from journal.errors import (
    ChainIntegrityError,
    ImportFormatError,
    InvalidTransitionError,
    JournalError,
    NondeterminismError,
    ReplayError,
    SchemaMismatchError,
)
from journal.flow import Flow, ValueUpcaster
from journal.fold import fold
from journal.ids import ExecutionId
from journal.keys import Keyring
from journal.model import Execution
from journal.runtime import Run
from journal.store import ListFilter
from replay.report import (
    BatchResult,
    ReplayResult,
    Verdict,
    plural,
)
from replay.schema import SchemaLookup, gate


def replay(
    journal_: Journal,
    execution_id: str,
    flows: Iterable[Flow] = (),
    *,
    raise_on_failure: bool = False,
    fold_only: bool = False,
) -> ReplayResult:
    """Replay one execution of this tenant against today's flow code.

    Returns a `ReplayResult`; with ``raise_on_failure=True`` raises
    `ChainIntegrityError`, `SchemaMismatchError` or `NondeterminismError`
    instead of returning a failing verdict. An execution that does not exist
    in this tenant raises `ExecutionNotFoundError` either way.
    """
    started = time.perf_counter()
    flows = list(flows)
    summary = journal_.summary(execution_id)
    try:
        history = journal_.history_of(summary)
    except ChainIntegrityError as e:
        flow = _find_flow(summary.flow, flows)
        result = ReplayResult(
            verdict=Verdict.INTEGRITY,
            execution_id=summary.execution_id,
            message=str(e),
            flow=summary.flow,
            recorded_schema=summary.schema_version,
            current_schema=None if flow is None else flow.schema_version,
            events_checked=max(0, (e.seq or 1) - 1),  # verified before the break
            duration_ms=_ms(started),
        )
        return _finish(result, raise_on_failure, e)
    result = replay_events(
        summary.execution_id,
        history.events,
        flows,
        schema_lookup=journal_.get_schema,
        head=format_head(*history.head),
        fold_only=fold_only,
        started=started,
    )
    return _finish(result, raise_on_failure)


async def replay_async(
    journal_: Journal,
    execution_id: str,
    flows: Iterable[Flow] = (),
    *,
    raise_on_failure: bool = False,
    fold_only: bool = False,
) -> ReplayResult:
    """`replay` for callers inside a running event loop.

    The replay runs on a worker thread with an event loop of its own (an
    async flow's entry needs one), so the caller's loop keeps serving.
    """
    return await asyncio.to_thread(
        replay,
        journal_,
        execution_id,
        list(flows),
        raise_on_failure=raise_on_failure,
        fold_only=fold_only,
    )


def replay_events(
    execution_id: str,
    events: Sequence[ev.Event],
    flows: Iterable[Flow] = (),
    *,
    schema_lookup: SchemaLookup = lambda _hash: None,
    head: str | None = None,
    fold_only: bool = False,
    started: float | None = None,
    source: str | None = None,
) -> ReplayResult:
    """Steps 2-5 on events whose chain was already verified."""
    started = time.perf_counter() if started is None else started
    base: dict[str, Any] = {
        "execution_id": execution_id,
        "events_checked": len(events),
        "head": head,
        "source": source,
        "fold_only": fold_only,
    }
    try:
        recorded = fold(ExecutionId(execution_id), events)
    except InvalidTransitionError as e:
        return ReplayResult(
            verdict=Verdict.INTEGRITY,
            message=f"the history breaks the state machine: {e}",
            duration_ms=_ms(started),
            **base,
        )
    base |= {"flow": recorded.flow, "recorded_schema": recorded.schema_version}
    flow = _find_flow(recorded.flow, flows)
    if flow is None or fold_only:
        why = (
            "folded only (--fold-only)"
            if fold_only
            else "recorded without a flow"
            if recorded.flow is None
            else f"flow {recorded.flow!r} is not loaded"
        )
        return ReplayResult(
            verdict=Verdict.NOT_RERUN,
            message=f"{why}; state {recorded.state_label}, "
            f"{plural(len(recorded.steps), 'step')}",
            duration_ms=_ms(started),
            **base,
        )
    current = flow.schema_version  # computed once per replay
    base["current_schema"] = current
    checked = gate(flow, recorded.schema_version, current, schema_lookup)
    base |= {"schema_format": checked.schema_format, "schema_notes": checked.notes}
    if not checked.accepted:
        return ReplayResult(
            verdict=Verdict.SCHEMA_MISMATCH,
            message=f"recorded schema differs from flow {flow.name!r}: "
            f"{plural(len(checked.changes), 'change')}",
            schema_changes=checked.changes,
            duration_ms=_ms(started),
            **base,
        )
    run = _rerun(flow, recorded, checked.upcaster)
    base["steps_checked"] = run.steps_checked
    if run.divergence is not None:
        return ReplayResult(
            verdict=Verdict.DIVERGED,
            message=run.divergence.reason,
            divergence=run.divergence,
            duration_ms=_ms(started),
            **base,
        )
    return ReplayResult(
        verdict=Verdict.OK,
        message=f"re-ran {plural(run.steps_checked, 'step')}; matches the record "
        f"({recorded.state_label})",
        duration_ms=_ms(started),
        **base,
    )


def _find_flow(name: str | None, flows: Iterable[Flow]) -> Flow | None:
    return next((flow for flow in flows if flow.name == name), None) if name else None


def _rerun(flow: Flow, recorded: Execution, upcast: ValueUpcaster | None) -> Run:
    return replay_record(flow, recorded, upcast)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _finish(
    result: ReplayResult, raise_on_failure: bool, cause: Exception | None = None
) -> ReplayResult:
    if not raise_on_failure or result.verdict in (Verdict.OK, Verdict.NOT_RERUN):
        return result
    error: ReplayError | ChainIntegrityError
    if result.verdict is Verdict.INTEGRITY:
        error = ChainIntegrityError(result.message)
    elif result.verdict is Verdict.SCHEMA_MISMATCH:
        error = SchemaMismatchError(result.report())
    else:
        error = NondeterminismError(result.report())
    error.result = result
    raise error from cause


def replay_file(
    path: Path | str,
    flows: Iterable[Flow] = (),
    *,
    keyring: Keyring | None = None,
    fold_only: bool = False,
) -> BatchResult:
    """Replay every execution in an export file; no store is needed.

    Given a folder, replays every ``*.jsonl`` file under it (sorted by
    path), continuing past failing verdicts. Each block's chain is verified
    first (a broken one is `integrity`, and no flow code runs for it); a
    malformed file raises `ImportFormatError`.
    """
    from journal.export import parse_blocks, schema_lookup_for

    started = time.perf_counter()
    path = Path(path)
    keyring = keyring or Keyring.from_env()
    flows = list(flows)
    if path.is_dir():
        files = sorted(path.rglob("*.jsonl"))
        if not files:
            # An empty folder replays nothing: never a silent pass in CI.
            raise ImportFormatError(f"{path}: no *.jsonl file in this folder")
        results: list[ReplayResult] = []
        for file in files:
            one = functools.partial(_file_results, file, flows, keyring, fold_only)
            results.extend(_each(str(file), one))
        return BatchResult(tuple(results), _ms(started))
    try:
        lines = path.read_bytes().splitlines()
    except OSError as e:
        raise ImportFormatError(f"{path}: cannot read: {e.strerror or e}") from e
    try:
        blocks = parse_blocks(lines, keyring, str(path))
    except ChainIntegrityError as e:
        result = ReplayResult(
            verdict=Verdict.INTEGRITY,
            execution_id=_first_id(lines),
            message=str(e),
            source=str(path),
            duration_ms=_ms(started),
        )
        return BatchResult((result,), _ms(started))
    schemas = schema_lookup_for(blocks)
    results = [
        replay_events(
            block.header.execution_id,
            block.events,
            flows,
            schema_lookup=schemas.get,
            head=block.header.head,
            fold_only=fold_only,
            source=block.source,
        )
        for block in blocks
    ]
    return BatchResult(tuple(results), _ms(started))


def _first_id(lines: Sequence[bytes]) -> str:
    try:
        header = msgspec.json.decode(lines[0]) if lines else {}
    except msgspec.DecodeError:
        return "?"
    return str(header.get("execution_id", "?")) if isinstance(header, dict) else "?"


def replay_all(
    journal_: Journal,
    flows: Iterable[Flow] = (),
    where: ListFilter | None = None,
    *,
    fold_only: bool = False,
    on_result: Callable[[ReplayResult], None] | None = None,
) -> BatchResult:
    """Replay every execution of this tenant that `where` selects.

    Continues past every per-execution failure: a failing verdict, and
    also an execution that cannot be read at all (a decode or store error),
    which gets the verdict `error` naming what went wrong.
    """
    started = time.perf_counter()
    flows = list(flows)
    results = []
    for summary in journal_.list(where):
        execution_id = summary.execution_id
        one = functools.partial(_replayed, journal_, execution_id, flows, fold_only)
        for result in _each(execution_id, one):
            results.append(result)
            if on_result is not None:
                on_result(result)
    return BatchResult(tuple(results), _ms(started))


def _file_results(
    path: Path, flows: list[Flow], keyring: Keyring | None, fold_only: bool
) -> Sequence[ReplayResult]:
    return replay_file(path, flows, keyring=keyring, fold_only=fold_only).results


def _replayed(
    journal_: Journal, execution_id: str, flows: list[Flow], fold_only: bool
) -> Sequence[ReplayResult]:
    return (replay(journal_, execution_id, flows, fold_only=fold_only),)


def _each(
    name: str, run: Callable[[], Sequence[ReplayResult]]
) -> Sequence[ReplayResult]:
    """The results of one member of a batch, or one `error` result saying
    why it could not be replayed (the batch goes on)."""
    started = time.perf_counter()
    try:
        return run()
    except Exception as e:  # any failure of one member must not stop the batch
        message = str(e) if isinstance(e, JournalError) else f"{type(e).__name__}: {e}"
        return (
            ReplayResult(
                verdict=Verdict.ERROR,
                execution_id=name if name.startswith("exec_") else "?",
                message=message or type(e).__name__,
                source=None if name.startswith("exec_") else name,
                duration_ms=_ms(started),
            ),
        )
