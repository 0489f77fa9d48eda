"""A process pool for CPU-heavy jobs (NML import and export), owned by the app's lifespan.

Spawned (not forked) workers: the server process holds threads, sockets and
an event loop that a fork would copy half-alive.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


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
