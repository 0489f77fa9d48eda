"""Agglomerate attachments: the writer's arrays (the webknossos-libs spec's
example, byte for byte in value), the reader's refusals, and the REST routes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from collab.errors import LayoutError, NotFound, PayloadTooLarge
from collab.volume.agglomerates import (
    AgglomerateFile,
    AgglomerateReader,
    read_graph,
    read_summary,
)
from collab.volume.writer import write_agglomerate_graph
from tests.conftest import LiveServer, live_with, with_settings
from tests.volume.helpers import make_dataset

#: The example of webknossos-libs' spec (docs/src/webknossos-py/spec/agglomerate_attachment.md).
MAPPING = np.array([0, 1, 1, 1, 1, 2, 2, 1])
EDGES = np.array([(1, 2), (2, 3), (3, 4), (5, 6), (1, 7)])
AFFINITIES = np.array([124.0, 0.0, 250.5, 80.0, 65.5])
POSITIONS = np.arange(24).reshape(8, 3) * 10


def _example(root: Path, name: str = "view") -> AgglomerateFile:
    write_agglomerate_graph(root, "seg", name, MAPPING, EDGES, AFFINITIES, POSITIONS)
    return AgglomerateFile(name, LocalStore(str(root), read_only=True), f"seg/agglomerates/{name}")


def test_writer_matches_the_spec_example(tmp_path: Path) -> None:
    entry = write_agglomerate_graph(tmp_path, "seg", "view", MAPPING, EDGES, AFFINITIES, POSITIONS)
    assert entry == {"name": "view", "path": "./seg/agglomerates/view", "dataFormat": "zarr3"}
    base = tmp_path / "seg" / "agglomerates" / "view"
    group = json.loads((base / "zarr.json").read_text())
    assert group["attributes"]["voxelytics"] == {
        "artifact_schema_version": 4,
        "artifact_class": "AgglomerateViewArtifact",
    }
    want = {
        "segment_to_agglomerate": ([0, 1, 1, 1, 1, 2, 2, 1], "uint64"),
        "agglomerate_to_segments_offsets": ([0, 0, 5, 7], "uint64"),
        "agglomerate_to_segments": ([1, 2, 3, 4, 7, 5, 6], "uint32"),
        "agglomerate_to_edges_offsets": ([0, 0, 4, 5], "uint64"),
        "agglomerate_to_edges": ([[0, 1], [0, 4], [1, 2], [2, 3], [0, 1]], "uint32"),
        "agglomerate_to_affinities": ([124.0, 65.5, 0.0, 250.5, 80.0], "float32"),
        "agglomerate_to_positions": (
            (POSITIONS[[1, 2, 3, 4, 7, 5, 6]]).tolist(),
            "int32",
        ),
    }
    for name, (values, dtype) in want.items():
        array = zarr.open_array(str(base / name), mode="r")
        assert array[...].tolist() == values, name
        assert str(array.dtype) == dtype, name
        codecs = json.loads((base / name / "zarr.json").read_text())["codecs"]
        assert codecs[0]["name"] == "sharding_indexed"
        inner = codecs[0]["configuration"]["codecs"]
        assert inner[1] == {"name": "zstd", "configuration": {"level": 5, "checksum": True}}


def test_writer_refusals(tmp_path: Path) -> None:
    for edges, message in [
        (np.array([(1, 5)]), "joins two agglomerates"),
        (np.array([(1, 1)]), "itself"),
        (np.array([(1, 2), (2, 1)]), "twice"),
        (np.array([(1, 9)]), "outside"),
    ]:
        with pytest.raises(ValueError, match=message):
            write_agglomerate_graph(
                tmp_path, "seg", "bad", MAPPING, edges, np.ones(len(edges)), POSITIONS
            )


def test_reader(tmp_path: Path) -> None:
    file = _example(tmp_path)
    summary = read_summary(file)
    assert summary.to_json() == {
        "mapping": "view",
        "format": "zarr3",
        "segments": 7,
        "agglomerates": 2,
        "edges": 5,
        "largestSegmentId": 7,
    }
    graph = read_graph(file, 1, 100)
    assert graph.segments.tolist() == [1, 2, 3, 4, 7]
    assert graph.edges.tolist() == [[1, 2], [1, 7], [2, 3], [3, 4]]
    assert graph.affinities.tolist() == [124.0, 65.5, 0.0, 250.5]
    assert graph.positions.tolist() == POSITIONS[[1, 2, 3, 4, 7]].tolist()
    assert read_graph(file, 2, 100).edges.tolist() == [[5, 6]]
    for agglomerate in (0, 3, 1 << 40):
        with pytest.raises(NotFound):
            read_graph(file, agglomerate, 100)
    with pytest.raises(PayloadTooLarge, match="COLLAB_AGGLOMERATE_MAX_EDGES"):
        read_graph(file, 1, 4)
    assert read_graph(file, 1, 5).edges.shape == (4, 2)


def test_reader_empty_agglomerates_and_refusals(tmp_path: Path) -> None:
    # Agglomerate 2 holds nothing (ids are kept as given).
    mapping = np.array([0, 1, 3, 3])
    write_agglomerate_graph(
        tmp_path, "seg", "gaps", mapping, np.array([(2, 3)]), [0.5], np.zeros((4, 3))
    )
    file = AgglomerateFile("gaps", LocalStore(str(tmp_path)), "seg/agglomerates/gaps")
    assert read_summary(file).agglomerates == 3
    with pytest.raises(NotFound, match="empty"):
        read_graph(file, 2, 100)
    assert read_graph(file, 1, 100).edges.shape == (0, 2)
    assert read_graph(file, 3, 100).edges.tolist() == [[2, 3]]
    # An edge naming a node past its agglomerate's supervoxels.
    edges = zarr.open_array(str(tmp_path / "seg/agglomerates/gaps/agglomerate_to_edges"))
    edges[0, 1] = 7
    with pytest.raises(LayoutError, match="outside"):
        read_graph(file, 3, 100)
    (tmp_path / "seg/agglomerates/gaps/agglomerate_to_affinities/zarr.json").unlink()
    broken = AgglomerateFile("gaps", LocalStore(str(tmp_path)), "seg/agglomerates/gaps")
    with pytest.raises(LayoutError, match="agglomerate_to_affinities"):
        read_summary(broken)


async def test_reader_cache_is_bounded(tmp_path: Path) -> None:
    file = _example(tmp_path)
    one = read_graph(file, 1, 100).nbytes
    reader = AgglomerateReader(budget_bytes=one + 10, max_edges=100)
    first, again = await asyncio.gather(reader.graph(file, 1), reader.graph(file, 1))
    assert first is again and reader.bytes == one
    await reader.graph(file, 2)
    assert reader.bytes <= one + 10
    assert (await reader.graph(file, 1)) is not first  # evicted, read again
    with pytest.raises(NotFound):
        await reader.graph(file, 5)


def _with_graph(root: Path) -> np.ndarray:
    """The small dataset's segmentation with an agglomerate attachment
    ``blocks`` (declared in its properties): pairs of neighbouring blocks."""
    small = make_dataset(root)
    seg = small.segmentation
    n = int(seg.max())
    mapping = np.zeros(n + 1, dtype=np.uint64)
    mapping[1:] = (np.arange(1, n + 1) + 1) // 2
    edges = np.array([(s, s + 1) for s in range(1, n, 2)])
    positions = np.zeros((n + 1, 3), dtype=np.int32)
    for s in range(1, n + 1):
        positions[s] = np.argwhere(seg == s)[0]
    entry = write_agglomerate_graph(
        root, "segmentation", "blocks", mapping, edges, np.linspace(0, 1, len(edges)), positions
    )
    props_file = root / "datasource-properties.json"
    props = json.loads(props_file.read_text())
    props["dataLayers"][1]["attachments"] = {"agglomerates": [entry], "meshes": None}
    props_file.write_text(json.dumps(props))
    return mapping


async def test_rest_routes(live: LiveServer) -> None:
    root = Path(live.settings.roots[0]) / "small"
    mapping = _with_graph(root)
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": "small", "url": "small"})
        assert r.status_code == 201, r.text
        layer = r.json()["layers"][1]
        assert layer["mappings"] == ["blocks", "cells"]
        assert layer["agglomerateGraphs"] == ["blocks"]
    _, token = await live.user("viewer")
    base = "/api/datasets/small/layers/segmentation"
    async with live.client(token) as http:
        r = await http.get(f"{base}/agglomerates/blocks")
        assert r.status_code == 200, r.text
        n = len(mapping) - 1
        assert r.json() == {
            "mapping": "blocks",
            "format": "zarr3",
            "segments": n,
            "agglomerates": int(mapping.max()),
            "edges": n // 2,
            "largestSegmentId": n,
        }
        r = await http.get(f"{base}/agglomerates/blocks/2")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["supervoxels"] == [3, 4] and body["edges"] == [[3, 4]]
        assert body["mapping"] == "blocks" and body["agglomerate"] == 2
        assert len(body["affinities"]) == 1 and len(body["positions"]) == 2
        # The attachment's segment_to_agglomerate is the mapping bricks use.
        r = await http.get(f"{base}/mappings/blocks")
        assert r.json()["agglomerates"] == mapping.tolist()
        for path, status in [
            (f"{base}/agglomerates/nope", 404),
            (f"{base}/agglomerates/cells", 404),  # a mapping without a graph
            (f"{base}/agglomerates/blocks/0", 404),
            (f"{base}/agglomerates/blocks/99999", 404),
            (f"{base}/agglomerates/blocks/-1", 400),
            (f"{base}/agglomerates/blocks/x", 400),
            (f"{base}/agglomerates/blocks/{'9' * 30}", 400),
            ("/api/datasets/small/layers/color/agglomerates/blocks", 404),
            ("/api/datasets/nope/layers/segmentation/agglomerates/blocks", 404),
        ]:
            r = await http.get(path)
            assert r.status_code == status, (path, r.text)
            assert "error" in r.json()
    async with live.client("not-a-token") as http:
        assert (await http.get(f"{base}/agglomerates/blocks/2")).status_code == 401


async def test_rest_too_large(settings) -> None:
    async with live_with(with_settings(settings, agglomerate_max_edges=1)) as live:
        root = Path(live.settings.roots[0]) / "small"
        _with_graph(root)
        async with live.client(live.admin_token) as http:
            r = await http.post("/api/datasets", json={"name": "small", "url": "small"})
            assert r.status_code == 201
            r = await http.get("/api/datasets/small/layers/segmentation/agglomerates/blocks/2")
            assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


async def test_declared_attachment_must_exist(live: LiveServer) -> None:
    root = Path(live.settings.roots[0]) / "small"
    make_dataset(root)
    props_file = root / "datasource-properties.json"
    props = json.loads(props_file.read_text())
    props["dataLayers"][1]["attachments"] = {
        "agglomerates": [
            {"name": "gone", "path": "./segmentation/agglomerates/gone", "dataFormat": "zarr3"}
        ]
    }
    props_file.write_text(json.dumps(props))
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": "small", "url": "small"})
        assert r.status_code == 422 and "gone" in r.json()["error"]["message"]
        props["dataLayers"][1]["attachments"]["agglomerates"][0]["path"] = "../elsewhere"
        props_file.write_text(json.dumps(props))
        r = await http.post("/api/datasets", json={"name": "small", "url": "small"})
        assert r.status_code == 422 and "inside the dataset" in r.json()["error"]["message"]
