"""The OpenTelemetry export: OTLP/JSON a collector accepts, with ids that last."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

import journal
from journal import Flow, RetryPolicy, StepError
from journal.export import histories_with_children, read_blocks
from journal.keys import Keyring
from journal.otlp import SCHEMA_URL, SEMCONV_VERSION, span_id, to_otlp, trace_id
from journal.timeline import Timeline, build_timeline
from tests.cli_support import Invoke
from tests.flows_helpers import memory_journal

pytest_plugins = ["tests.cli_fixtures"]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ALL_FIXTURES = sorted(
    p.name for p in FIXTURES.glob("*.jsonl") if "tampered" not in p.name
)

nested = Flow("t.otlp_nested")


@nested.step(step_type="ToolNode")
def lookup(x: int) -> int:
    return x + 1


@nested.step(step_type="LlmNode")
def think(x: int) -> int:
    return lookup(x) * 2


@nested.entry
def nested_main(x: int) -> int:
    return think(x)


_failures: list[int] = []
flaky = Flow("t.otlp_flaky")


@flaky.step(step_type="ToolNode", retry=RetryPolicy.retrying(1))
def sometimes(x: int) -> int:
    if not _failures:
        _failures.append(x)
        raise ConnectionError("first call fails")
    return x


@flaky.entry
def flaky_main(x: int) -> int:
    try:
        return sometimes(x)
    except StepError:
        return -1


def fixture_timelines(name: str) -> list[Timeline]:
    return [
        build_timeline(block.header.execution_id, block.rows)
        for block in read_blocks(FIXTURES / name, Keyring())
    ]


def spans_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        span
        for resource in document["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]


def attributes(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}


def keys(value: Any) -> Iterator[str]:
    """Every object key in a JSON document, except attribute keys (values)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys(item)


def recorded(flow: Flow, *args: Any) -> list[Timeline]:
    with memory_journal() as journal_:
        execution = flow.run(journal_, *args)
        histories = histories_with_children(journal_, execution.id)
    return [build_timeline(h.summary.execution_id, h.rows) for h in histories]


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_fixture_exports_as_otlp_json_a_collector_parses(name: str) -> None:
    document = to_otlp(fixture_timelines(name))
    text = json.dumps(document)

    request = json_format.Parse(text, ExportTraceServiceRequest())

    spans = spans_of(document)
    assert len(request.resource_spans[0].scope_spans[0].spans) == len(spans)
    assert all(re.fullmatch(r"[a-z][a-zA-Z]*", key) for key in keys(document))
    for span in spans:
        assert isinstance(span["kind"], int)
        assert isinstance(span["status"]["code"], int)
        assert len(bytes.fromhex(span["traceId"])) == 16
        assert len(bytes.fromhex(span["spanId"])) == 8
        assert span["traceId"] == span["traceId"].lower()
        assert span["spanId"] == span["spanId"].lower()
        assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]) > 0


def test_the_same_execution_exported_twice_gives_identical_ids() -> None:
    first = spans_of(to_otlp(fixture_timelines("child_execution.jsonl")))
    second = spans_of(to_otlp(fixture_timelines("child_execution.jsonl")))

    ids = [(s["traceId"], s["spanId"], s.get("parentSpanId")) for s in first]
    assert ids == [(s["traceId"], s["spanId"], s.get("parentSpanId")) for s in second]
    assert len({span_id for _, span_id, _ in ids}) == len(ids)


def test_a_child_execution_is_a_child_span_of_the_step_that_called_it() -> None:
    parent, child = fixture_timelines("child_execution.jsonl")
    document = to_otlp([parent, child])

    assert len(document["resourceSpans"]) == 1  # one trace: the root's
    spans = spans_of(document)
    assert {s["traceId"] for s in spans} == {trace_id(parent.execution_id)}
    child_span = next(s for s in spans if s["spanId"] == span_id(child.execution_id))
    assert child.execution is not None
    assert child.execution.parent is not None
    calling_step = child.execution.parent.parent_id
    assert child_span["parentSpanId"] == span_id(parent.execution_id, calling_step)
    assert calling_step in {t.step.id for t in parent.steps}


def test_a_child_exported_alone_still_joins_its_parents_trace() -> None:
    parent, child = fixture_timelines("child_execution.jsonl")

    alone = spans_of(to_otlp([child]))

    assert {s["traceId"] for s in alone} == {trace_id(parent.execution_id)}


def test_nested_steps_are_child_spans_and_carry_genai_attributes() -> None:
    (timeline,) = recorded(nested, 3)
    spans = {s["name"]: s for s in spans_of(to_otlp([timeline]))}

    llm, tool = spans["chat think"], spans["execute_tool lookup"]
    execution_span = spans["t.otlp_nested"]
    assert llm["parentSpanId"] == execution_span["spanId"]
    assert tool["parentSpanId"] == llm["spanId"]
    assert attributes(tool)["gen_ai.operation.name"] == "execute_tool"
    assert attributes(tool)["gen_ai.tool.name"] == "lookup"
    assert attributes(llm)["gen_ai.operation.name"] == "chat"
    assert llm["kind"] == 3  # CLIENT, as the GenAI conventions ask of model calls


def test_a_retry_links_to_the_span_of_the_call_it_retries() -> None:
    _failures.clear()
    (timeline,) = recorded(flaky, 7)
    spans = spans_of(to_otlp([timeline]))

    first, retry = [s for s in spans if s["name"] == "execute_tool sometimes"]
    assert "links" not in first
    assert retry["links"][0]["spanId"] == first["spanId"]
    assert first["status"] == {"code": 2, "message": "first call fails"}
    assert attributes(first)["error.type"] == "NetworkError"


def test_spans_lead_back_to_the_chain_by_sequence_range_and_hash() -> None:
    (block,) = read_blocks(FIXTURES / "clean_current.jsonl", Keyring())
    timeline = build_timeline(block.header.execution_id, block.rows)
    spans = spans_of(to_otlp([timeline]))
    hashes = {row.seq: row.hash.hex() for row in block.rows}

    execution_span = attributes(spans[0])
    assert execution_span["journal.head"] == block.header.head
    for span in spans[1:]:
        found = attributes(span)
        first, last = int(found["journal.seq.first"]), int(found["journal.seq.last"])
        assert 1 <= first < last <= block.header.events
        assert found["journal.event.hash"] == hashes[last]


def test_the_semantic_conventions_version_is_pinned_in_the_schema_url() -> None:
    document = to_otlp(fixture_timelines("clean_current.jsonl"))

    (resource,) = document["resourceSpans"]
    assert resource["schemaUrl"] == SCHEMA_URL
    assert resource["scopeSpans"][0]["schemaUrl"].endswith(SEMCONV_VERSION)


def test_journal_export_format_otlp_writes_the_trace(
    invoke: Invoke, db: str, workdir: Path
) -> None:
    with journal.open(db) as journal_:
        execution = nested.run(journal_, 1)
    out = workdir / "trace.json"

    result = invoke(
        "--db", db, "export", execution.id, "--format", "otlp", "-o", str(out)
    )

    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    json_format.Parse(out.read_text(), ExportTraceServiceRequest())
    assert len(spans_of(document)) == 3
    printed = invoke("--db", db, "export", execution.id, "--format", "otlp")
    assert json.loads(printed.stdout) == document


def test_replay_never_loads_the_otlp_exporter() -> None:
    code = (
        "import sys, replay\n"
        "from fixtures import flows\n"
        "replay.replay_file('fixtures/clean_current.jsonl', [flows.orders])\n"
        "print('journal.otlp' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "False"
