"""Older schema document formats keep gating what was recorded under them,
and retries are behaviour: a changed retry policy is never `ok`."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from unittest import mock

import msgspec
import pytest

import journal
import replay
from fixtures import flows as golden
from journal import Flow, RetryPolicy
from journal.model import Execution
from replay import Verdict
from tests.flows_helpers import memory_journal

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
pytest_plugins = ["tests.cli_fixtures"]


def record_under_format(
    flow: Flow, jr: journal.Journal, schema_format: int, *args: Any
) -> Execution:
    """Run `flow` as code from before format `schema_format` + 1 did."""
    document = property(lambda f: f.schema_document_for(schema_format))
    with mock.patch.object(Flow, "schema_document", document):
        return flow.run(jr, *args)


def pricing(
    amount: Any = int, *, default: int = 0, retry: RetryPolicy | None = None
) -> Flow:
    flow = Flow("pricing")

    def quote(sku: str, amount: int = default) -> int:  # annotations set below
        return amount * 2

    quote.__annotations__ = {"sku": str, "amount": amount, "return": int}
    step = flow.step(step_type="ToolNode", retry=retry)(quote)

    @flow.entry
    def main(sku: str) -> int:
        return int(step(sku, 21))

    return flow


def test_a_format_1_recording_is_gated_with_format_1s_rules() -> None:
    with memory_journal() as jr:
        execution = record_under_format(pricing(), jr, 1, "sku-1")
        assert execution.schema_version == pricing().schema_version_for(1)
        # Format 1 does not see defaults or constraints: not a mismatch there.
        looser = pricing(Annotated[int, msgspec.Meta(ge=0)], default=5)
        result = replay.replay(jr, execution.id, [looser])

    assert looser.schema_version_for(1) == execution.schema_version
    assert looser.schema_version != pricing().schema_version
    assert result.verdict is Verdict.OK, result.report()
    assert result.schema_format == 1
    assert (
        "  recorded under schema document format 1: gated with format 1's rules "
        "(today's is format 2)" in result.report().splitlines()
    )


def test_a_format_1_mismatch_is_reported_in_format_1s_terms() -> None:
    with memory_journal() as jr:
        execution = record_under_format(pricing(), jr, 1, "sku-1")
        result = replay.replay(jr, execution.id, [pricing(float)])

    assert result.verdict is Verdict.SCHEMA_MISMATCH
    assert result.schema_changes == ("pricing.quote input.amount: int -> float",)
    assert result.schema_format == 1
    assert "gated with format 1's rules" in result.report()


def test_a_format_2_recording_sees_what_format_1_did_not() -> None:
    with memory_journal() as jr:
        execution = pricing().run(jr, "sku-1")
        result = replay.replay(jr, execution.id, [pricing(default=5)])

    assert result.verdict is Verdict.SCHEMA_MISMATCH
    assert result.schema_changes == ("pricing.quote input.amount: default 0 -> 5",)
    assert result.schema_format == 2


FLAKY: dict[str, int] = {}


def flaky_flow(retry: RetryPolicy, failures: int = 1) -> Flow:
    """``flaky.fetch`` fails `failures` times per key, then answers."""
    flow = Flow("flaky")

    @flow.step(step_type="ToolNode", retry=retry)
    def fetch(key: str) -> str:
        FLAKY[key] = FLAKY.get(key, 0) + 1
        if FLAKY[key] <= failures:
            raise ConnectionError(f"reset while fetching {key}")
        return key.upper()

    @flow.entry
    def main(key: str) -> str:
        try:
            return fetch(key)
        except journal.StepError:
            return "gave up"

    return flow


@pytest.mark.parametrize(
    ("recorded_retries", "failures", "today_retries", "reason"),
    [
        pytest.param(
            2,
            1,
            0,
            "flaky.fetch attempt 1 failed (NetworkError) and was retried; today's "
            "retry policy (max_retries 0) would not retry it",
            id="lowered",
        ),
        pytest.param(
            1,
            5,
            3,
            "flaky.fetch attempt 2 failed (NetworkError) and was not retried; "
            "today's retry policy (max_retries 3) would retry it",
            id="raised",
        ),
    ],
)
def test_a_changed_retry_policy_is_never_ok_even_when_accepted(
    recorded_retries: int, failures: int, today_retries: int, reason: str
) -> None:
    FLAKY.clear()
    old = flaky_flow(RetryPolicy.retrying(recorded_retries), failures)
    today = flaky_flow(RetryPolicy.retrying(today_retries), failures)
    with memory_journal() as jr:
        execution = old.run(jr, f"key-{today_retries}")
        gated = replay.replay(jr, execution.id, [today])
        # A policy is not a value: accepting the old hash needs no upcaster,
        # and the re-run still says the attempts could not happen today.
        today.accepts = {old.schema_version: None}
        rerun = replay.replay(jr, execution.id, [today])

    assert gated.verdict is Verdict.SCHEMA_MISMATCH
    assert gated.schema_changes == (
        f"flaky.fetch retry.max_retries: {recorded_retries} -> {today_retries}",
        *(("flaky.fetch retry.retryable: true -> false",) if not today_retries else ()),
    )
    assert rerun.verdict is Verdict.DIVERGED, rerun.report()
    assert rerun.divergence is not None
    assert rerun.divergence.reason == reason


def test_a_format_1_recording_with_a_changed_retry_policy_diverges() -> None:
    """Format 1 has no retry policy, so its gate passes; the re-run does not."""
    fatal = Flow("golden_orders")
    today = golden.orders.steps
    fetch_items, subtotal, write_note = (
        fatal.step(step_type=step.step_type, pure=step.pure, retry=RetryPolicy.fatal())(
            step.function
        )
        for step in (
            today[f"golden_orders.{name}"]
            for name in ("fetch_items", "subtotal", "write_note")
        )
    )

    @fatal.entry
    def place_order(order_id: str) -> golden.Receipt:
        items = fetch_items(order_id)
        total = subtotal(items)
        lucky = journal.random() < 0.5
        return golden.Receipt(order_id, total, write_note(total), lucky)

    batch = replay.replay_file(FIXTURES / "retried_step.jsonl", [fatal])

    (result,) = batch.results
    assert result.schema_format == 1
    assert result.verdict is Verdict.DIVERGED, result.report()
    assert result.divergence is not None
    assert "today's retry policy (max_retries 0) would not retry it" in (
        result.divergence.reason
    )


def test_the_script_prints_one_line_per_change_and_how_to_accept_it(
    run_script: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    path = str(FIXTURES / "schema_mismatch.jsonl")
    imported = run_script("--tenant", "tenant_golden", "import", path)
    assert imported.returncode == 0, imported.stderr
    (block,) = replay.replay_file(path).results

    result = run_script(
        "--tenant",
        "tenant_golden",
        "replay",
        block.execution_id,
        "--flows",
        "fixtures.flows",
        PYTHONPATH=str(REPO),
    )

    assert result.returncode == 4, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"{block.execution_id}: schema_mismatch — recorded schema differs from "
        "flow 'golden_orders': 1 change"
    )
    assert "  changed: golden_orders.subtotal output: float -> int" in lines
    assert (
        "  recorded under schema document format 1: gated with format 1's rules "
        "(today's is format 2)"
    ) in lines
    assert (
        "  to accept it: Flow('golden_orders', accepts="
        f"{{{block.recorded_schema!r}: upcaster}})"
    ) in lines
