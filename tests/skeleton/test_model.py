"""The skeleton model: every edit validates and is one transaction."""

from __future__ import annotations

import math

import pytest
from pycrdt import Doc

from collab.skeleton.kind import SKELETON
from collab.skeleton.model import Skeleton
from collab.skeleton.schema import SkeletonError, UnknownEntity


@pytest.fixture
def sk() -> Skeleton:
    return Skeleton(SKELETON.new_doc(), bounds=((0, 0, 0), (1000, 1000, 100)))


def transactions(doc: Doc) -> list[bytes]:
    seen: list[bytes] = []
    doc.observe(lambda e: seen.append(e.update))
    return seen


def test_trees_nodes_edges(sk: Skeleton) -> None:
    t = sk.create_tree("t1", name="axon", color=[0, 1, 0, 1])
    a = sk.add_node(t, [1, 2, 3], "a", radius=2.5)
    b = sk.add_node(t, [4, 5, 6], "b", connect_to=a)
    assert sk.node(b).tree_id == "t1" and sk.node(a).radius == 2.5
    assert sk.find_edge("a", "b") == "a,b"
    sk.move_node("a", [7, 8, 9])
    assert sk.node("a").position == (7, 8, 9)
    sk.update_tree("t1", name="dendrite", metadata={"k": 1})
    assert sk.tree("t1").name == "dendrite" and sk.tree("t1").metadata == {"k": 1}


def test_each_edit_is_one_transaction(sk: Skeleton) -> None:
    sk.create_tree("t1")
    sk.add_node("t1", [1, 1, 1], "a")
    seen = transactions(sk.doc)
    sk.add_node("t1", [2, 2, 2], "b", connect_to="a")
    sk.delete_tree("t1")
    assert len(seen) == 2
    assert len(sk.nodes) == 0 and len(sk.edges) == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.add_node("nope", [1, 1, 1]),
        lambda s: s.add_node("t1", [1, 1, math.nan]),
        lambda s: s.add_node("t1", [1, 1]),
        lambda s: s.add_node("t1", [5000, 1, 1]),
        lambda s: s.add_node("t1", [1, 1, 1], "a"),
        lambda s: s.add_node("t1", [1, 1, 1], "x,y"),
        lambda s: s.connect("a", "a"),
        lambda s: s.connect("a", "ghost"),
        lambda s: s.create_tree("t2", color=[2, 0, 0, 1]),
        lambda s: s.create_tree("t2", group_id="nogroup"),
        lambda s: s.move_group("g1", "g2"),
        lambda s: s.set_comment("ghost", "hi"),
        lambda s: s.add_bounding_box([0, 0, 0], [-1, 1, 1]),
        lambda s: s.disconnect("a", "b"),
    ],
)
def test_invalid_edits_raise_and_change_nothing(sk: Skeleton, call) -> None:  # type: ignore[no-untyped-def]
    sk.create_tree("t1")
    sk.add_node("t1", [1, 1, 1], "a")
    sk.create_group("g1")
    sk.create_group("g2", parent_id="g1")
    before = sk.doc.get_update()
    with pytest.raises((SkeletonError, UnknownEntity)):
        call(sk)
    assert sk.doc.get_update() == before


def test_connect_across_trees_merges_them(sk: Skeleton) -> None:
    sk.create_tree("t1")
    sk.create_tree("t2")
    sk.add_node("t1", [1, 1, 1], "a")
    sk.add_node("t2", [2, 2, 2], "b")
    sk.add_node("t2", [3, 3, 3], "c", connect_to="b")
    sk.connect("a", "b")
    assert "t2" not in sk.trees
    assert {n.tree_id for n in sk.iter_nodes()} == {"t1"}
    assert {t for _, _, t in sk.iter_edges()} == {"t1"}


def test_deleting_a_node_splits_the_tree(sk: Skeleton) -> None:
    sk.create_tree("t1", name="axon")
    for i, node in enumerate("abcde"):
        sk.add_node("t1", [i, i, i], node, connect_to="abcde"[i - 1] if i else None)
    created = sk.delete_node("c")
    assert len(created) == 1
    assert {sk.node("a").tree_id, sk.node("b").tree_id} == {"t1"}
    assert sk.node("d").tree_id == sk.node("e").tree_id == created[0]
    assert sk.tree(created[0]).name == "axon (split)"
    assert sk.find_edge("d", "e") and sk.edges[sk.find_edge("d", "e")] == created[0]
    # Removing an edge splits too.
    assert sk.disconnect("a", "b")
    assert sk.node("a").tree_id == "t1" and sk.node("b").tree_id != "t1"


def test_groups_nest_and_refuse_cycles(sk: Skeleton) -> None:
    sk.create_group("g1", name="L4")
    sk.create_group("g2", parent_id="g1")
    sk.create_group("g3", parent_id="g2")
    with pytest.raises(SkeletonError, match="cycle"):
        sk.move_group("g1", "g3")
    sk.create_tree("t1", group_id="g2")
    sk.delete_group("g2")
    assert sk.tree("t1").group_id == "g1" and sk.group("g3").parent_id == "g1"


def test_comments_branchpoints_boxes(sk: Skeleton) -> None:
    sk.create_tree("t1")
    sk.add_node("t1", [1, 1, 1], "a")
    sk.set_comment("a", "soma")
    sk.set_branchpoint("a", 123)
    box = sk.add_bounding_box([0, 0, 0], [10, 10, 10], name="roi")
    assert sk.comments["a"] == "soma" and sk.branchpoints["a"] == 123
    assert [b.name for b in sk.iter_bounding_boxes()] == ["roi"]
    sk.delete_node("a")
    assert "a" not in sk.comments and "a" not in sk.branchpoints
    sk.delete_bounding_box(box)
    assert len(sk.bounding_boxes) == 0


def test_readers_tolerate_garbage() -> None:
    doc = SKELETON.new_doc()
    sk = Skeleton(doc)
    sk.nodes["n"] = {"treeId": 5, "position": "here", "radius": "big"}
    sk.edges["bad"] = 7
    node = sk.node("n")
    assert node.position == (0.0, 0.0, 0.0) and node.radius == 1.0 and node.tree_id == ""
    assert list(sk.iter_edges()) == []


def test_update_node_and_rename_group(sk: Skeleton) -> None:
    sk.create_tree("t1")
    sk.add_node("t1", [1, 1, 1], "a")
    sk.update_node("a", radius=4, mag=2, interpolation=True)
    node = sk.node("a")
    assert (node.radius, node.mag, node.interpolation) == (4.0, 2, True)
    with pytest.raises(SkeletonError):
        sk.update_node("a", color=[1, 1, 1, 1])
    sk.create_group("g", name="old")
    sk.rename_group("g", "new")
    assert sk.group("g").name == "new"
