"""An annotation layer's editable mapping: supervoxel → agglomerate, the
dataset's agglomerate mapping changed by the proofreading ops that stand.

Pure: the base (the dataset's agglomerate file: collab/volume/agglomerates.py)
comes in through :class:`Base`; reads of it may touch storage, so callers run
these methods in a thread.

The mapping is a function of the set of standing ``merge`` and ``split`` ops
of the layer, applied in the order of their ``seq`` (the server hands out
seq numbers as it sequences them: collab/proofreading/service.py):

- ``merge {a, b}`` adds the edge a–b (affinity 1: the strongest there is)
  to the graph; b's agglomerate joins a's and takes its id. A merge of two
  supervoxels already in one agglomerate adds its edge and changes no id.
- ``split {sources, sinks, cut}`` removes the edges ``cut`` (the minimum cut
  the server computed when the op was made: collab/proofreading/graph.py);
  the part holding the first source keeps the agglomerate's id, every other
  part gets a new id of the op's own: the base's largest id + seq · 2¹⁶ + k
  for the k-th such part in the order of its smallest supervoxel (the
  same ids whatever was undone before or since).

Undoing an op (deleting it) gives the mapping of the ops that remain; a
split undone brings back exactly the edges it cut, since they are in the op.
Replaying the same ops gives the same ids: every choice above is a function
of the ops alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from collab.errors import Conflict, PayloadTooLarge, Unprocessable

#: Affinity of an edge a merge adds (the base's are in [0, 1]).
MERGE_AFFINITY = 1.0
#: Seeds one split may name (sources and sinks together).
MAX_SEEDS = 64
#: New agglomerate ids one split may hand out (its own range of ids).
PARTS_PER_OP = 2**16


class Base(Protocol):
    """The dataset's agglomerate file, as the mapping reads it."""

    #: The largest agglomerate id the file uses.
    largest: int

    def agglomerates_of(self, segments: np.ndarray) -> np.ndarray:
        """The agglomerate of each supervoxel (uint64); 0 where the file
        knows none (no such supervoxel)."""

    def graph(self, agglomerate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One agglomerate's supervoxels (uint64, n), edges (uint64 pairs of
        supervoxel ids, m × 2) and their affinities (float32, m)."""


Edge = tuple[int, int]


def edge(a: int, b: int) -> Edge:
    return (a, b) if a <= b else (b, a)


@dataclass
class Agglomerate:
    """An agglomerate as arrays: its supervoxels (uint64, sorted), edges
    (uint64 pairs, the smaller id first) and their affinities (float64)."""

    nodes: np.ndarray
    edges: np.ndarray
    weights: np.ndarray
    #: ``edges`` as indices into ``nodes``, once computed.
    _local: np.ndarray | None = None

    @classmethod
    def of(cls, nodes: Any, edges: Any, weights: Any) -> Agglomerate:
        e = np.asarray(edges, dtype=np.uint64).reshape(-1, 2)
        e = np.sort(e, axis=1)
        return cls(
            np.unique(np.asarray(nodes, dtype=np.uint64)),
            e,
            np.asarray(weights, dtype=np.float64).reshape(len(e)),
        )

    @classmethod
    def empty(cls) -> Agglomerate:
        return cls.of([], [], [])

    def local(self) -> np.ndarray:
        """The edges as indices into ``nodes`` (int64, m × 2; kept)."""
        if self._local is None:
            self._local = np.searchsorted(self.nodes, self.edges).astype(np.int64)
        return self._local

    def has_edge(self, a: int, b: int) -> bool:
        lo, hi = edge(a, b)
        return bool(np.any((self.edges[:, 0] == lo) & (self.edges[:, 1] == hi)))

    def without(self, cut: list[Edge]) -> Agglomerate:
        """The agglomerate with the edges ``cut`` removed (those it has)."""
        if not cut or not len(self.edges):
            return self
        n = np.int64(len(self.nodes) + 1)
        local = self.local()
        keys = local[:, 0] * n + local[:, 1]
        pairs = np.array(cut, dtype=np.uint64).reshape(-1, 2)
        idx = np.searchsorted(self.nodes, pairs).clip(0, len(self.nodes) - 1)
        present = (self.nodes[idx] == pairs).all(axis=1)
        cut_keys = idx[present, 0].astype(np.int64) * n + idx[present, 1].astype(np.int64)
        keep = ~np.isin(keys, cut_keys)
        return Agglomerate(self.nodes, self.edges[keep], self.weights[keep], local[keep])

    def parts(self) -> tuple[int, np.ndarray, np.ndarray]:
        """Its connected parts: how many, each node's part and each edge's
        (numbered by each part's smallest supervoxel)."""
        if not len(self.nodes):
            return 0, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        local = self.local()
        count, labels = _connected(len(self.nodes), local)
        if count > 1:  # renumber in the order of each part's smallest node
            first = np.full(count, len(self.nodes), dtype=np.int64)
            np.minimum.at(first, labels, np.arange(len(self.nodes)))
            rank = np.empty(count, dtype=np.int64)
            rank[np.argsort(first)] = np.arange(count)
            labels = rank[labels]
        edge_labels = labels[local[:, 0]] if len(local) else np.zeros(0, dtype=np.int64)
        return count, labels, edge_labels

    def part(self, labels: np.ndarray, edge_labels: np.ndarray, k: int) -> Agglomerate:
        """Part ``k`` of :meth:`parts`, with the edges inside it."""
        inside = edge_labels == k
        return Agglomerate(self.nodes[labels == k], self.edges[inside], self.weights[inside])


def _connected(n: int, local: np.ndarray) -> tuple[int, np.ndarray]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix(
        (np.ones(len(local), dtype=np.int8), (local[:, 0], local[:, 1])), shape=(n, n)
    )
    count, labels = connected_components(graph, directed=False)
    return int(count), labels


class EditableMapping:
    """The mapping of one annotation layer: the base, and what the ops
    changed (kept only for the agglomerates they touched)."""

    def __init__(self, base: Base) -> None:
        self.base = base
        #: Supervoxels whose agglomerate is not the base's.
        self.moved: dict[int, int] = {}
        #: Agglomerates ops touched, whole; ids ops removed map to None.
        self.touched: dict[int, Agglomerate | None] = {}
        #: New ids of splits start past the base's.
        self.largest = int(base.largest)
        #: The seq of the last op applied.
        self.seq = 0
        #: Ops applied ahead of the log (a request, before its op is
        #: written): their changes by seq, told once the log has them.
        self.pending: dict[int, dict[int, int]] = {}

    # -- reading ---------------------------------------------------------------

    def agglomerates_of(self, segments: Iterable[int]) -> list[int]:
        ids = [int(s) for s in segments]
        if not ids:
            return []
        base = self.base.agglomerates_of(np.array(ids, dtype=np.uint64)).tolist()
        return [self.moved.get(s, int(b)) for s, b in zip(ids, base, strict=True)]

    def agglomerate_of(self, segment: int) -> int:
        return self.agglomerates_of([segment])[0]

    def graph(self, agglomerate: int) -> Agglomerate:
        """The agglomerate as it is now (read from the base when no op
        touched it); empty when there is no such agglomerate."""
        if agglomerate in self.touched:
            return self.touched[agglomerate] or Agglomerate.empty()
        return Agglomerate.of(*self.base.graph(agglomerate))

    # -- checks (what a request must satisfy before its op is written) ---------

    def check_merge(self, a: int, b: int) -> tuple[int, int]:
        """The agglomerates of a and b; refused when either is unknown or
        both lie in one agglomerate."""
        ga, gb = self.agglomerates_of([a, b])
        for segment, agg in ((a, ga), (b, gb)):
            if agg == 0:
                raise Unprocessable(f"segment {segment} is in no agglomerate of the mapping")
        if ga == gb:
            raise Conflict(
                f"segments {a} and {b} are one agglomerate ({ga}) already: nothing to merge"
            )
        limit = getattr(self.base, "max_edges", None)
        if limit is not None:
            one, other = self.graph(ga), self.graph(gb)
            size = max(len(one.nodes) + len(other.nodes), len(one.edges) + len(other.edges) + 1)
            if size > limit:
                raise PayloadTooLarge(
                    f"the merged agglomerate would have {size} supervoxels or edges; at most "
                    f"{limit} (COLLAB_AGGLOMERATE_MAX_EDGES)"
                )
        return ga, gb

    def check_split(self, sources: list[int], sinks: list[int]) -> int:
        """The agglomerate every seed lies in; refused when a seed is
        unknown, named twice or on both sides, or the seeds lie in different
        agglomerates."""
        if not sources or not sinks or len(sources) + len(sinks) > MAX_SEEDS:
            raise Unprocessable(f"a split needs 1 to {MAX_SEEDS} seeds in all, on both sides")
        if set(sources) & set(sinks):
            raise Unprocessable("a segment cannot be on both sides of a split")
        seeds = sources + sinks
        aggs = self.agglomerates_of(seeds)
        for segment, agg in zip(seeds, aggs, strict=True):
            if agg == 0:
                raise Unprocessable(f"segment {segment} is in no agglomerate of the mapping")
        if len(set(aggs)) > 1:
            found = ", ".join(f"{s} → {g}" for s, g in zip(seeds, aggs, strict=True))
            raise Conflict(f"the seeds of a split lie in different agglomerates ({found})")
        return aggs[0]

    # -- applying ops ----------------------------------------------------------

    def apply(self, op: dict[str, Any]) -> dict[int, int]:
        """Apply a standing op (in seq order); the supervoxels whose
        agglomerate changed, with the new one. An op that no longer fits
        (its supervoxels gone from the base) changes nothing."""
        seq = op.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            self.seq = max(self.seq, seq)
        if op.get("kind") == "merge":
            a, b = _segment(op.get("a")), _segment(op.get("b"))
            return {} if a is None or b is None else self._merge(a, b)
        if op.get("kind") == "split":
            sources = _segments(op.get("sources"))
            cut = op.get("cut")
            edges = [
                edge(int(p[0]), int(p[1]))
                for p in (cut if isinstance(cut, list) else [])
                if isinstance(p, list) and len(p) == 2 and all(_segment(v) is not None for v in p)
            ]
            seq_of = int(seq) if isinstance(seq, int) and not isinstance(seq, bool) else 0
            return {} if not sources else self._split(sources[0], edges, seq_of)
        return {}

    def apply_ahead(self, op: dict[str, Any]) -> dict[int, int]:
        """Apply an op its request is about to write (it carries its seq),
        keeping its changes for when the log has it (``pending``)."""
        changes = self.apply(op)
        self.pending[int(op["seq"])] = changes
        return changes

    def _merge(self, a: int, b: int) -> dict[int, int]:
        ga, gb = self.agglomerates_of([a, b])
        if ga == 0 or gb == 0:
            return {}
        keep = self.graph(ga)
        gone = self.graph(gb) if gb != ga else Agglomerate.empty()
        joined = Agglomerate(
            np.union1d(keep.nodes, gone.nodes),
            np.concatenate([keep.edges, gone.edges]),
            np.concatenate([keep.weights, gone.weights]),
        )
        if not joined.has_edge(a, b):
            joined = Agglomerate(
                joined.nodes,
                np.concatenate([joined.edges, np.array([edge(a, b)], dtype=np.uint64)]),
                np.concatenate([joined.weights, [MERGE_AFFINITY]]),
            )
        self.touched[ga] = joined
        if ga == gb:
            return {}
        self.touched[gb] = None
        moved = dict.fromkeys(gone.nodes.tolist(), ga)
        self.moved.update(moved)
        return moved

    def _split(self, source: int, cut: list[Edge], seq: int) -> dict[int, int]:
        agg = self.agglomerate_of(source)
        if agg == 0:
            return {}
        whole = self.graph(agg).without(cut)
        self.touched[agg] = whole
        count, labels, edge_labels = whole.parts()
        if count < 2:
            return {}
        keeps = int(labels[np.searchsorted(whole.nodes, np.uint64(source))])
        changes: dict[int, int] = {}
        new = self.largest + seq * PARTS_PER_OP
        for k in range(count):
            piece = whole.part(labels, edge_labels, k)
            if k == keeps:
                self.touched[agg] = piece
                continue
            new += new < self.largest + (seq + 1) * PARTS_PER_OP - 1  # the last takes the rest
            held = self.touched.get(new)
            if held is not None:  # past PARTS_PER_OP parts: one id for the rest
                piece = Agglomerate.of(
                    np.concatenate([held.nodes, piece.nodes]),
                    np.concatenate([held.edges, piece.edges]),
                    np.concatenate([held.weights, piece.weights]),
                )
            self.touched[new] = piece
            moved = piece.nodes.tolist()
            self.moved.update(dict.fromkeys(moved, new))
            changes.update(dict.fromkeys(moved, new))
        return changes


def _segment(value: Any) -> int | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**64:
        return None
    return value


def _segments(value: Any) -> list[int]:
    if not isinstance(value, list):
        return []
    out = [_segment(v) for v in value[:MAX_SEEDS]]
    return [v for v in out if v is not None]
