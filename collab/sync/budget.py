"""A byte budget shared by concurrent sends of large frames.

A fresh client's copy of a big document is packed into one frame only when it
is written; while it waits for the client to read it, it holds a copy. The
budget bounds those copies across all clients: a send takes its size from the
budget and waits while the budget is spent (one send always proceeds, however
large). With a budget of one frame (the former ``Semaphore(1)``), 500 fresh
clients of a 20,000-node document queued behind each other's slow reads
(p99 5.4 s); with 64 MiB, ~17 of its 3.7 MiB frames are in flight at once
(tests/benchmarks/storm.py, docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

LARGE_SEND_BUDGET = 64 * 1024 * 1024
#: Frames below this go out without taking from the budget (answers of small
#: documents must not wait behind a large one).
FREE_BELOW = 1 << 20


class ByteBudget:
    def __init__(self, budget: int = LARGE_SEND_BUDGET, free_below: int = FREE_BELOW) -> None:
        self.budget = budget
        self.free_below = free_below
        self.in_use = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def take(self, size: int) -> AsyncIterator[None]:
        if size < self.free_below:
            yield
            return
        async with self._changed:
            await self._changed.wait_for(
                lambda: self.in_use == 0 or self.in_use + size <= self.budget
            )
            self.in_use += size
        try:
            yield
        finally:
            async with self._changed:
                self.in_use -= size
                self._changed.notify_all()
