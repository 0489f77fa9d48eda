"""Invariant repair: unit cases for each rule, and a property test — random
concurrent edits on two or three replicas, merged in random orders, always
converge to one document that satisfies every invariant after repair."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc

from collab.document.content import TouchRecorder, to_json
from collab.skeleton import nml as nmlmod
from collab.skeleton.convert import Existing, build_import
from collab.skeleton.kind import SKELETON
from collab.skeleton.model import Skeleton
from collab.skeleton.repair import RECOVERED, SkeletonIndex, apply, plan, repair_all, violations
from collab.skeleton.schema import SkeletonError
from tests.benchmarks.nml_million import make_nml


def replica(base: bytes) -> Skeleton:
    return Skeleton(SKELETON.new_doc(base))


def sync(a: Doc, b: Doc) -> None:
    a.apply_update(b.get_update(a.get_state()))
    b.apply_update(a.get_update(b.get_state()))


def base_doc() -> bytes:
    sk = Skeleton(SKELETON.new_doc())
    sk.create_group("g1", name="cells")
    sk.create_group("g2", parent_id="g1")
    for t in ("t1", "t2", "t3"):
        sk.create_tree(t, name=t, group_id="g2" if t == "t3" else None)
    for i in range(9):
        sk.add_node(f"t{i // 3 + 1}", [i, i, i], f"n{i}", connect_to=f"n{i - 1}" if i % 3 else None)
    sk.set_comment("n0", "soma")
    sk.set_branchpoint("n4", 1)
    return sk.doc.get_update()


def test_each_rule() -> None:
    base = base_doc()
    a, b = replica(base), replica(base)
    a.delete_tree("t1")  # a deletes t1 (and its nodes)...
    b.add_node("t1", [50, 50, 50], "late", connect_to="n1")  # ...while b extends it
    b.connect("n2", "n3")  # b joins t1 and t2 (b merges locally)
    a.groups["g1"]["parentId"] = "g2"  # a cycle, as two concurrent moves make
    b.set_comment("n0", "changed")
    sync(a.doc, b.doc)
    assert violations(a.doc)
    fixes = repair_all(a.doc)
    assert violations(a.doc) == []
    summary = fixes.summary()
    assert summary["cutGroups"] == 1 and summary["droppedEdges"] >= 1
    assert "late" in a.nodes and a.node("late").tree_id in a.trees
    sync(a.doc, b.doc)
    assert to_json(a.doc, SKELETON) == to_json(b.doc, SKELETON)


def test_orphans_go_to_recovered_and_notes_on_missing_nodes_go() -> None:
    base = base_doc()
    a, b = replica(base), replica(base)
    a.delete_tree("t2")
    b.nodes["x"] = {"treeId": "t2", "position": [1, 1, 1]}
    b.comments["ghost"] = "nobody"
    sync(a.doc, b.doc)
    repair_all(a.doc)
    assert a.node("x").tree_id == RECOVERED and a.tree(RECOVERED).name == "recovered"
    assert "ghost" not in a.comments and violations(a.doc) == []


def test_incremental_plan_sees_only_touched_paths() -> None:
    sk = replica(base_doc())
    index = SkeletonIndex.build(sk.doc)
    sk.edges["n0,ghost"] = "t1"
    index.update(sk.doc, [("edges", "n0,ghost")])
    assert not plan(sk.doc, index, [("nodes", "n5")])  # untouched: not looked at
    fixes = plan(sk.doc, index, [("edges", "n0,ghost")])
    assert fixes.drop_edges == {"n0,ghost"}
    with sk.doc.transaction():
        apply(sk.doc, index, fixes)
    assert violations(sk.doc) == []


OPS = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(
            [
                "add",
                "add",
                "add_connected",
                "delete_node",
                "delete_tree",
                "connect",
                "disconnect",
                "comment",
                "move_tree",
                "move_group",
                "new_tree",
                "merge",
            ]
        ),
        st.integers(0, 1000),
        st.integers(0, 1000),
    ),
    min_size=1,
    max_size=25,
)


def _pick(items: list[str], k: int) -> str | None:
    return sorted(items)[k % len(items)] if items else None


def _apply_op(sk: Skeleton, op: str, i: int, j: int, tag: str) -> None:
    nodes, trees, groups = list(sk.nodes.keys()), list(sk.trees.keys()), list(sk.groups.keys())
    try:
        if op == "add" and trees:
            sk.add_node(_pick(trees, i), [i % 100, j % 100, 1], f"{tag}-n{i}-{j}")
        elif op == "add_connected" and nodes:
            anchor = _pick(nodes, i)
            sk.add_node(sk.node(anchor).tree_id, [1, 2, 3], f"{tag}-c{i}-{j}", connect_to=anchor)
        elif op == "delete_node" and nodes:
            sk.delete_node(_pick(nodes, i))
        elif op == "delete_tree" and trees:
            sk.delete_tree(_pick(trees, i))
        elif op == "connect" and len(nodes) > 1:
            sk.connect(_pick(nodes, i), _pick(nodes, j))
        elif op == "disconnect" and len(nodes) > 1:
            sk.disconnect(_pick(nodes, i), _pick(nodes, j))
        elif op == "comment" and nodes:
            sk.set_comment(_pick(nodes, i), f"c{j}")
        elif op == "move_tree" and trees:
            sk.move_tree(_pick(trees, i), _pick(groups, j) if j % 3 else None)
        elif op == "move_group" and groups:
            sk.move_group(_pick(groups, i), _pick(groups, j) if j % 3 else None)
        elif op == "new_tree":
            sk.create_tree(f"{tag}-t{i}-{j}", group_id=_pick(groups, j) if j % 2 else None)
        elif op == "merge" and len(trees) > 1:
            sk.merge_trees(_pick(trees, i), _pick(trees, j))
    except SkeletonError:
        pass  # the model refused an invalid edit locally; nothing changed


@settings(max_examples=150, deadline=None)
@given(ops=OPS, replicas=st.integers(2, 3), order=st.permutations(range(3)))
def test_random_concurrent_edits_converge_and_repair(
    ops: list[tuple[int, str, int, int]], replicas: int, order: list[int]
) -> None:
    base = base_doc()
    sks = [replica(base) for _ in range(replicas)]
    for who, op, i, j in ops:
        _apply_op(sks[who % replicas], op, i, j, f"r{who % replicas}")
    updates = [sk.doc.get_update() for sk in sks]
    # Two servers merge the replicas' updates in different orders, then repair.
    results: list[dict[str, Any]] = []
    for sequence in ([k for k in order if k < replicas], sorted(range(replicas), reverse=True)):
        server = SKELETON.new_doc(base)
        # The index kept up to date from each update's touched paths equals
        # one read whole from the merged (unrepaired) document.
        index = SkeletonIndex.build(server)
        with TouchRecorder(server, SKELETON) as recorder:
            for k in sequence:
                server.apply_update(updates[k])
                index.update(server, recorder.take_touches())
        assert _index_state(index) == _index_state(SkeletonIndex.build(server))
        repair_all(server)
        assert violations(server) == []
        results.append(to_json(server, SKELETON))
        for sk in sks:  # every replica receives the repaired state
            sync(sk.doc, server)
            assert to_json(sk.doc, SKELETON) == to_json(server, SKELETON)
        sks = [replica(base) for _ in range(replicas)]
        for k, sk in enumerate(sks):
            sk.doc.apply_update(updates[k])
    assert results[0] == results[1]


def _index_state(index: SkeletonIndex) -> tuple[Any, ...]:
    copy = index.columns.copy()
    rows = sorted(
        zip(
            copy.ids,
            copy.floats.tolist(),
            copy.ints.tolist(),
            copy.interpolation.tolist(),
            strict=True,
        )
    )
    return (
        index.tree_of,
        {t: n for t, n in index.nodes_of.items() if n},
        {n: set(index.edges_at(n)) for n in index.edges_of},
        index.edge_label,
        index.trees,
        rows,
    )


def test_an_imports_delta_indexes_like_reading_the_document(tmp_path: Path) -> None:
    """What a room's index takes from an import's own description (edges
    grouped with numpy, columns from the tables) equals an index read from
    the merged document; later edits keep it so."""
    source = tmp_path / "branchy.nml"
    make_nml(source, 3_000, 6)  # random walks with branches: degrees 1, 2 and 3
    sk = Skeleton(SKELETON.new_doc(base_doc()))
    index = SkeletonIndex.build(sk.doc)
    update, result = build_import(nmlmod.read(source.read_bytes()), Existing.of(sk))
    sk.doc.apply_update(update)
    index.absorb(result.delta)
    assert any(len(set(index.edges_at(n))) > 2 for n in index.edges_of)
    assert _index_state(index) == _index_state(SkeletonIndex.build(sk.doc))
    # Edits touching imported nodes: a node deleted with its edges, an edge
    # added at a node with two, a node moved.
    node = next(n for n in index.edges_of if len(set(index.edges_at(n))) == 2)
    other = next(n for n in index.edges_of if len(set(index.edges_at(n))) == 1)
    touched: list[tuple[str, ...]] = []
    with sk.doc.transaction():
        for key in index.edges_at(other):
            del sk.edges[key]
            touched.append(("edges", key))
        del sk.nodes[other]
        sk.edges[f"{node},n0"] = "t1"
        moved = dict(sk.nodes[node])
        moved["position"] = [1.0, 2.0, 3.0]
        sk.nodes[node] = moved
    touched += [("nodes", other), ("edges", f"{node},n0"), ("nodes", node)]
    index.update(sk.doc, touched)
    assert _index_state(index) == _index_state(SkeletonIndex.build(sk.doc))


def test_a_repair_writes_a_tree_or_group_that_is_no_map() -> None:
    """Found by the 100,000-input fuzz run: a client put a Y.Array where a
    tree belongs; a repair writing that key raised (``Map(Array)``) on every
    later update of the room. It now writes the plain value."""
    from pycrdt import Array, Doc, Map, Text

    from collab.skeleton.repaired import Writes, _plain

    doc: Doc = Doc()
    trees = doc.get("trees", type=Map)
    groups = doc.get("groups", type=Map)
    with doc.transaction():
        trees["t"] = Array([1, 2])
        groups["g"] = Text("x")
    assert _plain(trees["t"]) == [1, 2] and _plain(groups["g"]) == "x"
    writes = Writes()
    writes.add("trees", "t", trees["t"], "kept")
    writes.add("groups", "g", groups["g"], "kept")
    writes.add("trees", "u", [3], "kept")
    comments = doc.get("comments", type=Map)
    with doc.transaction():
        comments["n"] = Text("a comment as Y.Text")
    writes.add("comments", "n", comments["n"], "kept")  # raised "Type not supported"
    with doc.transaction():
        writes.apply(doc)
    assert trees["t"] == [1, 2] and groups["g"] == "x" and trees["u"] == [3]
    assert comments["n"] == "a comment as Y.Text"


def test_a_node_nested_past_any_parser_still_loads() -> None:
    """Found by the 100,000-input fuzz run: a node value nested 3,000 deep
    made the room's repair index unreadable (orjson: depth limit exceeded),
    and the room could never be loaded again. It reads as a value too deep
    to show; the other nodes are indexed as before."""
    from pycrdt import Doc, Map

    from collab.document.content import TOO_DEEP, read_map
    from collab.skeleton import jobs

    doc: Doc = Doc()
    nodes = doc.get("nodes", type=Map)
    deep: list[object] = []
    cursor = deep
    for _ in range(3000):
        inner: list[object] = []
        cursor.append(inner)
        cursor = inner
    with doc.transaction():
        doc.get("trees", type=Map)["t"] = Map({"name": "t"})
        nodes["deep"] = {"treeId": "t", "position": deep}
        nodes["ok"] = {"treeId": "t", "position": [1, 2, 3]}
    assert read_map(nodes)["deep"] == TOO_DEEP
    source = jobs.index_source(doc.get_update(), [])  # what the worker runs on load
    assert source is not None
