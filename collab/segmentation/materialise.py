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
frequent label of each cell. Not yet: finer mags than the op's.

An undo deletes an op. The bricks it reached are computed again: from the
version before it (the per-version rows keep it) and every op that remains
and reaches them, in order, each replayed whole (``materialised_ops`` keeps
which version added each op and the bricks it may change, so no log is
read). A later fill that read a changed voxel is replayed too, and its
bricks join. Restore and revert delete and add ops like any client, so
they work for voxels through the same path.

Viewers learn of changed bricks through :meth:`Materialiser.watch` (the
brick socket of the annotation's layer pushes them).

Several processes may follow one annotation at once (several instances
over one database: each follows the versions that become durable there, and
a reader on any of them asks for the newest). Each computes a version from
what is stored below it and hands it to ``materialised.write_version``,
which writes a version once: the first to commit wins; a later one finds it
written, drops its work and goes on from the stored state. Which process
wrote a version does not matter (the voxels are a function of the log);
that none writes one again having computed it behind another does: its
undo would read ops rows later versions wrote (an op deleted later counts
as deleted), and its write would mark ops standing again, so the next undo
brings undone strokes back (two materialisers, with an in-process lock
each, stored rows unlike one replay's). The lock here (the annotation's
``KeyedLocks``) only orders this process's own catch-ups.

Each process tells its own watchers and ops listeners of every version it
has not told yet (``_told``), whoever wrote it. One another process wrote
is told from what is stored: the bricks its ops reach (their rows in
``materialised_ops``, at their mag and every coarser one that follows)
looked up at that version — an undo's region is not stored, so for an undo
or an import every row of the version is read — and only when someone
watches here; the newest voxels kept in memory lose those bricks (all of
the annotation's when the rows are not read). A process that starts
following an annotation (its first catch-up of it, or the first after it
was forgotten as idle) tells its listeners so: another process may have
materialised versions before that unseen here.

The price: with k processes following one annotation a version may be
painted up to k times, one of them written. A process that lost drops its
work at the first version it finds written and follows from there, so
the others rarely lose more than the version in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycrdt import Doc, Map

from collab.document.log import RoomKey
from collab.errors import BadRequest, CollabError, Unavailable, Unprocessable
from collab.keyed_locks import KeyedLocks
from collab.segmentation import imports, paint
from collab.segmentation.ops import MAPPING_KINDS, MAX_LAYER_MAGS, MAX_MAG_STEP, check_op
from collab.store import materialised, oplog
from collab.store.database import Database
from collab.store.materialised import BrickRow, OpRow
from collab.volume import encoding as enc
from collab.volume.mags import Mag, parse_mag
from collab.watchers import Watchers

log = logging.getLogger("collab.segmentation")

BRICK = 32
DOC = "segmentation"
#: Documents kept between catch-ups (annotations being painted at once).
DOCS_KEPT = 64
#: Newest voxels kept in memory for painting (bricks of 32³ uint32: 128 KiB).
HEAD_CACHE_BYTES = 256 * 2**20
#: Bricks a segment's statistics may scan (2^24 voxels of 32³ bricks).
MAX_SCAN_BRICKS = 512
#: How long a reader waits for the newest version to be materialised.
READ_WAIT_SECONDS = 30.0
#: Annotations whose progress is kept between catch-ups (idle ones go past it).
ANNOTATIONS_KEPT = 4096
#: Versions read from the log at a time while catching up.
UPDATES_PAGE = 256
#: Bricks read, compared or compressed at a time (an import, a large undo).
BATCH_BRICKS = 256
#: Voxel arrays one version may hold in memory; past it they are kept
#: compressed (zstd: labels shrink 10-100x), so an undo over thousands of
#: bricks or an import costs their compressed size.
CHANGED_ARRAY_BYTES = 64 * 2**20
#: Rounds an undo's region may take to settle (each grows it or moves the
#: base back; bounded by the ops, this only guards against a fault).
MAX_RECOMPUTE_ROUNDS = 10_000
_COUNTER = re.compile(r"-(\d+)$")

#: Reads a fallback brick: (the annotation, the layer's fallback name, mag,
#: brick) → its voxels (32³, x-y-z), or None where the fallback has nothing.
FallbackReader = Callable[[int, str, str, tuple[int, int, int]], Awaitable[np.ndarray | None]]


def op_order(key: str) -> tuple[int, str]:
    """Ops added in one version are applied by their id's counter."""
    match = _COUNTER.search(key)
    return (int(match[1]) if match else 0, key)


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
    for name in names[:MAX_LAYER_MAGS] if isinstance(names, list) else []:
        if not isinstance(name, str):
            continue
        try:
            mags.append(parse_mag(name[:20]))
        except CollabError:
            continue  # a name that is no mag: not kept
    mags.sort(key=lambda m: m.volume)
    return LayerInfo(
        np.dtype(dtype if dtype in ("uint8", "uint16", "uint32", "uint64") else "uint32"),
        fallback if isinstance(fallback, str) else None,
        mags,
    )


class Materialiser:
    """Writes the voxels of annotations' segmentation documents, one
    annotation at a time each in this process (a lock per annotation); other
    processes may write them too (a version is written once, whoever gets
    there first)."""

    def __init__(self, pool: Database, fallback: FallbackReader | None = None) -> None:
        self._pool = pool
        self._fallback = fallback
        #: One catch-up (or held document) per annotation at a time.
        self._locks = KeyedLocks()
        #: Per annotation: the document at its materialised version, so a
        #: catch-up applies only the new updates (oldest out past DOCS_KEPT).
        self._docs: dict[int, tuple[int, Doc]] = {}
        #: Per annotation: the version materialised last, and a condition
        #: notified whenever one moves (:meth:`wait_until`).
        self._reached: dict[int, int] = {}
        #: Per annotation: the version up to which this process has told its
        #: watchers and listeners, whoever wrote the voxels (absent: it does
        #: not follow the annotation; the next catch-up starts it).
        self._told: dict[int, int] = {}
        #: Versions this process ``written``; ``lost``: computed, but found
        #: written by another process first (the work dropped); ``followed``:
        #: told from what another process stored. For tests and logs.
        self.counts: Counter[str] = Counter()
        self._progress = asyncio.Condition()
        self._due: set[int] = set()
        self._wake = asyncio.Event()
        self._watchers: Watchers[Watcher] = Watchers("brick")
        #: The newest voxels of bricks touched lately, per (annotation, layer,
        #: mag, brick), as of ``_head_at[annotation]``: painting one stroke
        #: after another reads them from here, not from PostgreSQL (zstd).
        self._head: OrderedDict[tuple[int, str, str, Brick], np.ndarray] = OrderedDict()
        self._head_bytes = 0
        #: Bricks kept there per annotation.
        self._head_of: Counter[int] = Counter()
        self._head_at: dict[int, int] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None
        self._op_listeners: list[OpsListener] = []

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

    def listen_ops(self, listener: OpsListener) -> None:
        """Call ``listener(annotation, doc, version, added, deleted)`` for each
        version that adds or deletes ops, once its voxels are written (here
        or by another process), in version order, under the annotation's
        lock (the editable mapping of proofreading follows the log this way:
        collab/proofreading/service.py). And once with ``doc`` None and no
        ops when this process starts following the annotation at
        ``version`` (its first catch-up here, or the first after it was
        forgotten as idle): versions up to there may have been materialised
        by another process unseen, so what the listener keeps of the
        annotation may be stale. A listener that fails is logged; the voxels
        go on."""
        self._op_listeners.append(listener)

    @contextlib.asynccontextmanager
    async def document(self, annotation_id: int) -> AsyncIterator[tuple[int, Doc]]:
        """The annotation's segmentation document at its newest materialised
        version, held still (its lock) while the caller reads it: nothing
        is materialised, and no listener called, meanwhile."""
        async with self._locks.hold(annotation_id):
            key = RoomKey(annotation_id, DOC)
            reached = await self._catch_up(key)
            cached = self._docs.get(annotation_id)
            if cached is None or cached[0] != reached:
                async with self._pool.acquire() as conn:
                    state = await oplog.load(conn, key, reached)
                doc = await asyncio.to_thread(_build, state.snapshot, state.updates)
                self._docs[annotation_id] = cached = (reached, doc)
                while len(self._docs) > DOCS_KEPT:
                    self._docs.pop(next(iter(self._docs)))
            yield cached

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
        async with self._locks.hold(annotation_id):
            reached = await self._catch_up(RoomKey(annotation_id, DOC))
        async with self._progress:
            self._reached[annotation_id] = reached
            self._progress.notify_all()
        if len(self._told) > ANNOTATIONS_KEPT:  # bounded: idle annotations go
            # (not one a viewer watches: it would miss what other processes wrote)
            for idle in [
                a for a in self._told if not self._locks.busy(a) and not self._watchers.any(a)
            ]:
                self._reached.pop(idle, None)
                self._told.pop(idle, None)
                self._head_at.pop(idle, None)
        return reached

    async def newest(self, annotation_id: int, patience: float = READ_WAIT_SECONDS) -> int:
        """The newest version, materialised (what a reader of the newest
        waits for): 503 when the backlog takes longer than ``patience`` seconds."""
        try:
            return await asyncio.wait_for(self.catch_up(annotation_id), patience)
        except TimeoutError:
            self.nudge(annotation_id)  # the follower goes on with it
            raise Unavailable(
                "the volume is still being written (a long backlog); try again shortly"
            ) from None

    async def wait_until(self, annotation_id: int, version: int) -> None:
        """Until the annotation's segmentation is materialised up to ``version``
        (by the follower or a reader); callers bound it with a timeout."""
        async with self._progress:
            await self._progress.wait_for(lambda: self._reached.get(annotation_id, 0) >= version)

    async def _catch_up(self, key: RoomKey) -> int:
        """Under the annotation's lock: materialise the versions not yet
        materialised, and tell watchers and listeners of every version this
        process has not told yet — those another process materialised (one
        that got there first: :func:`materialised.write_version` writes a
        version once) from what it stored."""
        ann = key.annotation_id
        async with self._pool.acquire() as conn:
            done = await materialised.materialised_version(conn, key)
            head = await oplog.head(conn, key)
        told = self._told.get(ann)
        if told is None:
            # Nothing before ``done`` is told here: viewers that come read it.
            told = self._told[ann] = done
            await self._listen(ann, None, done, [], [])
        start = min(told, done)  # past ``done``: the stored voxels were reset
        if self._head_at.get(ann) != start:
            self._drop_head(ann)  # another writer moved it (or none yet)
            self._head_at[ann] = start
        if start >= head:
            self._told[ann] = start
            return start
        cached = self._docs.pop(ann, None)
        if cached is not None and cached[0] == start:
            doc = cached[1]  # the document at ``start``, kept from the last catch-up
        else:
            async with self._pool.acquire() as conn:
                state = await oplog.load(conn, key, start)
            doc = await asyncio.to_thread(_build, state.snapshot, state.updates)
        # What each update does to ``ops``: keys added, deleted (an undo), or
        # rewritten (taken as deleted and added again).
        events: list[dict[str, Any]] = []
        ops_map = doc.get("ops", type=Map)
        subscription = ops_map.observe(lambda event: events.append(dict(event.keys)))
        now = start
        # The newest version known materialised, here or by another process:
        # up to it, versions are told from what is stored, past it computed.
        known = done
        try:
            # A page of versions at a time: a long backlog is never all in memory.
            while now < head:
                upto = min(head, now + UPDATES_PAGE)
                async with self._pool.acquire() as conn, conn.transaction(readonly=True):
                    if now > start:  # another process may have gone on meanwhile
                        known = max(known, await materialised.materialised_version(conn, key))
                    updates = [
                        (info.version, data)
                        async for info, data in oplog.iter_updates(conn, key, now + 1, upto)
                    ]
                if not updates:
                    break
                for version, data in updates:
                    events.clear()
                    await asyncio.to_thread(doc.apply_update, data)
                    now = version
                    added, deleted = _ops_changed(events)
                    if not added and not deleted:
                        continue
                    told_early = False
                    if version > known:
                        written, told_early = await self._materialise(
                            key, doc, version, added, deleted
                        )
                        if not written:  # another process wrote it first
                            async with self._pool.acquire() as conn:
                                known = await materialised.materialised_version(conn, key)
                    if version <= known:
                        await self._tell_stored(key, doc, version, added, deleted, told_early)
                    else:
                        known = version
                    self._told[ann] = version
        finally:
            ops_map.unobserve(subscription)
        if now > known:
            # The versions after the last that changed ops change no voxel.
            async with self._pool.acquire() as conn:
                await materialised.write_version(conn, key, now, [])
        self._head_at[ann] = now  # no voxel changed since the last version told
        self._told[ann] = now
        self._docs[ann] = (now, doc)
        while len(self._docs) > DOCS_KEPT:
            self._docs.pop(next(iter(self._docs)))
        return now

    async def _materialise(
        self,
        key: RoomKey,
        doc: Doc,
        version: int,
        added: list[tuple[str, dict[str, Any]]],
        deleted: list[str],
    ) -> tuple[bool, bool]:
        """Compute ``version`` from what is stored below it, write it, and
        tell watchers and listeners: whether it was written (False: another
        process had written it, so nothing here was) and whether listeners
        were told already (a version that changed no voxel is told before
        its row is written)."""
        ann = key.annotation_id
        changed: Changed = {}
        try:
            rows, applied, gone = await self._apply_version(
                key, doc, version, added, deleted, changed
            )
        except Exception as exc:
            # What it read may have moved under it: another process wrote
            # this version (and more) meanwhile. Then theirs stands.
            async with self._pool.acquire() as conn:
                if await materialised.materialised_version(conn, key) < version:
                    raise
            log.info(
                "materialised elsewhere meanwhile",
                extra={"annotation": ann, "version": version, "why": str(exc)[:200]},
            )
            self.counts["lost"] += 1
            self._drop_head(ann)
            return False, False
        # A version that changed no voxel (a merge, a split) is told to
        # listeners before its row is written: nothing of it waits on that
        # write (told twice after a crash between the two: listeners take a
        # version again alike).
        early = not rows
        if early:
            await self._listen(ann, doc, version, added, deleted)
        try:
            async with self._pool.acquire() as conn:
                written = await materialised.write_version(conn, key, version, rows, applied, gone)
        except BaseException:
            self._drop_head(ann)
            raise
        if not written:
            self.counts["lost"] += 1
            return False, early
        self.counts["written"] += 1
        self._keep_head(ann, version, changed)
        self._announce(ann, version, rows)
        if not early:
            await self._listen(ann, doc, version, added, deleted)
        return True, early

    async def _tell_stored(
        self,
        key: RoomKey,
        doc: Doc,
        version: int,
        added: list[tuple[str, dict[str, Any]]],
        deleted: list[str],
        listened: bool,
    ) -> None:
        """Another process materialised ``version``: tell watchers the bricks
        it wrote (read back, when anyone watches) and listeners its ops."""
        ann = key.annotation_id
        self.counts["followed"] += 1
        if self._watchers.any(ann):
            async with self._pool.acquire() as conn:
                # A version that only added ops wrote within their reach
                # (``materialised_ops``: their mag and each coarser one that
                # follows): those bricks are looked up. An undo's region is
                # not stored, and an import's upload may carry other mags:
                # every row of the version is read.
                places: Region | None = None
                if not deleted and all(op.get("kind") != imports.KIND for _, op in added):
                    places = {}
                    for op_row in await materialised.ops_added_at(conn, key, version):
                        info = layer_info(doc, op_row.layer)
                        if info is not None:
                            _join(places, op_row, info)
                rows = await materialised.version_rows(conn, key, version, places)
            for row in rows:  # the newest voxels kept here: these changed
                self._uncache((ann, row.layer, row.mag, row.brick))
            self._head_at[ann] = version
            self._announce(ann, version, rows)
        else:
            self._drop_head(ann)
            self._head_at[ann] = version
        if not listened:
            await self._listen(ann, doc, version, added, deleted)

    async def _apply_version(
        self,
        key: RoomKey,
        doc: Doc,
        version: int,
        added: list[tuple[str, dict[str, Any]]],
        deleted: list[str],
        changed: Changed,
    ) -> tuple[list[BrickRow], list[OpRow], list[str]]:
        """One version's effect on the voxels: the bricks it changed (as
        rows; ``changed`` holds their voxels), the ops it applied and the
        applied ops it deleted."""
        gone: list[str] = []
        if deleted:
            async with self._pool.acquire() as conn:
                undone = await materialised.standing_ops(conn, key, deleted)
            if undone:
                await self._recompute(key, doc, version, undone, changed)
                gone = [row.op for row in undone]
        applied: list[OpRow] = []
        for op_key, op in added:
            row = await self._apply_op(key, doc, op_key, op, version, changed, version - 1)
            if row is not None:
                applied.append(row)
            await _spill(changed)
        return await self._differing(key, doc, version, changed), applied, gone

    async def _differing(
        self, key: RoomKey, doc: Doc, version: int, changed: Changed
    ) -> list[BrickRow]:
        """The rows to write: each changed brick that differs from the version
        before, compressed (in batches: memory stays bounded)."""
        by_place: dict[tuple[str, str], list[Brick]] = {}
        for layer, mag, b in changed:
            by_place.setdefault((layer, mag), []).append(b)
        rows: list[BrickRow] = []
        for (layer, mag), bricks in by_place.items():
            info = layer_info(doc, layer)
            if info is None:
                continue
            for start in range(0, len(bricks), BATCH_BRICKS):
                batch = bricks[start : start + BATCH_BRICKS]
                # Not kept in the newest bricks' cache: an import's thousands
                # would fill it for nothing (the new voxels replace them).
                before = await self._read(key, layer, mag, info, batch, version - 1, keep=False)
                rows.extend(
                    await asyncio.to_thread(
                        _rows_if_changed, layer, mag, batch, changed, before, info.dtype
                    )
                )
        return rows

    async def _apply_op(
        self,
        key: RoomKey,
        doc: Doc,
        op_key: str,
        op: dict[str, Any],
        version: int,
        changed: Changed,
        read_at: int,
    ) -> OpRow | None:
        """Apply one op over ``changed`` (bricks not in it read as of
        ``read_at``), its coarser mags following; its row (the bricks it
        reaches), or None when it reaches nothing or is no op (an op is
        checked when it arrives; one that slipped by — a rewrite of an
        existing op is not seen by the check — is skipped here)."""
        layer = op.get("layer")
        if not isinstance(layer, str):
            return None
        info = layer_info(doc, layer)
        if info is None:
            return None  # checked when it arrived; its layer went since
        seq = op_order(op_key)[0]
        if op.get("kind") in MAPPING_KINDS:
            return None  # no voxels: the editable mapping's (collab/proofreading/)
        if op.get("kind") == imports.KIND:  # voxels uploaded with a WEBKNOSSOS zip
            reach = await imports.apply(
                self._pool, key, layer, info, op_key, op, changed, self._current
            )
            if reach is None:
                return None
            finest, placed = reach
            b0, b1 = _box_around(placed)
            return OpRow(op_key, version, seq, layer, finest, b0, b1, tuple(placed))
        try:
            check_op(op_key, op, _layer_lookup(doc), op.get("author"))
        except Unprocessable as exc:
            log.warning(
                "op skipped", extra={"annotation": key.annotation_id, "op": op_key, "why": str(exc)}
            )
            return None
        mag = parse_mag(str(op.get("mag", "1")))
        f = (mag.x, mag.y, mag.z)
        low, high = paint.reach(op, f)
        if any(high[a] <= low[a] for a in range(3)):
            return None
        b0 = (low[0] // BRICK, low[1] // BRICK, low[2] // BRICK)
        b1 = ((high[0] - 1) // BRICK, (high[1] - 1) // BRICK, (high[2] - 1) // BRICK)
        mag_name = str(mag)
        exact: list[Brick] | None = None
        if op["kind"] == "brush":
            # A brush is local: each brick it comes near is painted alone, so
            # a long diagonal stroke costs its bricks, not its bounding box's.
            exact = paint.brush_bricks(op, f, b0, b1, BRICK)
            if not exact:
                return None
            current = await self._current(key, layer, mag_name, info, exact, changed, read_at)
            painted = await asyncio.to_thread(_paint_each, op, current, f)
            for b, piece in painted.items():
                changed[(layer, mag_name, b)] = piece
        else:
            bricks = _bricks_in(b0, b1)
            current = await self._current(key, layer, mag_name, info, bricks, changed, read_at)
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
        only = None if exact is None else set(exact)
        await self._follow_coarser(key, layer, info, mag, (low, high), changed, read_at, only)
        return OpRow(
            op_key, version, seq, layer, mag_name, b0, b1, None if exact is None else tuple(exact)
        )

    async def _recompute(
        self, key: RoomKey, doc: Doc, version: int, undone: list[OpRow], changed: Changed
    ) -> None:
        """Ops were deleted (an undo): the bricks they reached (the *region*,
        at every mag) computed again, from a *base* version, by the ops that
        stand and reach the region, replayed in their order, each whole, its
        coarser mags following.

        The base is the version before the first undone op, or earlier: it
        must hold no op deleted since (an earlier undo of an op that still
        stood then), so it goes back before every such op that reaches the
        region. Each replayed op's bricks join the region (it may read or
        write beyond it: a fill, a coarser mag), and so on to a fixed point.
        Bricks outside the region are as the newest version has them: no op
        that changed them since the base is replayed."""
        infos: dict[str, LayerInfo | None] = {}

        def info_of(layer: str) -> LayerInfo | None:
            if layer not in infos:
                infos[layer] = layer_info(doc, layer)
            return infos[layer]

        region: Region = {}
        gone = {(row.op, row.version) for row in undone}
        for row in undone:
            info = info_of(row.layer)
            if info is not None:
                _join(region, row, info)
        base = min(row.version for row in undone) - 1
        rows: list[OpRow] = []
        for _ in range(MAX_RECOMPUTE_ROUNDS):
            async with self._pool.acquire() as conn:
                rows = await materialised.ops_after(conn, key, base)
            for layer in {row.layer for row in rows}:
                info_of(layer)  # read here: the document is the loop's
            # Pure set work over every later op: in a thread, not on the loop.
            moved_to = await asyncio.to_thread(_settle, rows, region, gone, base, infos)
            if moved_to == base:
                break
            base = moved_to  # earlier: the ops from there on are read again
        else:  # pragma: no cover - bounded by the rows; never seen
            raise Unavailable("an undo's region did not settle; try again")
        replay = await asyncio.to_thread(_replayed, rows, region, gone, base, infos)
        # Every brick of the region starts as it was at the base.
        for (layer, mag), place in region.items():
            info = info_of(layer)
            if info is None:
                continue
            ordered = sorted(place)
            for start in range(0, len(ordered), BATCH_BRICKS):
                batch = ordered[start : start + BATCH_BRICKS]
                for b, voxels in (await self._read(key, layer, mag, info, batch, base)).items():
                    changed[(layer, mag, b)] = voxels
                await _spill(changed)
        ops_map = doc.get("ops", type=Map)
        for row in replay:
            op = ops_map.get(row.op)
            if isinstance(op, dict):
                await self._apply_op(key, doc, row.op, op, row.version, changed, version - 1)
                await _spill(changed)

    async def _follow_coarser(
        self,
        key: RoomKey,
        layer: str,
        info: LayerInfo,
        mag: Mag,
        box: tuple[tuple[int, int, int], tuple[int, int, int]],
        changed: Changed,
        read_at: int,
        only: set[Brick] | None = None,
    ) -> None:
        """Each coarser mag of the layer after ``mag``, over the box the op
        reached: its bricks computed again from the next finer mag's (the
        most frequent label of each cell). ``only``: the bricks of ``mag``
        the op reached (a brush), where the box is far larger — coarser
        bricks over none of them stay as they are."""
        low, high = box
        for coarser, ratio in coarsenings(info, mag):
            finer = Mag(*(c // r for c, r in zip(coarser, ratio, strict=True)))
            # The box at the coarser mag, and its bricks.
            low = (low[0] // ratio[0], low[1] // ratio[1], low[2] // ratio[2])
            high = tuple(-(-high[a] // ratio[a]) for a in range(3))  # type: ignore[assignment]
            if only is not None:
                only = {(b[0] // ratio[0], b[1] // ratio[1], b[2] // ratio[2]) for b in only}
            c0 = tuple(low[a] // BRICK for a in range(3))
            c1 = tuple((high[a] - 1) // BRICK for a in range(3))
            for cb in _bricks_in(c0, c1):  # type: ignore[arg-type]
                if only is not None and cb not in only:
                    continue
                # Only the cells of this brick inside the box are computed
                # again, from the finer voxels under them; the rest stays.
                lo = tuple(max(low[a], cb[a] * BRICK) for a in range(3))
                hi = tuple(min(high[a], (cb[a] + 1) * BRICK) for a in range(3))
                f_lo = tuple(lo[a] * ratio[a] for a in range(3))
                f_hi = tuple(hi[a] * ratio[a] for a in range(3))
                fine = _bricks_in(
                    (f_lo[0] // BRICK, f_lo[1] // BRICK, f_lo[2] // BRICK),
                    ((f_hi[0] - 1) // BRICK, (f_hi[1] - 1) // BRICK, (f_hi[2] - 1) // BRICK),
                )
                under = await self._current(key, layer, str(finer), info, fine, changed, read_at)
                before = await self._current(key, layer, str(coarser), info, [cb], changed, read_at)
                after = await asyncio.to_thread(
                    _downsampled_into, before[cb], cb, under, lo, hi, f_lo, f_hi, ratio
                )
                if after is not None:
                    changed[(layer, str(coarser), cb)] = after

    async def read_brick(
        self,
        annotation_id: int,
        layer: str,
        info: LayerInfo,
        mag: str,
        brick: Brick,
        version: int | None,
    ) -> np.ndarray:
        """A brick of the annotation's volume layer as of ``version`` (None:
        the newest materialised): what the ops wrote, else the fallback's,
        else zeros."""
        key = RoomKey(annotation_id, DOC)
        return (await self._read(key, layer, mag, info, [brick], version))[brick]

    async def read_encoded(
        self,
        annotation_id: int,
        layer: str,
        info: LayerInfo,
        mag: str,
        bricks: list[Brick],
        version: int | None,
        encoding: int,
    ) -> dict[Brick, bytes]:
        """Bricks as of ``version`` (None: the newest written), each encoded
        for the wire: stored bricks are zstd already and go as they are."""
        key = RoomKey(annotation_id, DOC)
        async with self._pool.acquire() as conn:
            stored = await materialised.bricks_at(conn, key, layer, mag, bricks, version)
        out: dict[Brick, bytes] = {}
        unwritten: list[Brick] = []
        for b in bricks:
            data = stored.get(b)
            if data is None:
                unwritten.append(b)
            elif encoding == enc.ZSTD:
                out[b] = data
            else:
                out[b] = await asyncio.to_thread(enc.decompress, data)
        async with asyncio.TaskGroup() as tg:
            reads = {
                b: tg.create_task(self._unwritten(annotation_id, info, mag, b)) for b in unwritten
            }
        encode = enc.compress if encoding == enc.ZSTD else (lambda raw: raw)
        if reads:
            encoded = await asyncio.to_thread(
                lambda: {b: encode(enc.to_raw(task.result())) for b, task in reads.items()}
            )
            out.update(encoded)
        return out

    async def segment_stats(
        self,
        annotation_id: int,
        layer: str,
        info: LayerInfo,
        mag: Mag,
        segment: int,
        version: int | None,
        fallback_bricks: list[Brick],
    ) -> tuple[int, list[int], list[int]]:
        """Voxel count (at ``mag``) and box (mag-1 voxels, low and high
        inclusive) of ``segment`` in the annotation's layer: the bricks it
        wrote, and ``fallback_bricks`` (the fallback's extent at ``mag``)
        where it wrote nothing. BadRequest past MAX_SCAN_BRICKS."""
        key = RoomKey(annotation_id, DOC)
        try:
            async with self._pool.acquire() as conn:
                written = await materialised.written_bricks(
                    conn, key, layer, str(mag), version, MAX_SCAN_BRICKS
                )
        except ValueError:
            raise BadRequest(
                f"layer {layer!r} has more than {MAX_SCAN_BRICKS} bricks written at mag {mag}; "
                "ask at a coarser mag"
            ) from None
        rest = [b for b in fallback_bricks if b not in written]
        if len(written) + len(rest) > MAX_SCAN_BRICKS:
            raise BadRequest(
                f"mag {mag} of layer {layer!r} spans more than {MAX_SCAN_BRICKS} bricks; "
                "ask at a coarser mag"
            )
        total = _Extent(segment)
        batch: dict[Brick, np.ndarray | bytes] = {}
        for b, data in written.items():
            batch[b] = data
            if len(batch) >= 64:
                await asyncio.to_thread(total.add, batch, info.dtype)
                batch = {}
        for b in rest:
            batch[b] = await self._unwritten(annotation_id, info, str(mag), b)
            if len(batch) >= 64:
                await asyncio.to_thread(total.add, batch, info.dtype)
                batch = {}
        if batch:
            await asyncio.to_thread(total.add, batch, info.dtype)
        f = (mag.x, mag.y, mag.z)
        low = [total.low[a] * f[a] for a in range(3)]
        high = [(total.high[a] + 1) * f[a] - 1 for a in range(3)]
        return total.count, low, high

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
        bricks: list[Brick],
        changed: Changed,
        version: int | None,
    ) -> dict[Brick, np.ndarray]:
        """The bricks as they are now: changed in this version, else as of
        ``version`` (None: the newest written)."""
        out: dict[Brick, np.ndarray] = {}
        packed: dict[Brick, bytes] = {}
        missing = []
        for b in bricks:
            held = changed.get((layer, mag, b))
            if held is None:
                missing.append(b)
            elif isinstance(held, bytes):
                packed[b] = held
            else:
                out[b] = held
        if packed:
            out.update(
                await asyncio.to_thread(
                    lambda: {b: _voxels(data, info.dtype) for b, data in packed.items()}
                )
            )
        out.update(await self._read(key, layer, mag, info, missing, version))
        return out

    async def _read(
        self,
        key: RoomKey,
        layer: str,
        mag: str,
        info: LayerInfo,
        bricks: list[Brick],
        version: int | None,
        keep: bool = True,
    ) -> dict[Brick, np.ndarray]:
        """The bricks as of ``version`` (None: the newest written): what the
        ops wrote, else the fallback's, else zeros (writable copies); kept in
        the newest bricks' cache unless ``keep`` is False."""
        if not bricks:
            return {}
        ann = key.annotation_id
        out: dict[Brick, np.ndarray] = {}
        at = self._head_at.get(ann)
        head = version is not None and at is not None and version >= at
        if head:
            for b in bricks:
                hit = self._head.get((ann, layer, mag, b))
                if hit is not None:
                    self._head.move_to_end((ann, layer, mag, b))
                    out[b] = hit
            bricks = [b for b in bricks if b not in out]
            if not bricks:
                return out
        async with self._pool.acquire() as conn:
            stored = await materialised.bricks_at(conn, key, layer, mag, bricks, version)
        if stored:
            out.update(
                await asyncio.to_thread(
                    lambda: {
                        b: enc.from_raw(enc.decompress(data), info.dtype).copy()
                        for b, data in stored.items()
                    }
                )
            )
        for b in bricks:
            if b not in out:
                out[b] = await self._unwritten(key.annotation_id, info, mag, b)
        if keep and head and self._head_at.get(ann) == at:
            for b in bricks:
                self._cache(ann, layer, mag, b, out[b])
        return out

    def _cache(self, ann: int, layer: str, mag: str, b: Brick, voxels: np.ndarray) -> None:
        where = (ann, layer, mag, b)
        self._uncache(where)
        self._head[where] = voxels
        self._head_bytes += voxels.nbytes
        self._head_of[ann] += 1
        while self._head_bytes > HEAD_CACHE_BYTES and self._head:
            self._uncache(next(iter(self._head)))

    def _uncache(self, where: tuple[int, str, str, Brick]) -> None:
        old = self._head.pop(where, None)
        if old is not None:
            self._head_bytes -= old.nbytes
            self._head_of[where[0]] -= 1
            if not self._head_of[where[0]]:
                del self._head_of[where[0]]

    def _keep_head(self, ann: int, version: int, changed: Changed) -> None:
        """``version`` is written: its bricks are the newest."""
        for (layer, mag, b), voxels in changed.items():
            if isinstance(voxels, np.ndarray):
                self._cache(ann, layer, mag, b, voxels)
            else:  # kept compressed (a large version): not kept here
                self._uncache((ann, layer, mag, b))
        self._head_at[ann] = version

    def _drop_head(self, ann: int) -> None:
        if ann in self._head_of:  # (a scan of every brick kept: only when it has some)
            for where in [w for w in self._head if w[0] == ann]:
                self._uncache(where)
        self._head_at.pop(ann, None)

    # -- live -----------------------------------------------------------------

    async def _listen(
        self,
        annotation_id: int,
        doc: Doc | None,
        version: int,
        added: list[tuple[str, dict[str, Any]]],
        deleted: list[str],
    ) -> None:
        for listener in self._op_listeners:
            try:
                await listener(annotation_id, doc, version, added, deleted)
            except Exception:
                log.exception("an ops listener failed", extra={"annotation": annotation_id})

    def watch(
        self, annotation_id: int, callback: Watcher
    ) -> contextlib.AbstractContextManager[None]:
        """Call ``callback(version, rows)`` with the bricks each version of the
        annotation's segmentation changed, once they are written, here or by
        another process (brick sockets push them to their viewers). It must
        not block."""
        return self._watchers.watch(annotation_id, callback)

    def _announce(self, annotation_id: int, version: int, rows: list[BrickRow]) -> None:
        self._watchers.tell(annotation_id, version, rows)


Brick = tuple[int, int, int]
#: Bricks a version changed so far, by (layer, mag name, brick): voxels, or
#: their compressed bytes (zstd of the raw bytes, as stored).
Changed = dict[tuple[str, str, Brick], np.ndarray | bytes]
#: An undo's region: bricks by (layer, mag name).
Region = dict[tuple[str, str], set[Brick]]


def coarsenings(info: LayerInfo, mag: Mag) -> list[tuple[Mag, tuple[int, int, int]]]:
    """The coarser mags of the layer that follow an op drawn at ``mag``, in
    order, each with its ratio to the one before: each a whole multiple of
    it, at most MAX_MAG_STEP of its voxels per voxel (others are left as
    they are)."""
    out = []
    finer = mag
    for coarser in info.mags:
        if coarser.volume <= finer.volume:
            continue
        ratio = (coarser.x // finer.x, coarser.y // finer.y, coarser.z // finer.z)
        if (
            any(r < 1 for r in ratio)
            or any(c % f for c, f in zip(coarser, finer, strict=True))
            or ratio[0] * ratio[1] * ratio[2] > MAX_MAG_STEP
        ):
            continue
        out.append((coarser, ratio))
        finer = coarser
    return out


def _reach_of(row: OpRow, info: LayerInfo) -> list[tuple[str, set[Brick] | tuple[Brick, Brick]]]:
    """The bricks an applied op may change, at its mag and each coarser one
    that follows: a set where the row lists them, else a box (b0, b1)."""
    out: list[tuple[str, set[Brick] | tuple[Brick, Brick]]] = []
    exact = set(row.bricks) if row.bricks is not None else None
    low = tuple(row.b0[a] * BRICK for a in range(3))
    high = tuple((row.b1[a] + 1) * BRICK for a in range(3))
    out.append((row.mag, exact if exact is not None else (row.b0, row.b1)))
    try:
        mag = parse_mag(row.mag)
    except CollabError:
        return out
    for coarser, ratio in coarsenings(info, mag):
        low = tuple(low[a] // ratio[a] for a in range(3))
        high = tuple(-(-high[a] // ratio[a]) for a in range(3))
        if exact is not None:
            exact = {(b[0] // ratio[0], b[1] // ratio[1], b[2] // ratio[2]) for b in exact}
            out.append((str(coarser), exact))
        else:
            c0 = (low[0] // BRICK, low[1] // BRICK, low[2] // BRICK)
            c1 = ((high[0] - 1) // BRICK, (high[1] - 1) // BRICK, (high[2] - 1) // BRICK)
            out.append((str(coarser), (c0, c1)))
    return out


def _touches(region: Region, row: OpRow, info: LayerInfo) -> bool:
    for mag, place in _reach_of(row, info):
        held = region.get((row.layer, mag))
        if not held:
            continue
        if isinstance(place, set):
            if not place.isdisjoint(held):
                return True
            continue
        b0, b1 = place
        if math.prod(b1[a] - b0[a] + 1 for a in range(3)) <= len(held):
            if any(b in held for b in _bricks_in(b0, b1)):
                return True
        elif any(all(b0[a] <= b[a] <= b1[a] for a in range(3)) for b in held):
            return True
    return False


def _settle(
    rows: list[OpRow],
    region: Region,
    gone: set[tuple[str, int]],
    base: int,
    infos: dict[str, LayerInfo | None],
) -> int:
    """Grow ``region`` by every standing op after ``base`` that reaches it,
    to a fixed point; return ``base``, or an earlier one as soon as an op
    deleted since stood at it and reaches the region (the caller reads the
    ops from there and settles again)."""
    for _ in range(len(rows) + 2):
        moved = False
        for row in rows:
            info = infos.get(row.layer)
            if (row.op, row.version) in gone or info is None:
                continue
            if row.deleted_at is not None:
                if row.version <= base < row.deleted_at and _touches(region, row, info):
                    return row.version - 1
            elif row.version > base and _touches(region, row, info):
                moved = _join(region, row, info) or moved
        if not moved:
            break
    return base


def _replayed(
    rows: list[OpRow],
    region: Region,
    gone: set[tuple[str, int]],
    base: int,
    infos: dict[str, LayerInfo | None],
) -> list[OpRow]:
    """The standing ops after ``base`` that reach the settled region, in order."""
    return [
        row
        for row in rows
        if row.deleted_at is None
        and row.version > base
        and (row.op, row.version) not in gone
        and (info := infos.get(row.layer)) is not None
        and _touches(region, row, info)
    ]


def _join(region: Region, row: OpRow, info: LayerInfo) -> bool:
    """Add the row's reach to the region; whether it grew."""
    grew = False
    for mag, place in _reach_of(row, info):
        held = region.setdefault((row.layer, mag), set())
        before = len(held)
        held.update(place if isinstance(place, set) else _bricks_in(*place))
        grew = grew or len(held) > before
    return grew


def _box_around(bricks: list[Brick]) -> tuple[Brick, Brick]:
    return (
        (min(b[0] for b in bricks), min(b[1] for b in bricks), min(b[2] for b in bricks)),
        (max(b[0] for b in bricks), max(b[1] for b in bricks), max(b[2] for b in bricks)),
    )


def _voxels(data: bytes, dtype: np.dtype[Any]) -> np.ndarray:
    return enc.from_raw(enc.decompress(data), dtype).copy()


async def _spill(changed: Changed) -> None:
    """Past CHANGED_ARRAY_BYTES of arrays, keep them compressed. Few entries
    cannot hold that much (a brick is at most 256 KiB): nothing to look at."""
    if len(changed) * BRICK**3 * 8 <= CHANGED_ARRAY_BYTES:
        return
    await asyncio.to_thread(_spill_now, changed)


def _spill_now(changed: Changed) -> None:
    arrays = {k: v for k, v in changed.items() if isinstance(v, np.ndarray)}
    if sum(v.nbytes for v in arrays.values()) > CHANGED_ARRAY_BYTES:
        changed.update({k: enc.compress(enc.to_raw(v)) for k, v in arrays.items()})


def _rows_if_changed(
    layer: str,
    mag: str,
    batch: list[Brick],
    changed: Changed,
    before: dict[Brick, np.ndarray],
    dtype: np.dtype[Any],
) -> list[BrickRow]:
    out = []
    for b in batch:
        held = changed[(layer, mag, b)]
        voxels = _voxels(held, dtype) if isinstance(held, bytes) else held
        if not np.array_equal(voxels, before[b]):
            data = held if isinstance(held, bytes) else enc.compress(enc.to_raw(held))
            out.append(BrickRow(layer, mag, b, data))
    return out


#: Told the bricks a version changed: (version, rows).
Watcher = Callable[[int, list[BrickRow]], None]
#: Told the ops a version added (key, value) and deleted (keys):
#: (annotation, document at the version, version, added, deleted); the
#: document None: this process starts following the annotation at the
#: version (:meth:`Materialiser.listen_ops`).
OpsListener = Callable[
    [int, Doc | None, int, list[tuple[str, dict[str, Any]]], list[str]], Awaitable[None]
]


def _ops_changed(
    events: list[dict[str, Any]],
) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """Ops an update added (in order) and deleted, from the ``ops`` map's
    events; a rewritten op counts as both."""
    added: dict[str, dict[str, Any]] = {}
    deleted: list[str] = []
    for keys in events:
        for op_key, change in keys.items():
            action = change.get("action")
            if action in ("delete", "update"):
                deleted.append(op_key)
                added.pop(op_key, None)
            if action in ("add", "update") and isinstance(change.get("newValue"), dict):
                added[op_key] = change["newValue"]
    ordered = sorted(added.items(), key=lambda item: op_order(item[0]))
    return ordered, deleted


def _bricks_in(b0: Brick, b1: Brick) -> list[Brick]:
    return [
        (x, y, z)
        for x in range(b0[0], b1[0] + 1)
        for y in range(b0[1], b1[1] + 1)
        for z in range(b0[2], b1[2] + 1)
    ]


def _downsampled_into(
    before: np.ndarray,
    cb: Brick,
    under: dict[Brick, np.ndarray],
    lo: tuple[int, ...],
    hi: tuple[int, ...],
    f_lo: tuple[int, ...],
    f_hi: tuple[int, ...],
    ratio: tuple[int, int, int],
) -> np.ndarray | None:
    """Coarser brick ``cb`` with its cells lo…hi (coarser voxels) computed
    again from the finer voxels f_lo…f_hi (the bricks ``under``); None when
    nothing changes."""
    block = np.empty(tuple(f_hi[a] - f_lo[a] for a in range(3)), dtype=before.dtype)
    for b, voxels in under.items():
        a0 = [max(f_lo[a], b[a] * BRICK) for a in range(3)]
        a1 = [min(f_hi[a], (b[a] + 1) * BRICK) for a in range(3)]
        if any(a1[a] <= a0[a] for a in range(3)):
            continue
        block[
            a0[0] - f_lo[0] : a1[0] - f_lo[0],
            a0[1] - f_lo[1] : a1[1] - f_lo[1],
            a0[2] - f_lo[2] : a1[2] - f_lo[2],
        ] = voxels[
            a0[0] - b[0] * BRICK : a1[0] - b[0] * BRICK,
            a0[1] - b[1] * BRICK : a1[1] - b[1] * BRICK,
            a0[2] - b[2] * BRICK : a1[2] - b[2] * BRICK,
        ]
    down = paint.downsample_labels(block, ratio)
    o = [lo[a] - cb[a] * BRICK for a in range(3)]
    target = (
        slice(o[0], o[0] + down.shape[0]),
        slice(o[1], o[1] + down.shape[1]),
        slice(o[2], o[2] + down.shape[2]),
    )
    if np.array_equal(before[target], down):
        return None
    after = before.copy()
    after[target] = down
    return after


class _Extent:
    """Count and box of one segment over bricks (voxels of their mag)."""

    def __init__(self, segment: int) -> None:
        self.segment = segment
        self.count = 0
        self.low = [2**62] * 3
        self.high = [-1] * 3

    def add(self, bricks: dict[Brick, np.ndarray | bytes], dtype: np.dtype[Any]) -> None:
        for b, data in bricks.items():
            voxels = enc.from_raw(enc.decompress(data), dtype) if isinstance(data, bytes) else data
            mask = voxels == self.segment
            n = int(np.count_nonzero(mask))
            if not n:
                continue
            self.count += n
            for axis in range(3):
                other = tuple(a for a in range(3) if a != axis)
                hit = np.flatnonzero(mask.any(axis=other))
                self.low[axis] = min(self.low[axis], b[axis] * BRICK + int(hit[0]))
                self.high[axis] = max(self.high[axis], b[axis] * BRICK + int(hit[-1]))


def _build(snapshot: bytes | None, updates: list[bytes]) -> Doc:
    """The document from its stored state (in a thread: it may be large)."""
    doc: Doc = Doc()
    for root in ("layers", "ops"):
        doc.get(root, type=Map)
    if snapshot:
        doc.apply_update(snapshot)
    for update in updates:
        doc.apply_update(update)
    return doc


def _paint_each(
    op: dict[str, Any], current: dict[Brick, np.ndarray], f: tuple[int, int, int]
) -> dict[Brick, np.ndarray]:
    """Paint a (local) op brick by brick; the bricks it changed."""
    out = {}
    for b, voxels in current.items():
        piece = voxels.copy()
        paint.apply(op, piece, (b[0] * BRICK, b[1] * BRICK, b[2] * BRICK), f)
        if not np.array_equal(piece, voxels):
            out[b] = piece
    return out


def _layer_lookup(doc: Doc) -> Callable[[str], dict[str, Any] | None]:
    layers = doc.get("layers", type=Map)

    def find(name: str) -> dict[str, Any] | None:
        entry = layers.get(name)
        return entry.to_py() if isinstance(entry, Map) else None

    return find


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
