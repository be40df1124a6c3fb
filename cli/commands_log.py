"""The store-wide log: ``journal follow``."""

from __future__ import annotations

import sys

import click

from cli.options import App, command


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
    def follow_command(app: App, after: int, all_tenants: bool) -> None:
        """Stream the log's events as JSON lines, waiting for new ones until
        interrupted: position, tenant, execution id, sequence, link (hex) and
        the payload verbatim. Resume with --from the last position seen."""
        from journal.follow import follow_log
        from journal.urls import open_store

        store = open_store(app.settings.db, create=False, keyring=app.keyring())
        tenant = None if all_tenants else app.settings.tenant
        out = sys.stdout
        try:
            for entry in follow_log(store, after, tenant_id=tenant):
                out.write(
                    f'{{"position":{entry.position},"tenant":"{entry.tenant_id}",'
                    f'"execution_id":"{entry.execution_id}","seq":{entry.seq},'
                    f'"link":"{entry.link.hex()}","payload":'
                )
                out.write(entry.payload.decode())
                out.write("}\n")
                out.flush()
        finally:
            store.close()
