"""Realistic flows for the mutation suite (`tests/test_mutations.py`).

The suite reads this file's *source*, applies one edit from its catalogue,
executes the edited source as a fresh module and replays what the unedited
module recorded. So every snippet a mutant edits must stay in this file as
it is: change a line here and the suite says which mutant no longer applies.

- ``agent``: an async tool loop. Each round asks a model for tool calls,
  calls the tools concurrently (``asyncio.gather``; an effect with retries,
  finishing in another order than it started), and a pure step scores the
  evidence; then a model writes the answer.
- ``approval``: a refund that a flaky shop API is fetched for (retried), a
  pure risk score, a ``review`` child flow above a threshold, a notification.
- ``pipeline``: a nested data pipeline over a step library (``etl``): batches
  extracted, normalised by a pure step that calls a pure step, loaded with a
  recorded batch id and load time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import msgspec

import journal
from journal import Flow, RetryPolicy

log = logging.getLogger("mutation_flows")

# --- the world the effect steps talk to ------------------------------------

#: Calls that fail once with a reset connection before they answer.
FLAKY_ONCE = {"weather:Lisbon", "req-2"}
_failed: set[str] = set()


def flaky(key: str) -> None:
    """Raise `ConnectionError` the first time `key` is asked for."""
    if key in FLAKY_ONCE and key not in _failed:
        _failed.add(key)
        raise ConnectionError(f"connection reset while asking for {key}")


# --- agent: a tool loop ------------------------------------------------------


class ToolCall(msgspec.Struct, frozen=True):
    """One tool call a model asked for."""

    tool: str
    argument: str


class Evidence(msgspec.Struct, frozen=True):
    """What a tool answered."""

    tool: str
    text: str
    confidence: int


class Answer(msgspec.Struct, frozen=True):
    """The agent's answer."""

    text: str
    rounds: int
    score: int


agent = Flow("agent")


@agent.step(step_type="LlmNode")
async def plan(question: str, round_no: int) -> list[ToolCall]:
    """Ask the model which tools to call (an effect)."""
    if round_no == 0:
        return [ToolCall("weather", "Lisbon"), ToolCall("search", question)]
    return [ToolCall("calculator", "21*2")]


@agent.step(step_type="ToolNode", retry=RetryPolicy.retrying(2))
async def call_tool(call: ToolCall) -> Evidence:
    """Run one tool (an effect: the weather API is flaky and slow)."""
    await asyncio.sleep(0.002 if call.tool == "weather" else 0)
    flaky(f"{call.tool}:{call.argument}")
    return Evidence(call.tool, f"{call.tool} says {call.argument}", 70)


@agent.step(pure=True)
def score(evidence: list[Evidence]) -> int:
    """Total confidence of the evidence (pure: re-run on replay)."""
    total = 0
    for item in evidence:
        total += item.confidence
    return total


@agent.step(step_type="LlmNode")
async def answer(question: str, evidence: list[Evidence]) -> str:
    """Ask the model for the final answer (an effect)."""
    return f"{question}: {len(evidence)} facts"


@agent.entry
async def run_agent(question: str) -> Answer:
    evidence: list[Evidence] = []
    rounds = 0
    for round_no in range(2):
        calls = await plan(question, round_no)
        found = await asyncio.gather(*(call_tool(call) for call in calls))
        evidence.extend(found)
        rounds += 1
    log.debug("agent gathered %d facts", len(evidence))
    total = score(evidence)
    text = await answer(question, evidence)
    return Answer(text=text, rounds=rounds, score=total)


# --- approval: retries and a child flow ---------------------------------------


class Request(msgspec.Struct, kw_only=True):
    """A refund request as the shop sends it."""

    request_id: str
    amount_cents: Annotated[int, msgspec.Meta(description="what to refund")]
    customer: str
    currency: str = "EUR"


class Decision(msgspec.Struct, kw_only=True):
    """A reviewer's or the rules' decision."""

    approved: bool
    by: str


review = Flow("review")


@review.step(step_type="LlmNode")
def ask_reviewer(request_id: str, risk: int) -> Decision:
    """Ask a (model-assisted) reviewer (an effect)."""
    return Decision(approved=risk < 90, by="reviewer-7")


@review.entry
def run_review(request_id: str, risk: int) -> Decision:
    return ask_reviewer(request_id, risk)


approval = Flow("approval", uses=[review])


@approval.step(step_type="ToolNode", retry=RetryPolicy.retrying(2))
def fetch_request(request_id: str) -> Request:
    """Read the request from the shop (an effect; the API is flaky)."""
    flaky(request_id)
    amount = 12_000 if request_id == "req-2" else 1_500
    return Request(request_id=request_id, amount_cents=amount, customer="c-1")


@approval.step(pure=True)
def risk_of(amount_cents: int, customer: str) -> int:
    """A risk score from 0 to 100 (pure)."""
    return min(100, amount_cents // 200 + len(customer))


@approval.step(step_type="ToolNode")
def notify(customer: str, approved: bool, channel: str = "email") -> str:
    """Tell the customer (an effect)."""
    return f"sent to {customer} by {channel}"


@approval.entry
def decide(request_id: str) -> Decision:
    request = fetch_request(request_id)
    risk = risk_of(request.amount_cents, request.customer)
    if risk > 50:
        decision: Decision = review.run_child(request.request_id, risk)
    else:
        decision = Decision(approved=True, by="rules")
    notify(request.customer, decision.approved)
    return decision


# --- pipeline: nested steps over a step library --------------------------------


class Row(msgspec.Struct, frozen=True, kw_only=True):
    """One record of the pipeline."""

    key: str
    value: float
    unit: str = "g"


etl = Flow("etl")


@etl.step(step_type="ToolNode")
def extract(source: str, batch: int) -> list[Row]:
    """Read one batch from a source (an effect)."""
    return [Row(key=f"{source}-{batch}-{i}", value=i * 1.5) for i in range(3)]


@etl.step(pure=True)
def normalise(row: Row) -> Row:
    """One row in kilograms (pure)."""
    return Row(key=row.key.upper(), value=row.value / 1000, unit="kg")


@etl.step(pure=True)
def transform(rows: list[Row]) -> list[Row]:
    """Every row normalised (pure, calling a pure step)."""
    return [normalise(row) for row in rows]


@etl.step(step_type="ToolNode")
def load(batch_id: str, rows: list[Row]) -> int:
    """Write a batch to the warehouse (an effect); returns rows written."""
    return len(rows)


pipeline = Flow("pipeline", uses=[etl])


@pipeline.entry
def run_pipeline(source: str, batches: int) -> int:
    written = 0
    for batch in range(batches):
        rows = extract(source, batch)
        batch_id = str(journal.uuid4())
        written += load(batch_id, transform(rows))
    journal.now()
    return written


#: What the suite records: (flow name, arguments) per execution.
RECORDINGS: list[tuple[str, tuple[object, ...]]] = [
    ("agent", ("weather in Lisbon?",)),
    ("approval", ("req-1",)),
    ("approval", ("req-2",)),
    ("pipeline", ("sensors", 2)),
]

#: Every flow the suite replays against (children and libraries included).
FLOWS = [agent, approval, review, pipeline]
