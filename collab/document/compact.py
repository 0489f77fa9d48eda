"""Compaction: the merged state of a document from a snapshot and the updates
after it. Runs in a worker process (it is O(document), and pycrdt holds the
GIL); compacting goes through a Doc because ``merge_updates`` keeps deleted
content."""

from __future__ import annotations

from collections.abc import Sequence

from collab.document.kind import Root, new_doc


def compact(roots: Sequence[Root], snapshot: bytes | None, updates: list[bytes]) -> bytes:
    """``roots``: the kind's (a record's hooks need not be picklable)."""
    doc = new_doc(roots, snapshot)
    for update in updates:
        doc.apply_update(update)
    return doc.get_update()
