"""Anchor benchmarks: what other tools cost on the same workload shape.

Each module measures one external reference point (raw SQLite with a hash chain,
eventsourcing's stock path, Temporal's Replayer, LangGraph's SQLite checkpointer)
so that the journal's own figures can be printed beside them, as ratios, from the
same run. Third-party libraries are imported inside the functions that need
them, so importing this package never fails when the ``bench`` extra is missing;
use :func:`available` to ask which anchors can run here.
"""

from __future__ import annotations

import importlib.util

__all__ = ["available"]

_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "raw_sqlite": ("msgspec",),
    "es_stock": ("eventsourcing",),
    "temporal": ("temporalio",),
    "langgraph_anchor": ("langgraph", "langgraph.checkpoint.sqlite"),
}


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def available() -> dict[str, bool]:
    """Map each anchor module name to whether its third-party library imports."""
    return {
        anchor: all(_importable(req) for req in reqs)
        for anchor, reqs in _REQUIREMENTS.items()
    }
