"""Every part of schema document format 2, both ways: what a change in it
does to the hash (changes it, or leaves it alone), and how the change reads."""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
import pytest
from msgspec import Meta

import journal
import replay
from journal import Flow, RetryPolicy, StepType
from replay import Verdict
from replay.schema_diff import diff_documents
from tests.flows_helpers import memory_journal


def refund(
    order_id: Any = str,
    *,
    returns: Any = int,
    default: Any = msgspec.NODEFAULT,
    retry: RetryPolicy | None = None,
    step_type: StepType | str = StepType.TOOL_NODE,
) -> Flow:
    """Flow ``refund``: a step ``fetch_order(order_id) -> returns``."""
    flow = Flow("refund")

    def fetch_order(order_id):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    if default is not msgspec.NODEFAULT:
        fetch_order.__defaults__ = (default,)
    fetch_order.__annotations__ = {"order_id": order_id, "return": returns}
    flow.step(step_type=step_type, retry=retry)(fetch_order)

    @flow.entry
    def main(order_id: str) -> int:
        return 0

    return flow


def constraint(name: str, value: Any) -> Meta:
    """``Meta(name=value)`` for a name chosen at run time."""
    make: Callable[..., Meta] = Meta
    return make(**{name: value})


def documented(doc: str) -> type[msgspec.Struct]:
    made = msgspec.defstruct("Order", [("amount", int)])
    made.__doc__ = doc
    return made


def struct(
    fields: list[Any], name: str = "Order", **options: Any
) -> type[msgspec.Struct]:
    return msgspec.defstruct(name, fields, **options)


class Money:
    """A custom type (msgspec needs hooks to encode it; the schema names it)."""


class Cents:
    """Another custom type."""


def same_name_elsewhere() -> type:
    """A class called ``Money`` declared in another module."""
    return type("Money", (), {"__module__": "elsewhere.billing"})


class Totalled(typing.TypedDict):
    n: int


class Partial(typing.TypedDict, total=False):
    n: int


Pair = tuple[Callable[[], Flow], Callable[[], Flow]]


def via_param(before: Any, after: Any) -> Pair:
    return (lambda: refund(before), lambda: refund(after))


def via_return(before: Any, after: Any) -> Pair:
    return (lambda: refund(returns=before), lambda: refund(returns=after))


def fields_ab(**options: Any) -> type[msgspec.Struct]:
    return struct([("a", int), ("b", str)], **options)


def fields_ba(**options: Any) -> type[msgspec.Struct]:
    return struct([("b", str), ("a", int)], **options)


