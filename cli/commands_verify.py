"""``journal verify``: one execution's chain, or ``--all`` of a tenant's.

``--all`` without filters walks the events table itself (`Store.census`),
not only the time index, so an execution whose index entry is damaged is
still verified, and stored events with no index row are reported.
"""

from __future__ import annotations

import shlex
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.errors import exit_code_for, message_for
from cli.options import App, command
from cli.params import EXECUTION_ID, HeadParam, any_filter, filter_options, list_filter
from cli.views import binding_fields, signature_text

if TYPE_CHECKING:
    from journal.application import Journal

#: An index that hides stored events is an integrity failure.
INDEX_EXIT = 6
UNLISTED = "the time index does not list it (a damaged index: `journal list` hides it)"


def verify_all(app: App, journal_: Journal, where: Any, census: bool) -> int:
    listed = [summary.execution_id for summary in journal_.list(where)]
    found = journal_.store.census(journal_.tenant_id) if census else None
    unlisted = [] if found is None else sorted(set(found.execution_ids) - set(listed))
    results: list[dict[str, Any]] = []
    codes = [0]
    with app.out.progress(len(listed) + len(unlisted), "verifying") as advance:
        for execution_id in listed:
            results.append(verify_one(journal_, execution_id, codes))
            advance()
        for execution_id in unlisted:
            result = verify_one(journal_, execution_id, codes)
            if result["ok"]:
                result |= {"ok": False, "error": UNLISTED}
                codes.append(INDEX_EXIT)
            results.append(result)
            advance()
    for orphan in () if found is None else found.orphans:
        codes.append(INDEX_EXIT)
        results.append(_result(f"key {orphan.key}", error=orphan.describe()))
    codes += check_ledger(journal_, results)
    return _print(app, results, max(codes))


def check_ledger(journal_: Journal, results: list[dict[str, Any]]) -> list[int]:
    """The store against the ledger (if it has one): each sealed head must
    still be in the store (not deleted, truncated or rewritten), and the
    stored leaves must give every checkpoint's root. Returns exit codes."""
    audit = getattr(journal_.store, "ledger_audit", None)
    problems = [] if audit is None else audit(journal_.tenant_id)
    by_id = {r["execution_id"]: r for r in results}
    for execution_id, problem in problems:
        error = f"ledger: {problem}"
        if execution_id in by_id and by_id[execution_id]["ok"]:
            by_id[execution_id].update(ok=False, error=error)
        elif execution_id not in by_id:
            results.append(_result(execution_id, error=error))
    return [INDEX_EXIT] if problems else []


def _print(app: App, results: list[dict[str, Any]], code: int) -> int:
    broken = [r for r in results if not r["ok"]]
    if app.out.json_mode:
        app.out.json({"results": results, "ok": not broken})
        return code
    rows = [
        (r["execution_id"], "ok" if r["ok"] else "BROKEN", r["error"] or r["head"])
        for r in results
    ]
    app.out.table(("execution", "chain", "head / error"), rows)
    app.out.line(f"{len(results) - len(broken)} verified, {len(broken)} broken")
    return code


