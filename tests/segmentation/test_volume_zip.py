"""Data zips of WEBKNOSSOS volume layers (collab/segmentation/volume_zip.py)
and the scan of an upload (collab/segmentation/imports.py), in process:
what is written reads back, WKW blocks land where their Morton index says,
and damaged bytes anywhere in a layer are refused with a 4xx error of the
tree, never anything else."""

from __future__ import annotations

import io
import random
import struct
import tracemalloc
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from numcodecs import LZ4

from collab.errors import CollabError, PayloadTooLarge, Unprocessable
from collab.segmentation.imports import check_import, read_bricks, scan
from collab.segmentation.volume_zip import Budget, LayerReader, ZarrZipWriter, open_zip
from collab.store.uploads import Upload
from collab.volume import encoding as enc
from collab.volume.mags import Mag
from tests.fixtures import webknossos_annotations

pytestmark = pytest.mark.timeout(900)


def test_written_zarr3_reads_back() -> None:
    rng = np.random.default_rng(3)
    bricks = {
        (Mag(1, 1, 1), (3, 0, 7)): rng.integers(0, 9, (32, 32, 32)).astype(np.uint16),
        (Mag(2, 2, 1), (1, 0, 7)): rng.integers(0, 9, (32, 32, 32)).astype(np.uint16),
    }
    out = io.BytesIO()
    writer = ZarrZipWriter(out, np.dtype("uint16"))
    for (mag, b), voxels in bricks.items():
        writer.add(mag, b, enc.to_raw(voxels))
    writer.close([Mag(1, 1, 1), Mag(2, 2, 1), Mag(4, 4, 1)], (0, 0, 0), (64, 64, 64), (1, 1, 1), 8)
    reader = LayerReader(zipfile.ZipFile(out), "test", Budget(1 << 30, 100))
    assert reader.data is not None and reader.data.dtype == np.dtype("uint16")
    assert reader.data.mags == [Mag(1, 1, 1), Mag(2, 2, 1), Mag(4, 4, 1)]
    assert reader.data.top_left == (0, 0, 0) and reader.data.size == (128, 64, 256)
    got = {(mag, b): v for mag, b, v in reader.bricks()}
    assert got.keys() == bricks.keys()
    for key, voxels in bricks.items():
        np.testing.assert_array_equal(got[key], voxels)


def _wkw_file(blocks: list[np.ndarray], file_log2: int) -> bytes:
    size = 32**3 * 4
    packed = [LZ4().encode(enc.to_raw(b))[4:] for b in blocks]  # numcodecs prefixes the size
    n = len(blocks)
    offset = 16 + 8 * n
    ends, at = [], offset
    for p in packed:
        at += len(p)
        ends.append(at)
    header = b"WKW" + bytes([1, (file_log2 << 4) | 5, 2, 3, 4]) + struct.pack("<Q", offset)
    assert all(len(enc.to_raw(b)) == size for b in blocks)
    return header + struct.pack(f"<{n}Q", *ends) + b"".join(packed)


def test_wkw_blocks_in_morton_order() -> None:
    """A WKW file of 2³ blocks: block i sits at the Morton position of i;
    all-zero blocks of such files are left out."""
    blocks = [np.full((32, 32, 32), i, np.uint32) for i in range(8)]
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as z:
        z.writestr("1/header.wkw", _wkw_file([], 1)[:16])
        z.writestr("1/z1/y0/x2.wkw", _wkw_file(blocks, 1))
    reader = LayerReader(zipfile.ZipFile(data), "test", Budget(1 << 30, 100))
    got = {b: int(v[0, 0, 0]) for _mag, b, v in reader.bricks()}
    # file (x2, y0, z1) of 2 blocks a side starts at brick (4, 0, 2); i = x + 2y + 4z.
    assert got == {(4 + (i & 1), (i >> 1) & 1, 2 + (i >> 2)): i for i in range(1, 8)}


