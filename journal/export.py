"""The JSONL export format (``journal-export/2``): write, read, verify, import.

A block is one header line, then one line per event in sequence order::

    {"format": "journal-export/2", "execution_id": ..., "tenant_id": ...,
     "flow": ..., "parent_execution_id": ..., "children": [ids],
     "schema_version": ..., "schema": {...} | null, "state": ...,
     "events": N, "head": "N:HEX", "alg": "sha256",
     "chain": "v2", "genesis": "<the genesis preimage, verbatim>",
     "origin": {...} | null, "key_id": HEX | null, "head_mac": HEX | null,
     "proofs": null, "writer": ...}
    {"seq": 1, "hash": "HEX", "payload": "<stored JSON bytes, verbatim>"}

Children follow their parent as further blocks. The payload and genesis
strings are the stored bytes, so anyone can verify the chain without
re-encoding anything. ``proofs`` is left null here: a ledger fills it with
its inclusion proof. ``journal-export/1`` files (no chain fields: a v1
chain) are still read, verified, imported and replayed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec

from journal import events as ev
from journal.application import Journal, VerifiedHistory
from journal.binding import binding_of, chain_start, decode_rows, summarize
from journal.chain import format_head, parse_genesis, parse_head, verify_links
from journal.errors import (
    ChainIntegrityError,
    ConflictError,
    EventDecodeError,
    ImportFormatError,
    InvalidTransitionError,
    JournalError,
    TenantMismatchError,
)
from journal.fold import fold
from journal.ids import ExecutionId, parse_execution_id, parse_tenant_id
from journal.keys import Keyring
from journal.model import Execution
from journal.schema import document_matches
from journal.store import History, ListFilter, Row, Summary
from journal.validation import check_events, check_payload

FORMAT = "journal-export/2"
FORMAT_V1 = "journal-export/1"
FORMATS = (FORMAT, FORMAT_V1)


def _writer() -> str:
    from journal import __version__

    return f"execution-journal {__version__}"


class Header(msgspec.Struct, kw_only=True):
    """The first line of a block."""

    format: str
    execution_id: str
    tenant_id: str
    events: int
    head: str
    alg: str
    flow: str | None = None
    schema_version: str | None = None
    schema: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))
    parent_execution_id: str | None = None
    writer: str | None = None
    # journal-export/2:
    chain: str = "v1"
    genesis: str | None = None
    origin: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))
    state: str | None = None
    children: list[str] = msgspec.field(default_factory=list)
    key_id: str | None = None
    head_mac: str | None = None
    proofs: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))


class EventLine(msgspec.Struct):
    """One event line: sequence, link, and the stored bytes as a string."""

    seq: int
    hash: str
    payload: str


_header_decoder = msgspec.json.Decoder(Header)
_line_decoder = msgspec.json.Decoder(EventLine)
_line_encoder = msgspec.json.Encoder()


@dataclass
class Block:
    """One execution read from a file, verified: header, rows, events."""

    header: Header
    rows: list[Row]
    events: list[ev.AnyEvent] = field(default_factory=list)
    source: str = ""
    mac_checked: bool = False  # the head MAC was checked with a key we hold
    #: The fold of `events` (made while reading: a file that does not fold
    #: is refused before any store is opened).
    state: Execution | None = None

    @property
    def schema_document(self) -> bytes | None:
        raw = bytes(self.header.schema)
        return None if raw in (b"null", b"") else raw


def export_lines(
    journal_: Journal,
    execution_id: str,
    *,
    children: bool = True,
    proofs: Callable[[str], bytes] | None = None,
) -> Iterator[bytes]:
    """Yield the JSONL lines (with newline) for an execution and its children
    (with `proofs`, each header's ``proofs`` is ``proofs(execution_id)``)."""
    history = journal_.history(execution_id)
    summary = history.summary
    schema = None
    if summary.schema_version is not None:
        schema = journal_.get_schema(summary.schema_version)
    kids = list(reversed(journal_.list(ListFilter(parent_id=summary.execution_id))))
    header = Header(
        format=FORMAT,
        execution_id=summary.execution_id,
        tenant_id=summary.tenant_id,
        flow=summary.flow,
        schema_version=summary.schema_version,
        schema=msgspec.Raw(schema or b"null"),
        parent_execution_id=summary.parent_id,
        events=len(history.rows),
        head=format_head(*history.head),
        alg=summary.alg,
        writer=_writer(),
        state=summary.state,
        children=[kid.execution_id for kid in kids] if children else [],
        **_chain_fields(summary),
    )
    if proofs is not None:
        header.proofs = msgspec.Raw(proofs(summary.execution_id))
    yield _line_encoder.encode(header) + b"\n"
    for row in history.rows:
        line = EventLine(seq=row.seq, hash=row.hash.hex(), payload=row.payload.decode())
        yield _line_encoder.encode(line) + b"\n"
    if children:
        for child in kids:
            yield from export_lines(journal_, child.execution_id, proofs=proofs)


def histories_with_children(
    journal_: Journal, execution_id: str
) -> list[VerifiedHistory]:
    """An execution's verified history, then its children's, depth first."""
    history = journal_.history(execution_id)
    found = [history]
    for child in reversed(
        journal_.list(ListFilter(parent_id=history.summary.execution_id))
    ):
        found.extend(histories_with_children(journal_, child.execution_id))
    return found


def _chain_fields(summary: Summary) -> dict[str, Any]:
    origin = b"null"
    if summary.genesis is not None:
        found = parse_genesis(summary.genesis, summary.execution_id).origin
        origin = _line_encoder.encode(found)
    return {
        "chain": binding_of(summary),
        "genesis": None if summary.genesis is None else summary.genesis.decode(),
        "origin": msgspec.Raw(origin),
        "key_id": summary.key_id,
        "head_mac": None if summary.head_mac is None else summary.head_mac.hex(),
    }


def read_blocks(path: Path, keyring: Keyring) -> list[Block]:
    """Parse and verify every block of a file; errors name the file and line."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as e:
        raise ImportFormatError(f"{path}: cannot read: {e.strerror or e}") from e
    return parse_blocks(lines, keyring, str(path))


def parse_blocks(lines: Sequence[bytes], keyring: Keyring, source: str) -> list[Block]:
    blocks: list[Block] = []
    number = 0
    while number < len(lines):
        if not lines[number].strip():
            number += 1
            continue
        if blocks and _is_event_line(lines[number]):
            previous = blocks[-1].header
            raise ChainIntegrityError(
                f"{source}:{number + 1}: {previous.execution_id}: the header says "
                f"{previous.events} events but more event lines follow",
                seq=previous.events + 1,
            )
        header = _parse_header(lines[number], f"{source}:{number + 1}")
        first = number + 1
        present = len(lines) - first
        if present < header.events:
            raise ChainIntegrityError(
                f"{source}:{len(lines) + 1}: {header.execution_id}: the header "
                f"says {header.events} events but the file ends after {present} "
                "(truncated)",
                seq=present + 1,
            )
        rows = _parse_rows(lines, first, header, source)
        block = Block(header, rows, source=f"{source}:{number + 1}")
        _verify_block(block, keyring, source, first)
        blocks.append(block)
        number = first + header.events
    if not blocks:
        raise ImportFormatError(f"{source}: no export block in the file")
    return blocks


@dataclass
class ScannedBlock:
    """A block read for display: its rows as stored, and why it fails, if it does."""

    header: Header
    rows: list[Row]
    source: str
    integrity_error: ChainIntegrityError | None = None

    @property
    def schema_document(self) -> bytes | None:
        raw = bytes(self.header.schema)
        return None if raw in (b"null", b"") else raw


def scan_blocks(
    lines: Sequence[bytes], keyring: Keyring, source: str
) -> list[ScannedBlock]:
    """Read every block of a file like `parse_blocks`, but keep a block whose
    chain, count or head fails (with its error) instead of raising, so a
    report can show what is there and where it breaks. Malformed lines still
    raise `ImportFormatError`."""
    scanned: list[ScannedBlock] = []
    number = 0
    while number < len(lines):
        if not lines[number].strip():
            number += 1
            continue
        header = _parse_header(lines[number], f"{source}:{number + 1}")
        first = number + 1
        last = first
        while last < min(len(lines), first + header.events):
            if _is_header_line(lines[last]):
                break  # the next block: this one is short (reported below)
            last += 1
        rows = [_parse_row(lines[i], f"{source}:{i + 1}") for i in range(first, last)]
        block = ScannedBlock(header, rows, f"{source}:{number + 1}")
        try:
            if last - first < header.events:
                raise ChainIntegrityError(
                    f"{source}:{last + 1}: {header.execution_id}: the header says "
                    f"{header.events} events but only {last - first} follow",
                    seq=last - first + 1,
                )
            _verify_block(
                Block(header, rows, source=block.source), keyring, source, first
            )
        except ChainIntegrityError as e:
            block.integrity_error = e
        scanned.append(block)
        number = last
    if not scanned:
        raise ImportFormatError(f"{source}: no export block in the file")
    return scanned


def _parse_rows(
    lines: Sequence[bytes], first: int, header: Header, source: str
) -> list[Row]:
    rows = []
    for i in range(first, first + header.events):
        if _is_header_line(lines[i]):
            # The count is part of what the chain commits to (exit 6), and
            # the next block's header is not to blame.
            raise ChainIntegrityError(
                f"{source}:{i + 1}: {header.execution_id}: the header says "
                f"{header.events} events but the next block starts after "
                f"{i - first}",
                seq=i - first + 1,
            )
        rows.append(_parse_row(lines[i], f"{source}:{i + 1}"))
    return rows


def _is_header_line(line: bytes) -> bool:
    # An event line carries its payload as a JSON string, where quotes are
    # escaped: an unescaped "format" key only appears in a header.
    if b'"format"' not in line:
        return False
    try:
        return isinstance(_header_decoder.decode(line), Header)
    except (msgspec.DecodeError, RecursionError):
        return False


def _is_event_line(line: bytes) -> bool:
    try:
        return isinstance(_line_decoder.decode(line), EventLine)
    except (msgspec.DecodeError, RecursionError):
        return False


def _parse_header(line: bytes, where: str) -> Header:
    check_payload(line, f"{where}: ")
    try:
        header = _header_decoder.decode(line)
    except msgspec.DecodeError as e:
        raise ImportFormatError(f"{where}: not a journal-export header: {e}") from e
    if header.format not in FORMATS:
        raise ImportFormatError(f"{where}: unknown format {header.format!r}")
    try:
        parse_execution_id(header.execution_id)
        parse_tenant_id(header.tenant_id)
    except JournalError as e:
        raise ImportFormatError(f"{where}: {e}") from e
    if header.chain not in ("v1", "v2") or (header.chain == "v2") != bool(
        header.genesis
    ):
        raise ImportFormatError(
            f"{where}: chain {header.chain!r} with "
            f"{'a' if header.genesis else 'no'} genesis"
        )
    return header


def _parse_row(line: bytes, where: str) -> Row:
    if not line.strip():
        raise ImportFormatError(f"{where}: event line missing (file truncated?)")
    check_payload(line, f"{where}: ")
    try:
        parsed = _line_decoder.decode(line)
        return Row(parsed.seq, parsed.payload.encode(), bytes.fromhex(parsed.hash))
    except (msgspec.DecodeError, ValueError) as e:
        raise ImportFormatError(f"{where}: malformed event line: {e}") from e


def _check_header_genesis(header: Header, where: str) -> bytes | None:
    """The v2 genesis preimage, checked against the header's fields."""
    if header.genesis is None:
        return None
    preimage = header.genesis.encode()
    genesis = parse_genesis(preimage, header.execution_id)
    bound = {
        "execution_id": (header.execution_id, genesis.execution_id),
        "tenant_id": (header.tenant_id, genesis.tenant_id),
        "flow": (header.flow, genesis.flow),
        "parent_execution_id": (
            header.parent_execution_id,
            genesis.parent.execution_id if genesis.parent else None,
        ),
    }
    for name, (said, bound_value) in bound.items():
        if said != bound_value:
            raise ChainIntegrityError(
                f"{where}: {header.execution_id}: the header says {name} "
                f"{said!r} but the genesis binds {bound_value!r}",
                seq=1,
            )
    return preimage


def _check_mac(block: Block, keyring: Keyring, head: tuple[int, bytes]) -> None:
    """Check the head MAC when the keyring holds its key (else leave
    `mac_checked` False: outsiders verify the keyless chain only)."""
    header = block.header
    if header.key_id is None or header.head_mac is None:
        return
    key = keyring.find(header.key_id)
    if key is None:
        return
    record = Summary(
        execution_id=header.execution_id,
        tenant_id=header.tenant_id,
        flow=header.flow,
        state=header.state or "",
        head_seq=head[0],
        head_hash=head[1],
    ).head_record()
    if not hmac.compare_digest(
        key.head_mac(record).hex().encode(), header.head_mac.encode()
    ):
        raise ChainIntegrityError(
            f"{block.source}: {header.execution_id}: the head MAC (key "
            f"{header.key_id}) does not match: changed by someone without the key",
            seq=head[0],
        )
    block.mac_checked = True


def _verify_block(block: Block, keyring: Keyring, source: str, first_line: int) -> None:
    header = block.header
    execution_id = header.execution_id
    try:
        genesis = _check_header_genesis(header, block.source)
        first, digest = chain_start(
            execution_id, header.alg, genesis, block.rows, keyring
        )
        head = verify_links(
            first,
            execution_id,
            ((r.seq, r.payload, r.hash) for r in block.rows),
            digest,
        )
        expected = parse_head(header.head)
    except ChainIntegrityError as e:
        line = first_line + (e.seq or 1)
        raise ChainIntegrityError(f"{source}:{line}: {e}", seq=e.seq) from e
    except ValueError as e:
        raise ImportFormatError(f"{block.source}: bad head: {e}") from e
    if head != expected or header.events != len(block.rows):
        raise ChainIntegrityError(
            f"{block.source}: {execution_id}: header says {header.head} "
            f"({header.events} events) but the events end at {format_head(*head)}",
            seq=head[0],
        )
    _decode_checked(block, source, first_line)
    _check_state(block)  # before the MAC: it names what differs
    _check_mac(block, keyring, head)
    created = block.events[0] if block.events else None
    if (
        not isinstance(created, ev.ExecutionCreated)
        or created.tenant_id != header.tenant_id
    ):
        raise ChainIntegrityError(
            f"{block.source}: {execution_id}: the first event does not create the "
            f"execution for {header.tenant_id}",
            seq=1,
        )
    if header.schema_version != created.schema_version:
        raise ChainIntegrityError(
            f"{block.source}: {execution_id}: the header says schema "
            f"{header.schema_version} but the execution recorded "
            f"{created.schema_version}",
            seq=1,
        )
    document = block.schema_document
    if document is not None and not document_matches(header.schema_version, document):
        raise ChainIntegrityError(
            f"{block.source}: {execution_id}: the schema document in the header "
            f"does not hash to {header.schema_version}",
            seq=1,
        )


def _decode_checked(block: Block, source: str, first_line: int) -> None:
    """Decode the rows, refusing values the store cannot hold (file:line),
    then fold them: a history the state machine refuses is an integrity
    failure here (exit 6), as `journal replay --file` reports it."""
    execution_id = block.header.execution_id
    for i, row in enumerate(block.rows):
        check_payload(row.payload, f"{source}:{first_line + i + 1}: ")
    try:
        block.events = decode_rows(execution_id, block.rows)
    except EventDecodeError as e:
        raise ImportFormatError(f"{source}: {e}") from e
    payloads = [row.payload for row in block.rows]
    check_events(block.events, payloads, lambda i: f"{source}:{first_line + i + 1}")
    if not block.events or not isinstance(block.events[0], ev.ExecutionCreated):
        return  # the caller names a missing ExecutionCreated precisely
    try:
        block.state = fold(ExecutionId(execution_id), block.events)
    except InvalidTransitionError as e:
        raise ChainIntegrityError(
            f"{block.source}: {execution_id}: the history breaks the state "
            f"machine: {e}",
            seq=len(block.rows),
        ) from e


def _check_state(block: Block) -> None:
    header = block.header
    first = block.events[0] if block.events else None
    if header.state is None or not isinstance(first, ev.ExecutionCreated):
        return
    folded = block.state or fold(ExecutionId(header.execution_id), block.events)
    state = folded.state_label
    if state != header.state:
        raise ChainIntegrityError(
            f"{block.source}: {header.execution_id}: the header says state "
            f"{header.state!r} but the events fold to {state!r}",
            seq=len(block.rows),
        )


def to_history(block: Block) -> History:
    """The store's view of a verified block (its index row from the fold)."""
    header = block.header
    state = block.state or fold(ExecutionId(header.execution_id), block.events)
    last = block.rows[-1]
    summary = replace(
        summarize(state),
        alg=header.alg,
        head_seq=last.seq,
        head_hash=last.hash,
        genesis=None if header.genesis is None else header.genesis.encode(),
        key_id=header.key_id,
    )
    return History(summary, block.rows)


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote and what it found already present."""

    written: list[str]
    present: list[str]
    files: int


def read_for_import(
    paths: Iterable[Path], tenant_id: str, keyring: Keyring
) -> tuple[list[Block], int]:
    """Read, verify and cross-check every file, before any store is touched.

    Every chain, count and head is verified; every block must belong to
    `tenant_id`; two blocks with one id must hold the same history (a copy
    is kept once). Returns the blocks and the number of files.
    """
    blocks: dict[str, Block] = {}
    count = 0
    for path in paths:
        count += 1
        for block in read_blocks(path, keyring):
            header = block.header
            if header.tenant_id != tenant_id:
                raise TenantMismatchError(
                    f"{block.source}: {header.execution_id} belongs to "
                    f"{header.tenant_id}, but the tenant in force is {tenant_id}"
                )
            seen = blocks.get(header.execution_id)
            if seen is not None and seen.rows != block.rows:
                raise ConflictError(
                    f"{block.source}: {header.execution_id} has a different "
                    f"history than in {seen.source}"
                )
            blocks.setdefault(header.execution_id, block)
    check_children(blocks)
    return list(blocks.values()), count


def check_children(blocks: dict[str, Block]) -> None:
    """Every child a parent's header lists is in the files read."""
    for block in blocks.values():
        missing = [kid for kid in block.header.children if kid not in blocks]
        if missing:
            raise ImportFormatError(
                f"{block.source}: {block.header.execution_id} records "
                f"{len(missing)} child execution(s) the file does not contain: "
                f"{', '.join(missing)}"
            )


def import_blocks(journal_: Journal, blocks: list[Block], files: int) -> ImportReport:
    """Write verified blocks in one transaction (see `import_files`)."""
    histories = [to_history(block) for block in blocks]
    # Each document was checked against its hash when its block was read;
    # they are written in the histories' transaction (all or nothing).
    schemas = schema_lookup_for(blocks)
    written = journal_.store.import_histories(histories, schemas)
    ids = [h.summary.execution_id for h in histories]
    return ImportReport(written, [i for i in ids if i not in written], files)


def import_files(journal_: Journal, paths: Iterable[Path]) -> ImportReport:
    """Read and verify every file, then write all of them in one transaction.

    Idempotent for histories already present; a different history under the
    same id raises `ConflictError`; nothing is written on any error.
    """
    blocks, files = read_for_import(paths, journal_.tenant_id, journal_.store.keyring)
    return import_blocks(journal_, blocks, files)


def schema_lookup_for(blocks: Iterable[Block | ScannedBlock]) -> dict[str, bytes]:
    """Schema documents carried by the headers, by hash."""
    return {
        b.header.schema_version: doc
        for b in blocks
        if b.header.schema_version and (doc := b.schema_document) is not None
    }
