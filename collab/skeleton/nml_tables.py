"""An NML tree's nodes and edges as columns, and the fast reading of their blocks. Pure.

A million-node tracing is a million ``<node>`` elements; held as one Python
object each it costs ~1 KB and ~10 µs apiece. Here a tree's nodes are numpy
columns (:class:`NodeTable`) and its edges an ``(n, 2)`` int64 array.

The fast reader handles a ``<nodes>`` or ``<edges>`` block written the way
tools write them: self-closing elements, double-quoted attributes, every
element with the attributes of the first, in the same order, whitespace
between. It matches them with one regular expression compiled for that
attribute order and converts column-wise. Anything else — a comment, an
entity reference, an unknown or missing attribute, a value that is not a plain
number, text between elements, a duplicate id, a self-edge — makes it answer
None, and the caller feeds the block to the exact (expat) reader, which
accepts the same files and names the element and line of any error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

#: Node attributes and their column (and kind: "i" integer, "f" float, "b" boolean).
NODE_ATTRS: dict[str, tuple[str, str]] = {
    "id": ("id", "i"),
    "x": ("x", "f"),
    "y": ("y", "f"),
    "z": ("z", "f"),
    "radius": ("radius", "f"),
    "rotX": ("rx", "f"),
    "rotY": ("ry", "f"),
    "rotZ": ("rz", "f"),
    "inVp": ("viewport", "i"),
    "inMag": ("mag", "i"),
    "bitDepth": ("bit_depth", "i"),
    "interpolation": ("interpolation", "b"),
    "time": ("time", "i"),
}
#: Columns and their value when the attribute is absent (None: required).
NODE_DEFAULTS: dict[str, Any] = {
    "id": None,
    "x": None,
    "y": None,
    "z": None,
    "radius": 1.0,
    "rx": 0.0,
    "ry": 0.0,
    "rz": 0.0,
    "viewport": 0,
    "mag": 1,
    "bit_depth": 8,
    "interpolation": False,
    "time": 0,
}
_FLOAT_COLUMNS = ("x", "y", "z", "radius", "rx", "ry", "rz")
_INT_COLUMNS = ("id", "viewport", "mag", "bit_depth", "time")


@dataclass(slots=True)
class NmlNode:
    id: int
    x: float
    y: float
    z: float
    radius: float = 1.0
    rot: tuple[float, ...] = (0.0, 0.0, 0.0)
    viewport: int = 0
    mag: int = 1
    bit_depth: int = 8
    interpolation: bool = False
    time: int = 0


@dataclass(slots=True)
class NodeTable:
    """Nodes as columns of one length: int64 ``id, viewport, mag, bit_depth,
    time``, float64 ``x, y, z, radius, rx, ry, rz``, bool ``interpolation``."""

    id: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    radius: np.ndarray
    rx: np.ndarray
    ry: np.ndarray
    rz: np.ndarray
    viewport: np.ndarray
    mag: np.ndarray
    bit_depth: np.ndarray
    interpolation: np.ndarray
    time: np.ndarray

    def __len__(self) -> int:
        return len(self.id)

    def __iter__(self) -> Iterator[NmlNode]:
        columns = [getattr(self, c).tolist() for c in NODE_DEFAULTS]
        for i, x, y, z, r, rx, ry, rz, vp, mag, bd, interp, t in zip(*columns, strict=True):
            yield NmlNode(i, x, y, z, r, (rx, ry, rz), vp, mag, bd, interp, t)

    @classmethod
    def empty(cls) -> NodeTable:
        return cls.from_nodes([])

    @classmethod
    def from_nodes(cls, nodes: list[NmlNode]) -> NodeTable:
        return cls(
            np.array([n.id for n in nodes], dtype=np.int64),
            np.array([n.x for n in nodes], dtype=np.float64),
            np.array([n.y for n in nodes], dtype=np.float64),
            np.array([n.z for n in nodes], dtype=np.float64),
            np.array([n.radius for n in nodes], dtype=np.float64),
            np.array([n.rot[0] for n in nodes], dtype=np.float64),
            np.array([n.rot[1] for n in nodes], dtype=np.float64),
            np.array([n.rot[2] for n in nodes], dtype=np.float64),
            np.array([n.viewport for n in nodes], dtype=np.int64),
            np.array([n.mag for n in nodes], dtype=np.int64),
            np.array([n.bit_depth for n in nodes], dtype=np.int64),
            np.array([n.interpolation for n in nodes], dtype=bool),
            np.array([n.time for n in nodes], dtype=np.int64),
        )

    @classmethod
    def concat(cls, parts: list[NodeTable]) -> NodeTable:
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, c) for p in parts]) for c in NODE_DEFAULTS))

    def take(self, order: np.ndarray) -> NodeTable:
        return NodeTable(*(getattr(self, c)[order] for c in NODE_DEFAULTS))

    def slice(self, start: int, stop: int) -> NodeTable:
        return NodeTable(*(getattr(self, c)[start:stop] for c in NODE_DEFAULTS))


def edge_array(pairs: list[tuple[int, int]]) -> np.ndarray:
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


# -- fast block reading --------------------------------------------------------

_NAME = rb"[A-Za-z_][\w.:-]*"
_FIRST = re.compile(rb"\s*<(\w+)((?:\s+" + _NAME + rb'="[^"<>&]*")*)\s*/>')
_ATTR_NAME = re.compile(rb"(" + _NAME + rb')="')
_NUMBER = rb'"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"'
_INTEGER = rb'"([-+]?[0-9]+)"'
_BOOLEAN = rb'"(true|false|True|False|TRUE|FALSE|1|0)"'
_KIND = {"i": _INTEGER, "f": _NUMBER, "b": _BOOLEAN}
#: Non-whitespace text between or after elements.
_TEXT = re.compile(rb">\s*[^\s<]")
EDGE_ATTRS: dict[str, tuple[str, str]] = {"source": ("source", "i"), "target": ("target", "i")}


@lru_cache(maxsize=64)
def _pattern(element: bytes, names: tuple[bytes, ...], kinds: tuple[str, ...]) -> re.Pattern[bytes]:
    parts = [rb"\s*<", element]
    for name, kind in zip(names, kinds, strict=True):
        parts += [rb"\s+", re.escape(name), b"=", _KIND[kind]]
    parts.append(rb"\s*/>")
    return re.compile(b"".join(parts))


def _signature(
    block: bytes, element: bytes, known: dict[str, tuple[str, str]]
) -> tuple[tuple[bytes, ...], tuple[str, ...]] | None:
    first = _FIRST.match(block)
    if first is None or first.group(1) != element:
        return None
    names = tuple(_ATTR_NAME.findall(first.group(2)))
    if len(set(names)) != len(names):
        return None
    try:
        kinds = tuple(known[n.decode()][1] for n in names)
    except KeyError:
        return None
    return names, kinds


def _rows(
    block: bytes, element: bytes, known: dict[str, tuple[str, str]]
) -> tuple[tuple[bytes, ...], list[tuple[bytes, ...]]] | None:
    """The attribute values of every element of a strict block, or None."""
    if b"&" in block or not block.lstrip().startswith(b"<") or _TEXT.search(block):
        return None
    signature = _signature(block, element, known)
    if signature is None:
        return None
    names, kinds = signature
    rows = _pattern(element, names, kinds).findall(block)
    if len(rows) != block.count(b"<"):
        return None
    if len(names) == 1:  # findall gives the value itself for a single group
        rows = [(r,) for r in rows]
    return names, rows


def _column(values: tuple[bytes, ...], kind: str) -> np.ndarray:
    if kind == "b":
        return np.array([v in (b"true", b"True", b"TRUE", b"1") for v in values], dtype=bool)
    first = values[0]
    if first == values[-1] == values[len(values) // 2] and len(set(values)) == 1:
        # common: the rotations, viewports and mags of a whole tree
        value = int(first) if kind == "i" else float(first)
        return np.full(len(values), value, dtype=np.int64 if kind == "i" else np.float64)
    if kind == "i":
        return np.array(list(map(int, values)), dtype=np.int64)
    return np.array(list(map(float, values)), dtype=np.float64)


def read_nodes(block: bytes) -> NodeTable | None:
    """A strict ``<nodes>`` block's content as a table, or None (see the module doc)."""
    found = _rows(block, b"node", NODE_ATTRS)
    if found is None:
        return None
    names, rows = found
    n = len(rows)
    columns: dict[str, np.ndarray] = {}
    try:
        for name, values in zip(names, zip(*rows, strict=True), strict=True):
            column, kind = NODE_ATTRS[name.decode()]
            columns[column] = _column(values, kind)
    except (ValueError, OverflowError):
        return None
    for column, default in NODE_DEFAULTS.items():
        if column not in columns:
            if default is None:
                return None  # a required attribute is missing: the exact reader says which
            columns[column] = np.full(n, default, dtype=type(default) if n else np.float64)
    for column in _INT_COLUMNS:
        columns[column] = columns[column].astype(np.int64, copy=False)
    for column in _FLOAT_COLUMNS:
        columns[column] = columns[column].astype(np.float64, copy=False)
    if n:
        floats = np.stack([columns[c] for c in _FLOAT_COLUMNS])
        if not np.isfinite(floats).all():
            return None
        if len(np.unique(columns["id"])) != n:
            return None
    columns["interpolation"] = columns["interpolation"].astype(bool, copy=False)
    return NodeTable(**columns)


def read_edges(block: bytes) -> np.ndarray | None:
    """A strict ``<edges>`` block's content as an ``(n, 2)`` array of (source,
    target), or None (see the module doc)."""
    found = _rows(block, b"edge", EDGE_ATTRS)
    if found is None:
        return None
    names, rows = found
    if set(names) != {b"source", b"target"}:
        return None
    try:
        columns = {
            name: _column(values, "i")
            for name, values in zip(names, zip(*rows, strict=True), strict=True)
        }
    except (ValueError, OverflowError):
        return None
    if not rows:
        return np.empty((0, 2), dtype=np.int64)
    edges = np.stack([columns[b"source"], columns[b"target"]], axis=1)
    if (edges[:, 0] == edges[:, 1]).any():
        return None
    return edges
