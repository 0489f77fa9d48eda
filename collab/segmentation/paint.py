"""What a voxel operation does to the voxels (docs/schema.md, "Voxel
operations"): pure numpy on a dense block of one mag, so the materialiser
(and a replay) gets the same voxels from the same ops in the same order.

An op at mag ``f`` (factors per axis) works on voxels of that mag: its
positions (voxels of mag 1) are divided by ``f`` and floored, its radius
divided per axis. :func:`reach` says which box of that mag an op may
change; the caller assembles the bricks covering it into one block,
:func:`apply` changes the block in place, and the bricks go back.
Coarser mags follow by :func:`downsample_labels` (the most frequent label
of each cell, WEBKNOSSOS's "mode" for segmentations).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from collab.segmentation.ops import FILL_2D_SIDE, PLANES

Vec = tuple[int, int, int]
Box = tuple[Vec, Vec]  # (low, high): low ≤ voxel < high, voxels of the op's mag


def _scaled(p: list[int] | tuple[int, ...], f: Vec) -> Vec:
    return (int(p[0]) // f[0], int(p[1]) // f[1], int(p[2]) // f[2])


def _box_of(box: dict[str, Any], f: Vec) -> Box:
    top = [int(c) for c in box["topLeft"]]
    size = [int(c) for c in box["size"]]
    low = _scaled(top, f)
    high = tuple(-(-(top[a] + size[a]) // f[a]) for a in range(3))
    return low, (high[0], high[1], high[2])


def reach(op: dict[str, Any], f: Vec) -> Box:
    """The box of voxels (of the op's mag ``f``) the op may change."""
    kind = op["kind"]
    if kind == "brush":
        axis = PLANES[op["plane"]]
        points = np.array([_scaled(p, f) for p in op["points"]], dtype=np.int64)
        radius = [math.ceil(float(op["radius"]) / f[a]) for a in range(3)]
        low = [int(points[:, a].min()) - (radius[a] if a != axis else 0) for a in range(3)]
        high = [int(points[:, a].max()) + 1 + (radius[a] if a != axis else 0) for a in range(3)]
        return _clip(low, high)
    if kind == "fill2d":
        axis = PLANES[op["plane"]]
        seed = _scaled(op["seed"], f)
        half = FILL_2D_SIDE // 2
        low = [seed[a] - half if a != axis else seed[a] for a in range(3)]
        high = [seed[a] + half if a != axis else seed[a] + 1 for a in range(3)]
        return _clip(low, high)
    return _box_of(op["box"], f)  # fill3d, eraseSegment, interpolate


def _clip(low: list[int], high: list[int]) -> Box:
    lo = tuple(max(0, c) for c in low)
    hi = tuple(max(lo[a], high[a]) for a in range(3))
    return (lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2])


def apply(op: dict[str, Any], block: np.ndarray, origin: Vec, f: Vec) -> None:
    """Apply ``op`` to ``block`` (voxels of mag ``f``, x-y-z order, its first
    voxel at ``origin``); voxels outside the block are not touched."""
    kind = op["kind"]
    segment = int(op.get("segment") or 0)
    if kind == "brush":
        _brush(op, block, origin, f, segment)
    elif kind == "fill2d":
        axis = PLANES[op["plane"]]
        seed = _local(_scaled(op["seed"], f), origin, block.shape)
        if seed is None:
            return
        plane = _slice(block, axis, seed[axis])
        seed2 = tuple(seed[a] for a in range(3) if a != axis)
        _fill(plane, seed2, segment, connectivity=1)
    elif kind == "fill3d":
        seed = _local(_scaled(op["seed"], f), origin, block.shape)
        if seed is not None:
            low, high = _box_of(op["box"], f)
            sub = _sub(block, origin, low, high)
            local = tuple(seed[a] - max(0, low[a] - origin[a]) for a in range(3))
            if all(0 <= local[a] < sub.shape[a] for a in range(3)):
                _fill(sub, local, segment, connectivity=1)
    elif kind == "eraseSegment":
        low, high = _box_of(op["box"], f)
        sub = _sub(block, origin, low, high)
        sub[sub == segment] = 0
    elif kind == "interpolate":
        _interpolate(op, block, origin, f, segment)


def _slice(block: np.ndarray, axis: int, k: int) -> np.ndarray:
    """Slice ``k`` across ``axis``: a view (writes go to the block)."""
    index: list[slice | int] = [slice(None)] * 3
    index[axis] = k
    return block[tuple(index)]


