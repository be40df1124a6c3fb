"""Carrying executions on: ``resume``, ``recover`` (and ``--follow``)."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from cli.options import App, command
from cli.params import DURATION, EXECUTION_ID, JSON_TEXT, seconds_of

if TYPE_CHECKING:
    from journal.application import Journal
    from journal.approvals import Keyring
    from journal.flow import Flow
    from journal.model import Execution


def flow_for(app: App, journal_: Journal, execution_id: str) -> Flow:
    """The loaded flow that recorded an execution (`FlowNotLoadedError`)."""
    from journal.errors import FlowNotLoadedError

    name = journal_.summary(execution_id).flow
    for flow in app.flows:
        if flow.name == name:
            return flow
    raise FlowNotLoadedError(
        f"{execution_id} was recorded by flow {name!r}, which is not loaded: "
        "pass --flows MODULE"
    )


def load_keyring(path: str | None) -> Keyring | None:
    from journal.approvals import Keyring

    path = path or os.environ.get("JOURNAL_APPROVER_KEYRING") or None
    return None if path is None else Keyring.load(path)


def print_state(app: App, execution: Execution) -> None:
    """One line per execution: id and state (and what a wait asks)."""
    if app.out.json_mode:
        from cli.views import wait_view

        waiting = execution.state.value == "Waiting" and execution.waits
        app.out.json(
            {
                "execution_id": execution.id,
                "state": execution.state_label,
                "wait": wait_view(execution.waits[-1]) if waiting else None,
            }
        )
        return
    click.echo(f"{execution.id} {execution.state_label}")
    if execution.state.value == "Waiting" and execution.waits:
        click.echo(f"digest {execution.waits[-1].digest}")


def register(group: click.Group) -> None:
    @command(group, "resume")
    @click.argument("execution_id", type=EXECUTION_ID)
    @click.option("--input", "input_", type=JSON_TEXT, help="The input (JSON).")
    @click.option("--approver", metavar="NAME", help="Who approves (recorded).")
    @click.option("--digest", metavar="HEX", help="The digest approved.")
    @click.option("--signature", metavar="HEX", help="Approver's Ed25519 signature.")
    @click.option("--deny", is_flag=True, help="Deny: wait_for raises Denied.")
    @click.option("--reason", metavar="TEXT", help="Why (with --deny).")
    @click.option(
        "--keyring",
        metavar="FILE",
        help="Approver keyring [env JOURNAL_APPROVER_KEYRING].",
    )
    def resume_command(app: App, execution_id: str, **given: Any) -> None:
        """Resume a waiting or paused execution with today's code (the
        recorded prefix is re-run first, writing nothing: exit 5 if it
        diverges). Needs --flows."""
        import msgspec

        from journal.approvals import Approval
        from journal.continuation import resume

        raw = given["input_"]
        approval = Approval(
            input=None if raw is None else msgspec.Raw(raw.encode()),
            approver=given["approver"],
            digest=given["digest"],
            signature=given["signature"],
            deny=given["deny"],
            reason=given["reason"],
        )
        keyring = load_keyring(given["keyring"])
        with app.open() as journal_:
            flow = flow_for(app, journal_, execution_id)
            execution = resume(flow, journal_, execution_id, approval, keyring=keyring)
        print_state(app, execution)

    @command(group, "fork")
    @click.argument("execution_id", type=EXECUTION_ID)
    @click.option(
        "--at-step",
        type=click.IntRange(min=0),
        required=True,
        help="Index of the step to go on from (as `journal show` lists them).",
    )
    @click.option(
        "--input", "input_", type=JSON_TEXT, help="Replaced input of that step."
    )
    def fork_command(
        app: App, execution_id: str, at_step: int, input_: str | None
    ) -> None:
        """Fork an execution: a new one copies the record before step N, names
        its origin in its chain, and goes on live from step N with today's
        code (optionally with another input for that step). Needs --flows."""
        import msgspec

        from journal.fork import fork

        given = None if input_ is None else msgspec.json.decode(input_)
        with app.open() as journal_:
            flow = flow_for(app, journal_, execution_id)
            try:
                execution = fork(
                    flow, journal_, execution_id, at_step=at_step, input=given
                )
            except ValueError as e:
                if isinstance(e, msgspec.ValidationError) or _is_journal(e):
                    raise
                raise click.BadParameter(str(e)) from e
        print_state(app, execution)

    @command(group, "recover")
    @click.option(
        "--older-than",
        type=DURATION,
        default="30s",
        show_default=True,
        help="A lease not renewed for this long is dead.",
    )
    @click.option("--dry-run", is_flag=True, help="Only list what would be taken.")
    @click.option("--follow", is_flag=True, help="Keep recovering (a supervisor).")
    @click.option(
        "--every", type=DURATION, default="5s", show_default=True,
        help="With --follow: how often to look.",
    )  # fmt: skip
    def recover_command(
        app: App, older_than: str, dry_run: bool, follow: bool, every: str
    ) -> int:
        """Take over running executions whose process died (lease expired)
        and resume them. Needs --flows for their flows."""
        from journal.continuation import recover

        worst = 0
        with app.open() as journal_:
            while True:
                done = recover(
                    journal_,
                    app.flows,
                    older_than_s=seconds_of(older_than),
                    dry_run_only=dry_run,
                )
                for item in done:
                    worst = max(worst, item.exit_code)
                    report_recovered(app, item)
                if not follow:
                    return worst
                sys.stdout.flush()  # a supervisor's log is read as it goes
                time.sleep(seconds_of(every))


def _is_journal(error: BaseException) -> bool:
    from journal.errors import JournalError

    return isinstance(error, JournalError)


def report_recovered(app: App, item: Any) -> None:
    if app.out.json_mode:
        app.out.json(
            {
                "execution_id": item.execution_id,
                "outcome": item.outcome,
                "state": item.state,
            }
        )
        return
    state = f" {item.state}" if item.state else ""
    click.echo(f"{item.execution_id} {item.outcome}{state}")
