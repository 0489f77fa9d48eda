"""Agglomerate graphs: WEBKNOSSOS's agglomerate attachment, read lazily.

An agglomerate attachment (webknossos-libs' "AgglomerateViewArtifact",
schema version 4; docs/datasets.md draws it) is a zarr v3 group of seven
arrays beside a segmentation layer:

    segment_to_agglomerate           (n_segments + 1,)    uint64   agglomerate of each supervoxel id
    agglomerate_to_segments_offsets  (n_agglomerates + 2,) uint64  CSR offsets into the next two
    agglomerate_to_segments          (n_segments,)        layer dtype  ids, grouped, ascending
    agglomerate_to_positions         (n_segments, 3)      int32    a voxel of each (x, y, z)
    agglomerate_to_edges_offsets     (n_agglomerates + 2,) uint64  CSR offsets into the next two
    agglomerate_to_edges             (n_edges, 2)         layer dtype  local indices, first < second
    agglomerate_to_affinities        (n_edges,)           float32  higher: more evidence to merge

Agglomerate ``a`` holds ``agglomerate_to_segments[off[a]:off[a+1]]``; an
edge's two numbers index into that slice, not into supervoxel ids.
Agglomerate 0 is the background and holds nothing.

:class:`AgglomerateReader` (one per server, owned by ``Volumes``) reads one
agglomerate at a time, as the WEBKNOSSOS datastore does: two offsets, then
the slices, all in a worker thread with zarr-python's synchronous API; the
graphs read are kept under a byte budget (``COLLAB_AGGLOMERATE_GRAPH_BYTES``)
and an agglomerate over ``COLLAB_AGGLOMERATE_MAX_EDGES`` supervoxels or
edges is refused. The whole supervoxel→agglomerate array, which mapped
bricks need, is loaded once per layer by :func:`read_mapping_table`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import Store
from zarr.storage import StorePath

from collab.errors import LayoutError, NotFound, PayloadTooLarge

SEGMENT_TO_AGGLOMERATE = "segment_to_agglomerate"
SEGMENTS_OFFSETS = "agglomerate_to_segments_offsets"
SEGMENTS = "agglomerate_to_segments"
POSITIONS = "agglomerate_to_positions"
EDGES_OFFSETS = "agglomerate_to_edges_offsets"
EDGES = "agglomerate_to_edges"
AFFINITIES = "agglomerate_to_affinities"
ARRAYS = (
    SEGMENT_TO_AGGLOMERATE,
    SEGMENTS_OFFSETS,
    SEGMENTS,
    POSITIONS,
    EDGES_OFFSETS,
    EDGES,
    AFFINITIES,
)
#: What the group's ``attributes.voxelytics`` says (webknossos-libs writes it).
ARTIFACT_CLASS = "AgglomerateViewArtifact"
SCHEMA_VERSION = 4
#: Largest supervoxel→agglomerate array loaded into memory (entries).
MAX_MAPPING_ENTRIES = 1 << 27

#: (number of dimensions, second dimension or None, dtype kind) per array.
_SHAPES: dict[str, tuple[int, int | None, str]] = {
    SEGMENT_TO_AGGLOMERATE: (1, None, "u"),
    SEGMENTS_OFFSETS: (1, None, "ui"),
    SEGMENTS: (1, None, "ui"),
    POSITIONS: (2, 3, "ui"),
    EDGES_OFFSETS: (1, None, "ui"),
    EDGES: (2, 2, "ui"),
    AFFINITIES: (1, None, "f"),
}


@dataclass(eq=False)
class AgglomerateFile:
    """One agglomerate attachment of a layer: where it is (opened arrays kept)."""

    name: str
    store: Store
    #: The group's path inside the dataset's store.
    path: str
    _arrays: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def array(self, name: str) -> Any:
        """The zarr array ``name`` of the group, opened once (call in a thread)."""
        with self._lock:
            found = self._arrays.get(name)
        if found is not None:
            return found
        where = f"{self.path}/{name}/zarr.json"
        try:
            array = zarr.open_array(store=StorePath(self.store, f"{self.path}/{name}"), mode="r")
        except FileNotFoundError:
            raise LayoutError(f"{where}: the array is missing") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise LayoutError(f"{where}: not a readable zarr array ({exc})") from None
        ndim, second, kinds = _SHAPES[name]
        shape = tuple(array.shape)
        if len(shape) != ndim or (second is not None and shape[1] != second):
            want = f"(n, {second})" if second is not None else "(n,)"
            raise LayoutError(f"{where}: shape {list(shape)}, expected {want}")
        if np.dtype(array.dtype).kind not in kinds:
            raise LayoutError(f"{where}: data_type {np.dtype(array.dtype).name} is not allowed")
        with self._lock:
            self._arrays[name] = array
        return array


@dataclass(frozen=True, slots=True)
class AgglomerateSummary:
    mapping: str
    #: Supervoxels listed in the graph (``agglomerate_to_segments``).
    segments: int
    #: Agglomerate ids run 1..agglomerates (some may be empty).
    agglomerates: int
    edges: int
    #: The largest supervoxel id the mapping covers.
    largest_segment_id: int

    def to_json(self) -> dict[str, Any]:
        return {
            "mapping": self.mapping,
            "format": "zarr3",
            "segments": self.segments,
            "agglomerates": self.agglomerates,
            "edges": self.edges,
            "largestSegmentId": self.largest_segment_id,
        }


@dataclass(frozen=True, slots=True)
class AgglomerateGraph:
    """One agglomerate: its supervoxels and the edges between them."""

    mapping: str
    agglomerate: int
    #: Supervoxel ids (uint64), in stored order (ascending, as written).
    segments: np.ndarray
    #: (n_edges, 2) uint64 supervoxel ids, each pair as stored.
    edges: np.ndarray
    #: (n_edges,) float32, one per edge.
    affinities: np.ndarray
    #: (n_segments, 3) int32: a mag-1 voxel (x, y, z) of each supervoxel.
    positions: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(
            self.segments.nbytes
            + self.edges.nbytes
            + self.affinities.nbytes
            + self.positions.nbytes
            + 200
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "mapping": self.mapping,
            "agglomerate": self.agglomerate,
            "supervoxels": self.segments.tolist(),
            "edges": self.edges.tolist(),
            "affinities": [float(a) for a in self.affinities.tolist()],
            "positions": self.positions.tolist(),
        }


def read_summary(file: AgglomerateFile) -> AgglomerateSummary:
    """Counts, from the arrays' metadata only (call in a thread)."""
    offsets = file.array(SEGMENTS_OFFSETS)
    edges_offsets = file.array(EDGES_OFFSETS)
    if offsets.shape[0] < 2 or edges_offsets.shape[0] != offsets.shape[0]:
        raise LayoutError(
            f"{file.path}/{EDGES_OFFSETS}/zarr.json: shape {list(edges_offsets.shape)}, "
            f"expected that of {SEGMENTS_OFFSETS} ({list(offsets.shape)}), at least 2"
        )
    segments = int(file.array(SEGMENTS).shape[0])
    if file.array(POSITIONS).shape[0] != segments:
        raise LayoutError(f"{file.path}/{POSITIONS}/zarr.json: one row per supervoxel expected")
    edges = int(file.array(EDGES).shape[0])
    if file.array(AFFINITIES).shape[0] != edges:
        raise LayoutError(f"{file.path}/{AFFINITIES}/zarr.json: one affinity per edge expected")
    return AgglomerateSummary(
        file.name,
        segments,
        int(offsets.shape[0]) - 2,
        edges,
        int(file.array(SEGMENT_TO_AGGLOMERATE).shape[0]) - 1,
    )


