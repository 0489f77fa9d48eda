"""The segmentation as a document kind: the record the app hands to the
room registry (collab/document/kind.py says what each field is for).

Provisional until the segmentation issue designs the document
(docs/schema.md): its roots and the task modes that write it; no repair,
no large-document handling.
"""

from __future__ import annotations

from collab.document.kind import DocumentKind, Root

SEGMENTATION = DocumentKind(
    name="segmentation",
    roots=(
        Root("meta"),
        Root("segments", nested=True),
        Root("groups", nested=True),
        Root("agglomerates"),
    ),
    modes=("volume", "proofreading"),
)
