"""The voxels of a segmentation document, materialised from its log
(collab/segmentation/materialise.py), against a real PostgreSQL."""

from __future__ import annotations

from typing import Any

import numpy as np
from pycrdt import Map

from collab.document.log import RoomKey
from collab.segmentation.materialise import Materialiser
from collab.store import materialised
from collab.volume import encoding as enc
from tests.conftest import LiveServer
from tests.yclient import YClient


def brush(author: int, segment: int, points: list[list[int]], radius: float) -> dict[str, Any]:
    return {"kind": "brush", "layer": "L1", "author": author, "time": 1, "mag": "1",
            "plane": "xy", "points": points, "radius": radius, "segment": segment,
            "erase": False, "mode": "all"}  # fmt: skip


async def voxels(
    live: LiveServer, ann: int, brick: tuple[int, int, int], version: int | None = None
) -> np.ndarray:
    async with live.services.pool.acquire() as conn:
        found = await materialised.bricks_at(
            conn, RoomKey(ann, "segmentation"), "L1", "1", [brick], version
        )
    assert brick in found, f"brick {brick} was not written"
    return enc.from_raw(enc.decompress(found[brick]), np.dtype("uint32"))


async def test_strokes_in_version_order_across_bricks(live: LiveServer) -> None:
    a_id, a = await live.user("Ada")
    ann = await live.annotation(a, "paint")
    writer = await YClient(live.sync_url(ann, "segmentation", token=a, acks="1")).connect()
    layer = {"name": "L1", "dtype": "uint32"}
    assert await writer.write(lambda: writer.map("layers").__setitem__("L1", Map(layer)))
    # Version 2: segment 5 across the border of bricks (0,0,0) and (1,0,0);
    # version 3: segment 6 over part of it.
    ops = writer.map("ops")
    assert await writer.write(
        lambda: ops.__setitem__(f"{a_id}-1", brush(a_id, 5, [[20, 10, 3], [44, 10, 3]], 3))
    )
    assert await writer.write(
        lambda: ops.__setitem__(f"{a_id}-2", brush(a_id, 6, [[40, 10, 3]], 2))
    )
    materialiser = Materialiser(live.services.pool)
    assert await materialiser.catch_up(ann) == 3
    left = await voxels(live, ann, (0, 0, 0))
    right = await voxels(live, ann, (1, 0, 0))
    row = np.concatenate([left[:, 10, 3], right[:, 10, 3]])
    assert row[17:38].tolist() == [5] * 21 and row[38:43].tolist() == [6] * 5
    assert row[43:48].tolist() == [5] * 5 and row[16] == 0 and row[48] == 0
    assert (left[:, :, 2] == 0).all()  # one slice only
    # Version 2's voxels are there too: the brick at version 2 has no 6 yet.
    at2 = await voxels(live, ann, (1, 0, 0), 2)
    assert (at2 == 6).sum() == 0 and (at2 == 5).sum() > 0
    # Nothing more to do; a materialiser that starts over writes the same bytes.
    assert await materialiser.catch_up(ann) == 3
    async with live.services.pool.acquire() as conn:
        await conn.execute("DELETE FROM materialised_versions WHERE annotation_id = $1", ann)
    assert await Materialiser(live.services.pool).catch_up(ann) == 3
    np.testing.assert_array_equal(await voxels(live, ann, (1, 0, 0)), right)
    await writer.close()
