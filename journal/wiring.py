"""A look at an entry's code before a run records anything.

A flow declares the flows it calls into (``uses=``), so that its schema
covers every type a run depends on. A call into an undeclared flow is
refused at the call; where the entry's code names the other flow or one of
its steps directly (a global or a closure variable it loads), the run is
refused before it records anything.
"""

from __future__ import annotations

import dis
import types
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from journal.errors import FlowDefinitionError

if TYPE_CHECKING:
    from journal.flow import Flow, StepDef

_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_CLASSDEREF"})


def _loaded_names(code: types.CodeType) -> Iterator[str]:
    """Names the code (and the functions defined in it) loads as variables."""
    pending = [code]
    while pending:
        current = pending.pop()
        for instruction in dis.get_instructions(current):
            if instruction.opname in _LOADS and isinstance(instruction.argval, str):
                yield instruction.argval
        pending.extend(c for c in current.co_consts if isinstance(c, types.CodeType))


def _variables(function: Callable[..., Any]) -> dict[str, Any]:
    """The function's closure variables over its globals."""
    found = dict(getattr(function, "__globals__", {}))
    code = getattr(function, "__code__", None)
    cells = getattr(function, "__closure__", None) or ()
    if code is not None:
        for name, cell in zip(code.co_freevars, cells, strict=False):
            try:
                found[name] = cell.cell_contents
            except ValueError:  # an empty cell: not bound yet
                continue
    return found


def referenced(function: Callable[..., Any]) -> Iterator[tuple[str, Any]]:
    """(name, value) of every variable `function`'s code loads."""
    code = getattr(function, "__code__", None)
    if code is None:
        return
    variables = _variables(function)
    for name in dict.fromkeys(_loaded_names(code)):
        if name in variables:
            yield name, variables[name]


def check_entry_uses(flow: Flow) -> None:
    """Refuse a run whose entry names a flow or step it does not declare."""
    entry = flow.entry_function
    if entry is None:
        return
    for name, value in referenced(entry):
        step: StepDef | None = getattr(value, "__journal_step__", None)
        if step is not None:
            flow.check_step(step)
        elif isinstance(value, type(flow)) and value is not flow:
            _check_flow(flow, name, value)


def _check_flow(flow: Flow, name: str, other: Flow) -> None:
    declared = flow.children if other.entry_function is not None else flow.libraries
    if any(other is f for f in declared):
        return
    raise FlowDefinitionError(
        f"flow {flow.name!r}: its entry uses flow {other.name!r} (as {name!r}) "
        f"without declaring it: Flow({flow.name!r}, uses=[{name}])"
    )
