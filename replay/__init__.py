"""Replay recorded executions against today's flow code.

``replay.replay(journal_, execution_id, flows=[...])`` verifies the chain,
folds the events, checks the schema hash, re-runs the entry and returns a
`ReplayResult` whose `verdict` is ok, integrity, schema_mismatch, diverged
or not_rerun.

The names below are imported on first use (PEP 562), so that importing
``replay.pytest_plugin``, which pytest does at every start-up once this
package is installed, costs nothing until ``--journal-replay`` is given.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from replay.replayer import replay as replay
    from replay.replayer import replay_all as replay_all
    from replay.replayer import replay_async as replay_async
    from replay.replayer import replay_events as replay_events
    from replay.replayer import replay_file as replay_file
    from replay.report import BatchResult as BatchResult
    from replay.report import Divergence as Divergence
    from replay.report import Outcome as Outcome
    from replay.report import ReplayResult as ReplayResult
    from replay.report import Verdict as Verdict

_HOMES = {
    "BatchResult": "replay.report",
    "Divergence": "replay.report",
    "Outcome": "replay.report",
    "ReplayResult": "replay.report",
    "Verdict": "replay.report",
    "replay": "replay.replayer",
    "replay_all": "replay.replayer",
    "replay_async": "replay.replayer",
    "replay_events": "replay.replayer",
    "replay_file": "replay.replayer",
}

__all__ = [
    "BatchResult",
    "Divergence",
    "Outcome",
    "ReplayResult",
    "Verdict",
    "replay",
    "replay_all",
    "replay_async",
    "replay_events",
    "replay_file",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'replay' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
