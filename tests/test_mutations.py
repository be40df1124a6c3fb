"""The mutation suite: realistic flows recorded once, replayed against a fixed
catalogue of code mutants (`tests/mutants_semantic.py`,
`tests/mutants_benign.py`; the edits are explained in `tests/mutants.py`).

Every semantic mutant must be caught (never `ok`), every benign one must
replay `ok`. The rates per family are printed (``pytest -s`` shows them).
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sys
import types
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

import journal
import replay
from journal import Flow
from tests.conftest import backend_url, new_tenant
from tests.mutants import Mutant
from tests.mutants_benign import BENIGN
from tests.mutants_semantic import SEMANTIC

CATALOGUE = [*SEMANTIC, *BENIGN]
SOURCE_PATH = Path(__file__).resolve().parent / "mutation_flows.py"
SOURCE = SOURCE_PATH.read_text()


def mutated(mutant: Mutant | None) -> str:
    """The flows' source with `mutant`'s edits applied."""
    source = SOURCE
    for old, new in () if mutant is None else mutant.edits:
        assert old in source, f"{mutant}: {old!r} is not in {SOURCE_PATH.name}"
        source = source.replace(old, new)
    assert mutant is None or source != SOURCE
    return source


@contextmanager
def loaded(source: str, name: str) -> Iterator[types.ModuleType]:
    """`source` executed as module `name` (registered while it is in use,
    so that msgspec resolves the Structs' annotations)."""
    module = types.ModuleType(name)
    module.__file__ = str(SOURCE_PATH)
    sys.modules[name] = module
    try:
        exec(compile(source, f"<{name}>", "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules[name]


@dataclass(frozen=True)
class Outcome:
    """How replay judged one mutant: a verdict per recorded execution."""

    mutant: Mutant
    verdicts: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return all(verdict == "ok" for verdict in self.verdicts)

    @property
    def as_expected(self) -> bool:
        return self.ok is not self.mutant.semantic


def replay_against(jr: journal.Journal, mutant: Mutant, number: int) -> Outcome:
    with loaded(mutated(mutant), f"mutant_{number}") as module:
        flows: list[Flow] = module.FLOWS
        batch = replay.replay_all(jr, flows)
    return Outcome(mutant, tuple(r.verdict.value for r in batch.results))


def rates(outcomes: list[Outcome]) -> str:
    """A table: per family, mutants caught (semantic) or passed (benign)."""
    lines = [f"{'family':<22}{'kind':<10}{'result':>10}  verdicts"]
    families: dict[tuple[str, bool], list[Outcome]] = {}
    for outcome in outcomes:
        key = (outcome.mutant.family, outcome.mutant.semantic)
        families.setdefault(key, []).append(outcome)
    for (family, semantic), group in families.items():
        good = sum(o.as_expected for o in group)
        seen = Counter(v for o in group for v in o.verdicts if v != "ok")
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(seen.items())) or "-"
        label = "caught" if semantic else "ok"
        lines.append(
            f"{family:<22}{'semantic' if semantic else 'benign':<10}"
            f"{good:>3}/{len(group):<3}{label:<4}  {kinds}"
        )
    for semantic, label in ((True, "semantic caught"), (False, "benign ok")):
        group = [o for o in outcomes if o.mutant.semantic is semantic]
        good = sum(o.as_expected for o in group)
        lines.append(f"{label}: {good}/{len(group)} ({100 * good / len(group):.0f}%)")
    return "\n".join(lines)


@pytest.fixture
def recorded(sql_backend: str, tmp_path: Path) -> Iterator[journal.Journal]:
    """A store holding the flows' recordings, made by the unedited source."""
    url = backend_url(sql_backend, tmp_path)
    with (
        journal.open(url, tenant=new_tenant()) as jr,
        loaded(SOURCE, "mutation_base") as base,
    ):
        by_name = {flow.name: flow for flow in base.FLOWS}
        for flow_name, args in base.RECORDINGS:
            execution = by_name[flow_name].run(jr, *args)
            assert execution.state is journal.ExecutionState.COMPLETED, execution
        yield jr


def test_the_catalogue_has_40_semantic_and_20_benign_mutants_each_applying() -> None:
    assert len(SEMANTIC) >= 40
    assert len(BENIGN) >= 20
    assert len({m.what for m in CATALOGUE}) == len(CATALOGUE)
    for mutant in CATALOGUE:
        compile(mutated(mutant), mutant.what, "exec")


def test_the_recordings_hold_retries_a_child_and_recorded_values(
    recorded: journal.Journal,
) -> None:
    executions = [recorded.get(s.execution_id) for s in recorded.list()]

    steps = [step for e in executions for step in e.steps.values()]
    assert sum(step.is_retry for step in steps) == 2
    assert sum(e.parent is not None for e in executions) == 1
    assert sum(len(e.recorded_values) for e in executions) == 3
    (agent,) = (e for e in executions if e.flow == "agent")
    tools = [s for s in agent.ordered_steps() if s.name == "call_tool"]
    started = [msgspec.json.decode(s.input)["call"]["tool"] for s in tools]
    finished = sorted(tools, key=lambda s: s.ended_seq or 0)
    ended = [msgspec.json.decode(s.input)["call"]["tool"] for s in finished]
    # gathered calls finished in another order than they started
    assert started[:2] == ["weather", "search"]
    assert ended.index("search") < ended.index("weather")


def test_every_semantic_mutant_is_caught_and_no_benign_one_is(
    recorded: journal.Journal, sql_backend: str
) -> None:
    with loaded(SOURCE, "mutation_unedited") as unedited:
        assert replay.replay_all(recorded, unedited.FLOWS).ok

    outcomes = [
        replay_against(recorded, mutant, number)
        for number, mutant in enumerate(CATALOGUE)
    ]

    print(f"\nmutation suite on {sql_backend}:\n{rates(outcomes)}")
    wrong = [
        f"{o.mutant.family}: {o.mutant.what} -> {', '.join(o.verdicts)}"
        for o in outcomes
        if not o.as_expected
    ]
    assert wrong == []