#: (what, before, after, the change lines; () when the hash must not change)
CASES: list[tuple[str, Pair, tuple[str, ...]]] = [
    # names
    (
        "a field renamed",
        via_return(struct([("amount", int)]), struct([("total", int)])),
        (
            "refund.fetch_order output.amount: removed (required int)",
            "refund.fetch_order output.total: added (required int)",
        ),
    ),
    (
        "an untagged Struct class renamed",
        via_return(struct([("amount", int)]), struct([("amount", int)], "Sum")),
        (),
    ),
    # JSON types and formats
    (
        "int -> float",
        via_return(struct([("amount", int)]), struct([("amount", float)])),
        ("refund.fetch_order output.amount: int -> float",),
    ),
    (
        "str -> datetime",
        via_param(str, dt.datetime),
        ("refund.fetch_order input.order_id: str -> datetime",),
    ),
    ("List[int] is list[int]", via_param(list[int], typing.List[int]), ()),  # noqa: UP006 - the point of the case
    # required / optional
    (
        "a field becomes optional",
        via_return(struct([("amount", int)]), struct([("amount", int, 0)])),
        ("refund.fetch_order output.amount: default 0 added",),
    ),
    (
        "a docstring changed",
        via_return(documented("An order."), documented("A reworded order.")),
        (),
    ),
    (
        "a field becomes required",
        via_return(struct([("n", int, 1)]), struct([("n", int)])),
        ("refund.fetch_order output.n: default 1 removed",),
    ),
    (
        "a TypedDict field without a default becomes optional",
        via_return(Totalled, Partial),
        ("refund.fetch_order output.n: required -> optional",),
    ),
    # default values
    (
        "a parameter default added",
        (lambda: refund(), lambda: refund(default="x")),
        ("refund.fetch_order input.order_id: default 'x' added",),
    ),
    (
        "a field default changed",
        via_return(struct([("n", int, 1)]), struct([("n", int, 2)])),
        ("refund.fetch_order output.n: default 1 -> 2",),
    ),
    (
        "a default written as a factory",
        via_return(
            struct([("xs", list[int], [])]),
            struct([("xs", list[int], msgspec.field(default_factory=list))]),
        ),
        (),
    ),
    # Meta constraints
    *(
        (
            f"Meta({name}=...) added",
            via_param(base, Annotated[base, constraint(name, value)]),
            (f"refund.fetch_order input.order_id: {name} {shown} added",),
        )
        for name, base, value, shown in [
            ("ge", int, 0, "0"),
            ("le", int, 9, "9"),
            ("gt", float, 0.5, "0.5"),
            ("lt", float, 1.5, "1.5"),
            ("multiple_of", int, 5, "5"),
            ("pattern", str, "^ord-", "'^ord-'"),
            ("min_length", str, 1, "1"),
            ("max_length", list[int], 3, "3"),
        ]
    ),
    (
        "Meta(tz=True) added",
        via_param(dt.datetime, Annotated[dt.datetime, Meta(tz=True)]),
        ("refund.fetch_order input.order_id: tz true added",),
    ),
    (
        "Meta(ge=0) -> Meta(ge=1)",
        via_param(Annotated[int, Meta(ge=0)], Annotated[int, Meta(ge=1)]),
        ("refund.fetch_order input.order_id: ge 0 -> 1",),
    ),
    (
        "Meta description, title, examples, extra_json_schema",
        via_param(
            Annotated[int, Meta(ge=0)],
            Annotated[
                int,
                Meta(
                    ge=0,
                    description="cents",
                    title="Amount",
                    examples=[3],
                    extra_json_schema={"x": 1},
                    extra={"y": 2},
                ),
            ],
        ),
        (),
    ),
    # Struct options that change the encoding
    (
        "array_like",
        via_return(fields_ab(), fields_ab(array_like=True)),
        ("refund.fetch_order output: object{a, b} -> array{a, b}",),
    ),
    (
        "forbid_unknown_fields",
        via_return(fields_ab(), fields_ab(forbid_unknown_fields=True)),
        ("refund.fetch_order output: forbid_unknown_fields added",),
    ),
    (
        "omit_defaults",
        via_return(fields_ab(), fields_ab(omit_defaults=True)),
        ("refund.fetch_order output: omit_defaults added",),
    ),
    (
        "rename='camel' renames a wire name",
        via_return(
            struct([("order_id", str)]), struct([("order_id", str)], rename="camel")
        ),
        (
            "refund.fetch_order output.order_id: removed (required str)",
            "refund.fetch_order output.orderId: added (required str)",
        ),
    ),
    (
        "rename='camel' where no wire name changes",
        via_return(struct([("total", int)]), struct([("total", int)], rename="camel")),
        (),
    ),
    (
        "Struct options that do not reach the wire",
        via_return(
            fields_ab(),
            fields_ab(frozen=True, order=True, kw_only=True, gc=False),
        ),
        (),
    ),
    # field order
    (
        "array_like field order",
        via_return(fields_ab(array_like=True), fields_ba(array_like=True)),
        ("refund.fetch_order output: field order a, b -> b, a",),
    ),
    ("keyed field order", via_return(fields_ab(), fields_ba()), ()),
    # tags
    (
        "a tag value",
        via_return(fields_ab(tag="v1"), fields_ab(tag="v2")),
        ("refund.fetch_order output: tag 'v1' -> 'v2'",),
    ),
    (
        "a tag field",
        via_return(fields_ab(tag="v1"), fields_ab(tag="v1", tag_field="kind")),
        ("refund.fetch_order output: tag_field 'type' -> 'kind'",),
    ),
    (
        "a class name that is the tag",
        via_return(
            fields_ab(tag=True), struct([("a", int), ("b", str)], "Sale", tag=True)
        ),
        ("refund.fetch_order output: tag 'Order' -> 'Sale'",),
    ),
    # custom types
    (
        "two custom types",
        via_param(Money, Cents),
        ("refund.fetch_order input.order_id: class 'Money' -> 'Cents'",),
    ),
    ("a custom type's module path", via_param(Money, same_name_elsewhere()), ()),
    # retry policies
    (
        "max_retries 2 -> 3",
        (
            lambda: refund(retry=RetryPolicy.retrying(2)),
            lambda: refund(retry=RetryPolicy.retrying(3)),
        ),
        ("refund.fetch_order retry.max_retries: 2 -> 3",),
    ),
    (
        "a declared policy where none was",
        (lambda: refund(), lambda: refund(retry=RetryPolicy.retrying(2))),
        ("refund.fetch_order retry: by error category -> max_retries 2",),
    ),
    (
        "the same policy built two ways",
        (
            lambda: refund(retry=RetryPolicy.retrying(2)),
            lambda: refund(retry=RetryPolicy(retryable=True, max_retries=2)),
        ),
        (),
    ),
    # step types
    (
        "ToolNode -> LlmNode",
        (lambda: refund(), lambda: refund(step_type=StepType.LLM_NODE)),
        ("refund.fetch_order step_type: 'ToolNode' -> 'LlmNode'",),
    ),
    (
        "a step type as enum or string",
        (lambda: refund(), lambda: refund(step_type="ToolNode")),
        (),
    ),
]


