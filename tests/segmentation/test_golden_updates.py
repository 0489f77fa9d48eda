"""The segmentation document as the stock yjs client writes it
(tests/golden/segmentation_updates.json, written by
tests/js/segmentation_golden.mjs): the bytes are pinned, pycrdt reads them
as docs/schema.md says, and the server's check takes every one."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pycrdt import Doc, Map

from collab.segmentation.kind import SEGMENTATION
from collab.segmentation.ops import check_update

GOLDEN = json.loads(
    (Path(__file__).parents[1] / "golden" / "segmentation_updates.json").read_text()
)


def test_stock_yjs_writes_the_golden_updates(node_modules: Path) -> None:
    script = Path(__file__).parents[1] / "js" / "segmentation_golden.mjs"
    done = subprocess.run(
        ["node", str(script), "--check"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_golden_updates_read_as_the_schema_says_and_pass_the_check() -> None:
    doc: Doc = Doc()
    for root in SEGMENTATION.roots:
        doc.get(root.name, type=Map)
    for step in GOLDEN["steps"]:
        update = bytes.fromhex(step["update"])
        check_update(doc, update, 1)  # the author of the golden ops is user 1
        doc.apply_update(update)
    layer = doc.get("layers", type=Map)["7-1"].to_py()
    assert layer == {
        "name": "Volume", "dtype": "uint32", "fallback": "segmentation",
        "mags": ["1", "2-2-1", "4-4-2"], "activeMapping": None,
        "boundingBox": {"topLeft": [0, 0, 0], "size": [1024, 1024, 256]},
    }  # fmt: skip
    assert doc.get("groups", type=Map)["7-2"].to_py() == {
        "layer": "7-1", "name": "axons", "parentId": None, "isExpanded": True
    }  # fmt: skip
    segment = doc.get("segments", type=Map)["7-1/1001"]
    assert segment["name"] == "axon 1 (checked)" and segment["groupId"] == "7-2"
    assert segment["color"] == [1, 0.5, 0, 1] and segment["anchor"] == [100, 200, 30]
    ops = doc.get("ops", type=Map).to_py()
    assert set(ops) == {"7-3"}  # the fill was undone: its op deleted
    assert ops["7-3"]["points"][1] == [110, 204, 30] and ops["7-3"]["radius"] == 10
    assert ops == GOLDEN["state"]


def test_another_author_in_a_golden_update_is_refused() -> None:
    import pytest

    from collab.errors import Unprocessable

    doc: Doc = Doc()
    for root in SEGMENTATION.roots:
        doc.get(root.name, type=Map)
    steps = {s["name"]: bytes.fromhex(s["update"]) for s in GOLDEN["steps"]}
    doc.apply_update(steps["add_layer"])
    with pytest.raises(Unprocessable, match="author"):
        check_update(doc, steps["brush"], 2)
