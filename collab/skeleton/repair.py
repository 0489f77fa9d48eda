"""Invariant repair of the skeleton document. Pure.

Concurrent edits merge into documents no single client wrote: an edge whose
node is gone, a node whose tree is gone, an edge joining two trees, a group
cycle. The server repairs after every change and writes the fixes as one
transaction (one version, author null, summary ``{"repair": …}``) that every
replica receives. The rules, in the order they apply (docs/schema.md):

1. **Bad edge key** (not ``"a,b"``, or ``a == b``): the edge is dropped.
2. **Dangling edge** (an end node is missing): dropped.
3. **Duplicate edge** (both ``"a,b"`` and ``"b,a"``): the greater key is dropped.
4. **Orphan node** (its tree is missing): moved to the tree ``recovered``
   (created, named "recovered", grey, outside any group).
5. **Edge across trees**: the two trees merge: every node of the tree with the
   greater id moves into the smaller, which keeps its name and colour; the
   emptied tree is deleted.
6. **Edge labelled with the wrong tree**: relabelled with its nodes' tree.
7. **Comment or branchpoint on a missing node**: dropped.
8. **Tree in a missing group**, **group under a missing parent**: moved to the
   top level.
9. **Group cycle**: cut by moving the group with the smallest id in the cycle
   to the top level.

The :class:`SkeletonIndex` (node → tree, tree → nodes, node → edges) is kept
up to date from the paths each transaction touched, so a repair pass looks
only at what changed, never at the whole document. :func:`plan` and
:func:`apply` fix what a pass sees; :func:`repair_all` repeats them over a
whole document until nothing is left (imports, tests: the reference). A
room's :class:`SkeletonRepairer` writes the same repair key by key from
collab/skeleton/repaired.py, planned from the clients' updates merged
without its repairs (collab/skeleton/unrepaired.py), so that it does not
depend on the order updates arrive in.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import compress
from typing import TYPE_CHECKING, Any

import numpy as np
from pycrdt import Doc, Map

from collab.document.content import MISSING, read_map
from collab.skeleton.model import id_order
from collab.skeleton.nml_tables import NodeTable
from collab.skeleton.node_columns import ColumnsCopy, NodeColumns, node_row
from collab.skeleton.schema import edge_key, split_edge

if TYPE_CHECKING:
    from collab.skeleton.unrepaired import UnrepairedMerge

RECOVERED = "recovered"
RECOVERED_FIELDS: dict[str, Any] = {
    "name": "recovered",
    "color": [0.5, 0.5, 0.5, 1.0],
    "groupId": None,
    "isVisible": True,
    "type": "DEFAULT",
    "metadata": {},
}


@dataclass(slots=True)
class IndexDelta:
    """Fresh entities of a bulk change, described by whoever built it: new
    trees, per tree its new node ids and new edge keys, and the new nodes'
    values as a table (row k is node k of ``nodes[i][1]``), as a reader of
    the document would read them."""

    trees: list[str] = field(default_factory=list)
    nodes: list[tuple[str, list[str]]] = field(default_factory=list)
    edges: list[tuple[str, list[str]]] = field(default_factory=list)
    tables: list[NodeTable] = field(default_factory=list)
    #: Per entry of ``edges``: (n, 2) rows of its edges' ends in that tree's
    #: node ids (``nodes[i][1]``), so the index groups them with numpy.
    edge_rows: list[np.ndarray] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.trees or self.nodes or self.edges)

    def extend(self, other: IndexDelta) -> None:
        self.trees.extend(other.trees)
        self.nodes.extend(other.nodes)
        self.edges.extend(other.edges)
        self.tables.extend(other.tables)
        self.edge_rows.extend(other.edge_rows)


@dataclass(frozen=True, slots=True)
class IndexSource:
    """What a :class:`SkeletonIndex` holds, as flat lists and arrays: small
    to pickle, quick to turn into the index's dicts. Nodes whose value is
    null are left out (as the index leaves them out)."""

    node_ids: list[str]
    node_trees: list[str]  # "" where the value names no tree
    floats: np.ndarray  # node columns, as NodeColumns holds them
    ints: np.ndarray
    interpolation: np.ndarray
    edge_keys: list[str]
    edge_labels: list[Any]
    split_keys: list[str]  # the edge keys of the form "a,b", in order …
    edge_rows: np.ndarray  # … and their ends as rows of ``ends``
    ends: list[str]
    trees: list[str]

    @classmethod
    def of_doc(cls, doc: Doc) -> IndexSource:
        ids: list[str] = []
        rows: list[tuple[Any, ...]] = []
        for node_id, value in read_map(doc.get("nodes", type=Map)).items():
            if value is not None:
                ids.append(node_id)
                rows.append(node_row(value))
        columns = ColumnsCopy.of_rows(ids, rows)
        edges = read_map(doc.get("edges", type=Map))
        code: dict[str, int] = {}
        ends: list[str] = []
        split_keys: list[str] = []
        pairs: list[int] = []
        for key in edges:
            pair = split_edge(key)
            if pair is None:
                continue
            split_keys.append(key)
            for end in pair:
                at = code.get(end)
                if at is None:
                    at = code[end] = len(ends)
                    ends.append(end)
                pairs.append(at)
        return cls(
            ids,
            [row[0] for row in rows],
            columns.floats,
            columns.ints,
            columns.interpolation,
            list(edges),
            list(edges.values()),
            split_keys,
            np.array(pairs, dtype=np.int64).reshape(-1, 2),
            ends,
            list(doc.get("trees", type=Map).keys()),
        )


class SkeletonIndex:
    """What repair needs to know, kept in plain Python structures: which nodes,
    edges (with their labels) and trees exist, node → tree, tree → nodes,
    node → edges. Planning reads only this, never the CRDT. Also the nodes'
    values as columns (``columns``), which an export reads instead of the
    document."""

    def __init__(self) -> None:
        self.tree_of: dict[str, str] = {}
        self.nodes_of: dict[str, set[str]] = defaultdict(set)
        #: node → its edge keys: one key as a str, two as a tuple (what bulk
        #: imports store: no set per node), more, or any after an edit, a set.
        #: Read through :meth:`edges_at`. Keys may outlive their edge (readers
        #: check ``edge_label``).
        self.edges_of: dict[str, str | tuple[str, ...] | set[str]] = {}
        self.edge_label: dict[str, Any] = {}
        self.trees: set[str] = set()
        self.columns = NodeColumns()
        #: False for a second index of another document (the room's
        #: unrepaired merge), which no export reads.
        self.keeps_columns = True

    def copy(self) -> SkeletonIndex:
        """The same index without node columns, sharing nothing with this one."""
        other = SkeletonIndex()
        other.keeps_columns = False
        other.tree_of = dict(self.tree_of)
        other.nodes_of = defaultdict(set, {t: set(n) for t, n in self.nodes_of.items()})
        other.edges_of = {n: set(k) if type(k) is set else k for n, k in self.edges_of.items()}
        other.edge_label = dict(self.edge_label)
        other.trees = set(self.trees)
        return other

    @classmethod
    def build(cls, doc: Doc) -> SkeletonIndex:
        """The index of a whole document."""
        return cls.of_source(IndexSource.of_doc(doc))

    @classmethod
    def of_source(cls, src: IndexSource) -> SkeletonIndex:
        """The index from its contents as flat lists (read from a document
        here or in a worker): built with dict/zip and numpy at C speed."""
        index = cls()
        index.tree_of = dict(zip(src.node_ids, src.node_trees, strict=True))
        nodes_of = index.nodes_of
        for node_id, tree in zip(src.node_ids, src.node_trees, strict=True):
            nodes_of[tree].add(node_id)
        index.edge_label = dict(zip(src.edge_keys, src.edge_labels, strict=True))
        index._add_edge_block(src.ends, src.split_keys, src.edge_rows)
        index.columns.add(src.node_ids, src.floats, src.ints, src.interpolation)
        index.trees = set(src.trees)
        return index

    def _set_node(self, node_id: str, value: Any, *, columns: bool = True) -> None:
        if columns and self.keeps_columns:
            if value is MISSING or value is None:
                self.columns.delete(node_id)
            else:
                self.columns.set(node_id, node_row(value))
        old = self.tree_of.pop(node_id, None)
        if old is not None:
            members = self.nodes_of.get(old)
            if members is not None:
                members.discard(node_id)
                if not members:
                    del self.nodes_of[old]
        if value is not MISSING and value is not None:
            tree = value.get("treeId") if isinstance(value, dict) else None
            tree = tree if isinstance(tree, str) else ""
            self.tree_of[node_id] = tree
            self.nodes_of[tree].add(node_id)

    def edges_at(self, node_id: str) -> Iterable[str]:
        """The keys of the edges at ``node_id`` (possibly some removed since)."""
        keys = self.edges_of.get(node_id)
        if keys is None:
            return ()
        return (keys,) if type(keys) is str else keys

    def _link(self, end: str, key: str) -> None:
        keys = self.edges_of.get(end)
        if keys is None:
            self.edges_of[end] = key
        elif type(keys) is set:
            keys.add(key)
        else:
            self.edges_of[end] = {keys, key} if type(keys) is str else {*keys, key}

    def _unlink(self, end: str, key: str) -> None:
        keys = self.edges_of.get(end)
        if keys is None:
            return
        if type(keys) is str:
            if keys == key:
                del self.edges_of[end]
            return
        rest = keys - {key} if type(keys) is set else {*keys} - {key}
        if rest:
            self.edges_of[end] = rest
        else:
            del self.edges_of[end]

    def _set_edge(self, key: str, label: Any) -> None:
        if label is MISSING:
            self.edge_label.pop(key, None)
            pair = split_edge(key)
            if pair is not None:
                for end in pair:
                    self._unlink(end, key)
            return
        self.edge_label[key] = label
        pair = split_edge(key)
        if pair is not None:
            self._link(pair[0], key)
            self._link(pair[1], key)

    def _add_edge_block(self, ids: list[str], keys: list[str], rows: np.ndarray) -> None:
        """Fresh edges of fresh nodes (an import's tree): ``keys[k]`` joins
        ``ids[rows[k, 0]]`` and ``ids[rows[k, 1]]``. Grouped with numpy; nodes
        with one or two edges get a str or a tuple, built at C speed."""
        count = len(keys)
        if not count:
            return
        ends = np.concatenate((rows[:, 0], rows[:, 1]))
        which = np.concatenate((np.arange(count), np.arange(count)))
        order = np.argsort(ends, kind="stable")
        ends, which = ends[order], which[order]
        starts = np.flatnonzero(np.r_[True, ends[1:] != ends[:-1]])
        degree = np.diff(np.r_[starts, len(ends)])
        node_ids = list(map(ids.__getitem__, ends[starts].tolist()))
        edges_of = self.edges_of
        if not edges_of.keys().isdisjoint(node_ids):  # not expected: nodes are fresh
            for key, (a, b) in zip(keys, rows.tolist(), strict=True):
                self._link(ids[a], key)
                self._link(ids[b], key)
            return
        key_at = keys.__getitem__
        one = degree == 1
        edges_of.update(
            zip(
                compress(node_ids, one.tolist()),
                map(key_at, which[starts[one]].tolist()),
                strict=True,
            )
        )
        two = degree == 2
        first = starts[two]
        pairs = zip(
            map(key_at, which[first].tolist()), map(key_at, which[first + 1].tolist()), strict=True
        )
        edges_of.update(zip(compress(node_ids, two.tolist()), pairs, strict=True))
        for k in np.flatnonzero(degree > 2).tolist():
            start = int(starts[k])
            edges_of[node_ids[k]] = set(map(key_at, which[start : start + degree[k]].tolist()))

    def absorb(self, delta: IndexDelta) -> None:
        """Add fresh entities in bulk (an import): no reads, no checks."""
        self.trees.update(delta.trees)
        for k, (tree, node_ids) in enumerate(delta.nodes):
            self.tree_of.update(dict.fromkeys(node_ids, tree))
            self.nodes_of[tree].update(node_ids)
            if self.keeps_columns:
                self.columns.add_table(node_ids, delta.tables[k])
        for k, (tree, keys) in enumerate(delta.edges):
            self.edge_label.update(dict.fromkeys(keys, tree))
            if k < len(delta.edge_rows) and delta.nodes[k][0] == tree:
                self._add_edge_block(delta.nodes[k][1], keys, delta.edge_rows[k])
                continue
            for key in keys:
                a, b = key.split(",")
                self._link(a, key)
                self._link(b, key)

    def update(
        self,
        doc: Doc,
        touched: Iterable[tuple[str, ...]],
        values: dict[tuple[str, ...], Any] | None = None,
    ) -> None:
        """Apply a transaction's touched paths; ``values`` (from the TouchRecorder)
        spares reading nodes and edges back from the document."""
        values = values or {}
        nodes = _map(doc, "nodes")
        edges = _map(doc, "edges")
        trees = _map(doc, "trees")
        for path in touched:
            if len(path) != 2:
                continue
            root, key = path
            if root == "nodes":
                value = values.get(path, None)
                if value is None:
                    value = nodes.get(key, MISSING)
                self._set_node(key, value)
            elif root == "edges":
                label = values.get(path, None)
                if label is None:
                    label = edges.get(key, MISSING)
                self._set_edge(key, label)
            elif root == "trees":
                if key in trees:
                    self.trees.add(key)
                else:
                    self.trees.discard(key)


@dataclass
class Fixes:
    drop_edges: set[str] = field(default_factory=set)
    relabel_edges: dict[str, str] = field(default_factory=dict)
    recover_nodes: set[str] = field(default_factory=set)
    merges: list[tuple[str, str]] = field(default_factory=list)  # (keep, absorb)
    drop_comments: set[str] = field(default_factory=set)
    drop_branchpoints: set[str] = field(default_factory=set)
    ungroup_trees: set[str] = field(default_factory=set)
    unparent_groups: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return any(
            (
                self.drop_edges,
                self.relabel_edges,
                self.recover_nodes,
                self.merges,
                self.drop_comments,
                self.drop_branchpoints,
                self.ungroup_trees,
                self.unparent_groups,
            )
        )

    def summary(self) -> dict[str, int]:
        counts = {
            "droppedEdges": len(self.drop_edges),
            "relabelledEdges": len(self.relabel_edges),
            "recoveredNodes": len(self.recover_nodes),
            "mergedTrees": len(self.merges),
            "droppedComments": len(self.drop_comments),
            "droppedBranchpoints": len(self.drop_branchpoints),
            "ungroupedTrees": len(self.ungroup_trees),
            "cutGroups": len(self.unparent_groups),
        }
        return {k: v for k, v in counts.items() if v}


_ROOT_CACHE: weakref.WeakKeyDictionary[Doc, dict[str, Map]] = weakref.WeakKeyDictionary()


def _map(doc: Doc, name: str) -> Map:
    """A root map of ``doc``, cached: ``Doc.get`` opens a transaction each
    call (~14 µs), which a per-update repair pass must not pay five times."""
    roots = _ROOT_CACHE.get(doc)
    if roots is None:
        roots = _ROOT_CACHE[doc] = {}
    m = roots.get(name)
    if m is None:
        m = roots[name] = doc.get(name, type=Map)
    return m


def plan(doc: Doc, index: SkeletonIndex, touched: Iterable[tuple[str, ...]]) -> Fixes:
    """What must change to restore the invariants around the touched paths.

    Reads only the index (and, rarely, comments and branchpoints of deleted
    nodes, and the few groups): O(touched), whatever the document's size."""
    trees = index.trees
    nodes = index.tree_of
    edges = index.edge_label
    fixes = Fixes()
    check_edges: set[str] = set()
    check_nodes: set[str] = set()
    check_notes: set[str] = set()
    groups_touched = False
    trees_touched: set[str] = set()
    for path in touched:
        root, key = path[0], path[1] if len(path) > 1 else ""
        if root == "edges":
            check_edges.add(key)
        elif root == "nodes":
            check_nodes.add(key)
            check_notes.add(key)
            check_edges.update(index.edges_at(key))
        elif root == "trees":
            trees_touched.add(key)
            if key not in trees:
                check_nodes |= index.nodes_of.get(key, set())
        elif root in ("comments", "branchpoints"):
            check_notes.add(key)
        elif root == "groups":
            groups_touched = True

    # Rule 4: orphan nodes.
    for node_id in check_nodes:
        tree = index.tree_of.get(node_id)
        if tree is not None and tree not in trees:
            fixes.recover_nodes.add(node_id)
            check_edges.update(index.edges_at(node_id))

    def tree_after(node_id: str) -> str | None:
        if node_id in fixes.recover_nodes:
            return RECOVERED
        return index.tree_of.get(node_id)

    # Rules 1-3, 5, 6: edges.
    merge_pairs: set[tuple[str, str]] = set()
    for key in sorted(check_edges):
        if key not in edges:
            continue
        pair = split_edge(key)
        if pair is None or pair[0] == pair[1]:
            fixes.drop_edges.add(key)
            continue
        a, b = pair
        if a not in nodes or b not in nodes:
            fixes.drop_edges.add(key)
            continue
        reverse = edge_key(b, a)
        if reverse in edges:
            # Rule 1 in either arrival order: the greater of the two keys goes.
            if reverse < key:
                fixes.drop_edges.add(key)
                continue
            fixes.drop_edges.add(reverse)
        ta, tb = tree_after(a), tree_after(b)
        if ta is None or tb is None:
            continue
        if ta != tb:
            keep, absorb = sorted((ta, tb), key=id_order)
            merge_pairs.add((keep, absorb))
        elif edges[key] != ta:
            fixes.relabel_edges[key] = ta
    fixes.merges = _chain_merges(merge_pairs)

    # Rule 7: notes on missing nodes.
    for node_id in check_notes:
        if node_id not in nodes:
            comments, branchpoints = _map(doc, "comments"), _map(doc, "branchpoints")
            if node_id in comments:
                fixes.drop_comments.add(node_id)
            if node_id in branchpoints:
                fixes.drop_branchpoints.add(node_id)

    # Rules 8-9: groups (few; checked whole when any group or tree moved).
    if groups_touched or trees_touched:
        tree_map = _map(doc, "trees")
        parent_of = group_parents(doc)
        fixes.unparent_groups = cut_groups(parent_of)
        tree_ids = tree_map.keys() if groups_touched else [t for t in trees_touched if t in trees]
        for tid in tree_ids:
            tree_fields = tree_map.get(tid)
            group_ref = tree_fields.get("groupId") if isinstance(tree_fields, Map) else None
            if group_ref is not None and group_ref not in parent_of:
                fixes.ungroup_trees.add(tid)
    return fixes


def group_parents(doc: Doc) -> dict[str, Any]:
    """Every group's ``parentId`` (None when it is not a map)."""
    return {
        gid: g.get("parentId") if isinstance(g, Map) else None
        for gid, g in _map(doc, "groups").items()
    }


def cut_groups(parent_of: dict[str, Any]) -> set[str]:
    """The groups rules 8 and 9 move to the top level: those under a missing
    parent, and the smallest id of each cycle."""
    cut = {
        gid for gid, parent in parent_of.items() if parent is not None and parent not in parent_of
    }
    for start in sorted(parent_of, key=id_order):
        seen: list[str] = []
        node: Any = start
        while node is not None and node in parent_of and node not in seen and node not in cut:
            seen.append(node)
            node = parent_of[node]
        if node is not None and node in seen:
            cut.add(min(seen[seen.index(node) :], key=id_order))
    return cut


def _chain_merges(pairs: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """Resolve merge pairs so each absorbed tree goes into its component's smallest id."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for a, b in sorted(pairs):
        ra, rb = find(a), find(b)
        if ra != rb:
            keep, absorb = sorted((ra, rb), key=id_order)
            parent[absorb] = keep
    return sorted(((find(x), x) for x in parent), key=lambda p: (id_order(p[0]), id_order(p[1])))


def apply(doc: Doc, index: SkeletonIndex, fixes: Fixes) -> None:
    """Write the fixes (inside the caller's transaction)."""
    trees, nodes, edges = _map(doc, "trees"), _map(doc, "nodes"), _map(doc, "edges")
    for key in fixes.drop_edges:
        if key in edges:
            del edges[key]
    if fixes.recover_nodes and RECOVERED not in trees:
        trees[RECOVERED] = Map(dict(RECOVERED_FIELDS))
    for node_id in fixes.recover_nodes:
        _retree(nodes, node_id, RECOVERED)
    for keep, absorb in fixes.merges:
        for node_id in sorted(index.nodes_of.get(absorb, set())):
            _retree(nodes, node_id, keep)
        if absorb in trees and absorb != RECOVERED:
            del trees[absorb]
    merged_into = dict((absorb, keep) for keep, absorb in fixes.merges)
    for key, tree in fixes.relabel_edges.items():
        if key in edges:
            edges[key] = merged_into.get(tree, tree)
    if fixes.merges:
        moved = {n for _, absorb in fixes.merges for n in index.nodes_of.get(absorb, set())}
        for node_id in moved:
            for key in index.edges_at(node_id):
                if key in edges and key not in fixes.drop_edges:
                    pair = split_edge(key)
                    if pair is not None:
                        tree = merged_into.get(
                            index.tree_of.get(pair[0], ""), index.tree_of.get(pair[0], "")
                        )
                        if edges[key] != tree:
                            edges[key] = tree
    comments, branchpoints = _map(doc, "comments"), _map(doc, "branchpoints")
    for node_id in fixes.drop_comments:
        if node_id in comments:
            del comments[node_id]
    for node_id in fixes.drop_branchpoints:
        if node_id in branchpoints:
            del branchpoints[node_id]
    for tid in fixes.ungroup_trees:
        t = trees.get(tid)
        if isinstance(t, Map):
            t["groupId"] = None
    groups = _map(doc, "groups")
    for gid in fixes.unparent_groups:
        g = groups.get(gid)
        if isinstance(g, Map):
            g["parentId"] = None


def _retree(nodes: Map, node_id: str, tree_id: str) -> None:
    value = nodes.get(node_id)
    if isinstance(value, dict) and value.get("treeId") != tree_id:
        value = dict(value)
        value["treeId"] = tree_id
        nodes[node_id] = value


def repair_all(doc: Doc) -> Fixes:
    """Check the whole document (tests, imports, migrations): build, plan, apply
    until nothing is left to fix (merges can expose relabels)."""
    total = Fixes()
    for _ in range(10):
        index = SkeletonIndex.build(doc)
        everything = [
            (r, k)
            for r in ("nodes", "edges", "comments", "branchpoints", "trees", "groups")
            for k in _map(doc, r).keys()
        ]
        fixes = plan(doc, index, everything)
        if not fixes:
            break
        with doc.transaction():
            apply(doc, index, fixes)
        total.drop_edges |= fixes.drop_edges
        total.recover_nodes |= fixes.recover_nodes
        total.merges += fixes.merges
        total.relabel_edges.update(fixes.relabel_edges)
        total.drop_comments |= fixes.drop_comments
        total.drop_branchpoints |= fixes.drop_branchpoints
        total.ungroup_trees |= fixes.ungroup_trees
        total.unparent_groups |= fixes.unparent_groups
    return total


def violations(doc: Doc) -> list[str]:
    """Every invariant the document breaks (empty list: none). For tests."""
    trees, nodes, edges = _map(doc, "trees"), _map(doc, "nodes"), _map(doc, "edges")
    out = []
    tree_of: dict[str, Any] = {}
    for nid, v in nodes.items():
        t = v.get("treeId") if isinstance(v, dict) else None
        tree_of[nid] = t
        if not isinstance(t, str) or t not in trees:
            out.append(f"node {nid} in missing tree {t}")
    for key, label in edges.items():
        pair = split_edge(key)
        if pair is None or pair[0] == pair[1]:
            out.append(f"bad edge key {key}")
            continue
        a, b = pair
        if a not in nodes or b not in nodes:
            out.append(f"dangling edge {key}")
            continue
        if edge_key(b, a) in edges:
            out.append(f"duplicate edge {key}")
        if tree_of[a] != tree_of[b]:
            out.append(f"edge {key} joins trees {tree_of[a]} and {tree_of[b]}")
        elif label != tree_of[a]:
            out.append(f"edge {key} labelled {label}, nodes in {tree_of[a]}")
    for root in ("comments", "branchpoints"):
        for nid in _map(doc, root).keys():
            if nid not in nodes:
                out.append(f"{root} on missing node {nid}")
    groups = _map(doc, "groups")
    parent_of = {g: (v.get("parentId") if isinstance(v, Map) else None) for g, v in groups.items()}
    for g, p in parent_of.items():
        if p is not None and p not in parent_of:
            out.append(f"group {g} under missing {p}")
    for start in parent_of:
        seen: set[str] = set()
        node: Any = start
        while node is not None and node in parent_of:
            if node in seen:
                out.append(f"group cycle through {start}")
                break
            seen.add(node)
            node = parent_of[node]
    for tid, t in trees.items():
        gid = t.get("groupId") if isinstance(t, Map) else None
        if gid is not None and gid not in parent_of:
            out.append(f"tree {tid} in missing group {gid}")
    return out


#: Above this many nodes a room keeps no unrepaired merge (its copy at the
#: first repair and its memory would cost too much): repairs are planned on
#: the live document alone and may then depend on arrival order. The
#: server's is ``Settings.repair_merge_max_nodes``.
MERGE_MAX_NODES = 20_000


class SkeletonRepairer:
    """The room-side repairer: the live document's index (exports read its
    columns) and the repaired view the room's repairs are written from.

    Until the first repair the live document is its own unrepaired merge and
    the view reads the live index. The first repair copies the live document
    into an :class:`~collab.skeleton.unrepaired.UnrepairedMerge` (when it
    has at most ``merge_max_nodes`` nodes); from then on the view reads the
    merge's index, and each repair makes the live document the repair of the
    merge on the keys that can have changed (docs/schema.md, "Repair and
    arrival order").

    Measured (``Room.apply_update`` of a one-node add in a 100,000-node
    room, median of 1,000, 2 cores): 22-29 µs before the merge existed in
    the code, 24-27 µs now without a merge, 42-44 µs with one (the update
    is applied to both documents)."""

    values_of: tuple[str, ...] = ("nodes", "edges")

    def __init__(
        self,
        doc: Doc | None = None,
        *,
        index: SkeletonIndex | None = None,
        merge_max_nodes: int = MERGE_MAX_NODES,
    ) -> None:
        """The index of ``doc``, or one built elsewhere from the same state."""
        # Imported here: both modules build on this one.
        from collab.skeleton.repaired import RepairedView

        if index is None:
            assert doc is not None
            index = SkeletonIndex.build(doc)
        self.index = index
        self.view = RepairedView(index)
        self.merge: UnrepairedMerge | None = None
        self.merge_max_nodes = merge_max_nodes

    def materialised(self) -> SkeletonIndex:
        """The live document's index (what exports read: its node columns)."""
        return self.index

    def observe(
        self,
        doc: Doc,
        touched: list[tuple[str, ...]],
        values: dict[tuple[str, ...], Any],
        update: bytes = b"",
        repair: bool = False,
    ) -> None:
        """A transaction of the live document (``touched``, ``values``: what
        it changed; none when ``update`` changed nothing there) and the
        update that made it: a client's as sent, or the server's."""
        merge = self.merge
        if merge is None:
            self.view.update(doc, touched, values)
            if repair:  # the live document is its repair now
                self.view.clear()
            return
        self.index.update(doc, touched, values)
        try:
            if repair:
                merge.hold(update, doc)
            else:
                self.view.mark(touched, values)
                merge.take(update)
        except Exception:
            self._drop_merge()
            raise

    def absorb(self, delta: Any, update: bytes = b"") -> None:
        """``delta``: an :class:`IndexDelta` of new trees, nodes and edges
        (``update``: the piece of the bulk change it describes)."""
        self.index.absorb(delta)
        if self.merge is not None:
            try:
                self.merge.absorb(update, delta)
            except Exception:
                self._drop_merge()
                raise

    def seen(self, state_vector: bytes) -> bool:
        """A client that may write has ``state_vector`` (its sync step 1):
        True when a repair pass is due because it holds held-back repairs."""
        if self.merge is None:
            return False
        try:
            return self.merge.seen(state_vector)
        except Exception:
            self._drop_merge()
            raise

    def plan(
        self, doc: Doc, touched: list[tuple[str, ...]]
    ) -> tuple[Callable[[Doc], None], dict[str, Any]] | None:
        """The edit making ``doc`` the repair of the unrepaired merge on every
        key marked since the last plan (``touched`` is among them)."""
        from collab.skeleton.unrepaired import UnrepairedMerge

        source = self.merge.doc if self.merge is not None else doc
        writes = self.view.writes(source, doc)
        if not writes:
            return None
        if self.merge is None and len(self.index.tree_of) <= self.merge_max_nodes:
            # The first repair: from now on the live document is not its
            # own unrepaired merge. The view's state holds for the copy.
            index = self.index.copy()
            self.merge = UnrepairedMerge(doc, index, self.view.update)
            self.view.index = index
            self.view.ruled = {(root, key) for root, key, _ in writes.entries}
        return writes.apply, writes.summary()

    def _drop_merge(self) -> None:
        """After an error: back to planning on the live document alone."""
        from collab.skeleton.repaired import RepairedView

        self.merge = None
        self.view = RepairedView(self.index)