def _result(
    execution_id: str,
    *,
    events: int | None = None,
    head: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """One row of the report (the ``--json`` shape of docs/cli.md)."""
    return {
        "execution_id": execution_id,
        "ok": error is None,
        "events": events,
        "head": head,
        "error": error,
    }


def verify_one(journal_: Journal, execution_id: str, codes: list[int]) -> Any:
    """Verify one execution into a report row; its exit code joins `codes`."""
    from journal.chain import format_head
    from journal.errors import JournalError

    try:
        head = journal_.verify(execution_id)
    except JournalError as e:
        codes.append(exit_code_for(e))
        return _result(execution_id, error=message_for(e))
    return _result(execution_id, events=head[0], head=format_head(*head))


def verify_file(app: App, path: Path, pubkey: Path | None = None) -> None:
    """``verify --file``: every block's chain, genesis, head and fold; the
    head MAC where the keyring holds its key; with ``--pubkey``, every
    block's ledger proof (checkpoint signature, inclusion, sealed head)."""
    from cli.commands_ledger import verifier_for
    from journal.export import read_blocks

    verifier = None if pubkey is None else verifier_for(pubkey)
    blocks = read_blocks(path, app.keyring())
    results: list[dict[str, Any]] = []
    for block in blocks:
        header = block.header
        mac = "checked" if block.mac_checked else "not checked"
        sealed = None if verifier is None else _check_sealed(block, verifier)
        results.append(
            {
                "execution_id": header.execution_id,
                "ok": True,
                "events": header.events,
                "head": header.head,
                "chain": {
                    "ok": True,
                    "binding": header.chain,
                    "key_id": header.key_id,
                    "mac": mac if header.key_id else None,
                },
                "ledger": sealed,
            }
        )
    if app.out.json_mode:
        app.out.json({"file": str(path), "ok": True, "results": results})
        return
    for result in results:
        key_id = result["chain"]["key_id"]
        signed = f", MAC {result['chain']['mac']} (key {key_id})" if key_id else ""
        app.out.styled(
            f"ok  {result['execution_id']}: {result['events']} events, "
            f"{result['chain']['binding']} binding{signed}",
            "green",
        )
        app.out.line(f"head {result['head']}")
        if result["ledger"] is not None:
            app.out.line(
                f"sealed at {result['ledger']['head_seq']} in checkpoint "
                f"{result['ledger']['tree_size']}: inclusion proof and signature ok"
            )


def _check_sealed(block: Any, verifier: Any) -> dict[str, Any]:
    """A block's ledger proof, checked offline (exit 6 naming what failed)."""
    from journal.proofs import check_proof

    header = block.header
    record, checkpoint = check_proof(
        bytes(header.proofs),
        tenant_id=header.tenant_id,
        execution_id=header.execution_id,
        flow=header.flow,
        rows=block.rows,
        verifier=verifier,
    )
    return {"head_seq": record.head_seq, "tree_size": checkpoint.size}


def check_later(app: App, execution_id: str, head: str) -> str:
    """The command to paste later: it keeps the --db and --tenant in force
    when they did not come from the defaults."""
    settings = app.settings
    words = ["journal"]
    for key in ("db", "tenant"):
        if settings.sources.get(key, "default") != "default":
            from journal.sqlstore import redact_url

            value = getattr(settings, key)
            value = redact_url(value) if key == "db" else value
            words += [f"--{key}", shlex.quote(value)]
    return " ".join([*words, "verify", execution_id, "--expect-head", head])


def register(group: click.Group) -> None:
    @command(group, "verify")
    @click.argument("execution_id", required=False, type=EXECUTION_ID)
    @click.option("--all", "all_", is_flag=True, help="Every execution.")
    @filter_options
    @click.option("--expect-head", type=HeadParam(), help="The head printed earlier.")
    @click.option(
        "--file",
        "export_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Check an export file (journal-export/1 or /2); no store is opened.",
    )
    @click.option(
        "--pubkey",
        type=click.Path(dir_okay=False, path_type=Path),
        help="With --file: the ledger's verifier key; check every block's "
        "ledger proof too (export --proof).",
    )
    def verify_command(
        app: App,
        execution_id: str | None,
        all_: bool,
        flow_name: str | None,
        state: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int | None,
        expect_head: tuple[int, bytes] | None,
        export_file: Path | None,
        pubkey: Path | None,
    ) -> None:
        """Walk the hash chain and check the index row against it and the
        fold; print the head (N:HEX) to check it later.

        With --all (and no filter) every execution the events table holds
        is verified, including any the index does not list.
        """
        filtered = any_filter(flow_name, state, since, until, limit)
        if export_file is not None:
            if execution_id is not None or all_ or expect_head is not None:
                raise click.UsageError("--file takes no EXECUTION_ID, --all or head")
            if filtered:
                raise click.UsageError(
                    "--flow/--state/--since/--until/--limit need --all"
                )
            verify_file(app, export_file, pubkey)
            return
        if pubkey is not None:
            raise click.UsageError("--pubkey goes with --file")
        if (execution_id is None) == (not all_):
            raise click.UsageError("give an EXECUTION_ID or --all (not both)")
        if all_ and expect_head is not None:
            raise click.UsageError("--expect-head needs one EXECUTION_ID")
        if filtered and not all_:
            raise click.UsageError("--flow/--state/--since/--until/--limit need --all")
        with app.open() as journal_:
            if all_:
                where = list_filter(flow_name, state, since, until, limit)
                code = verify_all(app, journal_, where, census=not filtered)
                click.get_current_context().exit(code)
            assert execution_id is not None
            history = journal_.history(execution_id, expect_head=expect_head)
        print_verified(app, execution_id, history)


def print_verified(app: App, execution_id: str, history: Any) -> None:
    """The report of one verified execution, and the hint to check it later."""
    from journal.chain import format_head

    head = history.head
    text = format_head(*head)
    if app.out.json_mode:
        app.out.json(
            {
                "execution_id": execution_id,
                "ok": True,
                "events": head[0],
                "head": text,
                "chain": {"ok": True, **binding_fields(history.summary)},
            }
        )
        return
    app.out.styled(
        f"ok  {execution_id}: {head[0]} events, chain and index row intact "
        f"({signature_text(history.summary)})",
        "green",
    )
    app.out.line(f"head {text}")
    app.out.note(f"check later: {check_later(app, execution_id, text)}")
