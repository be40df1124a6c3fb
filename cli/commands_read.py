"""Read-only commands: ``list`` and ``show``. Neither creates a store."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from cli.commands_verify import verify_one
from cli.options import App, command
from cli.params import EXECUTION_ID, filter_options, list_filter
from cli.views import (
    binding_fields,
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
    from journal.model import Execution, Wait
    from journal.store import Summary

DEFAULT_LIMIT = 50


def print_summaries(
    app: App, summaries: list[Summary], chain: dict[str, str] | None = None
) -> None:
    rows = [
        (
            s.execution_id,
            s.flow,
            s.state,
            s.step_count,
            short_time(s.started_at or s.created_at),
            duration(s.duration_ms),
            (chain or {}).get(s.execution_id, "-"),
        )
        for s in summaries
    ]
    columns = ("id", "flow", "state", "steps", "started", "duration", "chain")
    app.out.table(columns, rows)


def list_statuses(
    journal_: Journal, summaries: list[Summary], verify: bool
) -> tuple[dict[str, str], dict[str, str | None], int]:
    """Each row's chain status: the cheap one (index head against the stored
    last link, and the MAC), or with `verify` the full check. Returns the
    statuses, the error per row, and the exit code (the worst one)."""
    if not verify:
        statuses = journal_.statuses(summaries)
        code = 6 if "broken" in statuses.values() else 0
        return statuses, dict.fromkeys(statuses), code
    codes = [0]
    statuses, errors = {}, {}
    for summary in summaries:
        result = verify_one(journal_, summary.execution_id, codes)
        statuses[summary.execution_id] = "verified" if result["ok"] else "broken"
        errors[summary.execution_id] = result["error"]
    return statuses, errors, max(codes)


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
    fields += [("answer", answer_text(w)) for w in execution.waits if w.answer]
    for name, value in fields:
        text = "-" if value is None else compact(value, 100)
        app.out.line(f"{name:<10} {text}")


def answer_text(wait: Wait) -> str:
    """How a wait was answered, in one line: who, what, when."""
    answer = wait.answer
    assert answer is not None
    at = short_time(answer.at)
    if answer.timed_out:
        return f"seq {wait.seq}: timed out ({at})"
    if answer.denied:
        return f"seq {wait.seq}: denied by {answer.approver} ({at}): {answer.reason}"
    who = f" by {answer.approver}" if answer.approver else ""
    signed = ", signed" if answer.signature else ""
    # The full digest is in --json; its start is enough to tell them apart.
    digest = f", digest {answer.digest[:19]}…" if answer.digest else ""
    return f"seq {wait.seq}: approved{who} ({at}{signed}{digest})"


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
            **binding_fields(journal_.summary(execution.id)),
        },
        "steps": [step_view(step, index) for index, step in ordered_steps(execution)],
        "children": [summary_view(child) for child in children],
    }
    if events:
        data["events"] = [event_view(e) for e in journal_.events(execution.id)[:at]]
    app.out.json(data)


def register(group: click.Group) -> None:
    @command(group, "list")
    @filter_options
    @click.option(
        "--verify", "verify", is_flag=True, help="Run the full check on every row."
    )
    def list_command(
        app: App,
        flow_name: str | None,
        state: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int | None,
        verify: bool,
    ) -> None:
        """List this tenant's executions, newest first (50 unless --limit).

        The chain column is a cheap check (the index head is the stored last
        link; the MAC where the key is set); --verify runs the full check.
        A broken row exits 6 after the listing."""
        where = list_filter(flow_name, state, since, until, limit or DEFAULT_LIMIT)
        with app.open() as journal_:
            summaries = journal_.list(where)
            statuses, errors, code = list_statuses(journal_, summaries, verify)
        if app.out.json_mode:
            from journal.binding import binding_of

            views = []
            for s in summaries:
                view = summary_view(s)
                view["chain"] = {
                    "status": statuses[s.execution_id],
                    "binding": binding_of(s),
                    "key_id": s.key_id,
                    "error": errors[s.execution_id],
                }
                views.append(view)
            app.out.json({"executions": views})
        else:
            print_summaries(app, summaries, statuses)
            if limit is None and len(summaries) == DEFAULT_LIMIT:
                app.out.note(
                    f"journal: showing the newest {DEFAULT_LIMIT}; use --limit N"
                )
            for error in errors.values():
                if error:
                    click.echo(f"journal: {error}", err=True)
        if code:
            if not verify:
                broken = [i for i, status in statuses.items() if status == "broken"]
                click.echo(
                    f"journal: error: index head does not match the stored chain: "
                    f"{', '.join(broken)} (run journal verify)",
                    err=True,
                )
            click.get_current_context().exit(code)

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
