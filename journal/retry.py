"""Bounded retries with backoff, and the one append-retry path.

Only what is safe to repeat is ever repeated:

* `retry_call` repeats an operation that failed with a `TransientStoreError`
  (the connection failed before anything was committed) or, for reads and
  other idempotent operations, a `CommitUnknownError`. Reads, snapshot and
  schema upserts, the log's sequencer rounds (`journal.sql_log`) and opening
  a ``LISTEN`` connection (`PostgresStore.dedicated_connection`) go through
  it.
* `append_with_retry` is the one path for appends. An append that failed
  before COMMIT is repeated; an append whose COMMIT outcome is unknown (the
  connection was lost while committing) is first resolved against the
  stored rows after the expected head: found there, it is reported as
  committed and never written again; absent, it is repeated; replaced by
  another writer's rows, it is a `ConflictError` (never lost silently,
  never written twice). A conflict is never retried here: the caller
  decides whether its events still apply on the new head (see
  `journal.commands.ExecutionHandle.record`: it catches up from its head,
  and a lease holder retries past operators' events).

Every retry waits a backoff: ``base * 2**(n-1)`` capped at ``max``, with
jitter (half to all of it) so that writers cut off together do not come
back together. `RetryPolicy.attempts` bounds the tries; the last error is
then raised, naming how many attempts were made.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import (
    TYPE_CHECKING,
    Concatenate,
    NoReturn,
    ParamSpec,
    Protocol,
    TypeVar,
)

from journal.errors import (
    CommitUnknownError,
    ConflictError,
    StoreError,
    TransientStoreError,
)

if TYPE_CHECKING:
    from journal.leases import Lease
    from journal.store import Store, Summary

log = logging.getLogger("journal.retry")
T = TypeVar("T")
P = ParamSpec("P")

#: Environment variables read by `RetryPolicy.from_settings` (the PostgreSQL
#: URL's parameters of the same name without the prefix, lower case, win).
RETRY_SETTINGS = {
    "retry_attempts": "JOURNAL_RETRY_ATTEMPTS",
    "retry_delay_ms": "JOURNAL_RETRY_DELAY_MS",
    "retry_max_delay_ms": "JOURNAL_RETRY_MAX_DELAY_MS",
}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failed store operation is repeated.

    Attributes:
        attempts: Tries in all (1 means never repeat).
        base_delay_s: The wait before the first repeat.
        max_delay_s: The longest wait between two tries.
    """

    attempts: int = 5
    base_delay_s: float = 0.05
    max_delay_s: float = 2.0

    def delay(self, retry: int) -> float:
        """The wait before repeat number `retry` (from 1), with jitter."""
        # The exponent is capped: a daemon's restarts (`seal --follow`) count
        # on through a long outage, and 2.0 ** 1024 overflows.
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** min(retry - 1, 64))
        return ceiling * (0.5 + random.random() / 2)

    @classmethod
    def from_settings(
        cls, given: Mapping[str, str], environ: Mapping[str, str] = os.environ
    ) -> RetryPolicy:
        """A policy from URL parameters (`given`), else the environment."""

        def number(name: str, default: float) -> float:
            text = given.get(name, environ.get(RETRY_SETTINGS[name]))
            if text is None:
                return default
            try:
                value = float(text)
            except ValueError:
                value = -1.0
            if value < 0:
                raise StoreError(
                    f"bad journal setting {name}={text!r} "
                    f"(or {RETRY_SETTINGS[name]}): expected a number >= 0"
                )
            return value

        return cls(
            attempts=max(1, int(number("retry_attempts", 5))),
            base_delay_s=number("retry_delay_ms", 50) / 1000,
            max_delay_s=number("retry_max_delay_ms", 2000) / 1000,
        )


NO_RETRY = RetryPolicy(attempts=1)


