"""Writing datasets in the WEBKNOSSOS layout with zarr-python (the demo, tests).

Each mag is a zarr v3 array with axes ``c, x, y, z``, sharded, with 32³ inner
chunks stored x-fastest (``transpose`` [3, 2, 1, 0]) and ``zstd``: the layout
``webknossos`` writes, and the one whose stored chunks are bricks as sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, TransposeCodec, ZstdCodec

from collab.volume.layout import WK_PROPERTIES
from collab.volume.mags import Mag

SHARD = 256


def _codecs(level: int) -> list[Any]:
    return [
        ShardingCodec(
            chunk_shape=(1, 32, 32, 32),
            codecs=[TransposeCodec(order=(3, 2, 1, 0)), BytesCodec(), ZstdCodec(level=level)],
            index_codecs=[BytesCodec(), Crc32cCodec()],
        )
    ]


def write_mag(
    root: Path, layer: str, mag: Mag, data: np.ndarray, level: int = 3, shard: int = SHARD
) -> str:
    """Write ``data`` ([x, y, z], starting at voxel 0 of this mag) as one mag."""
    path = f"{layer}/{mag}"
    shape = tuple(-(-n // 32) * 32 for n in data.shape)
    shard_shape = tuple(min(shard, s) for s in shape)
    array = zarr.create(
        store=str(root / path),
        shape=(1, *shape),
        chunk_shape=(1, *shard_shape),
        dtype=data.dtype,
        fill_value=0,
        codecs=_codecs(level),
        dimension_names=["c", "x", "y", "z"],
        overwrite=True,
        zarr_format=3,
    )
    for x0 in range(0, data.shape[0], shard_shape[0]):
        for y0 in range(0, data.shape[1], shard_shape[1]):
            for z0 in range(0, data.shape[2], shard_shape[2]):
                block = data[
                    x0 : x0 + shard_shape[0], y0 : y0 + shard_shape[1], z0 : z0 + shard_shape[2]
                ]
                array[
                    0,
                    x0 : x0 + block.shape[0],
                    y0 : y0 + block.shape[1],
                    z0 : z0 + block.shape[2],
                ] = block
    return path


def downsample(data: np.ndarray, factor: Sequence[int], segmentation: bool) -> np.ndarray:
    """Next mag: the mean of each block (color), or its first voxel (segmentation)."""
    fx, fy, fz = factor
    if segmentation:
        return np.ascontiguousarray(data[::fx, ::fy, ::fz])
    sx, sy, sz = (-(-n // f) * f for n, f in zip(data.shape, factor, strict=True))
    padded = data
    if (sx, sy, sz) != data.shape:
        padded = np.pad(
            data,
            [(0, sx - data.shape[0]), (0, sy - data.shape[1]), (0, sz - data.shape[2])],
            mode="edge",
        )
    blocks = padded.reshape(sx // fx, fx, sy // fy, fy, sz // fz, fz)
    return blocks.mean(axis=(1, 3, 5), dtype=np.float32).round().astype(data.dtype)


def write_layer(
    root: Path,
    name: str,
    category: str,
    data: np.ndarray,
    mags: Sequence[Mag],
    level: int = 3,
) -> dict[str, Any]:
    """Write a layer's pyramid; returns its ``datasource-properties.json`` entry."""
    entries = []
    current = data
    previous = Mag(1, 1, 1)
    for mag in mags:
        factor = (mag.x // previous.x, mag.y // previous.y, mag.z // previous.z)
        if mag != previous:
            current = downsample(current, factor, category == "segmentation")
        path = write_mag(root, name, mag, current, level)
        entries.append(
            {
                "mag": [mag.x, mag.y, mag.z],
                "path": f"./{path}",
                "axisOrder": {"c": 0, "x": 1, "y": 2, "z": 3},
            }
        )
        previous = mag
    layer: dict[str, Any] = {
        "name": name,
        "category": category,
        "boundingBox": {
            "topLeft": [0, 0, 0],
            "width": int(data.shape[0]),
            "height": int(data.shape[1]),
            "depth": int(data.shape[2]),
        },
        "dataFormat": "zarr3",
        "mags": entries,
        "numChannels": 1,
        "elementClass": data.dtype.name,
    }
    if category == "segmentation":
        layer["largestSegmentId"] = int(data.max())
    return layer


def write_mapping(root: Path, layer: str, name: str, table: np.ndarray) -> None:
    """A supervoxel→agglomerate mapping: a 1-D array indexed by supervoxel id."""
    array = zarr.create(
        store=str(root / layer / "agglomerates" / name),
        shape=table.shape,
        chunk_shape=(min(len(table), 1 << 20),),
        dtype=table.dtype,
        fill_value=0,
        codecs=[BytesCodec(), ZstdCodec(level=3)],
        overwrite=True,
        zarr_format=3,
    )
    array[:] = table


def write_properties(
    root: Path, name: str, voxel_size: Sequence[float], layers: list[dict[str, Any]]
) -> None:
    doc = {
        "id": {"name": name, "team": ""},
        "scale": {"factor": list(voxel_size), "unit": "nanometer"},
        "dataLayers": layers,
        "version": 1,
    }
    (root / WK_PROPERTIES).write_text(json.dumps(doc, indent=2))
    (root / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group"}))
