"""Minimum cut and connected components on one 10,000-supervoxel agglomerate:
collab's scipy implementation (collab/proofreading/graph.py) against networkx
and python-igraph, p50/p99 over many runs.

    python -m tests.benchmarks.mincut [--runs 100] [--nodes 10000]

networkx and igraph are not collab dependencies (igraph is GPL): run it with
a Python that has them, e.g. a venv with numpy, scipy, networkx and igraph
and the repository on PYTHONPATH; a library that is missing is reported as
such. Each timing includes building that library's graph from the arrays
(the form collab keeps graphs in).

The agglomerate: supervoxels on a jittered 3D grid (22 × 22 × 21), joined to
their face neighbours, a few edges dropped and diagonals added (6 edges per
supervoxel on average, like a watershed's adjacency). Two cases:

* merge: two cells merged along a wavy boundary, high affinities inside
  each (0.6-1.0), low across (0-0.15) — the split a proofreader makes;
* noisy: affinities uniform in [0, 1] — no clear boundary, more flow work.

One source and one sink: a supervoxel deep in each cell.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from collab.proofreading.graph import capacities, components, min_cut


def machine() -> str:
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except OSError:
        mem = 0
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def agglomerate(nodes: int, case: str, seed: int = 3) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    side = round(nodes ** (1 / 3))
    shape = (side, side, -(-nodes // (side * side)))
    grid = np.arange(np.prod(shape)).reshape(shape)
    ids = grid.ravel()[:nodes]
    pairs = []
    for axis in range(3):
        a = np.moveaxis(grid, axis, 0)
        pairs.append(np.stack([a[:-1].ravel(), a[1:].ravel()], axis=1))
    edges = np.concatenate(pairs)
    edges = edges[(edges < nodes).all(axis=1)]
    edges = edges[rng.random(len(edges)) > 0.05]
    # Diagonals within xy planes, to bring the mean degree to ~6.
    x, y, z = np.unravel_index(ids, shape)
    ok = (x + 1 < shape[0]) & (y + 1 < shape[1])
    diag = np.stack([ids[ok], np.ravel_multi_index((x[ok] + 1, y[ok] + 1, z[ok]), shape)], axis=1)
    diag = diag[(diag < nodes).all(axis=1)]
    diag = diag[rng.random(len(diag)) < 0.15]
    edges = np.concatenate([edges, diag]).astype(np.uint64) + 1000  # ids are not indices
    boundary = shape[0] / 2 + 2 * np.sin(y / 3.0) + 1.5 * np.cos(z / 4.0)
    cell = (x >= boundary).astype(np.int8)
    ends = (edges - 1000).astype(np.int64)
    across = cell[ends[:, 0]] != cell[ends[:, 1]]
    if case == "merge":
        # The two cells touch through a small patch (the merger), nowhere else.
        cy, cz = shape[1] // 2, shape[2] // 2
        patch = (np.abs(y[ends[:, 0]] - cy) <= 2) & (np.abs(z[ends[:, 0]] - cz) <= 2)
        keep = ~across | patch
        # A supervoxel left without an edge keeps one (the agglomerate stays whole).
        degree = np.bincount(ends[keep].ravel(), minlength=nodes)
        for lonely in np.flatnonzero(degree == 0).tolist():
            keep[np.flatnonzero((ends == lonely).any(axis=1))[0]] = True
        edges, ends, across = edges[keep], ends[keep], across[keep]
    if case == "merge":
        affinities = np.where(
            across, rng.uniform(0, 0.15, len(edges)), rng.uniform(0.6, 1, len(edges))
        )
    else:
        affinities = rng.uniform(0, 1, len(edges))
    source = 1000 + np.ravel_multi_index((1, shape[1] // 2, shape[2] // 2), shape)
    sink = 1000 + np.ravel_multi_index((shape[0] - 2, shape[1] // 2, shape[2] // 2), shape)
    return {
        "nodes": (ids + 1000).astype(np.uint64),
        "edges": edges,
        "affinities": affinities.astype(np.float32),
        "source": int(source),
        "sink": int(sink),
    }


# -- the libraries ----------------------------------------------------------


def scipy_cut(g: dict[str, Any]) -> tuple[set[int], int]:
    cut = min_cut(g["nodes"], g["edges"], g["affinities"], [g["source"]], [g["sink"]])
    return set(cut.tolist()), int(capacities(g["affinities"])[cut].sum())


def scipy_components(g: dict[str, Any]) -> int:
    return int(components(g["nodes"], g["edges"]).max()) + 1


def _nx_graph(g: dict[str, Any]) -> Any:
    import networkx as nx

    w = capacities(g["affinities"]).tolist()
    graph = nx.DiGraph()
    graph.add_nodes_from(g["nodes"].tolist())
    for (a, b), c in zip(g["edges"].tolist(), w, strict=True):
        graph.add_edge(a, b, capacity=c)
        graph.add_edge(b, a, capacity=c)
    return graph


def networkx_cut(flow_func_name: str) -> Callable[[dict[str, Any]], tuple[set[int], int]]:
    def run(g: dict[str, Any]) -> tuple[set[int], int]:
        import networkx as nx
        from networkx.algorithms import flow

        graph = _nx_graph(g)
        value, (reachable, _) = nx.minimum_cut(
            graph, g["source"], g["sink"], flow_func=getattr(flow, flow_func_name)
        )
        side = np.isin(g["edges"], np.fromiter(reachable, dtype=np.uint64))
        return set(np.flatnonzero(side[:, 0] != side[:, 1]).tolist()), int(value)

    return run


def networkx_components(g: dict[str, Any]) -> int:
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(g["nodes"].tolist())
    graph.add_edges_from(g["edges"].tolist())
    return nx.number_connected_components(graph)


def _index(g: dict[str, Any]) -> np.ndarray:
    return np.searchsorted(np.sort(g["nodes"]), g["edges"]).astype(np.int64)


def igraph_cut(g: dict[str, Any]) -> tuple[set[int], int]:
    import igraph

    local = _index(g)
    order = np.sort(g["nodes"])
    graph = igraph.Graph(n=len(order), edges=local.tolist(), directed=False)
    w = capacities(g["affinities"])
    s = int(np.searchsorted(order, g["source"]))
    t = int(np.searchsorted(order, g["sink"]))
    cut = graph.mincut(s, t, capacity=w.tolist())
    return set(cut.cut), int(cut.value)


def ortools_cut(g: dict[str, Any]) -> tuple[set[int], int]:
    from ortools.graph.python import max_flow

    order = np.sort(g["nodes"])
    local = _index(g)
    w = capacities(g["affinities"])
    solver = max_flow.SimpleMaxFlow()
    solver.add_arcs_with_capacity(
        np.concatenate([local[:, 0], local[:, 1]]),
        np.concatenate([local[:, 1], local[:, 0]]),
        np.concatenate([w, w]),
    )
    s = int(np.searchsorted(order, g["source"]))
    t = int(np.searchsorted(order, g["sink"]))
    assert solver.solve(s, t) == solver.OPTIMAL
    side = np.zeros(len(order), dtype=bool)
    side[solver.get_source_side_min_cut()] = True
    return set(np.flatnonzero(side[local[:, 0]] != side[local[:, 1]]).tolist()), int(
        solver.optimal_flow()
    )


def pymaxflow_cut(g: dict[str, Any]) -> tuple[set[int], int]:
    import maxflow

    order = np.sort(g["nodes"])
    local = _index(g)
    w = capacities(g["affinities"])
    graph = maxflow.Graph[int](len(order), len(local))
    graph.add_nodes(len(order))
    graph.add_edges(local[:, 0], local[:, 1], w, w)
    graph.add_tedge(int(np.searchsorted(order, g["source"])), 1 << 30, 0)
    graph.add_tedge(int(np.searchsorted(order, g["sink"])), 0, 1 << 30)
    value = graph.maxflow()
    side = ~graph.get_grid_segments(np.arange(len(order)))
    return set(np.flatnonzero(side[local[:, 0]] != side[local[:, 1]]).tolist()), int(value)


def igraph_components(g: dict[str, Any]) -> int:
    import igraph

    graph = igraph.Graph(n=len(g["nodes"]), edges=_index(g).tolist(), directed=False)
    return len(graph.connected_components())


def available(module: str) -> str | None:
    try:
        found = __import__(module)
    except ImportError:
        return None
    return str(getattr(found, "__version__", "?"))


def timed(
    fn: Callable[[dict[str, Any]], Any], g: dict[str, Any], runs: int
) -> tuple[list[float], Any]:
    result = fn(g)  # warm up (imports, caches)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn(g)
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def pct(times: list[float], p: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=10_000)
    args = parser.parse_args()
    import scipy

    print(f"machine: {machine()}")
    versions = {
        "scipy": scipy.__version__,
        "networkx": available("networkx"),
        "igraph": available("igraph"),
        "ortools": available("ortools"),
        "maxflow": available("maxflow"),
    }
    print("versions:", ", ".join(f"{k} {v or 'missing'}" for k, v in versions.items()))
    rows: list[tuple[str, str, str, float, float, str]] = []
    for case in ("merge", "noisy"):
        g = agglomerate(args.nodes, case)
        print(
            f"\n{case}: {len(g['nodes'])} supervoxels, {len(g['edges'])} edges "
            f"({2 * len(g['edges']) / len(g['nodes']):.2f} per supervoxel)"
        )
        reference: tuple[set[int], int] | None = None
        cuts: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
            ("scipy (collab)", scipy_cut, "scipy"),
            ("networkx preflow_push", networkx_cut("preflow_push"), "networkx"),
            ("networkx boykov_kolmogorov", networkx_cut("boykov_kolmogorov"), "networkx"),
            ("igraph", igraph_cut, "igraph"),
            ("ortools (Apache-2.0)", ortools_cut, "ortools"),
            ("PyMaxflow (GPL)", pymaxflow_cut, "maxflow"),
        ]
        for label, fn, module in cuts:
            if versions[module] is None:
                continue
            runs = args.runs if module != "networkx" else max(50, args.runs // 2)
            times, (cut, weight) = timed(fn, g, runs)
            note = f"cut {len(cut)} edges, weight {weight}"
            if reference is None:
                reference = (cut, weight)
            else:
                assert weight == reference[1], (label, weight, reference[1])
                note += ", same edges" if cut == reference[0] else ", other edges (same weight)"
            rows.append((case, "min_cut", label, pct(times, 50), pct(times, 99), note))
            print(
                f"  min_cut {label:28} p50 {pct(times, 50):8.2f} ms  p99 {pct(times, 99):8.2f} ms  {note}"
            )
        for label, fn, module in [
            ("scipy (collab)", scipy_components, "scipy"),
            ("networkx", networkx_components, "networkx"),
            ("igraph", igraph_components, "igraph"),
        ]:
            if versions[module] is None:
                continue
            times, count = timed(fn, g, args.runs)
            rows.append((case, "components", label, pct(times, 50), pct(times, 99), f"{count}"))
            print(
                f"  components {label:25} p50 {pct(times, 50):8.2f} ms  "
                f"p99 {pct(times, 99):8.2f} ms  {count} component(s)"
            )
    print(
        "\n| case | function | library | p50 ms | p99 ms | note |\n| --- | --- | --- | --- | --- | --- |"
    )
    for case, fn_name, label, p50, p99, note in rows:
        print(f"| {case} | {fn_name} | {label} | {p50:.2f} | {p99:.2f} | {note} |")
    print(
        f"\nruns: {args.runs} (networkx min_cut: {max(50, args.runs // 2)}); "
        f"median of all runs: {statistics.median(r[3] for r in rows):.2f} ms"
    )


if __name__ == "__main__":
    main()
