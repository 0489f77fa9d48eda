"""Agglomerate attachments both ways with the `webknossos` library (its own
venv, tests/venvs.py): what it writes, collab serves the same graphs; what
collab writes (collab/volume/writer.py), it reads back the same graphs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import LiveServer
from tests.venvs import WEBKNOSSOS, run_script, tool_python
from tests.volume.test_agglomerates import _with_graph

# Creating the tool venv on a fresh machine downloads its packages: minutes, once.
pytestmark = pytest.mark.timeout(900)

SCRIPT = Path(__file__).parent / "interop" / "agglomerates_webknossos.py"


async def test_webknossos_writes_collab_serves(live: LiveServer, tmp_path: Path) -> None:
    source = tmp_path / "wkagg"
    expected = json.loads(run_script(tool_python(WEBKNOSSOS), SCRIPT, "write", str(source)))
    want = expected["wk_view"]
    shutil.copytree(source, Path(live.settings.roots[0]) / "wkagg")
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": "wkagg", "url": "wkagg"})
        assert r.status_code == 201, r.text
        assert r.json()["layers"][0]["agglomerateGraphs"] == ["wk_view"]
        base = "/api/datasets/wkagg/layers/segmentation"
        summary = (await http.get(f"{base}/agglomerates/wk_view")).json()
        mapping = want["mapping"]
        assert summary["agglomerates"] == max(mapping)
        assert summary["segments"] == len(want["nodes"]) == len(mapping) - 1
        assert summary["edges"] == len(want["edges"])
        assert (await http.get(f"{base}/mappings/wk_view")).json()["agglomerates"] == mapping
        nodes: dict[str, list[int]] = {}
        edges: list[list[float]] = []
        for agglomerate in range(1, summary["agglomerates"] + 1):
            r = await http.get(f"{base}/agglomerates/wk_view/{agglomerate}")
            assert r.status_code == 200, r.text
            graph = r.json()
            assert graph["supervoxels"] == sorted(graph["supervoxels"])
            for s, position in zip(graph["supervoxels"], graph["positions"], strict=True):
                assert mapping[s] == agglomerate
                nodes[str(s)] = position
            for (a, b), affinity in zip(graph["edges"], graph["affinities"], strict=True):
                edges.append([min(a, b), max(a, b), affinity])
        assert nodes == want["nodes"]
        assert sorted(edges) == want["edges"]


def test_collab_writes_webknossos_reads(tmp_path: Path) -> None:
    root = tmp_path / "small"
    mapping = _with_graph(root)
    got = json.loads(run_script(tool_python(WEBKNOSSOS), SCRIPT, "read", str(root)))["blocks"]
    assert got["mapping"] == mapping.tolist()
    n = len(mapping) - 1
    edges = [[s, s + 1, w] for s, w in zip(range(1, n, 2), np.linspace(0, 1, n // 2), strict=True)]
    assert [e[:2] for e in got["edges"]] == [e[:2] for e in edges]
    np.testing.assert_allclose([e[2] for e in got["edges"]], [e[2] for e in edges], rtol=1e-6)
    assert sorted(int(k) for k in got["nodes"]) == list(range(1, n + 1))
