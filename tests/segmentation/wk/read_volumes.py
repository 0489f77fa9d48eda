"""Run with the webknossos library (test-only, AGPL): what
``webknossos.Annotation.load`` reads of the volume layers of the zip argv[1].

Writes argv[2]/layers.json (per layer, by id: name, fallback, largest
segment id, segments with name, colour and anchor, the finest mag) and
argv[2]/<id>.npz: the finest mag's non-zero voxels as ``xyz`` (n, 3), in
voxels of mag 1, and ``v`` (n), sorted (only the chunks on disk are read).
"""

import json
import sys
import warnings
from pathlib import Path

warnings.simplefilter("ignore")
import numpy as np  # noqa: E402
import webknossos as wk  # noqa: E402

out = Path(sys.argv[2])
ann = wk.Annotation.load(sys.argv[1])
layers = []
for v in sorted(ann._volume_layers, key=lambda v: v.id):
    segments = {
        str(sid): [
            s.name,
            None if s.color is None else [round(float(c), 4) for c in s.color],
            None if s.anchor_position is None else [int(c) for c in s.anchor_position],
        ]
        for sid, s in v.segments.items()
    }
    entry = {
        "id": v.id,
        "name": v.name,
        "fallback": v.fallback_layer_name,
        "largest": v.largest_segment_id,
        "segments": segments,
        "finest": None,
        "voxels": 0,
    }
    if v.zip is not None:
        with ann.temporary_volume_layer_copy(volume_layer_id=v.id) as layer:
            mag = layer.get_finest_mag()
            entry["finest"] = mag.mag.to_layer_name()
            entry["dtype"] = str(layer.dtype_per_channel)
            coords, values = [], []
            for view in mag.get_views_on_disk(read_only=True):
                data = np.asarray(view.read())
                if data.ndim == 4:
                    data = data[0]
                nz = np.nonzero(data)
                top = np.array(view.bounding_box.topleft)
                coords.append(np.stack(nz, axis=1) * np.array(mag.mag.to_tuple()) + top)
                values.append(data[nz])
            xyz = np.concatenate(coords) if coords else np.zeros((0, 3), np.int64)
            vals = np.concatenate(values) if values else np.zeros(0, np.uint64)
            order = np.lexsort((xyz[:, 2], xyz[:, 1], xyz[:, 0]))
            np.savez(
                out / f"{v.id}.npz",
                xyz=xyz[order].astype(np.int64),
                v=vals[order].astype(np.uint64),
            )
            entry["voxels"] = len(vals)
    layers.append(entry)
(out / "layers.json").write_text(json.dumps(layers))
