"""Proofreading the demo dataset: fixing the merge and split errors its
``with_errors`` mapping lists, by merges and splits through the real
server, gives the ground truth's agglomerates (the same partition of the
supervoxels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr
from pycrdt import Map

from collab.volume.demo_data import generate
from tests.conftest import LiveServer
from tests.yclient import YClient

SIZE = 128


def _table(root: Path, name: str) -> np.ndarray:
    path = root / "segmentation/agglomerates" / name / "segment_to_agglomerate"
    return np.asarray(zarr.open_array(str(path), mode="r")[:]).astype(np.int64)


def _partition(mapping: list[int] | np.ndarray) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for s, agg in enumerate(mapping):
        if s and agg:
            groups.setdefault(int(agg), set()).add(s)
    return {frozenset(g) for g in groups.values()}


async def test_fixing_the_listed_errors_gives_the_ground_truth(live: LiveServer) -> None:
    root = Path(live.settings.roots[0]) / "demo-small"
    summary = generate(root, SIZE, seed=3)
    truth, wrong = _table(root, "ground_truth"), _table(root, "with_errors")
    assert _partition(truth) != _partition(wrong)
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": "demo-small", "url": "demo-small"})
        assert r.status_code == 201, r.text
    _a_id, a = await live.user("Proof")
    async with live.client(a) as http:
        r = await http.post("/api/annotations", json={"name": "fix", "dataset": "demo-small"})
        ann = r.json()["id"]
    w = await YClient(live.sync_url(ann, "segmentation", token=a, acks="1")).connect()
    layer = {"name": "fix", "dtype": "uint32", "fallback": "segmentation",
             "activeMapping": "with_errors", "mags": ["1", "2", "4", "8"]}  # fmt: skip
    assert await w.write(lambda: w.map("layers").__setitem__("L", Map(layer)))
    base = f"/api/annotations/{ann}/volume/L"
    async with live.client(a) as http:
        # Split errors: a cell in two agglomerates; one merge across an edge
        # of the true cell's graph joins them.
        for error in summary["errors"]["splits"]:
            cell, new = error["cell"], error["newId"]
            graph = (
                await http.get(
                    f"/api/datasets/demo-small/layers/segmentation/agglomerates/ground_truth/{cell}"
                )
            ).json()
            across = next((u, v) for u, v in graph["edges"] if {wrong[u], wrong[v]} == {cell, new})
            r = await http.post(f"{base}/merge", json={"a": across[0], "b": across[1]})
            assert r.status_code == 201, r.text
        # Merge errors: two cells in one agglomerate; a split between one
        # supervoxel of each (the largest: what a proofreader would click)
        # cuts along the membrane between them.
        sizes = np.bincount(
            np.asarray(zarr.open_array(str(root / "segmentation/1"), mode="r")[0]).ravel()
        )
        for keep, gone in summary["errors"]["merges"]:
            seeds = []
            for cell in (keep, gone):
                members = np.flatnonzero(truth == cell)
                seeds.append(int(members[np.argmax(sizes[members])]))
            r = await http.post(f"{base}/split", json={"sources": [seeds[0]], "sinks": [seeds[1]]})
            assert r.status_code == 201, r.text
        everyone = list(range(1, len(truth)))
        r = await http.post(f"{base}/agglomerates", json={"segments": everyone})
        fixed = [0, *r.json()["agglomerates"]]
    assert _partition(fixed) == _partition(truth)
    await w.close()
