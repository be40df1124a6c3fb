"""Answering concurrent calls in the order their records ended.

Live, gathered effects finish in any order; on replay they could all answer
at once. `Turns` holds an async answer back until every call the record
ended before it has been answered, so ``as_completed``, ``asyncio.wait`` and
a failing ``TaskGroup`` see on replay what they saw live.
"""

from __future__ import annotations

import asyncio
import heapq

#: Rounds of the event loop a concurrent answer waits for a call that
#: ended before it in the record before deciding that call is not coming.
PATIENCE = 64


class Turns:
    """Releases concurrent answers in the order the record ended them."""

    def __init__(self, keys: list[int]) -> None:
        self.heap = list(keys)
        heapq.heapify(self.heap)
        self.done: set[int] = set()
        self.progress = 0

    def _head(self) -> int | None:
        while self.heap and self.heap[0] in self.done:
            heapq.heappop(self.heap)
        return self.heap[0] if self.heap else None

    def release(self, key: int | None) -> None:
        if key is not None:
            self.done.add(key)
            self.progress += 1

    async def wait(self, key: int | None) -> None:
        """Wait until every call that ended before `key` was answered."""
        stalled, seen = 0, self.progress
        while key is not None and (head := self._head()) is not None and head < key:
            if self.progress != seen:
                stalled, seen = 0, self.progress
            stalled += 1
            if stalled > PATIENCE:  # that call is not coming (cancelled first)
                self.release(head)
                continue
            await asyncio.sleep(0)
        self.release(key)