@pytest.mark.parametrize(
    ("before", "after", "lines"),
    [(*pair, lines) for _, pair, lines in CASES],
    ids=[what for what, _, _ in CASES],
)
def test_each_part_of_the_document_changes_the_hash_exactly_when_it_should(
    before: Callable[[], Flow], after: Callable[[], Flow], lines: tuple[str, ...]
) -> None:
    old, new = before(), after()

    changed = old.schema_version != new.schema_version
    changes = diff_documents(old.schema_document, new.schema_document)

    assert changed is bool(lines)
    if lines:
        assert tuple(map(str, changes)) == lines


class Refund(msgspec.Struct):
    amount: Annotated[int, Meta(ge=0, description="cents, never negative")]
    reason: Annotated[str, Meta(title="Reason", examples=["damaged"])] = ""


def described_flow() -> Flow:
    flow = Flow("described")

    @flow.step(step_type="ToolNode")
    def issue(
        order_id: Annotated[str, Meta(description="the shop's id", min_length=1)],
    ) -> Refund:
        return Refund(amount=250, reason="damaged")

    @flow.entry
    def main(order_id: Annotated[str, Meta(description="the order")]) -> Refund:
        return issue(order_id)

    return flow


def test_annotated_meta_descriptions_run_record_and_replay_ok() -> None:
    flow = described_flow()
    with memory_journal() as jr:
        execution = flow.run(jr, "ord-1")
        result = replay.replay(jr, execution.id, [described_flow()])

    assert execution.state is journal.ExecutionState.COMPLETED
    assert result.verdict is Verdict.OK, result.report()
    document = flow.schema_document
    (step,) = document["steps"]
    assert step["params"][0]["type"] == {"type": "string", "min_length": 1}
    assert step["returns"]["properties"]["amount"]["type"] == {
        "type": "integer",
        "ge": 0,
    }
    assert "never negative" not in msgspec.json.encode(document).decode()


def test_a_recorded_value_breaking_a_parameter_constraint_is_refused_on_decode() -> (
    None
):
    (step,) = described_flow().steps.values()

    with pytest.raises(msgspec.ValidationError, match="length >= 1"):
        step.signature.decode_args(b'{"order_id":""}')


SET_DEFAULT_SCRIPT = """
import msgspec
from journal import Flow

class Tags(msgspec.Struct):
    tags: frozenset[str] = frozenset({"alpha", "beta", "gamma", "delta", "eps"})

flow = Flow("tagged")

@flow.step
def tag(names: set[str] = {"north", "south", "east", "west"}) -> Tags:
    return Tags()

@flow.entry
def main() -> Tags:
    return tag()

print(flow.schema_version)
"""


def test_set_defaults_hash_the_same_under_any_hash_seed() -> None:
    import os
    import subprocess
    import sys

    hashes = {
        subprocess.run(
            [sys.executable, "-c", SET_DEFAULT_SCRIPT],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }

    assert len(hashes) == 1
    assert next(iter(hashes)).startswith("sha256:")
