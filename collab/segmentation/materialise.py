"""The voxels of a segmentation document, materialised from its log.

The log is the truth: a version's voxels are a function of the ops in the
document up to it, applied in the order the server sequenced them (by the
version that added each op, then by the op id's counter). The materialiser
follows the log: for each version past the document's materialised version
it applies the ops that version added to the bricks they reach (read from
what earlier versions wrote, else from the layer's fallback — the dataset's
segmentation layer — else zeros) and writes the bricks it changed, with the
materialised version, in one transaction (collab/store/materialised.py).
It resumes where it stopped after a crash: writing a version again writes
the same bytes.

Why not in the commit of the log entry itself: painting (CPU) and fallback
reads (zarr) would sit in every commit of every document, and a fault in
materialisation would take acknowledged writes down with it. The log entry
is durable first; its voxels follow, and a reader at version V waits until
V is materialised.

Coarser mags of the layer (its ``mags``) follow each op: their bricks over
the op's reach are computed again from the next finer mag by the most
frequent label of each cell. Not yet: finer mags than the op's, and ops
deleted by an undo (their bricks computed again from the ops that remain).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycrdt import Doc, Map

from collab.document.log import RoomKey
from collab.errors import CollabError
from collab.segmentation import paint
from collab.store import materialised, oplog
from collab.store.database import Database
from collab.store.materialised import BrickRow
from collab.volume import encoding as enc
from collab.volume.mags import Mag, parse_mag

log = logging.getLogger("collab.segmentation")

BRICK = 32
DOC = "segmentation"
#: Documents kept between catch-ups (annotations being painted at once).
DOCS_KEPT = 64
_COUNTER = re.compile(r"-(\d+)$")

#: Reads a fallback brick: (the annotation, the layer's fallback name, mag,
#: brick) → its voxels (32³, x-y-z), or None where the fallback has nothing.
FallbackReader = Callable[[int, str, str, tuple[int, int, int]], Awaitable[np.ndarray | None]]


def op_order(key: str) -> tuple[int, str]:
    """Ops added in one version are applied by their id's counter."""
    match = _COUNTER.search(key)
    return (int(match[1]) if match else 0, key)