def _mutations(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0 and data:  # flip bytes
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == 1:  # cut
        return data[: rng.randrange(len(data) + 1)]
    if kind == 2:  # garbage
        return rng.randbytes(rng.randrange(64))
    return data + rng.randbytes(rng.randrange(1, 64))  # trailing bytes


def test_damaged_layers_are_refused_with_4xx(tmp_path: Path) -> None:
    """Any member of any data zip the library wrote (zarr3 and WKW),
    damaged at random: the scan ends with its layers read or with a 4xx
    error of the tree — never another exception."""
    folder, _ = webknossos_annotations()
    rng = random.Random(11)
    outcomes = {"read": 0, "refused": 0}
    for name in ("skeleton_volume.zip", "two_volumes.zip"):
        source = folder / name
        with zipfile.ZipFile(source) as z:
            members = {i.filename: z.read(i) for i in z.infolist()}
        for data_name in [n for n in members if n.startswith("data_")]:
            inner = zipfile.ZipFile(io.BytesIO(members[data_name]))
            inner_members = {i.filename: inner.read(i) for i in inner.infolist()}
            for _ in range(60):
                target = rng.choice(sorted(inner_members))
                changed = dict(inner_members, **{target: _mutations(inner_members[target], rng)})
                rebuilt = io.BytesIO()
                with zipfile.ZipFile(rebuilt, "w") as z:
                    for n, d in changed.items():
                        z.writestr(n, d)
                outer = io.BytesIO()
                with zipfile.ZipFile(outer, "w") as z:
                    for n, d in members.items():
                        z.writestr(n, rebuilt.getvalue() if n == data_name else d)
                path = tmp_path / "upload.zip"
                path.write_bytes(outer.getvalue())
                try:
                    plan = scan(str(path), str(tmp_path), 1 << 30, 1 << 30, 10_000)
                except CollabError as exc:
                    assert 400 <= exc.status < 500, exc
                    outcomes["refused"] += 1
                    continue
                for layer in plan.layers:  # what was read is whole bricks
                    for batch in read_bricks(layer):
                        for _mag, _b, packed in batch:
                            assert (
                                len(enc.decompress(packed))
                                == 32**3 * np.dtype(layer.dtype).itemsize
                            )
                outcomes["read"] += 1
    assert outcomes["refused"] > 50 and outcomes["read"] > 10, outcomes


def _declare_directory(data: bytes, size: int) -> bytes:
    """The zip ``data`` with the size of its central directory (end record) changed."""
    at = data.rindex(b"PK\x05\x06")
    return data[: at + 12] + struct.pack("<I", size) + data[at + 16 :]


def _many_members(count: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for i in range(count):
            z.writestr(f"volumeAnnotationData/1/c.0.{i}.0.0", b"")
    return out.getvalue()


def test_a_data_zips_directory_is_bounded_before_it_is_read() -> None:
    """A directory declaring more bytes than its members could need (here:
    the whole 2 MiB file) is refused (413) before zipfile reads it; so is
    one listing more members than the layer's bricks could need. One
    declaring more than the file holds is damaged (422)."""
    big = io.BytesIO()
    with zipfile.ZipFile(big, "w") as z:
        z.writestr("datasource-properties.json", b"{}")
        z.writestr("volumeAnnotationData/1/c.0.0.0.0", random.Random(1).randbytes(2 << 20))
    data = big.getvalue()
    whole = _declare_directory(data, data.rindex(b"PK\x05\x06"))
    with pytest.raises(PayloadTooLarge, match="directory is larger than"):
        open_zip(io.BytesIO(whole), "test", 100)
    with pytest.raises(CollabError) as refused:
        open_zip(io.BytesIO(_declare_directory(data, 0xFFFFFFF0)), "test", 100)
    assert refused.value.status == 422
    with pytest.raises(PayloadTooLarge, match="directory is larger than"):
        open_zip(io.BytesIO(_many_members(5000)), "test", 100)
    # Within the room for its members: opened, then counted.
    with pytest.raises(PayloadTooLarge, match="holds 300 members, more than 200"):
        open_zip(io.BytesIO(_many_members(300)), "test", 200)
    assert len(open_zip(io.BytesIO(_many_members(200)), "test", 200).infolist()) == 200


def _outer_with(tmp_path: Path, data_zip: bytes) -> Path:
    """skeleton_volume.zip with its data zip replaced."""
    folder, _ = webknossos_annotations()
    out = io.BytesIO()
    with zipfile.ZipFile(folder / "skeleton_volume.zip") as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = data_zip if info.filename == "data_0_Volume.zip" else src.read(info)
            dst.writestr(info.filename, data)
    path = tmp_path / "upload.zip"
    path.write_bytes(out.getvalue())
    return path


def test_scan_refuses_a_data_zip_of_too_many_members(tmp_path: Path) -> None:
    path = _outer_with(tmp_path, _many_members(3000))
    with pytest.raises(PayloadTooLarge, match="holds 3000 members, more than 1034"):
        scan(str(path), str(tmp_path), 1 << 30, 1 << 30, 10)


def _wkw_zip(blocks: list[np.ndarray], file_log2: int, raw: bool = False) -> zipfile.ZipFile:
    data = io.BytesIO()
    if raw:
        header = b"WKW" + bytes([1, (file_log2 << 4) | 5, 1, 3, 4]) + struct.pack("<Q", 16)
        body = header + b"".join(enc.to_raw(b) for b in blocks)
    else:
        body = _wkw_file(blocks, file_log2)
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("1/header.wkw", body[:16])
        z.writestr("1/z0/y0/x0.wkw", body)
    return zipfile.ZipFile(data)


def test_a_wkw_file_is_charged_before_it_is_read() -> None:
    """Its declared size counts against the byte budget before a byte of it
    is inflated: a damaged file over the budget is refused as too large, not
    read to find the damage."""
    blocks = [np.full((32, 32, 32), i + 1, np.uint32) for i in range(8)]
    source = _wkw_zip(blocks, 1)
    damaged = io.BytesIO()
    with zipfile.ZipFile(damaged, "w", zipfile.ZIP_STORED) as z:
        for info in source.infolist():
            z.writestr(info.filename, source.read(info))
    data = bytearray(damaged.getvalue())
    at = data.index(b"WKW", data.index(b"1/z0/y0/x0.wkw"))
    data[at + 100 : at + 140] = bytes(40)  # the member's CRC no longer matches
    archive = zipfile.ZipFile(io.BytesIO(bytes(data)))
    size = archive.getinfo("1/z0/y0/x0.wkw").file_size
    reader = LayerReader(archive, "test", Budget(size // 2, 100))
    with pytest.raises(PayloadTooLarge, match=r"x0\.wkw: the volume data inflates past"):
        list(reader.bricks())
    reader = LayerReader(zipfile.ZipFile(io.BytesIO(bytes(data))), "test", Budget(1 << 30, 100))
    with pytest.raises(CollabError) as refused:
        list(reader.bricks())
    assert refused.value.status == 422


def test_a_wkw_file_is_read_block_by_block() -> None:
    """A file of 4³ raw blocks (8 MiB) is never in memory whole: reading
    it holds about a block at a time."""
    blocks = [np.full((32, 32, 32), i + 1, np.uint32) for i in range(64)]
    for raw in (True, False):
        archive = _wkw_zip(blocks, 2, raw)
        reader = LayerReader(archive, "test", Budget(1 << 30, 100))
        seen = 0
        tracemalloc.start()
        try:
            for _mag, _b, voxels in reader.bricks():
                seen += 1
                del voxels
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert seen == 64
        assert peak < 2 << 20, (raw, peak)  # the file: 8 MiB


def test_damaged_data_zip_directories_are_refused_with_4xx(tmp_path: Path) -> None:
    """The data zip's end record and central directory damaged at random
    (sizes, counts, offsets set to anything, bytes flipped): the scan reads
    the layer or refuses it with a 4xx error of the tree."""
    folder, _ = webknossos_annotations()
    with zipfile.ZipFile(folder / "skeleton_volume.zip") as z:
        data_zip = z.read("data_0_Volume.zip")
    directory = data_zip.index(b"PK\x01\x02")
    rng = random.Random(5)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(150):
        data = bytearray(data_zip)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(directory, len(data) - 4)
            if rng.random() < 0.5:
                data[at : at + 4] = struct.pack(
                    "<I", rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF, rng.getrandbits(32)])
                )
            else:
                data[at] ^= 1 << rng.randrange(8)
        path = _outer_with(tmp_path, bytes(data))
        try:
            scan(str(path), str(tmp_path), 1 << 30, 1 << 30, 10_000)
        except CollabError as exc:
            assert 400 <= exc.status < 500, exc
            outcomes["refused"] += 1
            continue
        outcomes["read"] += 1
    assert outcomes["refused"] > 50, outcomes


def test_check_import_accepts_only_what_write_layers_writes() -> None:
    upload = Upload(12, 3, 5, "Volume", "zarr3", "uint32", ["1", "2"], 10)
    good = {"kind": "import", "layer": "upload-12", "upload": 12, "author": 5, "time": 1,
            "mag": "1", "mags": ["1", "2"]}  # fmt: skip
    check_import("upload-12", good, "uint32", upload)
    check_import("upload-12", dict(good, upload=12.0, author=5.0), "uint32", upload)  # from JS
    check_import("upload-12", dict(good, author=9), "uint32", replace(upload, author_id=None))
    refused = {
        "another key": ("7-1", good, "uint32", upload, "id must be 'upload-12'"),
        "another layer": ("upload-12", dict(good, layer="L1"), "uint32", upload, "layer must"),
        "no upload id": ("upload-12", dict(good, upload="12"), "uint32", upload, "upload id"),
        "not this annotation's": ("upload-12", good, "uint32", None, "not this annotation's"),
        "another upload": ("upload-12", good, "uint32", replace(upload, id=13), "not this"),
        "another dtype": ("upload-12", good, "uint8", upload, "holds uint32 voxels"),
        "another author": ("upload-12", dict(good, author=6), "uint32", upload, "author"),
    }
    for key, op, dtype, found, named in refused.values():
        with pytest.raises(Unprocessable, match=named):
            check_import(key, op, dtype, found)
