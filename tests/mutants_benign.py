"""Benign mutants: each changes the code of ``tests/mutation_flows.py`` in a way
no run can observe. Replay must always say `ok` to them."""

from __future__ import annotations

from tests.mutants import (
    AGENT_RETURN,
    AGENT_SCORE,
    AMOUNT_LINE,
    CHILD_CALL,
    GATHER,
    Mutant,
    ben,
)

BENIGN: list[Mutant] = [
    # renames of locals
    ben(
        "local rename",
        "evidence -> facts in the agent loop",
        ("    evidence: list[Evidence] = []\n", "    facts: list[Evidence] = []\n"),
        ("evidence.extend(found)", "facts.extend(found)"),
        ("len(evidence))", "len(facts))"),
        (AGENT_SCORE, AGENT_SCORE.replace("evidence", "facts")),
    ),
    ben("local rename", "written -> count", ("written", "count")),
    ben(
        "local rename",
        "request -> req",
        ("request = fetch_request(request_id)", "req = fetch_request(request_id)"),
        ("request.amount_cents, request.customer", "req.amount_cents, req.customer"),
        (CHILD_CALL, "review.run_child(req.request_id, risk)"),
        ("notify(request.customer,", "notify(req.customer,"),
    ),
    # renames of untagged Struct classes
    ben("struct rename", "Evidence -> Finding", ("Evidence", "Finding")),
    ben("struct rename", "Row -> Record", ("Row", "Record")),
    ben("struct rename", "Decision -> Outcome", ("Decision", "Outcome")),
    # comments and docstrings
    ben(
        "comments",
        "a comment in the loop",
        ("        rounds += 1\n", "        rounds += 1  # one more round done\n"),
    ),
    ben(
        "comments",
        "reworded docstrings",
        (
            "Ask the model which tools to call (an effect).",
            "Which tools next? (a model call)",
        ),
        ("A refund request as the shop sends it.", "The shop's refund request."),
    ),
    # formatting
    ben(
        "formatting",
        "the answer over several lines",
        (
            AGENT_RETURN,
            "    return Answer(\n        text=text,\n"
            "        rounds=rounds,\n        score=total,\n    )",
        ),
    ),
    ben(
        "formatting",
        "the gathered calls as a list",
        (
            GATHER,
            GATHER.replace(
                "*(call_tool(call) for call in calls)", "*[call_tool(c) for c in calls]"
            ),
        ),
    ),
    ben(
        "formatting",
        "redundant parentheses",
        (
            "amount_cents // 200 + len(customer)",
            "(amount_cents // 200) + len(customer)",
        ),
    ),
    # logging
    ben(
        "logging",
        "log each round",
        (
            "        calls = await plan(question, round_no)\n",
            '        log.info("round %d", round_no)\n'
            "        calls = await plan(question, round_no)\n",
        ),
    ),
    ben(
        "logging",
        "no debug line",
        ('    log.debug("agent gathered %d facts", len(evidence))\n', ""),
    ),
    # effect bodies (never run on replay)
    ben(
        "effect bodies",
        "tools answer differently",
        (
            'return Evidence(call.tool, f"{call.tool} says {call.argument}", 70)',
            'return Evidence(call.tool, f"{call.argument} via {call.tool}", 99)',
        ),
    ),
    ben(
        "effect bodies",
        "extract reads five rows",
        ("for i in range(3)", "for i in range(5)"),
    ),
    ben(
        "effect bodies",
        "a stricter reviewer",
        ("approved=risk < 90", "approved=risk < 10"),
    ),
    ben(
        "effect bodies",
        "notify says it differently",
        (
            'return f"sent to {customer} by {channel}"',
            'return f"{channel}: {customer}"',
        ),
    ),
    # equivalent refactors of pure code
    ben(
        "pure refactors",
        "score with sum()",
        (
            "    total = 0\n    for item in evidence:\n"
            "        total += item.confidence\n"
            "    return total\n",
            "    return sum(item.confidence for item in evidence)\n",
        ),
    ),
    ben(
        "pure refactors",
        "transform with a loop",
        (
            "    return [normalise(row) for row in rows]\n",
            "    out = []\n    for row in rows:\n        out.append(normalise(row))\n"
            "    return out\n",
        ),
    ),
    ben(
        "pure refactors",
        "risk capped with a conditional",
        (
            "return min(100, amount_cents // 200 + len(customer))",
            "raw = amount_cents // 200 + len(customer)\n"
            "    return raw if raw < 100 else 100",
        ),
    ),
    ben(
        "pure refactors",
        "normalise with keywords reordered",
        (
            'Row(key=row.key.upper(), value=row.value / 1000, unit="kg")',
            'Row(unit="kg", value=row.value / 1000, key=row.key.upper())',
        ),
    ),
    ben(
        "pure refactors",
        "rounds counted from the loop variable",
        ("        rounds += 1\n", "        rounds = round_no + 1\n"),
    ),
    # field order of keyed Structs
    ben(
        "keyed field order",
        "Request fields swapped",
        (
            AMOUNT_LINE + "    customer: str\n",
            "    customer: str\n" + AMOUNT_LINE,
        ),
    ),
    ben(
        "keyed field order",
        "Answer fields swapped",
        ("    rounds: int\n    score: int\n", "    score: int\n    rounds: int\n"),
    ),
    # Meta descriptions
    ben(
        "meta descriptions",
        "amount described differently",
        (
            'msgspec.Meta(description="what to refund")',
            'msgspec.Meta(description="cents to give back", title="Amount")',
        ),
    ),
    ben(
        "meta descriptions",
        "row values described",
        (
            "    value: float\n",
            "    value: Annotated[\n"
            '        float, msgspec.Meta(description="grams", examples=[1.5])\n'
            "    ]\n",
        ),
    ),
]
