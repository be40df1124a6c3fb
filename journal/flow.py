"""Flows: user code whose steps are journaled.

```python
flow = Flow("refund")

@flow.step(step_type="ToolNode")
def fetch_order(order_id: str) -> Order: ...

@flow.entry
def main(order_id: str) -> Decision: ...

execution = flow.run(journal_, "ord_42")
```

A step called inside a run is recorded (live) or matched against the record
(replay); called outside any run it is a plain function call. Inputs and
outputs are msgspec-typed: the entry always sees values decoded from their
recorded JSON, live and on replay alike, so both paths see the same thing.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload

import msgspec

from journal import driving
from journal.context import current_frame, refuse_outside_run
from journal.errors import FlowDefinitionError
from journal.events import EVENT_FORMAT_MAJOR
from journal.failures import StepError as StepError
from journal.failures import categorize as categorize
from journal.model import ExecutionError, RetryPolicy, StepType
from journal.schema import (
    SCHEMA_FORMAT,
    canonical,
    retry_document,
    schema_hash,
    signature_document,
)

if TYPE_CHECKING:
    from journal.application import Journal
    from journal.approvals import Keyring
    from journal.continuation import FlowOptions
    from journal.model import Execution

P = ParamSpec("P")
R = TypeVar("R")

#: An upcaster for values recorded under an older schema:
#: (callable_id, kind, value as builtins) -> value as builtins, where kind is
#: "input" or "output" of a step (callable_id: the step's; a child flow's
#: call: the child's name) or of the entry (callable_id: the flow's name),
#: or "value" for a recorded helper (callable_id: "journal.now", …).
ValueUpcaster = Callable[[str, str, Any], Any]


class StepDecorator(Protocol):
    """What ``@flow.step(...)`` returns: keeps the function's signature."""

    def __call__(self, function: Callable[P, R], /) -> Callable[P, R]: ...


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        # Annotated metadata is kept: msgspec.Meta constraints are checked
        # when recorded values are decoded, and are part of the schema.
        return typing.get_type_hints(function, include_extras=True)
    except (NameError, TypeError) as e:
        raise TypeError(
            f"cannot resolve type hints of {function.__qualname__}: {e}"
        ) from e


@dataclass(frozen=True)
class Signature:
    """A callable's parameters and return type, for encoding and the schema."""

    parameters: tuple[inspect.Parameter, ...]
    param_types: Mapping[str, Any]
    return_type: Any
    python: inspect.Signature

    @classmethod
    def of(cls, function: Callable[..., Any]) -> Signature:
        hints = _hints(function)
        python = inspect.signature(function)
        params = tuple(python.parameters.values())
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(
                    f"{function.__qualname__}: *args/**kwargs cannot be journaled"
                )
            if p.annotation is inspect.Parameter.empty:
                raise FlowDefinitionError(
                    f"{function.__qualname__}: parameter {p.name!r} has no type "
                    "annotation (the journal encodes and gates values by type)"
                )
        if python.return_annotation is inspect.Signature.empty:
            raise FlowDefinitionError(
                f"{function.__qualname__}: the return type is not annotated "
                "(write -> None if it returns nothing)"
            )
        return cls(
            parameters=params,
            param_types={p.name: hints.get(p.name, Any) for p in params},
            return_type=hints.get("return", Any),
            python=python,
        )

    def encode_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """The call's arguments as canonical JSON ``{name: value}``."""
        names = self.positional_names
        if names is not None and not kwargs and len(args) == len(names):
            return canonical(dict(zip(names, args, strict=True)))  # the hot path
        bound = self.python.bind(*args, **kwargs)
        bound.apply_defaults()
        return canonical(dict(bound.arguments))

    @functools.cached_property
    def positional_names(self) -> tuple[str, ...] | None:
        """Parameter names, when every parameter can be passed by position."""
        kinds = (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        )
        if all(p.kind in kinds for p in self.parameters):
            return tuple(p.name for p in self.parameters)
        return None

    def decode_args(self, payload: bytes) -> dict[str, Any]:
        """Recorded arguments decoded into their declared types."""
        raw = msgspec.json.decode(payload, type=dict[str, msgspec.Raw])
        return {
            name: msgspec.json.decode(raw[name], type=self.param_types[name])
            for name in self.param_types
            if name in raw
        }

    def decode_output(self, payload: bytes) -> Any:
        return msgspec.json.decode(payload, type=self.return_type)

    @functools.cached_property
    def _documents(self) -> dict[int, dict[str, Any]]:
        return {}

    def document(self, schema_format: int = SCHEMA_FORMAT) -> dict[str, Any]:
        """This signature's part of a schema document (computed once)."""
        cached = self._documents.get(schema_format)
        if cached is None:
            cached = signature_document(
                self.parameters, self.param_types, self.return_type, schema_format
            )
            self._documents[schema_format] = cached
        return cached


