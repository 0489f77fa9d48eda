"""What voxel operations do to voxels (collab/segmentation/paint.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from collab.segmentation.paint import apply, downsample_labels, reach


def brush(points: list[list[int]], radius: float, **extra: Any) -> dict[str, Any]:
    return {"kind": "brush", "plane": "xy", "points": points, "radius": radius, "segment": 5,
            "erase": False, "mode": "all", **extra}  # fmt: skip


def test_a_brush_paints_a_disk_in_its_slice_only() -> None:
    block = np.zeros((64, 64, 8), dtype=np.uint32)
    apply(brush([[32, 32, 3]], 5), block, (0, 0, 0), (1, 1, 1))
    painted = np.argwhere(block == 5)
    assert set(painted[:, 2]) == {3}
    # Voxel centres within 5 of (32.5, 32.5): a disk of 81 voxels.
    x, y = np.mgrid[0:64, 0:64]
    want = ((x + 0.5 - 32.5) ** 2 + (y + 0.5 - 32.5) ** 2) <= 25
    np.testing.assert_array_equal(block[:, :, 3] == 5, want)
    assert want.sum() == 81


def test_a_stroke_covers_its_polyline_and_reach_covers_the_stroke() -> None:
    op = brush([[10, 10, 0], [50, 10, 0], [50, 40, 0]], 2)
    low, high = reach(op, (1, 1, 1))
    assert low == (8, 8, 0) and high == (53, 43, 1)
    block = np.zeros((64, 64, 1), dtype=np.uint32)
    apply(op, block, (0, 0, 0), (1, 1, 1))
    assert block[10:51, 10, 0].tolist() == [5] * 41  # along the first segment
    assert block[50, 10:41, 0].tolist() == [5] * 31  # along the second
    assert block[30, 20, 0] == 0 and block[10, 30, 0] == 0
    painted = np.argwhere(block)
    assert painted.min(axis=0).tolist()[:2] >= [low[0], low[1]]
    assert (painted.max(axis=0)[:2] < np.array(high[:2])).all()


def test_only_empty_and_erase() -> None:
    block = np.zeros((16, 16, 1), dtype=np.uint32)
    block[:8] = 9
    apply(brush([[8, 8, 0]], 6, mode="empty"), block, (0, 0, 0), (1, 1, 1))
    assert (block[:8] == 9).all() and (block[8:11, 8, 0] == 5).all()
    apply(brush([[8, 8, 0]], 3, erase=True, segment=0), block, (0, 0, 0), (1, 1, 1))
    assert block[8, 8, 0] == 0 and block[7, 8, 0] == 0 and block[0, 0, 0] == 9


def test_a_brush_at_a_coarser_mag_and_an_offset_block() -> None:
    # Mag 2-2-1: positions and radius in voxels of mag 1.
    block = np.zeros((32, 32, 4), dtype=np.uint32)
    origin = (32, 0, 10)  # the block's first voxel, in voxels of mag 2-2-1
    apply(brush([[80, 20, 11]], 4), block, origin, (2, 2, 1))
    # (80, 20, 11) at mag 2-2-1 is voxel (40, 10, 11): local (8, 10, 1).
    assert block[8, 10, 1] == 5 and block[8, 10, 0] == 0
    assert (block == 5).sum() == 13  # radius 2 voxels of this mag: the 13-voxel disk


def test_fill2d_stops_at_other_labels_and_stays_in_its_slice() -> None:
    block = np.zeros((20, 20, 3), dtype=np.uint32)
    block[10, :, :] = 7  # a wall
    apply(
        {"kind": "fill2d", "plane": "xy", "seed": [2, 2, 1], "segment": 4},
        block,
        (0, 0, 0),
        (1, 1, 1),
    )
    assert (block[:10, :, 1] == 4).all() and (block[11:, :, 1] == 0).all()
    assert (block[:, :, 0] != 4).all() and (block[10, :, 1] == 7).all()


def test_fill3d_within_its_box() -> None:
    block = np.zeros((16, 16, 16), dtype=np.uint32)
    op = {"kind": "fill3d", "seed": [1, 1, 1], "segment": 3,
          "box": {"topLeft": [0, 0, 0], "size": [8, 8, 8]}}  # fmt: skip
    apply(op, block, (0, 0, 0), (1, 1, 1))
    assert (block[:8, :8, :8] == 3).all() and (block[8:] == 0).all() and (block[:, 8:] == 0).all()


def test_erase_a_segment_in_a_box() -> None:
    block = np.full((8, 8, 8), 6, dtype=np.uint32)
    block[0, 0, 0] = 2
    op = {"kind": "eraseSegment", "segment": 6, "box": {"topLeft": [0, 0, 0], "size": [4, 8, 8]}}
    apply(op, block, (0, 0, 0), (1, 1, 1))
    assert (block[1:4] == 0).all() and block[0, 0, 0] == 2 and (block[4:] == 6).all()


def test_interpolation_between_two_painted_slices() -> None:
    """A disk of radius 4 in slice 0, one of radius 10 and shifted by 4 in
    slice 10: the slices between get disks of the blended radius and centre
    (signed distances blended linearly, as WEBKNOSSOS's V interpolates
    outlines that overlap from slice to slice)."""
    block = np.zeros((40, 40, 11), dtype=np.uint32)
    x, y = np.mgrid[0:40, 0:40]
    block[:, :, 0][((x - 18) ** 2 + (y - 20) ** 2) <= 4**2] = 8
    block[:, :, 10][((x - 22) ** 2 + (y - 20) ** 2) <= 10**2] = 8
    op = {"kind": "interpolate", "plane": "xy", "segment": 8, "from": 0, "to": 10,
          "box": {"topLeft": [0, 0, 0], "size": [40, 40, 11]}}  # fmt: skip
    apply(op, block, (0, 0, 0), (1, 1, 1))
    areas = []
    for k in range(1, 10):
        inside = np.argwhere(block[:, :, k] == 8)
        areas.append(len(inside))
        assert abs(inside[:, 1].mean() - 20) <= 0.5, k
        assert 18 - 0.5 <= inside[:, 0].mean() <= 22 + 0.5, k
        radius = 4 + 0.6 * k
        assert abs(len(inside) - np.pi * radius**2) <= 2 * np.pi * radius + 4, (k, len(inside))
    assert areas == sorted(areas)


def test_downsampling_takes_the_most_frequent_label() -> None:
    block = np.zeros((4, 4, 2), dtype=np.uint32)
    block[:2, :2, :] = [[[1, 1], [2, 2]], [[1, 1], [3, 3]]]  # cell (0,0,0): 1×4, 2×2, 3×2
    block[2:, :2, :] = [[[5, 6], [6, 5]], [[5, 6], [6, 5]]]  # a tie 5×4 / 6×4: the smallest
    block[:2, 2:, 0] = 7  # cell (0,1,0): 7×4, 0×4: a tie goes to the segment
    out = downsample_labels(block, (2, 2, 2))
    assert out.shape == (2, 2, 1) and out[0, 0, 0] == 1 and out[1, 0, 0] == 5 and out[0, 1, 0] == 7
    assert out[1, 1, 0] == 0


@settings(max_examples=200, deadline=None)
@given(
    points=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=6),
    radius=st.floats(0.5, 12),
    split=st.integers(1, 63),
)
def test_painting_in_two_blocks_equals_painting_in_one(
    points: list[tuple[int, int]], radius: float, split: int
) -> None:
    """Bricks are painted separately: the same op on two halves of a block
    gives what it gives on the whole block."""
    op = brush([[px, py, 2] for px, py in points], radius)
    whole = np.zeros((64, 64, 4), dtype=np.uint32)
    apply(op, whole, (0, 0, 0), (1, 1, 1))
    left = np.zeros((split, 64, 4), dtype=np.uint32)
    right = np.zeros((64 - split, 64, 4), dtype=np.uint32)
    apply(op, left, (0, 0, 0), (1, 1, 1))
    apply(op, right, (split, 0, 0), (1, 1, 1))
    np.testing.assert_array_equal(np.concatenate([left, right]), whole)
