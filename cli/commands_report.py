"""``journal report``: the audit report as one self-contained HTML file.

The report is written even when a chain is broken (it shows the failure at
the top); the command then exits 6. With ``--replay`` it exits as ``journal
replay`` would for the verdicts it shows.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.errors import batch_exit_code
from cli.options import App, command
from cli.params import any_filter, filter_options, list_filter

if TYPE_CHECKING:
    from replay.html_report import Subject


def _generated_at() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise OSError(e.errno, f"cannot write: {e.strerror}", str(path)) from e


def _exit_code(subjects: list[Subject], with_replay: bool) -> int:
    from journal.errors import ChainIntegrityError

    if any(not subject.chain.verified for subject in subjects):
        return ChainIntegrityError.exit_code
    if not with_replay:
        return 0
    return batch_exit_code([s.replay.verdict.value for s in subjects if s.replay])


def _summary(app: App, subjects: list[Subject], where: Path) -> None:
    broken = [s for s in subjects if not s.chain.verified]
    if app.out.json_mode:
        app.out.json(
            {
                "file": str(where),
                "executions": [s.timeline.execution_id for s in subjects],
                "chain_broken": [s.timeline.execution_id for s in broken],
                "verdicts": {
                    s.timeline.execution_id: s.replay.verdict.value
                    for s in subjects
                    if s.replay is not None
                },
            }
        )
        return
    app.out.line(f"wrote a report of {len(subjects)} execution(s) to {where}")
    for subject in broken:
        app.out.note(f"journal: chain broken: {subject.chain.message}")


def report_one(app: App, execution_id: str, output: Path, replay_: bool) -> int:
    from replay.audit import subject_from_store
    from replay.html_report import Page, render_report

    flows = app.flows if replay_ else []
    with app.open() as journal_:
        summary = journal_.summary(execution_id)
        subjects = [subject_from_store(journal_, summary, flows, with_replay=replay_)]
    write_atomically(
        output, render_report(Page(subjects), generated_at=_generated_at())
    )
    _summary(app, subjects, output)
    return _exit_code(subjects, replay_)


def report_file(app: App, path: Path, output: Path, replay_: bool) -> int:
    from replay.audit import subjects_from_file
    from replay.html_report import Page, render_report

    flows = app.flows if replay_ else []
    subjects = subjects_from_file(path, flows, with_replay=replay_)
    page = Page(subjects)
    write_atomically(output, render_report(page, generated_at=_generated_at()))
    _summary(app, subjects, output)
    return _exit_code(subjects, replay_)


def report_all(app: App, where: Any, directory: Path, replay_: bool) -> int:
    from replay.audit import subject_from_store, with_descendants
    from replay.html_report import Page, render_index, render_report

    flows = app.flows if replay_ else []
    with app.open() as journal_:
        summaries = with_descendants(journal_, journal_.list(where))
        subjects = [
            subject_from_store(journal_, s, flows, with_replay=replay_)
            for s in summaries
        ]
    directory.mkdir(parents=True, exist_ok=True)
    links = {
        s.timeline.execution_id: f"{s.timeline.execution_id}.html" for s in subjects
    }
    generated_at = _generated_at()
    for subject in subjects:
        page = Page([subject], links)
        path = directory / links[subject.timeline.execution_id]
        write_atomically(path, render_report(page, generated_at=generated_at))
    entries = [(links[s.timeline.execution_id], s) for s in subjects]
    write_atomically(
        directory / "index.html", render_index(entries, generated_at=generated_at)
    )
    _summary(app, subjects, directory)
    return _exit_code(subjects, replay_)


def register(group: click.Group) -> None:
    @command(group, "report")
    @click.argument("execution_id", required=False)
    @click.option("--all", "all_", is_flag=True, help="Every execution selected.")
    @filter_options
    @click.option(
        "--file",
        "file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Report on an export file (no store needed).",
    )
    @click.option(
        "-o",
        "--output",
        required=True,
        type=click.Path(path_type=Path),
        help="The HTML file to write (a directory with --all).",
    )
    @click.option(
        "--replay", "replay_", is_flag=True, help="Replay too; show the verdict."
    )
    def report_command(
        app: App,
        execution_id: str | None,
        all_: bool,
        flow_name: str | None,
        state: str | None,
        since: Any,
        until: Any,
        limit: int | None,
        file: Path | None,
        output: Path,
        replay_: bool,
    ) -> None:
        """Write an audit report: one HTML file, no network needed to open it.

        With --all, one file per execution (and their children) in the
        directory OUTPUT, and an index.html. A broken chain is shown at the
        top and exits 6 (the report is still written); with --replay the
        exit code is replay's (4, 5, 6; 1 if no flow is loaded).
        """
        if [execution_id is not None, all_, file is not None].count(True) != 1:
            raise click.UsageError("give one of EXECUTION_ID, --all or --file FILE")
        if any_filter(flow_name, state, since, until, limit) and not all_:
            raise click.UsageError("--flow/--state/--since/--until/--limit need --all")
        if all_:
            where = list_filter(flow_name, state, since, until, limit)
            code = report_all(app, where, output, replay_)
        elif file is not None:
            code = report_file(app, file, output, replay_)
        else:
            assert execution_id is not None
            code = report_one(app, execution_id, output, replay_)
        click.get_current_context().exit(code)
