"""Volume layers of WEBKNOSSOS zips over REST, against the live server:
``POST /api/annotations/{id}/nml`` imports them (layers, segments, voxels)
as one version of each document, ``GET …/nml?format=zip`` exports them, and
``webknossos.Annotation.load`` (the AGPL library, in its own venv, driven by
tests/segmentation/wk/read_volumes.py) reads the export with the same voxels
and segments as the file imported. Broken zips are refused with a 4xx JSON
error and change nothing; clients cannot write the server's ``import`` op."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycrdt import Map

from collab.document.log import RoomKey
from collab.segmentation.paint import downsample_labels
from collab.segmentation.volume_zip import ZarrZipWriter
from collab.store import materialised, uploads
from collab.volume import encoding as enc
from collab.volume.mags import Mag
from tests.conftest import LiveServer
from tests.fixtures import shared_files, webknossos_annotations
from tests.venvs import WEBKNOSSOS, run_script, tool_python
from tests.yclient import YClient

# Creating the webknossos venv and its zips on a fresh machine: minutes, once.
pytestmark = pytest.mark.timeout(900)

READ_VOLUMES = Path(__file__).parent / "wk" / "read_volumes.py"
ZIP = {"content-type": "application/zip"}


@pytest.fixture(scope="module")
def wk_python() -> Path:
    return tool_python(WEBKNOSSOS)


@pytest.fixture(scope="module")
def wk_zips() -> Path:
    return webknossos_annotations()[0]


def library_reads(python: Path, path: Path, out: Path) -> list[dict[str, Any]]:
    """What the webknossos library reads of the volume layers of ``path``,
    each with its non-zero voxels (``xyz``, ``v``) where it has data."""
    out.mkdir(parents=True, exist_ok=True)
    run_script(python, READ_VOLUMES, str(path), str(out), timeout=600)
    layers: list[dict[str, Any]] = json.loads((out / "layers.json").read_text())
    for layer in layers:
        npz = out / f"{layer['id']}.npz"
        if npz.exists():
            with np.load(npz) as data:
                layer["xyz"], layer["v"] = data["xyz"], data["v"]
    return layers


def assert_same_volumes(want: list[dict[str, Any]], got: list[dict[str, Any]]) -> None:
    assert [w["name"] for w in want] == [g["name"] for g in got]
    for w, g in zip(want, got, strict=True):
        where = w["name"]
        assert g["segments"] == w["segments"], where
        assert g["fallback"] == w["fallback"], where
        assert g.get("dtype") == w.get("dtype"), where
        assert g["voxels"] == w["voxels"], where
        if w["voxels"]:
            np.testing.assert_array_equal(g["xyz"], w["xyz"], err_msg=where)
            np.testing.assert_array_equal(g["v"], w["v"], err_msg=where)


def volume_zip(
    bricks: dict[tuple[int, int, int], int],
    segments: str = "",
    trees: str = '<thing id="1" name="t"><nodes><node id="1" x="1" y="1" z="1" /></nodes>'
    "<edges /></thing>",
) -> bytes:
    """A WEBKNOSSOS zip made here: a skeleton (``trees``), one volume layer
    (fallback ``segmentation``) whose data zip holds, at mag 1, each of
    ``bricks`` filled with its value (uint32; none: no data zip), and the
    ``<segment>`` elements ``segments``."""
    location = ""
    data = io.BytesIO()
    if bricks:
        writer = ZarrZipWriter(data, np.dtype("uint32"))
        for b, value in bricks.items():
            writer.add(Mag(1, 1, 1), b, np.full(32**3, value, np.uint32).tobytes())
        writer.close([Mag(1, 1, 1)], (0, 0, 0), (32, 32, 32), (1.0, 1.0, 1.0), None)
        location = ' location="data_0_Volume.zip" format="zarr3"'
    nml = (
        '<?xml version="1.0" encoding="utf-8"?>\n<things>\n<parameters>'
        '<experiment name="small" /><scale unit="nanometer" x="1" y="1" z="1" />'
        f"</parameters>\n{trees}\n"
        f'<volume id="0" name="Volume"{location} fallbackLayer="segmentation">'
        f"<segments>{segments}</segments></volume>\n</things>\n"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("made.nml", nml)
        if bricks:
            z.writestr("data_0_Volume.zip", data.getvalue(), zipfile.ZIP_STORED)
    return out.getvalue()


async def versions(live: LiveServer, token: str, ann: int, doc: str) -> list[dict[str, Any]]:
    async with live.client(token) as http:
        r = await http.get(f"/api/annotations/{ann}/versions", params={"doc": doc})
        assert r.status_code == 200, r.text
        found: list[dict[str, Any]] = r.json()["versions"]
        return found


async def round_trip(
    live: LiveServer, python: Path, original: Path, tmp: Path
) -> tuple[dict[str, Any], float, float]:
    """Import ``original``, export it again, and compare what the library
    reads of both. Returns the import's answer and both durations (s)."""
    _, token = await live.user()
    ann = await live.annotation(token)
    async with live.client(token) as http:
        t0 = time.perf_counter()
        r = await http.post(
            f"/api/annotations/{ann}/nml", content=original.read_bytes(), headers=ZIP
        )
        t1 = time.perf_counter()
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        exported = await http.get(f"/api/annotations/{ann}/nml", params={"format": "zip"})
        t2 = time.perf_counter()
        assert exported.status_code == 200, exported.text
    path = tmp / "export.zip"
    path.write_bytes(exported.content)
    want, got = await asyncio.gather(
        asyncio.to_thread(library_reads, python, original, tmp / "want"),
        asyncio.to_thread(library_reads, python, path, tmp / "got"),
    )
    assert_same_volumes(want, got)
    # One version of each document the zip changed.
    if body["segmentation"]["layers"]:
        seg = await versions(live, token, ann, "segmentation")
        assert len(seg) == 1 and "import" in seg[0]["summary"], seg
    if body["trees"]:
        assert len(await versions(live, token, ann, "skeleton")) == 1
    return body, t1 - t0, t2 - t1