def added_ops(doc: Doc, update: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The ops ``update`` adds to ``doc`` (fresh keys of ``ops``), in order;
    ``doc`` is the document before the update (not changed)."""
    scratch: Doc = Doc()
    fresh = scratch.get("ops", type=Map)
    scratch.apply_update(update)
    existing = doc.get("ops", type=Map)
    out = [
        (key, value)
        for key, value in fresh.items()
        if key not in existing and isinstance(value, dict)
    ]
    out.sort(key=lambda item: op_order(item[0]))
    return out


@dataclass
class LayerInfo:
    dtype: np.dtype[Any]
    fallback: str | None
    #: The layer's mags, finest first (its entry's ``mags``); ops drawn at one
    #: are followed by every coarser one.
    mags: list[Mag]


def layer_info(doc: Doc, layer: str) -> LayerInfo | None:
    entry = doc.get("layers", type=Map).get(layer)
    if not isinstance(entry, Map):
        return None
    dtype = entry.get("dtype")
    fallback = entry.get("fallback")
    mags: list[Mag] = []
    names = entry.get("mags")
    for name in names if isinstance(names, list) else []:
        try:
            mags.append(parse_mag(str(name)))
        except CollabError:
            continue  # a name that is no mag: not kept
    mags.sort(key=lambda m: m.volume)
    return LayerInfo(
        np.dtype(dtype if dtype in ("uint8", "uint16", "uint32", "uint64") else "uint32"),
        fallback if isinstance(fallback, str) else None,
        mags[:16],
    )


class Materialiser:
    """Writes the voxels of annotations' segmentation documents, one
    annotation at a time each (a lock per annotation)."""

    def __init__(self, pool: Database, fallback: FallbackReader | None = None) -> None:
        self._pool = pool
        self._fallback = fallback
        self._locks: dict[int, asyncio.Lock] = {}
        #: Per annotation: the document at its materialised version, so a
        #: catch-up applies only the new updates (oldest out past DOCS_KEPT).
        self._docs: dict[int, tuple[int, Doc]] = {}
        #: Per annotation: the version materialised last, and a condition
        #: notified whenever one moves (:meth:`wait_until`).
        self._reached: dict[int, int] = {}
        self._progress = asyncio.Condition()
        self._due: set[int] = set()
        self._wake = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Materialiser:
        """Follow the logs in a task of its own (:meth:`nudge` says which)."""
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._task = self._tg.create_task(self._follow(), name="materialiser")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._tg is not None
        if self._task is not None:
            self._task.cancel()  # what it had not written, the next start resumes
        await self._tg.__aexit__(None, None, None)

    def nudge(self, annotation_id: int) -> None:
        """A version of the annotation's segmentation is durable: materialise it soon."""
        self._due.add(annotation_id)
        self._wake.set()

    async def _follow(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            due, self._due = self._due, set()
            for annotation_id in sorted(due):
                try:
                    await self.catch_up(annotation_id)
                except Exception:
                    # The log keeps it; the next nudge (or a reader) tries again.
                    log.exception("materialising failed", extra={"annotation": annotation_id})

    async def catch_up(self, annotation_id: int) -> int:
        """Materialise every stored version not yet materialised; return the
        materialised version."""
        lock = self._locks.setdefault(annotation_id, asyncio.Lock())
        async with lock:
            reached = await self._catch_up(RoomKey(annotation_id, DOC))
        async with self._progress:
            self._reached[annotation_id] = reached
            self._progress.notify_all()
        return reached

    async def wait_until(self, annotation_id: int, version: int) -> None:
        """Until the annotation's segmentation is materialised up to ``version``
        (by the follower or a reader); callers bound it with a timeout."""
        async with self._progress:
            await self._progress.wait_for(lambda: self._reached.get(annotation_id, 0) >= version)

    async def _catch_up(self, key: RoomKey) -> int:
        async with self._pool.acquire() as conn:
            done = await materialised.materialised_version(conn, key)
            head = await oplog.head(conn, key)
            if done >= head:
                return done
            cached = self._docs.pop(key.annotation_id, None)
            state = None if cached and cached[0] == done else await oplog.load(conn, key, done)
        if state is None and cached is not None:
            doc = cached[1]  # the document at ``done``, kept from the last catch-up
        else:
            assert state is not None
            doc = Doc()
            for root in ("layers", "ops"):
                doc.get(root, type=Map)
            if state.snapshot:
                doc.apply_update(state.snapshot)
            for update in state.updates:
                doc.apply_update(update)
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            updates = [
                (info.version, data)
                async for info, data in oplog.iter_updates(conn, key, done + 1, head)
            ]
        last_written = done
        for version, data in updates:
            ops = added_ops(doc, data)
            doc.apply_update(data)
            if not ops:
                continue
            rows = await self._apply_ops(key, doc, ops)
            async with self._pool.acquire() as conn:
                await materialised.write_version(conn, key, version, rows)
            last_written = version
        if updates and updates[-1][0] > last_written:
            async with self._pool.acquire() as conn:
                await materialised.write_version(conn, key, updates[-1][0], [])
        now = updates[-1][0] if updates else done
        self._docs[key.annotation_id] = (now, doc)
        while len(self._docs) > DOCS_KEPT:
            self._docs.pop(next(iter(self._docs)))
        return now

    async def _apply_ops(
        self, key: RoomKey, doc: Doc, ops: list[tuple[str, dict[str, Any]]]
    ) -> list[BrickRow]:
        """Apply one version's ops; the bricks they changed, as rows."""
        changed: dict[tuple[str, str, tuple[int, int, int]], np.ndarray] = {}
        for _key, op in ops:
            layer = op.get("layer")
            if not isinstance(layer, str):
                continue
            info = layer_info(doc, layer)
            if info is None:
                continue  # checked when it arrived; its layer went since
            mag = parse_mag(str(op.get("mag", "1")))
            f = (mag.x, mag.y, mag.z)
            low, high = paint.reach(op, f)
            if any(high[a] <= low[a] for a in range(3)):
                continue
            b0 = tuple(low[a] // BRICK for a in range(3))
            b1 = tuple((high[a] - 1) // BRICK for a in range(3))
            bricks = [
                (x, y, z)
                for x in range(b0[0], b1[0] + 1)
                for y in range(b0[1], b1[1] + 1)
                for z in range(b0[2], b1[2] + 1)
            ]
            mag_name = str(mag)
            current = await self._current(key, layer, mag_name, info, bricks, changed)
            shape = tuple((b1[a] - b0[a] + 1) * BRICK for a in range(3))
            origin = (b0[0] * BRICK, b0[1] * BRICK, b0[2] * BRICK)
            block = await asyncio.to_thread(
                _paint, op, current, bricks, b0, shape, origin, f, info.dtype
            )
            for b in bricks:
                s = tuple(
                    slice((b[a] - b0[a]) * BRICK, (b[a] - b0[a] + 1) * BRICK) for a in range(3)
                )
                piece = block[s]
                if not np.array_equal(piece, current[b]):
                    changed[(layer, mag_name, b)] = piece.copy()
            await self._follow_coarser(key, layer, info, mag, (low, high), changed)
        rows = await asyncio.to_thread(
            lambda: [
                BrickRow(layer, mag, b, enc.compress(enc.to_raw(voxels)))
                for (layer, mag, b), voxels in changed.items()
            ]
        )
        return rows

    async def _follow_coarser(
        self,
        key: RoomKey,
        layer: str,
        info: LayerInfo,
        mag: Mag,
        box: tuple[tuple[int, int, int], tuple[int, int, int]],
        changed: dict[tuple[str, str, tuple[int, int, int]], np.ndarray],
    ) -> None:
        """Each coarser mag of the layer after ``mag``, over the box the op
        reached: its bricks computed again from the next finer mag's (the
        most frequent label of each cell)."""
        finer = mag
        low, high = box
        for coarser in info.mags:
            if coarser.volume <= finer.volume:
                continue
            ratio = (coarser.x // finer.x, coarser.y // finer.y, coarser.z // finer.z)
            if any(r < 1 for r in ratio) or any(c % f for c, f in zip(coarser, finer, strict=True)):
                continue  # not a coarsening of the finer mag: left as it is
            # The box at the coarser mag, and its bricks.
            low = (low[0] // ratio[0], low[1] // ratio[1], low[2] // ratio[2])
            high = tuple(-(-high[a] // ratio[a]) for a in range(3))  # type: ignore[assignment]
            c0 = tuple(low[a] // BRICK for a in range(3))
            c1 = tuple((high[a] - 1) // BRICK for a in range(3))
            for cb in [
                (x, y, z)
                for x in range(c0[0], c1[0] + 1)
                for y in range(c0[1], c1[1] + 1)
                for z in range(c0[2], c1[2] + 1)
            ]:
                # The finer bricks under this coarser brick.
                fine = [
                    (cb[0] * ratio[0] + i, cb[1] * ratio[1] + j, cb[2] * ratio[2] + k)
                    for i in range(ratio[0])
                    for j in range(ratio[1])
                    for k in range(ratio[2])
                ]
                under = await self._current(key, layer, str(finer), info, fine, changed)
                before = await self._current(key, layer, str(coarser), info, [cb], changed)
                block = np.zeros(
                    (ratio[0] * BRICK, ratio[1] * BRICK, ratio[2] * BRICK), dtype=info.dtype
                )
                for b in fine:
                    o = [(b[a] - cb[a] * ratio[a]) * BRICK for a in range(3)]
                    block[o[0] : o[0] + BRICK, o[1] : o[1] + BRICK, o[2] : o[2] + BRICK] = under[b]
                down = await asyncio.to_thread(paint.downsample_labels, block, ratio)
                if not np.array_equal(down, before[cb]):
                    changed[(layer, str(coarser), cb)] = down
            finer = coarser

    async def read_brick(
        self,
        annotation_id: int,
        layer: str,
        info: LayerInfo,
        mag: str,
        brick: tuple[int, int, int],
        version: int | None,
    ) -> np.ndarray:
        """A brick of the annotation's volume layer as of ``version`` (None:
        the newest materialised): what the ops wrote, else the fallback's,
        else zeros."""
        key = RoomKey(annotation_id, DOC)
        async with self._pool.acquire() as conn:
            stored = await materialised.bricks_at(conn, key, layer, mag, [brick], version)
        data = stored.get(brick)
        if data is not None:
            raw = await asyncio.to_thread(enc.decompress, data)
            return enc.from_raw(raw, info.dtype)
        return await self._unwritten(annotation_id, info, mag, brick)

    async def _unwritten(
        self, annotation_id: int, info: LayerInfo, mag: str, brick: tuple[int, int, int]
    ) -> np.ndarray:
        """A brick the annotation never wrote: its fallback's voxels, else zeros."""
        voxels = None
        if info.fallback is not None and self._fallback is not None:
            voxels = await self._fallback(annotation_id, info.fallback, mag, brick)
        if voxels is not None:
            return voxels.astype(info.dtype)
        return np.zeros((BRICK, BRICK, BRICK), dtype=info.dtype)

    async def _current(
        self,
        key: RoomKey,
        layer: str,
        mag: str,
        info: LayerInfo,
        bricks: list[tuple[int, int, int]],
        changed: dict[tuple[str, str, tuple[int, int, int]], np.ndarray],
    ) -> dict[tuple[int, int, int], np.ndarray]:
        """The bricks as they are now: changed in this version, else written
        before, else the fallback's, else zeros."""
        out: dict[tuple[int, int, int], np.ndarray] = {}
        missing = []
        for b in bricks:
            if (layer, mag, b) in changed:
                out[b] = changed[(layer, mag, b)]
            else:
                missing.append(b)
        async with self._pool.acquire() as conn:
            stored = await materialised.bricks_at(conn, key, layer, mag, missing)
        for b in missing:
            data = stored.get(b)
            if data is not None:
                out[b] = enc.from_raw(enc.decompress(data), info.dtype).copy()
                continue
            out[b] = await self._unwritten(key.annotation_id, info, mag, b)
        return out


def _paint(
    op: dict[str, Any],
    current: dict[tuple[int, int, int], np.ndarray],
    bricks: list[tuple[int, int, int]],
    b0: tuple[int, ...],
    shape: tuple[int, ...],
    origin: tuple[int, int, int],
    f: tuple[int, int, int],
    dtype: np.dtype[Any],
) -> np.ndarray:
    block = np.zeros(shape, dtype=dtype)
    for b in bricks:
        s = tuple(slice((b[a] - b0[a]) * BRICK, (b[a] - b0[a] + 1) * BRICK) for a in range(3))
        block[s] = current[b]
    paint.apply(op, block, origin, f)
    return block
