"""The voxels of a segmentation document, materialised from its log
(collab/segmentation/materialise.py), against a real PostgreSQL."""

from __future__ import annotations

import asyncio
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


async def test_bricks_over_http_at_any_version_over_the_fallback(live: LiveServer) -> None:
    """The annotation's volume layer over its dataset's segmentation: painted
    voxels where its ops wrote, the dataset's elsewhere; any version."""
    from pathlib import Path

    from tests.volume.helpers import make_dataset

    data = make_dataset(Path(live.settings.roots[0]) / "small")
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": "small", "url": "small"})
        assert r.status_code == 201, r.text
    a_id, a = await live.user("Ada")
    async with live.client(a) as http:
        ann = (await http.post("/api/annotations", json={"name": "v", "dataset": "small"})).json()[
            "id"
        ]
    writer = await YClient(live.sync_url(ann, "segmentation", token=a, acks="1")).connect()
    layer = {"name": "L1", "dtype": "uint32", "fallback": "segmentation"}
    assert await writer.write(lambda: writer.map("layers").__setitem__("L1", Map(layer)))
    op = brush(a_id, 99, [[5, 5, 2]], 2)
    assert await writer.write(lambda: writer.map("ops").__setitem__(f"{a_id}-1", op))
    base = f"/api/annotations/{ann}/volume/L1/1/0/0/0"
    async with live.client(a) as http:
        r = await http.get(base)
        assert r.status_code == 200 and r.headers["x-brick-dtype"] == "uint32", r.text
        assert r.headers["x-version"] == "2"
        now = enc.from_raw(r.content, np.dtype("uint32"))
        want = data.segmentation[:32, :32, :32].astype(np.uint32).copy()
        x, y = np.mgrid[0:32, 0:32]
        want[:, :, 2][((x + 0.5 - 5.5) ** 2 + (y + 0.5 - 5.5) ** 2) <= 4] = 99
        np.testing.assert_array_equal(now, want)
        before = enc.from_raw(
            (await http.get(base, params={"version": 1})).content, np.dtype("uint32")
        )
        np.testing.assert_array_equal(before, data.segmentation[:32, :32, :32])
        assert (await http.get(base, params={"version": 9})).status_code == 404
        assert (await http.get(f"/api/annotations/{ann}/volume/L9/1/0/0/0")).status_code == 404
        assert (await http.get(f"/api/annotations/{ann}/volume/L1/1/x/0/0")).status_code == 400
    # Nobody read it: the materialiser followed the log by itself.
    op2 = brush(a_id, 7, [[20, 20, 2]], 1)
    assert await writer.write(lambda: writer.map("ops").__setitem__(f"{a_id}-2", op2))
    # The follower runs on the durable callback; bounded wait on its progress.
    await asyncio.wait_for(live.server.config.app.state.materialiser.wait_until(ann, 3), 10)
    async with live.services.pool.acquire() as conn:
        assert await materialised.materialised_version(conn, RoomKey(ann, "segmentation")) == 3
    await writer.close()


async def test_coarser_mags_follow(live: LiveServer) -> None:
    from collab.segmentation.paint import downsample_labels

    a_id, a = await live.user("Ada")
    ann = await live.annotation(a, "mags")
    writer = await YClient(live.sync_url(ann, "segmentation", token=a, acks="1")).connect()
    layer = {"name": "L1", "dtype": "uint32", "mags": ["1", "2-2-1", "4-4-2"]}
    assert await writer.write(lambda: writer.map("layers").__setitem__("L1", Map(layer)))
    op = brush(a_id, 5, [[20, 20, 4], [60, 30, 4]], 6)  # over bricks (0..1, 0, 0) of mag 1
    assert await writer.write(lambda: writer.map("ops").__setitem__(f"{a_id}-1", op))
    assert await Materialiser(live.services.pool).catch_up(ann) == 2
    key = RoomKey(ann, "segmentation")
    async with live.services.pool.acquire() as conn:
        fine = await materialised.bricks_at(
            conn, key, "L1", "1", [(x, y, 0) for x in (0, 1) for y in (0, 1)]
        )
        mid = await materialised.bricks_at(conn, key, "L1", "2-2-1", [(0, 0, 0)])
        coarse = await materialised.bricks_at(conn, key, "L1", "4-4-2", [(0, 0, 0)])
    u32 = np.dtype("uint32")
    assert (1, 1, 0) in fine  # the stroke (y 14..36) reaches bricks of y = 1 too
    whole = np.zeros((64, 64, 32), dtype=np.uint32)
    for b, data in fine.items():
        x, y = b[0] * 32, b[1] * 32
        whole[x : x + 32, y : y + 32, :] = enc.from_raw(enc.decompress(data), u32)
    got_mid = enc.from_raw(enc.decompress(mid[(0, 0, 0)]), u32)
    np.testing.assert_array_equal(got_mid, downsample_labels(whole, (2, 2, 1)))
    assert (got_mid == 5).sum() > 0
    # 4-4-2's brick (0, 0, 0) covers 2-2-1's bricks (0..1, 0..1, 0..1): only
    # (0, 0, 0) of those holds anything.
    got_coarse = enc.from_raw(enc.decompress(coarse[(0, 0, 0)]), u32)
    np.testing.assert_array_equal(got_coarse[:16, :16, :16], downsample_labels(got_mid, (2, 2, 2)))
    assert (got_coarse[16:] == 0).all() and (got_coarse[:, 16:] == 0).all()
    await writer.close()
