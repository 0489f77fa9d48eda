"""Editable mappings of annotation layers, live: sequencing merges and
splits, following the log, telling viewers.

A request (collab/http/proofreading.py) takes the annotation's proofreading
lock, brings the layer's mapping up to the newest materialised version,
checks the request against it (unknown supervoxels, a merge within one
agglomerate, a split across agglomerates: refused, nothing written),
computes a split's minimum cut (collab/proofreading/graph.py, in a thread),
and writes the op into the segmentation document as a server change, with
its author, time and a ``seq`` from the annotation's counter. It then waits
until the materialiser has followed the log past that version.

The mapping itself follows the log, not the requests: the materialiser
calls :meth:`Proofreading.follow` for every version that adds or deletes
ops (collab/segmentation/materialise.py, ``listen_ops``), so an undo (a
client deleting the op), a restore or a revert changes the mapping through
the same path as a request. A new op with a seq past the last applied is
applied to the mapping in memory; anything else (an op deleted, an older op
added again) rebuilds the layer's mapping from the standing ops. The
supervoxels whose agglomerate changed go to the watchers (the volume socket
of the layer pushes them: collab/http/data_socket.py).

Mappings are built on first use from the document and the dataset's
agglomerate file, and kept for MAPPINGS_KEPT layers (least recently used
out; they are rebuilt from the log when needed again).

Several processes (instances over one database): each process's kept
mappings follow every version through its own materialiser, whichever
process wrote the op or materialised the version (the materialiser tells
its listeners of versions materialised elsewhere too). An op recorded by
another process is read again from ``proofreading_ops`` when a version or
the standing ops name a seq not known here. When the materialiser starts
following an annotation here (``doc`` None), versions before may have gone
unseen: the annotation's mappings are dropped, built again on next use.
Requests are sequenced per process (the proofreading lock is in memory):
two processes may check requests against the same mapping at once. Both
ops are then written, and every mapping applies them in seq order, so all
agree, but the later of two conflicting requests is not refused (409) as
it is within one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
from pycrdt import Doc, Map

from collab.errors import Conflict, NotFound
from collab.keyed_locks import KeyedLocks
from collab.proofreading.connectome import SynapseTable
from collab.proofreading.mapping import EditableMapping
from collab.segmentation.ops import MAPPING_KINDS
from collab.store import proofreading as proofreading_ops
from collab.store.database import Database
from collab.watchers import Watchers

log = logging.getLogger("collab.proofreading")

#: Layers whose editable mapping is kept in memory.
MAPPINGS_KEPT = 64
#: Datasets whose synapse table is kept in memory.
DATASETS_KEPT = 8

#: Told the supervoxels whose agglomerate changed: (version, layer or None
#: for every layer, sorted n × 2 uint64 pairs or None: ask again).
MappingWatcher = Callable[[int, str | None, np.ndarray | None], None]
#: Builds the base of a layer's mapping: (annotation, layer entry) → base.
BaseOf = Callable[[int, dict[str, Any]], Any]


def pr_seq(key: str) -> int | None:
    """The seq of a ``pr-<seq>`` key, else None."""
    if not key.startswith("pr-") or not key[3:].isdigit() or len(key) > 23:
        return None
    return int(key[3:])


def standing_seqs(doc: Doc) -> list[int]:
    """The seqs of the proofreading ops that stand in the document: its
    ``pr-<seq>`` entries of a proofreading kind (what they say is the
    server's record's, not the entry's). Reads the whole ``ops`` root:
    call in a thread."""
    ops = doc.get("ops", type=Map)
    out = []
    for key in list(ops.keys()):
        seq = pr_seq(key)
        if seq is None:
            continue
        op = ops.get(key)
        if isinstance(op, dict) and op.get("kind") in MAPPING_KINDS:
            out.append(seq)
    return sorted(out)


def _seq(op: dict[str, Any]) -> int:
    seq = op.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else 0


class Proofreading:
    """The editable mappings of this server's annotation layers."""

    def __init__(self, pool: Database, base_of: Any) -> None:
        self._pool = pool
        #: ``await base_of(annotation, layer entry)`` → the mapping's base.
        self._base_of = base_of
        #: (annotation, layer) → (the active mapping's name, the mapping).
        self._mappings: OrderedDict[tuple[int, str], tuple[str, EditableMapping]] = OrderedDict()
        #: The ops the server sequenced, per annotation (by seq), as recorded.
        self._recorded: OrderedDict[int, dict[int, dict[str, Any]]] = OrderedDict()
        self._locks = KeyedLocks()
        self._watchers: Watchers[MappingWatcher] = Watchers("mapping")
        #: Synapse tables by dataset name (read once; DATASETS_KEPT at most).
        self._synapses: OrderedDict[str, SynapseTable] = OrderedDict()

    async def synapses(self, dataset: str, volumes: Any) -> SynapseTable:
        """The dataset's synapse table (its synapses.json), read once."""
        table = self._synapses.get(dataset)
        if table is None:
            entries = await (await volumes.dataset(dataset)).synapses()
            table = await asyncio.to_thread(SynapseTable.from_json, entries)
            self._synapses[dataset] = table
            while len(self._synapses) > DATASETS_KEPT:
                self._synapses.popitem(last=False)
        return table

    # -- requests ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def sequencing(self, annotation_id: int) -> Any:
        """One request of the annotation at a time (from the check of a
        request to its op followed into the mapping)."""
        async with self._locks.hold(annotation_id):
            yield

    async def mapping(self, annotation_id: int, layer: str, doc: Doc) -> EditableMapping:
        """The layer's mapping as of ``doc`` (the document at the newest
        materialised version, held still by the caller): kept, or built."""
        entry = _layer_entry(doc, layer)
        active = entry.get("activeMapping")
        if not isinstance(active, str) or not active:
            raise Conflict(
                f"layer {layer!r} has no active mapping: set the layer's activeMapping "
                "to an agglomerate mapping of its fallback layer first"
            )
        held = self._mappings.get((annotation_id, layer))
        if held is not None and held[0] == active:
            self._mappings.move_to_end((annotation_id, layer))
            return held[1]
        base = await self._base_of(annotation_id, entry)
        ops = await self._standing(annotation_id, doc, layer)
        mapping = await asyncio.to_thread(_built, base, ops)
        self._keep(annotation_id, layer, active, mapping)
        return mapping

    async def record(self, annotation_id: int, seq: int, op: dict[str, Any]) -> None:
        """Keep the op a request is about to write as ``pr-<seq>``."""
        recorded = await self._recorded_of(annotation_id)
        async with self._pool.acquire() as conn:
            await proofreading_ops.record(conn, annotation_id, seq, op)
        recorded[seq] = op

    async def _recorded_of(self, annotation_id: int) -> dict[int, dict[str, Any]]:
        found = self._recorded.get(annotation_id)
        if found is None:
            async with self._pool.acquire() as conn:
                found = await proofreading_ops.recorded(conn, annotation_id)
            self._recorded[annotation_id] = found
            while len(self._recorded) > MAPPINGS_KEPT:
                self._recorded.popitem(last=False)
        self._recorded.move_to_end(annotation_id)
        return found

    async def _standing(self, annotation_id: int, doc: Doc, layer: str) -> list[dict[str, Any]]:
        """The layer's standing proofreading ops, as recorded, in seq order."""
        seqs = await asyncio.to_thread(standing_seqs, doc)
        recorded = await self._recorded_of(annotation_id)
        if any(seq not in recorded for seq in seqs):  # recorded elsewhere since: read again
            self._recorded.pop(annotation_id, None)
            recorded = await self._recorded_of(annotation_id)
        return [
            recorded[seq] for seq in seqs if seq in recorded and recorded[seq].get("layer") == layer
        ]

    def forget(self, annotation_id: int, layer: str | None = None, version: int = 0) -> None:
        """Drop the annotation's mappings (one layer's, or all): built again
        from the log on next use; viewers are told to ask again."""
        for ann, name in list(self._mappings):
            if ann == annotation_id and layer in (None, name):
                del self._mappings[(ann, name)]
        self._announce(annotation_id, version, layer, None)

    def _keep(self, annotation_id: int, layer: str, active: str, mapping: EditableMapping) -> None:
        self._mappings[(annotation_id, layer)] = (active, mapping)
        self._mappings.move_to_end((annotation_id, layer))
        while len(self._mappings) > MAPPINGS_KEPT:
            self._mappings.popitem(last=False)

    # -- following the log ------------------------------------------------------

    async def follow(
        self,
        annotation_id: int,
        doc: Doc | None,
        version: int,
        added: list[tuple[str, dict[str, Any]]],
        deleted: list[str],
    ) -> None:
        """The materialiser's ops listener: bring kept mappings of the
        annotation to ``version`` and tell watchers what changed. Should it
        fail or be cancelled half way, the annotation's mappings are dropped
        (built again from the log) and viewers told to ask again.

        ``doc`` None: the materialiser of this process starts following the
        annotation at ``version``; another process may have materialised
        ops before it unseen here, so what is kept of it is dropped."""
        if doc is None:
            self._recorded.pop(annotation_id, None)
            if any(ann == annotation_id for ann, _ in self._mappings):
                self.forget(annotation_id, None, version)
            return
        try:
            await self._follow(annotation_id, doc, version, added, deleted)
        except BaseException:
            self.forget(annotation_id, None, version)
            raise

    async def _follow(
        self,
        annotation_id: int,
        doc: Doc,
        version: int,
        added: list[tuple[str, dict[str, Any]]],
        deleted: list[str],
    ) -> None:
        added_seqs = [
            seq
            for key, op in added
            if (seq := pr_seq(key)) is not None and op.get("kind") in MAPPING_KINDS
        ]
        undone = any(pr_seq(key) is not None for key in deleted)
        kept = [
            (name, held) for (ann, name), held in self._mappings.items() if ann == annotation_id
        ]
        layers = doc.get("layers", type=Map)
        for name, (active, _mapping) in kept:
            entry = layers.get(name)
            if (entry.get("activeMapping") if isinstance(entry, Map) else None) != active:
                self.forget(annotation_id, name, version)  # another base: built again
        if not added_seqs and not undone:
            return
        recorded = await self._recorded_of(annotation_id)
        if any(seq not in recorded for seq in added_seqs):  # another instance's: read again
            self._recorded.pop(annotation_id, None)
            recorded = await self._recorded_of(annotation_id)
        ops = [recorded[seq] for seq in added_seqs if seq in recorded]
        followed: set[str] = set()
        for name, (active, mapping) in kept:
            if (annotation_id, name) not in self._mappings:
                continue
            followed.add(name)
            mine = sorted((op for op in ops if op.get("layer") == name), key=_seq)
            in_order = not undone and all(
                _seq(op) > mapping.seq or _seq(op) in mapping.pending for op in mine
            )
            if in_order:
                changes: dict[int, int] = {}
                for op in mine:  # applied ahead by their requests: told now
                    changes.update(mapping.pending.pop(_seq(op), {}))
                unapplied = [op for op in mine if _seq(op) > mapping.seq]
                if unapplied:
                    changes.update(await asyncio.to_thread(_applied, mapping, unapplied))
            elif mine or undone:
                standing = await self._standing(annotation_id, doc, name)
                fresh = await asyncio.to_thread(_built, mapping.base, standing)
                changes = await asyncio.to_thread(_difference, mapping, fresh)
                self._keep(annotation_id, name, active, fresh)
            else:
                continue
            if changes and self._watchers.any(annotation_id):
                pairs = await asyncio.to_thread(as_pairs, changes)
                self._announce(annotation_id, version, name, pairs)
        # Layers whose mapping is not kept here: their viewers ask again.
        elsewhere = {str(op.get("layer")) for op in ops} - followed
        if undone and self._watchers.any(annotation_id):
            self._announce(annotation_id, version, None, None)
        else:
            for name in elsewhere:
                self._announce(annotation_id, version, name, None)

    # -- watchers ---------------------------------------------------------------

    def watch(
        self, annotation_id: int, callback: MappingWatcher
    ) -> contextlib.AbstractContextManager[None]:
        """Call ``callback(version, layer, pairs)`` whenever the mapping of a
        layer of the annotation changes (:meth:`_announce`). It must not block."""
        return self._watchers.watch(annotation_id, callback)

    def _announce(
        self, annotation_id: int, version: int, layer: str | None, pairs: np.ndarray | None
    ) -> None:
        """Tell watchers: sorted (supervoxel, agglomerate) pairs (one array
        for every socket), or None: ask again (of ``layer``, or of every
        layer when None)."""
        self._watchers.tell(annotation_id, version, layer, pairs)


def _layer_entry(doc: Doc, layer: str) -> dict[str, Any]:
    entry = doc.get("layers", type=Map).get(layer)
    if not isinstance(entry, Map):
        raise NotFound(f"no volume layer {layer[:40]!r} in the annotation")
    return entry.to_py() or {}


def _built(base: Any, ops: list[dict[str, Any]]) -> EditableMapping:
    mapping = EditableMapping(base)
    for op in ops:
        mapping.apply(op)
    return mapping


def _applied(mapping: EditableMapping, ops: list[dict[str, Any]]) -> dict[int, int]:
    changes: dict[int, int] = {}
    for op in ops:
        changes.update(mapping.apply(op))
    return changes


def _difference(old: EditableMapping, new: EditableMapping) -> dict[int, int]:
    """The supervoxels whose agglomerate differs between two mappings of
    one base, with the new one."""
    keys = sorted(set(old.moved) | set(new.moved))
    if not keys:
        return {}
    before = old.agglomerates_of(keys)
    after = new.agglomerates_of(keys)
    return {k: a for k, b, a in zip(keys, before, after, strict=True) if a != b}


def as_pairs(changes: dict[int, int]) -> np.ndarray:
    """Changes as (supervoxel, agglomerate) uint64 pairs, by supervoxel."""
    pairs = np.fromiter(
        (v for item in changes.items() for v in item), dtype=np.uint64, count=2 * len(changes)
    ).reshape(len(changes), 2)
    return pairs[np.argsort(pairs[:, 0], kind="stable")]