@pytest.mark.parametrize("name", ["skeleton_volume.zip", "two_segmented.zip", "two_volumes.zip"])
async def test_library_zip_round_trip(
    live: LiveServer, wk_python: Path, wk_zips: Path, tmp_path: Path, name: str
) -> None:
    """Zips the library wrote at test time: one zarr3 layer with segments;
    two layers (uint32, uint16) with named, coloured segments; a zarr3, a
    WKW and an empty layer. The export reads back with the same voxels and
    segments per layer."""
    body, _, _ = await round_trip(live, wk_python, wk_zips / name, tmp_path)
    layers = body["segmentation"]["layers"]
    if name == "two_segmented.zip":
        assert [(x["name"], x["dtype"], x["segments"]) for x in layers] == [
            ("cells", "uint32", 2),
            ("synapses", "uint16", 2),
        ]
        assert body["trees"] == 1 and body["nodes"] == 2
    if name == "two_volumes.zip":
        assert [(x["name"], x["format"]) for x in layers] == [
            ("Volume_2", "zarr3"),
            ("Volume", "wkw"),
            ("empty", None),
        ]


@pytest.mark.parametrize("path", shared_files(".zip"))
async def test_real_webknossos_zip_round_trip(
    live: LiveServer, wk_python: Path, tmp_path: Path, path: Path
) -> None:
    """The files the WEBKNOSSOS server wrote (../shared): zarr3 and WKW layers."""
    body, import_s, export_s = await round_trip(live, wk_python, path, tmp_path)
    bricks = sum(x["bricks"] for x in body["segmentation"]["layers"])
    print(f"{path.name}: {bricks} bricks, import {import_s:.3f} s, export {export_s:.3f} s")


