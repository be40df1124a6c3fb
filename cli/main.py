"""The ``journal`` command: replay, list, show, verify, export, import, diff,
schema and demo.

Only click and the standard library are imported at start-up; each command
imports the journal, the replayer and rich when it needs them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from cli.errors import report
from cli.options import GlobalFlags, global_options


class JournalGroup(click.Group):
    """A group whose every failure is reported by `cli.errors.report`."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> int:
        flags = GlobalFlags()
        extra.setdefault("obj", flags)
        try:
            returned = super().main(
                args, prog_name or "journal", complete_var, False, **extra
            )
            code = returned if isinstance(returned, int) else 0
        except (Exception, click.exceptions.Abort, KeyboardInterrupt) as exc:
            code = report(exc, debug=flags.debug, json_mode=flags.json)
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(
    "journal",
    cls=JournalGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@global_options
def cli() -> None:
    """An event-sourced execution journal with deterministic replay.

    Global options may come before or after the command. Exit codes: 0 ok,
    1 error, 2 usage, 3 not found, 4 schema mismatch, 5 diverged,
    6 integrity, 7 conflict.
    """


def _register() -> None:
    from cli import (
        commands_compare,
        commands_demo,
        commands_read,
        commands_replay,
        commands_report,
        commands_transfer,
    )

    for module in (
        commands_demo,
        commands_replay,
        commands_read,
        commands_transfer,
        commands_compare,
        commands_report,
    ):
        module.register(cli)


_register()


def main() -> None:
    """Console-script entry point."""
    cli.main()


if __name__ == "__main__":
    main()
