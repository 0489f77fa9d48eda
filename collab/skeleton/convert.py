"""Between NML and the skeleton document: merge-import with id remapping, and
deterministic export. Pure.

Import keeps an NML id as its decimal string where that id is free in the
document and gives colliding entities fresh decimal ids above every numeric id
in use. Export writes integer ids: a decimal id is kept, every other id gets
the next integer above all decimal ids, in sorted order — so the same document
always exports to the same bytes.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from collab.document.content import read_map
from collab.document.update_builder import (
    EMPTY_PIECE,
    UpdateBuilder,
    concat_pieces,
    node_contents,
    node_tails,
    read_state_vector,
)
from collab.skeleton.model import Skeleton, id_order
from collab.skeleton.nml import Nml, NmlBox, NmlGroup, NmlTree, NodeTable
from collab.skeleton.nml_tables import edge_array
from collab.skeleton.node_columns import ColumnsCopy, node_row
from collab.skeleton.repair import IndexDelta, SkeletonIndex
from collab.skeleton.schema import BoundingBox, Group, Tree, split_edge


@dataclass(frozen=True, slots=True)
class ImportResult:
    trees: int
    nodes: int
    renamed_trees: int
    renamed_nodes: int
    #: The new trees, nodes and edges, for the room's repair index.
    delta: IndexDelta


def _decimal(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None


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


def _node_ids(existing: frozenset[str], incoming: np.ndarray) -> tuple[list[str], int]:
    """The document ids of a file's node ids (in order) and how many were
    renamed: an id stays where its decimal string is free, the others get
    fresh numbers above every numeric id in use, in file order (as _Ids)."""
    taken = np.array([n for n in (_decimal(k) for k in existing) if n is not None], dtype=np.int64)
    collide = np.isin(incoming, taken)
    negative = np.flatnonzero(incoming < 0)
    for i in negative.tolist():  # "-5" is not a decimal id but may still be a key
        collide[i] = str(int(incoming[i])) in existing
    renamed = int(collide.sum())
    ids = incoming
    if renamed:
        top = max(int(incoming.max()), int(taken.max()) if len(taken) else 0, 0)
        ids = incoming.copy()
        ids[collide] = np.arange(top + 1, top + 1 + renamed, dtype=np.int64)
    return list(map(str, ids.tolist())), renamed


@dataclass(frozen=True, slots=True)
class Existing:
    """What a target document already has: ids an import must not collide
    with, its meta fields, and the client ids that wrote it (the import's
    update is written by a client id none of them has)."""

    groups: frozenset[str]
    trees: frozenset[str]
    nodes: frozenset[str]
    boxes: frozenset[str]
    meta: frozenset[str]
    clients: frozenset[int] = frozenset()

    @classmethod
    def of(cls, sk: Skeleton, node_ids: Iterable[str] | None = None) -> Existing:
        """``node_ids``: the node ids when known from elsewhere (an index),
        which spares reading a large nodes map back from the CRDT."""
        clients = set(read_state_vector(sk.doc.get_state()))
        clients.add(sk.doc.client_id)
        return cls(
            frozenset(sk.groups.keys()),
            frozenset(sk.trees.keys()),
            frozenset(node_ids if node_ids is not None else sk.nodes.keys()),
            frozenset(sk.bounding_boxes.keys()),
            frozenset(sk.meta.keys()),
            frozenset(clients),
        )

    def fresh_client(self) -> int:
        """A random 32-bit client id (as Yjs picks them) none of ours used."""
        for _ in range(100):
            client = secrets.randbits(32)
            if client not in self.clients:
                return client
        raise RuntimeError("no free client id")  # 100 collisions among 2**32: not reached


def _node_columns(table: NodeTable) -> dict[str, np.ndarray]:
    return {
        "x": table.x,
        "y": table.y,
        "z": table.z,
        "radius": table.radius,
        "rx": table.rx,
        "ry": table.ry,
        "rz": table.rz,
        "viewport": table.viewport.astype(np.float64),
        "mag": table.mag.astype(np.float64),
        "bitDepth": table.bit_depth.astype(np.float64),
        "time": table.time.astype(np.float64),
        "interpolation": table.interpolation,
    }


def _tree_edges(
    table: NodeTable, ids: list[str], edges: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """A tree's edge keys in document ids, each undirected edge once (the
    first orientation in the file wins), and their ends as rows of ``ids``."""
    if not len(edges):
        return [], np.empty((0, 2), np.int64)
    order = np.argsort(table.id, kind="stable")
    at = order[np.searchsorted(table.id[order], edges)]  # file ids → row numbers
    lo, hi = np.minimum(at[:, 0], at[:, 1]), np.maximum(at[:, 0], at[:, 1])
    _, first = np.unique(lo * len(table) + hi, return_index=True)
    first.sort()
    rows = at[first]
    return [f"{ids[a]},{ids[b]}" for a, b in rows.tolist()], rows


#: Nodes per piece of a large import (each piece is applied on the event
#: loop while the worker builds the next: ~0.8 s of loop time at this size).
PIECE_NODES = 64_000


def build_import(nml: Nml, existing: Existing) -> tuple[bytes, ImportResult]:
    """The update that merges the file into a document holding ``existing``
    (one transaction of one fresh client), and what it adds."""
    pieces: list[bytes] = []
    delta = IndexDelta()

    def take(piece: bytes, piece_delta: IndexDelta) -> None:
        pieces.append(piece)
        delta.extend(piece_delta)

    result = build_import_pieces(nml, existing, take, piece_nodes=None)
    return concat_pieces(pieces), dataclasses.replace(result, delta=delta)


def build_import_pieces(
    nml: Nml,
    existing: Existing,
    emit: Callable[[bytes, IndexDelta], None],
    *,
    piece_nodes: int | None = PIECE_NODES,
) -> ImportResult:
    """Build the import's update in pieces of about ``piece_nodes`` nodes
    (whole trees; None: one piece), handing each to ``emit`` with its own
    delta as soon as it is built. Applied in order, the pieces are the one
    update :func:`build_import` returns (``concat_pieces``); the result's
    delta is empty (each piece carried its own)."""
    ex = existing
    out = UpdateBuilder(ex.fresh_client())
    group_ids = _Ids(ex.groups, (g.id for g in nml.groups))
    tree_ids = _Ids(ex.trees, (t.id for t in nml.trees))
    box_ids = _Ids(ex.boxes, (b.id for b in nml.boxes))
    file_node_ids = np.concatenate([t.nodes.id for t in nml.trees] or [np.empty(0, np.int64)])
    node_ids, renamed_nodes = _node_ids(ex.nodes, file_node_ids)
    node_map: dict[int, str] | None = None  # file id → document id, for comments

    for g in nml.groups:
        group_ids.assign(g.id)
    for g in nml.groups:
        out.set_map(
            "groups",
            group_ids.map[g.id],
            {
                "name": g.name,
                "parentId": group_ids.map.get(g.parent_id) if g.parent_id is not None else None,
                "isExpanded": g.is_expanded,
            },
        )
    delta = IndexDelta()
    in_piece = 0
    start = 0
    for t in nml.trees:
        tree_id = tree_ids.assign(t.id)
        delta.trees.append(tree_id)
        out.set_map(
            "trees",
            tree_id,
            {
                "name": t.name,
                "color": list(t.color),
                "groupId": group_ids.map.get(t.group_id) if t.group_id is not None else None,
                "isVisible": t.is_visible,
                "type": t.type,
                "metadata": t.metadata,
            },
        )
        ids = node_ids[start : start + len(t.nodes)]
        start += len(t.nodes)
        tails, width = node_tails(_node_columns(t.nodes))
        out.set_many_encoded("nodes", ids, node_contents(itertools.repeat(tree_id), tails, width))
        keys, rows = _tree_edges(t.nodes, ids, t.edges)
        out.set_many_strings("edges", keys, itertools.repeat(tree_id))
        delta.nodes.append((tree_id, ids))
        delta.edges.append((tree_id, keys))
        delta.tables.append(t.nodes)
        delta.edge_rows.append(rows)
        in_piece += len(t.nodes)
        if piece_nodes is not None and in_piece >= piece_nodes:
            emit(out.piece(), delta)
            delta, in_piece = IndexDelta(), 0
    if nml.comments or nml.branchpoints:
        node_map = dict(zip(file_node_ids.tolist(), node_ids, strict=True))
        for node, text in nml.comments:
            out.set("comments", node_map[node], text)
        for node, time in nml.branchpoints:
            out.set("branchpoints", node_map[node], time)
    for box in nml.boxes:
        out.set_map(
            "boundingBoxes",
            box_ids.assign(box.id),
            {
                "name": box.name,
                "topLeft": list(box.top_left),
                "size": list(box.size),
                "color": list(box.color),
                "isVisible": box.is_visible,
            },
        )
    if nml.voxel_size is not None and "voxelSize" not in ex.meta:
        out.set("meta", "voxelSize", list(nml.voxel_size))
        out.set("meta", "unit", nml.unit)
    if "name" not in ex.meta and nml.name:
        out.set("meta", "name", nml.name)
    last = out.piece()
    if last != EMPTY_PIECE or delta:
        emit(last, delta)
    return ImportResult(
        len(nml.trees), nml.node_count, tree_ids.renamed, renamed_nodes, IndexDelta()
    )


def import_nml(sk: Skeleton, nml: Nml, existing: Existing | None = None) -> ImportResult:
    """Merge the file into the document as one update (outside any transaction)."""
    update, result = build_import(nml, existing or Existing.of(sk))
    sk.doc.apply_update(update)
    return result


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


@dataclass(frozen=True, slots=True)
class ExportSource:
    """What an export reads, gathered in one go (on the event loop) so that a
    worker can assemble and write the file: the small maps as plain data, the
    nodes as columns with their trees, the edge keys."""

    meta: dict[str, Any]
    groups: dict[str, Any]
    trees: dict[str, Any]
    nodes: ColumnsCopy
    node_trees: list[str]
    edge_keys: list[str]
    comments: dict[str, Any]
    branchpoints: dict[str, Any]
    boxes: dict[str, Any]

    @classmethod
    def of_doc(cls, sk: Skeleton) -> ExportSource:
        """Everything read from the document (any document, however large)."""
        ids: list[str] = []
        rows: list[tuple[Any, ...]] = []
        for node_id, value in read_map(sk.nodes).items():
            ids.append(node_id)
            rows.append(node_row(value))
        return cls(
            *_small_maps(sk)[:3],
            ColumnsCopy.of_rows(ids, rows),
            [r[0] for r in rows],
            list(read_map(sk.edges)),
            *_small_maps(sk)[3:],
        )

    @classmethod
    def of_index(cls, sk: Skeleton, index: SkeletonIndex) -> ExportSource:
        """Nodes and edges from a room's repair index (kept in step with the
        document), the small maps from the document."""
        nodes = index.columns.copy()
        tree_of = index.tree_of
        small = _small_maps(sk)
        return cls(
            *small[:3],
            nodes,
            [tree_of.get(n, "") for n in nodes.ids],
            list(index.edge_label),
            *small[3:],
        )


def _small_maps(
    sk: Skeleton,
) -> tuple[
    dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]
]:
    return (
        read_map(sk.meta),
        read_map(sk.groups),
        read_map(sk.trees),
        read_map(sk.comments),
        read_map(sk.branchpoints),
        read_map(sk.bounding_boxes),
    )


def export_nml(
    sk: Skeleton, *, name: str = "", dataset_voxel_size: tuple[float, float, float] | None = None
) -> Nml:
    """The document as an Nml (see :func:`assemble`)."""
    return assemble(ExportSource.of_doc(sk), name=name, dataset_voxel_size=dataset_voxel_size)


def assemble(
    src: ExportSource,
    *,
    name: str = "",
    dataset_voxel_size: tuple[float, float, float] | None = None,
) -> Nml:
    """The document as an Nml, tolerant of unrepaired documents (dangling
    references are dropped, group cycles are cut) and deterministic."""
    meta = src.meta
    voxel = meta.get("voxelSize")
    voxel_size = dataset_voxel_size
    if (
        isinstance(voxel, list)
        and len(voxel) == 3
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in voxel)
    ):
        voxel_size = (float(voxel[0]), float(voxel[1]), float(voxel[2]))
    nml = Nml(
        name=str(meta.get("dataset") or meta.get("name") or name),
        description=str(meta.get("description") or ""),
        voxel_size=voxel_size,
        unit=str(meta.get("unit") or "nanometer"),
    )
    groups = [Group.read(k, v) for k, v in src.groups.items()]
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

    trees = [Tree.read(k, v) for k, v in src.trees.items()]
    trees.sort(key=lambda t: id_order(t.id))
    tree_num = _integer_ids(t.id for t in trees)
    position = {t.id: k for k, t in enumerate(trees)}
    # Nodes of trees that do not exist are left out.
    owner_all = np.fromiter(
        (position.get(t, -1) for t in src.node_trees), dtype=np.int64, count=len(src.node_trees)
    )
    kept = np.flatnonzero(owner_all >= 0)
    ids = [src.nodes.ids[k] for k in kept.tolist()]
    owner = owner_all[kept]
    node_num = _integer_ids(ids)
    numbers = np.fromiter((node_num[k] for k in ids), dtype=np.int64, count=len(ids))
    tree_of = dict(zip(ids, (trees[k].id for k in owner.tolist()), strict=True))
    tree_edges: dict[str, list[tuple[int, int]]] = {t.id: [] for t in trees}
    seen: set[tuple[int, int]] = set()
    for key in src.edge_keys:
        pair = split_edge(key)
        if pair is None:
            continue
        a, b = pair
        ta, tb = tree_of.get(a), tree_of.get(b)
        if ta is None or ta != tb or a == b:
            continue  # dangling or cross-tree edge of an unrepaired document
        na, nb = node_num[a], node_num[b]
        if (nb, na) not in seen and (na, nb) not in seen:
            seen.add((na, nb))
            tree_edges[ta].append((na, nb))
    table = src.nodes.table(np.zeros(len(src.nodes.ids), np.int64)).take(kept)
    table.id = numbers
    # Rows grouped by tree (in tree order), by node number within a tree.
    order = np.lexsort((numbers, owner))
    table = table.take(order)
    bounds = np.searchsorted(owner[order], np.arange(len(trees) + 1))
    for k, t in enumerate(trees):
        nml.trees.append(
            NmlTree(
                tree_num[t.id],
                t.name,
                t.color,
                group_num.get(t.group_id) if t.group_id is not None else None,
                t.is_visible,
                t.type,
                table.slice(int(bounds[k]), int(bounds[k + 1])),
                edge_array(sorted(tree_edges[t.id])),
                dict(t.metadata),
            )
        )
    nml.trees.sort(key=lambda t: t.id)
    nml.comments = sorted(
        (node_num[k], v) for k, v in src.comments.items() if k in node_num and isinstance(v, str)
    )
    nml.branchpoints = sorted(
        (node_num[k], int(v))
        for k, v in src.branchpoints.items()
        if k in node_num and isinstance(v, int | float) and not isinstance(v, bool)
    )
    boxes = [BoundingBox.read(k, v) for k, v in src.boxes.items()]
    box_num = _integer_ids(box.id for box in boxes)
    for box in boxes:
        nml.boxes.append(
            NmlBox(box_num[box.id], box.name, box.top_left, box.size, box.color, box.is_visible)
        )
    nml.boxes.sort(key=lambda b: b.id)
    return nml


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
