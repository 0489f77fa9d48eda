"""The viewer shows the volume: EM pixels are the bricks' voxels (client/e2e/em_pixels.mjs)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from collab.volume.mags import Mag
from collab.volume.writer import write_layer, write_properties
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
    """client/src/volume/layers.ts's segmentColour: hues spread by the golden
    ratio; above 2^53 the fraction of id × φ in 64-bit fixed point."""
    if segment < 2**53:
        hue = (segment * 0.618033988749895) % 1
    else:
        hue = float(segment * 0x9E3779B97F4A7C15 % 2**64) / 2**64
    i = math.floor(hue * 6)
    f = hue * 6 - i
    s, v = 0.8, 1.0
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]
    return [round_half_up(c * 255) for c in rgb]


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)  # JavaScript's Math.round


async def test_uint64_segment_ids_above_2_53(live: LiveServer, built_client: Path) -> None:
    """A uint64 segmentation layer: ids above 2^53 (which a float64 cannot
    tell apart) are drawn each in its own hashed colour, the same the page
    computes for that id anywhere; ids below keep the colours they have in
    any other dtype."""
    root = Path(live.settings.roots[0]) / "wide"
    shape = (100, 80, 40)
    color = np.random.default_rng(5).integers(1, 255, shape, dtype=np.uint8)
    x, y, _z = np.indices(shape)
    seg = (1 + x // 25 + 4 * (y // 20)).astype(np.uint64)
    seg[x >= 50] += np.uint64(2**62)  # the right half: above 2^53, neighbours 1 apart
    seg[(x >= 75) & (y >= 60)] = np.uint64(2**64 - 1)
    layers = [
        write_layer(root, "color", "color", color, [Mag(1, 1, 1)]),
        write_layer(root, "segmentation", "segmentation", seg, [Mag(1, 1, 1)]),
    ]
    write_properties(root, "wide", (4.0, 4.0, 40.0), layers)
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": "wide", "url": "wide"})
        assert r.status_code == 201, r.text
        assert r.json()["layers"][1]["dtype"] == "uint64"
    _, token = await live.user("Ada")
    async with live.client(token) as http:
        r = await http.post("/api/annotations", json={"name": "u64", "dataset": "wide"})
        ann = r.json()["id"]
    centre, zoom = (40, 30, 20), 4
    probes = [(x, y) for x in (0, 31, 32, 49, 50, 63, 76, 99) for y in (0, 30, 33, 60, 77)]
    expected = [[x, y, int(color[x, y, centre[2]])] for x, y in probes]
    where = (live.url, str(ann), token, ",".join(map(str, centre)), str(zoom), json.dumps(expected))
    seen = await run_e2e("em_pixels.mjs", *where, "seg=1&alpha=1")
    ids = [int(seg[x, y, centre[2]]) for x, y in probes]
    assert max(ids) == 2**64 - 1 and sum(i > 2**53 for i in ids) >= 15
    want = [segment_colour(i) for i in ids]
    assert seen["pixels"] == want, (seen["pixels"], want)
    big = {tuple(c) for i, c in zip(ids, want, strict=True) if i > 2**53}
    assert len(big) >= 6  # told apart, not all one colour


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