def retry_call(
    operation: Callable[[], T],
    policy: RetryPolicy,
    *,
    unknown_is_safe: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `operation`, repeating it after transient store failures.

    Args:
        operation: Something safe to repeat (a read, an idempotent write,
            opening a connection).
        policy: How many tries and how long to wait between them.
        unknown_is_safe: Also repeat after a `CommitUnknownError` (true for
            reads and idempotent writes; false for anything else).
        sleep: The wait (tests may pass their own).

    Raises:
        TransientStoreError: (or `CommitUnknownError`) when every try
            failed; the message says how many were made.
    """
    retryable: tuple[type[StoreError], ...] = (
        (TransientStoreError, CommitUnknownError)
        if unknown_is_safe
        else (TransientStoreError,)
    )
    for attempt in range(1, policy.attempts + 1):
        try:
            return operation()
        except retryable as error:
            if attempt == policy.attempts:
                _give_up(error, attempt)
            log.warning("store operation failed (%s); retry %d", error, attempt)
            sleep(policy.delay(attempt))
    raise AssertionError("unreachable: policy.attempts >= 1")


class _HasPolicy(Protocol):
    retry_policy: RetryPolicy


S = TypeVar("S", bound=_HasPolicy)


def retried(
    method: Callable[Concatenate[S, P], T],
) -> Callable[Concatenate[S, P], T]:
    """Decorate a store method that is safe to repeat (see `retry_call`)."""

    @functools.wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return retry_call(lambda: method(self, *args, **kwargs), self.retry_policy)

    return wrapper


def append_with_retry(
    store: Store,
    summary: Summary,
    expected_seq: int,
    payloads: Sequence[bytes],
    *,
    lease: Lease | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Summary:
    """Append `payloads` after `expected_seq`: stored exactly once, or raised.

    The one append-retry path (see the module docstring): a failure before
    COMMIT is repeated; an unknown COMMIT outcome is resolved against the
    stored rows first (`resolve_append`); conflicts, busy stores and bad
    data are raised at once.

    Args:
        store: Where to append.
        summary: The execution's index row after these events (as for
            `Store.append`).
        expected_seq: The head the events follow.
        payloads: The encoded events.
        lease: Passed to every `Store.append` try (fencing is checked by
            each; a lost lease is a `LeaseLostError`, never retried).
        policy: Retries (default: the store's `retry_policy`).
        sleep: The wait between tries.

    Returns:
        The stored index row, with the head of these events.

    Raises:
        ConflictError: Another writer's events follow `expected_seq`.
        CommitUnknownError: The outcome could not be resolved (the store
            stayed unreachable through every try); the events may be stored.
        TransientStoreError: Every try failed before COMMIT: nothing stored.
    """
    policy = policy or store.retry_policy
    for attempt in range(1, policy.attempts + 1):
        try:
            return store.append(summary, expected_seq, payloads, lease=lease)
        except TransientStoreError as error:
            failure: StoreError = error
        except CommitUnknownError as error:
            resolved = _resolve_or_raise(store, summary, expected_seq, payloads, error)
            if resolved is not None:
                return resolved
            # Checked: nothing was stored, so this try failed before COMMIT.
            failure = TransientStoreError(f"{error} (checked: nothing was stored)")
        if attempt == policy.attempts:
            _give_up(failure, attempt)
        log.warning("append to %s failed (%s); retry", summary.execution_id, failure)
        sleep(policy.delay(attempt))
    raise AssertionError("unreachable: policy.attempts >= 1")


def _resolve_or_raise(
    store: Store,
    summary: Summary,
    expected_seq: int,
    payloads: Sequence[bytes],
    error: CommitUnknownError,
) -> Summary | None:
    try:
        return retry_call(
            lambda: resolve_append(store, summary, expected_seq, payloads),
            store.retry_policy,
        )
    except (TransientStoreError, CommitUnknownError) as unreachable:
        raise CommitUnknownError(
            f"{summary.execution_id}: the append after seq {expected_seq} may or "
            f"may not be stored ({error}); the store could not be reached to "
            f"check: {unreachable}"
        ) from unreachable


def resolve_append(
    store: Store, summary: Summary, expected_seq: int, payloads: Sequence[bytes]
) -> Summary | None:
    """Was an append whose COMMIT outcome is unknown stored?

    Reads the rows after `expected_seq`: ours (byte for byte) means it was
    committed, and the stored index row is returned with the head of these
    events (later appends by others may have moved it on); none means it was not (None:
    safe to repeat); others mean a concurrent writer won (`ConflictError`).
    """
    execution_id, tenant_id = summary.execution_id, summary.tenant_id
    upto = expected_seq + len(payloads)
    rows = store.load_rows(execution_id, tenant_id, expected_seq, upto)
    if not rows:
        return None
    if [row.payload for row in rows] == list(payloads):
        log.info("%s: append after seq %d was committed", execution_id, expected_seq)
        stored = store.get_summary(execution_id, tenant_id) or summary
        return replace(stored, head_seq=upto, head_hash=rows[-1].hash)
    raise ConflictError(
        f"{execution_id}: append expected head seq {expected_seq} but another "
        "writer's events follow it: a concurrent writer appended first"
    )


def _give_up(error: StoreError, attempts: int) -> NoReturn:
    if attempts == 1:
        raise error
    raise type(error)(f"{error} (gave up after {attempts} attempts)") from error
