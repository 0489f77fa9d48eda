"""collab/history.py against a live server: revert's catch-up when writers
outpace it (the REST surface is tested in tests/http/test_history.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pycrdt import Map

from collab import history
from collab.document.log import RoomKey
from collab.store import oplog
from collab.sync.room import Room
from tests.conftest import LiveServer
from tests.yclient import YClient, put_node

Revert = Callable[..., Awaitable[history.ChangeResult]]


async def _until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.01)):  # bounded poll
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def revert_while_writers_outpace_it(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch, revert: Revert
) -> None:
    """Revert version 2 with one catch-up round while a writer lands a new
    version right after each of revert's reads of the log: the round ends
    behind the room, with the change of an entry version 2 touched unread."""
    user, token = await live.user()
    ann = await live.annotation(token)
    key = RoomKey(ann, "skeleton")
    a = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    b = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    try:
        assert await a.write(lambda: put_node(a, "n1", {"treeId": "t", "position": [1, 1, 1]}))

        def v2() -> None:  # the version to revert: adds n2 and n4
            with a.doc.transaction():
                put_node(a, "n2", {"treeId": "t", "position": [2, 2, 2]})
                put_node(a, "n4", {"treeId": "t", "position": [4, 4, 4]})

        assert await a.write(v2)
        await b.wait(lambda: b.saved >= 2 and "n4" in b.map("nodes"))
        room: Room = live.services.rooms.rooms[key]
        metrics = live.services.metrics.registry

        async def unrelated() -> None:  # v3, read by the one round
            assert await b.write(lambda: put_node(b, "n3", {"treeId": "t", "position": [3, 3, 3]}))

        async def moves_n2() -> None:  # v4, after that round's read
            assert await b.write(lambda: put_node(b, "n2", {"treeId": "t", "position": [9, 9, 9]}))

        async def while_held() -> None:  # sent during the last read: it must wait
            received = metrics.get_sample_value("collab_ws_bytes_in_total")
            put_node(b, "n5", {"treeId": "t", "position": [5, 5, 5]})
            await _until(
                lambda: metrics.get_sample_value("collab_ws_bytes_in_total") != received,
                "the server to receive n5",
            )
            assert room.version == 4 and "n5" not in room.doc.get("nodes", type=Map)

        script = [unrelated, moves_n2, while_held]
        real = oplog.iter_updates

        async def iter_updates(*args: Any) -> AsyncIterator[Any]:
            async for item in real(*args):
                yield item
            if script:  # a write lands right after each read
                await script.pop(0)()

        monkeypatch.setattr(oplog, "iter_updates", iter_updates)
        result = await revert(live.services.pool, live.services.rooms, key, 2, user, rounds=1)
        monkeypatch.undo()
        # n2 changed again in version 4: kept; n4 (untouched since) goes.
        assert result.kept == [{"path": ["nodes", "n2"], "changedIn": 4}]
        assert result.reverted == [["nodes", "n4"]]
        assert result.version == 5
        assert not script, "revert read the log fewer times than planned"
        # The held write lands after the revert, on the same connection.
        await b.wait(lambda: b.saved >= 6 and "n4" not in b.map("nodes"))
        assert b.closed is None
        nodes = b.map("nodes").to_py() or {}
        assert sorted(nodes) == ["n1", "n2", "n3", "n5"]
        assert nodes["n2"]["position"] == [9, 9, 9]
        async with live.client(token) as http:
            r = await http.get(f"/api/annotations/{ann}/versions", params={"limit": 2})
        newest, revert_version = r.json()["versions"]
        assert revert_version["version"] == 5 and revert_version["summary"]["revert"] == 2
        assert newest["version"] == 6 and newest["summary"]["nodes"]["keys"] == ["n5"]
    finally:
        await a.close()
        await b.close()


async def test_revert_reads_every_later_version_when_writers_outpace_it(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await revert_while_writers_outpace_it(live, monkeypatch, history.revert)
