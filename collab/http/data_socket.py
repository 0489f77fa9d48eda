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
change ever overwrites it on the client.

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
from functools import partial
from typing import Protocol

from starlette.websockets import WebSocket

from collab.auth import Access
from collab.document.log import RoomKey
from collab.errors import CollabError, Forbidden, NotFound, RateLimited
from collab.http.common import Services, bearer, path_int, query_int, services
from collab.http.datasets import check_annotation_dataset, check_dataset_access
from collab.http.sync_socket import close_reason
from collab.http.throttle import Caller, admit
from collab.segmentation.kind import SEGMENTATION
from collab.segmentation.materialise import Materialiser, Watcher, layer_info
from collab.segmentation.reader import AnnotationLayerReader
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
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    space: asyncio.Event = field(default_factory=asyncio.Event)
    requests: dict[int, RequestState] = field(default_factory=dict)
    pending: int = 0
    #: Pushes: bricks sent (mag, brick) → the encoding they were asked in,
    #: oldest first; whether this stream pushes at all.
    live: bool = False
    watched: OrderedDict[tuple[Mag, tuple[int, int, int]], int] = field(default_factory=OrderedDict)
    #: Changes waiting to go out, newest per brick: (version, zstd bytes).
    pushes: dict[tuple[Mag, tuple[int, int, int]], tuple[int, bytes]] = field(default_factory=dict)
    #: Changes of bricks being read when they landed: pushed after the answer.
    stale: dict[tuple[Mag, tuple[int, int, int]], tuple[int, bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.space.set()

    # -- answers --------------------------------------------------------------

    async def deliver(
        self, state: RequestState, b: tuple[int, int, int], brick: Brick | None, status: int
    ) -> None:
        if self.ready_bytes >= self.buffer_limit:
            self.stalls += 1
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
        late = self.stale.pop(where, None)
        if late is not None:
            self.pushes[where] = late

    def changed(self, version: int, rows: list[BrickRow]) -> None:
        """The materialiser wrote ``version``: queue the bricks it changed
        that this socket shows (never blocks: coalesced per brick)."""
        layer = self.reader.name
        reading = {(st.mag, b) for st in self.requests.values() for b in st.remaining}
        for row in rows:
            if row.layer != layer:
                continue
            try:
                where = (parse_mag(row.mag), row.brick)
            except CollabError:
                continue
            if where in reading:
                self.stale[where] = (version, row.data)
            if where in self.watched:
                self.pushes[where] = (version, row.data)
        if self.pushes:
            self.wake.set()

    def _push_frames(self) -> list[bytes]:
        """The queued pushes as PUSHED frames (one per version and mag)."""
        groups: dict[tuple[int, Mag], list[bytes]] = {}
        sizes: dict[tuple[int, Mag], int] = {}
        frames: list[bytes] = []
        dtype = self.reader.dtype_code
        for (mag, b), (version, data) in self.pushes.items():
            encoding = self.watched.get((mag, b), enc.ZSTD)
            payload = data if encoding == enc.ZSTD else enc.decompress(data)
            group = (version, mag)
            parts = groups.setdefault(group, [])
            parts.append(wire.record_head(0, b, wire.STATUS_OK, dtype, encoding, len(payload)))
            parts.append(payload)
            sizes[group] = sizes.get(group, 0) + wire.RECORD_BYTES + len(payload)
            if sizes[group] >= self.frame_limit or len(parts) >= 2 * 65535:
                frames.append(
                    wire.pushed_head(len(parts) // 2, version, (mag.x, mag.y, mag.z))
                    + b"".join(parts)
                )
                del groups[group], sizes[group]
        for (version, mag), parts in groups.items():
            frames.append(
                wire.pushed_head(len(parts) // 2, version, (mag.x, mag.y, mag.z)) + b"".join(parts)
            )
        self.svc.metrics.bricks_pushed.inc(len(self.pushes))
        self.pushes.clear()
        return frames

    def control(self, frame: bytes) -> None:
        self.ready.append(frame)
        self.wake.set()

    async def pump(self) -> None:
        """Send what is ready, several bricks to a frame."""
        send = self.ws.send
        counter = self.svc.metrics.bytes_out
        while True:
            await self.wake.wait()
            self.wake.clear()
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
            if self.pushes:  # after every answer queued before them
                for frame in self._push_frames():
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
        done = await materialiser.newest(annotation_id)
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
    reader = AnnotationLayerReader(materialiser, annotation_id, layer, info, version)
    watch = None if version is not None else partial(materialiser.watch, annotation_id)
    await _serve(ws, svc, caller, reader, watch)


async def _serve(
    ws: WebSocket,
    svc: Services,
    caller: Caller,
    reader: LayerReader,
    watch: Callable[[Watcher], AbstractContextManager[None]] | None,
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
        with watch(stream.changed) if watch is not None else contextlib.nullcontext():
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
