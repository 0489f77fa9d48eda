"""Read-only questions about a skeleton. Pure; robust to unrepaired documents
(dangling edges and orphan nodes are ignored, never crash a query)."""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from typing import Any

from collab.skeleton.model import Skeleton, id_order
from collab.skeleton.schema import Node, SkeletonError, UnknownEntity


def _voxel_size(
    sk: Skeleton, fallback: tuple[float, float, float] | None
) -> tuple[float, float, float]:
    raw = sk.meta.get("voxelSize")
    if isinstance(raw, list) and len(raw) == 3 and all(isinstance(v, int | float) for v in raw):
        return (float(raw[0]), float(raw[1]), float(raw[2]))
    return fallback or (1.0, 1.0, 1.0)


def _distance(a: Node, b: Node, scale: tuple[float, float, float]) -> float:
    return math.sqrt(
        sum(((p - q) * s) ** 2 for p, q, s in zip(a.position, b.position, scale, strict=True))
    )


def summary(sk: Skeleton) -> dict[str, Any]:
    nodes_per_tree: dict[str, int] = defaultdict(int)
    for value in sk.nodes.values():
        tree = value.get("treeId") if isinstance(value, dict) else None
        nodes_per_tree[tree if isinstance(tree, str) else ""] += 1
    edges_per_tree: dict[str, int] = defaultdict(int)
    for value in sk.edges.values():
        edges_per_tree[value if isinstance(value, str) else ""] += 1
    trees = [
        {
            "id": t.id,
            "name": t.name,
            "groupId": t.group_id,
            "nodes": nodes_per_tree.get(t.id, 0),
            "edges": edges_per_tree.get(t.id, 0),
        }
        for t in sk.iter_trees()
    ]
    return {
        "trees": trees,
        "treeCount": len(trees),
        "nodeCount": len(sk.nodes),
        "edgeCount": len(sk.edges),
        "groupCount": len(sk.groups),
        "commentCount": len(sk.comments),
        "branchpointCount": len(sk.branchpoints),
        "boundingBoxCount": len(sk.bounding_boxes),
    }


def path_lengths(
    sk: Skeleton, voxel_size: tuple[float, float, float] | None = None
) -> dict[str, Any]:
    """Per tree, the summed length of its edges in nanometres (voxel size applied)."""
    scale = _voxel_size(sk, voxel_size)
    nodes = {n.id: n for n in sk.iter_nodes()}
    lengths: dict[str, float] = {t: 0.0 for t in sk.trees.keys()}
    for a, b, _ in sk.iter_edges():
        na, nb = nodes.get(a), nodes.get(b)
        if na is None or nb is None or na.tree_id != nb.tree_id or na.tree_id not in lengths:
            continue
        lengths[na.tree_id] += _distance(na, nb, scale)
    return {
        "voxelSize": list(scale),
        "trees": [{"id": t, "lengthNm": lengths[t]} for t in sorted(lengths, key=id_order)],
        "totalNm": sum(lengths.values()),
    }


def nodes_in_box(
    sk: Skeleton, top_left: list[float], size: list[float], limit: int = 10_000
) -> dict[str, Any]:
    lo = top_left
    hi = [t + s for t, s in zip(top_left, size, strict=True)]
    found: list[dict[str, Any]] = []
    total = 0
    for node in sk.iter_nodes():
        if all(lo[i] <= node.position[i] < hi[i] for i in range(3)):
            total += 1
            if len(found) < limit:
                found.append(
                    {"id": node.id, "treeId": node.tree_id, "position": list(node.position)}
                )
    found.sort(key=lambda n: id_order(str(n["id"])))
    return {"nodes": found, "count": total, "truncated": total > len(found)}


def tree_of(sk: Skeleton, node_id: str) -> dict[str, Any]:
    node = sk.node(node_id)
    if node.tree_id not in sk.trees:
        raise UnknownEntity(f"node {node_id!r} belongs to no existing tree (awaiting repair)")
    tree = sk.tree(node.tree_id)
    return {
        "node": node_id,
        "tree": {"id": tree.id, "name": tree.name, "groupId": tree.group_id, **tree.to_fields()},
    }


def shortest_path(
    sk: Skeleton, source: str, target: str, voxel_size: tuple[float, float, float] | None = None
) -> dict[str, Any]:
    """Dijkstra over the tree's edges, weighted by physical distance."""
    start, goal = sk.node(source), sk.node(target)
    if start.tree_id != goal.tree_id:
        raise SkeletonError(
            f"nodes {source!r} and {target!r} are in different trees: there is no path"
        )
    scale = _voxel_size(sk, voxel_size)
    members = {n.id: n for n in sk.iter_nodes() if n.tree_id == start.tree_id}
    adj = sk.adjacency(members)
    best = {source: 0.0}
    previous: dict[str, str] = {}
    queue = [(0.0, source)]
    while queue:
        dist, here = heapq.heappop(queue)
        if here == target:
            break
        if dist > best.get(here, math.inf):
            continue
        for nxt in adj.get(here, ()):
            if nxt not in members:
                continue
            cand = dist + _distance(members[here], members[nxt], scale)
            if cand < best.get(nxt, math.inf):
                best[nxt] = cand
                previous[nxt] = here
                heapq.heappush(queue, (cand, nxt))
    if target not in best:
        raise SkeletonError(f"nodes {source!r} and {target!r} are not connected")
    path = [target]
    while path[-1] != source:
        path.append(previous[path[-1]])
    path.reverse()
    return {"path": path, "lengthNm": best[target], "edges": len(path) - 1}


def diff(old: Skeleton, new: Skeleton, limit: int = 10_000) -> dict[str, Any]:
    """Trees and nodes added, removed, moved (position changed), for reviewers."""
    old_trees, new_trees = set(old.trees.keys()), set(new.trees.keys())
    old_nodes = {n.id: n for n in old.iter_nodes()}
    new_nodes = {n.id: n for n in new.iter_nodes()}
    added = sorted(new_nodes.keys() - old_nodes.keys(), key=id_order)
    removed = sorted(old_nodes.keys() - new_nodes.keys(), key=id_order)
    moved = sorted(
        (
            k
            for k in old_nodes.keys() & new_nodes.keys()
            if old_nodes[k].position != new_nodes[k].position
        ),
        key=id_order,
    )
    retreed = sorted(
        (
            k
            for k in old_nodes.keys() & new_nodes.keys()
            if old_nodes[k].tree_id != new_nodes[k].tree_id
        ),
        key=id_order,
    )
    renamed = sorted(
        (t for t in old_trees & new_trees if old.tree(t).name != new.tree(t).name),
        key=id_order,
    )

    def cap(items: list[str]) -> dict[str, Any]:
        return {"count": len(items), "ids": items[:limit]}

    return {
        "trees": {
            "added": cap(sorted(new_trees - old_trees, key=id_order)),
            "removed": cap(sorted(old_trees - new_trees, key=id_order)),
            "renamed": cap(renamed),
        },
        "nodes": {
            "added": cap(added),
            "removed": cap(removed),
            "moved": cap(moved),
            "changedTree": cap(retreed),
        },
        "edges": {
            "added": len(set(new.edges.keys()) - set(old.edges.keys())),
            "removed": len(set(old.edges.keys()) - set(new.edges.keys())),
        },
    }
