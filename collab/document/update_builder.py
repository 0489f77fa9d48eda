"""Yjs updates (format v1) that add fresh entries to maps, built without a document. Pure.

An NML import adds a million nodes and a million edges, each a new key of a
top-level Y.Map. Building them through pycrdt costs ~6.5 µs an entry (one
Python→Rust conversion of a dict each) plus the encoding of the finished
document; writing the update's bytes directly costs well under a microsecond
an entry, and the node bytes are produced column-wise with numpy.

What is built is exactly what a Yjs client would send had it set those keys in
one transaction: one client, consecutive clocks from 0, every item without
left/right origin (a key that is new to its map has no neighbours), parent
named by root key or by the id of the item holding a nested Y.Map, and an empty
delete set. Byte layouts (lib0 and y-protocols' ``UpdateEncoderV1``):

- update = varuint(1 client) · varuint(#items) · varuint(client) ·
  varuint(first clock) · items · varuint(0) (empty delete set). A large
  build is taken in pieces (``UpdateBuilder.piece``): consecutive clock
  ranges of the same client, each a valid update once its predecessors are
  applied; ``concat_pieces`` joins them into the one update they add up to.
- item with a root parent = info · varuint(1) · varstring(root) · varstring(key)
  · content; with an item parent = info · varuint(0) · varuint(client) ·
  varuint(clock) · varstring(key) · content. ``info`` = content ref | 0x20 (has
  a parent key).
- ContentAny (ref 8) = varuint(#values) · values in lib0's "any" encoding;
  ContentType (ref 7) = varuint(type ref), 1 for Y.Map.
- any: null 0x7e, true 0x78, false 0x79, float32 0x7c + 4 bytes BE (when exact,
  as yrs writes numbers), float64 0x7b + 8 bytes BE, string 0x77 + varstring,
  array 0x75 + varuint(n) + values, object 0x76 + varuint(n) + (varstring(key)
  + value)*.

Numbers are written as floats, as yrs writes Python ints: a reader gets ``1.0``
for a stored ``1`` from either path.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

INFO_ANY = 0x28  # ContentAny | has parentSub
INFO_TYPE = 0x27  # ContentType | has parentSub
YMAP = 1

#: An update that adds nothing (no clients, empty delete set).
EMPTY_PIECE = b"\x00\x00"

_f32 = struct.Struct(">f")
_f64 = struct.Struct(">d")


def varuint(n: int) -> bytes:
    if n < 0:
        raise ValueError("varuint of a negative number")
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def varstring(text: str) -> bytes:
    raw = text.encode("utf-8")
    return varuint(len(raw)) + raw


#: lib0 varuints we read fit in 53 bits.
MAX_VARUINT_BYTES = 8


def read_varuint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """(value, next position) of the lib0 varuint at ``pos``; ValueError
    when it is cut short or longer than ``MAX_VARUINT_BYTES``."""
    value = shift = 0
    end = len(data)
    for _ in range(MAX_VARUINT_BYTES):
        if pos >= end:
            raise ValueError("truncated varuint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("varuint too long")


def read_state_vector(data: bytes) -> dict[int, int]:
    """A state vector's client → clock (to pick a client id nobody used)."""
    count, pos = read_varuint(data, 0)
    out = {}
    for _ in range(count):
        client, pos = read_varuint(data, pos)
        out[client], pos = read_varuint(data, pos)
    return out


def encode_number(value: float) -> bytes:
    f = float(value)
    if not math.isfinite(f):
        raise ValueError(f"not a finite number: {value!r}")
    try:
        packed = _f32.pack(f)
    except OverflowError:
        return b"\x7b" + _f64.pack(f)
    if _f32.unpack(packed)[0] == f:
        return b"\x7c" + packed
    return b"\x7b" + _f64.pack(f)


def encode_any(value: Any) -> bytes:
    """One value in lib0's "any" encoding (JSON-like values only)."""
    if value is None:
        return b"\x7e"
    if value is True:
        return b"\x78"
    if value is False:
        return b"\x79"
    if isinstance(value, int | float):
        return encode_number(value)
    if isinstance(value, str):
        return b"\x77" + varstring(value)
    if isinstance(value, list | tuple):
        return b"\x75" + varuint(len(value)) + b"".join(encode_any(v) for v in value)
    if isinstance(value, dict):
        parts = [b"\x76", varuint(len(value))]
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"object keys must be strings, not {type(k).__name__}")
            parts.append(varstring(k))
            parts.append(encode_any(v))
        return b"".join(parts)
    raise TypeError(f"cannot encode {type(value).__name__} in a Yjs update")