async def test_import_writes_the_document_and_replays(live: LiveServer, wk_zips: Path) -> None:
    """The layer entry, segments and the server's op; the voxels at mag 1
    as the library wrote them, the fallback's coarser mag downsampled over
    them; a materialiser starting from nothing writes the same bytes."""
    from tests.volume.helpers import make_dataset

    make_dataset(Path(live.settings.roots[0]) / "small")
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": "small", "url": "small"})
        assert r.status_code == 201, r.text
    a_id, token = await live.user()
    async with live.client(token) as http:
        r = await http.post("/api/annotations", json={"name": "v", "dataset": "small"})
        ann = r.json()["id"]
        r = await http.post(
            f"/api/annotations/{ann}/nml",
            content=(wk_zips / "skeleton_volume.zip").read_bytes(),
            headers=ZIP,
        )
        assert r.status_code == 200, r.text
        (layer,) = r.json()["segmentation"]["layers"]
        lid = layer["id"]
        content = (
            await http.get(f"/api/annotations/{ann}/versions/1", params={"doc": "segmentation"})
        ).json()["content"]
        entry = content["layers"][lid]
        assert entry["name"] == "Volume" and entry["dtype"] == "uint32"
        assert entry["fallback"] == "segmentation" and entry["mags"] == ["1", "2"]
        assert entry["largestSegmentId"] == 2504698
        assert content["segments"][f"{lid}/7"]["name"] == "bouton"
        assert content["segments"][f"{lid}/7"]["color"] == [0.1, 0.9, 0.1, 1.0]
        assert content["segments"][f"{lid}/2504698"]["anchor"] == [35, 40, 15]
        (op,) = content["ops"].values()
        assert op["kind"] == "import" and op["author"] == a_id and op["mags"] == ["1"]
        brick = await http.get(f"/api/annotations/{ann}/volume/{lid}/1/0/0/0")
        assert brick.status_code == 200, brick.text
        fine = enc.from_raw(brick.content, np.dtype("uint32"))
        want = np.zeros((32, 32, 32), np.uint32)
        want[4:12, 4:12, 4:12] = 7
        want[30:32, 30:32, 10:20] = 2504698  # the corner of the mitochondrion
        np.testing.assert_array_equal(fine, want)  # an imported brick replaces the fallback
        coarse = await http.get(f"/api/annotations/{ann}/volume/{lid}/2/0/0/0")
        whole = np.zeros((64, 64, 64), np.uint32)
        for x in (0, 1):
            for y in (0, 1):
                for z in (0, 1):
                    got = await http.get(f"/api/annotations/{ann}/volume/{lid}/1/{x}/{y}/{z}")
                    whole[x * 32 : x * 32 + 32, y * 32 : y * 32 + 32, z * 32 : z * 32 + 32] = (
                        enc.from_raw(got.content, np.dtype("uint32"))
                    )
        np.testing.assert_array_equal(
            enc.from_raw(coarse.content, np.dtype("uint32")), downsample_labels(whole, (2, 2, 2))
        )
    key = RoomKey(ann, "segmentation")

    async def rows() -> list[tuple[Any, ...]]:
        async with live.services.pool.acquire() as conn:
            found = await conn.fetch(
                "SELECT layer, mag, bx, by, bz, version, data FROM materialised_bricks "
                "WHERE annotation_id = $1 ORDER BY 1, 2, 3, 4, 5, 6",
                ann,
            )
        return [tuple(r) for r in found]

    before = await rows()
    assert len(before) == 5  # 4 bricks at mag 1, one at mag 2
    async with live.services.pool.acquire() as conn:
        await conn.execute("DELETE FROM materialised_bricks WHERE annotation_id = $1", ann)
        await conn.execute("DELETE FROM materialised_ops WHERE annotation_id = $1", ann)
        await conn.execute("DELETE FROM materialised_versions WHERE annotation_id = $1", ann)
        assert await materialised.materialised_version(conn, key) == 0
    # The server's materialiser (it reads the fallback), starting over.
    assert await live.server.config.app.state.materialiser.catch_up(ann) == 1
    assert await rows() == before


def _rewrite(source: Path, change: dict[str, bytes | None]) -> bytes:
    """``source`` with members replaced (bytes) or left out (None)."""
    out = io.BytesIO()
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename in change:
                data = change[info.filename]
                if data is not None:
                    dst.writestr(info.filename, data)
            else:
                dst.writestr(info, src.read(info))
    return out.getvalue()


def _inner(source: Path, change: dict[str, bytes | None]) -> bytes:
    """``source`` (skeleton_volume.zip) with members of its data zip changed."""
    with zipfile.ZipFile(source) as z:
        inner = z.read("data_0_Volume.zip")
    path = Path(str(source) + ".inner")
    path.write_bytes(inner)
    try:
        return _rewrite(source, {"data_0_Volume.zip": _rewrite(path, change)})
    finally:
        path.unlink()


def _declare_size(data: bytes, member: str, size: int) -> bytes:
    """The zip ``data`` with ``member``'s declared size (central directory) changed."""
    name = member.encode()
    at = data.rindex(name) - 46  # the central directory comes after the local headers
    assert data[at : at + 4] == b"PK\x01\x02"
    return data[: at + 24] + struct.pack("<I", size) + data[at + 28 :]


