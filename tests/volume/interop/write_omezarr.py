"""Run by the tests inside a venv with `ome-zarr`: writes an image with a label
pyramid (NGFF 0.5 on zarr v3, or 0.4 on zarr v2), then prints what ome-zarr's
own reader returns for two regions of levels 0 and 1 of each."""

import json
import sys

import numpy as np
import zarr
from ome_zarr.format import FormatV04
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from ome_zarr.writer import write_image, write_labels


def main(path: str, version: str) -> None:
    rng = np.random.default_rng(5)
    image = rng.integers(0, 255, (70, 90, 100), dtype=np.uint8)  # z, y, x
    z, y, x = np.indices(image.shape)
    labels = (1 + x // 30 + 4 * (y // 30) + 16 * (z // 30)).astype(np.uint32)
    kwargs = {"fmt": FormatV04()} if version == "0.4" else {}
    store = parse_url(path, mode="w", **kwargs).store
    root = zarr.group(store=store, **({"zarr_format": 2} if version == "0.4" else {}))
    write_image(image, root, axes="zyx", **kwargs)
    write_labels(labels, root, name="cells", axes="zyx", **kwargs)
    out = {}
    for name, sub in (("color", path), ("cells", f"{path}/labels/cells")):
        node = next(iter(Reader(parse_url(sub))()))
        levels = [np.asarray(level) for level in node.data[:2]]
        out[name] = {
            "shapes": [list(level.shape) for level in levels],
            # Regions in z, y, x order: level 0 at voxels x 32..64, y 32..64, z 0..32;
            # level 1 at x 0..32, y 0..32, z 32..64.
            "level0": levels[0][0:32, 32:64, 32:64].tolist(),
            "level1": levels[1][32:64, 0:32, 0:32].tolist(),
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "0.5")