def _local(p: Vec, origin: Vec, shape: tuple[int, ...]) -> Vec | None:
    q = (p[0] - origin[0], p[1] - origin[1], p[2] - origin[2])
    return q if all(0 <= q[a] < shape[a] for a in range(3)) else None


def _sub(block: np.ndarray, origin: Vec, low: Vec, high: Vec) -> np.ndarray:
    """The part of ``block`` inside [low, high) (a view; empty if none)."""
    s = tuple(
        slice(
            min(block.shape[a], max(0, low[a] - origin[a])),
            min(block.shape[a], max(0, high[a] - origin[a])),
        )
        for a in range(3)
    )
    return block[s]


def _brush(op: dict[str, Any], block: np.ndarray, origin: Vec, f: Vec, segment: int) -> None:
    axis = PLANES[op["plane"]]
    u, v = (a for a in range(3) if a != axis)
    points = [_scaled(p, f) for p in op["points"]]
    w = points[0][axis] - origin[axis]
    if not 0 <= w < block.shape[axis]:
        return
    plane = _slice(block, axis, w)  # (u, v)
    # Distances in voxels of mag 1, so a radius is round at every mag.
    gu = (np.arange(plane.shape[0]) + origin[u] + 0.5) * f[u]
    gv = (np.arange(plane.shape[1]) + origin[v] + 0.5) * f[v]
    cu = [(p[u] + 0.5) * f[u] for p in points]
    cv = [(p[v] + 0.5) * f[v] for p in points]
    mask = _near_polyline(gu, gv, cu, cv, float(op["radius"]))
    if op.get("erase"):
        plane[mask] = 0
    elif op.get("mode") == "empty":
        plane[mask & (plane == 0)] = segment
    else:
        plane[mask] = segment


def brush_bricks(op: dict[str, Any], f: Vec, b0: Vec, b1: Vec, size: int) -> list[Vec]:
    """The bricks (``size``³, of mag ``f``, within b0…b1) a brush stroke may
    change: those whose square in the slice comes within the radius of the
    polyline (measured, as the brush does, in voxels of mag 1)."""
    axis = PLANES[op["plane"]]
    u, v = (a for a in range(3) if a != axis)
    points = [_scaled(p, f) for p in op["points"]]
    w = points[0][axis] // size
    gu = (np.arange(b0[u], b1[u] + 1) + 0.5) * size * f[u]
    gv = (np.arange(b0[v], b1[v] + 1) + 0.5) * size * f[v]
    cu = [(p[u] + 0.5) * f[u] for p in points]
    cv = [(p[v] + 0.5) * f[v] for p in points]
    slack = size / 2 * math.hypot(f[u], f[v]) + max(f[u], f[v])
    mask = _near_polyline(gu, gv, cu, cv, float(op["radius"]) + slack)
    out: list[Vec] = []
    for i, j in zip(*np.nonzero(mask), strict=True):
        b = [0, 0, 0]
        b[axis], b[u], b[v] = w, b0[u] + int(i), b0[v] + int(j)
        out.append((b[0], b[1], b[2]))
    return out


def _near_polyline(
    gu: np.ndarray, gv: np.ndarray, cu: list[float], cv: list[float], radius: float
) -> np.ndarray:
    """Grid points (gu × gv) within ``radius`` of the polyline (cu, cv)."""
    U = gu[:, None]
    V = gv[None, :]
    mask = np.zeros((len(gu), len(gv)), dtype=bool)
    r2 = radius * radius
    if len(cu) == 1:
        return ((U - cu[0]) ** 2 + (V - cv[0]) ** 2) <= r2
    # Only segments that come near the grid are looked at (one numpy pass),
    # so painting brick by brick costs what each brick's own segments cost.
    pu, pv = np.asarray(cu), np.asarray(cv)
    near = np.flatnonzero(
        (np.minimum(pu[:-1], pu[1:]) - radius <= gu[-1])
        & (np.maximum(pu[:-1], pu[1:]) + radius >= gu[0])
        & (np.minimum(pv[:-1], pv[1:]) - radius <= gv[-1])
        & (np.maximum(pv[:-1], pv[1:]) + radius >= gv[0])
    )
    for k in near.tolist():
        au, av, bu, bv = cu[k], cv[k], cu[k + 1], cv[k + 1]
        du, dv = bu - au, bv - av
        length2 = du * du + dv * dv
        # Only the segment's own neighbourhood is looked at.
        lo_u = np.searchsorted(gu, min(au, bu) - radius)
        hi_u = np.searchsorted(gu, max(au, bu) + radius, side="right")
        lo_v = np.searchsorted(gv, min(av, bv) - radius)
        hi_v = np.searchsorted(gv, max(av, bv) + radius, side="right")
        if lo_u >= hi_u or lo_v >= hi_v:
            continue
        su = U[lo_u:hi_u]
        sv = V[:, lo_v:hi_v]
        if length2 == 0:
            t = np.zeros((1, 1))
        else:
            t = np.clip(((su - au) * du + (sv - av) * dv) / length2, 0.0, 1.0)
        d2 = (su - (au + t * du)) ** 2 + (sv - (av + t * dv)) ** 2
        mask[lo_u:hi_u, lo_v:hi_v] |= d2 <= r2
    return mask


