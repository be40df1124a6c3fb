"""The mutation suite's fixed catalogue of code mutants.

Each mutant is a set of text edits to ``tests/mutation_flows.py``, with the
family it belongs to. *Semantic* mutants change what the code does on the
recorded inputs (or what it accepts on the wire, or how it retries): replay
must never say `ok`. *Benign* mutants change nothing a run can observe:
replay must always say `ok`. Effect bodies are benign by definition: replay
never runs them, it answers with what they returned.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    """One code edit: `edits` are (old, new) replacements, each applied to
    every occurrence of `old` (which must occur)."""

    family: str
    semantic: bool
    what: str
    edits: tuple[tuple[str, str], ...]


def sem(family: str, what: str, *edits: tuple[str, str]) -> Mutant:
    return Mutant(family, True, what, edits)


def ben(family: str, what: str, *edits: tuple[str, str]) -> Mutant:
    return Mutant(family, False, what, edits)


AGENT_SCORE = (
    "    total = score(evidence)\n    text = await answer(question, evidence)\n"
)
AGENT_RETURN = "    return Answer(text=text, rounds=rounds, score=total)"
GATHER = "await asyncio.gather(*(call_tool(call) for call in calls))"
CHILD_CALL = "review.run_child(request.request_id, risk)"
AMOUNT_LINE = (
    '    amount_cents: Annotated[int, msgspec.Meta(description="what to refund")]\n'
)
BATCH_LINES = (
    "        rows = extract(source, batch)\n        batch_id = str(journal.uuid4())\n"
)
