"""Replay results: verdicts, divergence reports, text and JUnit XML."""

from __future__ import annotations

import difflib
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

import msgspec

from journal.model import Step


class Verdict(enum.StrEnum):
    """What a replay concluded."""

    OK = "ok"
    INTEGRITY = "integrity"
    SCHEMA_MISMATCH = "schema_mismatch"
    DIVERGED = "diverged"
    NOT_RERUN = "not_rerun"


def plural(count: int, noun: str) -> str:
    """``1 step``, ``2 steps``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def step_view(step: Step | None) -> dict[str, Any] | None:
    """The comparable parts of a recorded step (never ids, times, durations)."""
    if step is None:
        return None
    view: dict[str, Any] = {
        "name": step.name,
        "callable_id": step.callable_id,
        "step_type": step.step_type,
        "state": step.state.value,
    }
    if step.error is not None:
        view["error"] = f"{step.error.category.value}: {step.error.message}"
    return view


def value_view(payload: bytes) -> Any:
    """Decode JSON bytes for display (the raw text if they do not decode)."""
    try:
        return msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return payload.decode(errors="replace")


def _pretty(value: Any) -> list[str]:
    return json.dumps(value, indent=2, sort_keys=True, default=str).splitlines()


@dataclass(frozen=True)
class Divergence:
    """Where and how the re-run first differed from the record."""

    index: int
    reason: str
    recorded_step: dict[str, Any] | None = None
    recorded_value: Any = None
    produced_step: dict[str, Any] | None = None
    produced_value: Any = None

    @property
    def diff(self) -> str:
        """A unified diff of recorded against produced (step and value).

        Only the step fields both sides have are compared: a call that was
        not matched has no state yet, which is not a difference.
        """
        recorded_step, produced_step = self.recorded_step, self.produced_step
        if recorded_step is not None and produced_step is not None:
            shared = recorded_step.keys() & produced_step.keys()
            recorded_step = {k: v for k, v in recorded_step.items() if k in shared}
            produced_step = {k: v for k, v in produced_step.items() if k in shared}
        recorded = {"step": recorded_step, "value": self.recorded_value}
        produced = {"step": produced_step, "value": self.produced_value}
        lines = difflib.unified_diff(
            _pretty(recorded), _pretty(produced), "recorded", "produced", lineterm=""
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "reason": self.reason,
            "recorded_step": self.recorded_step,
            "recorded_value": self.recorded_value,
            "produced_step": self.produced_step,
            "produced_value": self.produced_value,
            "diff": self.diff,
        }


@dataclass(frozen=True)
class ReplayResult:
    """The outcome of replaying one execution."""

    verdict: Verdict
    execution_id: str
    message: str
    flow: str | None = None
    recorded_schema: str | None = None
    current_schema: str | None = None
    events_checked: int = 0
    steps_checked: int = 0
    duration_ms: float = 0.0
    head: str | None = None
    divergence: Divergence | None = None
    schema_changes: tuple[str, ...] = ()
    source: str | None = None
    schema_format: int | None = None
    schema_notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "execution_id": self.execution_id,
            "message": self.message,
            "flow": self.flow,
            "recorded_schema": self.recorded_schema,
            "current_schema": self.current_schema,
            "events_checked": self.events_checked,
            "steps_checked": self.steps_checked,
            "duration_ms": round(self.duration_ms, 3),
            "head": self.head,
            "divergence": None
            if self.divergence is None
            else self.divergence.to_dict(),
            "schema_changes": list(self.schema_changes),
            "schema_format": self.schema_format,
            "schema_notes": list(self.schema_notes),
            "source": self.source,
        }

    def report(self) -> str:
        """A human-readable, multi-line report."""
        lines = [
            f"{self.execution_id}: {self.verdict.value} — "
            + self.message.removeprefix(f"{self.execution_id}: "),
            f"  flow {self.flow or '-'}; {plural(self.events_checked, 'event')}, "
            f"{plural(self.steps_checked, 'step')} checked "
            f"in {self.duration_ms:.1f} ms",
        ]
        if self.recorded_schema or self.current_schema:
            lines.append(f"  recorded schema {self.recorded_schema or '-'}")
            lines.append(f"  current schema  {self.current_schema or '-'}")
        lines.extend(f"  changed: {change}" for change in self.schema_changes)
        lines.extend(f"  {note}" for note in self.schema_notes)
        if self.divergence is not None:
            lines.append(
                f"  at step index {self.divergence.index}: {self.divergence.reason}"
            )
            lines.extend("  " + line for line in self.divergence.diff.splitlines())
        return "\n".join(lines)


@dataclass(frozen=True)
class BatchResult:
    """Many replays: results, counts, and a JUnit XML report."""

    results: Sequence[ReplayResult] = field(default_factory=tuple)
    duration_ms: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        counts = {verdict.value: 0 for verdict in Verdict}
        for result in self.results:
            counts[result.verdict.value] += 1
        return counts

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    def junit_xml(self, name: str = "journal-replay") -> str:
        """JUnit XML that CI systems display: one test case per execution."""
        failures = sum(1 for r in self.results if r.verdict is not Verdict.OK)
        suite = ElementTree.Element(
            "testsuite",
            name=name,
            tests=str(len(self.results)),
            failures=str(failures),
            errors="0",
            time=f"{self.duration_ms / 1000:.3f}",
        )
        for result in self.results:
            case = ElementTree.SubElement(
                suite,
                "testcase",
                classname=f"replay.{result.flow or 'unknown'}",
                name=result.source or result.execution_id,
                time=f"{result.duration_ms / 1000:.3f}",
            )
            if result.verdict is not Verdict.OK:
                failure = ElementTree.SubElement(
                    case, "failure", message=result.message, type=result.verdict.value
                )
                failure.text = result.report()
        ElementTree.indent(suite)
        return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)