async def test_broken_zips_are_refused_and_change_nothing(live: LiveServer, wk_zips: Path) -> None:
    source = wk_zips / "skeleton_volume.zip"
    with zipfile.ZipFile(source) as z:
        inner = zipfile.ZipFile(io.BytesIO(z.read("data_0_Volume.zip")))
    props = json.loads(inner.read("datasource-properties.json"))
    array = json.loads(inner.read("volumeAnnotationData/1/zarr.json"))
    chunk = inner.read("volumeAnnotationData/1/c.0.0.0.0")
    as_float = json.loads(json.dumps(props))
    as_float["dataLayers"][0]["elementClass"] = "float32"
    other_type = dict(array, data_type="uint16")
    damaged = chunk[:16] + bytes(b ^ 0x5A for b in chunk[16:])
    outer_huge = _declare_size(source.read_bytes(), "data_0_Volume.zip", 0xFFFFFFF0)
    with zipfile.ZipFile(source) as z:
        inner_bytes = z.read("data_0_Volume.zip")
    chunk_huge = _rewrite(
        source,
        {
            "data_0_Volume.zip": _declare_size(
                inner_bytes, "volumeAnnotationData/1/c.0.0.0.0", 1 << 31
            )
        },
    )
    cases = {
        "volume member missing": (
            _rewrite(source, {"data_0_Volume.zip": None}),
            422,
            "data_0_Volume.zip",
        ),
        "data zip not a zip": (
            _rewrite(source, {"data_0_Volume.zip": b"PK\x03\x04 no zip"}),
            422,
            "damaged",
        ),
        "damaged chunk": (
            _inner(source, {"volumeAnnotationData/1/c.0.0.0.0": damaged}),
            422,
            "c.0.0.0.0",
        ),
        "cut chunk": (
            _inner(source, {"volumeAnnotationData/1/c.0.0.0.0": chunk[:40]}),
            422,
            "c.0.0.0.0",
        ),
        "float layer": (
            _inner(source, {"datasource-properties.json": json.dumps(as_float).encode()}),
            422,
            "float32",
        ),
        "dtype mismatch": (
            _inner(source, {"volumeAnnotationData/1/zarr.json": json.dumps(other_type).encode()}),
            422,
            "uint16",
        ),
        "sharded": (
            _inner(
                source,
                {
                    "volumeAnnotationData/1/zarr.json": json.dumps(
                        dict(array, codecs=[{"name": "sharding_indexed", "configuration": {}}])
                    ).encode()
                },
            ),
            422,
            "sharding_indexed",
        ),
        "huge data zip": (outer_huge, 413, "inflates past"),
        "huge chunk": (chunk_huge, 413, "c.0.0.0.0"),
    }
    _, token = await live.user()
    ann = await live.annotation(token)
    async with live.client(token) as http:
        for what, (body, status, named) in cases.items():
            r = await http.post(f"/api/annotations/{ann}/nml", content=body, headers=ZIP)
            assert r.status_code == status, (what, r.status_code, r.text)
            error = r.json()["error"]
            assert named in error["message"], (what, error)
            assert error["code"] in ("invalid_volume", "too_large"), (what, error)
    assert await versions(live, token, ann, "skeleton") == []
    assert await versions(live, token, ann, "segmentation") == []
    async with live.services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM volume_uploads") == 0


async def test_too_many_bricks_is_413(live: LiveServer, wk_zips: Path) -> None:
    from tests.conftest import live_with, with_settings

    async with live_with(
        with_settings(live.settings, port=live.settings.port + 1, max_volume_bricks=3)
    ) as small:
        _, token = await small.user()
        ann = await small.annotation(token)
        async with small.client(token) as http:
            r = await http.post(
                f"/api/annotations/{ann}/nml",
                content=(wk_zips / "skeleton_volume.zip").read_bytes(),
                headers=ZIP,
            )
            assert r.status_code == 413, r.text
            assert "3 bricks" in r.json()["error"]["message"]


async def test_clients_cannot_write_import_ops(live: LiveServer) -> None:
    a_id, a = await live.user("Ada")
    ann = await live.annotation(a, "ops")
    writer = await YClient(live.sync_url(ann, "segmentation", token=a, acks="1")).connect()
    layer = {"name": "L1", "dtype": "uint32"}
    assert await writer.write(lambda: writer.map("layers").__setitem__("L1", Map(layer)))
    op = {"kind": "import", "layer": "L1", "upload": 1, "author": a_id, "time": 1, "mag": "1"}
    writer.map("ops")[f"{a_id}-1"] = op
    code, reason = await writer.wait_closed()
    assert code == 4422 and "import" in reason, (code, reason)
    seg = await versions(live, a, ann, "segmentation")
    assert len(seg) == 1  # the layer; nothing of the op


async def test_deleting_the_import_op_undoes_its_voxels(live: LiveServer, wk_zips: Path) -> None:
    """An import op deleted (an undo) takes its voxels with it; a stroke
    drawn over them after the import stays."""
    a_id, token = await live.user("Ada")
    ann = await live.annotation(token)
    async with live.client(token) as http:
        r = await http.post(
            f"/api/annotations/{ann}/nml",
            content=(wk_zips / "skeleton_volume.zip").read_bytes(),
            headers=ZIP,
        )
        assert r.status_code == 200, r.text
        lid = r.json()["segmentation"]["layers"][0]["id"]
    writer = await YClient(live.sync_url(ann, "segmentation", token=token, acks="1")).connect()
    stroke = {"kind": "brush", "layer": lid, "author": a_id, "time": 1, "mag": "1",
              "plane": "xy", "points": [[20, 20, 6]], "radius": 2, "segment": 5,
              "erase": False, "mode": "all"}  # fmt: skip
    assert await writer.write(lambda: writer.map("ops").__setitem__(f"{a_id}-1", stroke))
    url = f"/api/annotations/{ann}/volume/{lid}/1/0/0/0"
    async with live.client(token) as http:
        painted = enc.from_raw((await http.get(url)).content, np.dtype("uint32"))
        assert (painted == 7).sum() == 8**3 and (painted == 5).sum() > 0
        assert await writer.write(lambda: writer.map("ops").__delitem__(lid))
        undone = enc.from_raw((await http.get(url)).content, np.dtype("uint32"))
    assert (undone == 7).sum() == 0 and (undone == 2504698).sum() == 0
    np.testing.assert_array_equal(undone == 5, painted == 5)
    await writer.close()


