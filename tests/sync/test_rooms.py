"""Live sync over the real server: convergence, read-only peers, awareness, acks."""

from __future__ import annotations

import asyncio

from pycrdt import Doc, Map

from collab.document.log import RoomKey
from collab.store import oplog
from collab.sync import messages as m
from tests.conftest import LiveServer
from tests.yclient import YClient, put_node


async def test_two_clients_converge_under_concurrent_edits(live: LiveServer) -> None:
    _, token = await live.user()
    ann = await live.annotation(token)
    a = await YClient(live.sync_url(ann, token=token)).connect()
    b = await YClient(live.sync_url(ann, token=token)).connect()
    for i in range(50):
        put_node(a, f"a-{i}", {"treeId": "t1", "position": [i, 0, 0]})
        put_node(b, f"b-{i}", {"treeId": "t1", "position": [0, i, 0]})
        if i % 10 == 0:
            await asyncio.sleep(0)
    a.map("trees")["t1"] = Map({"name": "from a"})
    b.map("trees")["t1"] = Map({"name": "from b"})
    await a.wait(lambda: len(a.map("nodes")) == 100)
    await b.wait(lambda: len(b.map("nodes")) == 100)
    await a.wait(lambda: a.map("trees").to_py() == b.map("trees").to_py())
    assert a.map("nodes").to_py() == b.map("nodes").to_py()
    # A third client joining later gets everything from the server.
    c = await YClient(live.sync_url(ann, token=token)).connect()
    assert c.map("nodes").to_py() == a.map("nodes").to_py()
    assert c.map("trees").to_py() == a.map("trees").to_py()
    for client in (a, b, c):
        await client.close()


async def test_every_update_is_saved_and_acknowledged(live: LiveServer) -> None:
    _, token = await live.user()
    ann = await live.annotation(token)
    a = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    for i in range(20):
        put_node(a, str(i), {"treeId": "t", "position": [i, i, i]})
        await asyncio.sleep(0)
    await a.wait(lambda: a.saved == 20)
    async with live.client(token) as http:
        r = await http.get(f"/api/annotations/{ann}/versions", params={"limit": 100})
    versions = [v["version"] for v in r.json()["versions"]]
    assert versions == list(range(20, 0, -1))
    assert r.json()["versions"][0]["summary"]["nodes"]["add"] == 1
    await a.close()


async def test_viewer_gets_everything_but_cannot_write(live: LiveServer) -> None:
    _, owner = await live.user("owner")
    viewer_id, viewer = await live.user("viewer")
    ann = await live.annotation(owner)
    async with live.client(owner) as http:
        r = await http.post(
            f"/api/annotations/{ann}/grants", json={"user": viewer_id, "role": "viewer"}
        )
        assert r.status_code == 201
    w = await YClient(live.sync_url(ann, token=owner)).connect()
    put_node(w, "n1", {"treeId": "t", "position": [1, 2, 3]})
    v = await YClient(live.sync_url(ann, token=viewer, acks="1")).connect()
    await v.wait(lambda: "n1" in v.map("nodes"))
    put_node(v, "evil", {"treeId": "t", "position": [0, 0, 0]})
    await v.wait(lambda: bool(v.denied))
    assert "read-only" in v.denied[0]
    put_node(w, "n2", {"treeId": "t", "position": [4, 5, 6]})
    await v.wait(lambda: "n2" in v.map("nodes"))
    await w.wait(lambda: v.saved >= 2)
    assert "evil" not in w.map("nodes")
    fresh = await YClient(live.sync_url(ann, token=owner)).connect()
    assert "evil" not in fresh.map("nodes") and "n2" in fresh.map("nodes")
    async with live.client(owner) as http:
        r = await http.get(f"/api/annotations/{ann}/versions")
    assert len(r.json()["versions"]) == 2
    for c in (w, v, fresh):
        await c.close()


