"""Operators' commands: ``pause`` and ``cancel`` (through the store)."""

from __future__ import annotations

import click

from cli.options import App, command
from cli.params import EXECUTION_ID


def register(group: click.Group) -> None:
    @command(group, "pause")
    @click.argument("execution_id", type=EXECUTION_ID)
    @click.option("--reason", metavar="TEXT", help="Why (recorded).")
    def pause_command(app: App, execution_id: str, reason: str | None) -> None:
        """Pause a running execution: its process stops at its next step
        (a step in flight keeps its output). Resume it with `journal resume`."""
        from journal.control import pause

        with app.open() as journal_:
            execution = pause(journal_, execution_id, reason)
        if app.out.json_mode:
            app.out.json({"paused": execution.id, "state": execution.state_label})
            return
        click.echo(f"{execution.id} Paused")

    @command(group, "cancel")
    @click.argument("execution_id", type=EXECUTION_ID)
    @click.option("--reason", metavar="TEXT", required=True, help="Why (recorded).")
    @click.option(
        "--no-cascade", is_flag=True, help="Leave unfinished children running."
    )
    def cancel_command(
        app: App, execution_id: str, reason: str, no_cascade: bool
    ) -> None:
        """Cancel an execution (running, paused or waiting) and, unless
        --no-cascade, its unfinished children."""
        from journal.control import cancel

        with app.open() as journal_:
            cancelled = cancel(journal_, execution_id, reason, cascade=not no_cascade)
        if app.out.json_mode:
            app.out.json({"cancelled": [e.id for e in cancelled]})
            return
        for execution in cancelled:
            click.echo(f"{execution.id} Cancelled")