@dataclass(frozen=True, slots=True)
class ItemId:
    client: int
    clock: int


class UpdateBuilder:
    """Collects fresh map entries from one client and packs them as one update.

    The caller guarantees freshness: every (parent, key) is set once and is not
    in the target document already (a key present there would be a concurrent
    write, resolved by Yjs's rules, not an error)."""

    def __init__(self, client_id: int) -> None:
        self.client = client_id
        self.clock = 0
        self._parts: list[bytes] = []
        self._roots: dict[tuple[str, int], bytes] = {}
        self._client_bytes = varuint(client_id)

    def _root_head(self, info: int, root: str) -> bytes:
        head = self._roots.get((root, info))
        if head is None:
            head = self._roots[(root, info)] = bytes((info,)) + b"\x01" + varstring(root)
        return head

    def _parent_head(self, info: int, parent: str | ItemId) -> bytes:
        if isinstance(parent, str):
            return self._root_head(info, parent)
        return bytes((info,)) + b"\x00" + varuint(parent.client) + varuint(parent.clock)

    def set(self, parent: str | ItemId, key: str, value: Any) -> None:
        """``parent[key] = value`` for a JSON-like value (a root's name or a nested map)."""
        self._parts.append(
            self._parent_head(INFO_ANY, parent) + varstring(key) + b"\x01" + encode_any(value)
        )
        self.clock += 1

    def set_map(self, parent: str | ItemId, key: str, fields: dict[str, Any]) -> ItemId:
        """``parent[key] = Y.Map(fields)``; returns the new map's id."""
        item = ItemId(self.client, self.clock)
        self._parts.append(self._parent_head(INFO_TYPE, parent) + varstring(key) + b"\x01")
        self.clock += 1
        for k, v in fields.items():
            self.set(item, k, v)
        return item

    def set_many_encoded(self, root: str, keys: Sequence[str], contents: Iterable[bytes]) -> None:
        """``root[key] = value`` for each key, whose value's encoding
        (``encode_any``) ``contents`` yields, at least as many as keys."""
        head = self._root_head(INFO_ANY, root)
        parts = self._parts
        for key, content in zip(keys, contents):  # noqa: B905 (contents may be endless)
            raw = key.encode("utf-8")
            size = len(raw)
            prefix = bytes((size,)) if size < 0x80 else varuint(size)
            parts.append(b"".join((head, prefix, raw, b"\x01", content)))
        self.clock += len(keys)

    def set_many_strings(self, root: str, keys: Sequence[str], values: Iterable[str]) -> None:
        """``root[key] = value`` for many string values (edges → tree, comments)."""
        encoded: dict[str, bytes] = {}

        def contents() -> Iterator[bytes]:
            for v in values:
                raw = encoded.get(v)
                if raw is None:
                    raw = encoded[v] = b"\x77" + varstring(v)
                yield raw

        self.set_many_encoded(root, keys, contents())

    def finish(self) -> bytes:
        """Everything set since the last :meth:`piece` (all of it if none was
        taken) as one update."""
        return self.piece()

    def piece(self) -> bytes:
        """What was set since the previous piece as one update; pieces applied
        in order equal the whole (and :func:`concat_pieces` joins them)."""
        if not self._parts:
            return EMPTY_PIECE
        start = self.clock - len(self._parts)
        header = b"\x01" + varuint(len(self._parts)) + self._client_bytes + varuint(start)
        body = b"".join(self._parts)
        self._parts = []
        return header + body + b"\x00"


def _piece_head(data: bytes) -> tuple[int, int, int, int]:
    """(#items, client, start clock, offset of the first item) of a piece."""
    clients, at = read_varuint(data, 0)
    if clients != 1:
        raise ValueError("not a one-client piece")
    count, at = read_varuint(data, at)
    client, at = read_varuint(data, at)
    clock, at = read_varuint(data, at)
    return count, client, clock, at


