"""Minimal y-websocket peers for load generation: a writer that sends small
pycrdt updates and readers that only count update frames (no CRDT work, so the
client side costs as little as possible)."""

from __future__ import annotations

import asyncio
import time

import websockets
from pycrdt import Doc, Map

from collab.sync import messages as m

UPDATE_PREFIX = bytes([m.MessageType.SYNC, m.SyncType.UPDATE])


async def connect(url: str) -> websockets.ClientConnection:
    ws = await websockets.connect(
        url, max_size=None, compression=None, open_timeout=30, ping_interval=None
    )
    await ws.send(m.pack_sync_step1(b"\x00"))
    return ws


class Reader:
    """Timestamps every update frame it receives; the n-th update is the writer's n-th."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.times: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes) and frame[:2] == UPDATE_PREFIX:
                    self.times.append(time.perf_counter())
        except websockets.ConnectionClosed:
            pass


class Writer:
    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.doc: Doc = Doc()
        self.nodes = self.doc.get("nodes", type=Map)
        self.trees = self.doc.get("trees", type=Map)
        self.sent: list[float] = []
        self.saved = 0
        self._frames: list[bytes] = []
        self.doc.observe(lambda e: self._frames.append(m.pack_update(e.update)))

    async def send_node(self, i: int) -> None:
        """One update: a node (its tree created in the same transaction the
        first time, so the server has nothing to repair)."""
        with self.doc.transaction():
            if "t1" not in self.trees:
                self.trees["t1"] = Map({"name": "bench"})
            self.nodes[f"n{i}"] = {"treeId": "t1", "position": [i, i + 1, i + 2], "radius": 1.0}
        frame = self._frames.pop()
        self.sent.append(time.perf_counter())
        await self.ws.send(frame)

    async def drain(self) -> None:
        """Read (and count saved acks) until the socket closes."""
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes) and frame[:1] == bytes([m.MessageType.SAVED]):
                    self.saved = m.parse_saved(frame)
        except websockets.ConnectionClosed:
            pass
