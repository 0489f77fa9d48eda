"""Brick sockets: ``ws /data/{dataset}/{layer}?token=`` (a dataset's layer)
and ``ws /volume/{annotation}/{layer}?token=[&version=]`` (an annotation's
volume layer over its fallback), bricks over binary frames.

Each REQUEST frame starts a producer task that answers its bricks as they
become ready: cache hits at once, misses through the volume service with a
few reads in flight. Answers go to one bounded buffer drained by a sender
task that packs whatever is ready into BRICKS frames of up to
``brick_frame_bytes``. When the buffer holds ``brick_send_buffer_bytes``,
producers wait: a slow client slows its own producers and nothing else.

An annotation's layer also pushes: once a version is materialised, the
bricks it changed that the socket was sent (the ``WATCH_MAX`` most recent)
go out unasked in PUSHED frames. Pushes are coalesced per brick (a slow
viewer gets each brick's newest version once, never a backlog), sent when
the answers queued before them are out, and a brick being read when its
change lands is pushed again after its answer, so no answer read before a
change ever overwrites it on the client (a cancelled, failed or missing
answer pushes nothing: the client asks again). Pushes hold at most
``brick_send_buffer_bytes`` of stored (zstd) bytes per socket, the bound of
the answers; a change past it is held as a stale mark, sent without voxels
(status stale): the viewer asks for the brick again. They leave a frame's
worth at a time (raw ones decompressed in a thread) and wait for the socket
like answers do, so a viewer that stops reading holds at most that much of
them on the server.

Bad frames get an ERROR frame and the socket goes on; refusals before the
stream starts close with 4401/4403/4404 (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from starlette.websockets import WebSocket

from collab.auth import Access
from collab.document.log import RoomKey
from collab.errors import CollabError, Forbidden, NotFound, RateLimited
from collab.http.common import Services, bearer, path_int, query_int, services
from collab.http.datasets import check_annotation_dataset, check_dataset_access
from collab.http.sync_socket import close_reason
from collab.http.throttle import Caller, admit
from collab.proofreading.service import Proofreading
from collab.segmentation.kind import SEGMENTATION
from collab.segmentation.materialise import Materialiser, layer_info
from collab.segmentation.reader import AnnotationLayerReader
from collab.segmentation.voxels import VoxelReads
from collab.store import identity
from collab.store.materialised import BrickRow
from collab.volume import encoding as enc
from collab.volume import wire
from collab.volume.cache import Brick
from collab.volume.dataset import Dataset, Layer
from collab.volume.mags import MAX_FACTOR, Mag, parse_mag
from collab.volume.service import Volumes

log = logging.getLogger("collab.http.data")

#: Cache misses are read in batches of this many bricks (one thread hop each) ...
READ_BATCH = 32
#: ... with this many batches of one request in flight.
READERS_PER_REQUEST = 3
#: Bricks of an annotation's layer a socket hears about when they change:
#: the most recent it was sent (the client's brick cache holds fewer).
WATCH_MAX = 16_384
#: Voxels of a brick (32³).
BRICK_VOXELS = 32**3


class LayerReader(Protocol):
    """Where a brick stream's bricks come from: a dataset's layer
    (:class:`DatasetReader`), or an annotation's volume layer over its
    fallback (a later step of the volume-annotation issue)."""

    @property
    def label(self) -> str:
        """For logs: ``dataset/layer``."""

    @property
    def name(self) -> str:
        """The layer's name."""

    @property
    def mags(self) -> Collection[Mag]: ...

    @property
    def mappings(self) -> Collection[str]: ...

    @property
    def dtype_code(self) -> int:
        """Its voxels' dtype on the wire (collab/volume/encoding.py)."""

    def cached(
        self, mag: Mag, b: tuple[int, int, int], encoding: int, mapping: str | None
    ) -> Brick | None:
        """A brick the reader has at hand, or None (then :meth:`read`)."""

    async def read(
        self, mag: Mag, bricks: list[tuple[int, int, int]], encoding: int, mapping: str | None
    ) -> list[Brick | BaseException]:
        """Several bricks, each a Brick or the exception its read raised."""