@dataclass(frozen=True)
class StepDef:
    """A journaled step: its identity, type, purity and retry policy."""

    flow: Flow
    function: Callable[..., Any]
    name: str
    callable_id: str
    step_type: str
    pure: bool
    retry: RetryPolicy | None
    signature: Signature

    def document(self, schema_format: int = SCHEMA_FORMAT) -> dict[str, Any]:
        """This step's part of a schema document."""
        document = {
            "callable_id": self.callable_id,
            "name": self.name,
            "step_type": self.step_type,
            "pure": self.pure,
            **self.signature.document(schema_format),
        }
        if schema_format >= 2:
            document["retry"] = retry_document(self.retry)
        return document

    def policy_for(self, error: ExecutionError) -> RetryPolicy:
        if self.retry is not None:
            return self.retry
        return error.category.default_retry_policy()


@dataclass(eq=False)
class Flow:
    """A named set of journaled steps and one entry function.

    Args:
        name: The flow's name, recorded on every execution it runs.
        accepts: Older ``schema_version`` hashes this flow can still replay,
            mapped to an optional `ValueUpcaster` for their recorded values.
        uses: Other flows this one calls into: flows with an entry are run as
            children (``child.run_child(...)``; their entry's signature joins
            this flow's schema), flows without one are step libraries (their
            steps join this flow's schema). Calling into an undeclared flow
            is refused, so the schema gate sees every type a run depends on.
    """

    name: str
    accepts: Mapping[str, ValueUpcaster | None] | Iterable[str] = ()
    uses: Iterable[Flow] = ()
    steps: dict[str, StepDef] = field(default_factory=dict, init=False)
    entry_function: Callable[..., Any] | None = field(default=None, init=False)
    entry_signature: Signature | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.accepts, Mapping):
            self.accepts = dict.fromkeys(self.accepts)
        self.uses = tuple(self.uses)

    def _closure(self) -> list[Flow]:
        """Every flow this one uses, directly or through a step library."""
        found: list[Flow] = []
        pending = list(self.uses)
        while pending:
            flow = pending.pop()
            if flow is self or any(flow is f for f in found):
                continue
            found.append(flow)
            if flow.entry_function is None:  # a library's own uses count too
                pending.extend(flow.uses)
        return found

    @property
    def libraries(self) -> list[Flow]:
        """Used flows without an entry: their steps may be called in a run."""
        return [f for f in self._closure() if f.entry_function is None]

    @property
    def children(self) -> list[Flow]:
        """Used flows with an entry: they may be run as child executions."""
        return [f for f in self._closure() if f.entry_function is not None]

    def check_step(self, step: StepDef) -> None:
        """Refuse a step of a flow this one does not declare in `uses`."""
        if step.flow is self or any(step.flow is f for f in self.libraries):
            return
        raise FlowDefinitionError(
            f"flow {self.name!r} called step {step.callable_id} of flow "
            f"{step.flow.name!r}: declare Flow({self.name!r}, "
            f"uses=[{step.flow.name}]) (a flow without an entry)"
        )

    def check_child(self, child: Flow) -> None:
        """Refuse a child flow this one does not declare in `uses`."""
        if any(child is f for f in self.children):
            return
        raise FlowDefinitionError(
            f"flow {self.name!r} ran child flow {child.name!r}: declare "
            f"Flow({self.name!r}, uses=[{child.name}])"
        )

    # --- decorators -------------------------------------------------------

    @overload
    def step(self, function: Callable[P, R]) -> Callable[P, R]: ...

    @overload
    def step(
        self,
        *,
        step_type: StepType | str = ...,
        pure: bool = ...,
        retry: RetryPolicy | None = ...,
        name: str | None = ...,
        callable_id: str | None = ...,
    ) -> StepDecorator: ...

    def step(
        self,
        function: Callable[..., Any] | None = None,
        *,
        step_type: StepType | str = StepType.FUNCTION_NODE,
        pure: bool = False,
        retry: RetryPolicy | None = None,
        name: str | None = None,
        callable_id: str | None = None,
    ) -> Any:
        """Declare a journaled step (usable with or without arguments)."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            _refuse_generator(fn)
            step_name = name or fn.__name__
            definition = StepDef(
                flow=self,
                function=fn,
                name=step_name,
                callable_id=callable_id or f"{self.name}.{fn.__name__}",
                step_type=str(step_type),
                pure=pure,
                retry=retry,
                signature=Signature.of(fn),
            )
            if definition.callable_id in self.steps:
                raise ValueError(
                    f"{self.name}: duplicate step {definition.callable_id}"
                )
            self.steps[definition.callable_id] = definition

            return _step_caller(definition)

        return register if function is None else register(function)

    def entry(self, function: Callable[P, R]) -> Callable[P, R]:
        """Declare the flow's entry function (its parameters are the input)."""
        self.entry_function = function
        self.entry_signature = Signature.of(function)
        return function

    # --- schema -----------------------------------------------------------

    @property
    def schema_document(self) -> dict[str, Any]:
        """The structural document whose hash is `schema_version`."""
        return self.schema_document_for(SCHEMA_FORMAT)

    def schema_document_for(self, schema_format: int) -> dict[str, Any]:
        """This flow described under the rules of document format
        `schema_format` (older formats gate executions recorded under them)."""
        document: dict[str, Any] = {
            "event_format": EVENT_FORMAT_MAJOR,
            "flow": self.name,
            "entry": self._entry().document(schema_format),
        }
        if schema_format >= 2:
            document["schema_format"] = schema_format
        steps = dict(self.steps)
        for library in self.libraries:
            steps.update(library.steps)
        document["steps"] = [steps[k].document(schema_format) for k in sorted(steps)]
        children = sorted(self.children, key=lambda child: child.name)
        if children:  # absent when empty: flows without children keep their hash
            document["children"] = [
                {"flow": child.name, **child._entry().document(schema_format)}
                for child in children
            ]
        return document

    @property
    def schema_version(self) -> str:
        return schema_hash(self.schema_document)

    def schema_version_for(self, schema_format: int) -> str:
        """The hash of `schema_document_for` (`schema_format`)."""
        return schema_hash(self.schema_document_for(schema_format))

    def accepts_schema(self, recorded: str | None, current: str | None = None) -> bool:
        """True if a record of `recorded` may be re-run by this flow
        (`current`: this flow's `schema_version`, if already computed)."""
        if recorded == (current or self.schema_version):
            return True
        return recorded is not None and recorded in self.accepted_hashes

    @property
    def accepted_hashes(self) -> Mapping[str, ValueUpcaster | None]:
        assert isinstance(self.accepts, Mapping)
        return self.accepts

    def require_entry(self) -> Signature:
        """The entry's signature; `TypeError` if the flow has no entry."""
        if self.entry_signature is None:
            raise TypeError(f"flow {self.name!r} has no @flow.entry")
        return self.entry_signature

    _entry = require_entry

    # --- running ----------------------------------------------------------

    def run(self, journal_: Journal, *args: Any, **kwargs: Any) -> Execution:
        """Run the entry live, recording every event; return the execution.

        Returns the execution also when it Failed; raises only for journal
        errors (store unreachable, conflicts).
        """
        if driving.is_async(self):
            return driving.run_sync(
                self, lambda: self.run_async(journal_, *args, **kwargs)
            )
        return driving.record_live(self, journal_, args, kwargs)

    async def run_async(
        self, journal_: Journal, *args: Any, **kwargs: Any
    ) -> Execution:
        """`run` as a coroutine, for callers inside an event loop.

        An ``async def`` entry is awaited in the running loop; a synchronous
        one runs in it directly.
        """
        if not driving.is_async(self):
            return driving.record_live(self, journal_, args, kwargs)
        return await driving.record_live_async(self, journal_, args, kwargs)

    def resume(
        self,
        journal_: Journal,
        execution_id: str,
        *,
        input: Any = None,
        approver: str | None = None,
        digest: str | None = None,
        signature: str | None = None,
        deny: bool = False,
        reason: str | None = None,
        keyring: Keyring | None = None,
    ) -> Execution:
        """Resume a waiting or paused execution of this flow with today's
        code; see `journal.continuation` (raises `ApprovalRefusedError`,
        `NondeterminismError`, `StateNotAllowedError`, ...)."""
        from journal.approvals import Approval
        from journal.continuation import resume

        approval = Approval(input, approver, digest, signature, deny, reason)
        return resume(self, journal_, execution_id, approval, keyring=keyring)

    def fork(
        self, journal_: Journal, execution_id: str, *, at_step: int, input: Any = None
    ) -> Execution:
        """Fork an execution of this flow at step `at_step` (as ``journal
        show`` numbers them) and go on live; see `journal.fork`."""
        from journal.fork import fork

        return fork(self, journal_, execution_id, at_step=at_step, input=input)

    def with_options(self, *, execution_id: str | None = None) -> FlowOptions:
        """Run options that cannot collide with the entry's own arguments:
        ``flow.with_options(execution_id="exec_…").run(journal_, ...)``."""
        from journal.continuation import FlowOptions

        return FlowOptions(self, execution_id)

    def run_child(self, *args: Any, **kwargs: Any) -> Any:
        """Inside another flow's run: record a child execution of this flow
        (same tenant, `ParentLink` to the calling step) and return its output."""
        frame = current_frame()
        if frame is None:
            raise RuntimeError(f"{self.name}.run_child() must be called inside a run")
        return frame.run.run_child(frame, self, args, kwargs)


