"""Run by the tests inside a venv with `webknossos` (AGPL: test-only).

    write PATH   a dataset whose segmentation layer has an agglomerate
                 attachment written by webknossos (AgglomerateAttachment.
                 create_and_add_to); prints the graph as webknossos reads it
    read PATH    opens a dataset (one collab wrote) with webknossos and prints
                 each agglomerate attachment of layer `segmentation` as
                 webknossos reads it

The printed JSON: {name: {"mapping": [...], "nodes": {id: [x, y, z]},
"edges": [[a, b, affinity], ...] (a < b, sorted)}}.
"""

import itertools
import json
import sys

import numpy as np
import webknossos as wk
from webknossos import AgglomerateAttachment, AgglomerateGraph
from webknossos.dataset._utils.tensorstore_helpers import read_zarr3_array


def dump(attachment: AgglomerateAttachment) -> dict:
    graph = attachment.to_graph()
    mapping = read_zarr3_array(attachment.path / "segment_to_agglomerate")
    nodes = {str(n): [int(v) for v in graph.nodes[n]["position"]] for n in graph.nodes}
    edges = sorted(
        [min(u, v), max(u, v), float(data["affinity"])] for u, v, data in graph.edges(data=True)
    )
    return {"mapping": [int(v) for v in mapping], "nodes": nodes, "edges": edges}


def write(path: str) -> None:
    rng = np.random.default_rng(5)
    ds = wk.Dataset(path, voxel_size=(8, 8, 8))
    seg = ds.add_layer(
        "segmentation",
        wk.SEGMENTATION_CATEGORY,
        dtype_per_channel="uint32",
        largest_segment_id=40,
        data_format="zarr3",
    )
    x, y, z = np.indices((64, 64, 32))
    data = (1 + x // 16 + 4 * (y // 16) + 16 * (z // 16)).astype(np.uint32)
    seg.add_mag(1, shard_shape=64).write(data, absolute_offset=(0, 0, 0), allow_resize=True)
    graph = AgglomerateGraph()
    for s in range(1, 33):
        where = np.argwhere(data == s)[0]
        graph.add_segment(s, position=wk.Vec3Int(*(int(v) for v in where)))
    # Three agglomerates of neighbouring blocks, a cycle in one; 4 singletons.
    chains = [[1, 2, 3, 4, 8, 12], [5, 6, 7, 11, 10, 9, 5], list(range(13, 29))]
    for chain in chains:
        for a, b in itertools.pairwise(chain):
            graph.add_affinity_edge(a, b, affinity=float(np.float32(rng.uniform(0, 255))))
    attachment = AgglomerateAttachment.create_and_add_to(seg, "wk_view", graph)
    print(json.dumps({"wk_view": dump(attachment)}))


def read(path: str) -> None:
    ds = wk.Dataset.open(path)
    layer = ds.get_layer("segmentation")
    print(json.dumps({a.name: dump(a) for a in layer.attachments.agglomerates}))


if __name__ == "__main__":
    {"write": write, "read": read}[sys.argv[1]](sys.argv[2])
