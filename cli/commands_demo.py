"""``journal demo``: record a few runs of the bundled demo flow, list them,
replay one, and print the commands to try next."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import click

from cli.errors import verdict_exit_code
from cli.options import App, command
from cli.views import summary_view

if TYPE_CHECKING:
    from journal.application import Journal
    from journal.store import Summary

DEMO_MODULE = "journal.demo"


def record(app: App, journal_: Journal) -> list[Summary]:
    """Run every demo request; return what was recorded (children too)."""
    from journal import demo
    from journal.application import utc_now
    from journal.store import ListFilter

    started = utc_now()
    with app.out.progress(len(demo.DEMO_REQUESTS), "recording") as advance:
        for order_id, reason in demo.DEMO_REQUESTS:
            demo.refund.run(journal_, order_id, reason)
            advance()
    return list(reversed(journal_.list(ListFilter(since=started))))


def shown_url(url: str) -> str:
    """The store URL as printed: never with its password (the pasted
    commands then take it from PGPASSWORD or ~/.pgpass, as libpq does)."""
    from journal.sqlstore import redact_url

    return redact_url(url)


def next_commands(app: App, first: str, second: str) -> list[str]:
    """Commands that work when pasted (they repeat --db/--tenant flags)."""
    settings = app.settings
    prefix = "journal"
    if settings.sources["db"] == "flag":
        prefix += f" --db {shlex.quote(shown_url(settings.db))}"
    if settings.sources["tenant"] == "flag":
        prefix += f" --tenant {shlex.quote(settings.tenant)}"
    return [
        f"{prefix} list",
        f"{prefix} show {first}",
        f"{prefix} show {first} --events",
        f"{prefix} replay {first} --flows {DEMO_MODULE}",
        f"{prefix} verify {first}",
        f"{prefix} diff {first} {second}",
        f"{prefix} export {first} -o refund.jsonl",
        f"{prefix} replay --file refund.jsonl --flows {DEMO_MODULE}",
        f"{prefix} schema --flows {DEMO_MODULE}",
    ]


def register(group: click.Group) -> None:
    @command(group, "demo")
    def demo_command(app: App) -> None:
        """Record demo executions into the store, list them, replay one."""
        import replay
        from cli.commands_read import list_statuses, print_summaries
        from cli.commands_replay import print_result
        from journal import demo

        with app.open(create=True) as journal_:
            recorded = record(app, journal_)
            roots = [s for s in recorded if s.parent_id is None]
            first, second = roots[0].execution_id, roots[1].execution_id
            result = replay.replay(journal_, first, [demo.refund, demo.notify])
            statuses = list_statuses(journal_, recorded, verify=False)[0]
        hints = next_commands(app, first, second)
        code = verdict_exit_code(result.verdict.value)
        if app.out.json_mode:
            app.out.json(
                {
                    "db": shown_url(app.settings.db),
                    "tenant": app.settings.tenant,
                    "recorded": [summary_view(s) for s in recorded],
                    "replay": result.to_dict(),
                    "next": hints,
                }
            )
            click.get_current_context().exit(code)
        children = len(recorded) - len(roots)
        app.out.line(
            f"Recorded {len(roots)} runs of demo.refund (and {children} child "
            f"run{'s' if children != 1 else ''} of demo.notify) "
            f"in {shown_url(app.settings.db)}, tenant {app.settings.tenant}:"
        )
        print_summaries(app, recorded, statuses)
        app.out.line()
        app.out.line(f"Replaying {first} against the demo flow code:")
        print_result(app, result)
        app.out.line()
        app.out.line("Next, try:")
        for hint in hints:
            app.out.line(f"  {hint}")
        click.get_current_context().exit(code)
