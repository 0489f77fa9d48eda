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

from collab.errors import CollabError, Unprocessable
from collab.segmentation.ids import DTYPE_MAX
from collab.volume.mags import Mag, parse_mag

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
#: How far a stroke's centres may lie apart along each axis, voxels of mag 1
#: (a viewport's width at mag 1): what bounds the bricks one stroke reaches.
MAX_STROKE_SPAN = 1024
#: Bricks (32³ at the op's mag) a box op may reach: a 256³ box reaches at
#: most 9³ = 729; a flat box of as many voxels would reach thousands.
MAX_OP_BRICKS = 1024
#: Mags a volume layer keeps, and how much coarser each may be than the one
#: before it (voxels of the finer per voxel of the coarser; 4³ = 64).
MAX_LAYER_MAGS = 16
MAX_MAG_STEP = 64
DTYPES = ("uint8", "uint16", "uint32", "uint64")

PLANES = {"xy": 2, "xz": 1, "yz": 0}  # plane → the axis through it (the slice)
KINDS = ("brush", "fill2d", "fill3d", "eraseSegment", "interpolate")
#: The op kind only the server writes: voxels uploaded with a WEBKNOSSOS zip
#: (collab/segmentation/imports.py).
SERVER_KIND = "import"
#: Proofreading ops: written by the server (POST …/merge, …/split:
#: collab/http/proofreading.py), which checks them against the editable
#: mapping and computes a split's cut as it sequences them.
MAPPING_KINDS = ("merge", "split")


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
    for key in list(fresh_layers.keys()):
        check_layer(key, fresh_layers[key])
    if len(scratch.get("idBlocks", type=Map)) > 0:
        raise Unprocessable("idBlocks: written by the server only (POST …/segment-ids)")
    if len(ops) == 0:
        return
    layers = doc.get("layers", type=Map)
    for key in list(ops.keys()):
        layer_of = _layer_lookup(layers, fresh_layers)
        check_op(key, ops[key], layer_of, author)


def check_layer(key: str, entry: Any) -> None:
    """A volume layer a client creates: its dtype, mags and bounding box are
    what materialisation relies on; ``largestSegmentId`` is the server's."""
    where = f"layers[{key[:40]!r}]"
    if "," in key or "/" in key or not key:
        raise Unprocessable(f"{where}: a layer id must be non-empty, without ',' or '/'")
    if not isinstance(entry, Map):
        raise Unprocessable(f"{where}: a layer is a Y.Map")
    values = entry.to_py() or {}
    if "largestSegmentId" in values:
        raise Unprocessable(f"{where}.largestSegmentId: written by the server only")
    if values.get("dtype", "uint32") not in DTYPES:
        raise Unprocessable(f"{where}.dtype: expected one of {', '.join(DTYPES)}")
    names = values.get("mags")
    if names is not None:
        layer_mags(names, f"{where}.mags")
    if values.get("boundingBox") is not None:
        box = values["boundingBox"]
        if not isinstance(box, dict):
            raise Unprocessable(f"{where}.boundingBox: expected {{topLeft, size}}")
        _point(box.get("topLeft"), f"{where}.boundingBox.topLeft", None)
        _point(box.get("size"), f"{where}.boundingBox.size", None)


