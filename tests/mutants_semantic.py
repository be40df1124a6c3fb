"""Semantic mutants: each changes what the flows in ``tests/mutation_flows.py``
do on the recorded inputs, what they accept on the wire or how they retry.
Replay must never say `ok` to any of them."""

from __future__ import annotations

from tests.mutants import (
    AGENT_RETURN,
    AGENT_SCORE,
    BATCH_LINES,
    CHILD_CALL,
    GATHER,
    Mutant,
    sem,
)

SEMANTIC: list[Mutant] = [
    # arithmetic
    sem(
        "arithmetic",
        "score adds one per item",
        ("total += item.confidence", "total += item.confidence + 1"),
    ),
    sem(
        "arithmetic",
        "risk divides by 100",
        ("amount_cents // 200", "amount_cents // 100"),
    ),
    sem(
        "arithmetic",
        "normalise divides by 100",
        ("row.value / 1000", "row.value / 100"),
    ),
    sem(
        "arithmetic",
        "pipeline counts one more per batch",
        (
            "written += load(batch_id, transform(rows))",
            "written += load(batch_id, transform(rows)) + 1",
        ),
    ),
    # arguments
    sem(
        "arguments",
        "plan is asked for the next round",
        ("plan(question, round_no)", "plan(question, round_no + 1)"),
    ),
    sem(
        "arguments",
        "answer gets the question upper-cased",
        ("await answer(question,", "await answer(question.upper(),"),
    ),
    sem(
        "arguments",
        "notify by sms",
        (
            "    notify(request.customer, decision.approved)\n",
            '    notify(request.customer, decision.approved, "sms")\n',
        ),
    ),
    sem(
        "arguments",
        "extract the next batch",
        ("rows = extract(source, batch)", "rows = extract(source, batch + 1)"),
    ),
    # order
    sem(
        "order",
        "tool calls in reverse order",
        (GATHER, GATHER.replace("in calls", "in reversed(calls)")),
    ),
    sem(
        "order",
        "batches in reverse order",
        ("for batch in range(batches):", "for batch in reversed(range(batches)):"),
    ),
    sem(
        "order",
        "answer before score",
        (
            AGENT_SCORE,
            "    text = await answer(question, evidence)\n"
            "    total = score(evidence)\n",
        ),
    ),
    # dropped calls
    sem(
        "dropped call",
        "no notification",
        ("    notify(request.customer, decision.approved)\n", ""),
    ),
    sem(
        "dropped call",
        "score computed inline, step not called",
        ("total = score(evidence)", "total = sum(e.confidence for e in evidence)"),
    ),
    sem(
        "dropped call",
        "rows loaded untransformed",
        ("load(batch_id, transform(rows))", "load(batch_id, rows)"),
    ),
    sem(
        "dropped call",
        "no recorded batch id",
        ("batch_id = str(journal.uuid4())", 'batch_id = "batch"'),
    ),
    sem(
        "dropped call",
        "only the first gathered tool call",
        (GATHER, GATHER.replace("in calls", "in calls[:1]")),
    ),
    # added calls
    sem(
        "added call",
        "notified twice",
        (
            "    notify(request.customer, decision.approved)\n",
            "    notify(request.customer, decision.approved)\n" * 2,
        ),
    ),
    sem(
        "added call",
        "a second load time drawn",
        ("    journal.now()\n", "    journal.now()\n    journal.now()\n"),
    ),
    sem(
        "added call",
        "an extra tool call each round",
        (
            "        rounds += 1\n",
            '        rounds += 1\n        await call_tool(ToolCall("clock", "now"))\n',
        ),
    ),
    # loop bounds
    sem(
        "loop bounds",
        "one round only",
        ("for round_no in range(2):", "for round_no in range(1):"),
    ),
    sem(
        "loop bounds",
        "three rounds",
        ("for round_no in range(2):", "for round_no in range(3):"),
    ),
    sem(
        "loop bounds",
        "one batch fewer",
        ("for batch in range(batches):", "for batch in range(batches - 1):"),
    ),
    sem(
        "loop bounds",
        "score skips the first item",
        ("for item in evidence:", "for item in evidence[1:]:"),
    ),
    # retry policies
    sem(
        "retry policy",
        "tools not retried",
        (
            '@agent.step(step_type="ToolNode", retry=RetryPolicy.retrying(2))',
            '@agent.step(step_type="ToolNode", retry=RetryPolicy.retrying(0))',
        ),
    ),
    sem(
        "retry policy",
        "fetch_request fatal",
        (
            '@approval.step(step_type="ToolNode", retry=RetryPolicy.retrying(2))',
            '@approval.step(step_type="ToolNode", retry=RetryPolicy.fatal())',
        ),
    ),
    sem(
        "retry policy",
        "fetch_request retried five times",
        (
            '@approval.step(step_type="ToolNode", retry=RetryPolicy.retrying(2))',
            '@approval.step(step_type="ToolNode", retry=RetryPolicy.retrying(5))',
        ),
    ),
    # types
    sem(
        "types",
        "confidence as float",
        ("    confidence: int\n", "    confidence: float\n"),
    ),
    sem(
        "types",
        "amount as float",
        ("amount_cents: Annotated[int,", "amount_cents: Annotated[float,"),
    ),
    sem(
        "types",
        "risk as float",
        (
            "def risk_of(amount_cents: int, customer: str) -> int:",
            "def risk_of(amount_cents: int, customer: str) -> float:",
        ),
    ),
    # constraints
    sem(
        "constraints",
        "confidence at most 50",
        (
            "    confidence: int\n",
            "    confidence: Annotated[int, msgspec.Meta(le=50)]\n",
        ),
    ),
    sem(
        "constraints",
        "row keys at most 4 characters",
        ("    key: str\n", "    key: Annotated[str, msgspec.Meta(max_length=4)]\n"),
    ),
    sem(
        "constraints",
        "request ids must look like orders",
        (
            "def fetch_request(request_id: str)",
            "def fetch_request(\n"
            '    request_id: Annotated[str, msgspec.Meta(pattern="^ord-")],\n)',
        ),
    ),
    # defaults
    sem(
        "defaults",
        "currency defaults to USD",
        ('currency: str = "EUR"', 'currency: str = "USD"'),
    ),
    sem(
        "defaults",
        "notify defaults to sms",
        ('channel: str = "email"', 'channel: str = "sms"'),
    ),
    sem("defaults", "unit defaults to mg", ('unit: str = "g"', 'unit: str = "mg"')),
    # required fields
    sem(
        "required fields",
        "currency required",
        ('currency: str = "EUR"', "currency: str"),
    ),
    sem(
        "required fields",
        "rows need a source",
        ('    unit: str = "g"\n', '    unit: str = "g"\n    source: str\n'),
    ),
    sem(
        "required fields",
        "answers need a model name",
        ("    score: int\n", "    score: int\n    model: str\n"),
    ),
    # child calls
    sem(
        "child calls",
        "child asked with a higher risk",
        (CHILD_CALL, "review.run_child(request.request_id, risk + 1)"),
    ),
    sem(
        "child calls",
        "child replaced by the rules",
        (
            f"decision: Decision = {CHILD_CALL}",
            'decision = Decision(approved=True, by="rules")',
        ),
    ),
    sem(
        "child calls",
        "the child asks about a higher risk",
        (
            "return ask_reviewer(request_id, risk)",
            "return ask_reviewer(request_id, risk + 1)",
        ),
    ),
    # helper moves
    sem(
        "helper moves",
        "load time drawn first",
        ("    written = 0\n", "    written = 0\n    journal.now()\n"),
        ("    journal.now()\n    return written", "    return written"),
    ),
    sem(
        "helper moves",
        "batch id drawn before extracting",
        (
            BATCH_LINES,
            "        batch_id = str(journal.uuid4())\n"
            "        rows = extract(source, batch)\n",
        ),
    ),
    sem(
        "helper moves",
        "a random number for the batch id",
        ("str(journal.uuid4())", "str(journal.random())"),
    ),
    # branch swaps
    sem(
        "branch swaps", "review the small refunds", ("if risk > 50:", "if risk <= 50:")
    ),
    sem("branch swaps", "review every refund", ("if risk > 50:", "if risk > 5:")),
    # return values
    sem(
        "return values",
        "one round more reported",
        (AGENT_RETURN, AGENT_RETURN.replace("rounds=rounds", "rounds=rounds + 1")),
    ),
    sem(
        "return values",
        "decided by the system",
        (
            "    return decision\n",
            '    return Decision(approved=decision.approved, by="system")\n',
        ),
    ),
    sem(
        "return values",
        "twice the rows",
        ("    return written\n", "    return written * 2\n"),
    ),
    sem(
        "return values",
        "transform keeps two rows",
        (
            "return [normalise(row) for row in rows]",
            "return [normalise(row) for row in rows][:2]",
        ),
    ),
]