@dataclass(frozen=True)
class DatasetReader:
    """A dataset layer's bricks through the volume service (its cache)."""

    volumes: Volumes
    dataset: Dataset
    layer: Layer

    @property
    def label(self) -> str:
        return f"{self.dataset.name}/{self.layer.name}"

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def mags(self) -> Collection[Mag]:
        return self.layer.sources.keys()

    @property
    def mappings(self) -> Collection[str]:
        return self.layer.mappings.keys()

    @property
    def dtype_code(self) -> int:
        return enc.DTYPE_CODES[self.layer.dtype.name]

    def cached(
        self, mag: Mag, b: tuple[int, int, int], encoding: int, mapping: str | None
    ) -> Brick | None:
        return self.volumes.cached(self.dataset.name, self.layer.name, mag, b, encoding, mapping)

    async def read(
        self, mag: Mag, bricks: list[tuple[int, int, int]], encoding: int, mapping: str | None
    ) -> list[Brick | BaseException]:
        return await self.volumes.brick_batch(
            self.dataset, self.layer, mag, bricks, encoding, mapping
        )


@dataclass
class RequestState:
    request_id: int
    mag: Mag
    encoding: int
    mapping: str | None
    bricks: list[tuple[int, int, int]]
    remaining: set[tuple[int, int, int]]
    sent: int = 0
    missing: int = 0
    cancelled: int = 0
    failed: int = 0


#: A brick's place in a layer: (mag, brick).
Where = tuple[Mag, tuple[int, int, int]]
#: A change waiting to be pushed: (version, zstd bytes), or (version, None)
#: once the socket holds its limit: it goes out as a stale mark.
Change = tuple[int, bytes | None]


@dataclass(frozen=True, slots=True)
class _Push:
    mag: Mag
    brick: tuple[int, int, int]
    version: int
    encoding: int
    data: bytes | None


