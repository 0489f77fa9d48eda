"""Two pages paint one annotation's volume layer together
(client/e2e/volume_tools.mjs): a stroke on one page appears on the other
(the server's pushed bricks), undo on the first removes it on both, a
read-only link gets no tools."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from collab.volume import encoding as enc
from tests.browser.conftest import run_e2e
from tests.browser.test_viewer import segment_colour
from tests.conftest import LiveServer
from tests.volume.helpers import make_dataset

pytestmark = pytest.mark.timeout(300)


async def test_two_pages_paint_together(live: LiveServer, built_client: Path) -> None:
    data = make_dataset(Path(live.settings.roots[0]) / "small")
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": "small", "url": "small"})
        assert r.status_code == 201, r.text
    a_id, a = await live.user("Ada")
    b_id, b = await live.user("Bo")
    async with live.client(a) as http:
        r = await http.post("/api/annotations", json={"name": "paint", "dataset": "small"})
        assert r.status_code == 201, r.text
        ann = r.json()["id"]
        r = await http.post(f"/api/annotations/{ann}/grants", json={"user": b_id, "role": "editor"})
        assert r.status_code in (200, 201), r.text
        r = await http.post(f"/api/annotations/{ann}/links", json={"access": "read"})
        assert r.status_code == 201, r.text
        link = r.json()["token"]
    # Slice 20; the stroke runs from (30, 30) to (50, 30) with radius 3.
    stroke, outside = (35, 30), (40, 40)
    probes = {"stroke": stroke, "outside": outside}
    seen = await run_e2e(
        "volume_tools.mjs", live.url, str(ann), a, b, link, json.dumps(probes), timeout=240
    )
    fallback = [segment_colour(int(data.segmentation[x, y, 20])) for x, y in (stroke, outside)]
    assert seen["before"] == {"a": fallback, "b": fallback}, seen
    assert "uint32" in str(seen["layer"]) and "segmentation" in str(seen["layer"]), seen
    assert seen["addOfferedAfter"] is False and seen["toolA"] == "brush", seen
    # A block of new ids above the fallback's: never one the dataset uses.
    segment = seen["segment"]
    assert isinstance(segment, int) and segment > int(data.segmentation.max()), seen
    assert seen["radiusAfterWheel"] == 4 and seen["radiusAfterShiftO"] == 3, seen
    painted = segment_colour(segment)
    # While the button is down: nothing written, the preview on A only.
    assert seen["opsWhileDrawing"] == 0 and seen["previewOnA"] == painted, seen
    assert seen["bWhileDrawing"] == fallback[0], seen
    # Released: one op, as the schema has it; on B once the server painted it.
    assert seen["opsOnA"] == 1, seen
    op = seen["op"]
    assert isinstance(op, dict)
    assert {k: op[k] for k in ("kind", "plane", "mag", "radius", "segment", "erase", "mode")} == {
        "kind": "brush", "plane": "xy", "mag": "1", "radius": 3, "segment": segment,
        "erase": False, "mode": "all",
    }, op  # fmt: skip
    assert op["author"] == a_id and op["layer"], op
    assert op["points"][0] == [30, 30, 20] and op["points"][-1] == [50, 30, 20], op
    assert seen["strokeOnB"] == painted, seen
    assert seen["afterOnB"] == [painted, fallback[1]] and seen["afterOnA"] == [painted, fallback[1]]
    # B picks the segment (Shift+click) and lists it; picking writes nothing;
    # hidden in B's list, A draws the EM there instead.
    assert seen["pickedOnB"] == segment and seen["opsAfterPick"] == 1, seen
    assert seen["listedOnB"] == [f"Segment {segment} ({segment})"], seen
    grey = int(data.color[stroke[0], stroke[1], 20])
    assert seen["hiddenOnA"] == [grey, grey, grey], seen
    # Undo on A: the op is gone from the document, the stroke from both pages.
    assert seen["opsAfterUndo"] == {"a": 0, "b": 0}, seen
    assert seen["afterUndo"] == {"a": fallback, "b": fallback}, seen
    assert seen["readOnly"] == {"tools": False, "add": False}, seen
    # The server agrees: the stroke's brick is the fallback's again, and the
    # segment's entry stays (listed once painted).
    async with live.client(a) as http:
        saved = seen["savedSegmentationA"]
        r = await http.get(
            f"/api/annotations/{ann}/versions/{saved}", params={"doc": "segmentation"}
        )
        doc = r.json()["content"]
        assert doc["ops"] == {} and f"{op['layer']}/{segment}" in doc["segments"], doc
        anchor = doc["segments"][f"{op['layer']}/{segment}"]["anchor"]
        assert anchor == [30, 30, 20], doc
        r = await http.get(f"/api/annotations/{ann}/volume/{op['layer']}/1/1/0/0")
        assert r.status_code == 200, r.text
    brick = enc.from_raw(r.content, np.dtype("uint32"))
    np.testing.assert_array_equal(brick, data.segmentation[32:64, 0:32, 0:32])
