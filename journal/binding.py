"""What binds an index row to its chain: genesis, head, MAC and fold.

`verify_history` is the one full check every reader of evidence runs
(``verify``, ``show``, ``replay``, ``diff``, ``export``, ``list --verify``):

1. the chain's links, from h_0 (v2: SHA-256 of the stored genesis preimage;
   v1: the first-round formula, keyed for ``hmac-sha256``);
2. the genesis against the index row (tenant, execution id, flow, parent);
3. the head: the index row's head is exactly the chain's last link (summary
   and rows are read in one snapshot, so a longer or shorter chain is
   tampering, never a concurrent append);
4. the head MAC with the key whose id the row records (a missing key is a
   `SigningKeyError`, never reported as tampering);
5. the fold: state, counts, output and error as the events say.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any

import msgspec

from journal import codec
from journal import events as ev
from journal.chain import (
    HMAC_SHA256,
    SHA256,
    Digest,
    check_head,
    genesis_link,
    parse_genesis,
    sha256,
    v1_genesis_link,
    verify_links,
)
from journal.errors import ChainIntegrityError, EventDecodeError, SigningKeyError
from journal.fold import fold
from journal.ids import ExecutionId
from journal.keys import ALLOW_UNSIGNED_ENV, Keyring
from journal.model import Execution, is_null
from journal.store import GENERIC_STATE, Row, Summary

#: Index columns a fold determines, compared by `check_fold`.
FOLDED_COLUMNS = (
    "tenant_id",
    "state",
    "flow",
    "parent_id",
    "schema_version",
    "step_count",
    "failed_steps",
    "output",
    "error",
)


def summarize(execution: Execution) -> Summary:
    """The index row for a folded execution (the store fills in the head)."""
    return Summary(
        execution_id=execution.id,
        tenant_id=execution.tenant_id,
        state=execution.state_label,
        flow=execution.flow,
        parent_id=execution.parent.parent_execution_id if execution.parent else None,
        schema_version=execution.schema_version,
        created_at=execution.created_at,
        started_at=execution.started_at,
        ended_at=execution.ended_at,
        updated_at=execution.updated_at,
        step_count=len(execution.steps),
        failed_steps=execution.failed_step_count,
        output=None if is_null(execution.output) else bytes(execution.output),
        error=None if execution.error is None else msgspec.json.encode(execution.error),
    )


def binding_of(summary: Summary) -> str:
    """``v2`` (genesis binds tenant, id, flow, parent, origin), or ``v1``
    (the first-round chain: its genesis binds only the execution id)."""
    return "v2" if summary.genesis is not None else "v1"


def decode_rows(execution_id: str, rows: Sequence[Row]) -> list[ev.AnyEvent]:
    """Decode payloads; a bad one names the execution and sequence."""
    decoder = codec.decode
    try:
        return [decoder(row.payload) for row in rows]
    except EventDecodeError:
        for row in rows:
            decoder(row.payload, where=f"{execution_id} seq {row.seq}: ")
        raise


def chain_start(
    execution_id: str,
    alg: str,
    genesis: bytes | None,
    rows: Sequence[Row],
    keyring: Keyring,
) -> tuple[bytes, Digest]:
    """h_0 and the link digest of a chain (v1 ``hmac-sha256``: the key in
    the keyring that verifies its first link)."""
    if genesis is not None:
        return genesis_link(genesis), sha256
    if alg != HMAC_SHA256:
        return v1_genesis_link(execution_id), sha256
    if not keyring.keys:
        raise SigningKeyError(
            f"{execution_id}: a v1 chain signed with hmac-sha256 and no signing "
            "key is set (JOURNAL_SIGNING_KEY / JOURNAL_SIGNING_KEYS)"
        )
    for key in keyring.keys:
        digest = key.v1_digest()
        first = v1_genesis_link(execution_id, digest)
        if rows and hmac.compare_digest(
            digest(first + (1).to_bytes(8, "big") + rows[0].payload), rows[0].hash
        ):
            return first, digest
    raise SigningKeyError(
        f"{execution_id}: no key in the keyring verifies this v1 hmac-sha256 "
        "chain's first link (a key not in the keyring, or an altered first "
        "event: v1 chains cannot tell these apart)"
    )


def check_genesis(summary: Summary) -> None:
    """The v2 genesis names what the index row says."""
    assert summary.genesis is not None
    genesis = parse_genesis(summary.genesis, summary.execution_id)
    bound = {
        "execution_id": genesis.execution_id,
        "tenant_id": genesis.tenant_id,
        "flow": genesis.flow,
        "parent_id": genesis.parent.execution_id if genesis.parent else None,
    }
    for column, value in bound.items():
        _same(summary, column, getattr(summary, column), value, "genesis", seq=1)


def check_index_head(summary: Summary, head: tuple[int, bytes]) -> None:
    """The index head is exactly the chain's last link."""
    seq, link = head
    if seq != summary.head_seq:
        first_bad = min(seq, summary.head_seq) + 1
        raise ChainIntegrityError(
            f"{summary.execution_id}: index column head_seq is {summary.head_seq} "
            f"but the chain ends at seq {seq}",
            seq=first_bad,
        )
    if not hmac.compare_digest(link, summary.head_hash):
        raise ChainIntegrityError(
            f"{summary.execution_id}: index column head_hash is "
            f"{summary.head_hash.hex()[:16]}… but the chain's last link is "
            f"{link.hex()[:16]}…",
            seq=seq,
        )


