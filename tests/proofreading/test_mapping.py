"""The editable mapping (collab/proofreading/mapping.py): merges and splits
over a base graph, deterministic from the ops alone."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from collab.errors import Conflict, PayloadTooLarge, Unprocessable
from collab.proofreading.mapping import EditableMapping


class ArrayBase:
    """A base from arrays (what collab/volume/agglomerates.py reads from an
    agglomerate file): supervoxel → agglomerate, and edges with affinities."""

    def __init__(self, mapping: list[int], edges: list[tuple[int, int, float]]) -> None:
        self.mapping = np.array(mapping, dtype=np.uint64)
        self.edges = edges
        self.largest = int(self.mapping.max())

    def agglomerates_of(self, segments: np.ndarray) -> np.ndarray:
        inside = segments < len(self.mapping)
        out = np.zeros(len(segments), dtype=np.uint64)
        out[inside] = self.mapping[segments[inside].astype(np.int64)]
        return out

    def graph(self, agglomerate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nodes = np.flatnonzero(self.mapping == agglomerate).astype(np.uint64)
        if agglomerate == 0:
            nodes = nodes[:0]
        mine = [(a, b, w) for a, b, w in self.edges if self.mapping[a] == agglomerate]
        return (
            nodes,
            np.array([(a, b) for a, b, _ in mine], dtype=np.uint64).reshape(-1, 2),
            np.array([w for *_, w in mine], dtype=np.float32),
        )


def chain() -> ArrayBase:
    # Agglomerate 1: 1-2-3-4 (weak 2-3); agglomerate 2: 5-6; 7 alone (3).
    return ArrayBase([0, 1, 1, 1, 1, 2, 2, 3], [(1, 2, 0.9), (2, 3, 0.1), (3, 4, 0.8), (5, 6, 0.7)])


def test_merge_moves_the_second_agglomerate_into_the_first() -> None:
    m = EditableMapping(chain())
    assert m.check_merge(4, 6) == (1, 2)
    changes = m.apply({"kind": "merge", "a": 4, "b": 6, "seq": 1})
    assert changes == {5: 1, 6: 1}
    assert m.agglomerates_of([1, 5, 6, 7]) == [1, 1, 1, 3]
    assert sorted(m.graph(1).nodes.tolist()) == [1, 2, 3, 4, 5, 6]
    assert m.graph(1).has_edge(6, 4) and len(m.graph(2).nodes) == 0
    try:
        m.check_merge(1, 5)
    except Conflict as exc:
        assert "already" in str(exc)
    else:
        raise AssertionError("a merge within one agglomerate passed")


def test_split_removes_the_cut_and_numbers_the_new_part() -> None:
    m = EditableMapping(chain())
    assert m.check_split([1], [4]) == 1
    changes = m.apply({"kind": "split", "sources": [1], "sinks": [4], "cut": [[2, 3]], "seq": 1})
    new = 3 + 65536 + 1  # the op's own id: the base's largest + seq · 2^16 + 1
    assert changes == {3: new, 4: new}
    assert m.agglomerates_of([1, 2, 3, 4]) == [1, 1, new, new]
    # A cut that leaves it whole changes no id.
    assert m.apply({"kind": "split", "sources": [1], "sinks": [2], "cut": [[5, 6]], "seq": 2}) == {}


def test_refusals() -> None:
    m = EditableMapping(chain())
    for call in (
        lambda: m.check_merge(1, 99),
        lambda: m.check_split([1], [1]),
        lambda: m.check_split([], [2]),
        lambda: m.check_split([1], [99]),
    ):
        try:
            call()
        except Unprocessable:
            continue
        raise AssertionError("refusal expected")
    try:
        m.check_split([1], [5])
    except Conflict as exc:
        assert "different agglomerates" in str(exc)
    else:
        raise AssertionError("a split across agglomerates passed")


ops_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("merge"), st.integers(1, 11), st.integers(1, 11)),
        st.tuples(st.just("split"), st.integers(1, 11), st.integers(1, 11)),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(ops=ops_strategy, drop=st.sets(st.integers(0, 11)))
def test_the_mapping_is_a_function_of_the_standing_ops(
    ops: list[tuple[str, int, int]], drop: set[int]
) -> None:
    """Applying ops one by one, then dropping some (undo) and replaying the
    rest from the base, gives every agglomerate exactly the supervoxels that
    map to it, each connected."""
    base = ArrayBase(
        [0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 5],
        [(1, 2, 0.5), (2, 3, 0.2), (4, 5, 0.9), (5, 6, 0.3), (7, 8, 0.6), (10, 11, 0.4)],
    )
    written = []
    m = EditableMapping(base)
    for seq, (kind, a, b) in enumerate(ops, 1):
        if kind == "merge":
            op = {"kind": "merge", "a": a, "b": b, "seq": seq}
        else:
            if m.agglomerate_of(a) != m.agglomerate_of(b) or a == b:
                continue
            g = m.graph(m.agglomerate_of(a))
            # Cut every edge at a: a stand-in for the minimum cut.
            cut = [[int(x), int(y)] for x, y in g.edges.tolist() if a in (x, y)]
            op = {"kind": "split", "sources": [a], "sinks": [b], "cut": cut, "seq": seq}
        m.apply(op)
        written.append(op)
    for mapping in (m, _replayed(base, [op for i, op in enumerate(written) if i not in drop])):
        ids = mapping.agglomerates_of(range(1, 12))
        for agg in set(ids):
            g = mapping.graph(agg)
            members = sorted(s for s, i in zip(range(1, 12), ids, strict=True) if i == agg)
            assert sorted(g.nodes.tolist()) == members
            assert g.parts()[0] == 1
    assert _replayed(base, written).agglomerates_of(range(1, 12)) == m.agglomerates_of(range(1, 12))


def _replayed(base: ArrayBase, ops: list[dict]) -> EditableMapping:
    m = EditableMapping(base)
    for op in sorted(ops, key=lambda o: o["seq"]):
        m.apply(op)
    return m


def test_a_merge_past_the_graph_limit_is_refused() -> None:
    base = chain()
    base.max_edges = 5  # type: ignore[attr-defined]
    m = EditableMapping(base)
    try:
        m.check_merge(1, 5)  # 4 + 2 supervoxels, 3 + 1 + 1 edges: 6 > 5
    except PayloadTooLarge as exc:
        assert "COLLAB_AGGLOMERATE_MAX_EDGES" in str(exc)
    else:
        raise AssertionError("a merge past the limit passed")
    assert m.check_merge(5, 7) == (2, 3)  # 3 supervoxels: within it