@dataclass(eq=False)
class BrickStream:
    ws: WebSocket
    svc: Services
    reader: LayerReader
    buffer_limit: int
    frame_limit: int
    ready: deque[tuple[RequestState, tuple[int, int, int], Brick | None, int] | bytes] = field(
        default_factory=deque
    )
    ready_bytes: int = 0
    #: Highest ``ready_bytes`` seen (what backpressure bounds).
    peak_bytes: int = 0
    #: Times a producer found the buffer full and waited for the client.
    stalls: int = 0
    #: Set whenever a producer finds the buffer full (tests wait on it).
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    space: asyncio.Event = field(default_factory=asyncio.Event)
    requests: dict[int, RequestState] = field(default_factory=dict)
    pending: int = 0
    #: Pushes: bricks sent (mag, brick) → the encoding they were asked in,
    #: oldest first; whether this stream pushes at all.
    live: bool = False
    watched: OrderedDict[Where, int] = field(default_factory=OrderedDict)
    #: Open requests reading each brick (pushing streams only).
    reading: dict[Where, int] = field(default_factory=dict)
    #: Changes waiting to go out, newest per brick.
    pushes: dict[Where, Change] = field(default_factory=dict)
    #: Changes of bricks being read when they landed, kept while a request
    #: still reads the brick: pushed after its answer (never after a
    #: cancel, a failed or a missing answer).
    stale: dict[Where, Change] = field(default_factory=dict)
    #: zstd bytes held in ``pushes`` and ``stale``: at most ``buffer_limit``;
    #: a change past it is held as a stale mark (no bytes).
    push_bytes: int = 0
    #: Highest ``push_bytes`` seen.
    push_peak_bytes: int = 0
    #: Bricks pushed as stale marks (the viewer asks for them again).
    marked_stale: int = 0
    #: MAPPED frames waiting to go out (the layer's editable mapping
    #: changed), their bytes at most ``buffer_limit``: past it they give
    #: way to one reset frame (the viewer asks for its pairs again).
    mapped: deque[bytes] = field(default_factory=deque)
    mapped_bytes: int = 0

    def __post_init__(self) -> None:
        self.space.set()
        self._raw_bytes = BRICK_VOXELS * np.dtype(enc.DTYPE_NAMES[self.reader.dtype_code]).itemsize

    # -- answers --------------------------------------------------------------

    async def deliver(
        self, state: RequestState, b: tuple[int, int, int], brick: Brick | None, status: int
    ) -> None:
        if self.ready_bytes >= self.buffer_limit:
            self.stalls += 1
            self.stalled.set()
            self.svc.metrics.brick_stalls.inc()
            while self.ready_bytes >= self.buffer_limit:
                self.space.clear()
                await self.space.wait()
        if b not in state.remaining:
            return  # cancelled while we read it
        state.remaining.discard(b)
        self.pending -= 1
        if status == wire.STATUS_OK:
            state.sent += 1
            if self.live:
                self._watch(state.mag, b, state.encoding)
        elif status == wire.STATUS_MISSING:
            state.missing += 1
        else:
            state.failed += 1
        if self.live:
            self._read_done((state.mag, b), answered=status == wire.STATUS_OK)
        self.ready.append((state, b, brick, status))
        self.ready_bytes += wire.RECORD_BYTES + (
            len(brick.payload) if brick is not None and brick.payload is not None else 0
        )
        self.peak_bytes = max(self.peak_bytes, self.ready_bytes)
        self.wake.set()

    # -- pushes (an annotation's layer) ---------------------------------------

    def _watch(self, mag: Mag, b: tuple[int, int, int], encoding: int) -> None:
        where = (mag, b)
        self.watched[where] = encoding
        self.watched.move_to_end(where)
        if len(self.watched) > WATCH_MAX:
            self.watched.popitem(last=False)

    def _reading(self, where: Where) -> None:
        self.reading[where] = self.reading.get(where, 0) + 1

    def _read_done(self, where: Where, answered: bool) -> None:
        """A request stopped reading ``where``: answered (a change that
        landed meanwhile is pushed after the answer), or cancelled, failed
        or missing (nothing is pushed for it)."""
        late = self.stale.get(where)
        if answered and late is not None:
            self._hold(self.pushes, where, late)
        left = self.reading.get(where, 0) - 1
        if left > 0:
            self.reading[where] = left
            return
        self.reading.pop(where, None)
        self._forget(self.stale, where)

    def _hold(self, table: dict[Where, Change], where: Where, change: Change) -> None:
        """Keep ``change`` for ``where`` (the newer version wins), its bytes
        while the socket holds fewer than ``buffer_limit``, else as a stale mark."""
        version, data = change
        old = table.get(where)
        if old is not None:
            if old[0] > version:
                return
            self._forget(table, where)
        if data is not None and self.push_bytes + len(data) > self.buffer_limit:
            data = None
        if data is not None:
            self.push_bytes += len(data)
            self.push_peak_bytes = max(self.push_peak_bytes, self.push_bytes)
        table[where] = (version, data)

    def _forget(self, table: dict[Where, Change], where: Where) -> None:
        old = table.pop(where, None)
        if old is not None and old[1] is not None:
            self.push_bytes -= len(old[1])

    def changed(self, version: int, rows: list[BrickRow]) -> None:
        """The materialiser wrote ``version``: queue the bricks it changed
        that this socket shows (never blocks: coalesced per brick, bounded)."""
        layer = self.reader.name
        for row in rows:
            if row.layer != layer:
                continue
            try:
                where = (parse_mag(row.mag), row.brick)
            except CollabError:
                continue
            if where in self.reading:
                self._hold(self.stale, where, (version, row.data))
            if where in self.watched:
                self._hold(self.pushes, where, (version, row.data))
        if self.pushes:
            self.wake.set()

    def _take_pushes(self) -> list[_Push]:
        """The oldest queued pushes, about a frame's worth (as sent)."""
        taken: list[_Push] = []
        size = 0
        while self.pushes and size < self.frame_limit and len(taken) < 65535:
            where = next(iter(self.pushes))
            version, data = self.pushes[where]
            self._forget(self.pushes, where)
            encoding = self.watched.get(where, enc.ZSTD)
            taken.append(_Push(where[0], where[1], version, encoding, data))
            if data is not None:
                size += self._raw_bytes if encoding == enc.RAW else len(data)
            size += wire.RECORD_BYTES
        return taken

    def mapping_changed(self, version: int, layer: str | None, pairs: np.ndarray | None) -> None:
        """The proofreading service's watcher: supervoxel → agglomerate pairs
        of ``layer`` that changed (sorted; shared by every socket) go to the
        viewer, a frame's worth at a time; None: a reset (ask again)."""
        if layer not in (None, self.reader.name) or (pairs is not None and not len(pairs)):
            return
        if pairs is None:
            frames = [wire.pack_mapped(version, [], reset=True)]
        else:
            step = max(1, self.frame_limit // 16)
            frames = [
                wire.pack_mapped(version, pairs[i : i + step]) for i in range(0, len(pairs), step)
            ]
        size = sum(len(f) for f in frames)
        if self.mapped_bytes + size > self.buffer_limit:
            self.mapped.clear()
            frames = [wire.pack_mapped(version, [], reset=True)]
            self.mapped_bytes = size = len(frames[0])
        else:
            self.mapped_bytes += size
        self.mapped.extend(frames)
        self.wake.set()

    def control(self, frame: bytes) -> None:
        self.ready.append(frame)
        self.wake.set()

    async def pump(self) -> None:
        """Send what is ready, several bricks to a frame; then what was
        pushed, after every answer queued before it."""
        send = self.ws.send
        counter = self.svc.metrics.bytes_out
        metrics = self.svc.metrics
        dtype = self.reader.dtype_code
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.ready or self.pushes or self.mapped:
                if self.ready:
                    await self._send_ready()
                    continue
                if self.mapped:
                    frame = self.mapped.popleft()
                    self.mapped_bytes -= len(frame)
                    await send({"type": "websocket.send", "bytes": frame})
                    counter.inc(len(frame))
                    continue
                # A frame's worth at a time; raw ones are decompressed in a
                # thread (answers queued meanwhile go first). zstd ones are
                # only joined, as answers are: no thread hop on the way of
                # a painter's stroke to the viewers.
                taken = self._take_pushes()
                if any(p.encoding == enc.RAW and p.data is not None for p in taken):
                    frames, sent, marked = await asyncio.to_thread(_pack_pushes, taken, dtype)
                else:
                    frames, sent, marked = _pack_pushes(taken, dtype)
                for frame in frames:
                    await send({"type": "websocket.send", "bytes": frame})
                    counter.inc(len(frame))
                metrics.bricks_pushed.inc(sent)
                if marked:
                    self.marked_stale += marked
                    metrics.bricks_push_stale.inc(marked)

    async def _send_ready(self) -> None:
        send = self.ws.send
        counter = self.svc.metrics.bytes_out
        while self.ready:
            parts: list[bytes] = []
            count = 0
            size = 0
            while self.ready and size < self.frame_limit and count < 65535:
                item = self.ready[0]
                if isinstance(item, bytes):
                    if count:
                        break
                    self.ready.popleft()
                    await send({"type": "websocket.send", "bytes": item})
                    continue
                self.ready.popleft()
                state, b, brick, status = item
                payload = brick.payload if brick is not None and brick.payload else b""
                dtype = brick.dtype_code if brick is not None else 0
                parts.append(
                    wire.record_head(
                        state.request_id, b, status, dtype, state.encoding, len(payload)
                    )
                )
                if payload:
                    parts.append(payload)
                count += 1
                size += wire.RECORD_BYTES + len(payload)
            if count:
                frame = wire.bricks_head(count) + b"".join(parts)
                self.ready_bytes -= size
                if self.ready_bytes < self.buffer_limit:
                    self.space.set()
                await send({"type": "websocket.send", "bytes": frame})
                counter.inc(len(frame))

    # -- requests -------------------------------------------------------------

    def start(self, request: wire.Request) -> RequestState:
        settings = self.svc.settings
        rid = request.request_id
        if rid in self.requests:
            raise wire.FrameError(wire.E_DUPLICATE_REQUEST, f"request {rid} is still open", rid)
        if len(request.bricks) > settings.brick_batch_max:
            raise wire.FrameError(
                wire.E_BATCH_TOO_LARGE,
                f"request {rid}: {len(request.bricks)} bricks, at most "
                f"{settings.brick_batch_max} per request",
                rid,
            )
        if request.encoding not in enc.NAMES:
            raise wire.FrameError(
                wire.E_BAD_ENCODING, f"request {rid}: unknown encoding {request.encoding}", rid
            )
        mx, my, mz = request.mag
        mag = Mag(mx, my, mz)
        if mag not in self.reader.mags or not all(0 < f <= MAX_FACTOR for f in mag):
            known = ", ".join(str(m) for m in self.reader.mags)
            raise wire.FrameError(
                wire.E_UNKNOWN_MAG, f"request {rid}: no mag {mx}-{my}-{mz} (have {known})", rid
            )
        if request.mapping is not None and request.mapping not in self.reader.mappings:
            raise wire.FrameError(
                wire.E_UNKNOWN_MAPPING, f"request {rid}: no mapping {request.mapping!r}", rid
            )
        bricks = list(dict.fromkeys(request.bricks))
        if self.pending + len(bricks) > settings.brick_pending_max:
            raise wire.FrameError(
                wire.E_TOO_MANY_PENDING,
                f"request {rid}: {self.pending} bricks already pending, at most "
                f"{settings.brick_pending_max}",
                rid,
            )
        state = RequestState(rid, mag, request.encoding, request.mapping, bricks, set(bricks))
        self.requests[rid] = state
        self.pending += len(bricks)
        if self.live:
            for b in bricks:
                self._reading((mag, b))
        return state

    def cancel(self, cancel: wire.Cancel) -> None:
        state = self.requests.get(cancel.request_id)
        if state is None:
            return  # already answered: nothing to do
        targets = cancel.bricks or list(state.remaining)
        for b in targets:
            if b in state.remaining:
                state.remaining.discard(b)
                state.cancelled += 1
                self.pending -= 1
                if self.live:
                    self._read_done((state.mag, b), answered=False)

    async def produce(self, state: RequestState) -> None:
        source = self.reader
        misses: list[tuple[int, int, int]] = []
        for b in state.bricks:
            if b not in state.remaining:
                continue
            hit = source.cached(state.mag, b, state.encoding, state.mapping)
            if hit is None:
                misses.append(b)
            else:
                await self.deliver(state, b, hit, _status(hit))
        if misses:
            batches = iter([misses[i : i + READ_BATCH] for i in range(0, len(misses), READ_BATCH)])

            async def reader() -> None:
                for batch in batches:
                    wanted = [b for b in batch if b in state.remaining]
                    if not wanted:
                        continue
                    results = await source.read(state.mag, wanted, state.encoding, state.mapping)
                    for b, result in zip(wanted, results, strict=True):
                        if isinstance(result, Brick):
                            await self.deliver(state, b, result, _status(result))
                        else:
                            log.warning(
                                "brick read failed",
                                extra={"layer": source.label, "brick": b, "error": repr(result)},
                            )
                            await self.deliver(state, b, None, wire.STATUS_FAILED)

            async with asyncio.TaskGroup() as tg:
                for _ in range(min(READERS_PER_REQUEST, -(-len(misses) // READ_BATCH))):
                    tg.create_task(reader())
        del self.requests[state.request_id]
        self.control(
            wire.pack_done(
                state.request_id, state.sent, state.missing, state.cancelled, state.failed
            )
        )
        if state.sent:
            self.svc.metrics.bricks_sent.labels(enc.NAMES[state.encoding]).inc(state.sent)


def _pack_pushes(pushes: list[_Push], dtype: int) -> tuple[list[bytes], int, int]:
    """PUSHED frames of ``pushes`` (one per version and mag), raw ones
    decompressed (called in a thread when any is raw); with how many carry voxels and how many
    are stale marks (a change past the socket's limit, or bytes that do not
    decompress: the viewer asks again and gets what a read gives)."""
    groups: dict[tuple[int, Mag], list[wire.PushedBrick]] = {}
    sent = marked = 0
    for p in pushes:
        payload = p.data
        if payload is not None and p.encoding == enc.RAW:
            try:
                payload = enc.decompress(payload)
            except Exception:
                log.warning("a pushed brick does not decompress", extra={"brick": p.brick})
                payload = None
        if payload is None:
            marked += 1
        else:
            sent += 1
        brick = wire.PushedBrick(p.brick, dtype, p.encoding, payload)
        groups.setdefault((p.version, p.mag), []).append(brick)
    frames = [
        wire.pack_pushed(version, (mag.x, mag.y, mag.z), bricks)
        for (version, mag), bricks in groups.items()
    ]
    return frames, sent, marked


def _status(brick: Brick) -> int:
    return wire.STATUS_MISSING if brick.payload is None else wire.STATUS_OK


async def data_endpoint(ws: WebSocket) -> None:
    svc = services(ws)
    volumes = svc.volumes
    await ws.accept()
    try:
        caller = admit(ws)
        name = ws.path_params["dataset"]
        async with svc.pool.acquire() as db:
            who = await identity.authenticate(db, bearer(ws))
            await check_dataset_access(db, who, name)
        dataset = await volumes.dataset(name)
        layer = dataset.layer(ws.path_params["layer"])
    except CollabError as exc:
        svc.metrics.refused.labels(str(exc.close_code)).inc()
        await ws.close(exc.close_code, close_reason(exc.message))
        return
    await _serve(ws, svc, caller, DatasetReader(volumes, dataset, layer), None)


async def volume_endpoint(ws: WebSocket) -> None:
    """An annotation's volume layer (docs/protocol.md, "Bricks of an
    annotation's volume layer")."""
    svc = services(ws)
    await ws.accept()
    materialiser: Materialiser = ws.app.state.materialiser
    voxels: VoxelReads = ws.app.state.voxels
    try:
        caller = admit(ws)
        annotation_id = path_int(ws, "annotation_id")
        layer = ws.path_params["layer"]
        version = query_int(ws, "version", None, 0)
        async with svc.pool.acquire() as db:
            who = await identity.authenticate(db, bearer(ws))
            if await identity.access_to(db, who, annotation_id) < Access.READ:
                raise Forbidden(f"no access to annotation {annotation_id}")
            await check_annotation_dataset(db, who, annotation_id)
        await svc.rooms.committer.flush()  # "newest" is every version accepted so far
        done = await voxels.newest(annotation_id)
        if version is not None and version > done:
            raise NotFound(f"the segmentation has no version {version}; newest is {done}")
        async with svc.rooms.hold(RoomKey(annotation_id, SEGMENTATION.name)) as room:
            info = layer_info(room.doc, layer)
        if info is None:
            raise NotFound(f"the segmentation document has no volume layer {layer[:100]!r}")
    except CollabError as exc:
        svc.metrics.refused.labels(str(exc.close_code)).inc()
        await ws.close(exc.close_code, close_reason(exc.message))
        return
    reader = AnnotationLayerReader(voxels, annotation_id, layer, info, version)
    proofreading: Proofreading = ws.app.state.proofreading

    def watch(stream: BrickStream) -> AbstractContextManager[object]:
        """Changed bricks, and changed pairs of the layer's editable mapping."""
        stack = contextlib.ExitStack()
        stack.enter_context(materialiser.watch(annotation_id, stream.changed))
        stack.enter_context(proofreading.watch(annotation_id, stream.mapping_changed))
        return stack

    await _serve(ws, svc, caller, reader, None if version is not None else watch)


async def _serve(
    ws: WebSocket,
    svc: Services,
    caller: Caller,
    reader: LayerReader,
    watch: Callable[[BrickStream], AbstractContextManager[object]] | None,
) -> None:
    """Answer the socket's requests until it leaves; with ``watch`` (how to
    hear of changed bricks), the bricks it was sent are pushed as they change."""
    settings = svc.settings
    stream = BrickStream(
        ws, svc, reader, settings.brick_send_buffer_bytes, settings.brick_frame_bytes
    )
    stream.live = watch is not None
    volumes = svc.volumes
    svc.metrics.data_sockets.inc()
    volumes.streams.add(stream)
    refused: CollabError | None = None
    try:
        with watch(stream) if watch is not None else contextlib.nullcontext():
            async with asyncio.TaskGroup() as tg:
                pump = tg.create_task(stream.pump())
                refused = await _receive(ws, stream, tg, caller)
                pump.cancel()
                raise _Leave()
    except* _Leave:
        pass
    finally:
        volumes.streams.discard(stream)
        svc.metrics.data_sockets.dec()
    if refused is not None:
        svc.metrics.refused.labels(str(refused.close_code)).inc()
        with contextlib.suppress(Exception):  # bounded: the client may not read it
            await asyncio.wait_for(ws.close(refused.close_code, close_reason(refused.message)), 5)


class _Leave(Exception):
    """Ends the socket's task group once the client has gone."""


async def _receive(
    ws: WebSocket, stream: BrickStream, tg: asyncio.TaskGroup, caller: Caller
) -> CollabError | None:
    """Handle request frames until the client leaves (None) or is over its message rate."""
    yield_every = stream.svc.settings.receive_yield_every
    limits = stream.svc.limits
    count = 0
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        try:
            caller.message(limits)
        except RateLimited as exc:
            return exc
        frame = message.get("bytes")
        if frame is None:
            stream.control(
                wire.pack_error(wire.E_BAD_FRAME, "text frames are not part of the protocol")
            )
            continue
        stream.svc.metrics.bytes_in.inc(len(frame))
        try:
            parsed = wire.parse(frame)
            if isinstance(parsed, wire.Request):
                state = stream.start(parsed)
                tg.create_task(stream.produce(state))
            else:
                stream.cancel(parsed)
        except wire.FrameError as exc:
            stream.control(wire.pack_error(exc.code, exc.message, exc.request_id))
        count += 1
        if count % yield_every == 0:
            await asyncio.sleep(0)