def _refuse_generator(fn: Callable[..., Any]) -> None:
    """A generator's body runs after the call returned: it cannot be a step."""
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        kind = "an async generator" if inspect.isasyncgenfunction(fn) else "a generator"
        raise FlowDefinitionError(
            f"{fn.__qualname__} is {kind}: a step must return its value (its "
            "body would run after the step was recorded); return a list instead"
        )


def _step_caller(definition: StepDef) -> Callable[..., Any]:
    """The function a ``@flow.step`` decoration returns in place of `fn`."""
    fn = definition.function
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        def call_async(*args: Any, **kwargs: Any) -> Any:
            # A plain function returning the awaitable: the call's identity
            # is taken now, when the call is made, whichever task awaits it.
            frame = current_frame()
            if frame is None:
                refuse_outside_run(definition)
                return fn(*args, **kwargs)
            call = frame.next_call()
            return frame.run.call_step_async(frame, definition, call, args, kwargs)

        call_async.__journal_step__ = definition  # type: ignore[attr-defined]
        return call_async

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        frame = current_frame()
        if frame is None:
            refuse_outside_run(definition)
            return fn(*args, **kwargs)
        return frame.run.call_step(frame, definition, args, kwargs)

    call.__journal_step__ = definition  # type: ignore[attr-defined]
    return call


def _draw(kind: str, make: Callable[[], Any], type_: Any) -> Any:
    frame = current_frame()
    if frame is None:
        return make()
    return frame.run.draw_value(frame, kind, make, type_)


def now() -> Any:
    """The current UTC time; recorded in a run, replayed as recorded."""
    from datetime import UTC, datetime

    return _draw("now", lambda: datetime.now(UTC), datetime)


def random() -> float:
    """A random float in [0, 1); recorded in a run, replayed as recorded."""
    import random as _random

    value: float = _draw("random", _random.random, float)
    return value


def uuid4() -> Any:
    """A random UUID; recorded in a run, replayed as recorded."""
    import uuid

    return _draw("uuid4", uuid.uuid4, uuid.UUID)
