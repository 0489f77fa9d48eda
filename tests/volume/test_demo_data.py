"""The demo generator: deterministic, EM-like, with consistent supervoxels,
mappings (with the listed errors) and synapses; served like any dataset."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from collab.proofreading.graph import components, min_cut
from collab.volume.agglomerates import AgglomerateFile, AgglomerateGraph, read_graph
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


def _mapping(root: Path, name: str) -> np.ndarray:
    path = root / "segmentation/agglomerates" / name / "segment_to_agglomerate"
    return np.asarray(zarr.open_array(str(path), mode="r")[:])


def _graph(root: Path, name: str, agglomerate: int) -> AgglomerateGraph:
    store = LocalStore(str(root), read_only=True)
    file = AgglomerateFile(name, store, f"segmentation/agglomerates/{name}")
    return read_graph(file, agglomerate, 1 << 20)


def _adjacency(seg: np.ndarray) -> set[tuple[int, int]]:
    pairs: set[tuple[int, int]] = set()
    for axis in range(3):
        a = np.moveaxis(seg, axis, 0)
        touch = a[:-1] != a[1:]
        lo = np.minimum(a[:-1][touch], a[1:][touch])
        hi = np.maximum(a[:-1][touch], a[1:][touch])
        pairs |= set(zip(lo.tolist(), hi.tolist(), strict=True))
    return pairs


def test_agglomerate_graphs(demo: tuple[Path, dict]) -> None:
    """Each agglomerate's graph joins exactly its supervoxels, by edges between
    supervoxels that touch, into one piece; affinities are high inside a
    cell and low across membranes, so a minimum cut between one supervoxel
    of each cell of a merge error removes exactly the edges between them."""
    root, summary = demo
    seg = np.asarray(zarr.open_array(str(root / "segmentation" / "1"))[0])
    touching = _adjacency(seg)
    truth = _mapping(root, "ground_truth")
    assert len(truth) - 1 == summary["supervoxels"] == int(seg.max())
    assert set(np.unique(seg).tolist()) == set(range(1, len(truth)))  # ids without gaps
    inside: list[float] = []
    for name in ("ground_truth", "with_errors"):
        mapping = _mapping(root, name)
        for agglomerate in np.unique(mapping[1:]).tolist():
            graph = _graph(root, name, agglomerate)
            members = np.flatnonzero(mapping == agglomerate)
            assert graph.segments.tolist() == members.tolist()
            assert set(graph.edges.ravel().tolist()) <= set(members.tolist())
            assert {tuple(e) for e in graph.edges.tolist()} <= touching
            assert len(set(components(graph.segments, graph.edges).tolist())) == 1, (
                name,
                agglomerate,
            )
            for s, p in zip(graph.segments.tolist(), graph.positions.tolist(), strict=True):
                assert seg[p[0], p[1], p[2]] == s
            if name == "ground_truth":
                inside += graph.affinities.tolist()
        # Every pair of touching supervoxels of one agglomerate is an edge.
        edges = sum(len(_graph(root, name, a).edges) for a in np.unique(mapping[1:]).tolist())
        assert edges == sum(1 for a, b in touching if mapping[a] == mapping[b])
    assert np.median(inside) > 0.8
    for keep, gone in summary["errors"]["merges"]:
        graph = _graph(root, "with_errors", keep)
        cells = truth[graph.segments.astype(np.int64)]
        across = np.flatnonzero(
            cells[np.searchsorted(graph.segments, graph.edges[:, 0])]
            != cells[np.searchsorted(graph.segments, graph.edges[:, 1])]
        )
        assert len(across) and graph.affinities[across].max() < 0.2
        seeds = graph.segments[cells == keep][:1], graph.segments[cells == gone][:1]
        cut = min_cut(graph.segments, graph.edges, graph.affinities, *seeds)
        assert cut.tolist() == across.tolist()


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
    truth = _mapping(root, "ground_truth")
    errors = _mapping(root, "with_errors")
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
        assert r.json()["layers"][1]["agglomerateGraphs"] == ["ground_truth", "with_errors"]
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
