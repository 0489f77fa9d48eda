"""REST: registering datasets, metadata, HTTP bricks, segment queries, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from collab.volume.encoding import decompress, from_raw
from tests.conftest import LiveServer, live_with, start_server, stop_server, with_settings
from tests.volume.helpers import BrickClient, SmallDataset, expected_brick, make_dataset


@pytest.fixture
def small(live: LiveServer) -> SmallDataset:
    return make_dataset(Path(live.settings.roots[0]) / "small")


async def register(live: LiveServer, name: str = "small", url: str = "small") -> dict:
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": name, "url": url})
        assert r.status_code == 201, r.text
        return r.json()


async def test_register_list_info_and_restart(live: LiveServer, small: SmallDataset) -> None:
    meta = await register(live)
    assert meta["name"] == "small" and meta["voxelSize"] == [4.0, 4.0, 40.0]
    layers = {layer["name"]: layer for layer in meta["layers"]}
    assert layers["color"] == {
        "name": "color",
        "category": "color",
        "dtype": "uint8",
        "boundingBox": {"topLeft": [0, 0, 0], "size": [100, 80, 70]},
        "mags": ["1", "2-2-1", "4-4-2"],
    }
    assert layers["segmentation"]["dtype"] == "uint32"
    assert layers["segmentation"]["mags"] == ["1", "2"]
    assert layers["segmentation"]["mappings"] == ["cells"]
    _, user = await live.user("reader")
    async with live.client(user) as http:
        listed = (await http.get("/api/datasets")).json()["datasets"]
        assert [d["name"] for d in listed] == ["small"]
        assert (await http.get("/api/datasets/small")).json()["layers"] == meta["layers"]
        r = await http.post("/api/annotations", json={"name": "a", "dataset": "small"})
        assert r.status_code == 201
        r = await http.post("/api/annotations", json={"name": "a", "dataset": "nope"})
        assert r.status_code == 422 and "nope" in r.json()["error"]["message"]
    # Registered datasets survive a restart.
    await stop_server(live.server)
    live.server = await start_server(live.settings)
    async with live.client(user) as http:
        assert (await http.get("/api/datasets/small")).json()["layers"] == meta["layers"]


async def test_registration_refusals(live: LiveServer, small: SmallDataset, tmp_path: Path) -> None:
    root = Path(live.settings.roots[0])
    outside = tmp_path / "outside"
    make_dataset(outside)
    os.symlink(outside, root / "escape")
    (root / "broken").mkdir()
    (root / "broken" / "datasource-properties.json").write_text(
        '{"scale": [1, 1, 1], "dataLayers": [{"name": "color", "category": "color"}]}'
    )
    (root / "empty").mkdir()
    _, annotator = await live.user("ann")
    async with live.client(live.admin_token) as http:
        cases = [
            ({"name": "x", "url": "../outside"}, 403, "forbidden"),
            ({"name": "x", "url": str(outside)}, 403, "forbidden"),
            ({"name": "x", "url": "escape"}, 403, "forbidden"),
            ({"name": "x", "url": "s3://bucket/ds"}, 403, "forbidden"),
            ({"name": "x", "url": "missing"}, 404, "not_found"),
            ({"name": "x", "url": "empty"}, 422, "bad_layout"),
            ({"name": "bad name!", "url": "small"}, 400, "bad_request"),
            ({"name": "x"}, 400, "invalid_json"),
        ]
        for body, status, code in cases:
            r = await http.post("/api/datasets", json=body)
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), (body, r.text)
        r = await http.post("/api/datasets", json={"name": "x", "url": "broken"})
        assert r.status_code == 422
        message = r.json()["error"]["message"]
        assert "datasource-properties.json" in message and "elementClass" in message
        assert (
            await http.post("/api/datasets", json={"name": "s", "url": "small"})
        ).status_code == 201
        r = await http.post("/api/datasets", json={"name": "s", "url": "small"})
        assert r.status_code == 409
        assert (await http.get("/api/datasets/none")).status_code == 404
        assert (await http.get("/api/datasets")).json()["datasets"][0]["name"] == "s"
    async with live.client(annotator) as http:
        r = await http.post("/api/datasets", json={"name": "y", "url": "small"})
        assert r.status_code == 403
    async with live.client() as http:
        assert (await http.get("/api/datasets")).status_code == 401


async def test_http_bricks(live: LiveServer, small: SmallDataset) -> None:
    await register(live)
    _, user = await live.user("reader")
    base = "/api/datasets/small/layers"
    async with live.client(user) as http:
        for b in [(0, 0, 0), (1, 2, 1), (3, 2, 2)]:
            r = await http.get(f"{base}/color/mags/1/bricks/{b[0]}/{b[1]}/{b[2]}")
            assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
            got = from_raw(r.content, np.dtype("uint8"))
            np.testing.assert_array_equal(got, expected_brick(small.color, b))
            etag = r.headers["etag"]
            again = await http.get(
                f"{base}/color/mags/1/bricks/{b[0]}/{b[1]}/{b[2]}", headers={"if-none-match": etag}
            )
            assert again.status_code == 304 and again.headers["etag"] == etag
        # Byte order of the contract: voxel (i, j, k) at (i + 32 (j + 32 k)) * itemsize.
        r = await http.get(f"{base}/segmentation/mags/1/bricks/1/1/1")
        raw = r.content
        i, j, k = 5, 7, 9
        value = int.from_bytes(raw[(i + 32 * (j + 32 * k)) * 4 :][:4], "little")
        assert value == small.segmentation[32 + i, 32 + j, 32 + k]
        # Anisotropic mag 2-2-1: voxel i covers mag-1 voxels [2i, 2i+2) in x and y.
        r = await http.get(f"{base}/color/mags/2-2-1/bricks/0/0/0")
        got = from_raw(r.content, np.dtype("uint8"))
        block = small.color[:64, :64, :32].astype(np.float32).reshape(32, 2, 32, 2, 32)
        np.testing.assert_array_equal(got, block.mean(axis=(1, 3)).round().astype(np.uint8))
        # Mapped bricks: supervoxels through the agglomerate mapping.
        r = await http.get(f"{base}/segmentation/mags/1/bricks/0/0/0?mapping=cells")
        got = from_raw(r.content, np.dtype("uint32"))
        np.testing.assert_array_equal(
            got, small.mapping[expected_brick(small.segmentation, (0, 0, 0))]
        )
        for path, status in [
            (f"{base}/color/mags/1/bricks/4/0/0", 404),
            (f"{base}/color/mags/1/bricks/-1/0/0", 404),
            (f"{base}/color/mags/1/bricks/0/0/99999999999", 404),
            (f"{base}/color/mags/1/bricks/a/0/0", 400),
            (f"{base}/color/mags/8/bricks/0/0/0", 404),
            (f"{base}/color/mags/3/bricks/0/0/0", 400),
            (f"{base}/nope/mags/1/bricks/0/0/0", 404),
            (f"{base}/segmentation/mags/1/bricks/0/0/0?mapping=nope", 404),
            ("/api/datasets/nope/layers/color/mags/1/bricks/0/0/0", 404),
        ]:
            r = await http.get(path)
            assert r.status_code == status, (path, r.text)
            assert "error" in r.json()
        metrics = (await http.get("/metrics")).text
        assert "collab_brick_cache_hits_total" in metrics
        assert "collab_brick_cache_misses_total" in metrics


async def test_segment_queries(live: LiveServer, small: SmallDataset) -> None:
    await register(live)
    _, user = await live.user("reader")
    base = "/api/datasets/small/layers/segmentation/segments"
    seg = small.segmentation
    async with live.client(user) as http:
        r = await http.get(f"{base}/at", params={"x": 60, "y": 45, "z": 40})
        assert r.json()["segment"] == int(seg[60, 45, 40])
        r = await http.get(f"{base}/at", params={"x": 60, "y": 45, "z": 40, "mapping": "cells"})
        assert r.json()["segment"] == int(small.mapping[seg[60, 45, 40]])
        target = int(seg[60, 45, 40])
        r = await http.get(f"{base}/{target}", params={"mag": "1"})
        info = r.json()
        where = np.argwhere(seg == target)
        assert info["voxelCount"] == len(where)
        assert info["boundingBox"] == {
            "topLeft": where.min(axis=0).tolist(),
            "size": (where.max(axis=0) - where.min(axis=0) + 1).tolist(),
        }
        agglomerate = int(small.mapping[target])
        r = await http.get(f"{base}/{agglomerate}", params={"mag": "1", "mapping": "cells"})
        members = np.isin(seg, np.flatnonzero(small.mapping == agglomerate))
        assert r.json()["voxelCount"] == int(members.sum())
        r = await http.get(f"{base}/{target}", params={"mag": "2"})
        assert r.json()["voxelCount"] == int((seg[::2, ::2, ::2] == target).sum())
        for path, params, status in [
            (f"{base}/at", {"x": 1000, "y": 0, "z": 0}, 400),
            (f"{base}/at", {"x": 1, "y": 0}, 400),
            (f"{base}/99999", {"mag": "1"}, 404),
            (f"{base}/-3", {}, 400),
            ("/api/datasets/small/layers/color/segments/at", {"x": 1, "y": 1, "z": 1}, 400),
        ]:
            r = await http.get(path, params=params)
            assert r.status_code == status, (path, params, r.text)
        assert (await http.get("/api/datasets/small/synapses")).status_code == 404
        r = await http.get("/api/datasets/small/layers/segmentation/mappings/cells")
        assert r.json()["agglomerates"] == small.mapping.tolist()


async def test_object_storage_url(settings, tmp_path: Path) -> None:
    """A dataset behind an fsspec URL (here the in-memory filesystem, standing
    in for s3:// or gs://) is read through zarr's FsspecStore: byte-range reads
    of shard indexes and chunks instead of local files."""
    import fsspec

    source = make_dataset(tmp_path / "src")
    fs = fsspec.filesystem("memory")
    fs.put(str(source.root), "/bucket/em/small", recursive=True)
    local_root = str(settings.data_dir / "datasets")
    try:
        async with live_with(
            with_settings(settings, dataset_roots=(local_root, "memory://bucket/em/"))
        ) as live:
            async with live.client(live.admin_token) as http:
                r = await http.post(
                    "/api/datasets", json={"name": "remote", "url": "memory://bucket/em/small"}
                )
                assert r.status_code == 201, r.text
                r = await http.post(
                    "/api/datasets", json={"name": "other", "url": "memory://bucket/other/x"}
                )
                assert r.status_code == 403
                for b in [(1, 1, 1), (3, 2, 2)]:
                    r = await http.get(
                        f"/api/datasets/remote/layers/color/mags/1/bricks/{b[0]}/{b[1]}/{b[2]}"
                    )
                    assert r.status_code == 200
                    np.testing.assert_array_equal(
                        from_raw(r.content, np.dtype("uint8")), expected_brick(source.color, b)
                    )
            client = await BrickClient.connect(
                f"{live.ws_url}/data/remote/segmentation?token={live.admin_token}"
            )
            try:
                records = await client.fetch(
                    1, (1, 1, 1), [(0, 0, 0), (1, 1, 1), (9, 9, 9)], encoding=1
                )
                by = {r.brick: r for r in records}
                assert by[(9, 9, 9)].status == 1
                np.testing.assert_array_equal(
                    from_raw(decompress(by[(1, 1, 1)].payload), np.dtype("uint32")),
                    expected_brick(source.segmentation, (1, 1, 1)),
                )
            finally:
                await client.close()
    finally:
        fs.rm("/bucket", recursive=True)


async def test_datasets_shared_with_teams(live: LiveServer, small: SmallDataset) -> None:
    from tests.work.helpers import make_org

    org = await make_org(live)
    async with live.client(live.admin_token) as http:
        r = await http.post(
            "/api/datasets", json={"name": "lab-a", "url": "small", "teams": [org.team_a]}
        )
        assert r.status_code == 201 and r.json()["teams"] == [org.team_a]
        assert (
            await http.post("/api/datasets", json={"name": "open", "url": "small"})
        ).status_code == 201
        r = await http.post("/api/datasets", json={"name": "x", "url": "small", "teams": [999]})
        assert r.status_code == 404
    async with org.client(org.manager_b) as http:
        r = await http.post(
            "/api/datasets", json={"name": "y", "url": "small", "teams": [org.team_a]}
        )
        assert r.status_code == 403  # managers share with their own teams only
    brick = "/api/datasets/lab-a/layers/color/mags/1/bricks/0/0/0"
    async with org.client(org.annotator) as http:
        assert (await http.get("/api/datasets/lab-a")).status_code == 200
        assert (await http.get(brick)).status_code == 200
        names = [d["name"] for d in (await http.get("/api/datasets")).json()["datasets"]]
        assert names == ["lab-a", "open"]
    async with org.client(org.outsider) as http:
        assert (await http.get("/api/datasets/lab-a")).status_code == 403
        assert (await http.get(brick)).status_code == 403
        assert (await http.get("/api/datasets/open")).status_code == 200
        names = [d["name"] for d in (await http.get("/api/datasets")).json()["datasets"]]
        assert names == ["open"]
    import websockets

    async with websockets.connect(
        f"{live.ws_url}/data/lab-a/color?token={org.outsider.token}"
    ) as ws:
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 4403
    # Nor through an annotation: the outsider cannot create one on it, and
    # one shared with them does not show them its voxels (the fallback).
    async with org.client(org.outsider) as http:
        r = await http.post("/api/annotations", json={"name": "sneak", "dataset": "lab-a"})
        assert r.status_code == 403, r.text
    async with org.client(org.annotator) as http:
        ann = (await http.post("/api/annotations", json={"name": "a", "dataset": "lab-a"})).json()
        r = await http.post(
            f"/api/annotations/{ann['id']}/grants",
            json={"user": org.outsider.id, "role": "viewer"},
        )
        assert r.status_code == 201, r.text
    async with org.client(org.outsider) as http:
        r = await http.get(f"/api/annotations/{ann['id']}/volume/L1/1/0/0/0")
        assert r.status_code == 403, r.text
    async with websockets.connect(
        f"{live.ws_url}/volume/{ann['id']}/L1?token={org.outsider.token}"
    ) as ws:
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 4403
