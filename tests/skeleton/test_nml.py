"""NML: the real WEBKNOSSOS files read, import, export and read back the same;
export is byte-stable; invalid files are refused with the element and line."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from collab.document.content import to_json
from collab.document.kinds import new_doc
from collab.document.update_builder import concat_pieces
from collab.skeleton import nml as nmlmod
from collab.skeleton.convert import (
    Existing,
    build_import,
    build_import_pieces,
    export_nml,
    import_nml,
)
from collab.skeleton.model import Skeleton
from collab.skeleton.nml import NmlError
from collab.skeleton.repair import IndexDelta

TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "webknossos"
NML_FILES = [
    "test_a.nml",
    "nml_with_small_distance_nodes.nml",
    "generated_skeleton_snapshot.nml",
    "nml_with_volumes.nml",
]
ZIP_FILES = [
    "l4_sample__explorational__suser__94b271.zip",
    "l4dense_motta_et_al_demo_v2__explorational__4a6356.zip",
    "multi_volume_example_CREMI.zip",
    "bounding-boxes-example.zip",
]


def _load(name: str) -> nmlmod.Nml:
    path = TESTDATA / name
    if not path.exists():
        pytest.fail(f"test data missing: {path} (shared/ must sit beside the repository)")
    data = path.read_bytes()
    return nmlmod.read_zip(data) if name.endswith(".zip") else nmlmod.read(data)


def _shape(n: nmlmod.Nml) -> dict:  # type: ignore[type-arg]
    """What must survive a round trip, independent of id renumbering."""
    by_id = {node.id: node for t in n.trees for node in t.nodes}
    return {
        "trees": sorted(
            (
                t.name,
                t.color,
                t.is_visible,
                t.type,
                tuple(sorted(t.metadata.items(), key=str)),
                tuple(sorted((nd.x, nd.y, nd.z, nd.radius) for nd in t.nodes)),
                tuple(
                    sorted(
                        tuple(
                            sorted(
                                (
                                    (by_id[a].x, by_id[a].y, by_id[a].z),
                                    (by_id[b].x, by_id[b].y, by_id[b].z),
                                )
                            )
                        )
                        for a, b in t.edges
                    )
                ),
            )
            for t in n.trees
        ),
        "comments": sorted(((by_id[k].x, by_id[k].y, by_id[k].z), v) for k, v in n.comments),
        "branchpoints": sorted((by_id[k].x, by_id[k].y, by_id[k].z) for k, _ in n.branchpoints),
        "groups": sorted(g.name for g in n.groups),
        "boxes": sorted((b.name, b.top_left, b.size) for b in n.boxes),
    }


@pytest.mark.parametrize("name", NML_FILES + ZIP_FILES)
def test_real_files_round_trip(name: str) -> None:
    original = _load(name)
    sk = Skeleton(new_doc("skeleton"))
    result = import_nml(sk, original)
    assert result.nodes == original.node_count and result.trees == len(original.trees)
    text = "".join(nmlmod.write(export_nml(sk)))
    again = nmlmod.read(text.encode())
    assert _shape(again) == _shape(original)
    # Same document, same bytes.
    assert "".join(nmlmod.write(export_nml(sk))) == text


def test_groups_and_tree_membership_survive() -> None:
    original = _load("generated_skeleton_snapshot.nml")
    sk = Skeleton(new_doc("skeleton"))
    import_nml(sk, original)
    group_names = {g.id: g.name for g in sk.iter_groups()}
    parents = {
        g.name: group_names.get(g.parent_id) if g.parent_id else None for g in sk.iter_groups()
    }
    assert parents == {"Example Group": None, "Nested Group": "Example Group"}
    in_groups = {
        t.name: group_names.get(t.group_id) if t.group_id else None for t in sk.iter_trees()
    }
    assert in_groups == {
        "A WkTree": None,
        "Tree in Group": "Example Group",
        "Tree in nested group": "Nested Group",
    }
    assert sk.comments["2"] == "A comment 1" and "2" in sk.branchpoints


def test_import_merges_and_renames_colliding_ids() -> None:
    original = _load("test_a.nml")
    sk = Skeleton(new_doc("skeleton"))
    first = import_nml(sk, original)
    second = import_nml(sk, original)
    assert first.renamed_nodes == 0 and second.renamed_nodes == original.node_count
    assert len(sk.trees) == 2 * len(original.trees) and len(sk.nodes) == 2 * original.node_count
    assert {"1", "2", "3"} <= set(sk.nodes.keys())


def test_export_renumbers_client_ids_to_integers() -> None:
    sk = Skeleton(new_doc("skeleton"))
    sk.create_tree("123-1", name="client tree")
    sk.add_node("123-1", [1, 2, 3], "123-5")
    sk.add_node("123-1", [4, 5, 6], "7", connect_to="123-5")
    n = export_nml(sk)
    ids = sorted(node.id for t in n.trees for node in t.nodes)
    assert ids == [7, 8] and n.trees[0].id == 1 and n.trees[0].edges.tolist() == [[8, 7]]


def test_export_tolerates_an_unrepaired_document() -> None:
    sk = Skeleton(new_doc("skeleton"))
    sk.create_tree("t")
    sk.add_node("t", [1, 1, 1], "a")
    sk.edges["a,ghost"] = "t"
    sk.nodes["orphan"] = {"treeId": "gone", "position": [0, 0, 0]}
    sk.comments["ghost"] = "dangling"
    sk.create_group("g1")
    sk.create_group("g2", parent_id="g1")
    sk.groups["g1"]["parentId"] = "g2"  # a cycle, as concurrent moves can make
    text = "".join(nmlmod.write(export_nml(sk)))
    back = nmlmod.read(text.encode())
    assert [len(t.nodes) for t in back.trees] == [1] and back.comments == []
    assert sorted(g.parent_id is None for g in back.groups) == [False, True]


HEAD = b'<?xml version="1.0"?>\n'
INVALID = {
    "not xml": (b"this is not xml", "not well-formed"),
    "wrong root": (HEAD + b"<skeleton></skeleton>", "root element"),
    "truncated": (HEAD + b"<things><thing id='1'><nodes>", "not well-formed"),
    "missing attribute": (
        HEAD + b"<things><thing id='1'><nodes><node id='1' x='1' y='2'/></nodes></thing></things>",
        "missing attribute 'z'",
    ),
    "non-numeric": (
        HEAD
        + b"<things><thing id='1'><nodes><node id='1' x='1' y='abc' z='3'/></nodes></thing></things>",
        "not a number",
    ),
    "nan": (
        HEAD
        + b"<things><thing id='1'><nodes><node id='1' x='1' y='nan' z='3'/></nodes></thing></things>",
        "not finite",
    ),
    "duplicate node": (
        HEAD
        + b"<things><thing id='1'><nodes><node id='1' x='1' y='2' z='3'/><node id='1' x='1' y='2' z='3'/></nodes></thing></things>",
        "duplicate node id 1",
    ),
    "edge to missing node": (
        HEAD
        + b"<things><thing id='1'><nodes><node id='1' x='1' y='2' z='3'/></nodes><edges><edge source='1' target='9'/></edges></thing></things>",
        "does not exist",
    ),
    "self edge": (
        HEAD
        + b"<things><thing id='1'><nodes><node id='1' x='1' y='2' z='3'/></nodes><edges><edge source='1' target='1'/></edges></thing></things>",
        "self-edge",
    ),
    "billion laughs": (
        HEAD
        + b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><things>&lol2;</things>',
        "DTDs are not allowed",
    ),
    "external entity": (
        HEAD + b'<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><things>&xxe;</things>',
        "DTDs are not allowed",
    ),
    "empty": (b"", "not well-formed"),
}


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_nml_is_refused_with_element_and_line(name: str) -> None:
    data, message = INVALID[name]
    with pytest.raises(NmlError) as caught:
        nmlmod.read(data)
    assert message in caught.value.message
    assert "line" in caught.value.details and "element" in caught.value.details


def test_zip_must_hold_one_nml() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.nml", "<things/>")
        z.writestr("b.nml", "<things/>")
    with pytest.raises(NmlError, match="exactly one"):
        nmlmod.read_zip(buf.getvalue())
    with pytest.raises(NmlError, match="not a zip"):
        nmlmod.read_zip(b"PK nope")


@pytest.mark.parametrize("piece_nodes", [1, 5, 1000])
def test_an_import_built_in_pieces_is_the_same_update(piece_nodes: int) -> None:
    """Pieces (what a large import streams to the room) applied in order give
    the document the one-piece build gives, concatenate to its bytes, and
    their deltas add up to its delta; into a document with content too."""
    target = Skeleton(new_doc("skeleton"))
    import_nml(target, _load("test_a.nml"))
    existing = Existing.of(target)
    nml = _load("nml_with_small_distance_nodes.nml")  # groups, comments, branchpoints
    whole, result = build_import(nml, existing)
    pieces: list[tuple[bytes, IndexDelta]] = []
    counts = build_import_pieces(
        nml, existing, lambda p, d: pieces.append((p, d)), piece_nodes=piece_nodes
    )
    assert (counts.trees, counts.nodes, counts.renamed_nodes) == (
        result.trees,
        result.nodes,
        result.renamed_nodes,
    )
    if piece_nodes == 1:
        assert len(pieces) == len(nml.trees) + 1  # a piece per tree, then the notes
    # Each build picks a fresh client id: compare documents, not bytes.
    a, b = (
        new_doc("skeleton", target.doc.get_update()),
        new_doc("skeleton", target.doc.get_update()),
    )
    a.apply_update(whole)
    for piece, _ in pieces:
        b.apply_update(piece)
    assert to_json(a, "skeleton") == to_json(b, "skeleton")
    joined = new_doc("skeleton", target.doc.get_update())
    joined.apply_update(concat_pieces([p for p, _ in pieces]))
    assert to_json(joined, "skeleton") == to_json(a, "skeleton")
    delta = IndexDelta()
    for _, d in pieces:
        delta.extend(d)
    assert delta.trees == result.delta.trees and delta.nodes == result.delta.nodes
    assert delta.edges == result.delta.edges and len(delta.tables) == len(result.delta.tables)
