"""The connectome of an agglomerate: its synapses, from the dataset's synapse
table, with partners as the annotation's editable mapping has them now.

A dataset's ``synapses.json`` (docs/datasets.md, "Synapses") lists each
synapse with its position (mag-1 voxels), its pre- and post-synaptic
supervoxels (``preSegment``, ``postSegment``) and its ``type``. The table
keeps them as arrays sorted by each side's supervoxel, so the synapses of an
agglomerate are two binary searches per supervoxel, whatever the table's
size (``SynapseTable.of_segments``). Partners are the agglomerates of the
other side, looked up in the mapping: a merge or split changes them at once.

Pure; callers run queries in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from collab.errors import LayoutError

#: Synapses a table may hold.
MAX_SYNAPSES = 10_000_000
#: Synapses one answer lists by default, and at most (``limit``; the counts
#: per partner cover them all; ``offset`` pages on).
LISTED = 1_000
MAX_LISTED = 10_000


@dataclass(frozen=True)
class SynapseTable:
    ids: np.ndarray  # int64
    positions: np.ndarray  # int64, n × 3
    pre: np.ndarray  # uint64 supervoxel ids
    post: np.ndarray
    types: list[str]
    #: Indices of the synapses sorted by ``pre`` and by ``post``.
    by_pre: np.ndarray
    by_post: np.ndarray

    @classmethod
    def from_json(cls, entries: list[Any]) -> SynapseTable:
        """From ``synapses.json``'s list; entries without supervoxels are
        left out (an older table names only cells)."""
        if len(entries) > MAX_SYNAPSES:
            raise LayoutError(f"synapses.json: more than {MAX_SYNAPSES} synapses")
        ids, positions, pre, post, types = [], [], [], [], []
        for i, e in enumerate(entries):
            if not isinstance(e, dict):
                continue
            a, b, p = e.get("preSegment"), e.get("postSegment"), e.get("position")
            if not (_id(a) and _id(b) and isinstance(p, list) and len(p) == 3):
                continue
            if not all(isinstance(c, int) and not isinstance(c, bool) for c in p):
                continue
            sid = e.get("id")
            ids.append(sid if isinstance(sid, int) and not isinstance(sid, bool) else i + 1)
            positions.append(p)
            pre.append(a)
            post.append(b)
            kind = e.get("type")
            types.append(kind[:40] if isinstance(kind, str) else "unknown")
        pre_a = np.array(pre, dtype=np.uint64)
        post_a = np.array(post, dtype=np.uint64)
        return cls(
            np.array(ids, dtype=np.int64),
            np.array(positions, dtype=np.int64).reshape(len(ids), 3),
            pre_a,
            post_a,
            types,
            np.argsort(pre_a, kind="stable"),
            np.argsort(post_a, kind="stable"),
        )

    def of_segments(self, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the synapses whose pre-, and whose post-synaptic
        supervoxel is one of ``segments``."""
        return (
            _among(self.pre, self.by_pre, segments),
            _among(self.post, self.by_post, segments),
        )


def _id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**64


def _among(values: np.ndarray, order: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    ordered = values[order]
    wanted = np.asarray(wanted, dtype=np.uint64)
    lo = np.searchsorted(ordered, wanted, "left")
    hi = np.searchsorted(ordered, wanted, "right")
    hits = hi > lo
    if not hits.any():
        return np.zeros(0, dtype=np.int64)
    spans = [order[a:b] for a, b in zip(lo[hits].tolist(), hi[hits].tolist(), strict=True)]
    return np.sort(np.concatenate(spans))


def connectome(
    table: SynapseTable,
    segments: np.ndarray,
    agglomerates_of: Any,
    offset: int = 0,
    limit: int = LISTED,
) -> dict[str, Any]:
    """The synapses of the agglomerate made of ``segments``, each with its
    direction (``out``: it is pre-synaptic) and partner agglomerate, and
    the counts per partner (most synapses first). Column-wise: a neuron's
    tens of thousands of synapses cost numpy passes, not Python loops."""
    outgoing, incoming = table.of_segments(segments)
    index = np.concatenate([outgoing, incoming])
    out_n = len(outgoing)
    other = np.concatenate([table.post[outgoing], table.pre[incoming]])
    mine = np.concatenate([table.pre[outgoing], table.post[incoming]])
    partners = np.array(agglomerates_of(other.tolist()) if len(other) else [], dtype=np.uint64)
    is_out = np.arange(len(index)) < out_n
    ranked: list[dict[str, int]] = []
    if len(index):
        found, inverse = np.unique(partners, return_inverse=True)
        outs = np.bincount(inverse[is_out], minlength=len(found))
        ins = np.bincount(inverse[~is_out], minlength=len(found))
        totals = outs + ins
        order = np.lexsort((found, -totals))
        ranked = [
            {"agglomerate": a, "out": o, "in": i, "total": t}
            for a, o, i, t in zip(
                found[order].tolist(),
                outs[order].tolist(),
                ins[order].tolist(),
                totals[order].tolist(),
                strict=True,
            )
        ]
    listed = slice(offset, offset + min(limit, MAX_LISTED))
    picked = index[listed]
    rows = [
        {
            "id": sid,
            "position": pos,
            "direction": "out" if out else "in",
            "segment": seg,
            "partnerSegment": oth,
            "partner": par,
            "type": table.types[k],
        }
        for k, sid, pos, out, seg, oth, par in zip(
            picked.tolist(),
            table.ids[picked].tolist(),
            table.positions[picked].tolist(),
            is_out[listed].tolist(),
            mine[listed].tolist(),
            other[listed].tolist(),
            partners[listed].tolist(),
            strict=True,
        )
    ]
    return {"synapses": rows, "total": len(index), "partners": ranked}
