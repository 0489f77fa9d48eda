"""Typed reads and validated edits of a skeleton document. Pure: no I/O.

``Skeleton(doc)`` wraps a pycrdt Doc laid out as the contract says. Every edit
validates its input first (unknown ids, positions outside the dataset,
self-edges, NaN) and raises :class:`SkeletonError` / :class:`UnknownEntity`
without touching the document; a valid edit is one transaction.

Structural edits follow WEBKNOSSOS: connecting nodes of two trees merges the
trees; deleting a node or an edge that disconnects a tree splits it, the part
holding the smallest node id keeping the tree.
"""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from typing import Any

from pycrdt import Doc, Map

from collab.skeleton.schema import (
    TREE_TYPES,
    BoundingBox,
    Group,
    Node,
    SkeletonError,
    Tree,
    UnknownEntity,
    check_color,
    check_id,
    check_int,
    check_number,
    check_vec,
    edge_key,
    split_edge,
)


def id_order(value: str) -> tuple[int, int | str]:
    """Sort key: decimal ids numerically, then the rest as strings."""
    return (
        (0, int(value)) if value.isascii() and value.isdigit() and len(value) < 19 else (1, value)
    )


class Skeleton:
    def __init__(
        self,
        doc: Doc,
        bounds: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None,
    ) -> None:
        """``bounds``: the dataset's (topLeft, size) in mag-1 voxels, when known."""
        self.doc = doc
        self.bounds = bounds
        self.meta = doc.get("meta", type=Map)
        self.trees = doc.get("trees", type=Map)
        self.nodes = doc.get("nodes", type=Map)
        self.edges = doc.get("edges", type=Map)
        self.comments = doc.get("comments", type=Map)
        self.branchpoints = doc.get("branchpoints", type=Map)
        self.groups = doc.get("groups", type=Map)
        self.bounding_boxes = doc.get("boundingBoxes", type=Map)
        self._counter = itertools.count(1)

    # -- ids -----------------------------------------------------------------

    def new_id(self, taken: Map) -> str:
        """An id unused in ``taken``: ``<clientID>-<counter>``, as clients mint them."""
        while True:
            candidate = f"{self.doc.client_id}-{next(self._counter)}"
            if candidate not in taken:
                return candidate

    # -- reads -----------------------------------------------------------------

    def tree(self, tree_id: str) -> Tree:
        fields = self.trees.get(tree_id)
        if fields is None:
            raise UnknownEntity(f"no tree {tree_id!r}")
        return Tree.read(tree_id, fields.to_py() if isinstance(fields, Map) else fields)

    def node(self, node_id: str) -> Node:
        value = self.nodes.get(node_id)
        if value is None:
            raise UnknownEntity(f"no node {node_id!r}")
        return Node.read(node_id, value)

    def group(self, group_id: str) -> Group:
        fields = self.groups.get(group_id)
        if fields is None:
            raise UnknownEntity(f"no group {group_id!r}")
        return Group.read(group_id, fields.to_py() if isinstance(fields, Map) else fields)

    def iter_trees(self) -> Iterator[Tree]:
        for tree_id in sorted(self.trees.keys(), key=id_order):
            yield self.tree(tree_id)

    def iter_nodes(self) -> Iterator[Node]:
        for node_id, value in self.nodes.items():
            yield Node.read(node_id, value)

    def iter_groups(self) -> Iterator[Group]:
        for group_id in sorted(self.groups.keys(), key=id_order):
            yield self.group(group_id)

    def iter_bounding_boxes(self) -> Iterator[BoundingBox]:
        for box_id in sorted(self.bounding_boxes.keys(), key=id_order):
            fields = self.bounding_boxes[box_id]
            yield BoundingBox.read(box_id, fields.to_py() if isinstance(fields, Map) else fields)

    def iter_edges(self) -> Iterator[tuple[str, str, str]]:
        """(source, target, treeId) of every well-formed edge key."""
        for key, tree_id in self.edges.items():
            pair = split_edge(key)
            if pair is not None:
                yield pair[0], pair[1], tree_id if isinstance(tree_id, str) else ""

    def nodes_of(self, tree_id: str) -> list[str]:
        return [
            n for n, v in self.nodes.items() if isinstance(v, dict) and v.get("treeId") == tree_id
        ]

    def adjacency(self, node_ids: Iterable[str] | None = None) -> dict[str, set[str]]:
        wanted = None if node_ids is None else set(node_ids)
        adj: dict[str, set[str]] = defaultdict(set)
        for a, b, _ in self.iter_edges():
            if wanted is None or a in wanted or b in wanted:
                adj[a].add(b)
                adj[b].add(a)
        return adj

    def find_edge(self, a: str, b: str) -> str | None:
        for key in (edge_key(a, b), edge_key(b, a)):
            if key in self.edges:
                return key
        return None

    # -- validation --------------------------------------------------------------

    def _position(self, value: Any) -> list[float]:
        pos = check_vec(value, "position")
        if self.bounds is not None:
            top_left, size = self.bounds
            for axis, (p, t, s) in enumerate(zip(pos, top_left, size, strict=True)):
                if p < t or p >= t + s:
                    raise SkeletonError(
                        f"position {pos} is outside the dataset (axis {'xyz'[axis]}: {t}..{t + s})"
                    )
        return pos

    def _require_tree(self, tree_id: str) -> None:
        if tree_id not in self.trees:
            raise UnknownEntity(f"no tree {tree_id!r}")

    def _require_node(self, node_id: str) -> None:
        if node_id not in self.nodes:
            raise UnknownEntity(f"no node {node_id!r}")

    def _require_group(self, group_id: str | None) -> None:
        if group_id is not None and group_id not in self.groups:
            raise UnknownEntity(f"no group {group_id!r}")

    # -- trees -------------------------------------------------------------------

    def create_tree(
        self,
        tree_id: str | None = None,
        *,
        name: str = "",
        color: Any = (1.0, 0.0, 0.0, 1.0),
        group_id: str | None = None,
        type: str = "DEFAULT",
        metadata: dict[str, Any] | None = None,
        is_visible: bool = True,
    ) -> str:
        tree_id = check_id(tree_id, "tree") if tree_id is not None else self.new_id(self.trees)
        if tree_id in self.trees:
            raise SkeletonError(f"tree {tree_id!r} exists")
        if type not in TREE_TYPES:
            raise SkeletonError(f"tree type must be one of {TREE_TYPES}, got {type!r}")
        self._require_group(group_id)
        tree = Tree(
            tree_id,
            str(name),
            tuple(check_color(list(color))),
            group_id,
            bool(is_visible),
            type,
            dict(metadata or {}),
        )
        self.trees[tree_id] = Map(tree.to_fields())
        return tree_id

    def update_tree(self, tree_id: str, **fields: Any) -> None:
        """Change ``name``, ``color``, ``isVisible``, ``type`` or ``metadata``."""
        self._require_tree(tree_id)
        checked: dict[str, Any] = {}
        for key, value in fields.items():
            if key == "name":
                checked[key] = str(value)
            elif key == "color":
                checked[key] = check_color(value)
            elif key == "isVisible":
                checked[key] = bool(value)
            elif key == "type":
                if value not in TREE_TYPES:
                    raise SkeletonError(f"tree type must be one of {TREE_TYPES}")
                checked[key] = value
            elif key == "metadata":
                if not isinstance(value, dict):
                    raise SkeletonError("metadata must be a JSON object")
                checked[key] = value
            else:
                raise SkeletonError(f"unknown tree field {key!r}")
        tree = self.trees[tree_id]
        with self.doc.transaction():
            for key, value in checked.items():
                tree[key] = value

    def move_tree(self, tree_id: str, group_id: str | None) -> None:
        self._require_tree(tree_id)
        self._require_group(group_id)
        self.trees[tree_id]["groupId"] = group_id

    def delete_tree(self, tree_id: str) -> None:
        self._require_tree(tree_id)
        doomed = set(self.nodes_of(tree_id))
        with self.doc.transaction():
            self._delete_nodes(doomed)
            del self.trees[tree_id]

    def merge_trees(self, keep: str, absorb: str) -> None:
        """Move every node and edge of ``absorb`` into ``keep``; delete ``absorb``."""
        self._require_tree(keep)
        self._require_tree(absorb)
        if keep == absorb:
            raise SkeletonError("cannot merge a tree with itself")
        with self.doc.transaction():
            self._retree(self.nodes_of(absorb), keep)
            del self.trees[absorb]

    # -- nodes ---------------------------------------------------------------------

    def add_node(
        self,
        tree_id: str,
        position: Any,
        node_id: str | None = None,
        *,
        radius: Any = 1.0,
        rotation: Any = (0.0, 0.0, 0.0),
        viewport: Any = 0,
        mag: Any = 1,
        bit_depth: Any = 8,
        interpolation: bool = False,
        time: Any = 0,
        connect_to: str | None = None,
    ) -> str:
        self._require_tree(tree_id)
        node_id = check_id(node_id, "node") if node_id is not None else self.new_id(self.nodes)
        if node_id in self.nodes:
            raise SkeletonError(f"node {node_id!r} exists")
        if connect_to is not None:
            self._require_node(connect_to)
        radius_value = check_number(radius, "radius")
        if radius_value < 0:
            raise SkeletonError("radius must not be negative")
        node = Node(
            node_id,
            tree_id,
            tuple(self._position(position)),
            radius_value,
            tuple(check_vec(list(rotation), "rotation")),
            check_int(viewport, "viewport"),
            check_int(mag, "mag"),
            check_int(bit_depth, "bitDepth"),
            bool(interpolation),
            check_int(time, "time"),
        )
        with self.doc.transaction():
            self.nodes[node_id] = node.to_value()
            if connect_to is not None:
                self.connect(connect_to, node_id)
        return node_id

    def move_node(self, node_id: str, position: Any) -> None:
        node = self.node(node_id)
        value = node.to_value()
        value["position"] = self._position(position)
        self.nodes[node_id] = value

    def update_node(self, node_id: str, **fields: Any) -> None:
        """Change ``radius``, ``rotation``, ``viewport``, ``mag``, ``bitDepth``, ``interpolation``."""
        value = self.node(node_id).to_value()
        for key, raw in fields.items():
            if key == "radius":
                value[key] = check_number(raw, "radius")
            elif key == "rotation":
                value[key] = check_vec(raw, "rotation")
            elif key in ("viewport", "mag", "bitDepth"):
                value[key] = check_int(raw, key)
            elif key == "interpolation":
                value[key] = bool(raw)
            elif key == "position":
                value[key] = self._position(raw)
            else:
                raise SkeletonError(f"unknown node field {key!r}")
        self.nodes[node_id] = value

    def delete_node(self, node_id: str) -> list[str]:
        """Delete a node; if that disconnects its tree, split it. Returns new tree ids."""
        node = self.node(node_id)
        neighbours = self.adjacency([node_id]).get(node_id, set())
        with self.doc.transaction():
            self._delete_nodes({node_id})
            return self._split_if_disconnected(node.tree_id, neighbours)

    def _delete_nodes(self, doomed: set[str]) -> None:
        if not doomed:
            return
        for key in [
            k
            for k in self.edges.keys()
            if (p := split_edge(k)) is None or p[0] in doomed or p[1] in doomed
        ]:
            del self.edges[key]
        for node_id in doomed:
            for root in (self.comments, self.branchpoints):
                if node_id in root:
                    del root[node_id]
            if node_id in self.nodes:
                del self.nodes[node_id]

    # -- edges ---------------------------------------------------------------------

    def connect(self, a: str, b: str) -> None:
        """Add the edge a–b; nodes of two trees merge the trees (a's tree is kept)."""
        if a == b:
            raise SkeletonError(f"an edge needs two nodes, got {a!r} twice")
        na, nb = self.node(a), self.node(b)
        if self.find_edge(a, b) is not None:
            raise SkeletonError(f"nodes {a!r} and {b!r} are already connected")
        with self.doc.transaction():
            if na.tree_id != nb.tree_id:
                absorbed = nb.tree_id
                self._retree(self.nodes_of(absorbed), na.tree_id)
                if absorbed in self.trees:
                    del self.trees[absorbed]
            self.edges[edge_key(a, b)] = na.tree_id

    def disconnect(self, a: str, b: str) -> list[str]:
        """Remove the edge a–b; split the tree if that disconnects it. Returns new tree ids."""
        key = self.find_edge(a, b)
        if key is None:
            raise UnknownEntity(f"no edge between {a!r} and {b!r}")
        tree_id = self.node(a).tree_id
        with self.doc.transaction():
            del self.edges[key]
            return self._split_if_disconnected(tree_id, {a, b})

    def _retree(self, node_ids: Iterable[str], tree_id: str) -> None:
        moving = set(node_ids)
        for node_id in moving:
            value = dict(self.nodes[node_id])
            value["treeId"] = tree_id
            self.nodes[node_id] = value
        for a, b, t in list(self.iter_edges()):
            if (a in moving or b in moving) and t != tree_id:
                self.edges[edge_key(a, b)] = tree_id

    def _split_if_disconnected(self, tree_id: str, seeds: set[str]) -> list[str]:
        members = set(self.nodes_of(tree_id))
        seeds = {s for s in seeds if s in members}
        if len(seeds) < 2:
            return []
        adj = self.adjacency(members)
        components: list[set[str]] = []
        seen: set[str] = set()
        for seed in sorted(seeds, key=id_order):
            if seed in seen:
                continue
            comp = {seed}
            queue = deque([seed])
            while queue:
                for nxt in adj.get(queue.popleft(), ()):
                    if nxt in members and nxt not in comp:
                        comp.add(nxt)
                        queue.append(nxt)
            seen |= comp
            components.append(comp)
        if len(components) < 2:
            return []
        # The component holding the smallest node id keeps the tree.
        components.sort(key=lambda c: min(id_order(n) for n in c))
        base = self.tree(tree_id)
        created = []
        for comp in components[1:]:
            new_tree = self.new_id(self.trees)
            self.trees[new_tree] = Map(
                Tree(
                    new_tree,
                    f"{base.name} (split)",
                    base.color,
                    base.group_id,
                    base.is_visible,
                    base.type,
                    dict(base.metadata),
                ).to_fields()
            )
            self._retree(comp, new_tree)
            created.append(new_tree)
        return created

    # -- comments and branchpoints ------------------------------------------------

    def set_comment(self, node_id: str, text: str | None) -> None:
        self._require_node(node_id)
        if text is None or text == "":
            if node_id in self.comments:
                del self.comments[node_id]
            return
        if not isinstance(text, str) or len(text) > 10_000:
            raise SkeletonError("a comment is a string of at most 10,000 characters")
        self.comments[node_id] = text

    def set_branchpoint(self, node_id: str, time: int | None) -> None:
        self._require_node(node_id)
        if time is None:
            if node_id in self.branchpoints:
                del self.branchpoints[node_id]
            return
        self.branchpoints[node_id] = check_int(time, "time")

    # -- groups ---------------------------------------------------------------------

    def create_group(
        self,
        group_id: str | None = None,
        *,
        name: str = "",
        parent_id: str | None = None,
        is_expanded: bool = True,
    ) -> str:
        group_id = check_id(group_id, "group") if group_id is not None else self.new_id(self.groups)
        if group_id in self.groups:
            raise SkeletonError(f"group {group_id!r} exists")
        self._require_group(parent_id)
        self.groups[group_id] = Map(
            Group(group_id, str(name), parent_id, bool(is_expanded)).to_fields()
        )
        return group_id

    def rename_group(self, group_id: str, name: str) -> None:
        self.group(group_id)
        self.groups[group_id]["name"] = str(name)

    def move_group(self, group_id: str, parent_id: str | None) -> None:
        self.group(group_id)
        self._require_group(parent_id)
        ancestor = parent_id
        for _ in range(len(self.groups) + 1):
            if ancestor is None:
                break
            if ancestor == group_id:
                raise SkeletonError(
                    f"moving group {group_id!r} under {parent_id!r} would make a cycle"
                )
            ancestor = self.group(ancestor).parent_id
        self.groups[group_id]["parentId"] = parent_id

    def delete_group(self, group_id: str) -> None:
        """Delete a group; its trees and subgroups move to its parent."""
        group = self.group(group_id)
        with self.doc.transaction():
            for tree in self.iter_trees():
                if tree.group_id == group_id:
                    self.trees[tree.id]["groupId"] = group.parent_id
            for child in self.iter_groups():
                if child.parent_id == group_id:
                    self.groups[child.id]["parentId"] = group.parent_id
            del self.groups[group_id]

    # -- bounding boxes ---------------------------------------------------------------

    def add_bounding_box(
        self,
        top_left: Any,
        size: Any,
        box_id: str | None = None,
        *,
        name: str = "",
        color: Any = (1.0, 0.0, 0.0, 1.0),
        is_visible: bool = True,
    ) -> str:
        box_id = (
            check_id(box_id, "bounding box")
            if box_id is not None
            else self.new_id(self.bounding_boxes)
        )
        if box_id in self.bounding_boxes:
            raise SkeletonError(f"bounding box {box_id!r} exists")
        size_v = check_vec(size, "size")
        if any(s < 0 for s in size_v):
            raise SkeletonError("bounding box size must not be negative")
        box = BoundingBox(
            box_id,
            str(name),
            tuple(check_vec(top_left, "topLeft")),
            tuple(size_v),
            tuple(check_color(list(color))),
            bool(is_visible),
        )
        self.bounding_boxes[box_id] = Map(box.to_fields())
        return box_id

    def delete_bounding_box(self, box_id: str) -> None:
        if box_id not in self.bounding_boxes:
            raise UnknownEntity(f"no bounding box {box_id!r}")
        del self.bounding_boxes[box_id]

    # -- meta -----------------------------------------------------------------------

    def set_meta(self, **fields: Any) -> None:
        with self.doc.transaction():
            for key, value in fields.items():
                if key == "voxelSize":
                    value = check_vec(value, "voxelSize")
                elif key not in ("name", "description", "dataset", "unit"):
                    raise SkeletonError(f"unknown meta field {key!r}")
                self.meta[key] = value
