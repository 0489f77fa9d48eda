"""Document kinds: everything the generic layers know of a kind, as one record.

An annotation has one document per kind (``skeleton``, ``segmentation``).
Rooms (collab/sync/), the store (collab/store/), history and the REST
endpoints name no kind: each kind is one :class:`DocumentKind` that its own
package exports (``collab.skeleton.kind.SKELETON``,
``collab.segmentation.kind.SEGMENTATION``), and the app hands them to the
room registry as :class:`Kinds`. Adding a kind is writing its record and
listing it in collab/app.py (docs/architecture.md, "Document kinds").

A record says:

- ``name``: the ``{doc}`` of ``/sync/{annotation}/{doc}`` and of the log rows;
- ``roots``: the Yjs types at the top level of its ``Y.Doc`` and whether
  their entries are nested maps, in the order the JSON view lists them
  (roots a client adds beyond these are still synced, stored and replayed,
  and read as maps);
- ``repairer``: how a room opens it: the object that keeps the kind's
  invariants and whatever it materialises beside the document (the
  skeleton's repair index and node columns), built from the loaded document
  or from what ``index_in_worker`` read of the same stored bytes;
- its handling of large documents: from ``index_in_worker_bytes`` stored
  bytes on, ``index_in_worker`` runs in a worker process while the room
  builds its own document; ``is_large`` says when a loaded room's long-lived
  structures are frozen out of the collector's full passes
  (:func:`collab.gc_policy.settle`);
- ``modes``: the task-type modes whose tasks write it;
- ``check``: what a client's update must satisfy before it is applied
  (refused otherwise, before anyone else sees it).

Pure: no I/O, nothing of rooms or the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pycrdt import Doc, Map

from collab.config import Settings
from collab.errors import NotFound


@dataclass(frozen=True, slots=True)
class Root:
    """A type at the top level of a document."""

    name: str
    #: Every root is a Y.Map: the JSON view, restore and revert read roots
    #: as maps (collab/document/content.py).
    type: type[Map] = Map
    #: Its entries are nested Y.Maps (a skeleton's trees), written back
    #: field by field by restore and revert; otherwise plain JSON values.
    nested: bool = False


def maps(*names: str) -> tuple[Root, ...]:
    """Roots that are Y.Maps, in this order."""
    return tuple(Root(name) for name in names)


def new_doc(roots: Iterable[Root], update: bytes | None = None) -> Doc:
    """A Doc with ``roots`` declared, optionally loaded from an update.

    A function of the roots alone (picklable), so worker processes build
    documents without the record's hooks."""
    doc: Doc = Doc()
    for root in roots:
        doc.get(root.name, type=root.type)
    if update:
        doc.apply_update(update)
    return doc


class Repairer(Protocol):
    """Keeps a document kind's invariants, and what it materialises beside
    the live document (the skeleton's: collab/skeleton/repair.py)."""

    #: Roots whose touched entries' new values the room hands to :meth:`observe`.
    values_of: tuple[str, ...]

    def observe(
        self,
        doc: Doc,
        touched: list[tuple[str, ...]],
        values: dict[tuple[str, ...], Any],
        update: bytes,
        repair: bool,
    ) -> None:
        """Update indexes from the paths the last transaction touched (and the
        new values of ``values_of`` roots' entries); ``update``: a client's
        update as it was sent (also when it changed nothing), or the server
        change's; ``repair``: the change is one of the room's repairs."""

    def absorb(self, delta: Any, update: bytes) -> None:
        """Take a server-built bulk change's piece and its own description."""

    def seen(self, state_vector: bytes) -> bool:
        """A writer's sync step 1 (the state it has); True when a repair
        pass is due."""

    def plan(
        self, doc: Doc, touched: list[tuple[str, ...]]
    ) -> tuple[Callable[[Doc], None], dict[str, Any]] | None:
        """The edit that restores the invariants, with its summary; None if none is needed."""

    def materialised(self) -> object:
        """What this keeps current beside the document from every
        transaction (the skeleton's repair index with its node columns),
        for the kind's own endpoints to read instead of the document."""