def _members(count: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for i in range(count):
            z.writestr(f"volumeAnnotationData/1/c.0.{i}.0.0", b"")
    return out.getvalue()


def _damaged_wkw_data_zip() -> bytes:
    """A WKW data zip whose one bucket file (4³ raw blocks, 8 MiB inflated,
    a few KiB deflated) fails its CRC."""
    header = b"WKW" + bytes([1, (2 << 4) | 5, 1, 3, 4]) + struct.pack("<Q", 16)
    body = header + b"".join(np.full(32**3, i + 1, np.uint32).tobytes() for i in range(64))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("1/header.wkw", header)
        z.writestr("1/z0/y0/x0.wkw", body)
    data = bytearray(out.getvalue())
    at = data.index(b"PK\x01\x02")  # the first member's directory entry: its CRC at +16
    at = data.index(b"PK\x01\x02", at + 4)
    data[at + 16 : at + 20] = bytes(4)
    return bytes(data)


async def test_data_zip_bombs_are_413_before_they_are_read(live: LiveServer, wk_zips: Path) -> None:
    """A data zip's directory is bounded by what its bricks could need
    before zipfile reads it, and a WKW bucket file's declared size is
    charged to COLLAB_MAX_VOLUME_BYTES before it is inflated: all 413,
    nothing stored."""
    from tests.conftest import live_with, with_settings

    source = wk_zips / "skeleton_volume.zip"
    cases = {
        "directory over its room": (_members(6000), "directory is larger than"),
        "too many members": (_members(3000), "holds 3000 members, more than 1027"),
        "wkw over the budget": (_damaged_wkw_data_zip(), "x0.wkw: the volume data inflates past"),
    }
    small = with_settings(
        live.settings, port=live.settings.port + 1, max_volume_bricks=3, max_volume_bytes=2_000_000
    )
    async with live_with(small) as server:
        _, token = await server.user()
        ann = await server.annotation(token)
        async with server.client(token) as http:
            for what, (data_zip, named) in cases.items():
                body = _rewrite(source, {"data_0_Volume.zip": data_zip})
                r = await http.post(f"/api/annotations/{ann}/nml", content=body, headers=ZIP)
                assert r.status_code == 413, (what, r.text)
                assert named in r.json()["error"]["message"], (what, r.text)
        assert await versions(server, token, ann, "skeleton") == []
        assert await versions(server, token, ann, "segmentation") == []
        async with server.services.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM volume_uploads") == 0


async def test_an_unsound_import_op_is_skipped(live: LiveServer, wk_zips: Path) -> None:
    """An op rewritten into kind ``import`` (a rewrite of an existing key is
    not seen by the check on arrival; here the server writes it, as such a
    rewrite would land) that names the annotation's own upload from another
    layer's op: the materialiser skips it (imports.check_import). The
    rewritten brush stroke is undone; the upload's uint32 bricks never land
    in the uint8 layer."""
    a_id, token = await live.user("Ada")
    ann = await live.annotation(token)
    async with live.client(token) as http:
        r = await http.post(
            f"/api/annotations/{ann}/nml",
            content=(wk_zips / "skeleton_volume.zip").read_bytes(),
            headers=ZIP,
        )
        assert r.status_code == 200, r.text
        lid = r.json()["segmentation"]["layers"][0]["id"]
    upload = int(lid.removeprefix("upload-"))
    writer = await YClient(live.sync_url(ann, "segmentation", token=token, acks="1")).connect()
    entry = {"name": "L8", "dtype": "uint8", "mags": ["1"]}
    assert await writer.write(lambda: writer.map("layers").__setitem__("L8", Map(entry)))
    stroke = {"kind": "brush", "layer": "L8", "author": a_id, "time": 1, "mag": "1",
              "plane": "xy", "points": [[5, 5, 5]], "radius": 3, "segment": 9,
              "erase": False, "mode": "all"}  # fmt: skip
    assert await writer.write(lambda: writer.map("ops").__setitem__(f"{a_id}-1", stroke))
    url = f"/api/annotations/{ann}/volume/L8/1/0/0/0"
    async with live.client(token) as http:
        painted = await http.get(url)
        assert painted.status_code == 200 and len(painted.content) == 32**3, painted.text
        assert (np.frombuffer(painted.content, np.uint8) == 9).any()
    rewritten = {"kind": "import", "layer": "L8", "upload": upload, "author": a_id,
                 "time": 2, "mag": "1", "mags": ["1"]}  # fmt: skip
    async with live.services.rooms.hold(RoomKey(ann, "segmentation")) as room:
        await room.quiet()
        room.change(
            lambda doc: doc.get("ops", type=Map).__setitem__(f"{a_id}-1", rewritten),
            a_id,
            {"test": "a rewrite that slipped by"},
        )
    async with live.client(token) as http:
        undone = await http.get(url)
        assert undone.status_code == 200, undone.text
        np.testing.assert_array_equal(
            np.frombuffer(undone.content, np.uint8), np.zeros(32**3, np.uint8)
        )
        imported = await http.get(f"/api/annotations/{ann}/volume/{lid}/1/0/0/0")
        assert (enc.from_raw(imported.content, np.dtype("uint32")) == 7).sum() == 8**3
    async with live.services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT data FROM materialised_bricks WHERE annotation_id = $1 AND layer = 'L8'", ann
        )
        ops = await conn.fetch(
            "SELECT op FROM materialised_ops WHERE annotation_id = $1 AND layer = 'L8' "
            "AND deleted_at IS NULL",
            ann,
        )
    assert rows and all(len(enc.decompress(r["data"])) == 32**3 for r in rows)  # uint8 only
    assert ops == []  # the stroke undone, the rewrite not applied
    await writer.close()


