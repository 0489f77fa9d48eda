"""Graph algorithms of proofreading on a graph given as arrays — pure.

A graph is ``nodes`` (supervoxel ids, unique integers) and ``edges`` (an
``(E, 2)`` array of node ids, undirected; a pair may repeat, a self-loop is
ignored), with one affinity per edge for cuts.

* :func:`components`: which connected piece each node is in.
* :func:`min_cut`: the edges a split removes — a minimum-weight set of edges
  whose removal leaves no path from any source to any sink.

**Weights.** Maximum flow needs integer capacities (scipy's are int32, and
so must be every sum of them), so each affinity ``a`` becomes

    w = 1 + floor(a / max(a) · (U − 1)),   U = min(2²⁰, floor((2³¹ − 1) / (E + 1)))

where ``max(a)`` is the largest affinity of the graph (NaN and negative
count as 0, +∞ as the largest finite one). Every edge costs at least 1: among
cuts of equal affinity the one with fewer edges wins, and an affinity-0
edge is never cut for free. The scale is relative, so multiplying all
affinities by a constant changes no cut; resolution is 2⁻²⁰ of the largest
affinity for graphs up to 2,047 edges and 1/2,147 of it at 10⁶ edges.

**Which minimum cut.** Among all cuts of minimum weight, the one whose
source side is smallest: the nodes reachable from the sources in the
residual graph of a maximum flow. That set is the same for every maximum
flow (it is the intersection of the source sides of all minimum cuts), so
the answer depends only on the graph — not on the order of its edges or
nodes, nor on the algorithm. Every cut edge is needed: with positive
weights, keeping any one of them would join a source to a sink.

scipy.sparse.csgraph does the work (Dinic's algorithm, in C): measured
against networkx and python-igraph in docs/performance.md ("Proofreading").
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, connected_components, maximum_flow

from collab.errors import InvalidGraph

#: Finest capacity step (as a fraction of the largest affinity) used for small graphs.
MAX_UNIT = 1 << 20
#: scipy's flows are int32: every capacity sum must stay below this.
INT32_MAX = (1 << 31) - 1
#: scipy's maximum-flow algorithm (docs/performance.md, "Proofreading").
FLOW_METHOD = "dinic"


def _indexed(nodes: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(nodes sorted, each input node's position there, edges as positions)."""
    nodes = np.asarray(nodes)
    edges = np.asarray(edges)
    if nodes.ndim != 1 or (len(nodes) and nodes.dtype.kind not in "ui"):
        raise InvalidGraph("nodes must be a 1-D array of integer ids")
    if edges.size == 0:
        edges = np.zeros((0, 2), dtype=np.uint64)
    if edges.ndim != 2 or edges.shape[1] != 2 or edges.dtype.kind not in "ui":
        raise InvalidGraph("edges must be an (n, 2) array of node ids")
    if len(nodes) < 2 or bool(np.all(nodes[1:] > nodes[:-1])):
        # Already ascending, as agglomerate files store them.
        return nodes, np.arange(len(nodes)), _positions(nodes, edges, "an edge")
    order = np.argsort(nodes, kind="stable")
    ordered = nodes[order]
    if np.any(ordered[1:] == ordered[:-1]):
        raise InvalidGraph("a node is listed twice")
    position = np.empty(len(nodes), dtype=np.int64)
    position[order] = np.arange(len(nodes))
    return ordered, position, _positions(ordered, edges, "an edge")


