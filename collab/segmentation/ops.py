"""Voxel operations of the segmentation document: their shape, bounds and
the check every client update passes before it is applied
(docs/schema.md, "segmentation", "Voxel operations").

Pure: no I/O. A refused op closes its sender's socket with 4422 and a reason
naming the op and the field; nothing of the update is applied, stored or
relayed, and nobody else notices.
"""

from __future__ import annotations

import math
from typing import Any

from pycrdt import Doc, Map

from collab.errors import Unprocessable
from collab.segmentation.ids import DTYPE_MAX

#: Centres in one brush stroke.
MAX_POINTS = 10_000
#: Brush radius, voxels of mag 1 (WEBKNOSSOS's largest brush is 3,000 nm).
MAX_RADIUS = 256
#: Side of the square a 2D fill stays in, around its seed (voxels of its mag).
FILL_2D_SIDE = 1024
#: Voxels of the box of a 3D fill, an erase or an interpolation (256³).
MAX_BOX_VOXELS = 256**3
#: Slices an interpolation spans.
MAX_INTERPOLATION_SLICES = 64
#: Coordinates are voxels of mag 1 within this (2^31, as brick paths).
MAX_COORD = 2**31

PLANES = {"xy": 2, "xz": 1, "yz": 0}  # plane → the axis through it (the slice)
KINDS = ("brush", "fill2d", "fill3d", "eraseSegment", "interpolate")
#: The op kind only the server writes: voxels uploaded with a WEBKNOSSOS zip
#: (collab/segmentation/imports.py).
SERVER_KIND = "import"


def check_update(doc: Doc, update: bytes, author: int | None) -> None:
    """The segmentation document's :attr:`DocumentKind.check`: every voxel
    operation the update writes must be well formed, within bounds, on a
    volume layer of the document and by its sender.

    The update is decoded into a document of its own: a new op is a fresh
    key of the ``ops`` root, which integrates without the rest of the
    document. (An update that rewrites an op that exists has an origin the
    scratch document lacks and is not seen here; ops never change once
    written, and materialisation reads each op as first written.)"""
    scratch: Doc = Doc()
    ops = scratch.get("ops", type=Map)
    fresh_layers = scratch.get("layers", type=Map)
    try:
        scratch.apply_update(update)
    except Exception:
        return  # the room's own apply refuses what pycrdt cannot apply
    if len(ops) == 0:
        return
    layers = doc.get("layers", type=Map)
    for key in list(ops.keys()):
        layer_of = _layer_lookup(layers, fresh_layers)
        check_op(key, ops[key], layer_of, author)


def _layer_lookup(live: Map, fresh: Map) -> Any:
    def find(name: str) -> dict[str, Any] | None:
        for where in (fresh, live):
            entry = where.get(name)
            if isinstance(entry, Map):
                return entry.to_py()
        return None

    return find