async def test_zip_export_needs_the_annotations_dataset(live: LiveServer, wk_zips: Path) -> None:
    """The zip export carries voxels: a viewer of the annotation who may not
    read its dataset (shared with another team) is refused (403), as for
    its bricks; the plain NML stays open to it."""
    from tests.volume.helpers import make_dataset
    from tests.work.helpers import make_org

    org = await make_org(live)
    make_dataset(Path(live.settings.roots[0]) / "small")
    async with live.client(live.admin_token) as http:
        body = {"name": "small", "url": "small", "teams": [org.team_a]}
        assert (await http.post("/api/datasets", json=body)).status_code == 201
    async with org.client(org.annotator) as http:
        r = await http.post("/api/annotations", json={"name": "v", "dataset": "small"})
        ann = r.json()["id"]
        r = await http.post(
            f"/api/annotations/{ann}/nml",
            content=(wk_zips / "skeleton_volume.zip").read_bytes(),
            headers=ZIP,
        )
        assert r.status_code == 200, r.text
        grant = {"user": org.outsider.id, "role": "viewer"}
        assert (await http.post(f"/api/annotations/{ann}/grants", json=grant)).status_code == 201
        own = await http.get(f"/api/annotations/{ann}/nml", params={"format": "zip"})
        assert own.status_code == 200 and own.content.startswith(b"PK"), own.text
    async with org.client(org.outsider) as http:
        lid = r.json()["segmentation"]["layers"][0]["id"]
        brick = await http.get(f"/api/annotations/{ann}/volume/{lid}/1/0/0/0")
        assert brick.status_code == 403, brick.text
        url = f"/api/annotations/{ann}/nml"
        for refused in (
            await http.get(url, params={"format": "zip"}),
            await http.get(url, headers={"accept": "application/zip"}),
        ):
            assert refused.status_code == 403, refused.status_code  # not the zip
            assert refused.json()["error"]["code"] == "forbidden"
        plain = await http.get(f"/api/annotations/{ann}/nml")
        assert plain.status_code == 200 and b"<things" in plain.content


async def test_mags_an_import_lacks_are_computed_in_bounded_memory(live: LiveServer) -> None:
    """4,096 bricks at mag 1 (512 MiB of voxels, a few KiB zipped) under a
    fallback with mags 1 and 2: the 512 bricks of mag 2 are computed batch
    by batch and written as they go. Held all at once they were 64 MiB, and
    their comparison with the version before as much again; the server's
    process (this one: tracemalloc sees numpy) now peaks far below that."""
    from tests.volume.helpers import make_dataset

    make_dataset(Path(live.settings.roots[0]) / "small")
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": "small", "url": "small"})
        assert r.status_code == 201, r.text
    bricks = {
        (x, y, z): 1 + (x + y + z) % 5 for x in range(16) for y in range(16) for z in range(16)
    }
    body = volume_zip(bricks)
    _, token = await live.user()
    async with live.client(token) as http:
        ann = (await http.post("/api/annotations", json={"name": "v", "dataset": "small"})).json()[
            "id"
        ]
        tracemalloc.start()
        try:
            r = await http.post(f"/api/annotations/{ann}/nml", content=body, headers=ZIP)
            assert r.status_code == 200, r.text
            lid = r.json()["segmentation"]["layers"][0]["id"]
            coarse = await http.get(f"/api/annotations/{ann}/volume/{lid}/2/3/5/7")  # waits
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert coarse.status_code == 200, coarse.text
    # Mag-2 brick (3, 5, 7) lies over mag-1 bricks (6..7, 10..11, 14..15).
    want = np.zeros((64, 64, 64), np.uint32)
    for i in (0, 1):
        for j in (0, 1):
            for k in (0, 1):
                want[i * 32 : i * 32 + 32, j * 32 : j * 32 + 32, k * 32 : k * 32 + 32] = bricks[
                    (6 + i, 10 + j, 14 + k)
                ]
    np.testing.assert_array_equal(
        enc.from_raw(coarse.content, np.dtype("uint32")), downsample_labels(want, (2, 2, 2))
    )
    async with live.services.pool.acquire() as conn:
        counts = dict(
            await conn.fetch(
                "SELECT mag, count(*) FROM materialised_bricks WHERE annotation_id = $1 "
                "GROUP BY mag",
                ann,
            )
        )
    assert counts == {"1": 4096, "2": 512}, counts
    print(f"import of 4,096 bricks: peak {peak / 2**20:.0f} MiB traced")
    assert peak < 96 * 2**20, f"peak {peak / 2**20:.0f} MiB"


