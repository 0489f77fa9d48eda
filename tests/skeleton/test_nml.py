"""NML: files read, import, export and read back the same; export is
byte-stable; invalid files are refused with the element and line.

Over three sources: the hand-written files in tests/fixtures/nml/, the
annotation zips (with volume layers) that the `webknossos` library writes at
test time, and, where ../shared/testdata/webknossos exists, the files the
WEBKNOSSOS server wrote (skipped, saying why, where it does not)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from collab.document.content import to_json
from collab.document.update_builder import concat_pieces
from collab.skeleton import nml as nmlmod
from collab.skeleton.convert import (
    Existing,
    build_import,
    build_import_pieces,
    export_nml,
    import_nml,
)
from collab.skeleton.kind import SKELETON
from collab.skeleton.model import Skeleton
from collab.skeleton.nml import NmlError
from collab.skeleton.repair import IndexDelta
from tests.fixtures import NML, read_annotation, shared_files, webknossos_annotations

NML_FILES = [
    "three_trees.nml",
    "tracing.nml",
    "groups.nml",
    "bounding_boxes.nml",
    "volume_reference.nml",
]
# The zips tests/fixtures/wk/write_annotations.py writes, each with its volume
# layers as the library reads them back: name, format, segments, voxel values.
WEBKNOSSOS_ZIPS = {
    "skeleton_volume.zip": [["Volume", "zarr3", [7, 2504698], [0, 7, 2504698]]],
    "two_volumes.zip": [
        ["Volume_2", "zarr3", [], [3]],
        ["Volume", "wkw", [], [9]],
        ["empty", "zarr3", [], []],  # no data: no data zip, no location
    ],
}


def _load(name: str) -> nmlmod.Nml:
    return read_annotation(NML / name)


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


def _round_trip(original: nmlmod.Nml) -> None:
    sk = Skeleton(SKELETON.new_doc())
    result = import_nml(sk, original)
    assert result.nodes == original.node_count and result.trees == len(original.trees)
    text = "".join(nmlmod.write(export_nml(sk)))
    again = nmlmod.read(text.encode())
    assert _shape(again) == _shape(original)
    # Same document, same bytes.
    assert "".join(nmlmod.write(export_nml(sk))) == text


def test_the_fixture_list_is_complete() -> None:
    assert sorted(NML_FILES) == sorted(p.name for p in NML.glob("*.nml"))


@pytest.mark.parametrize("name", NML_FILES)
def test_files_round_trip(name: str) -> None:
    _round_trip(_load(name))


@pytest.fixture(scope="module")
def wk_zips() -> tuple[Path, dict[str, dict[str, Any]]]:
    return webknossos_annotations()


# Creating the tool venv and the zips on a fresh machine: minutes, once.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", list(WEBKNOSSOS_ZIPS))
def test_webknossos_library_zips_read_as_it_reads_them(
    name: str, wk_zips: tuple[Path, dict[str, dict[str, Any]]]
) -> None:
    """The NML in a zip with volume layers reads as the library reads it
    (trees, nodes, edges, groups, comments, branchpoints, boxes), and round-trips."""
    folder, seen = wk_zips
    want = seen[name]
    # Volume data beside the NML (which collab passes over), one zip per layer with data.
    assert want["volumes"] == WEBKNOSSOS_ZIPS[name]
    data_zips = [m for m in want["members"] if m.startswith("data_")]
    assert len(data_zips) == len([v for v in want["volumes"] if v[3]])
    original = read_annotation(folder / name)
    by_id = {node.id: node for t in original.trees for node in t.nodes}
    group_names = {g.id: g.name for g in original.groups}
    assert sorted(t.name for t in original.trees) == want["trees"]
    assert sorted([nd.x, nd.y, nd.z] for nd in by_id.values()) == want["nodes"]
    assert sum(len(t.edges) for t in original.trees) == want["edges"]
    assert sorted(
        (g.name, group_names[g.parent_id] if g.parent_id is not None else None)
        for g in original.groups
    ) == [tuple(g) for g in want["groups"]]
    assert sorted(text for _, text in original.comments) == want["comments"]
    assert len(original.branchpoints) == want["branchpoints"]
    assert sorted(
        (b.name, [*map(int, b.top_left)], [*map(int, b.size)], b.is_visible) for b in original.boxes
    ) == [tuple(b) for b in want["boxes"]]
    _round_trip(original)


@pytest.mark.parametrize("path", shared_files(".nml", ".zip"))
def test_real_webknossos_files_round_trip(path: Path) -> None:
    _round_trip(read_annotation(path))


def test_groups_and_tree_membership_survive() -> None:
    original = _load("groups.nml")
    sk = Skeleton(SKELETON.new_doc())
    import_nml(sk, original)
    group_names = {g.id: g.name for g in sk.iter_groups()}
    parents = {
        g.name: group_names.get(g.parent_id) if g.parent_id else None for g in sk.iter_groups()
    }
    assert parents == {"outer group": None, "nested group": "outer group"}
    assert {g.name: g.is_expanded for g in sk.iter_groups()} == {
        "outer group": True,
        "nested group": False,
    }
    trees = {t.name: t for t in sk.iter_trees()}
    in_groups = {
        name: group_names.get(t.group_id) if t.group_id else None for name, t in trees.items()
    }
    assert in_groups == {
        "root tree": None,
        "tree in group": "outer group",
        "empty tree in nested group": "nested group",
    }
    assert not trees["tree in group"].is_visible and trees["root tree"].is_visible
    assert trees["empty tree in nested group"].type == "AGGLOMERATE"
    assert trees["root tree"].metadata == {
        "cell type": "pyramidal",
        "confidence": 0.75,
        "spines": 12,
        "proofread": True,
        "tracers": ["ada", "grace"],
    }
    assert sk.comments.to_py() == {
        "2": "first comment",
        "3": "second comment",
        "4": "third comment",
    }
    assert set(sk.branchpoints.keys()) == {"2"}


def test_bounding_boxes_survive() -> None:
    sk = Skeleton(SKELETON.new_doc())
    import_nml(sk, _load("bounding_boxes.nml"))
    boxes = {b.name: b for b in sk.iter_bounding_boxes()}
    assert {name: (b.top_left, b.size, b.is_visible) for name, b in boxes.items()} == {
        "region of interest": ((2371, 4063, 1676), (891, 579, 232), True),
        "hidden box": ((371, 4063, 1676), (64, 64, 32), False),
        "task bounding box": ((0, 0, 1600), (5000, 5000, 400), True),
    }
    assert boxes["hidden box"].color == (0.27, 0.65, 0.2, 1.0)
    back = nmlmod.read("".join(nmlmod.write(export_nml(sk))).encode())
    assert [(b.name, b.is_visible, b.color) for b in back.boxes] == [
        (b.name, b.is_visible, b.color) for b in sk.iter_bounding_boxes()
    ]


def test_a_volume_reference_leaves_the_skeleton_alone() -> None:
    """An NML naming volume layers (data in the zip, or left out) reads as
    its skeleton: segments, their metadata and the volume's comment pass by."""
    n = _load("volume_reference.nml")
    assert [(t.name, len(t.nodes), len(t.edges)) for t in n.trees] == [("traced neurite", 2, 1)]
    assert n.comments == [(2, "enters the segment")] and not n.trees[0].metadata
    assert n.voxel_size == (11.24, 11.24, 28.0) and n.edit_position == (3581, 3585, 1024)


