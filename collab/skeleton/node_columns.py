"""The nodes of a live skeleton document as columns, kept in step with it. Pure.

Reading a million nodes back out of pycrdt costs ~11 s of GIL-holding work
(rendering JSON in yrs, parsing it into a million dicts), and an export worker
would first have to rebuild the document (~7 s). The room's repair index
already sees every node value each transaction writes; it also keeps them
here, as the tolerant reader interprets them (``Node.read``), in numpy
columns. An export then copies the columns (a tenth of a second) and a worker
formats them. Tree membership stays in the index (``tree_of``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from collab.skeleton.nml_tables import NodeTable
from collab.skeleton.schema import Node

#: Float columns: x, y, z, radius, rx, ry, rz; integer columns: viewport, mag,
#: bitDepth, time.
FLOATS = 7
INTS = 4
_NUM = (int, float)
_ZERO3 = (0.0, 0.0, 0.0)
#: Integer fields beyond this take the exact path (``Node.read`` goes through float).
_EXACT = 2.0**53


def node_row(value: Any) -> tuple[Any, ...]:
    """A node value as (treeId, x, y, z, radius, rx, ry, rz, viewport, mag,
    bitDepth, interpolation, time), exactly as ``Node.read`` reads it; the
    common well-formed value without its per-field calls (several times faster)."""
    row = _fast_row(value)
    if row is not None:
        return row
    node = Node.read("", value)
    return (
        node.tree_id,
        *node.position,
        node.radius,
        *node.rotation,
        node.viewport,
        node.mag,
        node.bit_depth,
        node.interpolation,
        node.time,
    )


def _fast_row(v: Any) -> tuple[Any, ...] | None:
    if type(v) is not dict:
        return None
    get = v.get
    p, r = get("position"), get("rotation", _ZERO3)
    radius = get("radius", 1.0)
    t = get("treeId")
    if type(t) is not str or type(p) is not list or len(p) != 3 or type(r) not in (list, tuple):
        return None
    if len(r) != 3 or type(radius) not in _NUM:
        return None
    x, y, z = p
    rx, ry, rz = r
    vp, mag, bd, time = get("viewport", 0), get("mag", 1), get("bitDepth", 8), get("time", 0)
    for value in (x, y, z, rx, ry, rz, vp, mag, bd, time):
        if type(value) not in _NUM:
            return None
    try:
        if not math.isfinite(x + y + z + rx + ry + rz + radius + vp + mag + bd + time):
            return None
    except OverflowError:  # a Python int beyond float range
        return None
    if vp % 1 or mag % 1 or bd % 1 or time % 1:
        return None
    if not (-_EXACT < vp < _EXACT and -_EXACT < mag < _EXACT):
        return None
    if not (-_EXACT < bd < _EXACT and -_EXACT < time < _EXACT):
        return None
    return (t, x, y, z, radius, rx, ry, rz, vp, mag, bd, bool(get("interpolation", False)), time)


@dataclass(frozen=True, slots=True)
class ColumnsCopy:
    """The live rows of :class:`NodeColumns` at one moment (what an export gets)."""

    ids: list[str]
    floats: np.ndarray  # (n, 7) float64
    ints: np.ndarray  # (n, 4) int64
    interpolation: np.ndarray  # (n,) bool

    def table(self, numbers: np.ndarray) -> NodeTable:
        f, i = self.floats, self.ints
        return NodeTable(
            numbers,
            f[:, 0].copy(),
            f[:, 1].copy(),
            f[:, 2].copy(),
            f[:, 3].copy(),
            f[:, 4].copy(),
            f[:, 5].copy(),
            f[:, 6].copy(),
            i[:, 0].copy(),
            i[:, 1].copy(),
            i[:, 2].copy(),
            self.interpolation.copy(),
            i[:, 3].copy(),
        )

    @classmethod
    def of_rows(cls, ids: list[str], rows: list[tuple[Any, ...]]) -> ColumnsCopy:
        """From ``node_row`` tuples (an export straight from a document)."""
        n = len(rows)
        if not n:
            return cls([], np.empty((0, FLOATS)), np.empty((0, INTS), np.int64), np.empty(0, bool))
        cols = list(zip(*rows, strict=True))
        floats = np.array(cols[1:8], dtype=np.float64).T.reshape(n, FLOATS)
        ints = np.array([cols[8], cols[9], cols[10], cols[12]], dtype=np.int64).T
        return cls(ids, floats, ints.reshape(n, INTS), np.array(cols[11], bool))


class NodeColumns:
    """Node id → row; rows of float, integer and boolean columns; freed rows
    are reused. Grows by doubling."""

    def __init__(self, capacity: int = 1024) -> None:
        self.row_of: dict[str, int] = {}
        self.ids: list[str | None] = []
        self.free: list[int] = []
        self.floats = np.zeros((capacity, FLOATS))
        self.ints = np.zeros((capacity, INTS), dtype=np.int64)
        self.interp = np.zeros(capacity, dtype=bool)

    def __len__(self) -> int:
        return len(self.row_of)

    def _grow(self, needed: int) -> None:
        capacity = len(self.floats)
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        for name in ("floats", "ints", "interp"):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def _row(self, node_id: str) -> int:
        row = self.row_of.get(node_id)
        if row is not None:
            return row
        if self.free:
            row = self.free.pop()
            self.ids[row] = node_id
        else:
            row = len(self.ids)
            self._grow(row + 1)
            self.ids.append(node_id)
        self.row_of[node_id] = row
        return row

    def set(self, node_id: str, row_values: tuple[Any, ...]) -> None:
        """Store a ``node_row`` tuple."""
        row = self._row(node_id)
        _, x, y, z, r, rx, ry, rz, vp, mag, bd, interp, time = row_values
        self.floats[row] = (x, y, z, r, rx, ry, rz)
        self.ints[row] = (vp, mag, bd, time)
        self.interp[row] = interp

    def delete(self, node_id: str) -> None:
        row = self.row_of.pop(node_id, None)
        if row is not None:
            self.ids[row] = None
            self.free.append(row)

    def add(
        self, node_ids: list[str], floats: np.ndarray, ints: np.ndarray, interp: np.ndarray
    ) -> None:
        """Many nodes at once as (n, 7), (n, 4) and (n,) arrays: appended
        when all are new (an import, an index read whole), else row by row."""
        if self.row_of.keys().isdisjoint(node_ids):
            start = len(self.ids)
            rows: Any = slice(start, start + len(node_ids))
            self._grow(start + len(node_ids))
            self.ids.extend(node_ids)
            self.row_of.update(zip(node_ids, range(start, start + len(node_ids)), strict=True))
        else:
            rows = [self._row(node_id) for node_id in node_ids]
        self.floats[rows] = floats
        self.ints[rows] = ints
        self.interp[rows] = interp

    def add_table(self, node_ids: list[str], table: NodeTable) -> None:
        """An import's nodes (row k of ``table`` is ``node_ids[k]``)."""
        self.add(
            node_ids,
            np.stack([table.x, table.y, table.z, table.radius, table.rx, table.ry, table.rz], 1),
            np.stack([table.viewport, table.mag, table.bit_depth, table.time], 1),
            table.interpolation,
        )

    def copy(self) -> ColumnsCopy:
        """The live rows (in row order) as independent arrays."""
        size = len(self.ids)
        if len(self.row_of) == size:
            ids: list[str] = self.ids  # type: ignore[assignment]
            rows: Any = slice(0, size)
        else:
            live = [k for k, n in enumerate(self.ids) if n is not None]
            ids = [self.ids[k] for k in live]  # type: ignore[misc]
            rows = np.array(live, dtype=np.int64)
        return ColumnsCopy(
            list(ids), self.floats[rows].copy(), self.ints[rows].copy(), self.interp[rows].copy()
        )
