"""components and min_cut against brute force on small graphs (hypothesis):
the cut weighs the minimum, separates every source from every sink, is the
one with the smallest source side, and does not depend on edge or node order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collab.errors import InvalidGraph
from collab.proofreading.graph import capacities, components, min_cut


@st.composite
def graphs(draw: st.DrawFn, max_nodes: int = 9) -> dict:
    n = draw(st.integers(2, max_nodes))
    ids = draw(
        st.lists(st.integers(1, 2**64 - 1), min_size=n, max_size=n, unique=True)
        | st.lists(st.integers(1, 40), min_size=n, max_size=n, unique=True)
    )
    pairs = st.tuples(st.sampled_from(ids), st.sampled_from(ids))
    edges = draw(st.lists(pairs, max_size=3 * n))
    # Few distinct values make ties; floats make everything else.
    affinity = st.sampled_from([0.0, 0.25, 1.0]) | st.floats(0, 1) | st.floats(0, 300)
    affinities = draw(st.lists(affinity, min_size=len(edges), max_size=len(edges)))
    seeds = draw(st.permutations(ids))
    k = draw(st.integers(2, n))
    split = draw(st.integers(1, k - 1))
    return {
        "nodes": np.array(ids, dtype=np.uint64),
        "edges": np.array(edges, dtype=np.uint64).reshape(-1, 2),
        "affinities": np.array(affinities, dtype=np.float32),
        "sources": np.array(seeds[:split], dtype=np.uint64),
        "sinks": np.array(seeds[split:k], dtype=np.uint64),
    }


def _brute_force(g: dict) -> tuple[int, set[int]]:
    """(minimum cut weight, the cut edges of the smallest minimum source side)."""
    w = capacities(g["affinities"])
    sources = set(g["sources"].tolist())
    sinks = set(g["sinks"].tolist())
    free = [x for x in g["nodes"].tolist() if x not in sources and x not in sinks]
    edges = g["edges"].tolist()
    found: list[tuple[int, frozenset[int], set[int]]] = []
    for r in range(len(free) + 1):
        for extra in itertools.combinations(free, r):
            side = frozenset(sources | set(extra))
            cut = {i for i, (a, b) in enumerate(edges) if (a in side) != (b in side)}
            found.append((int(sum(w[i] for i in cut)), side, cut))
    weight = min(f[0] for f in found)
    minimum = [f for f in found if f[0] == weight]
    # The intersection of all minimum source sides is itself one: the smallest.
    smallest = frozenset.intersection(*(f[1] for f in minimum))
    (cut,) = [f[2] for f in minimum if f[1] == smallest]
    return weight, cut


def _separated(g: dict, cut: np.ndarray) -> bool:
    keep = np.ones(len(g["edges"]), dtype=bool)
    keep[cut] = False
    labels = components(g["nodes"], g["edges"][keep])
    index = {int(x): i for i, x in enumerate(g["nodes"].tolist())}
    source_labels = {labels[index[int(s)]] for s in g["sources"]}
    return not any(labels[index[int(t)]] in source_labels for t in g["sinks"])


@settings(max_examples=200, deadline=None)
@given(graphs())
def test_min_cut_is_the_brute_force_minimum(g: dict) -> None:
    cut = min_cut(g["nodes"], g["edges"], g["affinities"], g["sources"], g["sinks"])
    weight, want = _brute_force(g)
    w = capacities(g["affinities"])
    assert int(w[cut].sum()) == weight
    assert set(cut.tolist()) == want
    assert list(cut) == sorted(cut)
    assert _separated(g, cut)
    # Each cut edge is needed: putting any one back joins a source to a sink.
    for i in cut.tolist():
        assert not _separated(g, cut[cut != i])


@settings(max_examples=200, deadline=None)
@given(graphs(), st.randoms(use_true_random=False))
def test_min_cut_ignores_order(g: dict, rnd) -> None:
    """Edges shuffled and turned around, nodes and seeds shuffled: the same
    edges are cut. Sources and sinks swapped: a cut of the same weight."""
    cut = min_cut(g["nodes"], g["edges"], g["affinities"], g["sources"], g["sinks"])
    order = list(range(len(g["edges"])))
    rnd.shuffle(order)
    edges = g["edges"][order]
    if rnd.random() < 0.5:
        edges = edges[:, ::-1]
    nodes = g["nodes"].copy()
    rnd.shuffle(nodes)
    affinities = g["affinities"][order]
    again = min_cut(nodes, edges, affinities, g["sources"][::-1], g["sinks"][::-1])
    assert sorted(order[i] for i in again.tolist()) == cut.tolist()
    w = capacities(g["affinities"])
    swapped = min_cut(nodes, edges, affinities, g["sinks"], g["sources"])
    assert w[[order[i] for i in swapped.tolist()]].sum() == w[cut].sum()


@settings(max_examples=200, deadline=None)
@given(graphs())
def test_components_match_brute_force(g: dict) -> None:
    labels = components(g["nodes"], g["edges"])
    parent = {x: x for x in g["nodes"].tolist()}

    def root(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in g["edges"].tolist():
        parent[root(a)] = root(b)
    nodes = g["nodes"].tolist()
    for i, j in itertools.combinations(range(len(nodes)), 2):
        assert (labels[i] == labels[j]) == (root(nodes[i]) == root(nodes[j]))
    # Numbered by each component's smallest id.
    smallest: dict[int, int] = {}
    for x, label in zip(nodes, labels.tolist(), strict=True):
        smallest[label] = min(smallest.get(label, x), x)
    assert sorted(smallest, key=smallest.__getitem__) == list(range(len(smallest)))


def test_min_cut_example() -> None:
    nodes = np.array([10, 11, 12, 13, 14])
    edges = np.array([(10, 11), (11, 12), (12, 13), (13, 14), (10, 14)])
    affinities = np.array([1.0, 0.1, 1.0, 1.0, 0.2])
    assert min_cut(nodes, edges, affinities, [10], [12]).tolist() == [1, 4]
    # Scaling every affinity changes nothing.
    assert min_cut(nodes, edges, affinities * 250, [10], [12]).tolist() == [1, 4]
    # Sources and sinks in different components: nothing to cut.
    assert min_cut(nodes, edges[[0, 2]], affinities[[0, 2]], [10], [12]).tolist() == []
    # Ties: equal affinities, the cut nearest the sources.
    chain = np.array([(1, 2), (2, 3), (3, 4)])
    assert min_cut(np.arange(1, 5), chain, np.ones(3), [1], [4]).tolist() == [0]
    assert min_cut(np.arange(1, 5), chain, np.ones(3), [4], [1]).tolist() == [2]


def test_min_cut_refusals() -> None:
    nodes = np.array([1, 2, 3])
    edges = np.array([(1, 2), (2, 3)])
    affinities = np.ones(2)
    for sources, sinks, message in [
        ([9], [3], "not in the graph"),
        ([1], [9], "not in the graph"),
        ([1, 2], [2], "both"),
        ([], [3], "at least one"),
        ([1], [], "at least one"),
        ([-1], [3], "not in the graph"),
    ]:
        with pytest.raises(InvalidGraph, match=message):
            min_cut(nodes, edges, affinities, np.array(sources, dtype=np.int64), sinks)
    with pytest.raises(InvalidGraph, match="affinities"):
        min_cut(nodes, edges, np.ones(3), [1], [3])
    with pytest.raises(InvalidGraph, match="twice"):
        min_cut(np.array([1, 1, 3]), edges, affinities, [1], [3])
    with pytest.raises(InvalidGraph, match="not in the graph"):
        components(nodes, np.array([(1, 7)]))
    assert InvalidGraph.status == 422


def test_capacities() -> None:
    w = capacities(np.array([0.0, 0.5, 1.0, np.nan, -3.0, np.inf]))
    assert w.tolist() == [1, 1 + (2**20 - 1) // 2, 2**20, 1, 1, 2**20]
    assert capacities(np.zeros(3)).tolist() == [1, 1, 1]
    # The int32 budget: every capacity sum of a million edges fits.
    big = capacities(np.ones(1_000_000))
    assert int(big.sum()) < 2**31