#: Builds a room's repairer from its loaded document, the result of the
#: kind's ``index_in_worker`` for the same stored bytes (None when it did not
#: run), and the settings.
RepairerFactory = Callable[[Doc, Any, Settings], Repairer]


@dataclass(frozen=True, slots=True)
class DocumentKind:
    """One kind of document: its roots, how a room opens it, its repair, its
    large-document policy (see the module)."""

    name: str
    roots: tuple[Root, ...]
    #: The room's repairer; None: no invariants to keep, nothing materialised.
    repairer: RepairerFactory | None = None
    #: Run in a worker process on the stored bytes (snapshot, updates) of a
    #: document of at least ``index_in_worker_bytes``, while the room builds
    #: its own document; handed to ``repairer``. A module-level function
    #: (pickled by reference). None: the repairer reads the built document.
    index_in_worker: Callable[[bytes | None, list[bytes]], Any] | None = None
    index_in_worker_bytes: int = 0
    #: True for a loaded document whose long-lived structures should leave
    #: the collector's full passes (collab/gc_policy.py, ``settle``).
    is_large: Callable[[Doc], bool] | None = None
    #: The task-type modes (collab/http/work.py) whose annotators write this
    #: document: a task's annotation changes only its modes' documents.
    modes: tuple[str, ...] = ()
    #: Checks a client's update before the room applies it: raises a
    #: CollabError (Unprocessable: close 4422) naming what is wrong, and
    #: nothing of the update is applied, stored or relayed. Gets the live
    #: document (to read, never to change), the update as sent and the
    #: sender's user id. None: every update pycrdt can apply is taken (and
    #: repaired afterwards, as the skeleton's are).
    check: Callable[[Doc, bytes, int | None], None] | None = None
    #: True when the order of its versions matters beyond the merged state
    #: (the segmentation applies voxel ops in the order they were sequenced):
    #: a copy of the document (a task's base) keeps every version instead of
    #: merging them into one.
    keeps_order: bool = False

    def __post_init__(self) -> None:
        names = [root.name for root in self.roots]
        if len(set(names)) != len(names):
            raise ValueError(f"kind {self.name!r} declares a root twice: {names}")
        for root in self.roots:
            if not (isinstance(root.type, type) and issubclass(root.type, Map)):
                raise ValueError(f"kind {self.name!r}: root {root.name!r} must be a Y.Map")
        if self.index_in_worker is not None and self.repairer is None:
            raise ValueError(f"kind {self.name!r}: index_in_worker needs a repairer to take it")

    @property
    def root_names(self) -> tuple[str, ...]:
        return tuple(root.name for root in self.roots)

    @property
    def nested_roots(self) -> frozenset[str]:
        """Roots whose entries are nested Y.Maps."""
        return frozenset(root.name for root in self.roots if root.nested)

    def edited_in(self, modes: Iterable[str]) -> bool:
        """A task of these modes writes this document."""
        return any(mode in self.modes for mode in modes)

    def new_doc(self, update: bytes | None = None) -> Doc:
        """A Doc with the kind's roots declared, optionally loaded from an update."""
        return new_doc(self.roots, update)


class Kinds(Mapping[str, DocumentKind]):
    """The kinds this server serves, by name, in the order the app lists
    them; the first is the default of ``?doc=``."""

    def __init__(self, kinds: Iterable[DocumentKind]) -> None:
        self._kinds: dict[str, DocumentKind] = {}
        for kind in kinds:
            if kind.name in self._kinds:
                raise ValueError(f"document kind {kind.name!r} registered twice")
            self._kinds[kind.name] = kind
        if not self._kinds:
            raise ValueError("no document kinds")

    def __getitem__(self, name: str) -> DocumentKind:
        return self._kinds[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    @property
    def default(self) -> DocumentKind:
        return next(iter(self._kinds.values()))

    def parse(self, name: str) -> DocumentKind:
        """The kind named ``name``; NotFound (404, close 4404) if none is."""
        kind = self._kinds.get(name)
        if kind is None:
            raise NotFound(f"unknown document {name!r}; expected one of {', '.join(self._kinds)}")
        return kind
