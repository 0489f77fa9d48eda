"""Materialised bricks, versioned like the log (collab/store/materialised.py)."""

from __future__ import annotations

import asyncio

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
        # Written already (by another process): nothing is written again.
        assert not await materialised.write_version(
            conn, key, 5, [BrickRow("L", "1", (0, 0, 0), b"v5'")]
        )
        assert (await materialised.bricks_at(conn, key, "L", "1", [(0, 0, 0)]))[(0, 0, 0)] == b"v5"
        # What a version wrote, read back: among named bricks, or all of it.
        assert await materialised.version_rows(
            conn, key, 3, {("L", "1"): [(0, 0, 0), (2, 0, 0)], ("L", "2"): [(0, 0, 0)]}
        ) == [BrickRow("L", "1", (0, 0, 0), b"v3")]
        assert sorted(
            await materialised.version_rows(conn, key, 3, None), key=lambda r: r.brick
        ) == [BrickRow("L", "1", (0, 0, 0), b"v3"), BrickRow("L", "1", (1, 0, 0), b"a")]
        assert await materialised.version_rows(conn, key, 4, None) == []
        # The materialised version reset (the voxels to be written again from
        # the log): replaced, not doubled.
        await conn.execute("DELETE FROM materialised_versions WHERE annotation_id = $1", ann)
        assert await materialised.write_version(
            conn, key, 5, [BrickRow("L", "1", (0, 0, 0), b"v5'")]
        )
        assert (await materialised.bricks_at(conn, key, "L", "1", [(0, 0, 0)]))[(0, 0, 0)] == b"v5'"


async def test_a_version_is_written_once_whoever_writes_it(live: LiveServer) -> None:
    """Two processes write the same version at once, the first version of a
    document or a later one: the second waits for the first's transaction,
    then finds the version written and writes nothing."""
    _, token = await live.user("Bo")
    pool = live.services.pool
    for first in (True, False):
        ann = await live.annotation(token, "race")
        key = RoomKey(ann, "segmentation")
        if not first:
            async with pool.acquire() as conn:
                assert await materialised.write_version(conn, key, 1, [])
        v = 1 if first else 2
        async with pool.acquire() as one, pool.acquire() as two:
            outer = one.transaction()
            await outer.start()
            assert await materialised.write_version(
                one, key, v, [BrickRow("L", "1", (0, 0, 0), b"one")]
            )
            late = asyncio.create_task(
                materialised.write_version(two, key, v, [BrickRow("L", "1", (0, 0, 0), b"two")])
            )
            await asyncio.sleep(0.3)
            assert not late.done(), "the second did not wait for the first"
            await outer.commit()
            assert await late is False
            assert await materialised.materialised_version(two, key) == v
            assert await materialised.bricks_at(two, key, "L", "1", [(0, 0, 0)]) == {
                (0, 0, 0): b"one"
            }
