"""Carrying an execution on after its process stopped: resume and recover.

Resuming re-runs the entry with the run context of `journal.driving`: every
call the record holds is answered from it (no effect runs), and the first
call it lacks goes live. In order:

1. the chain is verified and the state folded; a state that cannot go on
   (ended, or running under a live lease) is refused;
2. an approval is checked against the wait (`journal.approvals`);
3. the schema gate, exactly as replay's: today's flow must accept the
   recorded ``schema_version``;
4. a dry re-run of the recorded prefix, with no writes at all: a divergence
   is `NondeterminismError` (exit 5) and the store is left as it was;
5. only then the lease is taken (a fresh fencing token), the head is checked
   to be the one re-run, `InputReceived` or `ExecutionResumed` is recorded,
   and the run goes on live from where the record ends.

A step whose ``StepStarted`` has no end (the process died inside it) is the
one place an effect runs again: at least once, never more for a step
recorded as ended. `journal.step_key()` gives such a step a stable key.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from journal.approvals import Approval, Keyring, check_approval
from journal.errors import (
    ConflictError,
    FlowNotLoadedError,
    NondeterminismError,
    ReplayError,
    SchemaMismatchError,
    StateNotAllowedError,
)
from journal.ids import ExecutionId, parse_execution_id
from journal.leases import STALE_AFTER_S, Heartbeat, now_ms
from journal.model import Execution, ExecutionState, ParentLink
from journal.store import ListFilter, not_found

if TYPE_CHECKING:
    from journal.application import Journal
    from journal.commands import ExecutionHandle
    from journal.flow import Flow, ValueUpcaster
    from journal.leases import Lease

_RECOVERABLE = ("Created", "Planning", "Running")


def _recorded(journal_: Journal, flow: Flow, execution_id: str) -> Execution:
    journal_.verify(execution_id)
    recorded = journal_.get(execution_id)
    if recorded.flow != flow.name:
        raise FlowNotLoadedError(
            f"{execution_id} was recorded by flow {recorded.flow!r}, not {flow.name!r}"
        )
    if recorded.is_terminal:
        raise StateNotAllowedError(
            f"{execution_id} is {recorded.state_label}: it has ended, there is "
            "nothing to resume"
        )
    return recorded


def schema_gate(flow: Flow, recorded: Execution) -> ValueUpcaster | None:
    """Replay's schema gate: refuse a record today's flow does not accept;
    return the upcaster for an accepted older schema."""
    current = flow.schema_version
    if not flow.accepts_schema(recorded.schema_version, current):
        raise SchemaMismatchError(
            f"{recorded.id}: recorded schema {recorded.schema_version} is not "
            f"{flow.name}'s current {current} nor one it accepts"
        )
    if recorded.schema_version == current:
        return None
    return flow.accepted_hashes.get(recorded.schema_version or "")


def dry_run(flow: Flow, recorded: Execution) -> None:
    """Re-run the recorded prefix without writing; raise on divergence."""
    from journal.driving import replay_record

    run = replay_record(flow, recorded, schema_gate(flow, recorded))
    if run.divergence is not None:
        raise NondeterminismError(
            f"{recorded.id}: the recorded prefix diverges from today's code, "
            f"nothing was recorded: {run.divergence.reason}"
        )


def resume(
    flow: Flow,
    journal_: Journal,
    execution_id: str,
    approval: Approval | None = None,
    *,
    keyring: Keyring | None = None,
    stale_after_s: float = STALE_AFTER_S,
) -> Execution:
    """Resume a waiting or paused execution (or recover a running one whose
    lease is stale); see the module docstring. Returns the state it reaches."""
    approval = approval or Approval()
    recorded = _recorded(journal_, flow, execution_id)
    timed_out = _check_answer(recorded, approval, keyring, journal_)
    dry_run(flow, recorded)
    lease = journal_.acquire_lease(execution_id, stale_after_s=stale_after_s)
    if lease is None:
        raise ConflictError(f"{execution_id} is held by a live process (its lease)")
    heartbeat = Heartbeat(journal_.store, lease, journal_.heartbeat_every_s).start()
    try:
        handle = _take_over(journal_, recorded, lease)
        _record_resumption(handle, recorded, approval, timed_out)
        return _continue(flow, handle, recorded)
    finally:
        heartbeat.stop()


def _check_answer(
    recorded: Execution,
    approval: Approval,
    keyring: Keyring | None,
    journal_: Journal,
) -> bool:
    from journal.application import utc_now

    if recorded.state is ExecutionState.WAITING and recorded.waits:
        return check_approval(
            recorded.id, recorded.waits[-1], approval, utc_now(), keyring
        )
    if approval.answers:
        raise StateNotAllowedError(
            f"{recorded.id} is {recorded.state_label}, not waiting: resume it "
            "without input or approval"
        )
    return False


def _take_over(journal_: Journal, recorded: Execution, lease: Lease) -> ExecutionHandle:
    """The handle to go on with, under `lease`, if nobody moved the head
    since the dry run (else `ConflictError`: someone else went on)."""
    from journal.commands import ExecutionHandle

    current = journal_.get(recorded.id)
    if current.version != recorded.version:
        journal_.store.release_lease(lease)
        raise ConflictError(
            f"{recorded.id}: the head moved from seq {recorded.version} to "
            f"{current.version} while resuming: another process went on"
        )
    return ExecutionHandle(journal_, current, lease)


def _record_resumption(
    handle: ExecutionHandle, recorded: Execution, approval: Approval, timed_out: bool
) -> None:
    if recorded.state is ExecutionState.WAITING:
        handle.receive_input(
            approval.input,
            approver=approval.approver,
            digest=approval.digest,
            signature=approval.signature,
            denied=approval.deny,
            reason=approval.reason,
            timed_out=timed_out,
        )
    elif recorded.state is ExecutionState.PAUSED:
        handle.resume()
    elif recorded.state in (ExecutionState.CREATED, ExecutionState.PLANNING):
        handle.start()


def _continue(flow: Flow, handle: ExecutionHandle, recorded: Execution) -> Execution:
    from journal import driving

    if driving.is_async(flow):
        return driving.run_sync(
            flow, lambda: driving.continue_live_async(flow, handle, recorded)
        )
    return driving.continue_live(flow, handle, recorded)


# --- recovery ----------------------------------------------------------------


@dataclass(frozen=True)
class Recovered:
    """What `recover` did with one execution."""

    execution_id: str
    #: "recovered", "would recover", "skipped: why" or "refused: why"
    outcome: str
    state: str | None = None
    #: The exit code a refusal carries (0 otherwise).
    exit_code: int = 0


def recoverable(
    journal_: Journal, flows: Iterable[Flow], older_than_s: float
) -> list[tuple[str, Flow]]:
    """Top-level executions of loaded flows that are running (or never got
    going) and whose lease has not been renewed for `older_than_s`."""
    by_name = {flow.name: flow for flow in flows}
    found = []
    stale_ms, at = int(older_than_s * 1000), now_ms()
    for state in _RECOVERABLE:
        for summary in journal_.list(ListFilter(state=state)):
            flow = by_name.get(summary.flow or "")
            if flow is None or summary.parent_id is not None:
                continue
            lease = journal_.store.get_lease(summary.execution_id, journal_.tenant_id)
            if lease is None:
                # Written without a lease (before leases existed, or by the
                # command API): dead when its last event is old enough.
                last = summary.updated_at or summary.created_at
                age_ms = at - last.timestamp() * 1000 if last else 0
                if last is None or max(0, age_ms) < stale_ms:
                    continue
            elif not lease.is_stale(stale_ms, at):
                continue
            found.append((summary.execution_id, flow))
    return found


def recover(
    journal_: Journal,
    flows: Iterable[Flow],
    *,
    older_than_s: float = STALE_AFTER_S,
    dry_run_only: bool = False,
) -> list[Recovered]:
    """Take over and resume every execution whose lease expired.

    Several recoverers may run at once: the lease lets exactly one of them
    go on with each execution; the others report it skipped.
    """
    done = []
    for execution_id, flow in recoverable(journal_, flows, older_than_s):
        if dry_run_only:
            done.append(Recovered(execution_id, "would recover"))
            continue
        done.append(_recover_one(journal_, flow, execution_id, older_than_s))
    return done


def _recover_one(
    journal_: Journal, flow: Flow, execution_id: str, older_than_s: float
) -> Recovered:
    token = takeover_after_s.set(older_than_s)
    try:
        state = resume(flow, journal_, execution_id, stale_after_s=older_than_s)
    except (ConflictError, StateNotAllowedError) as e:
        return Recovered(execution_id, f"skipped: {e}")
    except ReplayError as e:  # diverged or schema mismatch: left as it was
        return Recovered(execution_id, f"refused: {e}", exit_code=e.exit_code)
    finally:
        takeover_after_s.reset(token)
    return Recovered(execution_id, "recovered", state.state_label)


# --- stable identities ---------------------------------------------------------


@dataclass(frozen=True)
class FlowOptions:
    """`Flow.with_options(...)`: how to run, apart from the entry's arguments."""

    flow: Flow
    execution_id: str | None = None

    def run(self, journal_: Journal, *args: Any, **kwargs: Any) -> Execution:
        """`Flow.run` under these options; see `run_with_id`."""
        if self.execution_id is None:
            return self.flow.run(journal_, *args, **kwargs)
        execution_id = parse_execution_id(self.execution_id)
        return run_with_id(self.flow, journal_, execution_id, args, kwargs)


