"""Store administration: ``init``, ``migrate`` and ``keys generate``."""

from __future__ import annotations

import click

from cli.options import App, command


def register(group: click.Group) -> None:
    @command(group, "init")
    def init_command(app: App) -> None:
        """Create the store's tables (as their owner; needs DDL rights), or
        bring a first-round store to the current layout."""
        from journal.urls import open_store

        store = open_store(app.settings.db, create=True, keyring=app.keyring())
        try:
            before = store.migrate()
        finally:
            store.close()
        _report(app, before)

    @command(group, "migrate")
    def migrate_command(app: App) -> None:
        """Upgrade a first-round store in place (as the tables' owner): add
        the chain v2 columns, the meta and leases tables and the append-only
        triggers. Existing chains are not touched and keep verifying as v1."""
        from journal.urls import open_store

        store = open_store(app.settings.db, create=False, keyring=app.keyring())
        try:
            before = store.migrate()
        finally:
            store.close()
        _report(app, before)

    @group.group("keys")
    def keys_group() -> None:
        """Signing keys (JOURNAL_SIGNING_KEY, JOURNAL_SIGNING_KEYS)."""

    @command(keys_group, "generate")
    def generate_command(app: App) -> None:
        """Print a new random signing key (32 bytes, hex) and its key id."""
        from journal.keys import SigningKey, generate_key

        key = generate_key()
        key_id = SigningKey.parse(key).key_id
        if app.out.json_mode:
            app.out.json({"key": key, "key_id": key_id})
            return
        click.echo(key)
        app.out.note(f"key id {key_id}; set it as JOURNAL_SIGNING_KEY")


def _report(app: App, before: int) -> None:
    from journal.sqlstore import LAYOUT

    if app.out.json_mode:
        app.out.json({"layout": LAYOUT, "was": before})
        return
    if before >= LAYOUT:
        click.echo(f"the store's tables are at layout {LAYOUT}")
    else:
        click.echo(f"migrated the store from layout {before} to {LAYOUT}")
