"""Run with the webknossos library (test-only, AGPL): prints what it reads from argv[1] as JSON."""

import json
import sys
import warnings

warnings.simplefilter("ignore")
import webknossos as wk  # noqa: E402

sk = wk.Skeleton.load(sys.argv[1])
trees = []
for tree in sk.flattened_trees():
    nodes = sorted(
        ([*map(float, n.position)], n.radius, n.comment, bool(n.is_branchpoint)) for n in tree.nodes
    )
    edges = sorted(
        sorted([[*map(float, u.position)], [*map(float, v.position)]]) for u, v in tree.edges
    )
    trees.append({"name": tree.name, "group": tree.group.name, "nodes": nodes, "edges": edges})
groups = sorted(
    (g.name, next((p.name for p in sk.flattened_groups() if g in p.children), None))
    for g in sk.flattened_groups()
)
annotation = wk.Annotation.load(sys.argv[1])
boxes = sorted(
    (b.name, [*map(float, b.topleft)], [*map(float, b.size)])
    for b in annotation.user_bounding_boxes
)
print(
    json.dumps({"trees": sorted(trees, key=lambda t: t["name"]), "groups": groups, "boxes": boxes})
)
