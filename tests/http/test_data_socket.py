"""The brick stream of an annotation's layer, its pushes driven step by
step: a reader whose reads the test answers and a viewer whose reading the
test pauses, so each race (a change landing while its brick is read, a
viewer that stops reading) happens exactly, without timing. The same
stream over a real socket and a real materialiser:
tests/segmentation/test_volume_live.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest

from collab.config import Settings
from collab.http import data_socket
from collab.http.common import Services
from collab.http.data_socket import BrickStream
from collab.metrics import Metrics
from collab.store.materialised import BrickRow
from collab.volume import encoding as enc
from collab.volume import wire
from collab.volume.cache import Brick
from collab.volume.mags import Mag

Coord = tuple[int, int, int]
MAG = Mag(1, 1, 1)
U32 = np.dtype("uint32")


def voxels(value: int) -> bytes:
    return enc.to_raw(np.full((32, 32, 32), value, dtype=U32))


class GatedReader:
    """A layer whose reads wait until the test answers them."""

    name = "L1"
    label = "test/L1"
    mags = (MAG,)
    mappings = ()
    dtype_code = 3

    def __init__(self) -> None:
        self.asked: dict[Coord, asyncio.Future[Brick | BaseException]] = {}
        self.reading = asyncio.Event()

    def cached(self, mag: Mag, b: Coord, encoding: int, mapping: str | None) -> Brick | None:
        return None

    async def read(
        self, mag: Mag, bricks: list[Coord], encoding: int, mapping: str | None
    ) -> list[Brick | BaseException]:
        loop = asyncio.get_running_loop()
        futures = [self.asked.setdefault(b, loop.create_future()) for b in bricks]
        self.reading.set()
        return [await f for f in futures]

    def answer(self, b: Coord, result: Brick | BaseException) -> None:
        self.asked.pop(b).set_result(result)


@dataclass
class Viewer:
    """The socket's far end: keeps every frame; ``paused`` stops its reading."""

    frames: list[bytes] = field(default_factory=list)
    reading: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.reading.set()

    async def send(self, message: dict[str, Any]) -> None:
        await self.reading.wait()
        self.frames.append(message["bytes"])
        self.arrived.set()

    async def until(self, condition: Any, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.arrived.clear()
                await self.arrived.wait()

    def done(self) -> set[int]:
        return {wire.unpack_done(f)[0] for f in self.frames if f[0] == wire.DONE}

    def pushed(self) -> list[tuple[int, wire.Record]]:
        """Every pushed record, in the order sent, with its frame's version."""
        out = []
        for f in self.frames:
            if f[0] == wire.PUSHED:
                version, _mag, records = wire.unpack_pushed(f)
                out.extend((version, r) for r in records)
        return out


@asynccontextmanager
async def stream_of(
    reader: GatedReader, viewer: Viewer, buffer_limit: int = 4 * 2**20
) -> AsyncIterator[tuple[BrickStream, asyncio.TaskGroup]]:
    svc = cast(Services, SimpleNamespace(settings=Settings(), metrics=Metrics()))
    stream = BrickStream(cast(Any, viewer), svc, reader, buffer_limit, 512 * 1024)
    stream.live = True
    async with asyncio.TaskGroup() as tg:
        pump = tg.create_task(stream.pump())
        yield stream, tg
        pump.cancel()


def ask(
    stream: BrickStream,
    tg: asyncio.TaskGroup,
    rid: int,
    bricks: list[Coord],
    encoding: int = enc.ZSTD,
) -> None:
    state = stream.start(wire.Request(rid, encoding, (1, 1, 1), None, bricks))
    tg.create_task(stream.produce(state))


def row(b: Coord, data: bytes) -> BrickRow:
    return BrickRow("L1", "1", b, data)


@pytest.fixture
def reader() -> GatedReader:
    return GatedReader()


async def test_a_change_while_read_is_pushed_after_the_answer(reader: GatedReader) -> None:
    viewer = Viewer()
    async with stream_of(reader, viewer) as (stream, tg):
        ask(stream, tg, 1, [(0, 0, 0)])
        await reader.reading.wait()
        v5 = enc.compress(voxels(5))
        stream.changed(5, [row((0, 0, 0), v5)])
        assert (MAG, (0, 0, 0)) in stream.stale and not stream.pushes  # not shown yet
        reader.answer((0, 0, 0), Brick(enc.compress(voxels(4)), enc.ZSTD, 3, ""))
        await viewer.until(lambda: viewer.pushed())
        kinds = [f[0] for f in viewer.frames]
        assert kinds.index(wire.BRICKS) < kinds.index(wire.PUSHED)
        assert [(v, r.status, r.payload) for v, r in viewer.pushed()] == [(5, wire.STATUS_OK, v5)]
        assert not stream.stale and not stream.reading and stream.push_bytes == 0


@pytest.mark.parametrize("ending", ["cancelled", "failed", "missing"])
async def test_a_change_while_read_goes_with_an_unanswered_read(
    reader: GatedReader, ending: str
) -> None:
    """A read that ends without voxels (cancelled, failed, missing) takes
    the change it saw land with it: a later answer of the brick, read
    after the change, is never followed by the older change."""
    viewer = Viewer()
    async with stream_of(reader, viewer) as (stream, tg):
        ask(stream, tg, 1, [(0, 0, 0)])
        await reader.reading.wait()
        stream.changed(5, [row((0, 0, 0), enc.compress(voxels(5)))])
        assert stream.stale
        old = Brick(enc.compress(voxels(4)), enc.ZSTD, 3, "")
        if ending == "cancelled":
            stream.cancel(wire.Cancel(1, []))
            assert not stream.stale and not stream.reading and stream.push_bytes == 0
            reader.answer((0, 0, 0), old)
        elif ending == "failed":
            reader.answer((0, 0, 0), OSError("the read failed"))
        else:
            reader.answer((0, 0, 0), Brick(None, enc.ZSTD, 3, ""))
        await viewer.until(lambda: 1 in viewer.done())
        assert not stream.stale and not stream.reading and stream.push_bytes == 0
        # Asked again: read after version 6, the answer is the newest there is.
        reader.reading.clear()
        ask(stream, tg, 2, [(0, 0, 0)])
        await reader.reading.wait()
        reader.answer((0, 0, 0), Brick(enc.compress(voxels(6)), enc.ZSTD, 3, ""))
        await viewer.until(lambda: 2 in viewer.done())
        assert not stream.pushes and viewer.pushed() == []


async def test_two_reads_of_a_brick_one_cancelled(reader: GatedReader) -> None:
    viewer = Viewer()
    async with stream_of(reader, viewer) as (stream, tg):
        ask(stream, tg, 1, [(0, 0, 0)])
        ask(stream, tg, 2, [(0, 0, 0)])
        await reader.reading.wait()
        assert stream.reading == {(MAG, (0, 0, 0)): 2}
        stream.changed(5, [row((0, 0, 0), enc.compress(voxels(5)))])
        stream.cancel(wire.Cancel(1, []))
        assert stream.stale  # request 2 still reads it
        reader.answer((0, 0, 0), Brick(enc.compress(voxels(4)), enc.ZSTD, 3, ""))
        await viewer.until(lambda: {1, 2} <= viewer.done() and viewer.pushed())
        assert [v for v, _r in viewer.pushed()] == [5]
        assert not stream.stale and not stream.reading


async def test_a_viewer_that_does_not_read_holds_a_bounded_push_buffer(
    reader: GatedReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changes to the bricks of a viewer that stopped reading are held up to
    the socket's send buffer (zstd bytes); past it as stale marks, sent
    without voxels. Every brick's newest version reaches the viewer once
    it reads again, as voxels or as a mark; raw ones are decompressed off
    the event loop."""
    limit = 256 * 1024
    loop_thread = threading.get_ident()
    decoded_on: set[int] = set()
    decompress = enc.decompress

    def watched_decompress(data: bytes) -> bytes:
        decoded_on.add(threading.get_ident())
        return decompress(data)

    monkeypatch.setattr(enc, "decompress", watched_decompress)
    bricks = [(x, y, 0) for x in range(10) for y in range(10)]
    viewer = Viewer()
    async with stream_of(reader, viewer, buffer_limit=limit) as (stream, tg):
        ask(stream, tg, 1, bricks[:50], enc.RAW)
        ask(stream, tg, 2, bricks[50:], enc.ZSTD)
        await reader.reading.wait()
        for b in bricks:
            reader.answer(b, Brick(b"x", enc.ZSTD, 3, ""))
        await viewer.until(lambda: {1, 2} <= viewer.done())
        assert len(stream.watched) == 100
        viewer.reading.clear()  # stops reading
        rng = np.random.default_rng(1)
        newest: dict[Coord, bytes] = {}
        for version in range(10, 14):  # noise: each brick ~128 KiB of zstd
            rows = []
            for b in bricks:
                raw = enc.to_raw(rng.integers(0, 2**32, (32, 32, 32), dtype=np.uint32))
                rows.append(row(b, enc.compress(raw)))
                newest[b] = raw
            stream.changed(version, rows)
            assert stream.push_bytes <= limit
        assert len(stream.pushes) == len(bricks)  # one per brick, never a backlog
        held = [data for _v, data in stream.pushes.values() if data is not None]
        assert len(held) == 1 and stream.push_peak_bytes <= limit
        viewer.reading.set()
        await viewer.until(lambda: not stream.pushes and len(latest(viewer)) == 100)
        got = latest(viewer)
        for b in bricks:
            version, record = got[b]
            assert version == 13
            assert record.encoding == (enc.RAW if b in bricks[:50] else enc.ZSTD)
            if record.status == wire.STATUS_STALE:
                assert record.payload == b""
            else:
                assert record.status == wire.STATUS_OK
                raw = record.payload if record.encoding == enc.RAW else decompress(record.payload)
                assert raw == newest[b]
        assert sum(r.status == wire.STATUS_STALE for _v, r in got.values()) == 99
        assert stream.marked_stale == 99
        assert decoded_on and loop_thread not in decoded_on  # brick (0, 0, 0): raw
        metrics = stream.svc.metrics.render().decode()
        assert "collab_bricks_push_stale_total 99.0" in metrics


def latest(viewer: Viewer) -> dict[Coord, tuple[int, wire.Record]]:
    """Each brick's last pushed record; versions never go back."""
    out: dict[Coord, tuple[int, wire.Record]] = {}
    for version, r in viewer.pushed():
        if r.brick in out:
            assert out[r.brick][0] <= version
        out[r.brick] = (version, r)
    return out


def test_pack_pushes_marks_what_does_not_decompress() -> None:
    good = enc.compress(voxels(3))
    pushes = [
        data_socket._Push(MAG, (0, 0, 0), 7, enc.RAW, good),
        data_socket._Push(MAG, (1, 0, 0), 7, enc.RAW, b"not zstd"),
        data_socket._Push(MAG, (2, 0, 0), 7, enc.ZSTD, None),
        data_socket._Push(Mag(2, 2, 2), (0, 0, 0), 8, enc.ZSTD, good),
    ]
    frames, sent, marked = data_socket._pack_pushes(pushes, 3)
    assert (sent, marked) == (2, 2)
    unpacked = [wire.unpack_pushed(f) for f in frames]
    assert [(v, m, [(r.brick, r.status, r.encoding) for r in rs]) for v, m, rs in unpacked] == [
        (
            7,
            (1, 1, 1),
            [
                ((0, 0, 0), wire.STATUS_OK, enc.RAW),
                ((1, 0, 0), wire.STATUS_STALE, enc.RAW),
                ((2, 0, 0), wire.STATUS_STALE, enc.ZSTD),
            ],
        ),
        (8, (2, 2, 2), [((0, 0, 0), wire.STATUS_OK, enc.ZSTD)]),
    ]
    assert unpacked[0][2][0].payload == voxels(3)
