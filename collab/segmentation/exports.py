"""Volume layers of the segmentation document written out as WEBKNOSSOS
writes them in an annotation download: a ``<volume>`` element per layer
(collab/segmentation/volume_nml.py) and a zarr3 data zip of the bricks the
annotation wrote (collab/segmentation/volume_zip.py). Pure but for the data
zip's file; the endpoint (collab/http/volume_layers.py) feeds it bricks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from pycrdt import Doc, Map

from collab.errors import CollabError
from collab.segmentation.volume_nml import GroupSpec, SegmentSpec, VolumeSpec
from collab.segmentation.volume_zip import ZarrZipWriter
from collab.volume import encoding as enc
from collab.volume.mags import Mag, parse_mag

_DIGITS = re.compile(r"(\d+)")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def natural(key: str) -> list[Any]:
    """Sort key: ``upload-9`` before ``upload-10``."""
    return [int(p) if p.isdigit() else p for p in _DIGITS.split(key)]


@dataclass
class LayerExport:
    id: str
    spec: VolumeSpec
    dtype: np.dtype[Any]
    mags: list[Mag]
    top_left: tuple[int, int, int]
    size: tuple[int, int, int]


def layers_of(doc: Doc) -> list[LayerExport]:
    """The document's volume layers as NML ``<volume>`` specs (ids 0, 1, …
    in the order of their layer ids; segment groups numbered 1, 2, … per
    layer), without location: the endpoint sets it for layers with voxels."""
    layers = doc.get("layers", type=Map)
    segments = doc.get("segments", type=Map)
    groups = doc.get("groups", type=Map)
    out = []
    for index, lid in enumerate(sorted((str(k) for k in layers.keys()), key=natural)):
        entry = layers.get(lid)
        if not isinstance(entry, Map):
            continue
        e: dict[str, Any] = entry.to_py() or {}
        dtype = (
            e.get("dtype")
            if e.get("dtype") in ("uint8", "uint16", "uint32", "uint64")
            else "uint32"
        )
        mags = []
        names = e.get("mags")
        for m in names if isinstance(names, list) else []:
            try:
                mags.append(parse_mag(str(m)))
            except CollabError:
                continue
        found = e.get("boundingBox")
        box: dict[str, Any] = found if isinstance(found, dict) else {}
        top = _ints(box.get("topLeft")) or (0, 0, 0)
        size = _ints(box.get("size")) or (0, 0, 0)
        mine = sorted(
            (str(gid) for gid, g in groups.items() if isinstance(g, Map) and g.get("layer") == lid),
            key=natural,
        )
        numbers = {gid: i + 1 for i, gid in enumerate(mine)}
        group_specs = []
        for gid in mine:
            g = groups.get(gid)
            assert isinstance(g, Map)
            parent = g.get("parentId")
            group_specs.append(
                GroupSpec(
                    id=numbers[gid],
                    name=str(g.get("name") or ""),
                    parent_id=numbers.get(parent) if isinstance(parent, str) else None,
                    is_expanded=g.get("isExpanded") is not False,
                )
            )
        seg_specs = []
        prefix = f"{lid}/"
        for skey, value in segments.items():
            if not skey.startswith(prefix) or not isinstance(value, dict):
                continue
            raw = skey[len(prefix) :]
            if not raw.isdigit() or not 0 < int(raw) < 2**63:
                continue
            seg_specs.append(_segment(int(raw), value, numbers))
        seg_specs.sort(key=lambda s: s.id)
        largest = e.get("largestSegmentId")
        out.append(
            LayerExport(
                lid,
                VolumeSpec(
                    id=index,
                    name=str(e.get("name") or lid),
                    location=None,
                    fallback=e.get("fallback") if isinstance(e.get("fallback"), str) else None,
                    format=None,
                    largest_segment_id=int(largest)
                    if isinstance(largest, int | float)
                    and not isinstance(largest, bool)
                    and largest >= 0
                    else None,
                    segments=seg_specs,
                    groups=group_specs,
                ),
                np.dtype(dtype),
                sorted(set(mags), key=lambda m: m.volume),
                top,
                size,
            )
        )
    return out


def _ints(value: Any) -> tuple[int, int, int] | None:
    if not isinstance(value, list) or len(value) != 3:
        return None
    try:
        x, y, z = (int(v) for v in value)
    except (TypeError, ValueError):
        return None
    return x, y, z


def _segment(sid: int, value: dict[str, Any], groups: dict[str, int]) -> SegmentSpec:
    color = value.get("color")
    anchor = value.get("anchor")
    name = value.get("name")
    created = value.get("time")
    metadata = value.get("metadata")
    group = value.get("groupId")
    return SegmentSpec(
        id=sid,
        name=str(name) if name is not None else None,
        color=[float(c) for c in color]
        if isinstance(color, list)
        and len(color) == 4
        and all(isinstance(c, int | float) and not isinstance(c, bool) for c in color)
        else None,
        anchor=list(_ints(anchor) or ()) or None,
        group_id=groups.get(group) if isinstance(group, str) else None,
        is_visible=value.get("isVisible") is not False,
        created=int(created)
        if isinstance(created, int | float)
        and not isinstance(created, bool)
        and 0 <= created < 2**53
        else None,
        metadata={str(k): v for k, v in metadata.items()} if isinstance(metadata, dict) else {},
    )


def data_zip_name(index: int, name: str) -> str:
    """``data_0_Volume.zip``: WEBKNOSSOS names a layer's data zip by its
    index and name."""
    return f"data_{index}_{_UNSAFE.sub('_', name)[:60] or 'Volume'}.zip"


class DataZip:
    """One layer's data zip, written as its bricks arrive (from a thread)."""

    def __init__(self, path: Path, layer: LayerExport) -> None:
        self.layer = layer
        self._file: IO[bytes] = path.open("wb")
        self._writer = ZarrZipWriter(self._file, layer.dtype)

    def add(self, batch: list[tuple[str, tuple[int, int, int], bytes]]) -> None:
        """Bricks as stored: (mag name, brick, zstd bytes)."""
        for mag, brick, data in batch:
            self._writer.add(parse_mag(mag), brick, enc.decompress(data))

    def close(self, voxel_size: tuple[float, float, float]) -> None:
        try:
            self._writer.close(
                self.layer.mags,
                self.layer.top_left,
                self.layer.size,
                voxel_size,
                self.layer.spec.largest_segment_id,
            )
        finally:
            self._file.close()

    def abandon(self) -> None:
        self._file.close()
