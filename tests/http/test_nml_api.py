"""NML over REST against the live server: import (xml and zip) as one version
that connected clients receive, export (xml and zip), refusals. The files are
tests/fixtures' own; the real WEBKNOSSOS downloads in ../shared are imported
too where that folder exists."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from collab.config import Settings
from collab.document.content import to_json
from collab.document.log import RoomKey
from collab.skeleton import nml as nmlmod
from collab.skeleton.convert import PIECE_NODES, export_nml
from collab.skeleton.kind import INDEX_IN_WORKER_BYTES, SKELETON
from collab.skeleton.model import Skeleton
from tests.benchmarks.nml_million import make_nml
from tests.conftest import LiveServer, live_with, with_settings
from tests.fixtures import NML, shared_files, webknossos_annotations
from tests.yclient import YClient


def _file(name: str) -> bytes:
    return (NML / name).read_bytes()


async def test_import_is_one_version_and_reaches_clients(live: LiveServer) -> None:
    _, token = await live.user()
    ann = await live.annotation(token)
    watcher = await YClient(live.sync_url(ann, token=token)).connect()
    async with live.client(token) as http:
        r = await http.post(
            f"/api/annotations/{ann}/nml",
            content=_file("tracing.nml"),
            headers={"content-type": "application/xml"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["version"] == 1 and body["trees"] == 3 and body["nodes"] == 22
        versions = (await http.get(f"/api/annotations/{ann}/versions")).json()["versions"]
        assert len(versions) == 1 and versions[0]["summary"]["nml"] == {"trees": 3, "nodes": 22}
    await watcher.wait(lambda: len(watcher.map("nodes")) == 22)
    assert len(watcher.map("trees")) == 3
    await watcher.close()


async def _zip_import_and_both_exports(live: LiveServer, download: bytes) -> dict[str, int]:
    """Imports ``download``; both exports hold what it held. Returns the import's answer."""
    _, token = await live.user()
    ann = await live.annotation(token)
    async with live.client(token) as http:
        r = await http.post(
            f"/api/annotations/{ann}/nml",
            content=download,
            headers={"content-type": "application/zip"},
        )
        assert r.status_code == 200, r.text
        body: dict[str, int] = r.json()
        nodes = body["nodes"]
        assert nodes == nmlmod.read_zip(download, 1 << 30).node_count
        xml = await http.get(f"/api/annotations/{ann}/nml")
        assert xml.status_code == 200 and xml.headers["content-type"].startswith("application/xml")
        assert nmlmod.read(xml.content).node_count == nodes
        again = await http.get(f"/api/annotations/{ann}/nml")
        assert again.content == xml.content  # byte-for-byte stable
        zipped = await http.get(f"/api/annotations/{ann}/nml", params={"format": "zip"})
        assert zipped.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(zipped.content)) as z:
            # The NML, then a data zip per volume layer that holds voxels.
            names = z.namelist()
            assert names[0] == f"annotation-{ann}.nml"
            assert all(n.startswith("data_") and n.endswith(".zip") for n in names[1:])
        assert nmlmod.read_zip(zipped.content, 1 << 30).node_count == nodes
    return body


# Creating the webknossos venv and its zips on a fresh machine: minutes, once.
@pytest.mark.timeout(900)
async def test_zip_import_and_both_exports(live: LiveServer) -> None:
    """A WEBKNOSSOS download written by the `webknossos` library: its NML
    beside a zarr3 volume layer's data zip."""
    folder, seen = await asyncio.to_thread(webknossos_annotations)
    want = seen["skeleton_volume.zip"]
    body = await _zip_import_and_both_exports(live, (folder / "skeleton_volume.zip").read_bytes())
    assert (body["trees"], body["nodes"]) == (len(want["trees"]), len(want["nodes"])) == (3, 6)


@pytest.mark.parametrize("path", shared_files(".zip"))
async def test_real_webknossos_download_imports(live: LiveServer, path: Path) -> None:
    await _zip_import_and_both_exports(live, path.read_bytes())


async def test_invalid_nml_is_422_and_changes_nothing(live: LiveServer) -> None:
    _, token = await live.user()
    ann = await live.annotation(token)
    bad = b'<?xml version="1.0"?>\n<things>\n<thing id="1"><nodes><node id="1" x="1" y="oops" z="3"/></nodes></thing></things>'
    async with live.client(token) as http:
        r = await http.post(
            f"/api/annotations/{ann}/nml", content=bad, headers={"content-type": "application/xml"}
        )
        assert r.status_code == 422
        err = r.json()["error"]
        assert err["code"] == "invalid_nml" and err["line"] == 3 and err["element"] == "node"
        lol = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">]><things>&a;</things>'
        r = await http.post(
            f"/api/annotations/{ann}/nml", content=lol, headers={"content-type": "application/xml"}
        )
        assert r.status_code == 422 and "DTD" in r.json()["error"]["message"]
        assert (await http.post(f"/api/annotations/{ann}/nml", content=b"")).status_code == 400
        assert (await http.get(f"/api/annotations/{ann}/versions")).json()["versions"] == []


