"""The volume service: registered datasets, bricks through the cache, segments.

Every brick request, from the WebSocket or HTTP, goes through
:meth:`Volumes.brick`: cache, then one shared in-flight read per brick, then
the stored-bytes fast path or zarr-python's decode. CPU work (compression,
mapping, hashing large payloads) runs in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import orjson

from collab.config import Settings
from collab.errors import BadRequest, Conflict, LayoutError, NotFound
from collab.metrics import Metrics
from collab.store import datasets as dataset_rows
from collab.store.database import Database
from collab.volume import encoding as enc
from collab.volume.agglomerates import AgglomerateReader
from collab.volume.cache import Brick, BrickCache
from collab.volume.dataset import Dataset, Layer, open_dataset
from collab.volume.mags import Mag
from collab.volume.roots import resolve
from collab.volume.source import BRICK, MagSource
from collab.volume.storage import StoreHealth

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
#: Largest region (voxels) a segment query scans.
MAX_SCAN_VOXELS = 1 << 27


def check_name(name: str) -> str:
    if not name or len(name) > 100 or not set(name) <= NAME_CHARS or name.startswith("."):
        raise BadRequest(
            f"dataset name {name!r}: 1-100 characters of letters, digits, '_', '.', '-'"
        )
    return name


def _etag(payload: bytes | None) -> str:
    if payload is None:
        return '"missing"'
    return '"' + hashlib.blake2b(payload, digest_size=12).hexdigest() + '"'


class Volumes:
    def __init__(self, settings: Settings, pool: Database, metrics: Metrics) -> None:
        self.settings = settings
        self.pool = pool
        self.metrics = metrics
        self.cache = BrickCache(settings.brick_cache_bytes)
        self.graphs = AgglomerateReader(
            settings.agglomerate_graph_bytes, settings.agglomerate_max_edges
        )
        #: Remote stores failing now: logged once per spell (collab/volume/storage.py).
        self.store_health = StoreHealth()
        self._open: dict[str, Dataset] = {}
        self._opening: dict[str, asyncio.Future[Dataset]] = {}
        self._inflight: dict[Hashable, asyncio.Future[Brick]] = {}
        #: Open brick streams (the data sockets), for /metrics and tests.
        self.streams: set[Any] = set()
        metrics.watch_brick_cache(
            lambda: (
                self.cache.hits,
                self.cache.misses,
                self.cache.bytes,
                len(self.cache),
                self.cache.budget,
            )
        )

    def close(self) -> None:
        """Close the file descriptors the open datasets hold."""
        for dataset in self._open.values():
            for layer in dataset.layers.values():
                for source in layer.sources.values():
                    if source.files is not None:
                        source.files.close()
        self._open.clear()
        self.cache.clear()
        self.graphs.clear()

    # -- datasets -------------------------------------------------------------

    async def register(self, name: str, url: str, created_by: int | None) -> Dataset:
        """Register ``url`` (resolved under the dataset roots) as ``name``."""
        check_name(name)
        return await self.register_location(name, resolve(url, self.settings.roots), created_by)

    async def register_location(self, name: str, location: str, created_by: int | None) -> Dataset:
        """Register a location the server chose itself (the demo dataset)."""
        async with self.pool.acquire() as db:
            if await dataset_rows.exists(db, name):
                raise Conflict(f"a dataset named {name!r} is already registered")
        dataset = await open_dataset(
            name, location, self.settings.object_storage, self.store_health
        )
        async with self.pool.acquire() as db:
            await dataset_rows.insert(
                db, name, location, dataset.layout, dataset.metadata(), created_by
            )
        self._open[name] = dataset
        return dataset

    async def dataset(self, name: str) -> Dataset:
        found = self._open.get(name)
        if found is not None:
            return found
        pending = self._opening.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Dataset] = asyncio.get_running_loop().create_future()
        self._opening[name] = future
        try:
            async with self.pool.acquire() as db:
                row = await dataset_rows.get(db, name)
            if row is None:
                raise NotFound(f"no dataset named {name!r}")
            try:
                dataset = await open_dataset(
                    row["name"], row["url"], self.settings.object_storage, self.store_health
                )
            except FileNotFoundError:
                raise LayoutError(f"{row['url']}: the dataset's files are gone") from None
            self._open[name] = dataset
            future.set_result(dataset)
            return dataset
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._opening[name]

    async def names(self) -> list[str]:
        async with self.pool.acquire() as db:
            return await dataset_rows.names(db)

    async def stored_metadata(self, name: str) -> dict[str, Any] | None:
        async with self.pool.acquire() as db:
            row = await dataset_rows.get(db, name)
        if row is None:
            return None
        meta: dict[str, Any] = orjson.loads(row["metadata"])
        return meta

    # -- bricks ---------------------------------------------------------------

    def cached(
        self,
        dataset: str,
        layer: str,
        mag: Mag,
        b: tuple[int, int, int],
        encoding: int,
        mapping: str | None,
    ) -> Brick | None:
        return self.cache.get((dataset, layer, mag, b, encoding, mapping))

    async def brick(
        self,
        dataset: Dataset,
        layer: Layer,
        mag: Mag,
        b: tuple[int, int, int],
        encoding: int,
        mapping: str | None = None,
    ) -> Brick:
        key = (dataset.name, layer.name, mag, b, encoding, mapping)
        found = self.cache.get(key)
        if found is not None:
            return found
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Brick] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            brick = await self._load(layer, mag, b, encoding, mapping)
            self.cache.put(key, brick)
            future.set_result(brick)
            return brick
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._inflight[key]

    async def brick_batch(
        self,
        dataset: Dataset,
        layer: Layer,
        mag: Mag,
        bricks: list[tuple[int, int, int]],
        encoding: int,
        mapping: str | None = None,
    ) -> list[Brick | BaseException]:
        """Several bricks at once (each as :meth:`brick`, or the exception its
        read raised). Stored bytes of local files are read in one thread hop
        and finished (converted, hashed) in another: per-brick hops cost more
        than the reads."""
        keys = [(dataset.name, layer.name, mag, b, encoding, mapping) for b in bricks]
        out: list[Brick | BaseException | None] = [self.cache.get(k) for k in keys]
        source = layer.source(mag)
        mine: list[int] = []
        waiting: list[int] = []
        for i, key in enumerate(keys):
            if out[i] is not None:
                continue
            if key in self._inflight:
                waiting.append(i)
            else:
                mine.append(i)
                future: asyncio.Future[Brick] = asyncio.get_running_loop().create_future()
                self._inflight[key] = future
        fast = [
            i
            for i in mine
            if mapping is None
            and source.brick_box(bricks[i]) is not None
            and source.can_use_stored(bricks[i])
        ]
        fast_set = set(fast)
        try:
            if fast:
                layout = source.layout
                assert layout is not None
                fill = enc.to_raw(
                    np.full((BRICK, BRICK, BRICK), source.fill or 0, dtype=source.dtype)
                )
                stored_code = enc.CODES[layout.encoding]
                dtype_code = enc.DTYPE_CODES[layer.dtype.name]
                finished = await source.stored_many(
                    [bricks[i] for i in fast],
                    lambda data, tags: _finish_stored(
                        data, tags, stored_code, encoding, dtype_code, fill
                    ),
                )
                for i, brick in zip(fast, finished, strict=True):
                    out[i] = brick
            for i in mine:
                if i not in fast_set:
                    try:
                        out[i] = await self._load(layer, mag, bricks[i], encoding, mapping)
                    except Exception as exc:
                        out[i] = exc
        except BaseException as exc:
            for i in mine:
                if out[i] is None:
                    out[i] = exc if isinstance(exc, Exception) else RuntimeError("cancelled")
            if not isinstance(exc, Exception):
                self._settle(keys, mine, out)
                raise
        self._settle(keys, mine, out)
        for i in waiting:
            try:
                out[i] = await self.brick(dataset, layer, mag, bricks[i], encoding, mapping)
            except Exception as exc:
                out[i] = exc
        return [o if o is not None else RuntimeError("not read") for o in out]

    def _settle(
        self, keys: Sequence[Hashable], mine: list[int], out: list[Brick | BaseException | None]
    ) -> None:
        for i in mine:
            future = self._inflight.pop(keys[i])
            result = out[i]
            if isinstance(result, Brick):
                self.cache.put(keys[i], result)
                future.set_result(result)
            else:
                future.set_exception(
                    result if isinstance(result, BaseException) else RuntimeError()
                )
                future.exception()

    async def _load(
        self, layer: Layer, mag: Mag, b: tuple[int, int, int], encoding: int, mapping: str | None
    ) -> Brick:
        source = layer.source(mag)
        code = enc.DTYPE_CODES[layer.dtype.name]
        if source.brick_box(b) is None:
            return Brick(None, encoding, code, _etag(None))
        if mapping is None and source.can_use_stored(b):
            stored = await source.stored_bytes(b)
            layout = source.layout
            assert layout is not None
            if stored is not None:
                stored_code = enc.CODES[layout.encoding]
                if stored_code == encoding:
                    payload = stored
                else:
                    payload = await asyncio.to_thread(enc.convert, stored, stored_code, encoding)
                return Brick(payload, encoding, code, _etag(payload))
            array = np.full((BRICK, BRICK, BRICK), source.fill or 0, dtype=source.dtype)
        else:
            read = await source.read(b)
            assert read is not None
            array = read
        table = await layer.mapping(mapping) if mapping is not None else None
        payload = await asyncio.to_thread(_encode, array, encoding, table)
        return Brick(payload, encoding, code, _etag(payload))

    # -- segments -------------------------------------------------------------

    async def segment_at(
        self, layer: Layer, mag: Mag, position: tuple[int, int, int], mapping: str | None
    ) -> int:
        """The segment id at a mag-1 voxel position (read at ``mag``)."""
        source = layer.source(mag)
        voxel = tuple(position[i] // mag[i] for i in range(3))
        b = (voxel[0] // BRICK, voxel[1] // BRICK, voxel[2] // BRICK)
        array = await source.read(b)
        if array is None:
            raise BadRequest(f"position {list(position)} is outside layer {layer.name!r}")
        value = int(array[voxel[0] % BRICK, voxel[1] % BRICK, voxel[2] % BRICK])
        if mapping is not None:
            table = await layer.mapping(mapping)
            if 0 <= value < len(table):
                value = int(table[value])
        return value

    async def segment_extent(
        self, layer: Layer, mag: Mag, segment: int, mapping: str | None
    ) -> dict[str, Any]:
        """Voxel count (at ``mag``) and bounding box (mag-1 voxels) of a segment."""
        source = layer.source(mag)
        lo, hi = source.valid_lo, source.valid_hi
        voxels = math.prod(hi[i] - lo[i] for i in range(3))
        if voxels > MAX_SCAN_VOXELS:
            raise BadRequest(
                f"mag {mag} of layer {layer.name!r} has {voxels} voxels; "
                f"scan at a coarser mag (at most {MAX_SCAN_VOXELS})"
            )
        table = await layer.mapping(mapping) if mapping is not None else None
        count = 0
        box_lo = [math.inf] * 3
        box_hi = [-math.inf] * 3
        slab = max(BRICK, (1 << 24) // max((hi[0] - lo[0]) * (hi[1] - lo[1]), 1))
        for z0 in range(lo[2], hi[2], slab):
            z1 = min(z0 + slab, hi[2])
            data = await _read_region(source, lo, (hi[0], hi[1], z1), z0)
            n, found_lo, found_hi = await asyncio.to_thread(_extent, data, segment, table)
            if n:
                count += n
                for i in range(3):
                    offset = lo[i] if i < 2 else z0
                    box_lo[i] = min(box_lo[i], found_lo[i] + offset)
                    box_hi[i] = max(box_hi[i], found_hi[i] + offset)
        if not count:
            raise NotFound(f"segment {segment} does not occur in layer {layer.name!r} at mag {mag}")
        top_left = [int(box_lo[i]) * mag[i] for i in range(3)]
        size = [(int(box_hi[i]) + 1) * mag[i] - top_left[i] for i in range(3)]
        return {
            "segment": segment,
            "mag": str(mag),
            "voxelCount": count,
            "boundingBox": {"topLeft": top_left, "size": size},
        }


async def _read_region(
    source: MagSource, lo: tuple[int, int, int], hi: tuple[int, int, int], z0: int
) -> np.ndarray:
    sel: list[Any] = [0] * len(source.axes)
    starts = (lo[0], lo[1], z0)
    for i, axis_index in enumerate(source.spatial_index):
        start = max(starts[i] - source.spec.origin[i], 0)
        stop = min(hi[i] - source.spec.origin[i], source.shape[axis_index])
        sel[axis_index] = slice(start, max(start, stop))
    data = np.asarray(await source.array.getitem(tuple(sel)))
    remaining = [a for a in source.axes if a in ("x", "y", "z")]
    return np.transpose(data, [remaining.index(a) for a in ("x", "y", "z")])


def _extent(
    data: np.ndarray, segment: int, table: np.ndarray | None
) -> tuple[int, list[int], list[int]]:
    if table is not None:
        data = _apply(data, table)
    mask = data == segment
    n = int(np.count_nonzero(mask))
    if not n:
        return 0, [], []
    lo, hi = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        lo.append(int(hit[0]))
        hi.append(int(hit[-1]))
    return n, lo, hi


def _apply(data: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Map supervoxel ids through ``table``; ids beyond it stay as they are."""
    inside = data < len(table)
    mapped = table[np.where(inside, data, 0)]
    return np.where(inside, mapped, data).astype(data.dtype, copy=False)


def _finish_stored(
    stored: list[bytes | None],
    tags: list[str | None],
    stored_code: int,
    wanted: int,
    dtype_code: int,
    fill_raw: bytes,
) -> list[Brick | Exception]:
    """Bricks from stored bytes. A local file's brick is tagged like a static
    file server tags files (where it is, how long, the file's mtime), so its
    ETag costs no hashing of the payload. A brick whose bytes do not convert
    (a damaged chunk) is its own failure, never the batch's: its place holds
    the exception."""
    out: list[Brick | Exception] = []
    for data, tag in zip(stored, tags, strict=True):
        try:
            payload = (
                enc.encode(fill_raw, wanted)
                if data is None
                else enc.convert(data, stored_code, wanted)
            )
        except Exception as exc:  # zstd and friends raise their own types
            out.append(exc)
            continue
        etag = _etag(payload) if tag is None or data is None else _etag(f"{tag}:{wanted}".encode())
        out.append(Brick(payload, wanted, dtype_code, etag))
    return out


def _encode(array: np.ndarray, encoding: int, table: np.ndarray | None) -> bytes:
    if table is not None:
        array = _apply(array, table)
    return enc.encode(enc.to_raw(array), encoding)
