"""One mag of one layer as a source of bricks, read with zarr-python.

Two ways to a brick:

* **stored bytes** (the fast path): when the array's (inner) chunks are
  exactly 32³ bricks, laid out x-fastest and encoded as ``bytes`` optionally
  followed by ``zstd``, a brick wholly inside the layer is the chunk's stored
  bytes. We locate them through zarr's store (a ranged read of the shard index,
  then of the chunk) and send them without decoding.
* **decoded**: anything else goes through zarr-python's ``AsyncArray.getitem``
  and is encoded by us.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from zarr.abc.store import RangeByteRequest, Store, SuffixByteRequest
from zarr.api.asynchronous import AsyncArray
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, TransposeCodec, ZstdCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import LocalStore

from collab.volume.layout import SPATIAL, MagSpec
from collab.volume.mags import Mag
from collab.volume.storage import GuardedStore

BRICK = 32
EMPTY_INT = 2**64 - 1
#: Shard indexes kept per source (each is 16 bytes per inner chunk: 512 KiB
#: for WEBKNOSSOS's 1024³ shards of 32³ chunks).
SHARD_INDEX_CACHE = 64


Place = tuple[str, int | None, int | None]
T = TypeVar("T")
#: Turns stored bytes (None: never written) and version tags into results.
Finish = Callable[[list[bytes | None], list[str | None]], list[T]]


class LocalFiles:
    """Ranged reads of local chunk/shard files with ``os.pread`` on cached file
    descriptors, in a thread: zarr's LocalStore opens the file on every read,
    which costs more than the read itself for a 32 KiB chunk."""

    MAX_OPEN = 256

    def __init__(self, root: str) -> None:
        self.root = root
        self._fds: OrderedDict[str, int] = OrderedDict()
        #: st_mtime_ns of each open file (part of a stored brick's ETag).
        self.mtimes: dict[str, int] = {}
        self._lock = threading.Lock()

    def _fd(self, key: str) -> int | None:
        with self._lock:
            fd = self._fds.get(key)
            if fd is not None:
                self._fds.move_to_end(key)
                return fd
        try:
            fd = os.open(os.path.join(self.root, key), os.O_RDONLY)
        except FileNotFoundError:
            return None
        mtime = os.fstat(fd).st_mtime_ns
        with self._lock:
            if key in self._fds:
                os.close(fd)
                return self._fds[key]
            self._fds[key] = fd
            self.mtimes[key] = mtime
            while len(self._fds) > self.MAX_OPEN:
                old_key, old = self._fds.popitem(last=False)
                self.mtimes.pop(old_key, None)
                os.close(old)
        return fd

    def _read(self, key: str, start: int | None, length: int | None) -> bytes | None:
        fd = self._fd(key)
        if fd is None:
            return None
        if start is None:
            size = os.fstat(fd).st_size
            start, length = 0, size
        elif start < 0:
            size = os.fstat(fd).st_size
            start, length = max(size + start, 0), min(-start, size)
        assert length is not None
        return os.pread(fd, length, start)

    async def read(
        self, key: str, start: int | None = None, length: int | None = None
    ) -> bytes | None:
        """``start`` None: the whole file; negative: the last ``-start`` bytes."""
        return await asyncio.to_thread(self._read, key, start, length)

    async def read_many(self, places: list[Place | None], finish: Finish[T]) -> list[T]:
        """Read ``places`` and ``finish`` them in one thread hop."""

        def run() -> list[T]:
            data = [self._read(*place) if place else None for place in places]
            tags = [
                f"{p[0]}:{p[1]}:{p[2]}:{self.mtimes.get(p[0], 0)}" if p else None for p in places
            ]
            return finish(data, tags)

        return await asyncio.to_thread(run)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


@dataclass(frozen=True, slots=True)
class StoredLayout:
    """How to find a brick's stored bytes, when the fast path applies."""

    #: Encoding of the stored bytes: ``"raw"`` or ``"zstd"``.
    encoding: str
    #: Chunks per shard along the array's axes, or None when not sharded.
    per_shard: tuple[int, ...] | None
    index_bytes: int
    index_at_end: bool