def check_mac(summary: Summary, keyring: Keyring) -> None:
    """The head MAC, with the key whose id the index row records."""
    execution_id = summary.execution_id
    if summary.genesis is None and summary.alg == HMAC_SHA256:
        return  # a v1 chain whose links are keyed (checked by chain_start)
    if summary.key_id is None or summary.head_mac is None:
        if summary.key_id is not None or summary.head_mac is not None:
            raise ChainIntegrityError(
                f"{execution_id}: index row has a key id without a MAC (or a MAC "
                "without a key id)",
                seq=summary.head_seq,
            )
        if keyring.keys and not keyring.allow_unsigned:
            raise ChainIntegrityError(
                f"{execution_id}: the chain is unsigned but a signing key is set: "
                "anyone with write access could have recomputed it (accept "
                f"unsigned chains with --allow-unsigned or {ALLOW_UNSIGNED_ENV}=1)",
                seq=summary.head_seq,
            )
        return
    key = keyring.find(summary.key_id)
    if key is None:
        raise SigningKeyError(
            f"{execution_id}: signed with key {summary.key_id}, which is not in "
            "the keyring (JOURNAL_SIGNING_KEY / JOURNAL_SIGNING_KEYS)"
        )
    if not hmac.compare_digest(key.head_mac(summary.head_record()), summary.head_mac):
        raise ChainIntegrityError(
            f"{execution_id}: the head MAC (key {summary.key_id}) does not match "
            "the index row and chain: changed by someone without the key",
            seq=summary.head_seq,
        )


def check_fold(summary: Summary, events: Sequence[ev.AnyEvent]) -> Execution | None:
    """The folded state says what the index row says; returns the state
    (None for an execution written through eventsourcing's interface)."""
    first = events[0] if events else None
    if not isinstance(first, ev.ExecutionCreated):
        _same(summary, "state", summary.state, GENERIC_STATE, "chain", seq=1)
        return None
    state = fold(ExecutionId(summary.execution_id), events)
    folded = summarize(state)
    for column in FOLDED_COLUMNS:
        found = getattr(folded, column)
        _same(summary, column, getattr(summary, column), found, "fold", seq=None)
    return state


def _same(
    summary: Summary, column: str, index: Any, chain: Any, by: str, seq: int | None
) -> None:
    if index == chain:
        return
    raise ChainIntegrityError(
        f"{summary.execution_id}: index column {column} is {_shown(index)} but "
        f"the {by} says {_shown(chain)}",
        seq=seq if seq is not None else summary.head_seq,
    )


def _shown(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "…"


def cheap_status(
    summary: Summary, last: tuple[int, bytes] | None, keyring: Keyring
) -> str:
    """What ``list`` shows without walking the chain: ``ok`` (the index head
    is the stored last link, and the MAC holds where we have its key),
    ``broken``, or ``unchecked`` (signed with a key not in the keyring)."""
    if last is None or last[0] != summary.head_seq:
        return "broken"
    if not hmac.compare_digest(last[1], summary.head_hash):
        return "broken"
    if summary.key_id is None or summary.head_mac is None:
        return "ok"
    key = keyring.find(summary.key_id)
    if key is None:
        return "unchecked"
    mac = key.head_mac(summary.head_record())
    return "ok" if hmac.compare_digest(mac, summary.head_mac) else "broken"


def verify_history(
    summary: Summary,
    rows: Sequence[Row],
    keyring: Keyring,
    *,
    expect_head: tuple[int, bytes] | None = None,
) -> tuple[tuple[int, bytes], list[ev.AnyEvent], Execution | None]:
    """The full check (see the module docstring); returns the head, the
    decoded events and the folded state (None for an execution written
    through eventsourcing's interface)."""
    if summary.genesis is not None:
        check_genesis(summary)
        _same(summary, "alg", summary.alg, SHA256, "v2 chain", seq=1)
    first, digest = chain_start(
        summary.execution_id, summary.alg, summary.genesis, rows, keyring
    )
    head = verify_links(first, summary.execution_id, rows, digest)
    if not rows:
        raise ChainIntegrityError(f"{summary.execution_id}: no events stored", seq=1)
    check_index_head(summary, head)
    if expect_head is not None:
        check_head(summary.execution_id, head, expect_head)
    events = decode_rows(summary.execution_id, rows)
    state = check_fold(summary, events)  # before the MAC: it names the column
    check_mac(summary, keyring)
    return head, events, state
