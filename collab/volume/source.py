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

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from zarr.abc.store import RangeByteRequest, Store, SuffixByteRequest
from zarr.api.asynchronous import AsyncArray
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, TransposeCodec, ZstdCodec
from zarr.core.buffer import default_buffer_prototype

from collab.volume.layout import SPATIAL, MagSpec
from collab.volume.mags import Mag

BRICK = 32
EMPTY = np.uint64(2**64 - 1)
#: Shard indexes kept per source (each is 16 bytes per inner chunk).
SHARD_INDEX_CACHE = 256


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
        self._shard_index: OrderedDict[tuple[int, ...], np.ndarray | None] = OrderedDict()

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

    async def stored_bytes(self, b: tuple[int, int, int]) -> bytes | None:
        """The stored encoded bytes of brick ``b`` (``layout.encoding``), or
        None when the chunk was never written (it reads as the fill value)."""
        layout = self.layout
        assert layout is not None
        chunk = [0] * len(self.axes)
        for i, axis_index in enumerate(self.spatial_index):
            chunk[axis_index] = (b[i] * BRICK - self.spec.origin[i]) // BRICK
        prototype = default_buffer_prototype()
        if layout.per_shard is None:
            key = self._key(tuple(chunk))
            buf = await self.store.get(key, prototype=prototype)
            return None if buf is None else buf.to_bytes()
        shard = tuple(c // n for c, n in zip(chunk, layout.per_shard, strict=True))
        within = tuple(c % n for c, n in zip(chunk, layout.per_shard, strict=True))
        key = self._key(shard)
        index = await self._index(shard, key)
        if index is None:
            return None
        flat = int(np.ravel_multi_index(within, layout.per_shard))
        offset, nbytes = index[flat]
        if offset == EMPTY and nbytes == EMPTY:
            return None
        buf = await self.store.get(
            key, prototype=prototype, byte_range=RangeByteRequest(int(offset), int(offset + nbytes))
        )
        return None if buf is None else buf.to_bytes()

    def _key(self, chunk: tuple[int, ...]) -> str:
        name = self.array.metadata.encode_chunk_key(chunk)
        return f"{self.array_path}/{name}" if self.array_path else name

    async def _index(self, shard: tuple[int, ...], key: str) -> np.ndarray | None:
        cached = self._shard_index.get(shard, False)
        if cached is not False:
            self._shard_index.move_to_end(shard)
            return cached  # type: ignore[return-value]
        layout = self.layout
        assert layout is not None and layout.per_shard is not None
        n = math.prod(layout.per_shard)
        request = (
            SuffixByteRequest(layout.index_bytes)
            if layout.index_at_end
            else RangeByteRequest(0, layout.index_bytes)
        )
        buf = await self.store.get(key, prototype=default_buffer_prototype(), byte_range=request)
        index = None
        if buf is not None:
            raw = buf.to_bytes()
            if len(raw) < 16 * n:
                raise OSError(f"{key}: shard index is truncated")
            index = np.frombuffer(raw[: 16 * n], dtype="<u8").reshape(n, 2)
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