def concat_pieces(pieces: Sequence[bytes]) -> bytes:
    """Consecutive pieces of one :class:`UpdateBuilder` as the single update
    they add up to (their items in order; each piece ends with an empty
    delete set). Pure byte work: no decoding of the items."""
    pieces = [p for p in pieces if p != EMPTY_PIECE]
    if not pieces:
        return EMPTY_PIECE
    if len(pieces) == 1:
        return pieces[0]
    total = 0
    client = first_clock = -1
    clock = 0
    bodies: list[memoryview] = []
    for data in pieces:
        count, who, start, at = _piece_head(data)
        if data[-1] != 0:
            raise ValueError("a piece must end with an empty delete set")
        if client == -1:
            client, first_clock, clock = who, start, start
        if who != client or start != clock:
            raise ValueError("pieces are not consecutive pieces of one client")
        clock += count
        total += count
        bodies.append(memoryview(data)[at:-1])
    head = b"\x01" + varuint(total) + varuint(client) + varuint(first_clock)
    return b"".join((head, *bodies, b"\x00"))


# -- node objects, column-wise ------------------------------------------------

#: Field order of a node object written by an import (the contract's fields).
NODE_FIELDS = (
    "treeId",
    "position",
    "radius",
    "rotation",
    "viewport",
    "mag",
    "bitDepth",
    "interpolation",
    "time",
)


def _tail_dtype() -> np.dtype[Any]:
    """The fixed-width part of a node object after its ``treeId``: every number
    as float64 (0x7b + 8 bytes big-endian)."""
    fields: list[tuple[str, Any]] = []

    def const(name: str, raw: bytes) -> None:
        fields.append((name, f"S{len(raw)}"))

    def num(name: str) -> None:
        fields.append((name + "_t", "u1"))
        fields.append((name, ">f8"))

    const("k_position", varstring("position") + b"\x75\x03")
    num("x")
    num("y")
    num("z")
    const("k_radius", varstring("radius"))
    num("radius")
    const("k_rotation", varstring("rotation") + b"\x75\x03")
    num("rx")
    num("ry")
    num("rz")
    const("k_viewport", varstring("viewport"))
    num("viewport")
    const("k_mag", varstring("mag"))
    num("mag")
    const("k_bitDepth", varstring("bitDepth"))
    num("bitDepth")
    const("k_interpolation", varstring("interpolation"))
    fields.append(("interpolation", "u1"))
    const("k_time", varstring("time"))
    num("time")
    return np.dtype(fields)


_TAIL = _tail_dtype()
_CONSTS = {
    "k_position": varstring("position") + b"\x75\x03",
    "k_radius": varstring("radius"),
    "k_rotation": varstring("rotation") + b"\x75\x03",
    "k_viewport": varstring("viewport"),
    "k_mag": varstring("mag"),
    "k_bitDepth": varstring("bitDepth"),
    "k_interpolation": varstring("interpolation"),
    "k_time": varstring("time"),
}
_NODE_HEAD = b"\x76" + varuint(len(NODE_FIELDS)) + varstring("treeId") + b"\x77"


def node_tails(columns: dict[str, np.ndarray]) -> tuple[bytes, int]:
    """The fixed-width encodings of many node objects (all but ``treeId``), as
    one buffer and the width of one; ``columns`` holds float arrays ``x, y, z,
    radius, rx, ry, rz, viewport, mag, bitDepth, time`` and a bool array
    ``interpolation``, all of one length."""
    n = len(columns["x"])
    rows = np.empty(n, dtype=_TAIL)
    for name, raw in _CONSTS.items():
        rows[name] = raw
    for name in ("x", "y", "z", "radius", "rx", "ry", "rz", "viewport", "mag", "bitDepth", "time"):
        rows[name + "_t"] = 0x7B
        rows[name] = columns[name]
    rows["interpolation"] = np.where(columns["interpolation"], 0x78, 0x79)
    return rows.tobytes(), _TAIL.itemsize


def node_contents(tree_ids: Iterable[str], tails: bytes, width: int) -> Iterator[bytes]:
    """Each node's full object encoding: head with its tree id, then its tail."""
    view = memoryview(tails)
    heads: dict[str, bytes] = {}
    for i, tree in zip(range(len(tails) // width), tree_ids):  # noqa: B905
        head = heads.get(tree)
        if head is None:
            head = heads[tree] = _NODE_HEAD + varstring(tree)
        yield head + view[i * width : (i + 1) * width]
