"""Group commit: many concurrent updates share one transaction (one round trip).

Rooms hand records to :meth:`GroupCommitter.submit`, which never blocks. One
task writes everything queued so far in a single ``COPY`` inside one
transaction, then tells each room the newest version that is durable. While a
batch commits, the next one accumulates, so throughput grows with load instead
of collapsing to one fsync per keystroke.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import asyncpg

from collab.store import oplog

if TYPE_CHECKING:
    from collab.metrics import Metrics
    from collab.sync.room import Room, RoomKey, UpdateRecord

log = logging.getLogger("collab.store.committer")


class GroupCommitter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        metrics: Metrics,
        *,
        batch_max: int,
        queue_max: int,
        on_snapshot_due: Callable[[RoomKey, int], None] | None = None,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._batch_max = batch_max
        self._queue_max = queue_max
        self._queue: deque[tuple[Room, UpdateRecord]] = deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._room_space = asyncio.Event()
        self._room_space.set()
        self._closing = False
        self._on_snapshot_due = on_snapshot_due

    def submit(self, room: Room, record: UpdateRecord) -> None:
        self._queue.append((room, record))
        self._drained.clear()
        if len(self._queue) >= self._queue_max:
            self._room_space.clear()
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def wait_for_space(self) -> None:
        """Writers await this before reading more input: bounded memory under overload."""
        await self._room_space.wait()

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed."""
        await self._drained.wait()

    async def run(self) -> None:
        """The committer loop; runs until cancelled, then writes what is left."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    await self._commit_batch()
                self._drained.set()
        finally:
            if self._queue:
                await asyncio.shield(self._final_flush())

    async def _final_flush(self) -> None:
        while self._queue:
            await self._commit_batch()
        self._drained.set()

    async def _commit_batch(self) -> None:
        batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._batch_max))]
        records = [record for _, record in batch]
        started = time.perf_counter()
        delay = 0.05
        while True:
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    await oplog.append(conn, records)
                break
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
                # The database is unreachable: keep the batch and retry.
                log.error("commit failed, retrying", extra={"error": str(exc), "batch": len(batch)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        elapsed = time.perf_counter() - started
        self._metrics.commit_seconds.observe(elapsed)
        self._metrics.committed.inc(len(records))
        self._metrics.batch_size.observe(len(records))
        newest: dict[int, tuple[Room, int]] = {}
        for room, record in batch:
            newest[id(room)] = (room, record.version)
        for room, version in newest.values():
            room.mark_saved(version)
        if self._on_snapshot_due is not None:
            for record in records:
                if record.snapshot_due:
                    self._on_snapshot_due(record.key, record.version)
        if len(self._queue) < self._queue_max // 2:
            self._room_space.set()
