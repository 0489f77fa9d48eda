"""The garbage-collector policy of the server process.

Measured (docs/performance.md, many-rooms benchmark): with CPython's default
thresholds (700, 10, 10) a server holding 1,500 connections ran gen-1
collections of 20–40 ms several times a second and full collections of
100–250 ms, which set the p99 of writer→reader latency at ~200 ms. Almost every
object here is freed by reference counting; collections only matter for the
few cycles (≈150/s under that load). So: collect the young generation every
50,000 allocations (≈15 ms each, every few seconds under load), never start a
full collection automatically, and run one on a timer instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator

log = logging.getLogger("collab.gc")


def settle() -> None:
    """After a large, long-lived structure was built (a big room's repair index,
    an import's entities): collect the young generations and move everything
    alive into the permanent generation, so later full collections do not
    walk millions of acyclic index objects (a full pass over a million-node
    room's index costs seconds). What is frozen is still freed by reference
    counting; only cycles that exist right now would be kept."""
    gc.collect(1)
    gc.freeze()


@contextlib.asynccontextmanager
async def collector_policy(young_threshold: int, full_every_seconds: float) -> AsyncIterator[None]:
    previous = gc.get_threshold()
    if young_threshold <= 0:
        yield
        return
    gc.set_threshold(young_threshold, 20, 1_000_000_000)
    gc.collect()
    gc.freeze()  # what exists at start (modules, settings) is never scanned again

    async def full_collections() -> None:
        while True:
            await asyncio.sleep(full_every_seconds)
            started = time.perf_counter()
            found = gc.collect()
            log.info(
                "full collection",
                extra={"ms": round((time.perf_counter() - started) * 1000, 1), "collected": found},
            )

    try:
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(full_collections(), name="gc-full-collections")
            try:
                yield
            finally:
                task.cancel()
    finally:
        gc.unfreeze()
        gc.set_threshold(*previous)