async def test_a_task_from_a_base_with_an_imported_zip_shows_its_voxels(
    live: LiveServer, wk_zips: Path
) -> None:
    """A task's annotation is a copy of its base's documents, whose import
    ops name the base's uploads: the copy (and a copy of the copy) uses
    them, and materialises the same voxels. An upload of the base made after
    the copy is not the copy's."""
    from tests.work.helpers import make_org

    org = await make_org(live)
    async with org.client(org.manager) as http:
        base = (await http.post("/api/annotations", json={"name": "base"})).json()["id"]
        r = await http.post(
            f"/api/annotations/{base}/nml",
            content=(wk_zips / "skeleton_volume.zip").read_bytes(),
            headers=ZIP,
        )
        assert r.status_code == 200, r.text
        lid = r.json()["segmentation"]["layers"][0]["id"]
        url = f"/api/annotations/{base}/volume/{lid}/1/0/0/0"
        theirs = enc.from_raw((await http.get(url)).content, np.dtype("uint32"))
    assert (theirs == 7).sum() == 8**3
    r = await org.tasks({"project": org.project, "taskType": org.task_type,
                         "position": [1, 2, 3], "baseAnnotation": base})  # fmt: skip
    assert r.status_code == 201, r.text
    async with org.client(org.annotator) as http:
        copy = (await http.post("/api/tasks/next")).json()["annotation"]
        got = await http.get(f"/api/annotations/{copy}/volume/{lid}/1/0/0/0")
        assert got.status_code == 200, got.text
    np.testing.assert_array_equal(enc.from_raw(got.content, np.dtype("uint32")), theirs)
    # The copy as a task's base in turn.
    r = await org.tasks({"project": org.project, "taskType": org.task_type,
                         "position": [1, 2, 3], "baseAnnotation": copy})  # fmt: skip
    assert r.status_code == 201, r.text
    async with org.client(org.novice) as http:
        second = (await http.post("/api/tasks/next")).json()["annotation"]
        got = await http.get(f"/api/annotations/{second}/volume/{lid}/1/0/0/0")
    np.testing.assert_array_equal(enc.from_raw(got.content, np.dtype("uint32")), theirs)
    async with org.client(org.manager) as http:
        r = await http.post(
            f"/api/annotations/{base}/nml",
            content=(wk_zips / "skeleton_volume.zip").read_bytes(),
            headers=ZIP,
        )
        later = int(r.json()["segmentation"]["layers"][0]["id"].removeprefix("upload-"))
    async with live.services.pool.acquire() as conn:
        first = int(lid.removeprefix("upload-"))
        assert await uploads.get(conn, second, first) is not None
        assert await uploads.get(conn, copy, later) is None
        assert await uploads.get(conn, base, later) is not None


async def test_a_skeleton_task_refuses_volume_layers(live: LiveServer, wk_zips: Path) -> None:
    """A task's annotation changes only the documents of its task type's
    modes: a skeleton-only task refuses a zip with volume layers (403,
    nothing stored, its skeleton not merged either) and takes one without;
    a task with the volume mode takes the volume layers."""
    from tests.work.helpers import make_org

    org = await make_org(live)  # its task type: modes ["skeleton"]
    r = await org.tasks({"project": org.project, "taskType": org.task_type,
                         "position": [1, 2, 3]})  # fmt: skip
    assert r.status_code == 201, r.text
    body = (wk_zips / "skeleton_volume.zip").read_bytes()
    async with org.client(org.annotator) as http:
        ann = (await http.post("/api/tasks/next")).json()["annotation"]
        r = await http.post(f"/api/annotations/{ann}/nml", content=body, headers=ZIP)
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert error["code"] == "forbidden" and "1 volume layer" in error["message"], error
        assert await versions(live, org.annotator.token, ann, "skeleton") == []
        assert await versions(live, org.annotator.token, ann, "segmentation") == []
        with zipfile.ZipFile(wk_zips / "skeleton_volume.zip") as z:
            nml = z.read("skeleton_volume.nml")
        start, end = nml.index(b"<volume "), nml.index(b"</volume>") + len(b"</volume>")
        plain = _rewrite(wk_zips / "skeleton_volume.zip", {
            "data_0_Volume.zip": None, "skeleton_volume.nml": nml[:start] + nml[end:]
        })  # fmt: skip
        r = await http.post(f"/api/annotations/{ann}/nml", content=plain, headers=ZIP)
        assert r.status_code == 200 and "segmentation" not in r.json(), r.text
    async with live.services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM volume_uploads") == 0
    async with org.client(org.manager) as http:
        r = await http.post(
            "/api/tasktypes",
            json={"name": "paint", "description": "", "modes": ["skeleton", "volume"]},
        )
        assert r.status_code == 201, r.text
        volume_type = r.json()["id"]
    r = await org.tasks({"project": org.project, "taskType": volume_type,
                         "position": [1, 2, 3]})  # fmt: skip
    async with org.client(org.annotator) as http:
        ann = (await http.post("/api/tasks/next")).json()["annotation"]
        r = await http.post(f"/api/annotations/{ann}/nml", content=body, headers=ZIP)
        assert r.status_code == 200, r.text
        assert len(r.json()["segmentation"]["layers"]) == 1


