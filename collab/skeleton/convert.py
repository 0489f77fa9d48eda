"""Between NML and the skeleton document: merge-import with id remapping, and
deterministic export. Pure.

Import keeps an NML id as its decimal string where that id is free in the
document and gives colliding entities fresh decimal ids above every numeric id
in use. Export writes integer ids: a decimal id is kept, every other id gets
the next integer above all decimal ids, in sorted order — so the same document
always exports to the same bytes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pycrdt import Map

from collab.document.content import read_map
from collab.skeleton.model import Skeleton, id_order
from collab.skeleton.nml import Nml, NmlBox, NmlGroup, NmlNode, NmlTree
from collab.skeleton.repair import IndexDelta
from collab.skeleton.schema import BoundingBox, Group, Node, Tree, edge_key, split_edge


@dataclass(frozen=True, slots=True)
class ImportResult:
    trees: int
    nodes: int
    renamed_trees: int
    renamed_nodes: int
    #: The new trees, nodes and edges, for the room's repair index.
    delta: IndexDelta


def _decimal(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 19 else None


class _Ids:
    """Maps a file's integer ids onto free string ids of one document map."""

    def __init__(self, existing: Iterable[str], incoming: Iterable[int]) -> None:
        self.taken = set(existing)
        numbers = [n for n in (_decimal(k) for k in self.taken) if n is not None]
        numbers.extend(incoming)
        self.next = itertools.count((max(numbers) if numbers else 0) + 1)
        self.map: dict[int, str] = {}
        self.renamed = 0

    def assign(self, file_id: int) -> str:
        wanted = str(file_id)
        if wanted in self.taken:
            wanted = str(next(self.next))
            self.renamed += 1
        self.taken.add(wanted)
        self.map[file_id] = wanted
        return wanted


@dataclass(frozen=True, slots=True)
class Existing:
    """The ids (and meta fields) a target document already has: what an import
    built in another document must not collide with."""

    groups: frozenset[str]
    trees: frozenset[str]
    nodes: frozenset[str]
    boxes: frozenset[str]
    meta: frozenset[str]

    @classmethod
    def of(cls, sk: Skeleton, node_ids: Iterable[str] | None = None) -> Existing:
        """``node_ids``: the node ids when known from elsewhere (an index),
        which spares reading a large nodes map back from the CRDT."""
        return cls(
            frozenset(sk.groups.keys()),
            frozenset(sk.trees.keys()),
            frozenset(node_ids if node_ids is not None else sk.nodes.keys()),
            frozenset(sk.bounding_boxes.keys()),
            frozenset(sk.meta.keys()),
        )


