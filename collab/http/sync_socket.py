"""``ws /sync/{annotation_id}/{doc}``: the y-websocket endpoint.

Accept, authenticate, authorise, then hand frames to the room. Outgoing
frames go through a bounded per-connection queue drained by one sender task;
a client that falls ``send_queue_max`` frames or ``send_queue_bytes`` bytes of
relayed frames behind is closed with 1013 (it reconnects and resyncs) instead
of making the server buffer without bound. What one stalled connection holds
is then at most ``send_queue_bytes`` plus the frame being written (uvicorn's
send waits for the transport to drain) plus the answers to its own sync
request, which are built from the room's shared bytes only when written
(tests/sync/test_backpressure.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from prometheus_client import Counter
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.utils import ClientDisconnected

from collab.auth import Access
from collab.document.log import RoomKey
from collab.errors import BadRequest, CollabError, Forbidden, Unavailable
from collab.http.common import Services, bearer, path_int, services
from collab.http.throttle import Caller, admit
from collab.store import identity, work
from collab.sync import messages as m
from collab.sync.budget import ByteBudget
from collab.sync.registry import Loading
from collab.sync.room import LazyFrame, PeerState, Room

log = logging.getLogger("collab.http.sync")

CLOSE_SLOW = 1013
_SYNC_FRAME = bytes((m.MessageType.SYNC,))


def close_reason(text: str) -> str:
    """WebSocket close reasons are at most 123 UTF-8 bytes."""
    data = text.encode("utf-8")[:120]
    return data.decode("utf-8", "ignore")


class SocketPeer(PeerState):
    def __init__(
        self,
        ws: WebSocket,
        user_id: int | None,
        can_write: bool,
        wants_acks: bool,
        wants_accepted: bool,
        limit: int,
        byte_limit: int,
        counter: Counter,
        large_sends: ByteBudget,
    ) -> None:
        super().__init__(
            user_id=user_id,
            can_write=can_write,
            wants_acks=wants_acks,
            wants_accepted=wants_accepted,
        )
        self.ws = ws
        self.large_sends = large_sends
        self.out: deque[bytes | LazyFrame] = deque()
        self.ready = asyncio.Event()
        self.limit = limit
        self.byte_limit = byte_limit
        #: Bytes of relayed frames queued (answers, LazyFrames, are not counted).
        self.queued_bytes = 0
        self.peak_bytes = 0
        self.too_slow = False
        #: Set by the server to end this connection (code, reason).
        self.closing: tuple[int, str] | None = None
        self.stalled = asyncio.Event()
        self.counter = counter  # bytes sent, counted as they go

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def close(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = (code, reason)
        self.stalled.set()

    def send(self, frame: bytes | LazyFrame) -> None:
        if self.too_slow:
            return
        size = len(frame) if isinstance(frame, bytes) else 0
        queued = self.queued_bytes + size
        if len(self.out) >= self.limit or (queued > self.byte_limit and self.out):
            self.too_slow = True
            self.out.clear()
            self.queued_bytes = 0
            self.stalled.set()
        else:
            self.out.append(frame)
            self.queued_bytes = queued
            if queued > self.peak_bytes:
                self.peak_bytes = queued
        self.ready.set()

    async def pump(self) -> None:
        """Write queued frames until the client is gone (then return quietly)."""
        try:
            await self._pump()
        except (WebSocketDisconnect, ClientDisconnected, OSError, RuntimeError):
            return  # the client left mid-write; the receive loop sees it too

    async def _pump(self) -> None:
        send = self.ws.send
        while True:
            await self.ready.wait()
            self.ready.clear()
            if self.too_slow:
                return
            sent = 0
            while self.out:
                item = self.out.popleft()
                if isinstance(item, LazyFrame):
                    async with self.large_sends.take(item.size):  # copies of big documents bounded
                        frame = item.build()
                        sent += len(frame)
                        await send({"type": "websocket.send", "bytes": frame})
                        del frame
                    continue
                self.queued_bytes -= len(item)
                sent += len(item)
                await send({"type": "websocket.send", "bytes": item})
            self.counter.inc(sent)


async def sync_endpoint(ws: WebSocket) -> None:
    svc = services(ws)
    metrics = svc.metrics
    await ws.accept()
    try:
        caller = admit(ws)
        annotation_id = path_int(ws, "annotation_id")
        kind = svc.kinds.parse(ws.path_params["doc"])
        async with svc.pool.acquire() as db:
            who = await identity.authenticate(db, bearer(ws))
            access = await identity.access_to(db, who, annotation_id)
            if access >= Access.WRITE:
                # A task's annotation changes only the documents of its task type's modes.
                modes = await work.task_modes(db, annotation_id)
                if modes is not None and not kind.edited_in(modes):
                    access = Access.READ
        if access < Access.READ:
            raise Forbidden(f"no access to annotation {annotation_id}")
    except CollabError as exc:
        metrics.refused.labels(str(exc.close_code)).inc()
        await ws.close(exc.close_code, close_reason(exc.message))
        return

    key = RoomKey(annotation_id, kind.name)
    peer = SocketPeer(
        ws,
        who.user_id,
        can_write=access >= Access.WRITE,
        wants_acks=ws.query_params.get("acks") in ("1", "true"),
        wants_accepted=ws.query_params.get("accepted") in ("1", "true"),
        limit=svc.settings.send_queue_max,
        byte_limit=svc.settings.send_queue_bytes,
        counter=metrics.bytes_out,
        large_sends=svc.rooms.large_sends,
    )
    first: Message | None = None
    loading = svc.rooms.loading(key)
    if loading is not None:
        first = await _answer_while_loading(ws, loading, svc.rooms.large_sends)
        if first is not None and first["type"] == "websocket.disconnect":
            return
    try:
        room = await svc.rooms.get(key)
    except Exception:
        log.exception("room failed to load", extra={"annotation": annotation_id, "doc": kind.name})
        err = Unavailable("the document could not be loaded; try again")
        await ws.close(err.close_code, err.message)
        return
    metrics.connections.inc()
    ctx = {"annotation": annotation_id, "doc": kind.name, "user": who.user_id}
    log.info("client joined", extra={**ctx, "write": peer.can_write})
    close: tuple[int, str] | None = None
    try:
        room.join(peer)
        async with asyncio.TaskGroup() as tg:
            pump = tg.create_task(peer.pump())
            receiver = tg.create_task(_receive_loop(ws, room, peer, svc, caller, first))
            stalled = tg.create_task(peer.stalled.wait())
            await asyncio.wait({pump, receiver, stalled}, return_when=asyncio.FIRST_COMPLETED)
            for task in (pump, receiver, stalled):
                task.cancel()
        if receiver.done() and not receiver.cancelled():
            close = receiver.result()
    finally:
        room.leave(peer)
        metrics.connections.dec()
        if peer.closing is not None:
            close = peer.closing
        elif peer.too_slow and close is None:
            close = (CLOSE_SLOW, "client too slow: send queue full")
        if close is not None:
            metrics.refused.labels(str(close[0])).inc()
            log.warning("client closed", extra={**ctx, "code": close[0], "reason": close[1]})
            try:
                # A stalled client may never read the close frame: bounded wait.
                await asyncio.wait_for(ws.close(close[0], close_reason(close[1])), 5)
            except Exception:  # the socket is already gone
                pass
        else:
            log.info("client left", extra=ctx)


FRESH_STEP1 = m.pack_sync_step1(b"\x00")  # sync step 1 of a client that has nothing


async def _answer_while_loading(
    ws: WebSocket, loading: Loading, large_sends: ByteBudget
) -> Message | None:
    """While the room loads, answer a fresh client's sync step 1 from the stored bytes.

    Returns the client's first message if it still has to be handled (None
    when it was answered here or the room finished loading first).
    """
    with loading.answering():  # the build waits (briefly) for our first frame
        receive = asyncio.ensure_future(ws.receive())
        waiting: set[asyncio.Future[Any]] = {receive, loading.room}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not receive.done():
            receive.cancel()  # the room is ready first: nothing was consumed
            with contextlib.suppress(asyncio.CancelledError):
                await receive
            return None
        message = receive.result()
        if message.get("bytes") != FRESH_STEP1 or loading.room.done():
            return message
        try:
            stored = await asyncio.shield(loading.stored)
        except Exception:
            return message  # the room's own load reports the failure
        for frame in loading.fresh_answer(stored):  # as a loaded room answers
            async with large_sends.take(frame.size):  # copies of big documents bounded
                await ws.send_bytes(frame.build())
        # uvicorn's send() waits for the transport to drain before writing:
        # an empty awareness update (a no-op for every client) returns only
        # once the answer above has left, so the GIL-holding build that
        # follows cannot hold it back in our buffer.
        await ws.send_bytes(m.pack_awareness(m.pack_awareness_update([])))
        log.info(
            "answered from storage",
            extra={"annotation": loading.key.annotation_id, "doc": loading.key.doc},
        )
    return None


async def _receive_loop(
    ws: WebSocket,
    room: Room,
    peer: SocketPeer,
    svc: Services,
    caller: Caller,
    first: Message | None = None,
) -> tuple[int, str] | None:
    """Feed frames to the room until the client leaves; return a close (code, reason) for bad input."""
    metrics = svc.metrics
    committer = svc.rooms.committer
    yield_every = svc.settings.receive_yield_every
    limits = svc.limits
    count = 0
    while True:
        if first is not None:
            message, first = first, None
        else:
            message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        if peer.too_slow:
            return (CLOSE_SLOW, "client too slow: send queue full")
        frame = message.get("bytes")
        if frame is None:
            err = BadRequest("text frames are not part of the protocol")
            return (err.close_code, err.message)
        metrics.bytes_in.inc(len(frame))
        if room.busy is not None and frame[:1] == _SYNC_FRAME:
            await room.quiet()  # an import landing in pieces, or a revert holding writes
        try:
            caller.message(limits)
            room.receive(peer, frame)
        except CollabError as exc:
            return (exc.close_code, exc.message)
        except Exception:
            log.exception("frame handling failed", extra={"annotation": room.key.annotation_id})
            return (1011, "internal error")
        count += 1
        if count % yield_every == 0:
            await asyncio.sleep(0)
        if committer.pending >= svc.settings.commit_queue_max:
            await committer.wait_for_space()