def layer_mags(names: Any, where: str) -> list[Mag]:
    """A layer's ``mags``: mag names, finest first, at most MAX_LAYER_MAGS,
    each a whole multiple of the one before and at most MAX_MAG_STEP coarser."""
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_LAYER_MAGS:
        raise Unprocessable(f"{where}: 1 to {MAX_LAYER_MAGS} mag names, finest first")
    out: list[Mag] = []
    for name in names:
        try:
            mag = parse_mag(_text(name, 20))
        except CollabError:
            raise Unprocessable(f"{where}: {_text(name, 20)!r} is no mag") from None
        if out:
            prev = out[-1]
            ratio = [c // p for c, p in zip(mag, prev, strict=True)]
            if (
                any(c % p for c, p in zip(mag, prev, strict=True))
                or min(ratio) < 1
                or math.prod(ratio) <= 1
                or math.prod(ratio) > MAX_MAG_STEP
            ):
                raise Unprocessable(
                    f"{where}: {mag} must be a whole multiple of {prev}, "
                    f"at most {MAX_MAG_STEP} of its voxels per voxel"
                )
        out.append(mag)
    return out


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
    if kind in MAPPING_KINDS:
        raise Unprocessable(
            f"{where}.kind: {kind!r} ops are written by the server only "
            f"(POST /api/annotations/{{id}}/volume/{{layer}}/{kind})"
        )
    if kind not in KINDS:
        raise Unprocessable(f"{where}.kind: expected one of {', '.join(KINDS)}")
    layer = op.get("layer")
    entry = layer_of(layer) if isinstance(layer, str) else None
    if entry is None:
        raise Unprocessable(f"{where}.layer: no volume layer {_text(layer, 40)!r} in the document")
    if op.get("author") != author:
        raise Unprocessable(f"{where}.author: must be the sender's user id ({author})")
    _number(op, "time", where)
    mag = op.get("mag")
    if not isinstance(mag, str) or not 0 < len(mag) <= 20:
        raise Unprocessable(f"{where}.mag: expected a mag name such as '1' or '2-2-1'")
    try:
        parsed = parse_mag(mag)
    except CollabError:
        raise Unprocessable(f"{where}.mag: {mag!r} is no mag name such as '1' or '2-2-1'") from None
    kept = entry.get("mags")
    if isinstance(kept, list) and kept and parsed not in _mags_of(kept):
        raise Unprocessable(f"{where}.mag: the layer keeps no mag {mag!r}")
    largest = DTYPE_MAX.get(_text(entry.get("dtype"), 10), DTYPE_MAX["uint32"])
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
        lo = [MAX_COORD] * 3
        hi = [0] * 3
        for i, p in enumerate(points):
            point = _point(p, f"{where}.points[{i}]", box)
            first = point[axis] if first is None else first
            if point[axis] != first:
                raise Unprocessable(f"{where}.points[{i}]: a stroke stays in one slice")
            lo = [min(lo[a], point[a]) for a in range(3)]
            hi = [max(hi[a], point[a]) for a in range(3)]
        if max(hi[a] - lo[a] for a in range(3)) > MAX_STROKE_SPAN:
            raise Unprocessable(
                f"{where}.points: a stroke's centres lie at most {MAX_STROKE_SPAN} voxels apart"
            )
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
        top, size = _box(op, where, parsed)
        if not all(top[a] <= seed[a] < top[a] + size[a] for a in range(3)):
            raise Unprocessable(f"{where}.seed: must lie in the box")
    elif kind == "eraseSegment":
        _box(op, where, parsed)
    else:  # interpolate
        _plane(op, where)
        low = _int(op, "from", where, 0, MAX_COORD - 1)
        high = _int(op, "to", where, 0, MAX_COORD - 1)
        if not 1 < abs(high - low) <= MAX_INTERPOLATION_SLICES:
            raise Unprocessable(
                f"{where}: 'from' and 'to' are 2 to {MAX_INTERPOLATION_SLICES} slices apart"
            )
        _box(op, where, parsed)


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


def _box(op: dict[str, Any], where: str, mag: Mag) -> tuple[list[int], list[int]]:
    box = op.get("box")
    if not isinstance(box, dict):
        raise Unprocessable(f"{where}.box: expected {{topLeft, size}}")
    top = _point(box.get("topLeft"), f"{where}.box.topLeft", None)
    size = _point(box.get("size"), f"{where}.box.size", None)
    if 0 in size or math.prod(size) > MAX_BOX_VOXELS:
        raise Unprocessable(f"{where}.box.size: 1 to {MAX_BOX_VOXELS} voxels")
    # The bricks it reaches at its mag (as collab/segmentation/paint.py
    # scales it: mag-1 voxels floor-divided by the mag).
    f = (mag.x, mag.y, mag.z)
    bricks = math.prod(
        (top[a] + size[a] - 1) // f[a] // 32 - top[a] // f[a] // 32 + 1 for a in range(3)
    )
    if bricks > MAX_OP_BRICKS:
        raise Unprocessable(
            f"{where}.box: reaches {bricks} bricks of 32³ at mag {mag}; at most {MAX_OP_BRICKS}"
        )
    return top, size


def _bounds(entry: dict[str, Any]) -> tuple[list[int], list[int]] | None:
    """The layer's bounding box, if the document gives a well-formed one."""
    box = entry.get("boundingBox")
    if not isinstance(box, dict):
        return None
    try:
        top = [int(c) for c in box["topLeft"]]
        size = [int(c) for c in box["size"]]
    except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: inf
        return None
    return (top, size) if len(top) == 3 and len(size) == 3 else None


def _mags_of(names: list[Any]) -> list[Mag]:
    out = []
    for name in names[:MAX_LAYER_MAGS]:
        try:
            out.append(parse_mag(_text(name, 20)))
        except CollabError:
            continue
    return out


def _text(value: Any, limit: int) -> str:
    """A client's value for a message or a lookup: a string's first
    ``limit`` characters, else its type's name (never ``str()`` of a value
    nested thousands deep: that raises RecursionError)."""
    return value[:limit] if isinstance(value, str) else f"<{type(value).__name__}>"
