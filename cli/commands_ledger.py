"""The ledger: ``journal seal`` and ``journal ledger …``.

The private key is the file named by ``JOURNAL_LEDGER_KEY_FILE``; it never
enters the database. A missing or malformed key, or another ledger's key (named
otherwise, or not the key that signed its checkpoints), exits 10.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.options import App, command

if TYPE_CHECKING:
    from journal.errors import StoreError
    from journal.signednote import Verifier
    from journal.sqlstore import SQLStore


def open_sql(app: App, *, create: bool = False) -> SQLStore:
    """The store, which must be an SQL one (the ledger lives in it)."""
    from journal.errors import StoreError
    from journal.sqlstore import SQLStore
    from journal.urls import open_store

    store = open_store(app.settings.db, create=create, keyring=app.keyring())
    if not isinstance(store, SQLStore):
        store.close()
        raise StoreError("the ledger needs a SQLite or PostgreSQL store")
    return store


def verifier_for(pubkey: Path | None) -> Verifier:
    """The verifier key from a ``--pubkey`` file, else from the ledger key."""
    from journal.errors import ImportFormatError
    from journal.ledger import load_signer
    from journal.signednote import Verifier

    if pubkey is None:
        return load_signer().verifier
    try:
        return Verifier.from_vkey(pubkey.read_text())
    except OSError as exc:
        raise ImportFormatError(f"cannot read {pubkey}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ImportFormatError(f"{pubkey}: not a verifier key: {exc}") from exc


def register(group: click.Group) -> None:
    @command(group, "seal")
    @click.option("--follow", is_flag=True, help="Keep sealing until interrupted.")
    def seal_command(app: App, follow: bool) -> None:
        """Seal every execution head that advanced into its tenant's ledger,
        ending each round with a signed checkpoint. Exits 6 naming any head
        it refused (a history rewritten behind its sealed head)."""
        from journal.ledger import check_ledger_key, load_signer
        from journal.sealer import run_sealer

        signer = load_signer()  # exit 10 before starting anything
        store = open_sql(app)
        try:
            origin = store.ledger_origin()
            check_ledger_key(signer.verifier, origin, store.latest_checkpoint_note())
            store.sequence_log(wait=True)
            target = store.max_position()
        finally:
            store.close()

        def restarting(error: StoreError, delay: float) -> None:
            click.echo(
                f"journal seal: the store failed ({error}); resuming from the "
                f"sealer's tracking record in {delay:.1f} s",
                err=True,
            )

        report = run_sealer(
            app.settings.db, target, follow=follow, on_restart=restarting
        )
        for refusal in report.refused:
            click.echo(refusal, err=True)
        if app.out.json_mode:
            app.out.json(
                {
                    "rounds": report.rounds,
                    "leaves": report.leaves,
                    "refused": report.refused,
                }
            )
        else:
            click.echo(f"sealed {report.leaves} heads in {report.rounds} rounds")
        if report.refused:
            click.get_current_context().exit(6)

    @group.group("ledger")
    def ledger_group() -> None:
        """The tenant ledger: its name, key, checkpoints and proofs."""

    @command(ledger_group, "init")
    @click.option("--origin", required=True, help="The log's name (not a URL).")
    def init_command(app: App, origin: str) -> None:
        """Create the ledger's tables and name the log."""
        from journal.ledger import check_origin

        try:
            check_origin(origin)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--origin") from exc
        store = open_sql(app)
        try:
            store.init_ledger(origin)
        finally:
            store.close()
        click.echo(f"ledger {origin}")

    @command(ledger_group, "keygen")
    @click.option(
        "--out",
        "out_file",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="The private key file to write (never overwritten).",
    )
    @click.option("--origin", required=True, help="The ledger's origin (key name).")
    def keygen_command(app: App, out_file: Path, origin: str) -> None:
        """Write a new Ed25519 private key (signed-note text format, mode
        0600) and print its verifier key."""
        from journal.ledger import check_origin, write_key_file
        from journal.signednote import Signer

        try:
            signer = Signer.generate(check_origin(origin))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--origin") from exc
        try:
            write_key_file(out_file, signer)
        except FileExistsError as exc:
            raise click.BadParameter(
                f"{out_file} exists (never overwritten)", param_hint="--out"
            ) from exc
        click.echo(signer.verifier.vkey)

    @command(ledger_group, "pubkey")
    def pubkey_command(app: App) -> None:
        """Print the verifier key (C2SP vkey) of JOURNAL_LEDGER_KEY_FILE."""
        from journal.ledger import load_signer

        click.echo(load_signer().verifier.vkey)

    @command(ledger_group, "checkpoints")
    def checkpoints_command(app: App) -> None:
        """List the tenant's checkpoints (tree size and root)."""
        store = open_sql(app)
        try:
            found = store.ledger_checkpoints(app.settings.tenant)
        finally:
            store.close()
        if app.out.json_mode:
            app.out.json(
                [{"size": s, "root": base64.b64encode(r).decode()} for s, r, _ in found]
            )
            return
        for size, root, _ in found:
            click.echo(f"{size}\t{base64.b64encode(root).decode()}")

    @command(ledger_group, "checkpoint")
    def checkpoint_command(app: App) -> None:
        """Print the tenant's latest signed checkpoint (keep it, as an auditor)."""
        from journal.errors import ExecutionNotFoundError

        store = open_sql(app)
        try:
            found = store.ledger_checkpoints(app.settings.tenant)
        finally:
            store.close()
        if not found:
            raise ExecutionNotFoundError(
                f"tenant {app.settings.tenant} has no checkpoint yet (run journal seal)"
            )
        sys.stdout.write(found[-1][2])

    @command(ledger_group, "prove")
    @click.option(
        "--from",
        "old_file",
        required=True,
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help="A signed checkpoint kept earlier.",
    )
    @click.option(
        "--pubkey",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help="The ledger's verifier key (default: JOURNAL_LEDGER_KEY_FILE's).",
    )
    def prove_command(app: App, old_file: Path, pubkey: Path | None) -> None:
        """Prove that a checkpoint kept earlier is a prefix of the current
        one, and check the proof; exits 6 if the ledger was rewritten."""
        from journal.errors import ExecutionNotFoundError
        from journal.ledger import (
            check_ledger_key,
            open_tenant_checkpoint,
            prove_consistency,
        )

        verifier = verifier_for(pubkey)
        tenant = app.settings.tenant
        store = open_sql(app)
        try:
            if pubkey is None:  # the operator's own key: another ledger's exits 10
                origin = store.ledger_origin()
                check_ledger_key(verifier, origin, store.latest_checkpoint_note())
            found = store.ledger_checkpoints(tenant)
            leaves = store.ledger_leaves(tenant)
        finally:
            store.close()
        old = open_tenant_checkpoint(old_file.read_text(), verifier, tenant)
        if not found:
            raise ExecutionNotFoundError(f"tenant {tenant} has no checkpoint yet")
        new = open_tenant_checkpoint(found[-1][2], verifier, tenant)
        proved = prove_consistency(leaves, old, new)
        _print_proof(app, proved, found[-1][2])


def _print_proof(app: App, proved: Any, note: str) -> None:
    def b64(value: bytes) -> str:
        return base64.b64encode(value).decode()

    if app.out.json_mode:
        app.out.json(
            {
                "old_size": proved.old.size,
                "old_root": b64(proved.old.root),
                "size": proved.new.size,
                "root": b64(proved.new.root),
                "proof": [b64(p) for p in proved.proof],
                "checkpoint": note,
                "ok": True,
            }
        )
        return
    click.echo(
        f"consistent: tree {proved.old.size} is a prefix of tree {proved.new.size}"
    )
    for item in proved.proof:
        click.echo(b64(item))
