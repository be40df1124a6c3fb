"""The batched SQLite append against the raw floor, alternately in one process.

``python -m benchmarks.append_ratio [ROUNDS]`` (default 7) times
`benchmarks.ours.append_batched` and `benchmarks.anchors.raw_sqlite.append_batched`
on 10,000 events, one after the other, ROUNDS times after a warm-up pair, and
prints each pair's ratio and the median. Both sides run under the same load
within a second of each other, so the ratio is steadier than either time on a
shared machine; compare ratios, never times across runs. The full table
(`python -m benchmarks`) takes the best of three of each side instead.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import journal
from benchmarks import ours
from benchmarks.anchors import raw_sqlite

N_EVENTS = 10_000


def main(rounds: int = 7) -> float:
    """Print each round and the medians; return the median ratio."""
    mine: list[float] = []
    floor: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        raw_db = Path(tmp) / "raw.db"
        with journal.open(f"sqlite:///{Path(tmp) / 'append.db'}") as j:
            ours.append_batched(j, N_EVENTS)  # warm-up, not counted
            raw_sqlite.append_batched(raw_db, N_EVENTS)
            for _ in range(rounds):
                mine.append(ours.append_batched(j, N_EVENTS))
                floor.append(raw_sqlite.append_batched(raw_db, N_EVENTS))
                print(
                    f"ours {mine[-1] * 1e3:6.1f} ms  raw {floor[-1] * 1e3:6.1f} ms  "
                    f"ratio {mine[-1] / floor[-1]:.2f}",
                    flush=True,
                )
    ratio = statistics.median(m / f for m, f in zip(mine, floor, strict=True))
    print(
        f"median: ours {statistics.median(mine) * 1e3:.1f} ms, raw "
        f"{statistics.median(floor) * 1e3:.1f} ms, ratio {ratio:.2f} "
        f"(best/best {min(mine) / min(floor):.2f}) over {rounds} rounds"
    )
    return ratio


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
