"""The skeleton as a document kind: the record the app hands to the room
registry (collab/document/kind.py says what each field is for).

Large skeletons: from ``INDEX_IN_WORKER_BYTES`` stored bytes on, the repair
index is read from the stored bytes in a worker process
(:func:`collab.skeleton.jobs.index_source`) while the room builds its own
document; a room of ``LARGE_ROOM`` nodes or more has its index frozen out of
the collector's full passes once loaded (and after an import of as many).
"""

from __future__ import annotations

from typing import Any, Protocol

from pycrdt import Doc, Map

from collab.config import Settings
from collab.document.kind import DocumentKind, Root
from collab.skeleton import jobs
from collab.skeleton.repair import SkeletonIndex, SkeletonRepairer
from collab.skeleton.schema import NESTED_ROOTS, ROOTS

#: Rooms with at least this many skeleton nodes get their index frozen out of
#: the garbage collector's full passes once loaded (see gc_policy.settle).
LARGE_ROOM = 50_000
#: Stored bytes from which a skeleton room's repair index is read in a
#: worker: reading a million nodes back out of yrs costs ~16 s of GIL,
#: turning the lists the worker returns into the index ~2 s.
INDEX_IN_WORKER_BYTES = 4 << 20


def open_repairer(doc: Doc, source: Any, settings: Settings) -> SkeletonRepairer:
    """The room's repairer: its index from the worker's ``IndexSource`` when
    one was read (a large document), else from ``doc`` (read in-process
    through the same ``IndexSource``)."""
    most = settings.repair_merge_max_nodes
    if source is not None:
        return SkeletonRepairer(index=SkeletonIndex.of_source(source), merge_max_nodes=most)
    return SkeletonRepairer(doc, merge_max_nodes=most)


def is_large(doc: Doc) -> bool:
    return len(doc.get("nodes", type=Map)) >= LARGE_ROOM


class Materialises(Protocol):
    """A room, as far as the skeleton's endpoints ask it."""

    def materialised(self) -> object: ...


def live_index(room: Materialises) -> SkeletonIndex | None:
    """The repair index a skeleton room keeps current (what exports and
    imports read instead of the document), asked of the room; None if it
    has none."""
    index = room.materialised()
    return index if isinstance(index, SkeletonIndex) else None


SKELETON = DocumentKind(
    name="skeleton",
    roots=tuple(Root(name, nested=name in NESTED_ROOTS) for name in ROOTS),
    repairer=open_repairer,
    index_in_worker=jobs.index_source,
    index_in_worker_bytes=INDEX_IN_WORKER_BYTES,
    is_large=is_large,
    modes=("skeleton",),
)
