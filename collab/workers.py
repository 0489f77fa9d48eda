"""A process pool for CPU-heavy jobs (NML import and export), owned by the app's lifespan.

Spawned (not forked) workers: the server process holds threads, sockets and
an event loop that a fork would copy half-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """For a job in a worker: its millions of short-lived, acyclic objects
    would otherwise trigger collections over an ever larger heap (measured:
    13-25 % of an import or export at 200,000 nodes, more beyond)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Workers:
    def __init__(self, processes: int) -> None:
        self._processes = processes
        self._pool: ProcessPoolExecutor | None = None

    async def __aenter__(self) -> Workers:
        self._pool = ProcessPoolExecutor(
            self._processes, mp_context=multiprocessing.get_context("spawn")
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._pool is not None, "workers are not running"
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
