"""The synthetic demo dataset: an EM-like volume with supervoxels and synapses.

Deterministic from a seed. Geometry is built at half resolution and brought
to full size, which keeps a 512³ dataset well under a minute on two cores:

* **cells**: a 3D Voronoi tiling of ~1,500 supervoxel seeds on warped
  coordinates (curved boundaries), grouped into ~120 cells by the nearest cell
  seed. Supervoxels over-segment the cells, as a watershed does.
* **image**: bright textured cytoplasm, dark membranes where two cells meet
  (not between supervoxels of one cell), darker mitochondria with cristae,
  vesicle clusters at synapses, a post-synaptic density, blur and noise.
* **segmentation**: the supervoxel ids (uint32, 1..n without gaps); a piece
  of a cell cut off from the rest joins the neighbouring cell it touches
  most, so every cell is connected.
* **agglomerate graphs** (WEBKNOSSOS agglomerate attachments, docs/datasets.md):
  ``ground_truth`` (supervoxel → cell) and ``with_errors`` (the same with a
  few merge and split errors, for proofreading practice; ``demo.json`` lists
  them; each split cell's halves are connected). Edges join touching
  supervoxels of one agglomerate; each affinity is the mean image over the
  touching voxel pairs, membrane dark (0) to cytoplasm bright (1).
* **synapses**: ``synapses.json``, each with a position (mag-1 voxels) and its
  pre- and post-synaptic cell.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import ndimage
from scipy.sparse.csgraph import breadth_first_order, connected_components
from scipy.spatial import cKDTree

from collab.volume.mags import Mag
from collab.volume.writer import write_agglomerate_graph, write_layer, write_properties

VOXEL_NM = (8.0, 8.0, 8.0)
#: What a generated dataset holds, in ``demo.json``: 2 adds agglomerate
#: graphs and synapses' supervoxels and types; an older one is made again.
FORMAT = 2
#: Grey values of membranes and of cytoplasm in the image (before blur and noise).
MEMBRANE, CYTOPLASM = 55.0, 168.0
MAGS = [Mag(1, 1, 1), Mag(2, 2, 2), Mag(4, 4, 4), Mag(8, 8, 8)]


def _warp(coords: np.ndarray, rng_params: np.ndarray, size: int) -> np.ndarray:
    """Smoothly displace coordinates so Voronoi faces bend."""
    out = coords.copy()
    for axis in range(3):
        for amp, freq, phase, other in rng_params[axis]:
            out[:, axis] += amp * np.sin(coords[:, int(other)] * (freq / size) * 2 * np.pi + phase)
    return out


def generate(
    root: Path,
    size: int = 512,
    seed: int = 1,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Write the demo dataset to ``root`` (replacing what is there)."""
    started = time.monotonic()
    rng = np.random.default_rng(seed)
    base = size // 2
    n_sv = max(64, int(1500 * (size / 512) ** 3))
    n_cells = max(8, int(120 * (size / 512) ** 3))
    sv_seeds = rng.uniform(0, base, (n_sv, 3))
    cell_seeds = rng.uniform(0, base, (n_cells, 3))
    ground_truth = np.zeros(n_sv + 1, dtype=np.uint32)
    ground_truth[1:] = 1 + cKDTree(cell_seeds).query(sv_seeds)[1]
    warp = np.stack(
        [
            np.stack(
                [
                    rng.uniform(3, 7, 3),
                    rng.uniform(1, 3, 3),
                    rng.uniform(0, 2 * np.pi, 3),
                    np.array([(a + 1) % 3, (a + 2) % 3, (a + 1) % 3], dtype=float),
                ],
                axis=1,
            )
            for a in range(3)
        ]
    )
    tree = cKDTree(sv_seeds)
    sv = np.empty((base, base, base), dtype=np.uint32)
    slab = 16
    grid_yz = np.indices((base, base), dtype=np.float32).reshape(2, -1).T
    for x0 in range(0, base, slab):
        xs = np.arange(x0, min(x0 + slab, base), dtype=np.float32)
        coords = np.empty((len(xs) * len(grid_yz), 3), dtype=np.float32)
        coords[:, 0] = np.repeat(xs, len(grid_yz))
        coords[:, 1:] = np.tile(grid_yz, (len(xs), 1))
        _, nearest = tree.query(_warp(coords, warp, base), workers=-1)
        sv[x0 : x0 + len(xs)] = (nearest + 1).reshape(len(xs), base, base)
    sv, ground_truth = _compact(sv, ground_truth)
    n_sv = len(ground_truth) - 1
    contacts = _contacts(sv, n_sv)
    _connect_cells(ground_truth, contacts)
    log(f"supervoxels: {n_sv} in {n_cells} cells ({time.monotonic() - started:.1f} s)")

    cells = ground_truth[sv]
    membrane = np.zeros(cells.shape, dtype=bool)
    for axis in range(3):
        upper: list[slice] = [slice(None)] * 3
        lower: list[slice] = [slice(None)] * 3
        upper[axis] = slice(1, None)
        lower[axis] = slice(None, -1)
        edge = cells[tuple(upper)] != cells[tuple(lower)]
        membrane[tuple(upper)] |= edge
        membrane[tuple(lower)] |= edge

    image = np.full(cells.shape, CYTOPLASM, dtype=np.float32)
    texture = ndimage.zoom(
        rng.normal(0, 1, (base // 8, base // 8, base // 8)).astype(np.float32), 8, order=1
    )
    image += 10 * texture[:base, :base, :base]
    image[membrane] = MEMBRANE

    # Mitochondria: dark ellipsoids with cristae, inside one cell each.
    n_mito = max(10, int(420 * (size / 512) ** 3))
    for _ in range(n_mito):
        center = rng.uniform(8, base - 8, 3)
        radii = rng.uniform([3.5, 3.5, 6], [6, 6, 14])
        rng.shuffle(radii)
        lo = np.maximum((center - radii - 1).astype(int), 0)
        hi = np.minimum((center + radii + 2).astype(int), base)
        window = tuple(slice(lo[i], hi[i]) for i in range(3))
        gx, gy, gz = np.ogrid[window]
        r2 = (
            ((gx - center[0]) / radii[0]) ** 2
            + ((gy - center[1]) / radii[1]) ** 2
            + ((gz - center[2]) / radii[2]) ** 2
        )
        owner = cells[int(center[0]), int(center[1]), int(center[2])]
        inside = (r2 <= 1.0) & (cells[window] == owner) & ~membrane[window]
        cristae = 18 * np.sin((gx + gy * 0.5) * 1.7)
        image[window] = np.where(inside, 92.0 + cristae, image[window])
        image[window] = np.where(inside & (r2 > 0.7), 62.0, image[window])
    affinity = _affinities(sv, n_sv, image, contacts)
    positions = _positions(sv, n_sv)
    log(f"image at half size ({time.monotonic() - started:.1f} s)")

    # Synapses on membranes between two cells (base coordinates, then full size).
    flat = np.flatnonzero(cells[:-1] != cells[1:])
    picks = rng.choice(
        flat, size=min(len(flat), max(12, int(150 * (size / 512) ** 3))), replace=False
    )
    synapses: list[dict[str, Any]] = []
    seen_pairs: set[tuple[int, int]] = set()
    for k in picks:
        x, y, z = np.unravel_index(k, (base - 1, base, base))
        if not (6 <= x < base - 7 and 6 <= y < base - 6 and 6 <= z < base - 6):
            continue
        a, b = int(cells[x, y, z]), int(cells[x + 1, y, z])
        sa, sb = int(sv[x, y, z]), int(sv[x + 1, y, z])
        forward = rng.random() < 0.5
        pre, post, side = (a, b, -1) if forward else (b, a, 1)
        pre_sv, post_sv = (sa, sb) if forward else (sb, sa)
        if (pre, post) in seen_pairs:
            continue
        seen_pairs.add((pre, post))
        synapses.append(
            {
                "id": len(synapses) + 1,
                "position": [int(2 * x + 1), int(2 * y + 1), int(2 * z + 1)],
                "pre": pre,
                "post": post,
                # The supervoxels on each side: the connectome follows the
                # (editable) mapping from them.
                "preSegment": pre_sv,
                "postSegment": post_sv,
                # Dale's law: a cell's synapses are all of one type.
                "type": "inhibitory" if pre % 5 == 0 else "excitatory",
                "side": side,
            }
        )

    full = np.repeat(np.repeat(np.repeat(image, 2, axis=0), 2, axis=1), 2, axis=2)
    del image, texture
    full_cells_at = cells  # looked up at half coordinates
    for syn in synapses:
        px, py, pz = (int(v) for v in syn["position"])
        side = int(syn.pop("side"))
        # Post-synaptic density: a dark thickening on the post side.
        lo = [max(px - 4, 0), max(py - 7, 0), max(pz - 7, 0)]
        gx, gy, gz = np.ogrid[lo[0] : px + 5, lo[1] : py + 8, lo[2] : pz + 8]
        disc = ((gx - px) / 3.0) ** 2 + ((gy - py) / 7.0) ** 2 + ((gz - pz) / 7.0) ** 2 <= 1
        region = full[lo[0] : px + 5, lo[1] : py + 8, lo[2] : pz + 8]
        region[disc] = np.minimum(region[disc], 48.0)
        # Vesicles: small dark rings on the pre side.
        for _ in range(int(rng.integers(14, 26))):
            offset = rng.normal(0, 5, 3)
            offset[0] = -side * abs(offset[0]) - side * 5
            cx, cy, cz = (np.array([px, py, pz]) + offset).round().astype(int)
            if not (3 <= cx < size - 3 and 3 <= cy < size - 3 and 3 <= cz < size - 3):
                continue
            if full_cells_at[cx // 2, cy // 2, cz // 2] != syn["pre"]:
                continue
            gx, gy, gz = np.ogrid[cx - 3 : cx + 4, cy - 3 : cy + 4, cz - 3 : cz + 4]
            r = np.sqrt((gx - cx) ** 2 + (gy - cy) ** 2 + (gz - cz) ** 2)
            patch = full[cx - 3 : cx + 4, cy - 3 : cy + 4, cz - 3 : cz + 4]
            patch[r <= 2.6] = np.where(r[r <= 2.6] > 1.5, 70.0, 140.0)
    ndimage.gaussian_filter(full, 1.0, output=full, truncate=2.5)
    noise = rng.standard_normal(full.shape, dtype=np.float32)
    noise *= 11.0
    full += noise
    del noise
    color = np.clip(full, 0, 255).astype(np.uint8)
    del full
    log(f"image at full size ({time.monotonic() - started:.1f} s)")

    supervoxels = np.repeat(np.repeat(np.repeat(sv, 2, axis=0), 2, axis=1), 2, axis=2)
    with_errors, errors = _errors(ground_truth, synapses, rng, contacts)

    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    layers = [
        write_layer(tmp, "color", "color", color, MAGS),
        write_layer(tmp, "segmentation", "segmentation", supervoxels, MAGS),
    ]
    del color, supervoxels
    edges = np.stack([contacts.row, contacts.col], axis=1).astype(np.int64)
    layers[1]["attachments"] = {
        "agglomerates": [
            _write_graph(tmp, name, mapping, edges, affinity, positions)
            for name, mapping in (("ground_truth", ground_truth), ("with_errors", with_errors))
        ]
    }
    write_properties(tmp, root.name, VOXEL_NM, layers)
    summary = {
        "format": FORMAT,
        "seed": seed,
        "size": [size, size, size],
        "voxelSize": list(VOXEL_NM),
        "supervoxels": n_sv,
        "cells": n_cells,
        "synapses": len(synapses),
        "errors": errors,
    }
    (tmp / "synapses.json").write_text(json.dumps({"synapses": synapses}, indent=1))
    (tmp / "demo.json").write_text(json.dumps(summary, indent=2))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    log(f"written to {root} ({time.monotonic() - started:.1f} s)")
    return summary


def _compact(sv: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber supervoxels 1..n without gaps (a seed can own no voxel), as
    WEBKNOSSOS's agglomerate files expect."""
    present = np.bincount(sv.ravel(), minlength=len(truth)) > 0
    present[0] = True
    if present.all():
        return sv, truth
    table = (np.cumsum(present) - 1).astype(sv.dtype)
    return table[sv], truth[present]


def _contacts(sv: np.ndarray, n: int, values: np.ndarray | None = None) -> sp.coo_matrix:
    """Supervoxel adjacency: for each pair a < b of supervoxels with face
    neighbouring voxels, the number of such voxel pairs (or the sum of
    ``values`` over both voxels of each pair), as a canonical COO matrix."""
    rows, cols, data = [], [], []
    for axis in range(3):
        upper: list[slice] = [slice(None)] * 3
        lower: list[slice] = [slice(None)] * 3
        upper[axis] = slice(1, None)
        lower[axis] = slice(None, -1)
        a, b = sv[tuple(lower)], sv[tuple(upper)]
        touch = a != b
        a, b = a[touch], b[touch]
        rows.append(np.minimum(a, b))
        cols.append(np.maximum(a, b))
        if values is None:
            data.append(np.ones(len(a), dtype=np.float64))
        else:
            data.append(
                values[tuple(lower)][touch].astype(np.float64)
                + values[tuple(upper)][touch].astype(np.float64)
            )
    matrix = sp.coo_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n + 1, n + 1)
    ).tocsr()
    matrix.sort_indices()
    return matrix.tocoo()


def _connect_cells(truth: np.ndarray, contacts: sp.coo_matrix) -> None:
    """Make every cell's supervoxels one connected piece: a piece cut off
    from its cell's largest joins the neighbouring cell it touches most."""
    a, b, w = contacts.row, contacts.col, contacts.data
    n = len(truth)
    for _ in range(100):
        inside = truth[a] == truth[b]
        graph = sp.coo_matrix((np.ones(int(inside.sum())), (a[inside], b[inside])), shape=(n, n))
        _, piece = connected_components(graph, directed=False)
        size = np.bincount(piece[1:], minlength=piece.max() + 1)
        # The largest piece of each cell (ties: the lowest piece number).
        order = np.lexsort((-size[piece[1:]], truth[1:]))
        cell_sorted = truth[1:][order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = cell_sorted[1:] != cell_sorted[:-1]
        main = np.zeros(int(truth.max()) + 1, dtype=np.int64)
        main[cell_sorted[first]] = piece[1:][order][first]
        stray = piece != main[truth]
        stray[0] = False
        if not stray.any():
            return
        # Contact of each stray piece with each other cell: move it to the largest.
        across = ~inside
        touch = np.concatenate([a[across], b[across]])
        other = np.concatenate([b[across], a[across]])
        weight = np.concatenate([w[across], w[across]])
        keep = stray[touch]
        pairs: dict[tuple[int, int], float] = {}
        for p, c, x in zip(
            piece[touch[keep]].tolist(),
            truth[other[keep]].tolist(),
            weight[keep].tolist(),
            strict=True,
        ):
            pairs[(p, c)] = pairs.get((p, c), 0.0) + x
        best: dict[int, tuple[float, int]] = {}
        for (p, c), x in sorted(pairs.items()):
            if p not in best or x > best[p][0]:
                best[p] = (x, c)
        for p, (_, c) in best.items():
            truth[piece == p] = c
    raise AssertionError("cells did not become connected")


def _affinities(sv: np.ndarray, n: int, image: np.ndarray, contacts: sp.coo_matrix) -> np.ndarray:
    """Per adjacent pair (in ``contacts`` order): the mean image over its
    touching voxel pairs, from membrane dark (0) to cytoplasm bright (1)."""
    sums = _contacts(sv, n, image)
    assert np.array_equal(sums.row, contacts.row) and np.array_equal(sums.col, contacts.col)
    mean = sums.data / (2 * contacts.data)
    return np.clip((mean - MEMBRANE) / (CYTOPLASM - MEMBRANE), 0, 1).astype(np.float32)


def _positions(sv: np.ndarray, n: int) -> np.ndarray:
    """A mag-1 voxel inside each supervoxel: its centroid where that lies
    inside, else its first voxel."""
    counts = np.bincount(sv.ravel(), minlength=n + 1).astype(np.float64)
    counts[0] = 1
    grid = np.indices(sv.shape[1:], dtype=np.float64)
    centre = np.zeros((n + 1, 3))
    for x in range(sv.shape[0]):
        ids = sv[x].ravel()
        centre[:, 0] += np.bincount(ids, minlength=n + 1) * x
        centre[:, 1] += np.bincount(ids, weights=grid[0].ravel(), minlength=n + 1)
        centre[:, 2] += np.bincount(ids, weights=grid[1].ravel(), minlength=n + 1)
    half = np.round(centre / counts[:, None]).astype(np.int64)
    half = np.clip(half, 0, np.array(sv.shape) - 1)
    inside = sv[half[:, 0], half[:, 1], half[:, 2]] == np.arange(n + 1)
    for s in np.flatnonzero(~inside[1:]) + 1:
        half[s] = np.unravel_index(int(np.flatnonzero(sv == s)[0]), sv.shape)
    half[0] = 0
    return (2 * half).astype(np.int32)


def _write_graph(
    root: Path,
    name: str,
    mapping: np.ndarray,
    edges: np.ndarray,
    affinity: np.ndarray,
    positions: np.ndarray,
) -> dict[str, str]:
    """The adjacency edges within the agglomerates of ``mapping``."""
    inside = mapping[edges[:, 0]] == mapping[edges[:, 1]]
    return write_agglomerate_graph(
        root, "segmentation", name, mapping, edges[inside], affinity[inside], positions
    )


def _errors(
    truth: np.ndarray,
    synapses: list[dict[str, Any]],
    rng: np.random.Generator,
    contacts: sp.coo_matrix,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Merge a few touching cells and split a few others in two connected halves."""
    mapping = truth.copy()
    merges: list[list[int]] = []
    used: set[int] = set()
    for syn in synapses:
        a, b = syn["pre"], syn["post"]
        if a in used or b in used:
            continue
        used |= {a, b}
        keep, gone = min(a, b), max(a, b)
        mapping[truth == gone] = keep
        merges.append([keep, gone])
        if len(merges) == 4:
            break
    splits: list[dict[str, int]] = []
    next_id = int(truth.max()) + 1
    for cell in rng.permutation(np.unique(truth[1:])):
        cell = int(cell)
        members = np.flatnonzero(truth == cell)
        if cell in used or len(members) < 6:
            continue
        half = _split(members, truth, contacts)
        mapping[half] = next_id
        splits.append({"cell": cell, "newId": next_id, "supervoxels": len(half)})
        next_id += 1
        used.add(cell)
        if len(splits) == 4:
            break
    return mapping, {"merges": merges, "splits": splits}


def _split(members: np.ndarray, truth: np.ndarray, contacts: sp.coo_matrix) -> np.ndarray:
    """The supervoxels of one (connected) cell that leave it: the cell in
    breadth-first order from its smallest supervoxel, the second half, less
    the pieces of it cut off from its largest (they stay), so both halves
    are connected."""
    a, b = contacts.row, contacts.col
    inside = np.isin(a, members) & np.isin(b, members)
    n = len(truth)
    graph = sp.coo_matrix((np.ones(int(inside.sum())), (a[inside], b[inside])), shape=(n, n))
    order = breadth_first_order(graph, int(members[0]), directed=False, return_predecessors=False)
    rest = np.sort(order[len(order) // 2 :])
    keep = np.isin(a, rest) & np.isin(b, rest)
    pieces = sp.coo_matrix((np.ones(int(keep.sum())), (a[keep], b[keep])), shape=(n, n))
    _, piece = connected_components(pieces, directed=False)
    largest = np.bincount(piece[rest]).argmax()
    return rest[piece[rest] == largest]
