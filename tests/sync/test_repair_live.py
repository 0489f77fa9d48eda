"""The server repairs what concurrent edits break, as a version every replica receives."""

from __future__ import annotations

from pycrdt import Doc

from collab.skeleton.model import Skeleton
from collab.skeleton.repair import violations
from tests.conftest import LiveServer
from tests.yclient import YClient


async def test_offline_edit_of_a_deleted_tree_is_repaired(live: LiveServer) -> None:
    _, token = await live.user()
    ann = await live.annotation(token)
    a = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    sk = Skeleton(a.doc)
    sk.create_tree("t1", name="axon")
    sk.add_node("t1", [1, 1, 1], "n1")
    await a.wait(lambda: a.saved == 2)
    # b goes offline with that state and extends the tree...
    offline = Doc()
    offline.apply_update(a.doc.get_update())
    sb = Skeleton(offline)
    sb.add_node("t1", [2, 2, 2], "n2", connect_to="n1")
    sb.set_comment("n1", "soma")
    # ...while a deletes it.
    sk.delete_tree("t1")
    await a.wait(lambda: a.saved == 3)
    b = await YClient(live.sync_url(ann, token=token, acks="1"), doc=offline).connect()
    await b.wait(lambda: b.saved >= 5)  # b's offline work (4), then the repair (5)
    await a.wait(lambda: "n2" in a.map("nodes"))
    for client in (a, b):
        await client.wait(lambda c=client: violations(c.doc) == [])
        assert Skeleton(client.doc).node("n2").tree_id == "recovered"
    assert (
        a.doc.get_state() == b.doc.get_state() or a.map("nodes").to_py() == b.map("nodes").to_py()
    )
    async with live.client(token) as http:
        versions = (await http.get(f"/api/annotations/{ann}/versions")).json()["versions"]
    repair = versions[0]
    assert repair["author"] is None and repair["summary"]["repair"]["recoveredNodes"] == 1
    assert (
        repair["summary"]["repair"]["droppedEdges"] == 1
        and repair["summary"]["repair"]["droppedComments"] == 1
    )
    await a.close()
    await b.close()
