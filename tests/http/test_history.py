"""History over REST and the replay socket: versions, document at a version,
restore, selective revert (with conflicts), replay."""

from __future__ import annotations

import asyncio

import orjson
import websockets
from pycrdt import Doc, Map

from collab.sync import messages as m
from tests.conftest import LiveServer
from tests.yclient import YClient, put_node


async def _session(live: LiveServer) -> tuple[str, int, YClient]:
    _, token = await live.user()
    ann = await live.annotation(token)
    client = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    return token, ann, client


async def _step(client: YClient, version: int) -> None:
    await client.wait(lambda: client.saved >= version)


async def test_versions_are_paged_and_documents_readable_at_any_version(live: LiveServer) -> None:
    token, ann, a = await _session(live)
    for i in range(1, 8):
        put_node(a, str(i), {"treeId": "t", "position": [i, 0, 0]})
        await _step(a, i)
    async with live.client(token) as http:
        page1 = (await http.get(f"/api/annotations/{ann}/versions", params={"limit": 3})).json()
        assert [v["version"] for v in page1["versions"]] == [7, 6, 5]
        page2 = (
            await http.get(
                f"/api/annotations/{ann}/versions", params={"limit": 3, "before": page1["next"]}
            )
        ).json()
        assert [v["version"] for v in page2["versions"]] == [4, 3, 2]
        v = page1["versions"][0]
        assert (
            v["author"] is not None
            and v["time"]
            and v["summary"]["nodes"] == {"add": 1, "keys": ["7"]}
        )
        doc3 = (await http.get(f"/api/annotations/{ann}/versions/3")).json()
        assert sorted(doc3["content"]["nodes"]) == ["1", "2", "3"]
        assert doc3["content"]["nodes"]["2"]["position"] == [2, 0, 0]
        assert (await http.get(f"/api/annotations/{ann}/versions/99")).status_code == 404
        seg = (
            await http.get(f"/api/annotations/{ann}/versions", params={"doc": "segmentation"})
        ).json()
        assert seg["versions"] == []
        assert (
            await http.get(f"/api/annotations/{ann}/versions", params={"doc": "nope"})
        ).status_code == 404
    await a.close()


async def test_restore_makes_an_old_state_the_newest_version(live: LiveServer) -> None:
    token, ann, a = await _session(live)
    a.map("trees")["t1"] = Map({"name": "first", "color": [1, 0, 0, 1]})
    put_node(a, "1", {"treeId": "t1", "position": [1, 1, 1]})
    await _step(a, 2)
    put_node(a, "2", {"treeId": "t1", "position": [2, 2, 2]})
    a.map("trees")["t1"]["name"] = "renamed"
    del a.map("nodes")["1"]
    await _step(a, 5)
    b = await YClient(live.sync_url(ann, token=token)).connect()
    async with live.client(token) as http:
        r = await http.post(f"/api/annotations/{ann}/restore", json={"version": 2})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 6
        versions = (await http.get(f"/api/annotations/{ann}/versions")).json()["versions"]
        assert [v["version"] for v in versions] == [6, 5, 4, 3, 2, 1]
        assert versions[0]["summary"]["restore"] == 2
    for c in (a, b):  # connected clients receive the restore as an update
        await c.wait(lambda c=c: set(c.map("nodes").keys()) == {"1"})
        assert c.map("trees").to_py() == {"t1": {"name": "first", "color": [1, 0, 0, 1]}}
    # A client reconnecting with its old state does not duplicate anything.
    stale = Doc()
    stale.apply_update(a.doc.get_update())
    c = await YClient(live.sync_url(ann, token=token), doc=stale).connect()
    assert set(c.map("nodes").keys()) == {"1"}
    for x in (a, b, c):
        await x.close()


async def test_revert_undoes_one_version_and_keeps_later_work(live: LiveServer) -> None:
    token, ann, a = await _session(live)
    a.map("trees")["t1"] = Map({"name": "axon", "color": [1, 0, 0, 1]})  # v1
    await _step(a, 1)
    with a.doc.transaction():  # v2: the version we will revert
        put_node(a, "n1", {"treeId": "t1", "position": [1, 1, 1]})
        put_node(a, "n2", {"treeId": "t1", "position": [2, 2, 2]})
        a.map("comments")["n1"] = "soma"
        a.map("trees")["t1"]["name"] = "dendrite"
    await _step(a, 2)
    b = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    put_node(b, "n2", {"treeId": "t1", "position": [9, 9, 9]})  # v3 touches n2 again
    put_node(b, "n3", {"treeId": "t1", "position": [3, 3, 3]})  # v4 unrelated
    await _step(b, 4)
    async with live.client(token) as http:
        r = await http.post(f"/api/annotations/{ann}/revert", json={"version": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == 5
    assert ["nodes", "n1"] in body["reverted"] and ["comments", "n1"] in body["reverted"]
    assert ["trees", "t1", "name"] in body["reverted"]
    assert body["kept"] == [{"path": ["nodes", "n2"], "changedIn": 3}]
    for c in (a, b):
        await c.wait(lambda c=c: "n1" not in c.map("nodes"))
        assert c.map("nodes")["n2"]["position"] == [9, 9, 9]
        assert "n3" in c.map("nodes")
        assert "n1" not in c.map("comments")
        assert c.map("trees")["t1"]["name"] == "axon"
    async with live.client(token) as http:
        r = await http.post(f"/api/annotations/{ann}/revert", json={"version": 42})
        assert r.status_code == 404
        assert (
            await http.post(f"/api/annotations/{ann}/revert", json={"version": "x"})
        ).status_code == 400
    await a.close()
    await b.close()


async def test_revert_of_a_deletion_brings_the_tree_back(live: LiveServer) -> None:
    token, ann, a = await _session(live)
    a.map("trees")["t1"] = Map({"name": "axon", "isVisible": True})
    await _step(a, 1)
    del a.map("trees")["t1"]
    await _step(a, 2)
    async with live.client(token) as http:
        r = await http.post(f"/api/annotations/{ann}/revert", json={"version": 2})
    assert r.status_code == 200 and r.json()["version"] == 3
    await a.wait(lambda: "t1" in a.map("trees"))
    assert a.map("trees")["t1"].to_py() == {"name": "axon", "isVisible": True}
    await a.close()


async def test_replay_streams_versions_in_order(live: LiveServer) -> None:
    token, ann, a = await _session(live)
    for i in range(1, 6):
        put_node(a, str(i), {"treeId": "t", "position": [i, 0, 0]})
        await _step(a, i)
    url = f"{live.ws_url}/replay/{ann}/skeleton?token={token}&from=3&to=5&speed=1000"
    doc = Doc()
    seen = []
    async with websockets.connect(url) as ws:
        async for frame in ws:
            if isinstance(frame, str):
                meta = orjson.loads(frame)
                if meta["type"] == "version":
                    seen.append(meta["version"])
                if meta["type"] == "end":
                    break
            else:
                msg = m.parse(frame)
                assert isinstance(msg, m.SyncMessage)
                doc.apply_update(msg.payload)
                if msg.sub == m.SyncType.STEP2:
                    assert sorted(doc.get("nodes", type=Map).keys()) == ["1", "2"]
    assert seen == [3, 4, 5]
    assert sorted(doc.get("nodes", type=Map).keys()) == ["1", "2", "3", "4", "5"]
    _, stranger = await live.user("s")
    async with websockets.connect(f"{live.ws_url}/replay/{ann}/skeleton?token={stranger}") as ws:
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 4403
    await a.close()
