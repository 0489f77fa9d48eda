"""New segment ids that never collide (docs/schema.md, "segmentation").

WEBKNOSSOS gives a new segment "the largest id + 1": two annotators pressing
C at the same moment get the same id. Here a client takes a *block* of ids
from the server, which hands out ranges of one counter per annotation layer
(collab/store/counters.py) and records each block in the document
(``idBlocks``) with the layer's ``largestSegmentId``, as a version of its
own. Pure: what the endpoint (collab/http/segmentation.py) reads from and
writes into the document.
"""

from __future__ import annotations

import math
from typing import Any

from pycrdt import Doc, Map

from collab.errors import Unprocessable

#: Ids in one block: enough for a session of clicks; small enough that an
#: abandoned block wastes little of a uint32 layer's range.
MAX_BLOCK = 1024
#: The largest id of each layer dtype (segment ids are ≥ 1).
DTYPE_MAX = {
    "uint8": 2**8 - 1,
    "uint16": 2**16 - 1,
    "uint32": 2**32 - 1,
    "uint64": 2**53 - 1,  # ids travel as JSON numbers: exact up to 2^53
}


def counter_name(layer: str) -> str:
    return f"segment-ids/{layer}"


def layer_entry(doc: Doc, layer: str) -> Map:
    """The document's volume layer ``layer``; Unprocessable if it has none."""
    layers = doc.get("layers", type=Map)
    entry = layers.get(layer)
    if not isinstance(entry, Map):
        raise Unprocessable(f"the segmentation document has no volume layer {layer!r}")
    return entry


def floor(doc: Doc, layer: str, fallback_largest: int | None) -> int:
    """The lowest id a new block may start at: above the layer's largest
    recorded id and above the fallback layer's largest id."""
    entry = layer_entry(doc, layer)
    recorded = _int(entry.get("largestSegmentId"))
    return max(recorded, fallback_largest or 0) + 1


def dtype_max(doc: Doc, layer: str) -> int:
    dtype = layer_entry(doc, layer).get("dtype")
    return DTYPE_MAX.get(dtype if isinstance(dtype, str) else "", DTYPE_MAX["uint32"])


def record_block(doc: Doc, layer: str, first: int, count: int, user: int | None) -> None:
    """Write the block into ``idBlocks`` and raise ``largestSegmentId`` (one transaction)."""
    blocks = doc.get("idBlocks", type=Map)
    entry = layer_entry(doc, layer)
    with doc.transaction():
        blocks[f"{layer}/{first}"] = {"count": count, "user": user}
        last = first + count - 1
        if last > _int(entry.get("largestSegmentId")):
            entry["largestSegmentId"] = last


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return int(value) if value >= 0 else 0
