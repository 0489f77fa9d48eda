"""Skeleton queries over REST against the live server."""

from __future__ import annotations

import math

from collab.skeleton.model import Skeleton
from tests.conftest import LiveServer
from tests.yclient import YClient


async def _traced(live: LiveServer) -> tuple[str, int, YClient]:
    _, token = await live.user()
    ann = await live.annotation(token)
    c = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    sk = Skeleton(c.doc)
    sk.set_meta(voxelSize=[10, 10, 20])
    sk.create_tree("t1", name="axon")
    sk.add_node("t1", [0, 0, 0], "a")
    sk.add_node("t1", [3, 4, 0], "b", connect_to="a")  # 50 nm
    sk.add_node("t1", [3, 4, 1], "c", connect_to="b")  # 20 nm
    sk.create_tree("t2", name="dendrite")
    sk.add_node("t2", [100, 100, 10], "d")
    await c.wait(lambda: c.saved == 7)
    return token, ann, c


async def test_summary_lengths_box_tree_path(live: LiveServer) -> None:
    token, ann, c = await _traced(live)
    async with live.client(token) as http:
        s = (await http.get(f"/api/annotations/{ann}/skeleton")).json()
        assert (s["treeCount"], s["nodeCount"], s["edgeCount"], s["version"]) == (2, 4, 2, 7)
        assert [(t["name"], t["nodes"], t["edges"]) for t in s["trees"]] == [
            ("axon", 3, 2),
            ("dendrite", 1, 0),
        ]
        lengths = (await http.get(f"/api/annotations/{ann}/skeleton/lengths")).json()
        axon = next(t for t in lengths["trees"] if t["id"] == "t1")
        assert math.isclose(axon["lengthNm"], 70.0)
        box = (
            await http.get(
                f"/api/annotations/{ann}/skeleton/nodes", params={"box": "0,0,0,10,10,1"}
            )
        ).json()
        assert [n["id"] for n in box["nodes"]] == ["a", "b"] and box["count"] == 2
        tree = (await http.get(f"/api/annotations/{ann}/skeleton/nodes/c/tree")).json()
        assert tree["tree"]["id"] == "t1" and tree["tree"]["name"] == "axon"
        path = (
            await http.get(f"/api/annotations/{ann}/skeleton/path", params={"from": "a", "to": "c"})
        ).json()
        assert path["path"] == ["a", "b", "c"] and math.isclose(path["lengthNm"], 70.0)
        # Refusals
        r = await http.get(f"/api/annotations/{ann}/skeleton/path", params={"from": "a", "to": "d"})
        assert r.status_code == 422 and "different trees" in r.json()["error"]["message"]
        r = await http.get(f"/api/annotations/{ann}/skeleton/nodes/zzz/tree")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_entity"
        assert (
            await http.get(f"/api/annotations/{ann}/skeleton/nodes", params={"box": "1,2"})
        ).status_code == 400
    await c.close()


async def test_diff_between_versions(live: LiveServer) -> None:
    token, ann, c = await _traced(live)
    sk = Skeleton(c.doc)
    sk.move_node("a", [1, 1, 1])
    sk.delete_tree("t2")
    sk.add_node("t1", [5, 5, 5], "e", connect_to="c")
    await c.wait(lambda: c.saved == 10)
    async with live.client(token) as http:
        d = (await http.get(f"/api/annotations/{ann}/skeleton/diff", params={"from": 7})).json()
    assert d["to"] == 10
    assert d["trees"]["removed"]["ids"] == ["t2"]
    assert d["nodes"]["added"]["ids"] == ["e"] and d["nodes"]["removed"]["ids"] == ["d"]
    assert d["nodes"]["moved"]["ids"] == ["a"] and d["edges"] == {"added": 1, "removed": 0}
    await c.close()
