"""Exit codes, mapped from exceptions in this one place.

A `journal.JournalError` carries its code on its class (click's
``ClickException.exit_code`` pattern); click's usage errors are 2; anything
else is 1. Replay verdicts map onto the same classes, so every number lives
on an exception class.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import click

#: A replay verdict -> (module, class) whose ``exit_code`` it exits with.
_VERDICT_ERRORS = {
    "integrity": "ChainIntegrityError",
    "schema_mismatch": "SchemaMismatchError",
    "diverged": "NondeterminismError",
    "not_rerun": "FlowNotLoadedError",
    "error": "JournalError",
}
#: When several verdicts are present, the exit code of the most severe wins.
VERDICT_SEVERITY = ("integrity", "diverged", "schema_mismatch", "error", "not_rerun")


class CliError(click.ClickException):
    """An error found by the CLI itself (bad flows module, bad pyproject)."""

    exit_code = 1


class FlowExitError(CliError):
    """Flow code (a ``--flows`` module, or a flow it runs) called
    ``sys.exit``: the journal's exit code is not its to choose (exit 1)."""

    def __init__(self, exc: SystemExit) -> None:
        super().__init__(
            f"flow code called sys.exit({exc.code!r}); flows modules and "
            "flows must not end the process (exit 1)"
        )


def verdict_exit_code(verdict: str, *, fold_only: bool = False) -> int:
    """The exit code of one replay verdict (``not_rerun`` is 0 with fold-only)."""
    if verdict == "ok" or (verdict == "not_rerun" and fold_only):
        return 0
    from journal import errors

    code: int = getattr(errors, _VERDICT_ERRORS[verdict]).exit_code
    return code


def batch_exit_code(failed_verdicts: list[str]) -> int:
    """The exit code of many replays, given the verdicts of those that
    *failed* (`replay.Outcome.FAILED`, the rule JUnit and the pytest plugin
    share): that of the most severe one present, else 0."""
    for verdict in VERDICT_SEVERITY:
        if verdict in failed_verdicts:
            return verdict_exit_code(verdict)
    return 0


def _is_journal_error(exc: BaseException) -> bool:
    # journal.errors is only imported once a command has touched the journal;
    # if it is not loaded, `exc` cannot be one of its errors.
    errors = sys.modules.get("journal.errors")
    return errors is not None and isinstance(exc, errors.JournalError)


def exit_code_for(exc: BaseException) -> int:
    """The process exit code for an exception that ended a command."""
    if isinstance(exc, click.ClickException):
        return exc.exit_code
    if isinstance(exc, click.Abort | KeyboardInterrupt):
        return 130  # the shell's convention for SIGINT
    if _is_journal_error(exc):
        code: int = getattr(exc, "exit_code", 1)
        return code
    return 1


def message_for(exc: BaseException) -> str:
    """One line saying what went wrong (and which id, file or line)."""
    if isinstance(exc, click.UsageError):
        hint = ""
        if exc.ctx is not None:
            hint = f" (try '{exc.ctx.command_path} --help')"
        return f"{exc.format_message()}{hint}"
    if isinstance(exc, click.ClickException):
        text = exc.format_message()
    elif isinstance(exc, click.Abort | KeyboardInterrupt):
        text = "aborted"
    elif _is_journal_error(exc):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split("\n", 1)[0].split()) or type(exc).__name__


def report(exc: BaseException, *, debug: bool, json_mode: bool) -> int:
    """Print the error (stderr; also a JSON object on stdout with --json)."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    code = exit_code_for(exc)
    message = message_for(exc)
    click.echo(f"journal: error: {message}", err=True)
    if json_mode:
        from cli.output import dump_json

        error: dict[str, Any] = {
            "exit_code": code,
            "type": type(exc).__name__,
            "message": message,
        }
        click.echo(dump_json({"error": error}))
    return code
