"""Data zips of WEBKNOSSOS volume layers (collab/segmentation/volume_zip.py)
and the scan of an upload (collab/segmentation/imports.py), in process:
what is written reads back, WKW blocks land where their Morton index says,
and damaged bytes anywhere in a layer are refused with a 4xx error of the
tree, never anything else."""

from __future__ import annotations

import io
import random
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numcodecs import LZ4

from collab.errors import CollabError
from collab.segmentation.imports import read_bricks, scan
from collab.segmentation.volume_zip import Budget, LayerReader, ZarrZipWriter
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