async def test_import_needs_write_access(live: LiveServer) -> None:
    _, owner = await live.user("owner")
    ann = await live.annotation(owner)
    async with live.client(owner) as http:
        link = (await http.post(f"/api/annotations/{ann}/links", json={"access": "read"})).json()[
            "token"
        ]
    async with live.client(link) as http:
        r = await http.post(f"/api/annotations/{ann}/nml", content=_file("three_trees.nml"))
        assert r.status_code == 403
        assert (await http.get(f"/api/annotations/{ann}/nml")).status_code == 200


async def test_imported_entities_are_known_to_the_repairer(live: LiveServer) -> None:
    _, token = await live.user()
    ann = await live.annotation(token)
    async with live.client(token) as http:
        r = await http.post(f"/api/annotations/{ann}/nml", content=_file("three_trees.nml"))
        assert r.status_code == 200 and r.json()["version"] == 1
    c = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    # A raw edge across two imported trees (as a concurrent merge can leave):
    # the server must merge the trees, which needs the imported nodes indexed.
    c.map("edges")["1,2"] = "1"
    await c.wait(lambda: c.saved >= 3)
    nodes = c.map("nodes").to_py()
    assert nodes["1"]["treeId"] == nodes["2"]["treeId"] == "1"
    assert "2" not in c.map("trees") and c.map("edges")["1,2"] == "1"
    await c.close()


async def test_export_from_the_live_index_equals_an_export_of_the_document(
    live: LiveServer,
) -> None:
    """The export endpoint reads nodes from the room's repair index (columns
    kept in step with every transaction), not from the document: after
    imports, client edits, odd values and repairs, its bytes must equal an
    export written from the document itself."""
    _, token = await live.user()
    ann = await live.annotation(token, name="same")
    async with live.client(token) as http:
        for name in ("three_trees.nml", "tracing.nml", "three_trees.nml"):
            r = await http.post(f"/api/annotations/{ann}/nml", content=_file(name))
            assert r.status_code == 200, r.text
    c = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    nodes = c.map("nodes")
    moved = dict(nodes["2"])
    moved["position"] = [7.5, 8.25, -9.0]
    moved["time"] = 2**40
    with c.doc.transaction():
        nodes["2"] = moved
        del nodes["3"]
        # Odd values the tolerant reader defaults: a non-number coordinate, an
        # integer field beyond int64 or not whole, a missing rotation.
        nodes["odd"] = {"treeId": "1", "position": [1, "a", 3], "time": 1e300, "mag": 2.5}
        nodes["junk"] = "not a node"
        nodes["lost"] = {"treeId": "ghost", "position": [1, 2, 3]}  # → tree "recovered"
        c.map("edges")["1,2"] = "1"  # across two trees: they merge
    await c.wait(lambda: c.saved >= 5)
    async with live.client(token) as http:
        served = (await http.get(f"/api/annotations/{ann}/nml")).content
    assert b'id="recovered"' not in served  # trees get integer ids in the file
    doc_side = ""

    def same() -> bool:
        nonlocal doc_side
        doc_side = "".join(nmlmod.write(export_nml(Skeleton(c.doc), name="same")))
        return doc_side.encode() == served

    try:
        await c.wait(same)
    finally:
        await c.close()
    parsed = nmlmod.read(served)
    assert parsed.node_count == 3 + 22 + 3 - 1 + 2  # the "junk" node has no tree


