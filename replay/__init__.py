"""Replay recorded executions against today's flow code.

``replay.replay(journal_, execution_id, flows=[...])`` verifies the chain,
folds the events, checks the schema hash, re-runs the entry and returns a
`ReplayResult` whose `verdict` is ok, integrity, schema_mismatch, diverged
or not_rerun.
"""

from replay.replayer import replay as replay
from replay.replayer import replay_all as replay_all
from replay.replayer import replay_events as replay_events
from replay.replayer import replay_file as replay_file
from replay.report import BatchResult as BatchResult
from replay.report import Divergence as Divergence
from replay.report import ReplayResult as ReplayResult
from replay.report import Verdict as Verdict

__all__ = [
    "BatchResult",
    "Divergence",
    "ReplayResult",
    "Verdict",
    "replay",
    "replay_all",
    "replay_events",
    "replay_file",
]
