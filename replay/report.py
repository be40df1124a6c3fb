"""Replay results: verdicts, divergence reports, text and JUnit XML."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from journal.divergence import Divergence as Divergence
from journal.divergence import step_view as step_view
from journal.divergence import value_view as value_view


class Verdict(enum.StrEnum):
    """What a replay concluded."""

    OK = "ok"
    INTEGRITY = "integrity"
    SCHEMA_MISMATCH = "schema_mismatch"
    DIVERGED = "diverged"
    NOT_RERUN = "not_rerun"
    #: In a batch: this execution (or file) could not be read at all (a
    #: decode or store error); the batch went on with the others.
    ERROR = "error"


class Outcome(enum.StrEnum):
    """What a replay counts as in CI: the one rule the CLI's exit code, the
    JUnit XML and the pytest plugin share (docs/replay-ci.md)."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


def outcome_of(verdict: Verdict, *, fold_only: bool, flow: str | None) -> Outcome:
    """The rule. ``ok`` passes. ``not_rerun`` passes when only a fold was
    asked (``--fold-only``), is skipped when the execution was recorded
    without a flow (there is no code to re-run; its chain and fold were
    checked), and fails when its flow is not loaded. Every other verdict
    fails."""
    if verdict is Verdict.OK:
        return Outcome.PASSED
    if verdict is Verdict.NOT_RERUN:
        if fold_only:
            return Outcome.PASSED
        return Outcome.SKIPPED if flow is None else Outcome.FAILED
    return Outcome.FAILED


def plural(count: int, noun: str) -> str:
    """``1 step``, ``2 steps``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


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
    #: Only verify and fold were asked (``not_rerun`` then passes).
    fold_only: bool = False

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    @property
    def outcome(self) -> Outcome:
        """Passed, failed or skipped, by the one CI rule (`outcome_of`)."""
        return outcome_of(self.verdict, fold_only=self.fold_only, flow=self.flow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "outcome": self.outcome.value,
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
    def failed(self) -> list[ReplayResult]:
        """The results that count as failures (`Outcome.FAILED`)."""
        return [r for r in self.results if r.outcome is Outcome.FAILED]

    @property
    def ok(self) -> bool:
        """Nothing failed (skipped executions are not failures)."""
        return not self.failed

    def junit_xml(self, name: str = "journal-replay") -> str:
        """JUnit XML that CI systems display: one test case per execution,
        failed and skipped by the same rule as the exit code."""
        skipped = [r for r in self.results if r.outcome is Outcome.SKIPPED]
        suite = ElementTree.Element(
            "testsuite",
            name=name,
            tests=str(len(self.results)),
            failures=str(len(self.failed)),
            errors="0",
            skipped=str(len(skipped)),
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
            if result.outcome is Outcome.FAILED:
                failure = ElementTree.SubElement(
                    case, "failure", message=result.message, type=result.verdict.value
                )
                failure.text = result.report()
            elif result.outcome is Outcome.SKIPPED:
                ElementTree.SubElement(case, "skipped", message=result.message)
        ElementTree.indent(suite)
        return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)
