"""Snapshots written off the event loop.

Every ``COLLAB_SNAPSHOT_EVERY`` versions a room's record is marked due; once
the committer has made that version durable, the :class:`Snapshotter` reads
the previous snapshot and the updates up to it, has a worker process merge
them (collab/document/compact.py), and stores the result. Encoding a large
document in the server process would stall every room for as long (about
0.4 s at 300,000 nodes). Requests for the same document coalesce: only the
newest due version is computed. A snapshot is an optimisation: one lost at
shutdown only lengthens the next load's tail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import asyncpg

from collab.document.compact import compact
from collab.document.kind import Kinds
from collab.document.log import RoomKey
from collab.metrics import Metrics
from collab.store import oplog
from collab.workers import Workers

log = logging.getLogger("collab.store.snapshots")


class Snapshotter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        workers: Workers,
        metrics: Metrics,
        kinds: Kinds,
        on_stored: Callable[[RoomKey, int, bytes], None] | None = None,
    ) -> None:
        """``kinds``: the documents' roots, declared before compacting."""
        self._pool = pool
        self._kinds = kinds
        self._on_stored = on_stored
        self._workers = workers
        self._metrics = metrics
        self._due: dict[RoomKey, int] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def request(self, key: RoomKey, version: int) -> None:
        if version > self._due.get(key, 0):
            self._due[key] = version
            self._idle.clear()
            self._wake.set()
            self._metrics.snapshots_pending.set(len(self._due))

    async def wait_idle(self) -> None:
        """Wait until every requested snapshot is stored (tests, benchmarks)."""
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._due:
                key = next(iter(self._due))
                version = self._due[key]
                try:
                    await self._snapshot(key, version)
                except Exception:
                    log.exception(
                        "snapshot failed",
                        extra={"annotation": key.annotation_id, "doc": key.doc, "version": version},
                    )
                if self._due.get(key) == version:
                    del self._due[key]  # a newer request for the document stays queued
                self._metrics.snapshots_pending.set(len(self._due))
            self._idle.set()

    async def _snapshot(self, key: RoomKey, version: int) -> None:
        started = time.perf_counter()
        async with self._pool.acquire() as conn:
            state = await oplog.load(conn, key, upto=version)
        if state.head != version or state.snapshot_version == version:
            return  # not durable yet (cannot happen after commit) or already there
        roots = self._kinds[key.doc].roots
        data = await self._workers.run(compact, roots, state.snapshot, state.updates)
        async with self._pool.acquire() as conn:
            await oplog.store_snapshot(conn, key, version, data)
        if self._on_stored is not None:
            self._on_stored(key, version, data)
        log.info(
            "snapshot stored",
            extra={
                "annotation": key.annotation_id,
                "doc": key.doc,
                "version": version,
                "tail": len(state.updates),
                "bytes": len(data),
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
