"""Two pages proofread one annotation together (client/e2e/proofreading.mjs):
the volume layer coloured by agglomerate, a merge by Shift+click and a
split by Ctrl+click seen on the other page (MAPPED pushes), a refusal shown
with the server's message, the connectome listing a partner, and Ctrl+Z
deleting the page's own split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser.conftest import run_e2e
from tests.browser.test_viewer import segment_colour
from tests.conftest import LiveServer
from tests.proofreading.test_proofreading_live import write_graph
from tests.volume.helpers import make_dataset

pytestmark = pytest.mark.timeout(300)


def _centre(s: int) -> tuple[int, int]:
    """Where supervoxel s (1-16: slice 17 lies in the first 35 slices) is, in XY."""
    s -= 1
    return (s % 4) * 25 + 12, ((s // 4) % 4) * 20 + 10


async def test_two_pages_proofread_together(live: LiveServer, built_client: Path) -> None:
    root = Path(live.settings.roots[0]) / "graphs"
    make_dataset(root)
    write_graph(root)  # agglomerates 1 = supervoxels 1-8, 2 = 9-16, 3 = 17-32
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": "graphs", "url": "graphs"})
        assert r.status_code == 201, r.text
        assert r.json()["layers"][1]["agglomerateGraphs"] == ["graph"], r.text
    a_id, a = await live.user("Ada")
    b_id, b = await live.user("Bo")
    async with live.client(a) as http:
        r = await http.post("/api/annotations", json={"name": "proof", "dataset": "graphs"})
        assert r.status_code == 201, r.text
        ann = r.json()["id"]
        r = await http.post(f"/api/annotations/{ann}/grants", json={"user": b_id, "role": "editor"})
        assert r.status_code in (200, 201), r.text
    probes = {f"sv{s}": _centre(s) for s in (1, 3, 4, 9, 16)}
    # The split (pr-2) hands its part the id base largest (3) + seq · 2^16 + 1.
    split_id = 3 + 2 * 65536 + 1
    colours = {
        "agg1": segment_colour(1),
        "agg2": segment_colour(2),
        "agg4": segment_colour(split_id),
    }
    seen = await run_e2e(
        "proofreading.mjs",
        live.url,
        str(ann),
        a,
        b,
        json.dumps(probes),
        json.dumps(colours),
        timeout=240,
    )
    assert seen["mappingOptions"] == ["", "graph"], seen
    start = [colours["agg1"], colours["agg2"], colours["agg1"]]
    assert seen["before"] == {"a": start, "b": start}, seen
    assert seen["toolA"] == "proofread" and seen["picked"] == [1, 1], seen
    assert seen["mergeToast"] == "merged agglomerate 2 into 1", seen
    assert f"2 edge(s) cut, 1 and {split_id}" in str(seen["splitToast"]), seen
    # Both ops are the server's, written with A as their author.
    assert sorted(seen["opsOnB"]) == [["pr-1", "merge", a_id], ["pr-2", "split", a_id]], seen
    assert seen["refusal"] == "segments 1 and 16 are one agglomerate (1) already: nothing to merge"
    assert seen["opsAfterRefusal"] == 2, seen
    # Agglomerate 1 after the split: 1, 2, 5, 6 and 9-16; synapse 2 (22 → 10) makes 3 its partner.
    assert seen["partners"] == [["3", "0", "1", "1"]], seen
    assert len(seen["synapses"]) == 1 and "inhibitory" in seen["synapses"][0], seen
    assert seen["opsAfterUndo"] == ["merge"], seen
    # Undone: supervoxel 4 is agglomerate 1's again, and with it synapse 1 (4 → 20).
    assert seen["partnersAfterUndo"] == [["3", "1", "1", "2"]], seen
    assert str(seen["centredOn"]).startswith(("80, 20, 34", "30, 50, 34")), seen
    # The server agrees: the layer's mapping has the merge and not the split.
    async with live.client(a) as http:
        r = await http.get(f"/api/annotations/{ann}/versions", params={"doc": "segmentation"})
        newest = r.json()["versions"][0]["version"]
        r = await http.get(
            f"/api/annotations/{ann}/versions/{newest}", params={"doc": "segmentation"}
        )
        doc = r.json()["content"]
        [layer] = doc["layers"]
        assert doc["layers"][layer]["activeMapping"] == "graph", doc
        assert [op["kind"] for op in doc["ops"].values()] == ["merge"], doc
        r = await http.post(
            f"/api/annotations/{ann}/volume/{layer}/agglomerates",
            json={"segments": [1, 3, 4, 9, 16, 17]},
        )
        assert r.json()["agglomerates"] == [1, 1, 1, 1, 1, 3], r.text