async def test_awareness_is_relayed_echoed_and_dropped_on_disconnect(live: LiveServer) -> None:
    _, token = await live.user()
    ann = await live.annotation(token)
    a = await YClient(live.sync_url(ann, token=token)).connect()
    b = await YClient(live.sync_url(ann, token=token)).connect()
    state = m.pack_awareness_update([m.AwarenessEntry(4242, 1, '{"user":"a","cursor":[1,2,3]}')])
    await a.send_raw(m.pack_awareness(state))
    await b.wait(lambda: 4242 in b.awareness)
    await a.wait(lambda: 4242 in a.awareness)  # echoed to the sender too
    # A late joiner gets current presence, and query-awareness answers it again.
    c = await YClient(live.sync_url(ann, token=token)).connect()
    await c.wait(lambda: 4242 in c.awareness)
    c.awareness.clear()
    await c.send_raw(m.pack_query_awareness())
    await c.wait(lambda: 4242 in c.awareness)
    await a.close()
    await b.wait(lambda: 4242 not in b.awareness)
    await c.wait(lambda: 4242 not in c.awareness)
    await b.close()
    await c.close()


async def test_room_unloads_when_idle_and_reloads_from_the_log(live: LiveServer) -> None:
    _, token = await live.user()
    ann = await live.annotation(token)
    a = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    for i in range(120):  # crosses two snapshots (snapshot_every=50)
        put_node(a, str(i), {"treeId": "t", "position": [i, 0, 0]})
        if i % 7 == 0:
            del a.map("nodes")[str(i)]
    await a.wait(lambda: a.saved >= 120 + 18)
    expected = a.map("nodes").to_py()
    # Snapshots are written off the event loop once their version is durable.
    await asyncio.wait_for(live.services.rooms.snapshotter.wait_idle(), 30)
    async with live.services.pool.acquire() as db:
        snaps = [
            r["version"]
            for r in await db.fetch("SELECT version FROM doc_snapshots ORDER BY version")
        ]
        state = await oplog.load(db, RoomKey(ann, "skeleton"))
    assert 100 in snaps and set(snaps) <= {50, 100}
    assert state.snapshot_version == 100 and len(state.updates) == 38
    await a.close()
    rooms = live.services.rooms.rooms
    await a.wait(lambda: not rooms, timeout=10)
    # A fresh client is answered from the stored snapshot and tail while the
    # room loads, and can edit at once.
    b = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    assert b.map("nodes").to_py() == expected
    put_node(b, "new", {"treeId": "t", "position": [0, 0, 0]})
    await b.wait(lambda: b.saved == 139)
    stale_state = b.doc.get_update()
    await b.close()
    await b.wait(lambda: not rooms, timeout=10)
    # A client that already has most of it gets only the difference.
    stale = Doc()
    stale.apply_update(stale_state)
    stale.get("nodes", type=Map)["offline"] = {"treeId": "t", "position": [5, 5, 5]}
    c = await YClient(live.sync_url(ann, token=token, acks="1"), doc=stale).connect()
    await c.wait(lambda: c.saved == 140)
    d = await YClient(live.sync_url(ann, token=token)).connect()
    assert set(d.map("nodes").keys()) == set(expected) | {"new", "offline"}
    await c.close()
    await d.close()


async def test_fresh_client_of_a_loaded_room_gets_the_stored_parts(live: LiveServer) -> None:
    """A client that has nothing is answered from the latest snapshot and the
    records since (no encoding of the whole document), oldest first, and has
    everything once synced; concurrent sets of one key included."""
    _, token = await live.user()
    ann = await live.annotation(token)
    a = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    b = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    for i in range(60):  # crosses a snapshot (snapshot_every=50)
        put_node(a, f"a{i}", {"treeId": "t", "position": [i, 0, 0]})
    await a.wait(lambda: a.saved >= 60)
    await asyncio.wait_for(live.services.rooms.snapshotter.wait_idle(), 30)
    room = live.services.rooms.rooms[RoomKey(ann, "skeleton")]
    assert room.state_parts is not None and room.state_parts[0][0] == 50
    a.map("trees")["t"] = Map({"name": "from a"})
    b.map("trees")["t"] = Map({"name": "from b"})
    await a.wait(lambda: a.map("trees").to_py() == b.map("trees").to_py() != {})
    for _ in range(5):
        fresh = await YClient(live.sync_url(ann, token=token)).connect()
        assert fresh.map("nodes").to_py() == a.map("nodes").to_py()
        assert fresh.map("trees").to_py() == a.map("trees").to_py()
        await fresh.close()
    for client in (a, b):
        await client.close()