def _range(file: AgglomerateFile, name: str, agglomerate: int, total: int) -> tuple[int, int]:
    pair = np.asarray(file.array(name)[agglomerate : agglomerate + 2])
    lo, hi = int(pair[0]), int(pair[1])
    if not 0 <= lo <= hi <= total:
        raise LayoutError(
            f"{file.path}/{name}: offsets [{lo}, {hi}) of agglomerate {agglomerate} "
            f"are outside 0..{total}"
        )
    return lo, hi


def read_graph(file: AgglomerateFile, agglomerate: int, max_edges: int) -> AgglomerateGraph:
    """Agglomerate ``agglomerate`` of ``file`` (call in a thread).

    NotFound for 0, an id past the last, or an empty agglomerate;
    PayloadTooLarge when it has over ``max_edges`` supervoxels or edges.
    """
    summary = read_summary(file)
    if not 1 <= agglomerate <= summary.agglomerates:
        raise NotFound(
            f"mapping {file.name!r} has agglomerates 1..{summary.agglomerates}, not {agglomerate}"
        )
    s0, s1 = _range(file, SEGMENTS_OFFSETS, agglomerate, summary.segments)
    e0, e1 = _range(file, EDGES_OFFSETS, agglomerate, summary.edges)
    if s1 == s0:
        raise NotFound(f"agglomerate {agglomerate} of mapping {file.name!r} is empty")
    if max(s1 - s0, e1 - e0) > max_edges:
        raise PayloadTooLarge(
            f"agglomerate {agglomerate} of mapping {file.name!r} has {s1 - s0} supervoxels "
            f"and {e1 - e0} edges; at most {max_edges} of each are read "
            "(COLLAB_AGGLOMERATE_MAX_EDGES)"
        )
    segments = np.asarray(file.array(SEGMENTS)[s0:s1]).astype(np.uint64)
    positions = np.asarray(file.array(POSITIONS)[s0:s1]).astype(np.int32)
    if e1 > e0:
        local = np.asarray(file.array(EDGES)[e0:e1]).astype(np.int64)
        affinities = np.asarray(file.array(AFFINITIES)[e0:e1]).astype(np.float32)
    else:
        local = np.zeros((0, 2), dtype=np.int64)
        affinities = np.zeros(0, dtype=np.float32)
    if len(local) and (local.min() < 0 or local.max() >= len(segments)):
        raise LayoutError(
            f"{file.path}/{EDGES}: an edge of agglomerate {agglomerate} names a node outside "
            f"its {len(segments)} supervoxels (edges hold indices into the agglomerate)"
        )
    return AgglomerateGraph(
        file.name, agglomerate, segments, segments[local], affinities, positions
    )


