"""Writing datasets in the WEBKNOSSOS layout with zarr-python (the demo, tests):
layers, mappings and agglomerate attachments.

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

from collab.volume.agglomerates import ARTIFACT_CLASS as AGGLOMERATE_ARTIFACT_CLASS
from collab.volume.agglomerates import SCHEMA_VERSION as AGGLOMERATE_SCHEMA_VERSION
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


#: Chunk and shard targets of webknossos-libs' agglomerate writer (bytes).
_OFFSETS_CHUNK, _OFFSETS_SHARD = 64 * 1024, 256 * 1024 * 1024
_DATA_CHUNK, _DATA_SHARD = 256 * 1024, 1024 * 1024 * 1024


def _write_sharded(path: Path, data: np.ndarray, chunk_bytes: int, shard_bytes: int) -> None:
    """One array as webknossos-libs writes it: rows of the first axis per
    chunk (``chunk_bytes``) and per shard, zstd 5 with checksums, crc32c index."""
    row_bytes = data.dtype.itemsize * int(np.prod(data.shape[1:], dtype=np.int64))
    rows = max(data.shape[0], 1)
    chunk_rows = max(1, min(rows, chunk_bytes // row_bytes))
    shard_cap = max(chunk_rows, min(rows, shard_bytes // row_bytes))
    shard_rows = -(-shard_cap // chunk_rows) * chunk_rows
    array = zarr.create(
        store=str(path),
        shape=data.shape,
        chunk_shape=(shard_rows, *data.shape[1:]),
        dtype=data.dtype,
        fill_value=0,
        codecs=[
            ShardingCodec(
                chunk_shape=(chunk_rows, *data.shape[1:]),
                codecs=[BytesCodec(), ZstdCodec(level=5, checksum=True)],
                index_codecs=[BytesCodec(), Crc32cCodec()],
            )
        ],
        overwrite=True,
        zarr_format=3,
    )
    if data.size:
        array[...] = data


def write_agglomerate_graph(
    root: Path,
    layer: str,
    name: str,
    mapping: np.ndarray,
    edges: np.ndarray,
    affinities: np.ndarray,
    positions: np.ndarray,
    dtype: np.dtype[Any] | type = np.uint32,
) -> dict[str, str]:
    """A WEBKNOSSOS agglomerate attachment at ``<layer>/agglomerates/<name>``.

    ``mapping[s]`` is supervoxel ``s``'s agglomerate (``mapping[0]`` is 0; a
    supervoxel mapped to 0 is left out); ``edges`` are pairs of supervoxel ids
    within one agglomerate, ``affinities`` one per edge; ``positions[s]`` a
    voxel (x, y, z) of supervoxel ``s``. Agglomerate ids are kept as given
    (an id with no supervoxel is an empty agglomerate). ``dtype`` is the
    layer's (uint32 or uint64). Returns the entry for the layer's
    ``attachments.agglomerates`` in ``datasource-properties.json``.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.uint32), np.dtype(np.uint64)):
        raise ValueError(f"agglomerate files are written for uint32 or uint64 layers, not {dtype}")
    mapping = np.asarray(mapping).astype(np.uint64)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    affinities = np.asarray(affinities, dtype=np.float32).reshape(-1)
    positions = np.asarray(positions)
    n = len(mapping) - 1
    if n < 0 or mapping[0] != 0:
        raise ValueError("mapping[0] (the background) must be 0")
    if positions.shape != (n + 1, 3):
        raise ValueError(f"positions: expected shape ({n + 1}, 3), got {positions.shape}")
    if len(affinities) != len(edges):
        raise ValueError(f"{len(edges)} edges but {len(affinities)} affinities")
    if len(edges) and (edges.min() < 1 or edges.max() > n):
        raise ValueError(f"an edge names a supervoxel outside 1..{n}")
    if np.any(edges[:, 0] == edges[:, 1]):
        raise ValueError("an edge joins a supervoxel to itself")
    agg_of_edge = mapping[edges[:, 0]]
    if np.any(agg_of_edge != mapping[edges[:, 1]]) or np.any(agg_of_edge == 0):
        raise ValueError("an edge joins two agglomerates (or the background)")
    n_agg = int(mapping.max()) if n else 0

    members = np.flatnonzero(mapping[1:] != 0) + 1
    member_agg = mapping[members]
    order = np.argsort(member_agg, kind="stable")  # ids ascending within each
    segments = members[order]
    counts = np.bincount(member_agg.astype(np.int64), minlength=n_agg + 1)
    seg_offsets = np.zeros(n_agg + 2, dtype=np.uint64)
    seg_offsets[1:] = np.cumsum(counts)
    local = np.zeros(n + 1, dtype=np.int64)
    local[segments] = np.arange(len(segments)) - seg_offsets[member_agg[order]].astype(np.int64)

    a, b = local[edges[:, 0]], local[edges[:, 1]]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    edge_agg = agg_of_edge.astype(np.int64)
    edge_order = np.lexsort((hi, lo, edge_agg))
    keys = np.stack([edge_agg, lo, hi], axis=1)[edge_order]
    if len(keys) > 1 and np.any(np.all(keys[1:] == keys[:-1], axis=1)):
        raise ValueError("an edge is listed twice")
    edge_offsets = np.zeros(n_agg + 2, dtype=np.uint64)
    edge_offsets[1:] = np.cumsum(np.bincount(edge_agg, minlength=n_agg + 1))

    path = root / layer / "agglomerates" / name
    path.mkdir(parents=True, exist_ok=True)
    group = {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {
            "voxelytics": {
                "artifact_schema_version": AGGLOMERATE_SCHEMA_VERSION,
                "artifact_class": AGGLOMERATE_ARTIFACT_CLASS,
            }
        },
    }
    (path / "zarr.json").write_text(json.dumps(group, indent=2))
    arrays = [
        ("segment_to_agglomerate", mapping, _DATA_CHUNK, _DATA_SHARD),
        ("agglomerate_to_segments_offsets", seg_offsets, _OFFSETS_CHUNK, _OFFSETS_SHARD),
        ("agglomerate_to_segments", segments.astype(dtype), _DATA_CHUNK, _DATA_SHARD),
        (
            "agglomerate_to_positions",
            positions[segments].astype(np.int32).reshape(-1, 3),
            _DATA_CHUNK,
            _DATA_SHARD,
        ),
        ("agglomerate_to_edges_offsets", edge_offsets, _OFFSETS_CHUNK, _OFFSETS_SHARD),
        (
            "agglomerate_to_edges",
            np.stack([lo, hi], axis=1)[edge_order].astype(dtype).reshape(-1, 2),
            _DATA_CHUNK,
            _DATA_SHARD,
        ),
        ("agglomerate_to_affinities", affinities[edge_order], _DATA_CHUNK, _DATA_SHARD),
    ]
    for array_name, data, chunk, shard in arrays:
        _write_sharded(path / array_name, np.ascontiguousarray(data), chunk, shard)
    return {"name": name, "path": f"./{layer}/agglomerates/{name}", "dataFormat": "zarr3"}
