"""The JSONL export format (``journal-export/1``): write, read, verify, import.

A block is one header line, then one line per event in sequence order::

    {"format": "journal-export/1", "execution_id": ..., "tenant_id": ...,
     "flow": ..., "schema_version": ..., "schema": {...} | null,
     "events": N, "head": "N:HEX", "alg": "sha256", "writer": ...}
    {"seq": 1, "hash": "HEX", "payload": "<stored JSON bytes, verbatim>"}

Children follow their parent as further blocks. The payload strings are the
stored bytes, so anyone can verify the chain without re-encoding anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import msgspec

from journal import events as ev
from journal.application import Journal, decode_rows, summarize
from journal.chain import Hasher, format_head, parse_head, verify_links
from journal.errors import (
    ChainIntegrityError,
    ConflictError,
    EventDecodeError,
    ImportFormatError,
    JournalError,
    TenantMismatchError,
)
from journal.fold import fold
from journal.ids import ExecutionId, parse_execution_id, parse_tenant_id
from journal.schema import document_matches
from journal.store import History, ListFilter, Row

FORMAT = "journal-export/1"


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

    @property
    def schema_document(self) -> bytes | None:
        raw = bytes(self.header.schema)
        return None if raw in (b"null", b"") else raw


def export_lines(
    journal_: Journal, execution_id: str, *, children: bool = True
) -> Iterator[bytes]:
    """Yield the JSONL lines (with newline) for an execution and its children."""
    history = journal_.history(execution_id)
    summary = history.summary
    schema = None
    if summary.schema_version is not None:
        schema = journal_.get_schema(summary.schema_version)
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
    )
    yield _line_encoder.encode(header) + b"\n"
    for row in history.rows:
        line = EventLine(seq=row.seq, hash=row.hash.hex(), payload=row.payload.decode())
        yield _line_encoder.encode(line) + b"\n"
    if children:
        for child in reversed(
            journal_.list(ListFilter(parent_id=summary.execution_id))
        ):
            yield from export_lines(journal_, child.execution_id)


def read_blocks(path: Path, hasher: Hasher) -> list[Block]:
    """Parse and verify every block of a file; errors name the file and line."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as e:
        raise ImportFormatError(f"{path}: cannot read: {e.strerror or e}") from e
    return parse_blocks(lines, hasher, str(path))


def parse_blocks(lines: Sequence[bytes], hasher: Hasher, source: str) -> list[Block]:
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
        _verify_block(block, hasher, source, first)
        blocks.append(block)
        number = first + header.events
    if not blocks:
        raise ImportFormatError(f"{source}: no export block in the file")
    return blocks


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
    except msgspec.DecodeError:
        return False


def _is_event_line(line: bytes) -> bool:
    try:
        return isinstance(_line_decoder.decode(line), EventLine)
    except msgspec.DecodeError:
        return False


def _parse_header(line: bytes, where: str) -> Header:
    try:
        header = _header_decoder.decode(line)
    except msgspec.DecodeError as e:
        raise ImportFormatError(f"{where}: not a journal-export header: {e}") from e
    if header.format != FORMAT:
        raise ImportFormatError(f"{where}: unknown format {header.format!r}")
    try:
        parse_execution_id(header.execution_id)
        parse_tenant_id(header.tenant_id)
    except JournalError as e:
        raise ImportFormatError(f"{where}: {e}") from e
    return header


def _parse_row(line: bytes, where: str) -> Row:
    if not line.strip():
        raise ImportFormatError(f"{where}: event line missing (file truncated?)")
    try:
        parsed = _line_decoder.decode(line)
        return Row(parsed.seq, parsed.payload.encode(), bytes.fromhex(parsed.hash))
    except (msgspec.DecodeError, ValueError) as e:
        raise ImportFormatError(f"{where}: malformed event line: {e}") from e


def _verify_block(block: Block, hasher: Hasher, source: str, first_line: int) -> None:
    header = block.header
    execution_id = header.execution_id
    try:
        hasher.check_alg(execution_id, header.alg)
        head = verify_links(
            hasher, execution_id, ((r.seq, r.payload, r.hash) for r in block.rows)
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
    try:
        block.events = decode_rows(execution_id, block.rows)
    except EventDecodeError as e:
        raise ImportFormatError(f"{source}: {e}") from e
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


def to_history(block: Block) -> History:
    """The store's view of a verified block (its index row from the fold)."""
    state = fold(ExecutionId(block.header.execution_id), block.events)
    last = block.rows[-1]
    summary = replace(
        summarize(state), alg=block.header.alg, head_seq=last.seq, head_hash=last.hash
    )
    return History(summary, block.rows)


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote and what it found already present."""

    written: list[str]
    present: list[str]
    files: int


def read_for_import(
    paths: Iterable[Path], tenant_id: str, hasher: Hasher
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
        for block in read_blocks(path, hasher):
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
    return list(blocks.values()), count


def import_blocks(journal_: Journal, blocks: list[Block], files: int) -> ImportReport:
    """Write verified blocks in one transaction (see `import_files`)."""
    histories = [to_history(block) for block in blocks]
    written = journal_.store.import_histories(histories)
    # Each document was checked against its hash when its block was read.
    for schema_hash, document in schema_lookup_for(blocks).items():
        journal_.store.put_schema(schema_hash, document)
    ids = [h.summary.execution_id for h in histories]
    return ImportReport(written, [i for i in ids if i not in written], files)


def import_files(journal_: Journal, paths: Iterable[Path]) -> ImportReport:
    """Read and verify every file, then write all of them in one transaction.

    Idempotent for histories already present; a different history under the
    same id raises `ConflictError`; nothing is written on any error.
    """
    blocks, files = read_for_import(paths, journal_.tenant_id, journal_.store.hasher)
    return import_blocks(journal_, blocks, files)


def schema_lookup_for(blocks: Iterable[Block]) -> dict[str, bytes]:
    """Schema documents carried by the headers, by hash."""
    return {
        b.header.schema_version: doc
        for b in blocks
        if b.header.schema_version and (doc := b.schema_document) is not None
    }