async def test_a_large_import_lands_in_pieces_as_one_version(
    live: LiveServer, tmp_path: Path
) -> None:
    """A file above one piece (PIECE_NODES) is applied piece by piece while
    the worker builds the next: a watcher sees it arrive in parts, a client's
    edit sent meanwhile waits and lands after it, the import is one version,
    and the log replays to the watcher's document."""
    nodes, trees = 2 * PIECE_NODES + 5_000, 40
    source = tmp_path / "big.nml"
    make_nml(source, nodes, trees)
    _, token = await live.user()
    ann = await live.annotation(token)
    watcher = await YClient(live.sync_url(ann, token=token)).connect()
    writer = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    received: list[int] = []  # the size of every update the watcher applied
    watcher.doc.observe(lambda event: received.append(len(event.update)))
    async with live.client(token) as http:
        post = asyncio.create_task(
            http.post(
                f"/api/annotations/{ann}/nml",
                content=source.read_bytes(),
                headers={"content-type": "application/xml"},
                timeout=120,
            )
        )
        room = live.services.rooms.rooms[RoomKey(ann, "skeleton")]
        for _ in range(60_000):  # until the first piece is in (bounded: ~60 s)
            if room.busy is not None or post.done():
                break
            await asyncio.sleep(0.001)
        assert room.busy is not None and room.version == 0  # mid-import
        writer.map("meta")["note"] = "typed during the import"
        r = await post
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 1 and r.json()["nodes"] == nodes
        await writer.wait(lambda: writer.saved >= 2, timeout=30)
        versions = (await http.get(f"/api/annotations/{ann}/versions")).json()["versions"]
    versions.sort(key=lambda v: v["version"])
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["summary"]["nml"] == {"trees": trees, "nodes": nodes}
    assert "meta" in versions[1]["summary"] and "nodes" not in versions[1]["summary"]
    await watcher.wait(lambda: len(watcher.map("nodes")) == nodes and "note" in watcher.map("meta"))
    per_piece = -(-PIECE_NODES // (nodes // trees))  # whole trees per piece
    pieces = -(-trees // per_piece)
    assert pieces >= 2
    assert len([size for size in received if size > 100_000]) == pieces  # it came in pieces
    # A new client's first sync (the stored record) gives the same document.
    fresh = await YClient(live.sync_url(ann, token=token)).connect()
    assert to_json(fresh.doc, SKELETON) == to_json(watcher.doc, SKELETON)
    for c in (watcher, writer, fresh):
        await c.close()


async def test_an_oversized_import_is_413_and_leaves_no_file(settings: Settings) -> None:
    """Over the body limit, declared or streamed (chunked, no length): 413,
    nothing imported, no spooled file left behind."""
    async with live_with(with_settings(settings, max_body_bytes=64 * 1024)) as live:
        _, token = await live.user()
        ann = await live.annotation(token)
        body = _file("tracing.nml") * 40
        assert len(body) > 64 * 1024

        async def chunked() -> AsyncIterator[bytes]:
            for k in range(0, len(body), 10_000):
                yield body[k : k + 10_000]

        async with live.client(token) as http:
            for content in (body, chunked()):
                r = await http.post(f"/api/annotations/{ann}/nml", content=content)
                assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
            versions = (await http.get(f"/api/annotations/{ann}/versions")).json()["versions"]
            assert versions == []
            r = await http.post(f"/api/annotations/{ann}/nml", content=_file("tracing.nml"))
            assert r.status_code == 200  # under the limit: fine
        assert list((settings.data_dir / "tmp").glob("*.upload")) == []


async def test_a_large_room_reloads_with_its_index_read_in_a_worker(
    settings: Settings, tmp_path: Path
) -> None:
    """A skeleton room whose stored bytes pass INDEX_IN_WORKER_BYTES gets its
    repair index from a worker when it loads again: repairs still see the
    imported nodes, and an export (read from the index's columns) still
    equals one written from the document."""
    source = tmp_path / "big.nml"
    make_nml(source, 40_000, 8)
    assert source.stat().st_size > INDEX_IN_WORKER_BYTES
    async with live_with(with_settings(settings, room_idle_seconds=0.2)) as live:
        _, token = await live.user()
        ann = await live.annotation(token, name="reload")
        async with live.client(token) as http:
            r = await http.post(f"/api/annotations/{ann}/nml", content=source.read_bytes())
            assert r.status_code == 200, r.text
        key = RoomKey(ann, "skeleton")
        for _ in range(2_000):  # unloaded once idle (bounded: ~20 s)
            if key not in live.services.rooms.rooms:
                break
            await asyncio.sleep(0.01)
        assert key not in live.services.rooms.rooms
        c = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
        first_of = {}
        for node_id, value in c.map("nodes").to_py().items():
            first_of.setdefault(value["treeId"], node_id)
        (t1, a), (t2, b) = sorted(first_of.items())[:2]
        c.map("edges")[f"{a},{b}"] = t1  # across two imported trees: they merge
        await c.wait(lambda: c.saved >= 3)
        assert c.map("nodes")[b]["treeId"] == c.map("nodes")[a]["treeId"]
        assert t2 not in c.map("trees") or t1 not in c.map("trees")
        async with live.client(token) as http:
            served = (await http.get(f"/api/annotations/{ann}/nml")).content
        assert served == "".join(nmlmod.write(export_nml(Skeleton(c.doc), name="reload"))).encode()
        await c.close()
