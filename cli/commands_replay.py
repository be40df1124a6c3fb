"""``journal replay``: one execution, ``--all`` of them, or a ``--file``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.errors import batch_exit_code
from cli.options import App, command
from cli.params import (
    EXECUTION_ID,
    JOURNAL_FILES,
    any_filter,
    filter_options,
    list_filter,
)
from cli.views import compact

if TYPE_CHECKING:
    from replay import BatchResult, ReplayResult

VERDICT_STYLE = {"ok": "bold green", "not_rerun": "bold yellow"}
FAILED = ("integrity", "schema_mismatch", "diverged", "error")


def print_result(app: App, result: ReplayResult) -> None:
    """The report of one replay: verdict, counts, timing, and what differs."""
    first, *rest = result.report().splitlines()
    app.out.styled(first, VERDICT_STYLE.get(result.verdict.value, "bold red"))
    for line in rest:
        app.out.line(line)
    if result.head:
        app.out.line(f"  head {result.head}")


def print_batch(app: App, batch: BatchResult) -> None:
    rows = [
        (
            r.verdict.value,
            r.execution_id,
            r.flow,
            r.events_checked,
            r.steps_checked,
            f"{r.duration_ms:.1f}",
            compact(r.message, 50),
        )
        for r in batch.results
    ]
    columns = ("verdict", "execution", "flow", "events", "steps", "ms", "message")
    app.out.table(columns, rows)
    for result in batch.results:
        if result.verdict.value in FAILED:
            app.out.line()
            print_result(app, result)
    counts = ", ".join(f"{n} {v}" for v, n in batch.counts.items() if n)
    app.out.line()
    app.out.line(
        f"{len(batch.results)} replayed: {counts or 'nothing'} "
        f"in {batch.duration_ms:.1f} ms"
    )


def batch_json(batch: BatchResult) -> dict[str, Any]:
    return {
        "results": [result.to_dict() for result in batch.results],
        "counts": batch.counts,
        "duration_ms": round(batch.duration_ms, 3),
        "ok": batch.ok,
    }


def replay_one(app: App, execution_id: str, fold_only: bool) -> BatchResult:
    import replay

    flows = app.flows
    with app.open() as journal_:
        result = replay.replay(journal_, execution_id, flows, fold_only=fold_only)
    if app.out.json_mode:
        app.out.json(result.to_dict())
    else:
        print_result(app, result)
    if result.verdict.value == "not_rerun" and result.outcome.value == "failed":
        app.out.note(
            f"journal: {execution_id} was not re-run: load its flow with "
            "--flows MODULE, or pass --fold-only"
        )
    elif result.outcome.value == "skipped":
        app.out.note(
            f"journal: {execution_id} was recorded without a flow: nothing to "
            "re-run (chain verified, events folded)"
        )
    return replay.BatchResult((result,), result.duration_ms)


def replay_all(app: App, where: Any, fold_only: bool) -> BatchResult:
    import replay

    flows = app.flows
    with app.open() as journal_:
        total = len(journal_.list(where))
        with app.out.progress(total, "replaying") as advance:
            return replay.replay_all(
                journal_,
                flows,
                where,
                fold_only=fold_only,
                on_result=lambda _result: advance(),
            )


def replay_file(app: App, path: Path, fold_only: bool) -> BatchResult:
    import replay

    return replay.replay_file(path, app.flows, fold_only=fold_only)


def register(group: click.Group) -> None:
    @command(group, "replay")
    @click.argument("execution_id", required=False, type=EXECUTION_ID)
    @click.option("--all", "all_", is_flag=True, help="Every execution selected.")
    @filter_options
    @click.option(
        "--file",
        "file",
        type=JOURNAL_FILES,
        help="Replay an export file, or every *.jsonl in a folder (no store).",
    )
    @click.option("--fold-only", is_flag=True, help="Verify and fold; run no code.")
    @click.option(
        "--junit",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Also write JUnit XML here.",
    )
    def replay_command(
        app: App,
        execution_id: str | None,
        all_: bool,
        flow_name: str | None,
        state: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int | None,
        file: Path | None,
        fold_only: bool,
        junit: Path | None,
    ) -> None:
        """Verify, fold, check the schema and re-run recorded executions.

        Exit 0 ok, 1 not re-run (no flow loaded; 0 with --fold-only),
        4 schema mismatch, 5 diverged, 6 integrity.
        """
        if [execution_id is not None, all_, file is not None].count(True) != 1:
            raise click.UsageError("give one of EXECUTION_ID, --all or --file FILE")
        if any_filter(flow_name, state, since, until, limit) and not all_:
            raise click.UsageError("--flow/--state/--since/--until/--limit need --all")
        if execution_id is not None:
            batch = replay_one(app, execution_id, fold_only)
        else:
            if all_:
                where = list_filter(flow_name, state, since, until, limit)
                batch = replay_all(app, where, fold_only)
            else:
                assert file is not None
                batch = replay_file(app, file, fold_only)
            if app.out.json_mode:
                app.out.json(batch_json(batch))
            else:
                print_batch(app, batch)
        if junit is not None:
            junit.write_text(batch.junit_xml(), encoding="utf-8")
            app.out.note(f"journal: wrote JUnit XML to {junit}")
        failed = [result.verdict.value for result in batch.failed]
        click.get_current_context().exit(batch_exit_code(failed))
