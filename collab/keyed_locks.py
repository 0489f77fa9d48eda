"""One lock per key (an annotation), kept only while someone holds or waits
for it: a waiter keeps the lock it waits on (a new lock made meanwhile would
let two in at once), and idle keys cost nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        #: Holders and waiters per key.
        self._users: dict[int, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:  # nobody holds or waits: it goes
                del self._users[key]
                del self._locks[key]

    def busy(self, key: int) -> bool:
        """Someone holds or waits for the key's lock."""
        return key in self._users
