"""The document kinds an annotation has and their top-level (root) types.

Every root is a Y.Map. Roots not listed here that a client creates are still
synced, stored and replayed; they are included in the JSON view too, read as
maps (see :func:`collab.document.content.roots`).
"""

from __future__ import annotations

from pycrdt import Doc, Map

from collab.errors import NotFound

KINDS: dict[str, tuple[str, ...]] = {
    # ../shared/contract.md, "The skeleton document"
    "skeleton": (
        "meta",
        "trees",
        "nodes",
        "edges",
        "comments",
        "branchpoints",
        "groups",
        "boundingBoxes",
    ),
    # Provisional until the segmentation issue designs it (docs/schema.md).
    "segmentation": ("meta", "segments", "groups", "agglomerates"),
}


def parse_kind(name: str) -> str:
    if name not in KINDS:
        raise NotFound(f"unknown document {name!r}; expected one of {', '.join(KINDS)}")
    return name


def new_doc(kind: str, update: bytes | None = None) -> Doc:
    """A Doc with the kind's roots declared as maps, optionally loaded from an update."""
    doc: Doc = Doc()
    for root in KINDS[kind]:
        doc.get(root, type=Map)
    if update:
        doc.apply_update(update)
    return doc
