"""The synthetic demo dataset: an EM-like volume with supervoxels and synapses.

Deterministic from a seed. Geometry is built at half resolution and brought
to full size, which keeps a 512³ dataset well under a minute on two cores:

* **cells**: a 3D Voronoi tiling of ~1,500 supervoxel seeds on warped
  coordinates (curved boundaries), grouped into ~120 cells by the nearest cell
  seed. Supervoxels over-segment the cells, as a watershed does.
* **image**: bright textured cytoplasm, dark membranes where two cells meet
  (not between supervoxels of one cell), darker mitochondria with cristae,
  vesicle clusters at synapses, a post-synaptic density, blur and noise.
* **segmentation**: the supervoxel ids (uint32); mappings
  ``agglomerates/ground_truth`` (supervoxel → cell) and
  ``agglomerates/with_errors`` (the same with a few merge and split errors, for
  proofreading practice; ``demo.json`` lists them).
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
from scipy import ndimage
from scipy.spatial import cKDTree

from collab.volume.mags import Mag
from collab.volume.writer import write_layer, write_mapping, write_properties

VOXEL_NM = (8.0, 8.0, 8.0)
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

    image = np.full(cells.shape, 168.0, dtype=np.float32)
    texture = ndimage.zoom(
        rng.normal(0, 1, (base // 8, base // 8, base // 8)).astype(np.float32), 8, order=1
    )
    image += 10 * texture[:base, :base, :base]
    image[membrane] = 55.0

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
        pre, post, side = (a, b, -1) if rng.random() < 0.5 else (b, a, 1)
        if (pre, post) in seen_pairs:
            continue
        seen_pairs.add((pre, post))
        synapses.append(
            {
                "id": len(synapses) + 1,
                "position": [int(2 * x + 1), int(2 * y + 1), int(2 * z + 1)],
                "pre": pre,
                "post": post,
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
    with_errors, errors = _errors(ground_truth, synapses, rng)

    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    layers = [
        write_layer(tmp, "color", "color", color, MAGS),
        write_layer(tmp, "segmentation", "segmentation", supervoxels, MAGS),
    ]
    del color, supervoxels
    write_mapping(tmp, "segmentation", "ground_truth", ground_truth)
    write_mapping(tmp, "segmentation", "with_errors", with_errors)
    write_properties(tmp, root.name, VOXEL_NM, layers)
    summary = {
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


def _errors(
    truth: np.ndarray, synapses: list[dict[str, Any]], rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """Merge a few touching cells and split a few others."""
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
        half = members[len(members) // 2 :]
        mapping[half] = next_id
        splits.append({"cell": cell, "newId": next_id, "supervoxels": len(half)})
        next_id += 1
        used.add(cell)
        if len(splits) == 4:
            break
    return mapping, {"merges": merges, "splits": splits}