def _segments(count: int, entries: int, chars: int) -> str:
    """``count`` <segment> elements, each with ``entries`` metadata strings of ``chars``."""
    meta = "".join(
        f'<metadataEntry key="k{i}" stringValue="{"a" * chars}" />' for i in range(entries)
    )
    return "".join(
        f'<segment id="{s + 1}" name="s{s}"><metadata>{meta}</metadata></segment>'
        for s in range(count)
    )


async def test_segment_metadata_counts_toward_the_document_cap(settings: Any) -> None:
    """50 segments with 100 metadata strings of 1,000 characters each: 5 MB
    in the document, 20 KB zipped. Under a 1 MB cap the import is refused
    (413 document_full) before anything is stored or merged; the same zip
    with short metadata goes in."""
    from tests.conftest import live_with, with_settings

    async with live_with(with_settings(settings, max_document_bytes=1_000_000)) as live:
        _, token = await live.user()
        ann = await live.annotation(token)
        big = volume_zip({}, _segments(50, 100, 1000))
        assert len(big) < 100_000
        async with live.client(token) as http:
            r = await http.post(f"/api/annotations/{ann}/nml", content=big, headers=ZIP)
            assert r.status_code == 413, r.text
            assert r.json()["error"]["code"] == "document_full"
            assert await versions(live, token, ann, "skeleton") == []
            assert await versions(live, token, ann, "segmentation") == []
            async with live.services.pool.acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM volume_uploads") == 0
            small = volume_zip({}, _segments(50, 2, 10))
            r = await http.post(f"/api/annotations/{ann}/nml", content=small, headers=ZIP)
            assert r.status_code == 200, r.text
            assert r.json()["segmentation"]["layers"][0]["segments"] == 50


async def test_uploads_go_when_the_document_change_fails(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The segmentation document's change fails after the uploads were
    stored and the skeleton merged: the uploads are removed (nothing names
    them); the skeleton's version stays, as documented."""
    from collab.segmentation import imports

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the document change failed")

    _, token = await live.user()
    ann = await live.annotation(token)
    monkeypatch.setattr(imports, "write_layers", broken)
    async with live.client(token) as http:
        r = await http.post(
            f"/api/annotations/{ann}/nml", content=volume_zip({(0, 0, 0): 3}), headers=ZIP
        )
    assert r.status_code == 500, r.text
    monkeypatch.undo()
    assert await versions(live, token, ann, "segmentation") == []
    assert len(await versions(live, token, ann, "skeleton")) == 1
    async with live.services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM volume_uploads") == 0


async def test_pending_uploads_are_settled_by_a_later_import(live: LiveServer) -> None:
    """Uploads stored before a crash (pending: no version names them) are
    removed by the first import an hour on; those a version names stay, no
    longer pending."""
    _, token = await live.user()
    ann = await live.annotation(token)
    async with live.client(token) as http:
        r = await http.post(
            f"/api/annotations/{ann}/nml", content=volume_zip({(0, 0, 0): 3}), headers=ZIP
        )
        assert r.status_code == 200, r.text
    named = int(r.json()["segmentation"]["layers"][0]["id"].removeprefix("upload-"))
    async with live.services.pool.acquire() as conn:
        orphan = await uploads.create(conn, ann, None, "lost", "zarr3", "uint32", ["1"])
        young = await uploads.create(conn, ann, None, "running", "zarr3", "uint32", ["1"])
        await conn.execute(
            "UPDATE volume_uploads SET created_at = now() - interval '2 hours' "
            "WHERE id = ANY($1::bigint[])",
            [named, orphan],
        )
    async with live.client(token) as http:
        r = await http.post(
            f"/api/annotations/{ann}/nml", content=volume_zip({(1, 0, 0): 4}), headers=ZIP
        )
        assert r.status_code == 200, r.text
    async with live.services.pool.acquire() as conn:
        rows = dict(await conn.fetch("SELECT id, pending FROM volume_uploads ORDER BY id"))
    newest = max(rows)
    assert rows == {named: False, young: True, newest: True}, rows
