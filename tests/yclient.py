"""A y-websocket client in Python (pycrdt + websockets) for tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import websockets
from pycrdt import Doc, Map, TransactionEvent

from collab.sync import messages as m


class YClient:
    """Connects, syncs, applies remote updates, sends local ones.

    ``await client.wait(lambda: ...)`` waits for a condition under a deadline.
    """

    def __init__(self, url: str, doc: Doc | None = None) -> None:
        self.url = url
        self.doc: Doc = doc or Doc()
        self.ws: Any = None
        self.synced = asyncio.Event()
        self.saved = 0
        self.saves = 0  # saved messages received (with acks=1 the first comes on join)
        self.denied: list[str] = []
        self.awareness: dict[int, str] = {}
        self.closed: tuple[int, str] | None = None
        self.received = 0
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._remote = False
        self._sub = self.doc.observe(self._on_local)
        self.on_update: Callable[[bytes], None] | None = None
        self._sends: set[asyncio.Task[None]] = set()

    def map(self, name: str) -> Map:
        return self.doc.get(name, type=Map)

    async def connect(self, sync: bool = True) -> YClient:
        self.ws = await websockets.connect(self.url, max_size=None, compression=None)
        self._task = asyncio.create_task(self._reader())
        await self.ws.send(m.pack_sync_step1(self.doc.get_state()))
        if sync:
            await asyncio.wait_for(self.synced.wait(), 10)
        return self

    def _on_local(self, event: TransactionEvent) -> None:
        if self._remote or self.ws is None:
            return
        frame = m.pack_update(event.update)
        self._spawn(self._send(frame))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, frame: bytes) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.ws.send(frame)

    async def send_raw(self, frame: bytes | str) -> None:
        try:
            await self.ws.send(frame)
        except websockets.ConnectionClosed:
            pass  # the server may close while a large frame is still going out

    async def _reader(self) -> None:
        try:
            async for frame in self.ws:
                self.received += 1
                if isinstance(frame, str):
                    continue
                self._handle(frame)
                self._changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            code = self.ws.close_code
            self.closed = (code if code is not None else 1006, self.ws.close_reason or "")
            self._changed.set()

    def _handle(self, frame: bytes) -> None:
        if frame[0] == m.MessageType.SAVED:
            self.saved = max(self.saved, m.parse_saved(frame))
            self.saves += 1
            return
        msg = m.parse(frame)
        if isinstance(msg, m.SyncMessage):
            if msg.sub == m.SyncType.STEP1:
                reply = m.pack_sync_step2(self.doc.get_update(msg.payload))
                self._spawn(self._send(reply))
            else:
                self._remote = True
                try:
                    self.doc.apply_update(msg.payload)
                finally:
                    self._remote = False
                if self.on_update:
                    self.on_update(msg.payload)
                if msg.sub == m.SyncType.STEP2:
                    self.synced.set()
        elif isinstance(msg, m.AwarenessMessage):
            for e in msg.entries:
                if e.state == "null":
                    self.awareness.pop(e.client_id, None)
                else:
                    self.awareness[e.client_id] = e.state
        elif isinstance(msg, m.AuthMessage):
            self.denied.append(msg.reason)

    async def wait(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("condition not met in time")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))

    async def write(self, change: Callable[[], None], timeout: float = 10.0) -> bool:
        """Make a local change and wait for the server's verdict on it: True
        once a ``saved`` message shows a newer durable version, False once
        the server said this connection is read-only (its ``auth`` denial).

        Needs ``acks=1``. A saved version does not name its writer: the
        room must have no other writer meanwhile."""
        # The saved message sent on join is the baseline; it precedes the
        # saved message of any update of ours (one queue per connection).
        await self.wait(lambda: self.saves > 0 or self.closed is not None, timeout)
        if self.closed is not None:
            raise AssertionError(f"closed before writing: {self.closed}")
        before = self.saved
        change()
        await self.wait(
            lambda: self.saved > before or bool(self.denied) or self.closed is not None, timeout
        )
        if self.saved > before:
            return True
        if self.denied:
            return False
        raise AssertionError(f"closed before the write was acknowledged: {self.closed}")

    async def wait_closed(self, timeout: float = 10.0) -> tuple[int, str]:
        await self.wait(lambda: self.closed is not None, timeout)
        assert self.closed is not None
        return self.closed

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._task is not None:
            await asyncio.wait_for(self._task, 5)
        self.doc.unobserve(self._sub)


def put_node(client: YClient, node_id: str, value: dict[str, Any]) -> None:
    """Write a node, creating its tree in the same transaction if this replica
    has none (the server repairs nodes of missing trees, which would add versions)."""
    tree = value["treeId"]
    with client.doc.transaction():
        trees = client.map("trees")
        if tree not in trees:
            trees[tree] = Map({"name": tree})
        client.map("nodes")[node_id] = value