def import_nml(sk: Skeleton, nml: Nml, existing: Existing | None = None) -> ImportResult:
    """Merge the file into the document (call inside one transaction).

    With ``existing``, ``sk`` may be an empty scratch document whose update is
    applied to the real one later (how the server imports, off its event loop)."""
    ex = existing or Existing.of(sk)
    group_ids = _Ids(ex.groups, (g.id for g in nml.groups))
    tree_ids = _Ids(ex.trees, (t.id for t in nml.trees))
    node_ids = _Ids(ex.nodes, (n.id for t in nml.trees for n in t.nodes))
    box_ids = _Ids(ex.boxes, (b.id for b in nml.boxes))
    for g in nml.groups:
        group_ids.assign(g.id)
    for g in nml.groups:
        sk.groups[group_ids.map[g.id]] = Map(
            {
                "name": g.name,
                "parentId": group_ids.map.get(g.parent_id) if g.parent_id is not None else None,
                "isExpanded": g.is_expanded,
            }
        )
    nodes = sk.nodes
    edges = sk.edges
    delta = IndexDelta()
    for t in nml.trees:
        tree_id = tree_ids.assign(t.id)
        delta.trees.append(tree_id)
        sk.trees[tree_id] = Map(
            {
                "name": t.name,
                "color": list(t.color),
                "groupId": group_ids.map.get(t.group_id) if t.group_id is not None else None,
                "isVisible": t.is_visible,
                "type": t.type,
                "metadata": t.metadata,
            }
        )
        for n in t.nodes:
            node_id = node_ids.assign(n.id)
            delta.node_ids.append(node_id)
            delta.node_trees.append(tree_id)
            nodes[node_id] = {
                "treeId": tree_id,
                "position": [n.x, n.y, n.z],
                "radius": n.radius,
                "rotation": list(n.rot),
                "viewport": n.viewport,
                "mag": n.mag,
                "bitDepth": n.bit_depth,
                "interpolation": n.interpolation,
                "time": n.time,
            }
        seen: set[tuple[str, str]] = set()
        for s, e in t.edges:
            a, b = node_ids.map[s], node_ids.map[e]
            if (a, b) in seen or (b, a) in seen:
                continue
            seen.add((a, b))
            key = edge_key(a, b)
            edges[key] = tree_id
            delta.edge_keys.append(key)
            delta.edge_trees.append(tree_id)
    for node, text in nml.comments:
        sk.comments[node_ids.map[node]] = text
    for node, time in nml.branchpoints:
        sk.branchpoints[node_ids.map[node]] = time
    for box in nml.boxes:
        sk.bounding_boxes[box_ids.assign(box.id)] = Map(
            {
                "name": box.name,
                "topLeft": list(box.top_left),
                "size": list(box.size),
                "color": list(box.color),
                "isVisible": box.is_visible,
            }
        )
    if nml.voxel_size is not None and "voxelSize" not in ex.meta:
        sk.meta["voxelSize"] = list(nml.voxel_size)
        sk.meta["unit"] = nml.unit
    if "name" not in ex.meta and nml.name:
        sk.meta["name"] = nml.name
    return ImportResult(len(nml.trees), nml.node_count, tree_ids.renamed, node_ids.renamed, delta)


def _integer_ids(keys: Iterable[str]) -> dict[str, int]:
    """Decimal ids stay; the others get integers above them, in sorted order."""
    ordered = sorted(keys, key=id_order)
    out: dict[str, int] = {}
    top = 0
    for k in ordered:
        n = _decimal(k)
        if n is not None:
            out[k] = n
            top = max(top, n)
    counter = itertools.count(top + 1)
    for k in ordered:
        if k not in out:
            out[k] = next(counter)
    return out


