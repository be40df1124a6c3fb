"""An event-sourced execution journal with deterministic replay.

``journal.open(url, tenant=...)`` opens a store; `Flow` records executions
from code; `replay.replay` re-runs them against today's code.
"""

import logging as _logging

from journal.application import Journal as Journal
from journal.application import RecordedEvent as RecordedEvent
from journal.application import VerifiedHistory as VerifiedHistory
from journal.application import open as open
from journal.application import utc_now as utc_now
from journal.calls import step_key as step_key
from journal.commands import ExecutionHandle as ExecutionHandle
from journal.errors import ChainIntegrityError as ChainIntegrityError
from journal.errors import ConflictError as ConflictError
from journal.errors import EventDecodeError as EventDecodeError
from journal.errors import ExecutionNotFoundError as ExecutionNotFoundError
from journal.errors import InvalidIdError as InvalidIdError
from journal.errors import InvalidTransitionError as InvalidTransitionError
from journal.errors import InvalidValueError as InvalidValueError
from journal.errors import JournalError as JournalError
from journal.errors import LeaseLostError as LeaseLostError
from journal.errors import NondeterminismError as NondeterminismError
from journal.errors import ReplayError as ReplayError
from journal.errors import SchemaMismatchError as SchemaMismatchError
from journal.errors import StoreError as StoreError
from journal.flow import Flow as Flow
from journal.flow import StepError as StepError
from journal.flow import now as now
from journal.flow import random as random
from journal.flow import uuid4 as uuid4
from journal.fold import evolve as evolve
from journal.fold import fold as fold
from journal.model import ErrorCategory as ErrorCategory
from journal.model import Execution as Execution
from journal.model import ExecutionError as ExecutionError
from journal.model import ExecutionState as ExecutionState
from journal.model import ParentLink as ParentLink
from journal.model import ParentType as ParentType
from journal.model import RetryPolicy as RetryPolicy
from journal.model import Step as Step
from journal.model import StepSource as StepSource
from journal.model import StepState as StepState
from journal.model import StepType as StepType
from journal.model import WaitReason as WaitReason
from journal.store import ListFilter as ListFilter
from journal.store import Summary as Summary
from journal.threads import executor as executor
from journal.threads import run_in_thread as run_in_thread
from journal.waits import Denied as Denied
from journal.waits import WaitTimeout as WaitTimeout
from journal.waits import wait_for as wait_for

__version__ = "0.1.0"

__all__ = [
    "ChainIntegrityError",
    "ConflictError",
    "Denied",
    "ErrorCategory",
    "EventDecodeError",
    "Execution",
    "ExecutionError",
    "ExecutionHandle",
    "ExecutionNotFoundError",
    "ExecutionState",
    "Flow",
    "InvalidIdError",
    "InvalidTransitionError",
    "InvalidValueError",
    "Journal",
    "JournalError",
    "LeaseLostError",
    "ListFilter",
    "NondeterminismError",
    "ParentLink",
    "ParentType",
    "RecordedEvent",
    "ReplayError",
    "RetryPolicy",
    "SchemaMismatchError",
    "Step",
    "StepError",
    "StepSource",
    "StepState",
    "StepType",
    "StoreError",
    "Summary",
    "VerifiedHistory",
    "WaitReason",
    "WaitTimeout",
    "__version__",
    "evolve",
    "executor",
    "fold",
    "now",
    "open",
    "random",
    "run_in_thread",
    "step_key",
    "utc_now",
    "uuid4",
    "wait_for",
]

# A library logs (retries, a snapshot that could not be cached); where logs
# go is the application's choice. Without this, Python's last-resort handler
# would print warnings beside the CLI's one-line errors.
_logging.getLogger("journal").addHandler(_logging.NullHandler())
