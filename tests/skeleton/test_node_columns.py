"""The node columns an export reads: ``node_row`` reads any value exactly as
``Node.read`` does, and the columns keep rows of set, deleted and bulk-added
nodes in step."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from collab.skeleton.nml_tables import NodeTable
from collab.skeleton.node_columns import ColumnsCopy, NodeColumns, node_row
from collab.skeleton.schema import Node

NUMBER = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2.5, 1e300, -0.0, 2**63, 2**63 - 1, 2.0**63]),
)
ODD = st.one_of(st.none(), st.booleans(), st.text(max_size=3), NUMBER)
VALUE = st.one_of(NUMBER, ODD, st.lists(NUMBER, max_size=4))
NODE = st.one_of(
    ODD,
    st.fixed_dictionaries(
        {
            "treeId": st.one_of(st.text(max_size=3), ODD),
            "position": st.lists(NUMBER, min_size=3, max_size=3),
        },
        optional={
            "radius": VALUE,
            "rotation": st.one_of(st.lists(NUMBER, min_size=3, max_size=3), VALUE),
            "viewport": VALUE,
            "mag": VALUE,
            "bitDepth": VALUE,
            "interpolation": VALUE,
            "time": VALUE,
        },
    ),
)


def _read(value: Any) -> tuple[Any, ...]:
    n = Node.read("", value)
    return (n.tree_id, *n.position, n.radius, *n.rotation, n.viewport, n.mag, n.bit_depth,
            n.interpolation, n.time)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(NODE)
def test_node_row_reads_like_the_tolerant_reader(value: Any) -> None:
    expected = _read(value)
    row = node_row(value)
    assert row[0] == expected[0]
    columns = NodeColumns(capacity=1)
    columns.set("n", row)  # every row fits the columns' types
    stored = columns.copy()
    assert stored.floats[0].tolist() == list(expected[1:8])
    assert stored.ints[0].tolist() == [*expected[8:11], expected[12]]
    assert bool(stored.interpolation[0]) is expected[11]


def test_rows_are_reused_and_copies_hold_live_rows_only() -> None:
    columns = NodeColumns(capacity=2)
    for k in range(5):
        columns.set(f"n{k}", node_row({"treeId": "t", "position": [k, k, k], "time": k}))
    columns.delete("n1")
    columns.delete("n3")
    columns.delete("missing")
    columns.set("n2", node_row({"treeId": "t", "position": [9, 9, 9], "radius": 3}))
    copy = columns.copy()
    assert copy.ids == ["n0", "n2", "n4"] and len(columns) == 3
    assert copy.floats[:, 0].tolist() == [0, 9, 4] and copy.floats[1, 3] == 3
    columns.set("n5", node_row({"treeId": "t", "position": [5, 5, 5]}))  # takes a freed row
    assert len(columns.ids) == 5 and sorted(columns.copy().ids) == ["n0", "n2", "n4", "n5"]
    table = NodeTable.from_nodes([])
    columns.add_table([], table)
    n = 3
    bulk = NodeTable(
        np.arange(n), *(np.full(n, 2.0) for _ in range(7)),
        *(np.full(n, 4, np.int64) for _ in range(3)), np.ones(n, bool), np.arange(n),
    )  # fmt: skip
    columns.add_table(["b0", "b1", "b2"], bulk)
    copy = columns.copy()
    assert copy.ids[-3:] == ["b0", "b1", "b2"] and copy.ints[-1].tolist() == [4, 4, 4, 2]
    again = ColumnsCopy.of_rows(["n0", "c"], [node_row({"treeId": "t", "position": [1, 1, 1]})] * 2)
    columns.add(again.ids, again.floats, again.ints, again.interpolation)  # one exists
    assert columns.copy().floats[0, 0] == 1 and len(columns) == 8
    assert "c" in columns.copy().ids  # in a freed row