def test_segment_groups_are_not_skeleton_groups() -> None:
    assert [g.name for g in _load("volume_reference.nml").groups] == ["traced"]


def test_import_merges_and_renames_colliding_ids() -> None:
    original = _load("three_trees.nml")
    sk = Skeleton(SKELETON.new_doc())
    first = import_nml(sk, original)
    second = import_nml(sk, original)
    assert first.renamed_nodes == 0 and second.renamed_nodes == original.node_count
    assert len(sk.trees) == 2 * len(original.trees) and len(sk.nodes) == 2 * original.node_count
    assert {"1", "2", "3"} <= set(sk.nodes.keys())


def test_export_renumbers_client_ids_to_integers() -> None:
    sk = Skeleton(SKELETON.new_doc())
    sk.create_tree("123-1", name="client tree")
    sk.add_node("123-1", [1, 2, 3], "123-5")
    sk.add_node("123-1", [4, 5, 6], "7", connect_to="123-5")
    n = export_nml(sk)
    ids = sorted(node.id for t in n.trees for node in t.nodes)
    assert ids == [7, 8] and n.trees[0].id == 1 and n.trees[0].edges.tolist() == [[8, 7]]


def test_export_tolerates_an_unrepaired_document() -> None:
    sk = Skeleton(SKELETON.new_doc())
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
        nmlmod.read_zip(buf.getvalue(), 1 << 30)
    with pytest.raises(NmlError, match="not a zip"):
        nmlmod.read_zip(b"PK nope", 1 << 30)


