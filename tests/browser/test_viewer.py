"""The viewer shows the volume: EM pixels are the bricks' voxels (client/e2e/em_pixels.mjs)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.browser.conftest import run_e2e
from tests.conftest import LiveServer
from tests.volume.helpers import damage_chunk, make_dataset

pytestmark = pytest.mark.timeout(300)


async def test_em_data_in_view_matches_the_voxels(live: LiveServer, built_client: Path) -> None:
    data = make_dataset(Path(live.settings.roots[0]) / "small")
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": "small", "url": "small"})
        assert r.status_code == 201, r.text
    _, token = await live.user("Ada")
    async with live.client(token) as http:
        r = await http.post("/api/annotations", json={"name": "em", "dataset": "small"})
        assert r.status_code == 201, r.text
        ann = r.json()["id"]
    centre, zoom = (40, 30, 20), 4
    # Voxels around the centre, across brick borders (32) and at the edges of the view.
    probes = [(x, y) for x in (0, 31, 32, 40, 63, 64, 99) for y in (0, 30, 33, 60, 77)]
    expected = [[x, y, int(data.color[x, y, centre[2]])] for x, y in probes]
    where = (live.url, str(ann), token, ",".join(map(str, centre)), str(zoom), json.dumps(expected))
    seen = await run_e2e("em_pixels.mjs", *where, "seg=0")
    assert seen["pixels"] == [[v, v, v] for _, _, v in expected], seen
    assert seen["distinctGreys"] > 100 and seen["screenshotBytes"] > 10_000, seen
    # The segmentation overlay, opaque: each voxel in its segment's hashed
    # colour, the ids through an agglomerate mapping when one is chosen.
    for query, ids in (
        ("seg=1&alpha=1", data.segmentation),
        ("seg=1&alpha=1&mapping=cells", data.mapping[data.segmentation]),
    ):
        seen = await run_e2e("em_pixels.mjs", *where, query)
        want = [segment_colour(int(ids[x, y, centre[2]])) for x, y in probes]
        assert seen["pixels"] == want, (query, seen["pixels"], want)


def segment_colour(segment: int) -> list[int]:
    """client/src/volume/layers.ts's segmentColour: hues spread by the golden ratio."""
    hue = (segment * 0.618033988749895) % 1
    i = math.floor(hue * 6)
    f = hue * 6 - i
    s, v = 0.8, 1.0
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]
    return [round_half_up(c * 255) for c in rgb]


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)  # JavaScript's Math.round


async def test_a_failed_brick_is_a_missing_tile(live: LiveServer, built_client: Path) -> None:
    """A brick the server cannot read (a damaged chunk) comes as a failed
    record: the page draws it as a missing tile (the background) and every
    other brick as before; it still counts as answered."""
    data = make_dataset(Path(live.settings.roots[0]) / "damaged")
    root = Path(live.settings.roots[0]) / "damaged" / "color"
    damage_chunk(root / "1", (1, 0, 0))
    # The coarser level under it too (its chunk (0, 0, 0) covers the brick),
    # so nothing shows through the hole.
    damage_chunk(root / "4-4-2", (0, 0, 0))
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": "damaged", "url": "damaged"})
        assert r.status_code == 201, r.text
    _, token = await live.user("Ada")
    async with live.client(token) as http:
        r = await http.post("/api/annotations", json={"name": "em", "dataset": "damaged"})
        ann = r.json()["id"]
    centre, zoom = (40, 30, 20), 4
    probes = [(x, y) for x in (0, 31, 32, 40, 63, 64, 99) for y in (0, 30, 33, 60, 77)]
    expected = [[x, y, int(data.color[x, y, centre[2]])] for x, y in probes]
    where = (live.url, str(ann), token, ",".join(map(str, centre)), str(zoom), json.dumps(expected))
    seen = await run_e2e("em_pixels.mjs", *where, "seg=0")  # waits for every brick answered
    background = [17, 17, 17]
    want = [background if 32 <= x < 64 and y < 32 else [v, v, v] for x, y, v in expected]
    assert seen["pixels"] == want, seen