def export_nml(
    sk: Skeleton, *, name: str = "", dataset_voxel_size: tuple[float, float, float] | None = None
) -> Nml:
    """The document as an Nml, tolerant of unrepaired documents (dangling
    references are dropped, group cycles are cut) and deterministic."""
    meta = read_map(sk.meta)
    voxel = meta.get("voxelSize")
    voxel_size = (
        tuple(float(v) for v in voxel)
        if isinstance(voxel, list) and len(voxel) == 3
        else dataset_voxel_size
    )
    nml = Nml(
        name=str(meta.get("dataset") or meta.get("name") or name),
        description=str(meta.get("description") or ""),
        voxel_size=voxel_size,
        unit=str(meta.get("unit") or "nanometer"),
    )
    groups = [Group.read(k, v) for k, v in read_map(sk.groups).items()]
    groups.sort(key=lambda g: id_order(g.id))
    group_num = _integer_ids(g.id for g in groups)
    parents = _acyclic_parents({g.id: g.parent_id for g in groups})
    for g in groups:
        parent = parents[g.id]
        nml.groups.append(
            NmlGroup(
                group_num[g.id],
                g.name,
                group_num[parent] if parent is not None else None,
                g.is_expanded,
            )
        )

    trees = [Tree.read(k, v) for k, v in read_map(sk.trees).items()]
    trees.sort(key=lambda t: id_order(t.id))
    tree_num = _integer_ids(t.id for t in trees)
    by_tree: dict[str, list[Node]] = {t.id: [] for t in trees}
    for node_id, value in read_map(sk.nodes).items():
        node = _fast_node(node_id, value) or Node.read(node_id, value)
        members = by_tree.get(node.tree_id)
        if members is not None:
            members.append(node)
    node_num = _integer_ids(n.id for nodes in by_tree.values() for n in nodes)
    tree_edges: dict[str, set[tuple[int, int]]] = {t.id: set() for t in trees}
    tree_of = {n.id: n.tree_id for nodes in by_tree.values() for n in nodes}
    for key in read_map(sk.edges):
        pair = split_edge(key)
        if pair is None:
            continue
        a, b = pair
        ta, tb = tree_of.get(a), tree_of.get(b)
        if ta is None or ta != tb or a == b:
            continue  # dangling or cross-tree edge of an unrepaired document
        na, nb = node_num[a], node_num[b]
        if (nb, na) not in tree_edges[ta]:
            tree_edges[ta].add((na, nb))
    for t in trees:
        nodes = sorted(by_tree[t.id], key=lambda n: node_num[n.id])
        nml.trees.append(
            NmlTree(
                tree_num[t.id],
                t.name,
                t.color,
                group_num.get(t.group_id) if t.group_id is not None else None,
                t.is_visible,
                t.type,
                [
                    NmlNode(
                        node_num[n.id],
                        n.position[0],
                        n.position[1],
                        n.position[2],
                        n.radius,
                        n.rotation,
                        n.viewport,
                        n.mag,
                        n.bit_depth,
                        n.interpolation,
                        n.time,
                    )
                    for n in nodes
                ],
                sorted(tree_edges[t.id]),
                dict(t.metadata),
            )
        )
    nml.trees.sort(key=lambda t: t.id)
    nml.comments = sorted(
        (node_num[k], v)
        for k, v in read_map(sk.comments).items()
        if k in node_num and isinstance(v, str)
    )
    nml.branchpoints = sorted(
        (node_num[k], int(v))
        for k, v in read_map(sk.branchpoints).items()
        if k in node_num and isinstance(v, int | float) and not isinstance(v, bool)
    )
    boxes = [BoundingBox.read(k, v) for k, v in read_map(sk.bounding_boxes).items()]
    box_num = _integer_ids(box.id for box in boxes)
    for box in boxes:
        nml.boxes.append(
            NmlBox(box_num[box.id], box.name, box.top_left, box.size, box.color, box.is_visible)
        )
    nml.boxes.sort(key=lambda b: b.id)
    return nml


_NUM = (int, float)


def _fast_node(node_id: str, v: Any) -> Node | None:
    """The common, well-formed node without the tolerant reader's per-field
    checks (5x faster); None sends anything unusual to ``Node.read``."""
    if type(v) is not dict:
        return None
    p, r = v.get("position"), v.get("rotation", (0, 0, 0))
    radius = v.get("radius", 1.0)
    t = v.get("treeId")
    if (
        type(t) is not str
        or type(p) is not list
        or len(p) != 3
        or type(radius) not in _NUM
        or len(r) != 3
    ):
        return None
    x, y, z = p
    rx, ry, rz = r
    if not (
        type(x) in _NUM
        and type(y) in _NUM
        and type(z) in _NUM
        and type(rx) in _NUM
        and type(ry) in _NUM
        and type(rz) in _NUM
    ):
        return None
    if not math.isfinite(x + y + z + rx + ry + rz + radius):
        return None
    vp, mag, bd, time = (
        v.get("viewport", 0),
        v.get("mag", 1),
        v.get("bitDepth", 8),
        v.get("time", 0),
    )
    if not (type(vp) is int and type(mag) is int and type(bd) is int and type(time) is int):
        return None
    return Node(
        node_id,
        t,
        (x, y, z),
        radius,
        (rx, ry, rz),
        vp,
        mag,
        bd,
        bool(v.get("interpolation", False)),
        time,
    )


def _acyclic_parents(parent_of: dict[str, str | None]) -> dict[str, str | None]:
    """Parents with missing ones set to None and every cycle cut at its smallest id."""
    out: dict[str, str | None] = {g: (p if p in parent_of else None) for g, p in parent_of.items()}
    for start in sorted(out, key=id_order):
        path: list[str] = []
        node: str | None = start
        while node is not None and node not in path:
            path.append(node)
            node = out[node]
        if node is not None:  # a cycle through ``node``
            cycle = path[path.index(node) :]
            out[min(cycle, key=id_order)] = None
    return out
