"""The viewer shows the volume: EM pixels are the bricks' voxels (client/e2e/em_pixels.mjs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser.conftest import run_e2e
from tests.conftest import LiveServer
from tests.volume.helpers import make_dataset

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
    seen = await run_e2e(
        "em_pixels.mjs",
        live.url,
        str(ann),
        token,
        ",".join(map(str, centre)),
        str(zoom),
        json.dumps(expected),
    )
    assert seen["pixels"] == [[v, v, v] for _, _, v in expected], seen
    assert seen["distinctGreys"] > 100 and seen["screenshotBytes"] > 10_000, seen
