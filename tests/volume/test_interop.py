"""Datasets written by the `webknossos` library and by `ome-zarr` (each in its
own venv, see tests/venvs.py) open and serve bricks equal to what those
libraries read themselves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from collab.volume.encoding import from_raw
from tests.conftest import LiveServer
from tests.venvs import OME_ZARR, WEBKNOSSOS, run_script, tool_python
from tests.volume.helpers import BrickClient

# Creating a tool venv on a fresh machine downloads its packages: minutes, once.
pytestmark = pytest.mark.timeout(900)

HERE = Path(__file__).parent / "interop"


@pytest.fixture(scope="module")
def webknossos_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("wk") / "wkds"
    run_script(tool_python(WEBKNOSSOS), HERE / "write_webknossos.py", str(root))
    return root, json.loads(Path(str(root) + ".json").read_text())


@pytest.fixture(scope="module", params=["0.5", "0.4"])
def ome_dataset(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict, str]:
    root = tmp_path_factory.mktemp("ome") / f"ome{request.param.replace('.', '')}"
    out = run_script(tool_python(OME_ZARR), HERE / "write_omezarr.py", str(root), request.param)
    return root, json.loads(out), request.param


async def _register(live: LiveServer, source: Path, name: str) -> dict:
    target = Path(live.settings.roots[0]) / name
    shutil.copytree(source, target)
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": name, "url": name})
        assert r.status_code == 201, r.text
        return r.json()


async def test_webknossos_dataset(live: LiveServer, webknossos_dataset: tuple[Path, dict]) -> None:
    root, expected = webknossos_dataset
    meta = await _register(live, root, "wk")
    assert meta["layout"] == "webknossos" and meta["voxelSize"] == [11.24, 11.24, 25.0]
    layers = {layer["name"]: layer for layer in meta["layers"]}
    assert layers["color"]["boundingBox"] == {"topLeft": [10, 20, 30], "size": [100, 70, 60]}
    assert layers["color"]["mags"] == ["1", "2-2-1", "4-4-2"]
    assert layers["segmentation64"]["dtype"] == "uint64"
    _, token = await live.user("viewer")
    async with live.client(token) as http:
        for key, want in expected.items():
            layer, mag, coords = key.split("/")
            x, y, z = (int(v) for v in coords.split(","))
            r = await http.get(f"/api/datasets/wk/layers/{layer}/mags/{mag}/bricks/{x}/{y}/{z}")
            assert r.status_code == 200, (key, r.text)
            dtype = np.dtype(layers[layer]["dtype"])
            got = from_raw(r.content, dtype)
            shape = want["shape"]
            if dtype == np.uint64:
                ref = np.array([int(v) for v in want["data"]], dtype=np.uint64).reshape(shape)
            else:
                ref = np.array(want["data"], dtype=dtype)
            ox, oy, oz = want["offset"]
            np.testing.assert_array_equal(
                got[ox : ox + shape[0], oy : oy + shape[1], oz : oz + shape[2]], ref, err_msg=key
            )
            # Outside the bounding box the brick is zero.
            outside = np.ones(got.shape, dtype=bool)
            outside[ox : ox + shape[0], oy : oy + shape[1], oz : oz + shape[2]] = False
            assert not got[outside].any(), key
    # The same bricks over the socket, compressed: stored chunk bytes pass through.
    client = await BrickClient.connect(f"{live.ws_url}/data/wk/color?token={token}")
    try:
        records = await client.fetch(1, (1, 1, 1), [(1, 1, 1)], encoding=1)
        from collab.volume.encoding import decompress

        want = np.array(expected["color/1/1,1,1"]["data"], dtype=np.uint8)
        np.testing.assert_array_equal(
            from_raw(decompress(records[0].payload), np.dtype("uint8")), want
        )
        stored = live.services.volumes  # the fast path applied: webknossos wrote zstd chunks
        layer = (await stored.dataset("wk")).layer("color")
        assert layer.source(layer.spec.mags[0].mag).layout is not None
    finally:
        await client.close()


async def test_ome_zarr_dataset(live: LiveServer, ome_dataset: tuple[Path, dict, str]) -> None:
    root, expected, version = ome_dataset
    meta = await _register(live, root, root.name)
    assert meta["layout"] == "ome-zarr"
    layers = {layer["name"]: layer for layer in meta["layers"]}
    assert set(layers) == {"color", "cells"}
    assert layers["cells"]["category"] == "segmentation"
    for layer in layers.values():
        assert layer["boundingBox"] == {"topLeft": [0, 0, 0], "size": [100, 90, 70]}
        assert layer["mags"][:3] == ["1", "2-2-1", "4-4-1"]
    _, token = await live.user("viewer")
    async with live.client(token) as http:
        for name, reads in expected.items():
            dtype = np.dtype(layers[name]["dtype"])
            for mag, b, level in (("1", (1, 1, 0), "level0"), ("2-2-1", (0, 0, 1), "level1")):
                r = await http.get(
                    f"/api/datasets/{root.name}/layers/{name}/mags/{mag}/bricks/{b[0]}/{b[1]}/{b[2]}"
                )
                assert r.status_code == 200, r.text
                got = from_raw(r.content, dtype)
                ref = np.array(reads[level], dtype=dtype).transpose(2, 1, 0)  # z,y,x → x,y,z
                np.testing.assert_array_equal(
                    got[: ref.shape[0], : ref.shape[1], : ref.shape[2]],
                    ref,
                    err_msg=f"{version} {name} {mag}",
                )