def _fill(region: np.ndarray, seed: tuple[int, ...], segment: int, connectivity: int) -> None:
    """Relabel the connected region of ``seed``'s label (face neighbours) with ``segment``."""
    value = region[seed]
    if value == segment:
        return
    same = region == value
    structure = ndimage.generate_binary_structure(region.ndim, connectivity)
    labels, _ = ndimage.label(same, structure=structure)
    region[labels == labels[seed]] = segment


def _interpolate(op: dict[str, Any], block: np.ndarray, origin: Vec, f: Vec, segment: int) -> None:
    """Fill the slices strictly between ``from`` and ``to`` with the shape
    interpolated from the segment's outline in those two slices (signed
    distances blended linearly: WEBKNOSSOS's "V")."""
    axis = PLANES[op["plane"]]
    low_box, high_box = _box_of(op["box"], f)
    a = int(op["from"]) // f[axis]
    b = int(op["to"]) // f[axis]
    if a > b:
        a, b = b, a
    sub = _sub(block, origin, low_box, high_box)
    start = max(0, low_box[axis] - origin[axis])
    ia, ib = a - origin[axis] - start, b - origin[axis] - start
    if not (0 <= ia < sub.shape[axis] and 0 <= ib < sub.shape[axis]) or ib - ia < 2:
        return
    first = _slice(sub, axis, ia) == segment
    last = _slice(sub, axis, ib) == segment
    if not first.any() or not last.any():
        return
    da, db = _signed_distance(first), _signed_distance(last)
    for k in range(ia + 1, ib):
        t = (k - ia) / (ib - ia)
        inside = (1 - t) * da + t * db <= 0
        plane = _slice(sub, axis, k)
        plane[inside] = segment


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Negative inside, positive outside (distance to the outline)."""
    outside = ndimage.distance_transform_edt(~mask)
    inside = ndimage.distance_transform_edt(mask)
    return np.asarray(outside - inside, dtype=np.float64)


def downsample_labels(block: np.ndarray, factor: Vec) -> np.ndarray:
    """A label block of a coarser mag: each cell of ``factor`` voxels gets
    its most frequent label; on a tie a segment wins over 0 (a one-slice
    stroke must not vanish at a mag that halves z), then the smallest id.
    The shape must divide."""
    fx, fy, fz = factor
    sx, sy, sz = block.shape[0] // fx, block.shape[1] // fy, block.shape[2] // fz
    cells = (
        block[: sx * fx, : sy * fy, : sz * fz]
        .reshape(sx, fx, sy, fy, sz, fz)
        .transpose(0, 2, 4, 1, 3, 5)
        .reshape(sx, sy, sz, fx * fy * fz)
    )
    ordered = np.sort(cells, axis=-1)
    n = ordered.shape[-1]
    # Run lengths along the sorted cell: the longest run's value is the mode.
    change = np.ones(ordered.shape, dtype=bool)
    change[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    idx = np.where(change, np.arange(n), 0)
    starts = np.maximum.accumulate(idx, axis=-1)
    runs = (np.arange(n) - starts + 1).astype(np.float64)
    runs += 0.5 * (ordered != 0)  # ties go to a segment, never to a larger count
    best = np.argmax(runs, axis=-1)  # the end of the first longest run
    return np.take_along_axis(ordered, best[..., None], axis=-1)[..., 0]
