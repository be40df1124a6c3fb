"""Flows the flow and replay tests share, and small helpers around them.

`pipeline` builds a flow whose *schema* never changes while its entry's body
does (which steps it calls, in which order, with which arguments), so that
tests can record with one body and replay with another: exactly the code
changes that must come out `diverged` rather than `schema_mismatch`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal
from uuid import UUID

import msgspec

import journal
from journal import Flow, RetryPolicy

TENANT = "tenant_flows"
NO_RETRY = RetryPolicy.fatal()


def memory_journal(tenant: str = TENANT) -> journal.Journal:
    """A fresh in-memory journal (a store of its own)."""
    return journal.open("memory://", tenant=tenant)


@dataclass
class SideEffects:
    """What effect steps did: a list they append to and a file they write."""

    folder: Path | None = None
    calls: list[str] = field(default_factory=list)

    def record(self, what: str) -> None:
        self.calls.append(what)
        if self.folder is not None:
            with (self.folder / "effects.log").open("a") as log:
                log.write(what + "\n")

    def file_lines(self) -> list[str]:
        assert self.folder is not None
        log = self.folder / "effects.log"
        return log.read_text().splitlines() if log.exists() else []


#: One call of the pipeline's entry: (step name, argument).
Call = tuple[str, int]


def pipeline(
    script: Sequence[Call],
    *,
    effects: SideEffects | None = None,
    pure_offset: int = 0,
    name: str = "pipeline",
    catch_everything: bool = False,
) -> Flow:
    """A flow with effect steps ``a``-``d`` and a pure step ``double``.

    The entry calls the steps `script` names, in order, and returns their
    outputs. ``double`` returns ``2 * x + pure_offset``. With
    `catch_everything` the entry wraps its body in ``except Exception``.
    The schema document is the same for every script and offset.
    """
    effects = effects or SideEffects()
    flow = Flow(name)

    def effect_step(step_name: str) -> Callable[[int], int]:
        def run(x: int) -> int:
            effects.record(f"{step_name}({x})")
            return x + ord(step_name)

        run.__name__ = step_name
        run.__annotations__ = {"x": int, "return": int}
        return run

    steps = {
        letter: flow.step(step_type="ToolNode", retry=NO_RETRY)(effect_step(letter))
        for letter in "abcd"
    }

    @flow.step(pure=True, retry=NO_RETRY)
    def double(x: int) -> int:
        return 2 * x + pure_offset

    steps["double"] = double

    @flow.entry
    def main(n: int) -> list[int]:
        outputs: list[int] = []
        try:
            for step_name, argument in script:
                outputs.append(steps[step_name](argument + n))
        except Exception:
            if not catch_everything:
                raise
            return [-1]
        return outputs

    return flow


class Order(msgspec.Struct):
    """An order as the shop sends it."""

    order_id: str
    amount: int


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Line(msgspec.Struct, kw_only=True):
    sku: str
    quantity: int = 1
    tags: set[str] = msgspec.field(default_factory=set)


class Basket(msgspec.Struct, kw_only=True):
    lines: list[Line]
    colour: Colour
    priority: Literal["low", "high", "urgent"]
    notes: dict[str, float | str | None]
    placed_at: datetime
    token: UUID | None = None


def rich_types_flow() -> Flow:
    """A flow whose types exercise every part of the schema description
    (literals, enums, sets, dicts, unions, nested Structs): the schema hash
    must still be the same under any ``PYTHONHASHSEED``."""
    flow = Flow("rich")

    @flow.step(step_type="LlmNode")
    def price(basket: Basket, discounts: frozenset[str]) -> tuple[int, float]:
        return (0, 0.0)

    @flow.entry
    def main(basket: Basket) -> dict[str, int | bool]:
        return {}

    return flow