def _positions(ordered: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
    """Where each of ``ids`` is in ``ordered``; InvalidGraph for one not there."""
    ids = np.asarray(ids)
    if ids.size and ids.dtype.kind not in "ui":
        raise InvalidGraph(f"{what} must be integer ids")
    if ids.size and (ids.dtype.kind == "i" and ids.min() < 0):
        raise InvalidGraph(f"{what} names a node that is not in the graph")
    if ordered.size == 0:
        if ids.size:
            raise InvalidGraph(f"{what} names a node that is not in the graph")
        return np.zeros(ids.shape, dtype=np.int64)
    found = np.searchsorted(ordered, ids.astype(ordered.dtype, copy=False))
    clipped = np.minimum(found, len(ordered) - 1)
    if ids.size and not np.array_equal(ordered[clipped], ids.astype(ordered.dtype, copy=False)):
        raise InvalidGraph(f"{what} names a node that is not in the graph")
    return clipped.astype(np.int64)


def components(nodes: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The connected component of each node (aligned with ``nodes``),
    numbered 0, 1, … in the order of each component's smallest node id."""
    ordered, position, local = _indexed(nodes, edges)
    n = len(ordered)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    adjacency = sp.csr_array(
        (np.ones(len(local), dtype=np.int8), (local[:, 0], local[:, 1])), shape=(n, n)
    )
    _, labels = connected_components(adjacency, directed=False)
    return labels.astype(np.int64)[position]


def capacities(affinities: np.ndarray) -> np.ndarray:
    """The integer weight of each edge (module docstring), int64."""
    a = np.asarray(affinities, dtype=np.float64).reshape(-1)
    unit = min(MAX_UNIT, INT32_MAX // (len(a) + 1))
    if unit < 1:
        raise InvalidGraph(f"{len(a)} edges are too many for one cut")
    finite = np.isfinite(a)
    top = float(a[finite].max()) if finite.any() else 0.0
    a = np.where(np.isnan(a) | (a < 0), 0.0, a)
    a = np.where(np.isposinf(a), top, a)
    if top <= 0:
        return np.ones(len(a), dtype=np.int64)
    return 1 + np.floor(a / top * (unit - 1)).astype(np.int64)


def min_cut(
    nodes: np.ndarray,
    edges: np.ndarray,
    affinities: np.ndarray,
    sources: np.ndarray,
    sinks: np.ndarray,
    local: np.ndarray | None = None,
) -> np.ndarray:
    """Indices into ``edges`` (ascending) of the minimum cut separating every
    source from every sink (module docstring: weights and which cut).

    Refuses (InvalidGraph) sources or sinks not in the graph, none of
    either, and a node that is both. Sources and sinks in different
    components give an empty cut. ``local``: the edges as positions in
    ``nodes`` (ascending, unique), where the caller has them already.
    """
    if local is None:
        ordered, _, local = _indexed(nodes, edges)
    else:  # the caller's: nodes ascending, edges as positions in them
        ordered = np.asarray(nodes)
    weights = capacities(affinities)
    if len(weights) != len(local):
        raise InvalidGraph(f"{len(local)} edges but {len(weights)} affinities")
    source_at = np.unique(_positions(ordered, np.asarray(sources).reshape(-1), "a source"))
    sink_at = np.unique(_positions(ordered, np.asarray(sinks).reshape(-1), "a sink"))
    if len(source_at) == 0 or len(sink_at) == 0:
        raise InvalidGraph("a cut needs at least one source and one sink")
    if np.intersect1d(source_at, sink_at).size:
        raise InvalidGraph("a node is both a source and a sink")
    n = len(ordered)
    # Sources become one vertex s = n, sinks one vertex t = n + 1.
    vertex = np.arange(n + 2, dtype=np.int64)
    vertex[source_at] = n
    vertex[sink_at] = n + 1
    u, v = vertex[local[:, 0]], vertex[local[:, 1]]
    keep = u != v
    u, v, w = u[keep], v[keep], weights[keep]
    if len(u) == 0:
        side = np.zeros(n, dtype=bool)
        side[source_at] = True
        return _crossing(local, side)
    capacity = sp.csr_array(
        (
            np.concatenate([w, w]).astype(np.int32),
            (np.concatenate([u, v]), np.concatenate([v, u])),
        ),
        shape=(n + 2, n + 2),
    )
    capacity.sum_duplicates()
    flow = maximum_flow(capacity, n, n + 1, method=FLOW_METHOD).flow
    # Residual arcs: capacity minus flow, both ways of every undirected pair
    # (scipy answers the flow on the capacity's own sparsity pattern).
    if np.array_equal(flow.indptr, capacity.indptr) and np.array_equal(
        flow.indices, capacity.indices
    ):
        residual = capacity.data.astype(np.int64) - flow.data
        reach = sp.csr_array(
            ((residual > 0).astype(np.int8), capacity.indices, capacity.indptr),
            shape=capacity.shape,
        )
        reach.eliminate_zeros()
    else:  # pragma: no cover - another scipy's layout
        coo = capacity.tocoo()
        residual = coo.data.astype(np.int64) - np.asarray(flow[coo.row, coo.col]).ravel()
        arcs = residual > 0
        reach = sp.csr_array(
            (np.ones(int(arcs.sum()), dtype=np.int8), (coo.row[arcs], coo.col[arcs])),
            shape=capacity.shape,
        )
    reached = breadth_first_order(reach, n, directed=True, return_predecessors=False)
    on_source_side = np.zeros(n + 2, dtype=bool)
    on_source_side[reached] = True
    return _crossing(local, on_source_side[vertex[:n]])


def _crossing(local: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Edges with one end on each side (self-loops never)."""
    return np.flatnonzero(side[local[:, 0]] != side[local[:, 1]]).astype(np.int64)
