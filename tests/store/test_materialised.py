"""Materialised bricks, versioned like the log (collab/store/materialised.py)."""

from __future__ import annotations

from collab.document.log import RoomKey
from collab.store import materialised
from collab.store.materialised import BrickRow
from tests.conftest import LiveServer


async def test_bricks_at_a_version_and_the_materialised_version(live: LiveServer) -> None:
    _, token = await live.user("Ada")
    ann = await live.annotation(token, "m")
    key = RoomKey(ann, "segmentation")
    pool = live.services.pool
    async with pool.acquire() as conn:
        assert await materialised.materialised_version(conn, key) == 0
        await materialised.write_version(
            conn,
            key,
            3,
            [BrickRow("L", "1", (0, 0, 0), b"v3"), BrickRow("L", "1", (1, 0, 0), b"a")],
        )
        await materialised.write_version(conn, key, 5, [BrickRow("L", "1", (0, 0, 0), b"v5")])
        await materialised.write_version(conn, key, 4, [])  # late: the version never goes back
        assert await materialised.materialised_version(conn, key) == 5
        want = [(0, 0, 0), (1, 0, 0), (2, 0, 0)]
        assert await materialised.bricks_at(conn, key, "L", "1", want) == {
            (0, 0, 0): b"v5",
            (1, 0, 0): b"a",
        }
        assert await materialised.bricks_at(conn, key, "L", "1", want, 4) == {
            (0, 0, 0): b"v3",
            (1, 0, 0): b"a",
        }
        assert await materialised.bricks_at(conn, key, "L", "1", want, 2) == {}
        assert await materialised.bricks_at(conn, key, "L", "2", want) == {}
        # Written again (a resumed materialiser): replaced, not doubled.
        await materialised.write_version(conn, key, 5, [BrickRow("L", "1", (0, 0, 0), b"v5'")])
        assert (await materialised.bricks_at(conn, key, "L", "1", [(0, 0, 0)]))[(0, 0, 0)] == b"v5'"
