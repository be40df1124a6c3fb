"""The schema gate: structural schema documents, their hash, and what changes it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

import journal
import replay
from journal import ExecutionState, Flow, ListFilter, SchemaMismatchError
from journal.errors import FlowDefinitionError
from journal.schema import describe_type
from replay import Verdict
from replay.schema_diff import diff_documents
from tests.flows_helpers import memory_journal, rich_types_flow

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def jr() -> Iterator[journal.Journal]:
    with memory_journal() as opened:
        yield opened


def annotate(function: Callable[..., Any], **types: Any) -> Callable[..., Any]:
    """Set real (not string) annotations, so types may be local variables."""
    function.__annotations__ = dict(types)
    return function


def typed_flow(effects: list[str], **kwargs: Any) -> Flow:
    """Flow ``typed``: fetch -> total (pure) -> schedule, types as asked.

    Every step and the entry append to `effects` when they run.
    """
    flow = Flow("typed")
    fields: list[Any] = [("order_id", str), ("amount", int)]
    if kwargs.get("extra_field"):
        fields.append(("currency", str))
    order_type = msgspec.defstruct(kwargs.get("class_name", "Order"), fields)
    order_type.__doc__ = kwargs.get("doc", "An order as the shop sends it.")
    total_type = kwargs.get("total_type", int)
    at_type = kwargs.get("at_type", str)

    def fetch(order_id):  # type: ignore[no-untyped-def]
        effects.append("fetch")
        extra = {"currency": "EUR"} if kwargs.get("extra_field") else {}
        return order_type(order_id=order_id, amount=40, **extra)

    fetch.__doc__ = order_type.__doc__
    fetch_step = flow.step(step_type="ToolNode")(
        annotate(fetch, order_id=str, **{"return": order_type})
    )

    def total(order):  # type: ignore[no-untyped-def]
        effects.append("total")
        return total_type(order.amount + 2)

    total_step = flow.step(pure=True)(
        annotate(total, order=order_type, **{"return": total_type})
    )

    def schedule(at):  # type: ignore[no-untyped-def]
        effects.append("schedule")
        return f"at {at}"

    schedule_step = flow.step(annotate(schedule, at=at_type, **{"return": str}))

    def main(order_id, at):  # type: ignore[no-untyped-def]
        effects.append("entry")
        when = at if at_type is str else datetime.fromisoformat(at)
        return f"{total_step(fetch_step(order_id))} {schedule_step(when)}"

    flow.entry(annotate(main, order_id=str, at=str, **{"return": str}))
    return flow


AT = "2025-01-02T03:04:05Z"  # as msgspec encodes a UTC datetime


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            {"total_type": float},
            ["typed.total output: int -> float"],
            id="step-output-int-to-float",
        ),
        pytest.param(
            {"at_type": datetime},
            ["typed.schedule input.at: str -> datetime"],
            id="step-input-str-to-datetime",
        ),
        pytest.param(
            {"extra_field": True},
            [
                "typed.fetch output.currency: added (required str)",
                "typed.total input.order.currency: added (required str)",
            ],
            id="new-required-struct-field",
        ),
    ],
)
def test_a_changed_step_type_is_schema_mismatch_decided_without_calling_the_entry(
    jr: journal.Journal, change: dict[str, Any], expected: list[str]
) -> None:
    recorded_effects: list[str] = []
    old = typed_flow(recorded_effects)
    execution = old.run(jr, "ord_1", AT)
    assert recorded_effects == ["entry", "fetch", "total", "schedule"]

    effects: list[str] = []
    new = typed_flow(effects, **change)
    result = replay.replay(jr, execution.id, flows=[new])

    assert result.verdict is Verdict.SCHEMA_MISMATCH, result.report()
    assert effects == []  # neither the entry nor any step ran
    assert result.recorded_schema == old.schema_version
    assert result.current_schema == new.schema_version
    assert result.recorded_schema != result.current_schema
    assert list(result.schema_changes) == expected
    report = result.report().splitlines()
    assert all(f"  changed: {line}" in report for line in expected)
    assert f"to accept it: Flow('typed', accepts={{{old.schema_version!r}: " in (
        result.report()
    )


def test_str_to_datetime_names_the_step_the_parameter_and_both_types() -> None:
    old = typed_flow([])
    new = typed_flow([], at_type=datetime)

    (change,) = diff_documents(old.schema_document, new.schema_document)

    assert str(change) == "typed.schedule input.at: str -> datetime"
    assert change.alters_values


def test_renaming_a_struct_class_or_editing_a_docstring_changes_nothing(
    jr: journal.Journal,
) -> None:
    old = typed_flow([])
    execution = old.run(jr, "ord_1", AT)

    renamed = typed_flow([], class_name="Purchase", doc="Reworded.")

    assert renamed.schema_version == old.schema_version
    result = replay.replay(jr, execution.id, flows=[renamed])
    assert result.verdict is Verdict.OK, result.report()


def test_a_new_required_struct_field_changes_the_hash() -> None:
    assert (
        typed_flow([], extra_field=True).schema_version != typed_flow([]).schema_version
    )


MODULE_SOURCE = '''
"""{doc}"""

import msgspec

from journal import Flow


class {cls}(msgspec.Struct):
    """{doc}"""

    sku: str
    quantity: int = 1


flow = Flow("catalogue")


@flow.step(step_type="ToolNode")
def find(sku: str) -> {cls}:
    """{doc}"""
    return {cls}(sku=sku)


@flow.entry
def main(sku: str) -> {cls}:
    return find(sku)
'''


def load_module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_same_flow_in_two_modules_under_other_class_names_has_one_hash(
    tmp_path: Path, jr: journal.Journal
) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    first_path = tmp_path / "v1" / "shop_flows.py"
    second_path = tmp_path / "v2" / "renamed_flows.py"
    first_path.write_text(MODULE_SOURCE.format(cls="Item", doc="The first wording."))
    second_path.write_text(MODULE_SOURCE.format(cls="Article", doc="Entirely new."))
    first = load_module(first_path, "journal_test_shop_v1")
    second = load_module(second_path, "journal_test_shop_v2.nested")

    assert first.flow.schema_version == second.flow.schema_version
    assert first.flow.steps.keys() == {"catalogue.find"}  # no module path in it
    execution = first.flow.run(jr, "sku-1")
    result = replay.replay(jr, execution.id, flows=[second.flow])
    assert result.verdict is Verdict.OK, result.report()


HASH_SCRIPT = textwrap.dedent(
    """
    from tests.flows_helpers import rich_types_flow
    print(rich_types_flow().schema_version)
    """
)


def schema_hash_in_subprocess(seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    completed = subprocess.run(
        [sys.executable, "-c", HASH_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return completed.stdout.strip()


def test_the_schema_hash_is_equal_across_processes_with_other_hash_seeds() -> None:
    first = schema_hash_in_subprocess("1")
    second = schema_hash_in_subprocess("4242")

    assert first.startswith("sha256:")
    assert first == second == rich_types_flow().schema_version


def test_the_schema_document_describes_types_structurally() -> None:
    document = rich_types_flow().schema_document
    text = msgspec.json.encode(document).decode()

    assert document["event_format"] == 1
    assert document["schema_format"] == 2
    assert document["flow"] == "rich"
    for class_name in ("Basket", "Line", "Colour"):
        assert class_name not in text
    (price,) = document["steps"]
    assert price["callable_id"] == "rich.price"
    assert price["step_type"] == "LlmNode"
    assert price["returns"] == {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "number"}],
    }
    basket = price["params"][0]["type"]
    colour = basket["properties"]["colour"]
    assert colour["type"] == {"enum": ["blue", "green", "red"]}


@pytest.mark.parametrize(
    ("annotation", "description"),
    [
        (str, {"type": "string"}),
        (datetime, {"type": "string", "format": "date-time"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
    ],
)
def test_describe_type_gives_each_type_its_own_description(
    annotation: Any, description: dict[str, Any]
) -> None:
    assert describe_type(annotation) == description


def test_accepts_an_old_hash_lets_an_old_record_replay(jr: journal.Journal) -> None:
    old = typed_flow([])
    execution = old.run(jr, "ord_1", AT)

    reworded = replay.replay(jr, execution.id, [typed_flow([], doc="x")])
    assert reworded.verdict is Verdict.OK

    changed = typed_flow([], at_type=datetime)
    assert replay.replay(jr, execution.id, [changed]).verdict is (
        Verdict.SCHEMA_MISMATCH
    )
    tolerant = typed_flow([], at_type=datetime)
    tolerant.accepts = {old.schema_version: lambda _id, _kind, value: value}
    result = replay.replay(jr, execution.id, [tolerant])
    assert result.verdict is Verdict.OK, result.report()


def test_accepts_without_an_upcaster_for_a_change_of_values_says_so_at_the_gate(
    jr: journal.Journal,
) -> None:
    old = typed_flow([])
    execution = old.run(jr, "ord_1", AT)
    effects: list[str] = []
    tolerant = typed_flow(effects, at_type=datetime)
    tolerant.accepts = {old.schema_version: None}

    result = replay.replay(jr, execution.id, [tolerant])

    assert result.verdict is Verdict.SCHEMA_MISMATCH
    assert effects == []
    assert result.schema_changes == ("typed.schedule input.at: str -> datetime",)
    assert (
        f"Flow('typed') accepts {old.schema_version} without an upcaster, but "
        "this change alters recorded values: give it one"
    ) in result.report().splitlines()[-2]


def test_accepts_without_an_upcaster_is_enough_when_no_value_changes(
    jr: journal.Journal,
) -> None:
    def flow_with(retry: journal.RetryPolicy | None) -> Flow:
        flow = Flow("policy_only")

        @flow.step(retry=retry)
        def fetch(x: int) -> int:
            return x

        @flow.entry
        def main(x: int) -> int:
            return fetch(x)

        return flow

    old = flow_with(None)
    execution = old.run(jr, 3)
    new = flow_with(journal.RetryPolicy.retrying(2))
    assert new.schema_version != old.schema_version
    assert replay.replay(jr, execution.id, [new]).verdict is Verdict.SCHEMA_MISMATCH

    new.accepts = {old.schema_version: None}
    result = replay.replay(jr, execution.id, [new])

    assert result.verdict is Verdict.OK, result.report()


def test_an_accepted_old_hash_with_an_upcaster_rewrites_recorded_values(
    jr: journal.Journal,
) -> None:
    old = Flow("units")

    @old.step
    def weigh(grams: int) -> int:
        return grams

    @old.entry
    def old_main(grams: int) -> int:
        return weigh(grams)

    execution = old.run(jr, 1500)

    seen: list[tuple[str, str]] = []

    def to_kilograms(callable_id: str, kind: str, value: Any) -> Any:
        seen.append((callable_id, kind))
        if callable_id == "units" and kind == "input":
            return value  # the entry still takes grams
        if kind == "input":
            return {"kilograms": value["grams"] / 1000}
        return value / 1000

    new = Flow("units", accepts={old.schema_version: to_kilograms})

    @new.step(name="weigh", callable_id="units.weigh")
    def weigh_kg(kilograms: float) -> float:
        return kilograms

    @new.entry
    def new_main(grams: int) -> float:
        return weigh_kg(grams / 1000)

    assert new.schema_version != old.schema_version
    result = replay.replay(jr, execution.id, [new])
    # The step's input and output, and the entry's input and output, are all
    # upcast from grams to kilograms; then the re-run matches the record.
    assert result.verdict is Verdict.OK, result.report()
    assert result.steps_checked == 1
    assert sorted(set(seen)) == [
        ("units", "input"),
        ("units", "output"),
        ("units.weigh", "input"),
        ("units.weigh", "output"),
    ]


def test_a_recorded_input_that_no_longer_fits_the_entry_is_reported_as_such(
    jr: journal.Journal,
) -> None:
    old = Flow("fit")

    @old.entry
    def old_main(count: int) -> int:
        return count

    execution = old.run(jr, 3)
    new = Flow("fit", accepts=[old.schema_version])

    @new.entry
    def new_main(count: str) -> str:
        return count

    result = replay.replay(jr, execution.id, [new])
    assert result.verdict is Verdict.SCHEMA_MISMATCH
    assert result.schema_changes == (
        "fit (entry) input.count: int -> str",
        "fit (entry) output: int -> str",
    )

    new.accepts = {old.schema_version: lambda _id, _kind, value: value}
    result = replay.replay(jr, execution.id, [new])
    assert result.verdict is Verdict.DIVERGED
    assert result.divergence is not None
    assert "the recorded input does not fit fit's entry" in result.divergence.reason


def test_raise_on_failure_raises_schema_mismatch_error(jr: journal.Journal) -> None:
    execution = typed_flow([]).run(jr, "ord_1", AT)
    effects: list[str] = []

    with pytest.raises(SchemaMismatchError, match=r"typed\.total") as raised:
        replay.replay(
            jr,
            execution.id,
            [typed_flow(effects, total_type=float)],
            raise_on_failure=True,
        )

    failed = raised.value.result
    assert isinstance(failed, replay.ReplayResult)
    assert failed.verdict is Verdict.SCHEMA_MISMATCH
    assert effects == []


def test_a_schema_mismatch_names_an_entry_change_and_added_or_removed_steps() -> None:
    old = Flow("evolving")

    @old.step
    def gone(x: int) -> int:
        return x

    @old.entry
    def main(x: int) -> int:
        return x

    new = Flow("evolving")

    @new.step
    def fresh(x: int) -> int:
        return x

    @new.entry
    def main2(x: int, y: int) -> int:
        return x

    changes = diff_documents(old.schema_document, new.schema_document)
    assert list(map(str, changes)) == [
        "evolving (entry) input.y: added (required int)",
        "evolving.gone: step removed",
        "evolving.fresh: step added",
    ]


def test_a_missing_recorded_document_still_gives_schema_mismatch(
    jr: journal.Journal,
) -> None:
    handle = jr.create(flow="typed", schema_version="sha256:" + "0" * 64, input={})
    handle.start()

    result = replay.replay(jr, handle.id, [typed_flow([])])

    assert result.verdict is Verdict.SCHEMA_MISMATCH
    assert result.schema_changes == (
        f"the recorded document sha256:{'0' * 64} is not stored",
    )


def tools_and_flow(output_type: type) -> tuple[Callable[[str], Any], Flow]:
    """A step library (no entry) and a flow that declares it in `uses`."""
    tools = Flow("tools")

    def raw_lookup(key: str) -> Any:
        return output_type(key)

    raw_lookup.__annotations__ = {"key": str, "return": output_type}
    lookup = tools.step(
        step_type="ToolNode", name="lookup", callable_id="tools.lookup"
    )(raw_lookup)

    flow = Flow("uses_tools", uses=[tools])

    @flow.entry
    def main(key: str) -> str:
        return str(lookup(key))

    return lookup, flow


def test_a_step_library_declared_in_uses_is_part_of_the_schema(
    jr: journal.Journal,
) -> None:
    _, recorded_flow = tools_and_flow(str)
    execution = recorded_flow.run(jr, "7")
    assert execution.state is ExecutionState.COMPLETED
    assert replay.replay(jr, execution.id, [recorded_flow]).verdict is Verdict.OK
    _, changed = tools_and_flow(int)
    assert changed.schema_version != recorded_flow.schema_version
    result = replay.replay(jr, execution.id, [changed])
    assert result.verdict is Verdict.SCHEMA_MISMATCH
    assert result.schema_changes == ("tools.lookup output: str -> int",)


def test_calling_a_step_of_an_undeclared_flow_is_refused_and_recorded(
    jr: journal.Journal,
) -> None:
    lookup, _ = tools_and_flow(str)
    flow = Flow("forgot_uses")

    @flow.entry
    def main(key: str) -> str:
        try:
            return str(lookup(key))
        except Exception:  # a flow's own except must not hide the wiring error
            return "hidden"

    with pytest.raises(FlowDefinitionError, match=r"uses=\[tools\]"):
        flow.run(jr, "7")
    [summary] = jr.list(ListFilter(flow="forgot_uses"))
    assert summary.state == "Failed"


def test_a_child_flows_entry_signature_is_part_of_the_parents_schema() -> None:
    def parent_using(child_returns: type) -> Flow:
        child = Flow("kid")

        def kid(x: int) -> Any:
            return child_returns(x)

        kid.__annotations__ = {"x": int, "return": child_returns}
        child.entry(kid)
        parent = Flow("parent_of_kid", uses=[child])

        @parent.entry
        def main(x: int) -> str:
            return str(child.run_child(x))

        return parent

    before, after = parent_using(int), parent_using(str)
    assert before.schema_version != after.schema_version
    changes = diff_documents(before.schema_document, after.schema_document)
    assert list(map(str, changes)) == ["child flow kid output: int -> str"]