def run_with_id(
    flow: Flow,
    journal_: Journal,
    execution_id: ExecutionId,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    parent: ParentLink | None = None,
) -> Execution:
    """Run `flow` as execution `execution_id`, idempotently.

    New: recorded live under that id. Ended: returned as it is. Running
    with no live lease (its process died): recovered. Waiting or paused:
    returned as it is (it waits for an answer or an operator). A different
    flow or input under that id is a `ConflictError`; another tenant's id is
    not found.
    """
    from journal import driving

    payload = flow.require_entry().encode_args(args, kwargs)
    if journal_.store.get_summary(execution_id, journal_.tenant_id) is None:
        try:
            return driving.record_live(
                flow, journal_, args, kwargs, parent, execution_id
            )
        except ConflictError:
            if journal_.store.get_summary(execution_id, journal_.tenant_id):
                raise  # created meanwhile in this tenant: a real conflict
            raise not_found(execution_id, journal_.tenant_id) from None
    recorded = journal_.get(execution_id)
    if recorded.flow != flow.name or bytes(recorded.input) != payload:
        raise ConflictError(
            f"{execution_id} already records flow {recorded.flow!r} with another "
            "input: a different run cannot take its id"
        )
    if recorded.is_terminal or recorded.state in (
        ExecutionState.WAITING,
        ExecutionState.PAUSED,
    ):
        return recorded
    return resume(flow, journal_, execution_id, stale_after_s=takeover_after_s.get())


#: How stale a lease must be for a run to take its execution over: set by
#: `recover` for the whole takeover, so the children of a recovered parent
#: are taken over by the same rule.
takeover_after_s: ContextVar[float] = ContextVar(
    "journal_takeover_after_s", default=STALE_AFTER_S
)
