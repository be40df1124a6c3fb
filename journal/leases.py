"""Leases: which process may append to an execution, with a fencing token.

A lease is operational data, kept in its own table (``journal_leases``)
*outside* the hash chain: it says who runs an execution now, not what
happened, so it is never exported, verified or replayed. Each acquisition
bumps the execution's fencing token (tokens only grow: a released lease
keeps its row and token). An append made with a lease is refused with
`LeaseLostError` unless that token is still the execution's current one, so
a process that was taken over (it stalled, a recoverer decided it was dead)
can never write again, even if it wakes up mid-step.

A `Heartbeat` thread renews the lease while the process runs, during long
steps too; a recoverer takes over only a lease whose last heartbeat is older
than its threshold. Times are the appending hosts' wall clocks in
milliseconds: hosts must agree to well within that threshold.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, replace

from journal.errors import JournalError, LeaseLostError

#: How often a running process renews its lease (seconds); its lease's
#: time-to-live is three times that. ``JOURNAL_HEARTBEAT_S`` overrides it.
HEARTBEAT_EVERY_S = 5.0
#: A lease not renewed for this long counts as dead (seconds).
STALE_AFTER_S = 30.0


def now_ms() -> int:
    """Wall-clock milliseconds (what heartbeats store)."""
    return int(time.time() * 1000)


def new_owner() -> str:
    """A name for one holder: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease as stored: owner (None once released), token, last heartbeat,
    and the holder's own time-to-live (it renews well within it)."""

    execution_id: str
    tenant_id: str
    owner: str | None
    token: int
    heartbeat_ms: int
    ttl_ms: int = 0

    def is_stale(self, stale_after_ms: int, at_ms: int) -> bool:
        """True if released, or not renewed for `stale_after_ms` nor within
        the holder's time-to-live (whichever is longer)."""
        if self.owner is None:
            return True
        return at_ms - self.heartbeat_ms >= max(stale_after_ms, self.ttl_ms)


def plan_acquire(
    found: Lease | None,
    execution_id: str,
    tenant_id: str,
    owner: str,
    stale_after_ms: int,
    at_ms: int,
    ttl_ms: int = 0,
) -> Lease | None:
    """The lease row after an acquisition, or None if a live holder has it.

    The one decision every backend makes inside its transaction (with the
    row locked): a fresh row starts at token 1; a released or stale one is
    taken over with the next token; a live one is left alone. A lease of
    another tenant is never taken (the caller reports it as not found).
    """
    if found is None:
        return Lease(execution_id, tenant_id, owner, 1, at_ms, ttl_ms)
    if found.tenant_id != tenant_id or not found.is_stale(stale_after_ms, at_ms):
        return None
    return replace(
        found, owner=owner, token=found.token + 1, heartbeat_ms=at_ms, ttl_ms=ttl_ms
    )


def check_fence(held: Lease, current: Lease | None) -> None:
    """Refuse an append made under `held` when it is no longer current."""
    if current is None or (current.token, current.owner) != (held.token, held.owner):
        now_held = (
            "released"
            if current is None or current.owner is None
            else f"taken over (token {current.token})"
        )
        raise LeaseLostError(
            f"{held.execution_id}: lease lost: token {held.token} is no longer "
            f"current, the lease was {now_held}"
        )


class LeaseStore:
    """What a store provides for leases (mixed into every backend)."""

    def acquire_lease(
        self,
        execution_id: str,
        tenant_id: str,
        owner: str,
        stale_after_ms: int,
        ttl_ms: int = 0,
    ) -> Lease | None:
        """Take the lease if free, released or stale; None if a live holder
        has it (or it belongs to another tenant). `ttl_ms`: the new holder's
        time-to-live (it renews within it)."""
        raise NotImplementedError

    def renew_lease(self, lease: Lease) -> bool:
        """Record a heartbeat; False if `lease` is no longer current."""
        raise NotImplementedError

    def release_lease(self, lease: Lease) -> None:
        """Give the lease up (keeps its token); no-op if no longer current."""
        raise NotImplementedError

    def get_lease(self, execution_id: str, tenant_id: str) -> Lease | None:
        """The stored lease row of an execution of this tenant, if any."""
        raise NotImplementedError


class MemoryLeases(LeaseStore):
    """Leases in this process's memory (for `journal.store.MemoryStore`)."""

    _lock: threading.RLock

    def __init__(self) -> None:
        self._leases: dict[str, Lease] = {}

    def acquire_lease(
        self,
        execution_id: str,
        tenant_id: str,
        owner: str,
        stale_after_ms: int,
        ttl_ms: int = 0,
    ) -> Lease | None:
        with self._lock:
            found = self._leases.get(execution_id)
            new = plan_acquire(
                found, execution_id, tenant_id, owner, stale_after_ms, now_ms(), ttl_ms
            )
            if new is not None:
                self._leases[execution_id] = new
            return new

    def renew_lease(self, lease: Lease) -> bool:
        with self._lock:
            found = self._leases.get(lease.execution_id)
            if found is None or (found.token, found.owner) != (
                lease.token,
                lease.owner,
            ):
                return False
            self._leases[lease.execution_id] = replace(found, heartbeat_ms=now_ms())
            return True

    def release_lease(self, lease: Lease) -> None:
        with self._lock:
            found = self._leases.get(lease.execution_id)
            if found is not None and found.token == lease.token:
                self._leases[lease.execution_id] = replace(found, owner=None)

    def get_lease(self, execution_id: str, tenant_id: str) -> Lease | None:
        with self._lock:
            found = self._leases.get(execution_id)
            return found if found and found.tenant_id == tenant_id else None

    def _fence(self, lease: Lease | None) -> None:
        if lease is not None:
            check_fence(lease, self._leases.get(lease.execution_id))


class Heartbeat:
    """Renews a lease from a daemon thread until stopped.

    Keeps going while the run's own thread is busy in a long step. If a
    renewal finds the lease taken over, `lost` is set and renewing stops;
    the run's next append is refused by the store's fence anyway.
    """

    def __init__(
        self, store: LeaseStore, lease: Lease, every_s: float = HEARTBEAT_EVERY_S
    ) -> None:
        self.store = store
        self.lease = lease
        self.every_s = every_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"lease {lease.execution_id}", daemon=True
        )

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                renewed = self.store.renew_lease(self.lease)
            except Exception:  # a flaky store: try again at the next beat
                continue
            if not renewed:
                self.lost.set()
                return

    def stop(self, *, release: bool = True) -> None:
        """Stop renewing; give the lease up unless told otherwise."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        if release and not self.lost.is_set():
            # A store that fails now must not hide why the run ended: an
            # unreleased lease simply expires with its time-to-live.
            with suppress(JournalError):
                self.store.release_lease(self.lease)