def read_mapping_table(store: Store, path: str, dtype: np.dtype[Any]) -> np.ndarray:
    """A whole supervoxel→agglomerate array as ``dtype`` (call in a thread)."""
    where = f"{path}/zarr.json"
    try:
        array = zarr.open_array(store=StorePath(store, path), mode="r")
    except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
        raise LayoutError(f"{where}: not a readable zarr array ({exc})") from None
    if len(array.shape) != 1 or array.shape[0] > MAX_MAPPING_ENTRIES:
        raise LayoutError(
            f"{where}: a mapping is a 1-D array of at most {MAX_MAPPING_ENTRIES} ids, "
            f"got shape {list(array.shape)}"
        )
    values = np.asarray(array[:])
    if np.dtype(values.dtype).kind not in "ui":
        raise LayoutError(f"{where}: data_type {values.dtype.name}: ids are integers")
    if len(values) and values.max() > np.iinfo(dtype).max:
        raise LayoutError(f"{where}: an agglomerate id does not fit the layer's {dtype.name}")
    return values.astype(dtype, copy=False)


class AgglomerateReader:
    """Reads agglomerates, in threads, keeping the graphs read under a byte budget.

    Owned by ``Volumes`` (one per server); one read per graph at a time, the
    others wait for it; least recently used graphs leave first.
    """

    def __init__(self, budget_bytes: int, max_edges: int) -> None:
        self.budget = budget_bytes
        self.max_edges = max_edges
        self.bytes = 0
        self._graphs: OrderedDict[tuple[int, int], tuple[AgglomerateFile, AgglomerateGraph]] = (
            OrderedDict()
        )
        self._inflight: dict[tuple[int, int], asyncio.Future[AgglomerateGraph]] = {}

    async def summary(self, file: AgglomerateFile) -> AgglomerateSummary:
        return await asyncio.to_thread(read_summary, file)

    async def graph(self, file: AgglomerateFile, agglomerate: int) -> AgglomerateGraph:
        key = (id(file), agglomerate)
        held = self._graphs.get(key)
        if held is not None and held[0] is file:
            self._graphs.move_to_end(key)
            return held[1]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[AgglomerateGraph] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            graph = await asyncio.to_thread(read_graph, file, agglomerate, self.max_edges)
            self._keep(key, file, graph)
            future.set_result(graph)
            return graph
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters (if any) get it too
            raise
        finally:
            del self._inflight[key]

    def _keep(self, key: tuple[int, int], file: AgglomerateFile, graph: AgglomerateGraph) -> None:
        if graph.nbytes > self.budget:
            return
        self._graphs[key] = (file, graph)
        self.bytes += graph.nbytes
        while self.bytes > self.budget:
            _, (_, old) = self._graphs.popitem(last=False)
            self.bytes -= old.nbytes

    def clear(self) -> None:
        self._graphs.clear()
        self.bytes = 0
