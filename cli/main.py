"""The ``journal`` command: replay, list, show, verify, export, import, diff,
schema and demo.

Only click and the standard library are imported at start-up; each command
imports the journal, the replayer and rich when it needs them.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from cli.errors import FlowExitError, report
from cli.options import GlobalFlags, global_options


class _DriverLog(logging.Handler):
    """The PostgreSQL driver's own log lines (the pool discarding a connection
    the server dropped, which the store then replaces), on stderr only with
    ``--debug``: a command reports what went wrong in its own one line. Having
    a handler also keeps Python from printing them as a last resort."""

    def __init__(self, flags: GlobalFlags) -> None:
        super().__init__(logging.WARNING)
        self.flags = flags
        self.setFormatter(logging.Formatter("journal: debug: %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if self.flags.debug:
            sys.stderr.write(self.format(record) + "\n")


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
        driver_log = _DriverLog(flags)
        logging.getLogger("psycopg").addHandler(driver_log)
        try:
            returned = super().main(
                args, prog_name or "journal", complete_var, False, **extra
            )
            code = returned if isinstance(returned, int) else 0
            flush_stdout()
        except (BrokenPipeError, PipeClosed):
            code = quiet_broken_pipe()
        except (Exception, click.exceptions.Abort, KeyboardInterrupt) as exc:
            code = report(exc, debug=flags.debug, json_mode=flags.json)
        finally:
            logging.getLogger("psycopg").removeHandler(driver_log)
        if standalone_mode:
            sys.exit(code)
        return code

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except BrokenPipeError as e:  # --help or --version into a closed pipe
            raise PipeClosed from e

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as e:
            # Seen here, before click's own handler turns it into exit 1.
            raise PipeClosed from e
        except SystemExit as e:
            # click ends commands with `Exit`, never `SystemExit`: this one
            # was raised by flow code, which does not choose our exit code.
            raise FlowExitError(e) from e


class PipeClosed(Exception):
    """The reader of stdout went away (not an `OSError`, so click's own
    broken-pipe handler, which exits 1, never sees it)."""


def flush_stdout() -> None:
    """Flush now, so a closed pipe is seen here and not at interpreter exit."""
    if sys.stdout is not None and not sys.stdout.closed:
        sys.stdout.flush()


def quiet_broken_pipe() -> int:
    """The reader of stdout went away (``journal list | head -1``): stop
    quietly with status 0, as the reader asked for no more. Point stdout at
    /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (in-process tests)
        pass
    return 0


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
    6 integrity, 7 conflict, 8 state does not allow it, 9 approval refused,
    10 signing key not available or wrong, 11 lease lost, 12 store busy,
    130 interrupted. A closed pipe on stdout ends quietly with 0.
    """


def _register() -> None:
    from cli import (
        commands_compare,
        commands_continue,
        commands_control,
        commands_demo,
        commands_ledger,
        commands_log,
        commands_read,
        commands_replay,
        commands_report,
        commands_store,
        commands_transfer,
        commands_verify,
    )

    for module in (
        commands_demo,
        commands_replay,
        commands_read,
        commands_verify,
        commands_transfer,
        commands_compare,
        commands_control,
        commands_continue,
        commands_report,
        commands_store,
        commands_log,
        commands_ledger,
    ):
        module.register(cli)


_register()


def main() -> None:
    """Console-script entry point."""
    cli.main()


if __name__ == "__main__":
    main()
