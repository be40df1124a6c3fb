"""``diff`` (two executions side by side) and ``schema`` (loaded flows)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from cli.errors import CliError
from cli.options import App, command
from cli.params import EXECUTION_ID
from cli.views import compact, decoded, error_view

if TYPE_CHECKING:
    from journal.application import VerifiedHistory
    from journal.model import Execution, Step

EXECUTION_FIELDS = ("flow", "state", "schema_version", "input", "output", "error")


def _execution_fields(execution: Execution) -> dict[str, Any]:
    return {
        "flow": execution.flow,
        "state": execution.state_label,
        "schema_version": execution.schema_version,
        "input": decoded(bytes(execution.input)),
        "output": decoded(bytes(execution.output)),
        "error": error_view(execution.error),
    }


def _step_fields(step: Step | None) -> dict[str, Any] | None:
    if step is None:
        return None
    error = error_view(step.error)
    return {
        "name": step.name,
        "callable_id": step.callable_id,
        "step_type": step.step_type,
        "state": step.state.value,
        "input": decoded(bytes(step.input)),
        "output": decoded(bytes(step.output)),
        "error": error and {k: error[k] for k in ("category", "message")},
    }


def _differing(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[str]:
    if a is None or b is None:
        return ["missing"]
    return [key for key in a if a[key] != b[key]]


def compare(a: Execution, b: Execution) -> dict[str, Any]:
    """What differs, never comparing ids, times or durations."""
    fa, fb = _execution_fields(a), _execution_fields(b)
    steps_a, steps_b = a.ordered_steps(), b.ordered_steps()
    steps = []
    for index in range(max(len(steps_a), len(steps_b))):
        va = _step_fields(steps_a[index] if index < len(steps_a) else None)
        vb = _step_fields(steps_b[index] if index < len(steps_b) else None)
        steps.append({"index": index, "a": va, "b": vb, "differs": _differing(va, vb)})
    differs = _differing(fa, fb)
    return {
        "a": a.id,
        "b": b.id,
        "same": not differs and not any(step["differs"] for step in steps),
        "execution": {"a": fa, "b": fb, "differs": differs},
        "steps": steps,
    }


def _side(view: dict[str, Any] | None) -> str:
    if view is None:
        return "-"
    return f"{view['name']} ({view['state']})"


def print_diff(app: App, result: dict[str, Any]) -> None:
    execution = result["execution"]
    rows = [
        (
            key,
            compact(execution["a"][key], 40),
            compact(execution["b"][key], 40),
            "DIFFERS" if key in execution["differs"] else "same",
        )
        for key in EXECUTION_FIELDS
    ]
    app.out.table(("", result["a"], result["b"], ""), rows)
    step_rows = [
        (s["index"], _side(s["a"]), _side(s["b"]), ", ".join(s["differs"]))
        for s in result["steps"]
    ]
    app.out.line()
    app.out.table(("#", "a", "b", "differs"), step_rows, title="steps")
    app.out.line()
    if result["same"]:
        app.out.line("same: step order, inputs, outputs, errors and states match")
        return
    places = [f"execution {key}" for key in execution["differs"]] + [
        f"step {s['index']} {'/'.join(s['differs'])}"
        for s in result["steps"]
        if s["differs"]
    ]
    app.out.line(f"differ in {len(places)} place(s): {'; '.join(places)}")


def print_schema(app: App, flows: list[Any]) -> None:
    from cli.output import dump_json

    for flow in flows:
        app.out.styled(f"{flow.name}  {flow.schema_version}", "bold")
        app.out.line(dump_json(flow.schema_document))


def _state(history: VerifiedHistory) -> Execution:
    if history.state is None:
        raise CliError(
            f"{history.summary.execution_id} was written through eventsourcing's "
            "interface: it has no steps to compare"
        )
    return history.state


def chain_view(history: VerifiedHistory) -> dict[str, Any]:
    """The ``chain`` field of a ``--json`` output: verified, its head and
    binding, and the key that signed it."""
    from journal.binding import binding_of
    from journal.chain import format_head

    return {
        "ok": True,
        "head": format_head(*history.head),
        "binding": binding_of(history.summary),
        "key_id": history.summary.key_id,
    }


def register(group: click.Group) -> None:
    @command(group, "diff")
    @click.argument("execution_a", type=EXECUTION_ID)
    @click.argument("execution_b", type=EXECUTION_ID)
    def diff_command(app: App, execution_a: str, execution_b: str) -> None:
        """Compare two executions step by step (exit 0 either way).

        Both histories are verified first (chain, index row, fold): a broken
        one exits 6 and nothing is compared."""
        with app.open() as journal_:
            verified = [journal_.history(i) for i in (execution_a, execution_b)]
        a, b = (_state(history) for history in verified)
        result = compare(a, b)
        if app.out.json_mode:
            result["chain"] = {
                side: chain_view(history)
                for side, history in zip(("a", "b"), verified, strict=True)
            }
            app.out.json(result)
        else:
            print_diff(app, result)

    @command(group, "schema")
    def schema_command(app: App) -> None:
        """Print the schema_version hash and document of each loaded flow."""
        flows = app.flows
        if not flows:
            raise CliError(
                "no flows loaded: pass --flows MODULE, set JOURNAL_FLOWS or "
                "[tool.journal] flows in pyproject.toml"
            )
        if app.out.json_mode:
            app.out.json(
                {
                    "flows": [
                        {
                            "name": flow.name,
                            "schema_version": flow.schema_version,
                            "document": flow.schema_document,
                        }
                        for flow in flows
                    ]
                }
            )
            return
        print_schema(app, flows)
