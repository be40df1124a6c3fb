"""``export`` and ``import``: the JSONL format of docs/design.md §9."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.options import App, command
from cli.params import EXECUTION_ID

if TYPE_CHECKING:
    from journal.export import Block, ImportReport


def _blocks(lines: list[bytes]) -> list[dict[str, Any]]:
    """The header of each block among exported lines."""
    import msgspec

    headers = []
    for line in lines:
        if line.startswith(b'{"format":'):
            headers.append(msgspec.json.decode(line))
    return headers


def _write_atomically(path: Path, lines: list[bytes]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as file:
            file.writelines(lines)
        os.replace(partial, path)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise OSError(e.errno, f"cannot write: {e.strerror}", str(path)) from e


def otlp_lines(app: App, execution_id: str) -> list[bytes]:
    """The OTLP/JSON trace of an execution and its children, as one line."""
    import json

    from journal.export import histories_with_children
    from journal.otlp import to_otlp
    from journal.timeline import build_timeline

    with app.open() as journal_:
        histories = histories_with_children(journal_, execution_id)
    timelines = [build_timeline(h.summary.execution_id, h.rows) for h in histories]
    document = to_otlp(timelines, writer=_writer())
    return [json.dumps(document, separators=(",", ":")).encode() + b"\n"]


def _writer() -> str:
    from journal import __version__

    return f"execution-journal {__version__}"


def export(
    app: App,
    execution_id: str,
    output: Path | None,
    format_: str = "jsonl",
    *,
    proof: bool = False,
) -> None:
    from journal.export import export_lines

    if format_ == "otlp":
        lines = otlp_lines(app, execution_id)
        if output is None:
            click.echo(b"".join(lines), nl=False)
        else:
            _write_atomically(output, lines)
            app.out.note(f"journal: wrote the OTLP/JSON trace to {output}")
        return
    with app.open() as journal_:
        proofs = _ledger_proofs(journal_) if proof else None
        lines = list(export_lines(journal_, execution_id, proofs=proofs))
    if output is None:
        click.echo(b"".join(lines), nl=False)
        return
    _write_atomically(output, lines)
    headers = _blocks(lines)
    events = sum(int(header["events"]) for header in headers)
    if app.out.json_mode:
        app.out.json(
            {
                "execution_id": execution_id,
                "file": str(output),
                "executions": [header["execution_id"] for header in headers],
                "events": events,
                "head": headers[0]["head"],
            }
        )
        return
    app.out.line(
        f"wrote {len(headers)} execution(s), {events} events, to {output} "
        f"(head {headers[0]['head']})"
    )


def write_blocks(app: App, blocks: list[Block], count: int) -> ImportReport:
    """Write verified blocks in one transaction. Into a SQLite file that
    does not exist yet, write a hidden file beside it and link it into place
    only once the transaction committed: an import that fails, or is
    interrupted, leaves no file at the path it was given."""
    from journal.export import import_blocks
    from journal.urls import sqlite_path

    path = sqlite_path(app.settings.db)
    if path is None or path.exists():
        with app.open(create=True) as journal_:
            return import_blocks(journal_, blocks, count)
    import journal

    staging = path.with_name(f".{path.name}.importing-{os.getpid()}")
    try:
        with journal.open(
            f"sqlite:///{staging.resolve()}",
            tenant=app.settings.tenant,
            create=True,
            keyring=app.keyring(),
        ) as journal_:
            report = import_blocks(journal_, blocks, count)
        os.link(staging, path)  # refuses to replace a file made meanwhile
    finally:
        for leftover in (staging, *(Path(f"{staging}{s}") for s in ("-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
    return report


def _ledger_proofs(journal_: Any) -> Callable[[str], bytes]:
    """Each exported execution's ledger proof (`journal.proofs`)."""
    from journal.errors import StoreError

    ledger_proof = getattr(journal_.store, "ledger_proof", None)
    if ledger_proof is None:
        raise StoreError("--proof needs a SQLite or PostgreSQL store with a ledger")
    tenant = journal_.tenant_id

    def proofs(execution_id: str) -> bytes:
        return bytes(ledger_proof(tenant, execution_id))

    return proofs


def import_(app: App, files: tuple[Path, ...]) -> None:
    from journal.export import read_for_import
    from journal.keys import Keyring

    keyring = Keyring.from_env()
    # Read, verify and cross-check every file (chains, counts, heads, the
    # tenant, copies of one id) before the store is opened or created, so a
    # bad file leaves no trace; then write all of them in one transaction.
    with app.out.progress(len(files), "verifying files") as advance:

        def files_advancing() -> Iterator[Path]:
            for path in files:
                yield path
                advance()

        blocks, count = read_for_import(files_advancing(), app.settings.tenant, keyring)
    report = write_blocks(app, blocks, count)
    if app.out.json_mode:
        app.out.json(
            {
                "written": report.written,
                "present": report.present,
                "files": report.files,
            }
        )
        return
    for execution_id in report.written:
        app.out.line(f"imported        {execution_id}")
    for execution_id in report.present:
        app.out.line(f"already present {execution_id}")
    app.out.line(
        f"{len(report.written)} written, {len(report.present)} already present, "
        f"from {report.files} file(s)"
    )


def register(group: click.Group) -> None:
    @command(group, "export")
    @click.argument("execution_id", type=EXECUTION_ID)
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write here instead of stdout.",
    )
    @click.option(
        "--format",
        "format_",
        type=click.Choice(["jsonl", "otlp"]),
        default="jsonl",
        show_default=True,
        help="jsonl: journal-export/1, verifiable and importable; "
        "otlp: an OpenTelemetry OTLP/JSON trace (export only).",
    )
    @click.option(
        "--proof",
        is_flag=True,
        help="Add each execution's ledger leaf, inclusion proof and signed "
        "checkpoint to its header (check with verify --file --pubkey).",
    )
    def export_command(
        app: App, execution_id: str, output: Path | None, format_: str, proof: bool
    ) -> None:
        """Export an execution and its children (journal-export/1 JSONL, or an
        OTLP/JSON trace with --format otlp)."""
        if proof and format_ != "jsonl":
            raise click.UsageError("--proof goes with --format jsonl")
        export(app, execution_id, output, format_, proof=proof)

    @command(group, "import")
    @click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
    def import_command(app: App, files: tuple[Path, ...]) -> None:
        """Import export files: all verified first, then one transaction.

        Histories already present are skipped; a different history under
        the same id is a conflict (exit 7) and nothing is written.
        """
        import_(app, files)
