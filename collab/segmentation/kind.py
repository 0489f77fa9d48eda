"""The segmentation as a document kind: the record the app hands to the
room registry (collab/document/kind.py says what each field is for).

The roots follow the design in docs/schema.md ("segmentation"): volume
layers and groups are nested maps; segments, id blocks and voxel operations
are plain JSON values. `agglomerates` is kept for the proofreading issue.
Every client update's voxel operations are checked before it is applied
(collab/segmentation/ops.py). Being built: no repair, no materialisation,
no large-document handling yet.
"""

from __future__ import annotations

from collab.document.kind import DocumentKind, Root
from collab.segmentation.ops import check_update

SEGMENTATION = DocumentKind(
    name="segmentation",
    roots=(
        Root("meta"),
        Root("layers", nested=True),
        Root("segments"),
        Root("groups", nested=True),
        Root("idBlocks"),
        Root("ops"),
        Root("agglomerates"),
    ),
    modes=("volume", "proofreading"),
    check=check_update,
    keeps_order=True,
)
