"""Compaction: the merged state of a document from a snapshot and the updates
after it. Runs in a worker process (it is O(document), and pycrdt holds the
GIL); compacting goes through a Doc because ``merge_updates`` keeps deleted
content."""

from __future__ import annotations

from collab.document.kinds import new_doc


def compact(kind: str, snapshot: bytes | None, updates: list[bytes]) -> bytes:
    doc = new_doc(kind, snapshot)
    for update in updates:
        doc.apply_update(update)
    return doc.get_update()
