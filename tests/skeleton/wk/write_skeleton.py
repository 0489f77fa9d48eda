"""Run with the webknossos library (test-only, AGPL): writes an NML to argv[1]."""

import sys
import warnings

warnings.simplefilter("ignore")
import webknossos as wk  # noqa: E402

sk = wk.Skeleton(voxel_size=(11, 11, 25), dataset_name="cortex")
cells = sk.add_group("cells")
sub = cells.add_group("layer 4")
axon = cells.add_tree("axon")
a = axon.add_node(position=(10, 20, 30), radius=2.5, comment="soma", is_branchpoint=True)
b = axon.add_node(position=(11, 21, 31), radius=1.5)
c = axon.add_node(position=(12, 22, 32))
axon.add_edge(a, b)
axon.add_edge(b, c)
free = sk.add_tree("free")
free.add_node(position=(1, 2, 3), comment="lonely")
sub.add_tree("empty")
sk.save(sys.argv[1])
