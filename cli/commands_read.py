"""Read-only commands: ``list``, ``show`` and ``verify``. None creates a store."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from cli.errors import exit_code_for, message_for
from cli.options import App, command
from cli.params import EXECUTION_ID, HeadParam, filter_options, list_filter
from cli.views import (
    compact,
    duration,
    error_text,
    event_view,
    execution_view,
    ordered_steps,
    short_time,
    step_view,
    summary_view,
    wait_view,
)

if TYPE_CHECKING:
    from journal.application import Journal, RecordedEvent
    from journal.model import Execution
    from journal.store import Summary

DEFAULT_LIMIT = 50


def print_summaries(app: App, summaries: list[Summary]) -> None:
    rows = [
        (
            s.execution_id,
            s.flow,
            s.state,
            s.step_count,
            short_time(s.started_at or s.created_at),
            duration(s.duration_ms),
        )
        for s in summaries
    ]
    app.out.table(("id", "flow", "state", "steps", "started", "duration"), rows)


def print_execution(app: App, execution: Execution, head: int) -> None:
    view = execution_view(execution)
    parent = view["parent"]
    fields: list[tuple[str, Any]] = [
        ("execution", execution.id),
        ("flow", execution.flow),
        ("state", view["state"]),
        ("tenant", execution.tenant_id),
        ("parent", parent and f"{parent['execution_id']} ({parent['parent_type']})"),
        ("schema", execution.schema_version),
        ("events", f"{execution.version} of {head}"),
        ("started", short_time(execution.started_at)),
        ("ended", short_time(execution.ended_at)),
        ("duration", duration(execution.duration_ms)),
        ("input", view["input"]),
        ("output", view["output"]),
        ("error", error_text(execution.error)),
    ]
    if execution.state.value == "Waiting" and execution.waits:
        wait = wait_view(execution.waits[-1])
        fields += [
            ("prompt", wait["prompt"]),
            ("action", wait["action"]),
            ("digest", wait["digest"]),
            ("deadline", wait["timeout_at"]),
            ("approver", "required" if wait["require_approver"] else None),
        ]
    for name, value in fields:
        text = "-" if value is None else compact(value, 100)
        app.out.line(f"{name:<10} {text}")


def print_steps(app: App, execution: Execution) -> None:
    steps = ordered_steps(execution)
    index_of = {step.id: index for index, step in steps}
    rows = []
    for index, step in steps:
        retry_of = step_view(step, index)["retry_of"]
        retry = f"retry of #{index_of.get(retry_of)}" if retry_of else None
        rows.append(
            (
                "-" if index is None else index,
                step.name,
                step.step_type,
                step.state.value,
                duration(step.duration_ms),
                retry,
                error_text(step.error),
            )
        )
    columns = ("#", "step", "type", "state", "duration", "retry", "error")
    app.out.line()
    app.out.table(columns, rows, title=f"{len(rows)} steps")


def print_events(app: App, events: list[RecordedEvent]) -> None:
    rows = []
    for recorded in events:
        view = event_view(recorded)
        payload = dict(view["payload"] or {})
        payload.pop("type", None)
        at = payload.pop("at", None)
        rows.append(
            (view["seq"], view["type"], at, view["hash"][:12], compact(payload))
        )
    app.out.line()
    app.out.table(("seq", "type", "at", "hash", "payload"), rows, title="events")


def show_json(
    app: App,
    execution: Execution,
    journal_: Journal,
    at: int | None,
    events: bool,
    broken: Exception | None = None,
) -> None:
    from journal.store import ListFilter

    children = journal_.list(ListFilter(parent_id=execution.id))
    data: dict[str, Any] = {
        "execution": execution_view(execution),
        "at": at,
        "chain": {
            "ok": broken is None,
            "error": None if broken is None else str(broken),
        },
        "steps": [step_view(step, index) for index, step in ordered_steps(execution)],
        "children": [summary_view(child) for child in children],
    }
    if events:
        data["events"] = [event_view(e) for e in journal_.events(execution.id)[:at]]
    app.out.json(data)


def verify_all(app: App, journal_: Journal) -> int:
    summaries = journal_.list()
    results: list[dict[str, Any]] = []
    codes = [0]
    with app.out.progress(len(summaries), "verifying") as advance:
        for summary in summaries:
            results.append(_verify_one(journal_, summary.execution_id, codes))
            advance()
    broken = [r for r in results if not r["ok"]]
    if app.out.json_mode:
        app.out.json({"results": results, "ok": not broken})
        return max(codes)
    rows = [
        (r["execution_id"], "ok" if r["ok"] else "BROKEN", r["head"] or r["error"])
        for r in results
    ]
    app.out.table(("execution", "chain", "head / error"), rows)
    app.out.line(f"{len(results) - len(broken)} verified, {len(broken)} broken")
    return max(codes)


def _verify_one(journal_: Journal, execution_id: str, codes: list[int]) -> Any:
    from journal.chain import format_head
    from journal.errors import JournalError

    try:
        head = journal_.verify(execution_id)
    except JournalError as e:
        codes.append(exit_code_for(e))
        return {
            "execution_id": execution_id,
            "ok": False,
            "events": None,
            "head": None,
            "error": message_for(e),
        }
    return {
        "execution_id": execution_id,
        "ok": True,
        "events": head[0],
        "head": format_head(*head),
        "error": None,
    }


def register(group: click.Group) -> None:
    @command(group, "list")
    @filter_options
    def list_command(
        app: App,
        flow_name: str | None,
        state: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int | None,
    ) -> None:
        """List this tenant's executions, newest first (50 unless --limit)."""
        where = list_filter(flow_name, state, since, until, limit or DEFAULT_LIMIT)
        with app.open() as journal_:
            summaries = journal_.list(where)
        if app.out.json_mode:
            app.out.json({"executions": [summary_view(s) for s in summaries]})
            return
        print_summaries(app, summaries)
        if limit is None and len(summaries) == DEFAULT_LIMIT:
            app.out.note(f"journal: showing the newest {DEFAULT_LIMIT}; use --limit N")

    @command(group, "show")
    @click.argument("execution_id", type=EXECUTION_ID)
    @click.option("--at", type=click.IntRange(min=1), help="State after event N.")
    @click.option("--events", is_flag=True, help="Also the raw events.")
    def show_command(app: App, execution_id: str, at: int | None, events: bool) -> None:
        """Show an execution: summary, steps, and (--events) its raw events."""
        from journal.errors import ChainIntegrityError, JournalError

        with app.open() as journal_:
            head = journal_.summary(execution_id).head_seq
            # `get` may start from a snapshot; an auditor looking at this
            # must still learn when the stored history does not verify.
            broken: ChainIntegrityError | None = None
            try:
                journal_.verify(execution_id)
            except ChainIntegrityError as e:
                broken = e
            try:
                execution = journal_.get(execution_id, at=at)
            except JournalError:
                if broken is not None:
                    raise broken from None  # nothing trustworthy to show
                raise
            if app.out.json_mode:
                show_json(app, execution, journal_, at, events and not broken, broken)
            else:
                recorded = (
                    journal_.events(execution_id)[:at] if events and not broken else []
                )
                print_execution(app, execution, head)
                print_steps(app, execution)
                if events and not broken:
                    print_events(app, recorded)
        if broken is not None:
            # After the display: one line on stderr, exit 6 (with --json the
            # document above already says "chain": {"ok": false}).
            if app.out.json_mode:
                click.echo(f"journal: error: {broken}", err=True)
                click.get_current_context().exit(broken.exit_code)
            raise broken

    @command(group, "verify")
    @click.argument("execution_id", required=False, type=EXECUTION_ID)
    @click.option("--all", "all_", is_flag=True, help="Every execution.")
    @click.option("--expect-head", type=HeadParam(), help="The head printed earlier.")
    def verify_command(
        app: App,
        execution_id: str | None,
        all_: bool,
        expect_head: tuple[int, bytes] | None,
    ) -> None:
        """Walk the hash chain; print the head (N:HEX) to check it later."""
        if (execution_id is None) == (not all_):
            raise click.UsageError("give an EXECUTION_ID or --all (not both)")
        if all_ and expect_head is not None:
            raise click.UsageError("--expect-head needs one EXECUTION_ID")
        with app.open() as journal_:
            if all_:
                click.get_current_context().exit(verify_all(app, journal_))
            assert execution_id is not None
            head = journal_.verify(execution_id, expect_head=expect_head)
        from journal.chain import format_head

        text = format_head(*head)
        if app.out.json_mode:
            app.out.json(
                {
                    "execution_id": execution_id,
                    "ok": True,
                    "events": head[0],
                    "head": text,
                }
            )
            return
        app.out.styled(f"ok  {execution_id}: {head[0]} events, chain intact", "green")
        app.out.line(f"head {text}")
        app.out.note(f"check later: journal verify {execution_id} --expect-head {text}")
