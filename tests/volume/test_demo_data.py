"""The demo generator: deterministic, EM-like, with consistent supervoxels,
mappings (with the listed errors) and synapses; served like any dataset."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from collab.volume.demo_data import generate
from collab.volume.encoding import from_raw
from tests.conftest import LiveServer
from tests.volume.helpers import BrickClient

SIZE = 128


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo") / "demo"
    summary = generate(root, SIZE, seed=3)
    return root, summary


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_deterministic_from_the_seed(demo: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = demo
    again = generate(tmp_path / "demo", SIZE, seed=3)
    assert _digest(tmp_path / "demo") == _digest(root)
    other = generate(tmp_path / "other", SIZE, seed=4)
    assert _digest(tmp_path / "other") != _digest(root)
    assert again["cells"] == other["cells"]


def test_content_is_consistent(demo: tuple[Path, dict]) -> None:
    root, summary = demo
    color = np.asarray(zarr.open_array(str(root / "color" / "1"))[0])
    seg = np.asarray(zarr.open_array(str(root / "segmentation" / "1"))[0])
    truth = np.asarray(zarr.open_array(str(root / "segmentation/agglomerates/ground_truth"))[:])
    errors = np.asarray(zarr.open_array(str(root / "segmentation/agglomerates/with_errors"))[:])
    assert color.shape == seg.shape == (SIZE, SIZE, SIZE)
    # Over-segmented: more supervoxels than cells, every voxel labelled.
    assert seg.min() >= 1 and len(np.unique(seg)) > len(np.unique(truth[1:])) > 4
    cells = truth[seg]
    # EM-like: membranes (cell boundaries) are dark, cytoplasm bright.
    boundary = np.zeros(cells.shape, dtype=bool)
    boundary[:-1] |= cells[:-1] != cells[1:]
    interior = ~boundary
    interior[1:] &= cells[1:] == cells[:-1]
    assert color[boundary].mean() < color[interior].mean() - 40
    assert 10 < color.std() < 80
    # Supervoxel edges inside one cell carry no membrane.
    inner_edges = (seg[:-1] != seg[1:]) & (cells[:-1] == cells[1:])
    assert color[:-1][inner_edges].mean() > color[boundary].mean() + 30
    # The error mapping differs from the truth exactly by the listed merges and splits.
    listed = summary["errors"]
    assert listed["merges"] and listed["splits"]
    for keep, gone in listed["merges"]:
        assert np.all(errors[truth == gone] == keep)
    for split in listed["splits"]:
        members = truth == split["cell"]
        assert set(np.unique(errors[members])) == {split["cell"], split["newId"]}
    # Synapses sit on a membrane between their pre- and post-synaptic cells.
    synapses = json.loads((root / "synapses.json").read_text())["synapses"]
    assert len(synapses) == summary["synapses"] > 3
    for syn in synapses:
        x, y, z = syn["position"]
        around = set(
            np.unique(
                cells[max(x - 2, 0) : x + 3, max(y - 2, 0) : y + 3, max(z - 2, 0) : z + 3]
            ).tolist()
        )
        assert {syn["pre"], syn["post"]} <= around and syn["pre"] != syn["post"]


async def test_served_bricks_equal_zarr(demo: tuple[Path, dict], live: LiveServer) -> None:
    root, _ = demo
    target = Path(live.settings.roots[0]) / "demo"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(root)  # the resolved path is outside the roots...
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": "demo", "url": "demo"})
        assert r.status_code == 403
        target.unlink()
        import shutil

        shutil.copytree(root, target)
        r = await http.post("/api/datasets", json={"name": "demo", "url": "demo"})
        assert r.status_code == 201
        assert r.json()["layers"][1]["mappings"] == ["ground_truth", "with_errors"]
        served = (await http.get("/api/datasets/demo/synapses")).json()["synapses"]
        assert served == json.loads((root / "synapses.json").read_text())["synapses"]
    _, token = await live.user("viewer")
    client = await BrickClient.connect(f"{live.ws_url}/data/demo/segmentation?token={token}")
    try:
        bricks = [(x, y, z) for x in range(2) for y in range(2) for z in range(2)]
        for mag, scale in (((1, 1, 1), 1), ((2, 2, 2), 2)):
            array = np.asarray(zarr.open_array(str(root / "segmentation" / str(scale)))[0])
            for r in await client.fetch(scale, mag, bricks):
                b = r.brick
                want = array[
                    b[0] * 32 : b[0] * 32 + 32,
                    b[1] * 32 : b[1] * 32 + 32,
                    b[2] * 32 : b[2] * 32 + 32,
                ]
                got = from_raw(r.payload, np.dtype("uint32"))
                if want.shape == (32, 32, 32):
                    np.testing.assert_array_equal(got, want)
                else:
                    assert r.status == 1  # outside the 64³ of mag 2
    finally:
        await client.close()
