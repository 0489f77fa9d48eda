"""Updates written by collab/document/update_builder.py read back the same in
pycrdt (yrs) and in the stock npm ``yjs`` package."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pycrdt import Doc, Map

from collab.document.update_builder import (
    EMPTY_PIECE,
    UpdateBuilder,
    concat_pieces,
    encode_any,
    node_contents,
    node_tails,
    read_state_vector,
    varuint,
)
from collab.skeleton.kind import SKELETON

JS = Path(__file__).resolve().parents[1] / "js"

VALUES = [
    None,
    True,
    False,
    0,
    -3,
    2**40,
    1.5,
    0.1,
    -1e300,
    "",
    "ümlaut ✓ 🧠",
    [1, "a", [None, True]],
    {"k": {"nested": [1.25, "x"]}, "empty": {}},
]


def _sample(pieces: list[bytes] | None = None) -> bytes:
    """The sample update; with ``pieces``, also taken in pieces there (one
    of them refers to a map made in the piece before)."""
    out = UpdateBuilder(4_000_000_001)
    for i, value in enumerate(VALUES):
        out.set("meta", f"v{i}", value)
    tree = out.set_map("trees", "t1", {"name": "axon", "color": [1.0, 0.5, 0.0, 1.0]})
    if pieces is not None:
        pieces.append(out.piece())
        pieces.append(out.piece())  # nothing since: the empty update
    out.set(tree, "groupId", None)
    if pieces is not None:
        pieces.append(out.piece())
    columns = {
        name: np.array([1.0, 2.5, -3.0])
        for name in ("x", "y", "z", "radius", "rx", "ry", "rz", "viewport", "mag", "bitDepth")
    }
    columns["time"] = np.array([1_700_000_000_001.0, 0.0, 5.0])
    columns["interpolation"] = np.array([True, False, True])
    tails, width = node_tails(columns)
    out.set_many_encoded("nodes", ["1", "2", "n-3"], node_contents(["t1"] * 3, tails, width))
    out.set_many_strings("edges", ["1,2", "2,n-3"], ["t1", "t1"])
    if pieces is not None:
        pieces.append(out.piece())
    return out.finish()


def _expected() -> dict[str, object]:
    def node(i: int) -> dict[str, object]:
        v = [1.0, 2.5, -3.0][i]
        return {
            "treeId": "t1",
            "position": [v, v, v],
            "radius": v,
            "rotation": [v, v, v],
            "viewport": v,
            "mag": v,
            "bitDepth": v,
            "interpolation": [True, False, True][i],
            "time": [1_700_000_000_001.0, 0.0, 5.0][i],
        }

    return {
        "meta": {f"v{i}": v for i, v in enumerate(VALUES)},
        "trees": {"t1": {"name": "axon", "color": [1.0, 0.5, 0.0, 1.0], "groupId": None}},
        "nodes": {"1": node(0), "2": node(1), "n-3": node(2)},
        "edges": {"1,2": "t1", "2,n-3": "t1"},
    }


def _normal(value: object) -> object:
    """Numbers compared as floats (yrs reads every number back as a float)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    raise TypeError(value)


def test_pycrdt_reads_what_was_built() -> None:
    doc = SKELETON.new_doc(_sample())
    got = {name: doc.get(name, type=Map).to_py() for name in ("meta", "trees", "nodes", "edges")}
    assert _normal(got) == _normal(_expected())
    # The state has the builder's client, one clock per item.
    assert read_state_vector(doc.get_state()) == {4_000_000_001: len(VALUES) + 3 + 1 + 3 + 2}


def test_stock_yjs_reads_what_was_built(node_modules: Path) -> None:
    proc = subprocess.run(
        ["node", str(JS / "apply_update.mjs"), _sample().hex(), "meta", "trees", "nodes", "edges"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert _normal(json.loads(proc.stdout)) == _normal(_expected())


def test_built_entries_merge_into_a_document_with_content() -> None:
    doc: Doc = SKELETON.new_doc()
    nodes = doc.get("nodes", type=Map)
    nodes["old"] = {"treeId": "t0", "position": [0, 0, 0]}
    doc.apply_update(_sample())
    assert set(nodes.keys()) == {"old", "1", "2", "n-3"}
    # And the merged state travels to a fresh replica.
    assert set(SKELETON.new_doc(doc.get_update()).get("nodes", type=Map).keys()) == {
        "old",
        "1",
        "2",
        "n-3",
    }


def test_numbers_use_float32_when_exact_as_yrs_does() -> None:
    assert encode_any(1.5) == b"\x7c" + np.float32(1.5).byteswap().tobytes()
    assert encode_any(0.1)[0] == 0x7B and len(encode_any(0.1)) == 9
    assert varuint(300) == b"\xac\x02"
    doc: Doc = Doc()
    doc.get("m", type=Map)["x"] = 1.5
    assert encode_any(1.5) in doc.get_update()


def test_pieces_applied_in_order_equal_the_whole_and_concatenate_to_it() -> None:
    pieces: list[bytes] = []
    assert _sample(pieces) == EMPTY_PIECE  # everything went into pieces
    assert len(pieces) == 4 and pieces[1] == EMPTY_PIECE
    doc = SKELETON.new_doc()
    for piece in pieces:
        doc.apply_update(piece)
    got = {name: doc.get(name, type=Map).to_py() for name in ("meta", "trees", "nodes", "edges")}
    assert _normal(got) == _normal(_expected())
    whole = _sample()
    assert concat_pieces(pieces) == whole  # byte for byte the one-piece build
    assert concat_pieces([pieces[0]]) == pieces[0] and concat_pieces([]) == EMPTY_PIECE
    for wrong in ([pieces[0], pieces[3]], [pieces[2], pieces[0]], [pieces[0], b"\x02\x00"]):
        with pytest.raises(ValueError):
            concat_pieces(wrong)
