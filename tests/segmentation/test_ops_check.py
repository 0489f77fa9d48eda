"""Voxel operations are checked before they are applied
(collab/segmentation/ops.py): a bad op closes only its sender (4422, the
reason naming the field), and nothing of it is applied, stored or relayed."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Map

from collab.errors import Unprocessable
from collab.segmentation.ops import MAX_POINTS, check_op
from tests.conftest import LiveServer
from tests.yclient import YClient

LAYER = {
    "name": "L1",
    "dtype": "uint32",
    "boundingBox": {"topLeft": [0, 0, 0], "size": [512, 512, 512]},
}


def brush(**changes: Any) -> dict[str, Any]:
    op = {
        "kind": "brush", "layer": "L1", "author": 7, "time": 1.0, "mag": "1", "plane": "xy",
        "points": [[10, 10, 5], [20, 12, 5]], "radius": 4, "segment": 3, "erase": False,
        "mode": "all",
    }  # fmt: skip
    op.update(changes)
    return op


def layer_of(name: str) -> dict[str, Any] | None:
    return LAYER if name == "L1" else None


GOOD = [
    brush(),
    brush(erase=True, segment=0),
    {"kind": "fill2d", "layer": "L1", "author": 7, "time": 1, "mag": "1", "plane": "yz",
     "seed": [3, 4, 5], "segment": 9},
    {"kind": "fill3d", "layer": "L1", "author": 7, "time": 1, "mag": "2-2-1", "seed": [3, 4, 5],
     "segment": 9, "box": {"topLeft": [0, 0, 0], "size": [64, 64, 64]}},
    {"kind": "eraseSegment", "layer": "L1", "author": 7, "time": 1, "mag": "1", "segment": 9,
     "box": {"topLeft": [0, 0, 0], "size": [10, 10, 10]}},
    {"kind": "interpolate", "layer": "L1", "author": 7, "time": 1, "mag": "1", "plane": "xy",
     "segment": 9, "from": 10, "to": 14, "box": {"topLeft": [0, 0, 0], "size": [100, 100, 5]}},
]  # fmt: skip

BAD = [
    (brush(kind="paint"), "kind"),
    (brush(layer="L9"), "layer"),
    (brush(author=8), "author"),
    (brush(time="now"), "time"),
    (brush(mag=None), "mag"),
    (brush(segment=0), "segment"),
    (brush(segment=2**32), "segment"),
    (brush(segment=True), "segment"),
    (brush(plane="xw"), "plane"),
    (brush(points=[]), "points"),
    (brush(points=[[1, 1, 1]] * (MAX_POINTS + 1)), "points"),
    (brush(points=[[1, 1, 5], [1, 1, 6]]), "one slice"),
    (brush(points=[[600, 1, 5]]), "outside the layer's bounding box"),
    (brush(points=[[-1, 1, 5]]), "coordinates"),
    (brush(points=[[1.5, 1, 5]]), "coordinates"),
    (brush(points=[[1, 1]]), "[x, y, z]"),
    (brush(radius=0), "radius"),
    (brush(radius=10_000), "radius"),
    (brush(radius=float("inf")), "radius"),
    (brush(erase="no"), "erase"),
    (brush(mode="some"), "mode"),
    ({"kind": "fill3d", "layer": "L1", "author": 7, "time": 1, "mag": "1", "seed": [300, 4, 5],
      "segment": 9, "box": {"topLeft": [0, 0, 0], "size": [64, 64, 64]}}, "seed"),
    ({"kind": "fill3d", "layer": "L1", "author": 7, "time": 1, "mag": "1", "seed": [3, 4, 5],
      "segment": 9, "box": {"topLeft": [0, 0, 0], "size": [512, 512, 512]}}, "box.size"),
    # Flat: few voxels, thousands of bricks along one axis.
    ({"kind": "eraseSegment", "layer": "L1", "author": 7, "time": 1, "mag": "1",
      "segment": 9, "box": {"topLeft": [0, 0, 0], "size": [2**24, 1, 1]}}, "bricks"),
    ({"kind": "interpolate", "layer": "L1", "author": 7, "time": 1, "mag": "1", "plane": "xy",
      "segment": 9, "from": 10, "to": 200, "box": {"topLeft": [0, 0, 0], "size": [9, 9, 9]}},
     "slices apart"),
    ("a string", "JSON object"),
    (brush(mag="nonsense"), "no mag name"),
    (brush(points=[[0, 0, 5], [400, 100, 5], [0, 1100, 5]]), "apart"),
    (brush(mag="4"), "keeps no mag"),
    (brush(layer=[[[]]] * 3 + [{"d": {"d": "x"}}]), "no volume layer '<list>'"),  # the layer of MAGGED keeps 1 and 2 only
]  # fmt: skip
MAGGED = {
    **LAYER,
    "mags": ["1", "2"],
    "boundingBox": {"topLeft": [0, 0, 0], "size": [512, 2048, 512]},
}


@pytest.mark.parametrize("op", GOOD)
def test_good_ops_pass(op: dict[str, Any]) -> None:
    check_op("7-1", op, layer_of, 7)


@pytest.mark.parametrize(("op", "named"), BAD)
def test_bad_ops_are_refused_naming_the_field(op: Any, named: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        check_op("7-1", op, lambda name: MAGGED if name == "L1" else None, 7)
    assert named in caught.value.message and "ops['7-1']" in caught.value.message


def test_op_ids_without_separators() -> None:
    for key in ("a,b", "a/b", ""):
        with pytest.raises(Unprocessable):
            check_op(key, brush(), layer_of, 7)


async def test_a_bad_op_closes_only_its_sender(live: LiveServer) -> None:
    a_id, a = await live.user("Ada")
    c_id, c = await live.user("Cy")
    ann = await live.annotation(a, "ops")
    async with live.client(a) as http:
        r = await http.post(f"/api/annotations/{ann}/grants", json={"user": c_id, "role": "editor"})
        assert r.status_code in (200, 201), r.text
    url = lambda token: live.sync_url(ann, "segmentation", token=token, acks="1")  # noqa: E731
    writer = await YClient(url(a)).connect()
    assert await writer.write(lambda: writer.map("layers").__setitem__("L1", Map(dict(LAYER))))
    watcher = await YClient(url(a)).connect()
    other = await YClient(url(c)).connect()
    # A good op of Ada's is applied, relayed and stored.
    assert await writer.write(
        lambda: writer.map("ops").__setitem__(f"{a_id}-1", brush(author=a_id))
    )
    await watcher.wait(lambda: f"{a_id}-1" in watcher.map("ops"))
    # A brush too large: Ada's socket is closed with 4422 naming the field.
    writer.map("ops")[f"{a_id}-2"] = brush(author=a_id, radius=10_000)
    code, reason = await writer.wait_closed()
    assert code == 4422 and "radius" in reason, (code, reason)
    # Cy writes after the refusal; the watcher sees Cy's op, never Ada's bad one.
    assert await other.write(lambda: other.map("ops").__setitem__(f"{c_id}-1", brush(author=c_id)))
    await watcher.wait(lambda: f"{c_id}-1" in watcher.map("ops"))
    assert f"{a_id}-2" not in watcher.map("ops")
    # An op claiming to be someone else's is refused too.
    other.map("ops")[f"{c_id}-2"] = brush(author=a_id)
    code, reason = await other.wait_closed()
    assert code == 4422 and "author" in reason, (code, reason)
    # Stored: the layer, the two good ops; nothing of the refused ones.
    async with live.client(a) as http:
        versions = (
            await http.get(f"/api/annotations/{ann}/versions", params={"doc": "segmentation"})
        ).json()["versions"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    reader = await YClient(live.sync_url(ann, "segmentation", token=a)).connect()
    assert sorted(reader.map("ops").keys()) == sorted([f"{a_id}-1", f"{c_id}-1"])
    for client in (watcher, reader):
        await client.close()


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ({"name": "x", "largestSegmentId": 5}, "largestSegmentId"),
        ({"name": "x", "dtype": "float32"}, "dtype"),
        ({"name": "x", "mags": ["1", "1024"]}, "mags"),
        ({"name": "x", "mags": ["2", "1"]}, "mags"),
        ({"name": "x", "mags": ["1", "nonsense"]}, "no mag"),
        ({"name": "x", "mags": [str(2**k) for k in range(17)]}, "mags"),
        ({"name": "x", "boundingBox": {"topLeft": [0, 0, 0], "size": [1e300, 1, 1]}}, "size"),
    ],
)
def test_bad_layers_are_refused(entry: dict[str, Any], named: str) -> None:
    from pycrdt import Doc

    from collab.segmentation.ops import check_layer

    doc: Doc = Doc()
    layers = doc.get("layers", type=Map)
    layers["x"] = Map(entry)
    with pytest.raises(Unprocessable) as caught:
        check_layer("x", layers["x"])
    assert named in caught.value.message
    check_layer("ok", _integrated({"name": "ok", "mags": ["1", "2", "4-4-2", "16-16-8"]}))


def _integrated(entry: dict[str, Any]) -> Map:
    from pycrdt import Doc

    doc: Doc = Doc()
    doc.get("layers", type=Map)["k"] = Map(entry)
    return doc.get("layers", type=Map)["k"]


def test_a_value_nested_past_the_recursion_limit_is_named_by_its_type() -> None:
    deep: Any = "bottom"
    for _ in range(5000):
        deep = {"d": deep}
    with pytest.raises(Unprocessable, match="<dict>"):
        check_op("7-1", brush(layer=deep), lambda name: None, 7)
