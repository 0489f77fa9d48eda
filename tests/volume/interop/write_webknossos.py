"""Run by the tests inside a venv with `webknossos` (AGPL: test-only): writes a
dataset (offset bounding box, anisotropic mags, uint8 color, uint32 and uint64
segmentation), then prints what webknossos itself reads for a few bricks."""

import json
import sys

import numpy as np
import webknossos as wk
from cluster_tools import get_executor

BRICKS = {
    "color": [
        ("1", (1, 1, 1)),
        ("1", (0, 0, 0)),
        ("1", (3, 2, 2)),
        ("2-2-1", (1, 1, 2)),
        ("4-4-2", (0, 0, 1)),
    ],
    "segmentation": [("1", (0, 0, 0)), ("1", (1, 1, 1))],
    "segmentation64": [("1", (1, 0, 1))],
}


def main(path: str) -> None:
    rng = np.random.default_rng(11)
    ds = wk.Dataset(path, voxel_size=(11.24, 11.24, 25))
    color = ds.add_layer("color", wk.COLOR_CATEGORY, dtype_per_channel="uint8", data_format="zarr3")
    color.add_mag(1, shard_shape=128).write(
        rng.integers(1, 255, (100, 70, 60), dtype=np.uint8),
        absolute_offset=(10, 20, 30),
        allow_resize=True,
    )
    with get_executor("sequential") as executor:
        color.downsample(coarsest_mag=wk.Mag(4), shard_shape=128, executor=executor)
    seg = ds.add_layer(
        "segmentation",
        wk.SEGMENTATION_CATEGORY,
        dtype_per_channel="uint32",
        largest_segment_id=1000,
        data_format="zarr3",
    )
    seg.add_mag(1, shard_shape=128).write(
        rng.integers(0, 1000, (64, 64, 64), dtype=np.uint32),
        absolute_offset=(0, 0, 0),
        allow_resize=True,
    )
    seg64 = ds.add_layer(
        "segmentation64",
        wk.SEGMENTATION_CATEGORY,
        dtype_per_channel="uint64",
        largest_segment_id=2**40,
        data_format="zarr3",
    )
    seg64.add_mag(1, shard_shape=128).write(
        rng.integers(0, 2**40, (64, 64, 64), dtype=np.uint64),
        absolute_offset=(0, 0, 0),
        allow_resize=True,
    )
    out = {}
    for layer_name, bricks in BRICKS.items():
        layer = ds.get_layer(layer_name)
        bbox = layer.bounding_box
        for mag_name, b in bricks:
            mag = wk.Mag(mag_name)
            view = layer.get_mag(mag)
            m = mag.to_list()
            lo = [32 * b[i] * m[i] for i in range(3)]
            hi = [lo[i] + 32 * m[i] for i in range(3)]
            # Clip to the layer's bounding box (webknossos reads inside it only).
            clo = [max(lo[i], bbox.topleft[i]) for i in range(3)]
            chi = [min(hi[i], bbox.topleft[i] + bbox.size[i]) for i in range(3)]
            clo = [clo[i] // m[i] * m[i] for i in range(3)]
            chi = [-(-chi[i] // m[i]) * m[i] for i in range(3)]
            data = view.read(absolute_offset=clo, size=[chi[i] - clo[i] for i in range(3)])
            out[f"{layer_name}/{mag_name}/{b[0]},{b[1]},{b[2]}"] = {
                "offset": [(clo[i] - lo[i]) // m[i] for i in range(3)],
                "data": np.asarray(data)[0]
                .astype(np.float64 if data.dtype == np.uint64 else data.dtype)
                .tolist()
                if data.dtype != np.uint64
                else [str(v) for v in np.asarray(data)[0].ravel(order="C")],
                "shape": list(np.asarray(data)[0].shape),
            }
    with open(path + ".json", "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1])
