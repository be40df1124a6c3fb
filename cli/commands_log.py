"""The store-wide log: ``journal follow``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from cli.options import App, command

if TYPE_CHECKING:
    from journal.errors import StoreError


def register(group: click.Group) -> None:
    @command(group, "follow")
    @click.option(
        "--from",
        "after",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        metavar="POSITION",
        help="Resume after this position (exclusive).",
    )
    @click.option(
        "--all-tenants",
        is_flag=True,
        help="Every tenant's events (for operators), not only --tenant's.",
    )
    @click.option(
        "--no-wait",
        is_flag=True,
        help="Exit (0) once everything numbered so far is streamed.",
    )
    def follow_command(app: App, after: int, all_tenants: bool, no_wait: bool) -> None:
        """Stream the log's events as JSON lines, waiting for new ones until
        interrupted: position, tenant, execution id, sequence, link (hex) and
        the payload verbatim. Resume with --from the last position seen. On a
        write-protected SQLite file nothing is numbered: it streams what is
        and exits 0, saying on stderr how many events wait to be numbered."""
        from journal.follow import follow_log
        from journal.urls import open_store

        store = open_store(app.settings.db, create=False, keyring=app.keyring())
        tenant = None if all_tenants else app.settings.tenant
        out = sys.stdout
        refused: list[StoreError] = []

        def note_refused(error: StoreError) -> None:
            refused.append(error)
            click.echo(
                "journal: this user may not number the log (read-only): "
                "following what other followers and the sealer number",
                err=True,
            )

        try:
            for entry in follow_log(
                store,
                after,
                tenant_id=tenant,
                wait=not no_wait,
                on_refused=note_refused,
            ):
                out.write(
                    f'{{"position":{entry.position},"tenant":"{entry.tenant_id}",'
                    f'"execution_id":"{entry.execution_id}","seq":{entry.seq},'
                    f'"link":"{entry.link.hex()}","payload":'
                )
                out.write(entry.payload.decode())
                out.write("}\n")
                out.flush()
            if store.read_only or refused:
                _say_unnumbered(store.unnumbered(tenant_id=tenant, journal_only=True))
        finally:
            store.close()


def _say_unnumbered(count: int) -> None:
    """One stderr line when a read-only store holds events no round numbered."""
    if count:
        events = "event is" if count == 1 else "events are"
        click.echo(
            f"journal: {count} {events} not numbered yet (the store is "
            "read-only): `journal follow --no-wait` with write access numbers "
            "them",
            err=True,
        )
