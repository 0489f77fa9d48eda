"""The repaired document, read off an index of the unrepaired one. Pure.

The rules of ``collab.skeleton.repair`` (docs/schema.md, "Repair") make the
repair of a document J a function of J's entries, which
:class:`RepairedView` evaluates key by key:

- an edge is *valid* when its key is ``"a,b"`` with ``a != b``, both nodes
  exist and ``"b,a"`` is not a lesser key that exists too (rules 1-3);
- a node's *tree* is its ``treeId`` when that tree exists, else ``recovered``
  (rule 4);
- trees joined by valid edges form components; every component's trees
  become its smallest id (``id_order``), the others are deleted (rule 5:
  ``recovered``, when absorbed, is kept empty);
- a node is J's value with ``treeId`` its component's tree; a valid edge is
  labelled with it (rule 6); other edges go;
- a comment or branchpoint goes with its node (rule 7); ``recovered`` exists
  when J has it or some node of J is in a missing tree;
- a tree in a missing group, a group under a missing parent or the smallest
  of a cycle move to the top (rules 8-9).

:func:`collab.skeleton.repair.repair_all` (plan and apply until nothing is
left, the reference) ends at exactly this document; the property test in
tests/skeleton/test_repair_order.py checks it.

The view keeps what the function needs beyond the index, changed only by
what a transaction touched: the valid edges that join two trees (few: only
concurrent edits make them), the component tree of the trees they join, and
the missing trees that still have nodes. A change marks the keys whose
repaired value may have changed (``dirty``): the touched entries, the edges
at touched nodes, the nodes of a tree that appeared, vanished or joined
another component. :meth:`writes` reads those keys' repaired values and
what the live document holds, and returns the edit that makes them equal:
O(changed entries), never O(document).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Array, Doc, Map, Text

from collab.document.content import MISSING, Path
from collab.skeleton.model import id_order
from collab.skeleton.repair import (
    RECOVERED,
    RECOVERED_FIELDS,
    SkeletonIndex,
    _map,
    cut_groups,
    group_parents,
)
from collab.skeleton.schema import edge_key, split_edge

#: The roots a repair writes; others are never repaired.
REPAIRED = frozenset(("nodes", "edges", "trees", "comments", "branchpoints", "groups"))
#: A repaired value equal to the unrepaired document's.
SAME: Any = type("Same", (), {"__repr__": lambda self: "SAME"})()
_NESTED = ("trees", "groups")

Key = tuple[str, str]


@dataclass
class Writes:
    """The edit that makes the live document the repaired one on some keys,
    and what it does, counted as the version's summary reports it."""

    entries: list[tuple[str, str, Any]] = field(default_factory=list)  # root, key, value
    counts: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def add(self, root: str, key: str, value: Any, why: str) -> None:
        self.entries.append((root, key, value))
        self.counts[why] = self.counts.get(why, 0) + 1

    def summary(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def apply(self, doc: Doc) -> None:
        """Write the entries (inside the caller's transaction)."""
        for root, key, value in self.entries:
            m = _map(doc, root)
            if value is MISSING:
                if key in m:
                    del m[key]
            elif root in _NESTED and not isinstance(value, dict):
                # A tree or group that is no map (a client wrote a list, a
                # text, a number there): kept as the plain value it holds.
                m[key] = _plain(value)
            elif root in _NESTED:
                current = m.get(key)
                if not isinstance(current, Map):
                    m[key] = Map(value)
                    continue
                for name in [name for name in current.keys() if name not in value]:
                    del current[name]
                for name, v in value.items():
                    if _plain(current.get(name)) != v:
                        current[name] = v
            else:
                m[key] = _plain(value)  # a shared type is written as its contents


class RepairedView:
    """The repair of the document an index describes, kept current key by key."""

    def __init__(self, index: SkeletonIndex) -> None:
        self.index = index
        #: Keys whose repaired value may differ from the live document's …
        self.dirty: dict[Key, None] = {}
        #: … those of them a transaction changed (in either document) and
        #: the new values it gave nodes and edges there, per document …
        self.touched: set[Key] = set()
        self._values: dict[str, dict[Key, Any]] = {"live": {}, "source": {}}
        #: … and, when the live document is not the described one, the keys
        #: where it holds a rule's value, not the described document's.
        self.ruled: set[Key] = set()
        #: Valid edges joining two trees: key → (tree, tree).
        self._cross: dict[str, tuple[str, str]] = {}
        #: tree → joined tree → how many such edges.
        self._links: dict[str, dict[str, int]] = {}
        #: tree → its component's tree, for trees in a component of several.
        self._root: dict[str, str] = {}
        #: Missing trees that nodes still name (their nodes go to recovered).
        self._missing = {t for t, nodes in index.nodes_of.items() if nodes and t not in index.trees}
        self._cut: set[str] | None = None  # rules 8-9 on the groups; None: to compute
        # Joining edges present when the view starts (none in a repaired
        # document) are found when something at them changes.

    # -- what the repair does -------------------------------------------------

    def tree_of(self, node: str) -> str | None:
        """The tree a node ends in (None: no such node)."""
        tree = self.index.tree_of.get(node)
        if tree is None:
            return None
        tree = tree if tree in self.index.trees else RECOVERED
        return self._root.get(tree, tree)

    def _joins(self, key: str) -> tuple[str, str] | None:
        """The two trees a valid edge joins (None: invalid, or one tree)."""
        index = self.index
        if key not in index.edge_label:
            return None
        pair = split_edge(key)
        if pair is None or pair[0] == pair[1]:
            return None
        a, b = pair
        ta, tb = index.tree_of.get(a), index.tree_of.get(b)
        if ta is None or tb is None:
            return None
        reverse = edge_key(b, a)
        if reverse < key and reverse in index.edge_label:
            return None
        ta = ta if ta in index.trees else RECOVERED
        tb = tb if tb in index.trees else RECOVERED
        if ta == tb:
            return None
        return (ta, tb) if ta < tb else (tb, ta)

    def _valid(self, key: str) -> bool:
        pair = split_edge(key)
        if pair is None or pair[0] == pair[1]:
            return False
        a, b = pair
        tree_of, labels = self.index.tree_of, self.index.edge_label
        return (
            a in tree_of
            and b in tree_of
            and not (edge_key(b, a) < key and edge_key(b, a) in labels)
        )

    def value(self, doc: Doc, root: str, key: str) -> Any:
        """The repaired value of an entry of ``doc`` (the document the index
        describes): ``SAME`` when it is ``doc``'s, ``MISSING`` when it goes."""
        index = self.index
        if root == "nodes":
            tree = index.tree_of.get(key)
            target = self.tree_of(key)
            if tree is None or tree == target:
                return SAME
            value = _map(doc, "nodes").get(key)
            return {**value, "treeId": target} if isinstance(value, dict) else SAME
        if root == "edges":
            label = index.edge_label.get(key, MISSING)
            if label is MISSING:
                return SAME
            if not self._valid(key):
                return MISSING
            target = self.tree_of(key.split(",")[0])
            return SAME if label == target else target
        if root in ("comments", "branchpoints"):
            if key in index.tree_of or key not in _map(doc, root):
                return SAME
            return MISSING
        if root == "trees":
            present = key in index.trees
            if key == RECOVERED:
                keep = present or bool(self._missing)
            else:
                keep = present and self._root.get(key, key) == key
            if not keep:
                return MISSING if present else SAME
            if not present:
                return copy.deepcopy(RECOVERED_FIELDS)
            tree = _map(doc, "trees").get(key)
            if not isinstance(tree, Map):
                return SAME
            group = tree.get("groupId")
            if group is not None and group not in _map(doc, "groups"):
                return {**(tree.to_py() or {}), "groupId": None}
            return SAME
        if root == "groups":
            if self._cut is None:
                self._cut = cut_groups(group_parents(doc))
            group = _map(doc, "groups").get(key)
            if key not in self._cut or not isinstance(group, Map):
                return SAME
            if group.get("parentId") is None:
                return SAME
            return {**(group.to_py() or {}), "parentId": None}
        return SAME

    # -- keeping up ------------------------------------------------------------

    def mark(self, touched: Iterable[Path], values: dict[Path, Any], doc: str = "live") -> None:
        """Entries a transaction changed (in the live document, or the
        described one: ``doc``), with the new values of nodes and edges."""
        for path in touched:
            if len(path) > 1 and path[0] in REPAIRED:
                key = (path[0], path[1])
                self.dirty[key] = None
                self.touched.add(key)
        self._values[doc].update(values)  # type: ignore[arg-type]

    def clear(self) -> None:
        """Nothing to check: the live document is the repair now."""
        self.dirty.clear()
        self.touched.clear()
        for values in self._values.values():
            values.clear()

    def update(self, doc: Doc, touched: list[Path], values: dict[Path, Any] | None = None) -> None:
        """Take a transaction of ``doc`` (the described document) into the
        index and the view, marking every key whose repaired value may change."""
        self.mark(touched, values or {}, "source")
        index, dirty = self.index, self.dirty
        nodes: list[tuple[str, str | None]] = []
        edges: set[str] = set()
        trees: dict[str, bool] = {}  # touched tree → whether it existed
        groups = regroup = False
        for path in touched:
            if len(path) < 2:
                continue
            root, key = path[0], path[1]
            if root == "nodes":
                nodes.append((key, index.tree_of.get(key)))
                edges.update(index.edges_at(key))
            elif root == "edges":
                edges.add(key)
                pair = split_edge(key)
                if pair is not None:
                    edges.add(edge_key(pair[1], pair[0]))
            elif root == "trees":
                dirty[("trees", key)] = None
                if len(path) == 2:
                    trees.setdefault(key, key in index.trees)
            elif root == "groups":
                groups = True
                regroup = regroup or len(path) == 2
            elif root in ("comments", "branchpoints"):
                dirty[(root, key)] = None
        index.update(doc, touched, values)

        affected = set(trees)
        for node, old in nodes:
            dirty[("nodes", node)] = None
            dirty[("comments", node)] = None
            dirty[("branchpoints", node)] = None
            edges.update(index.edges_at(node))
            for tree in (old, index.tree_of.get(node)):
                if tree is not None:
                    affected.add(tree)
        for tree, existed in trees.items():
            if (tree in index.trees) != existed:
                for node in index.nodes_of.get(tree, ()):
                    dirty[("nodes", node)] = None
                    edges.update(index.edges_at(node))
        had_missing = bool(self._missing)
        for tree in affected:
            if index.nodes_of.get(tree) and tree not in index.trees:
                self._missing.add(tree)
            else:
                self._missing.discard(tree)
        if bool(self._missing) != had_missing:
            dirty[("trees", RECOVERED)] = None

        rejoined: set[str] = set()
        for key in edges:
            dirty[("edges", key)] = None
            joins, joined = self._joins(key), self._cross.get(key)
            if joins == joined:
                continue
            if joined is not None:
                del self._cross[key]
                self._link(*joined, -1)
                rejoined.update(joined)
            if joins is not None:
                self._cross[key] = joins
                self._link(*joins, 1)
                rejoined.update(joins)
        if rejoined:
            self._reroot(rejoined)
        if groups:
            self._cut = None
            for gid in _map(doc, "groups").keys():
                dirty[("groups", gid)] = None
            if regroup:
                for tree in index.trees:
                    dirty[("trees", tree)] = None

    def _link(self, a: str, b: str, by: int) -> None:
        for x, y in ((a, b), (b, a)):
            links = self._links.setdefault(x, {})
            links[y] = links.get(y, 0) + by
            if not links[y]:
                del links[y]
                if not links:
                    del self._links[x]

    def _reroot(self, trees: set[str]) -> None:
        """Recompute the components of ``trees`` after their joins changed;
        mark what moves with a tree whose component tree changed."""
        roots: dict[str, str] = {}
        for start in trees:
            if start in roots:
                continue
            component, queue = {start}, [start]
            while queue:
                for other in self._links.get(queue.pop(), ()):
                    if other not in component:
                        component.add(other)
                        queue.append(other)
            root = min(component, key=lambda t: (id_order(t), t))
            roots.update(dict.fromkeys(component, root))
        dirty, index = self.dirty, self.index
        for tree, root in roots.items():
            old = self._root.get(tree, tree)
            if root == tree:
                self._root.pop(tree, None)
            else:
                self._root[tree] = root
            if old == root:
                continue
            for changed in (tree, old, root):
                dirty[("trees", changed)] = None
            for node in self._members(tree):
                dirty[("nodes", node)] = None
                for key in index.edges_at(node):
                    dirty[("edges", key)] = None

    def _members(self, tree: str) -> Iterable[str]:
        """The nodes whose tree (before merging) is ``tree``."""
        nodes_of = self.index.nodes_of
        if tree == RECOVERED:
            for missing in self._missing:
                yield from nodes_of.get(missing, ())
        if tree == RECOVERED or tree in self.index.trees:
            yield from nodes_of.get(tree, ())

    # -- writing ---------------------------------------------------------------

    def writes(self, source: Doc, live: Doc) -> Writes:
        """What makes ``live`` hold the repair of ``source`` (the described
        document, possibly ``live`` itself) on the dirty keys; clears them."""
        dirty, touched, values = self.dirty, self.touched, self._values
        out = Writes()
        try:
            for root, key in dirty:
                value = self.value(source, root, key)
                if source is live:
                    if value is not SAME:
                        out.add(root, key, value, self._why(root, key, value))
                    continue
                # The live document is the repair of the described one as
                # it was: an entry untouched since holds the described value
                # unless a rule's value is there (``ruled``).
                ruled = (root, key) in self.ruled
                if value is SAME:
                    if (root, key) not in touched and not ruled:
                        continue
                    self.ruled.discard((root, key))
                    value = _current(source, values["source"], root, key)
                    why = "restoredEntries"  # what the clients' edits give it
                else:
                    self.ruled.add((root, key))
                    why = self._why(root, key, value)
                if _differs(_current(live, values["live"], root, key), value):
                    out.add(root, key, value, why)
        finally:
            self.clear()
        return out

    def _why(self, root: str, key: str, value: Any) -> str:
        """How the summary counts a write that a rule makes."""
        if root == "nodes":
            tree = self.index.tree_of.get(key)
            return "recoveredNodes" if tree not in self.index.trees else "movedNodes"
        if root == "edges":
            return "droppedEdges" if value is MISSING else "relabelledEdges"
        if root == "comments":
            return "droppedComments"
        if root == "branchpoints":
            return "droppedBranchpoints"
        if root == "trees":
            if value is MISSING:
                return "mergedTrees"
            return "ungroupedTrees" if key in self.index.trees else "createdTrees"
        return "cutGroups"


def _differs(a: Any, b: Any) -> bool:
    """``a != b``, for values a client may have nested thousands deep: one too
    deep to compare is taken as unchanged (left as it is, never rewritten —
    writing it would recurse as deep)."""
    try:
        return bool(a != b)
    except RecursionError:
        return False


def _plain(value: Any) -> Any:
    """A document value as plain JSON (shared types — a client may put a
    Y.Array or Y.Text anywhere — read as their contents)."""
    return value.to_py() if isinstance(value, Map | Array | Text) else value


def _read(doc: Doc, root: str, key: str) -> Any:
    m = _map(doc, root)
    return _plain(m.get(key)) if key in m else MISSING


_UNSEEN: Any = object()


def _current(doc: Doc, values: dict[Key, Any], root: str, key: str) -> Any:
    """An entry's value: as the last transaction left it, else read."""
    value = values.get((root, key), _UNSEEN)
    return _read(doc, root, key) if value is _UNSEEN else value