@pytest.mark.parametrize("piece_nodes", [1, 5, 1000])
def test_an_import_built_in_pieces_is_the_same_update(piece_nodes: int) -> None:
    """Pieces (what a large import streams to the room) applied in order give
    the document the one-piece build gives, concatenate to its bytes, and
    their deltas add up to its delta; into a document with content too."""
    target = Skeleton(SKELETON.new_doc())
    import_nml(target, _load("three_trees.nml"))
    existing = Existing.of(target)
    nml = _load("tracing.nml")  # groups, comments, branchpoints, colliding ids
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
        SKELETON.new_doc(target.doc.get_update()),
        SKELETON.new_doc(target.doc.get_update()),
    )
    a.apply_update(whole)
    for piece, _ in pieces:
        b.apply_update(piece)
    assert to_json(a, SKELETON) == to_json(b, SKELETON)
    joined = SKELETON.new_doc(target.doc.get_update())
    joined.apply_update(concat_pieces([p for p, _ in pieces]))
    assert to_json(joined, SKELETON) == to_json(a, SKELETON)
    delta = IndexDelta()
    for _, d in pieces:
        delta.extend(d)
    assert delta.trees == result.delta.trees and delta.nodes == result.delta.nodes
    assert delta.edges == result.delta.edges and len(delta.tables) == len(result.delta.tables)


@pytest.mark.parametrize("encoding", ["U-F-8", "x" * 300, "utf-7"])
def test_unknown_or_odd_encodings_are_refused_as_nml_errors(encoding: str) -> None:
    """Found by the upload fuzzer: expat raised LookupError (a 500) for these."""
    body = f'<?xml version="1.0" encoding="{encoding}"?><things><thing id="1"/></things>'
    with pytest.raises(NmlError):
        nmlmod.read(body.encode())


def test_a_zip_whose_member_name_is_not_the_utf8_it_claims() -> None:
    """Found by the upload fuzzer (a 500 before): a damaged zip is an NmlError."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("\u00e9\u00e9.nml", "<things/>")
    data = bytearray(buf.getvalue())
    name = data.find(b"PK\x01\x02") + 46
    data[name : name + 2] = b"\xdaA"
    with pytest.raises(NmlError, match="damaged"):
        nmlmod.read_zip(bytes(data), 1 << 30)


def test_a_zip_needing_an_unknown_version_to_extract() -> None:
    """Found by the 100,000-input upload run (a 500 before): zipfile raises
    NotImplementedError for it; the zip is damaged (422)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.nml", "<things/>")
    data = bytearray(buf.getvalue())
    entry = data.find(b"PK\x01\x02")
    data[entry + 6 : entry + 8] = (164).to_bytes(2, "little")  # "version 16.4 needed"
    with pytest.raises(NmlError, match="damaged"):
        nmlmod.read_zip(bytes(data), 1 << 30)


def test_an_encrypted_member_is_refused() -> None:
    """Found by the 100,000-input upload run (a 500 before)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.nml", "<things/>")
    data = bytearray(buf.getvalue())
    for signature, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # general purpose flags
        k = data.find(signature) + at
        data[k] |= 0x1
    with pytest.raises(NmlError, match="encrypted"):
        nmlmod.read_zip(bytes(data), 1 << 30)