def stored_layout(array: AsyncArray[Any], axes: tuple[str, ...]) -> StoredLayout | None:
    """The fast-path layout of ``array``, or None when bricks must be decoded."""
    meta = array.metadata
    if getattr(meta, "zarr_format", 2) != 3:
        return None
    codecs = list(meta.codecs)
    chunk_shape = tuple(int(n) for n in meta.chunk_grid.chunk_shape)
    per_shard: tuple[int, ...] | None = None
    index_bytes = 0
    index_at_end = True
    if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
        sharding = codecs[0]
        inner = tuple(sharding.chunk_shape)
        if any(s % i for s, i in zip(chunk_shape, inner, strict=True)):
            return None
        per_shard = tuple(s // i for s, i in zip(chunk_shape, inner, strict=True))
        index_codecs = list(sharding.index_codecs)
        if not index_codecs or not isinstance(index_codecs[0], BytesCodec):
            return None
        if index_codecs[0].endian is not None and index_codecs[0].endian.value != "little":
            return None
        crc = index_codecs[1:] == [Crc32cCodec()] or (
            len(index_codecs) == 2 and isinstance(index_codecs[1], Crc32cCodec)
        )
        if len(index_codecs) > 1 and not crc:
            return None
        index_bytes = 16 * math.prod(per_shard) + (4 if crc else 0)
        index_at_end = str(getattr(sharding.index_location, "value", "end")) == "end"
        codecs = list(sharding.codecs)
        chunk_shape = inner
    shape_by_axis = dict(zip(axes, chunk_shape, strict=True))
    if any(shape_by_axis[a] != BRICK for a in SPATIAL):
        return None
    if any(n != 1 for a, n in shape_by_axis.items() if a not in SPATIAL):
        return None
    order = list(range(len(axes)))
    if codecs and isinstance(codecs[0], TransposeCodec):
        order = [int(o) for o in codecs[0].order]
        codecs = codecs[1:]
    stored_axes = [axes[o] for o in order if axes[o] in SPATIAL]
    if stored_axes != ["z", "y", "x"]:
        return None
    if not codecs or not isinstance(codecs[0], BytesCodec):
        return None
    endian = codecs[0].endian
    if (
        endian is not None
        and endian.value != "little"
        and meta.dtype.to_native_dtype().itemsize > 1
    ):
        return None
    rest = codecs[1:]
    if not rest:
        return StoredLayout("raw", per_shard, index_bytes, index_at_end)
    if len(rest) == 1 and isinstance(rest[0], ZstdCodec):
        return StoredLayout("zstd", per_shard, index_bytes, index_at_end)
    return None


async def _none() -> None:
    return None


class MagSource:
    """Reads bricks of one mag. Coordinates are brick indices at this mag."""

    def __init__(
        self,
        spec: MagSpec,
        array: AsyncArray[Any],
        store: Store,
        array_path: str,
        dtype: np.dtype[Any],
        valid_lo: tuple[int, int, int],
        valid_hi: tuple[int, int, int],
    ) -> None:
        self.spec = spec
        self.mag: Mag = spec.mag
        self.array = array
        self.store = store
        self.array_path = array_path.rstrip("/")
        self.dtype = dtype
        #: The layer's bounding box at this mag (rounded outward), in mag voxels.
        self.valid_lo = valid_lo
        self.valid_hi = valid_hi
        self.axes = spec.axes
        self.spatial_index = tuple(spec.axes.index(a) for a in SPATIAL)
        self.shape = tuple(int(s) for s in array.shape)
        self.layout = stored_layout(array, spec.axes)
        self.fill = array.metadata.fill_value
        self.files = LocalFiles(str(store.root)) if isinstance(store, LocalStore) else None
        self._shard_index: OrderedDict[tuple[int, ...], np.ndarray | None] = OrderedDict()
        self._keys: dict[tuple[int, ...], str] = {}

    # -- geometry -------------------------------------------------------------

    def brick_box(self, b: tuple[int, int, int]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """The part of brick ``b`` inside the layer, in mag voxels; None if none."""
        lo = tuple(max(b[i] * BRICK, self.valid_lo[i]) for i in range(3))
        hi = tuple(min(b[i] * BRICK + BRICK, self.valid_hi[i]) for i in range(3))
        if any(b[i] < 0 or lo[i] >= hi[i] for i in range(3)):
            return None
        return lo, hi

    def fully_inside(self, b: tuple[int, int, int]) -> bool:
        for i in range(3):
            lo = b[i] * BRICK
            start = lo - self.spec.origin[i]
            if lo < self.valid_lo[i] or lo + BRICK > self.valid_hi[i]:
                return False
            if start < 0 or start + BRICK > self.shape[self.spatial_index[i]]:
                return False
        return True

    # -- stored bytes ---------------------------------------------------------

    def can_use_stored(self, b: tuple[int, int, int]) -> bool:
        if self.layout is None:
            return False
        return all((b[i] * BRICK - self.spec.origin[i]) % BRICK == 0 for i in range(3)) and (
            self.fully_inside(b)
        )

    async def _locate(self, b: tuple[int, int, int]) -> Place | None:
        """Where brick ``b``'s stored bytes are: (key, start, length), or None
        when its chunk was never written (it reads as the fill value)."""
        layout = self.layout
        assert layout is not None
        chunk = [0] * len(self.axes)
        origin = self.spec.origin
        for i, axis_index in enumerate(self.spatial_index):
            chunk[axis_index] = (b[i] * BRICK - origin[i]) // BRICK
        per_shard = layout.per_shard
        if per_shard is None:
            return self._key(tuple(chunk)), None, None
        shard = tuple(c // n for c, n in zip(chunk, per_shard, strict=True))
        flat = 0
        for c, n in zip(chunk, per_shard, strict=True):
            flat = flat * n + c % n
        key = self._key(shard)
        index = self._shard_index.get(shard)
        if index is None:
            index = await self._index(shard, key)
            if index is None:
                return None
        offset, nbytes = index.item(2 * flat), index.item(2 * flat + 1)
        if offset == EMPTY_INT and nbytes == EMPTY_INT:
            return None
        return key, offset, nbytes

    async def stored_bytes(self, b: tuple[int, int, int]) -> bytes | None:
        """The stored encoded bytes of brick ``b`` (``layout.encoding``), or
        None when the chunk was never written (it reads as the fill value)."""
        return (await self.stored_many([b], lambda data, _tags: data))[0]

    async def stored_many(self, bricks: list[tuple[int, int, int]], finish: Finish[T]) -> list[T]:
        """The stored bytes of several bricks, handed to ``finish`` (with a
        version tag per brick when the store gives one cheaply, else None) in
        a worker thread: local files are read there too, in the same hop (a
        batch of ``pread``); other stores have their reads in flight together."""
        places = [await self._locate(b) for b in bricks]
        if self.files is not None:
            return await self.files.read_many(places, finish)
        if isinstance(self.store, GuardedStore):
            data = await self._ranges(self.store, places)
        else:
            data = list(
                await asyncio.gather(*(self._get(*place) if place else _none() for place in places))
            )
        return await asyncio.to_thread(finish, data, [None] * len(data))

    async def _ranges(self, store: GuardedStore, places: list[Place | None]) -> list[bytes | None]:
        """Stored bytes of ``places`` from a remote store: the ranges of each
        shard in one ``get_ranges`` (coalesced requests), shards in parallel."""
        data: list[bytes | None] = [None] * len(places)
        by_key: dict[str, list[int]] = {}
        whole: list[int] = []
        for i, place in enumerate(places):
            if place is None:
                continue
            if place[1] is None or place[2] is None:
                whole.append(i)
            else:
                by_key.setdefault(place[0], []).append(i)

        async def shard(key: str, indices: list[int]) -> None:
            ranges = []
            for i in indices:
                place = places[i]
                assert place is not None and place[1] is not None and place[2] is not None
                ranges.append((place[1], place[2]))
            found = await store.get_ranges(key, ranges)
            if found is not None:
                for i, chunk in zip(indices, found, strict=True):
                    data[i] = chunk

        async def one(i: int) -> None:
            place = places[i]
            assert place is not None
            data[i] = await self._get(*place)

        try:
            async with asyncio.TaskGroup() as tg:
                for key, indices in by_key.items():
                    tg.create_task(shard(key, indices))
                for i in whole:
                    tg.create_task(one(i))
        except* Exception as group:
            # The store's error as it is (Unavailable, StorageRefused), not a group.
            raise group.exceptions[0] from None
        return data

    async def _get(self, key: str, start: int | None, length: int | None) -> bytes | None:
        """Bytes of ``key`` (a byte range of it, or its last ``-start`` bytes)."""
        if self.files is not None:
            return await self.files.read(key, start, length)
        request: RangeByteRequest | SuffixByteRequest | None = None
        if start is not None and start < 0:
            request = SuffixByteRequest(-start)
        elif start is not None and length is not None:
            request = RangeByteRequest(start, start + length)
        buf = await self.store.get(key, prototype=default_buffer_prototype(), byte_range=request)
        return None if buf is None else buf.to_bytes()

    def _key(self, chunk: tuple[int, ...]) -> str:
        found = self._keys.get(chunk)
        if found is None:
            name = self.array.metadata.encode_chunk_key(chunk)
            found = f"{self.array_path}/{name}" if self.array_path else name
            if len(self._keys) < 65536:
                self._keys[chunk] = found
        return found

    async def _index(self, shard: tuple[int, ...], key: str) -> np.ndarray | None:
        cached = self._shard_index.get(shard, False)
        if cached is not False:
            self._shard_index.move_to_end(shard)
            return cached  # type: ignore[return-value]
        layout = self.layout
        assert layout is not None and layout.per_shard is not None
        n = math.prod(layout.per_shard)
        if layout.index_at_end:
            raw = await self._get(key, -layout.index_bytes, None)
        else:
            raw = await self._get(key, 0, layout.index_bytes)
        index = None
        if raw is not None:
            if len(raw) < 16 * n:
                raise OSError(f"{key}: shard index is truncated")
            index = np.frombuffer(raw[: 16 * n], dtype="<u8")
        self._shard_index[shard] = index
        if len(self._shard_index) > SHARD_INDEX_CACHE:
            self._shard_index.popitem(last=False)
        return index

    # -- decoded --------------------------------------------------------------

    async def read(self, b: tuple[int, int, int]) -> np.ndarray | None:
        """Brick ``b`` decoded as a (32, 32, 32) array indexed [x, y, z], zero
        outside the layer; None when it lies wholly outside."""
        box = self.brick_box(b)
        if box is None:
            return None
        lo, hi = box
        out = np.zeros((BRICK, BRICK, BRICK), dtype=self.dtype)
        sel: list[Any] = [0] * len(self.axes)
        dst: list[slice] = []
        for i, axis_index in enumerate(self.spatial_index):
            start = max(lo[i] - self.spec.origin[i], 0)
            stop = min(hi[i] - self.spec.origin[i], self.shape[axis_index])
            if start >= stop:
                return out
            sel[axis_index] = slice(start, stop)
            first = start + self.spec.origin[i] - b[i] * BRICK
            dst.append(slice(first, first + stop - start))
        data = np.asarray(await self.array.getitem(tuple(sel)))
        # Remaining axes are the spatial ones, in array order: bring them to x, y, z.
        remaining = [a for a in self.axes if a in SPATIAL]
        out[dst[0], dst[1], dst[2]] = np.transpose(data, [remaining.index(a) for a in SPATIAL])
        return out