def check_op(key: str, op: Any, layer_of: Any, author: int | None) -> None:
    """Raise Unprocessable naming what is wrong with op ``key``."""
    where = f"ops[{key[:40]!r}]"
    if "," in key or "/" in key or not key:
        raise Unprocessable(f"{where}: an op id must be non-empty, without ',' or '/'")
    if not isinstance(op, dict):
        raise Unprocessable(f"{where}: an op is a JSON object, got {type(op).__name__}")
    kind = op.get("kind")
    if kind == SERVER_KIND:
        raise Unprocessable(
            f"{where}.kind: 'import' ops are written by the server only "
            "(a WEBKNOSSOS zip sent to POST /api/annotations/{id}/nml)"
        )
    if kind not in KINDS:
        raise Unprocessable(f"{where}.kind: expected one of {', '.join(KINDS)}")
    layer = op.get("layer")
    entry = layer_of(layer) if isinstance(layer, str) else None
    if entry is None:
        raise Unprocessable(f"{where}.layer: no volume layer {str(layer)[:40]!r} in the document")
    if op.get("author") != author:
        raise Unprocessable(f"{where}.author: must be the sender's user id ({author})")
    _number(op, "time", where)
    mag = op.get("mag")
    if not isinstance(mag, str) or not 0 < len(mag) <= 20:
        raise Unprocessable(f"{where}.mag: expected a mag name such as '1' or '2-2-1'")
    largest = DTYPE_MAX.get(str(entry.get("dtype")), DTYPE_MAX["uint32"])
    segment = _int(op, "segment", where, 0, largest)
    if segment == 0 and not (kind == "brush" and op.get("erase") is True):
        raise Unprocessable(f"{where}.segment: 0 is no segment (erase with a brush's 'erase')")
    box = _bounds(entry)
    if kind == "brush":
        axis = _plane(op, where)
        points = op.get("points")
        if not isinstance(points, list) or not 1 <= len(points) <= MAX_POINTS:
            raise Unprocessable(f"{where}.points: 1 to {MAX_POINTS} centres [x, y, z]")
        first = None
        for i, p in enumerate(points):
            point = _point(p, f"{where}.points[{i}]", box)
            first = point[axis] if first is None else first
            if point[axis] != first:
                raise Unprocessable(f"{where}.points[{i}]: a stroke stays in one slice")
        radius = _number(op, "radius", where)
        if not 0 < radius <= MAX_RADIUS:
            raise Unprocessable(f"{where}.radius: must be in (0, {MAX_RADIUS}]")
        if not isinstance(op.get("erase"), bool):
            raise Unprocessable(f"{where}.erase: expected true or false")
        if op.get("mode") not in ("all", "empty"):
            raise Unprocessable(f"{where}.mode: expected 'all' or 'empty'")
    elif kind == "fill2d":
        _plane(op, where)
        _point(op.get("seed"), f"{where}.seed", box)
    elif kind == "fill3d":
        seed = _point(op.get("seed"), f"{where}.seed", box)
        top, size = _box(op, where)
        if not all(top[a] <= seed[a] < top[a] + size[a] for a in range(3)):
            raise Unprocessable(f"{where}.seed: must lie in the box")
    elif kind == "eraseSegment":
        _box(op, where)
    else:  # interpolate
        _plane(op, where)
        low = _int(op, "from", where, 0, MAX_COORD - 1)
        high = _int(op, "to", where, 0, MAX_COORD - 1)
        if not 1 < abs(high - low) <= MAX_INTERPOLATION_SLICES:
            raise Unprocessable(
                f"{where}: 'from' and 'to' are 2 to {MAX_INTERPOLATION_SLICES} slices apart"
            )
        _box(op, where)


def _plane(op: dict[str, Any], where: str) -> int:
    plane = op.get("plane")
    if plane not in PLANES:
        raise Unprocessable(f"{where}.plane: expected 'xy', 'xz' or 'yz'")
    return PLANES[plane]


def _number(op: dict[str, Any], name: str, where: str) -> float:
    value = op.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unprocessable(f"{where}.{name}: expected a number")
    return float(value)


def _int(op: dict[str, Any], name: str, where: str, low: int, high: int) -> int:
    value = op.get(name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON numbers arrive as floats
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Unprocessable(f"{where}.{name}: expected an integer in [{low}, {high}]")
    return value


def _point(value: Any, where: str, box: tuple[list[int], list[int]] | None) -> list[int]:
    if not isinstance(value, list) or len(value) != 3:
        raise Unprocessable(f"{where}: expected [x, y, z]")
    out = []
    for c in value:
        if isinstance(c, float) and c.is_integer():
            c = int(c)
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < MAX_COORD:
            raise Unprocessable(f"{where}: coordinates are integers in [0, 2^31)")
        out.append(c)
    if box is not None:
        top, size = box
        if not all(top[a] <= out[a] < top[a] + size[a] for a in range(3)):
            raise Unprocessable(f"{where}: {out} is outside the layer's bounding box")
    return out


def _box(op: dict[str, Any], where: str) -> tuple[list[int], list[int]]:
    box = op.get("box")
    if not isinstance(box, dict):
        raise Unprocessable(f"{where}.box: expected {{topLeft, size}}")
    top = _point(box.get("topLeft"), f"{where}.box.topLeft", None)
    size = _point(box.get("size"), f"{where}.box.size", None)
    if 0 in size or math.prod(size) > MAX_BOX_VOXELS:
        raise Unprocessable(f"{where}.box.size: 1 to {MAX_BOX_VOXELS} voxels")
    return top, size


def _bounds(entry: dict[str, Any]) -> tuple[list[int], list[int]] | None:
    """The layer's bounding box, if the document gives a well-formed one."""
    box = entry.get("boundingBox")
    if not isinstance(box, dict):
        return None
    try:
        top = [int(c) for c in box["topLeft"]]
        size = [int(c) for c in box["size"]]
    except (KeyError, TypeError, ValueError):
        return None
    return (top, size) if len(top) == 3 and len(size) == 3 else None
