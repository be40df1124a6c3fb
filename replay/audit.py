"""What an audit report shows, gathered from a store or from an export file.

A broken chain does not stop a report: its rows are shown as stored, with
the first bad sequence named (from `Journal.verify`, or from the export's own
check), and no flow code runs for it. With ``with_replay`` each execution is
also replayed, and its verdict goes into the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from journal.application import Journal
from journal.binding import binding_of
from journal.chain import format_head, parse_genesis
from journal.errors import ChainIntegrityError, ImportFormatError
from journal.export import ScannedBlock, scan_blocks, schema_lookup_for
from journal.flow import Flow
from journal.keys import Keyring
from journal.sql_ledger import SQLLedger
from journal.store import ListFilter, Row, Store, Summary
from journal.timeline import Timeline, build_timeline
from replay.html_report import ChainStatus, Subject
from replay.replayer import replay, replay_events
from replay.report import ReplayResult, Verdict


def with_descendants(journal_: Journal, summaries: Iterable[Summary]) -> list[Summary]:
    """The executions given, each followed by its children, depth first."""
    found: list[Summary] = []
    seen: set[str] = set()
    stack = list(reversed(list(summaries)))
    while stack:
        summary = stack.pop()
        if summary.execution_id in seen:
            continue
        seen.add(summary.execution_id)
        found.append(summary)
        stack.extend(journal_.list(ListFilter(parent_id=summary.execution_id)))
    return found


def subject_from_store(
    journal_: Journal,
    summary: Summary,
    flows: Sequence[Flow] = (),
    *,
    with_replay: bool = False,
) -> Subject:
    """One execution of this tenant, its chain checked by `Journal.verify`."""
    execution_id = summary.execution_id
    try:
        chain = ChainStatus.ok(journal_.verify(execution_id))
    except ChainIntegrityError as e:
        chain = ChainStatus(False, str(e), e.seq or 1)
    rows = journal_.store.load_rows(execution_id, journal_.tenant_id)
    children = journal_.list(ListFilter(parent_id=execution_id))
    ledger = ledger_status(journal_.store, execution_id, rows)
    result = replay(journal_, execution_id, flows) if with_replay else None
    return Subject(
        timeline=build_timeline(execution_id, rows),
        tenant_id=summary.tenant_id,
        chain=chain,
        children=[child.execution_id for child in reversed(children)],
        replay=result,
        ledger=ledger,
        alg=summary.alg,
        binding=binding_of(summary),
        key_id=summary.key_id,
        origin=_origin(summary.genesis, execution_id),
    )


def ledger_status(store: Store, execution_id: str, rows: Sequence[Row]) -> str | None:
    """What the store's ledger sealed of this execution (None: no ledger)."""
    if not isinstance(store, SQLLedger) or not store.has_ledger():
        return None
    sealed = store.sealed_heads(execution_ids=[execution_id]).get(execution_id)
    if sealed is None:
        return "not sealed yet (the ledger has no head of this execution)"
    links = {row.seq: row.hash for row in rows}
    where = f"sealed at seq {sealed.head_seq} (leaf {sealed.leaf_index})"
    if links.get(sealed.head_seq) != sealed.head_link:
        return f"MISMATCH: {where}, but the stored event there is not the one sealed"
    newer = max(links, default=0) - sealed.head_seq
    return where + (f"; {newer} later event(s) not sealed yet" if newer else "")


def _origin(genesis: bytes | None, execution_id: str) -> dict[str, Any] | None:
    """The fork origin a v2 genesis names (None for v1 or a fresh run)."""
    if genesis is None:
        return None
    try:
        origin = parse_genesis(genesis, execution_id).origin
    except ChainIntegrityError:
        return None  # the chain status already says what is wrong
    return (
        None
        if origin is None
        else {"execution_id": origin.execution_id, "seq": origin.seq}
    )


def subjects_from_file(
    path: Path,
    flows: Sequence[Flow] = (),
    *,
    with_replay: bool = False,
    keyring: Keyring | None = None,
) -> list[Subject]:
    """Every execution in an export file (blocks that fail are kept, marked)."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as e:
        raise ImportFormatError(f"{path}: cannot read: {e.strerror or e}") from e
    blocks = scan_blocks(lines, keyring or Keyring.from_env(), str(path))
    # Only blocks whose chain verified are replayed, and for those the
    # document was checked against its hash.
    schemas = schema_lookup_for(b for b in blocks if b.integrity_error is None)
    children: dict[str, list[str]] = {}
    for block in blocks:
        parent = block.header.parent_execution_id
        if parent is not None:
            children.setdefault(parent, []).append(block.header.execution_id)
    subjects = []
    for block in blocks:
        timeline = build_timeline(block.header.execution_id, block.rows)
        result = _replay_block(block, timeline, flows, schemas) if with_replay else None
        subjects.append(
            Subject(
                timeline=timeline,
                tenant_id=block.header.tenant_id,
                chain=_block_chain(block),
                children=children.get(block.header.execution_id, []),
                replay=result,
                source=block.source,
                alg=block.header.alg,
                binding=block.header.chain,
                key_id=block.header.key_id,
                origin=_origin(_genesis_bytes(block), block.header.execution_id),
            )
        )
    return subjects


def _genesis_bytes(block: ScannedBlock) -> bytes | None:
    genesis = block.header.genesis
    return None if genesis is None else genesis.encode()


def _block_chain(block: ScannedBlock) -> ChainStatus:
    error = block.integrity_error
    if error is not None:
        return ChainStatus(False, str(error), error.seq or 1)
    last = block.rows[-1]
    return ChainStatus.ok((last.seq, last.hash))


def _replay_block(
    block: ScannedBlock,
    timeline: Timeline,
    flows: Sequence[Flow],
    schemas: dict[str, bytes],
) -> ReplayResult:
    execution_id = block.header.execution_id
    error = block.integrity_error
    if error is not None:  # no flow code runs for a broken chain
        return ReplayResult(
            verdict=Verdict.INTEGRITY,
            execution_id=execution_id,
            message=str(error),
            flow=block.header.flow,
            recorded_schema=block.header.schema_version,
            events_checked=max(0, (error.seq or 1) - 1),
            source=block.source,
        )
    events = [record.event for record in timeline.events if record.event is not None]
    return replay_events(
        execution_id,
        events,
        flows,
        schema_lookup=schemas.get,
        head=format_head(*timeline.head),
        source=block.source,
    )
