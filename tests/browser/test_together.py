"""Two pages trace one annotation together (client/e2e/two_pages.mjs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from collab.config import Settings
from tests.browser.conftest import run_e2e
from tests.conftest import LiveServer, live_with, with_settings

pytestmark = pytest.mark.timeout(300)


async def test_two_pages_trace_together(live: LiveServer, built_client: Path) -> None:
    _, a = await live.user("Ada")
    b_id, b = await live.user("Bo")
    ann = await live.annotation(a, "together")
    async with live.client(a) as http:
        r = await http.post(f"/api/annotations/{ann}/grants", json={"user": b_id, "role": "editor"})
        assert r.status_code in (200, 201), r.text
    seen = await run_e2e("two_pages.mjs", live.url, str(ann), a, b)
    assert seen["countA"] == 5
    assert isinstance(seen["seenOnBAfterMs"], int) and seen["seenOnBAfterMs"] <= 1000, seen
    assert seen["peersOnB"] == ["Ada"], seen
    assert seen["afterUndo"] == {"a": 5, "b": 5} and seen["bNodeKept"] == 1, seen
    # The server stored it all: five of A's nodes minus the undone one, B's one.
    async with live.client(a) as http:
        nml = (await http.get(f"/api/annotations/{ann}/nml")).text
    assert nml.count("<node ") == 5
    versions = await http_versions(live, a, ann)
    assert versions >= 7 and seen["savedA"] >= 7


async def http_versions(live: LiveServer, token: str, ann: int) -> int:
    async with live.client(token) as http:
        body = (await http.get(f"/api/annotations/{ann}/versions")).json()
    return int(body["versions"][0]["version"])


async def test_the_page_is_served(live: LiveServer, built_client: Path) -> None:
    async with live.client() as http:
        for path in ("/", "/annotations/1"):
            r = await http.get(path)
            assert r.status_code == 200 and "text/html" in r.headers["content-type"]
            assert r.headers["cache-control"] == "no-cache"
        asset = next((built_client.parent / "assets").glob("*.js")).name
        r = await http.get(f"/assets/{asset}")
        assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
        assert (await http.get("/assets/../index.html")).status_code == 404
        assert (await http.get("/assets/%2e%2e/%2e%2e/pyproject.toml")).status_code == 404


async def test_changes_made_offline_survive_a_closed_tab(
    live: LiveServer, built_client: Path
) -> None:
    _, token = await live.user("Ada")
    ann = await live.annotation(token, "offline")
    seen = await run_e2e("offline.mjs", live.url, str(ann), token)
    assert seen["offlineStatus"] == "offline — 3 change(s) not saved yet", seen
    assert str(seen["reopenedStatus"]).startswith("saved up to version"), seen
    assert seen["nodes"] == 3
    async with live.client(token) as http:
        nml = (await http.get(f"/api/annotations/{ann}/nml")).text
    assert nml.count("<node ") == 3


async def test_replay_slider_and_restore(live: LiveServer, built_client: Path) -> None:
    _, token = await live.user("Ada")
    ann = await live.annotation(token, "history")
    seen = await run_e2e("history.mjs", live.url, str(ann), token)
    assert seen["head"] == 3 and seen["byVersion"] == [0, 1, 2, 3], seen
    assert str(seen["label"]).startswith("version 1 of 3"), seen
    assert seen["afterRestore"] == 1
    async with live.client(token) as http:
        nml = (await http.get(f"/api/annotations/{ann}/nml")).text
        head = (await http.get(f"/api/annotations/{ann}/versions")).json()["versions"][0]
    assert nml.count("<node ") == 1 and head["summary"]["restore"] == 1


async def test_editing_and_nml_from_the_page(
    live: LiveServer, built_client: Path, tmp_path: Path
) -> None:
    _, token = await live.user("Ada")
    ann = await live.annotation(token, "edits")
    nml = tmp_path / "in.nml"
    nml.write_text(
        '<things><thing id="1" name="imported"><nodes><node id="1" x="5" y="6" z="7"/>'
        '<node id="2" x="8" y="9" z="7"/></nodes><edges><edge source="1" target="2"/></edges>'
        "</thing></things>"
    )
    out = tmp_path / "out.nml"
    seen = await run_e2e("editing.mjs", live.url, str(ann), token, str(nml), str(out))
    assert seen["imported"] == "imported 1 trees, 2 nodes", seen
    assert seen["downloaded"] == "edits.nml"
    text = out.read_text()
    assert text.count("<node ") == 4 and 'content="soma here"' in text
    assert 'radius="4.5"' in text and 'name="axon 1"' in text
    # Merged into the active tree, which sits in the new group.
    assert text.count("<thing ") == 1 and 'name="imported"' not in text, seen
    assert '<group id="1" name="cells"' in text and 'groupId="1"' in text, text


async def test_webknossos_tracing_controls(live: LiveServer, built_client: Path) -> None:
    _, token = await live.user("Ada")
    ann = await live.annotation(token, "controls")
    seen = await run_e2e("wk_controls.mjs", live.url, str(ann), token)
    assert seen["chain"] == {"trees": 1, "nodes": 3, "edges": 2}, seen
    assert seen["afterDelete"] == {"trees": 2, "edges": 0}, seen  # split in two
    assert seen["afterJoin"] == {"trees": 1, "edges": 1}, seen
    # Dragged from pixel (220, 100) to (230, 120) of the 512×384 XY plane centred
    # on (100, 100, 10) at zoom 1: voxel (64, 8) to (74, 28).
    assert seen["moved"] == [74, 28, 10], seen
    assert seen["ctrlPlaced"] == {"nodes": 3, "activeKept": True}, seen


async def test_a_read_only_link_says_so(live: LiveServer, built_client: Path) -> None:
    _, token = await live.user("Ada")
    ann = await live.annotation(token, "shared")
    async with live.client(token) as http:
        r = await http.post(f"/api/annotations/{ann}/links", json={"access": "read"})
        assert r.status_code == 201, r.text
        link = r.json()["token"]
    seen = await run_e2e("readonly.mjs", live.url, str(ann), link)
    assert seen["badge"] == "read-only" and seen["nodes"] == 0, seen
    assert seen["status"] == "saved up to version 0" and seen["restoreOffered"] is False, seen


async def test_context_menu_and_tree_groups(live: LiveServer, built_client: Path) -> None:
    _, token = await live.user("Ada")
    ann = await live.annotation(token, "menu")
    seen = await run_e2e("menu_and_groups.mjs", live.url, str(ann), token)
    assert "Create node here" in seen["emptyMenu"] and seen["afterCreate"] == 3, seen
    assert seen["menuGone"] is True
    assert "Mark as branchpoint" in seen["nodeMenu"], seen
    # Two edges of 60 screen pixels at zoom 1: 120 voxels of path.
    assert "Path length of this tree: 120.0 vx" in seen["nodeMenu"], seen
    assert seen["branchpoints"] == 1 and seen["afterMerge"] == 1, seen
    assert seen["treeInInner"] is True and seen["groupsAfterDrag"]["outer"] is None, seen
    assert seen["colour"] == [1, 0, 0, 1], seen
    assert seen["afterGroupDelete"] == "outer", seen
    # The server has it: one tree, red, in "outer" (inner gone), a branchpoint.
    async with live.client(token) as http:
        nml = (await http.get(f"/api/annotations/{ann}/nml")).text
    assert nml.count("<thing ") == 1 and nml.count("<node ") == 4, nml
    assert 'color.r="1" color.g="0" color.b="0"' in nml, nml
    assert 'name="outer"' in nml and 'name="inner"' not in nml, nml
    assert nml.count("<branchpoint ") == 1, nml


async def test_a_refused_write_shows_a_notice(settings: Settings, built_client: Path) -> None:
    """The document is full (COLLAB_MAX_DOCUMENT_BYTES): the server closes
    the writer with 4413; the page says so and counts nothing refused as
    saved."""
    async with live_with(with_settings(settings, max_document_bytes=4000)) as live:
        _, token = await live.user("Ada")
        ann = await live.annotation(token, "full")
        seen = await run_e2e("refused.mjs", live.url, str(ann), token)
        assert seen["status"].startswith("refused: 4413 document full"), seen
        async with live.client(token) as http:
            nml = (await http.get(f"/api/annotations/{ann}/nml")).text
        stored = nml.count("<node ")
        assert stored < seen["nodesOnPage"] and seen["pending"] >= seen["nodesOnPage"] - stored
