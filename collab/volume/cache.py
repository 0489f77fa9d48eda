"""Encoded bricks kept in memory under a byte budget (least recently used out)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Brick:
    """One brick ready to send: its encoded bytes, or ``payload is None`` when
    it lies wholly outside the layer (answered with the "missing" flag)."""

    payload: bytes | None
    encoding: int
    dtype_code: int
    etag: str

    @property
    def size(self) -> int:
        return 96 + (len(self.payload) if self.payload is not None else 0)


class BrickCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, Brick] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Brick | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return found

    def put(self, key: Hashable, brick: Brick) -> None:
        size = brick.size
        if size > self.budget:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        self._entries[key] = brick
        self.bytes += size
        while self.bytes > self.budget:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.size

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
