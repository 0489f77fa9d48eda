"""NML, the skeleton format of WEBKNOSSOS and KNOSSOS: streaming read, stable write. Pure.

Reading feeds the bytes to expat in chunks and keeps only compact per-node
tuples, so a million-node file never sits in memory as an element tree. Any
DOCTYPE is refused before its first declaration is read: with no DTD there are
no entities to expand (billion laughs) or to fetch (external entities).

Errors are :class:`NmlError` (422) naming the element and the line.
"""

from __future__ import annotations

import io
import itertools
import math
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any
from xml.parsers import expat

import numpy as np

from collab.errors import PayloadTooLarge
from collab.skeleton.nml_tables import NmlNode, NodeTable, edge_array, read_edges, read_nodes
from collab.skeleton.schema import SkeletonError

__all__ = ["Nml", "NmlBox", "NmlError", "NmlGroup", "NmlNode", "NmlTree", "NodeTable"]

CHUNK = 1 << 20
MAX_INT = 2**53 - 1  # ids and times must be exact in JavaScript (and fit int64)
BLOCK_PIECE = 8 << 20  # a long <nodes> block goes to the fast reader in pieces of about this


class NmlError(SkeletonError):
    code = "invalid_nml"


@dataclass(slots=True)
class NmlTree:
    id: int
    name: str = ""
    color: tuple[float, ...] = (1.0, 0.0, 0.0, 1.0)
    group_id: int | None = None
    is_visible: bool = True
    type: str = "DEFAULT"
    nodes: NodeTable = field(default_factory=NodeTable.empty)
    #: (source, target) node ids, shape (n, 2), int64.
    edges: np.ndarray = field(default_factory=lambda: edge_array([]))
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class NmlGroup:
    id: int
    name: str
    parent_id: int | None
    is_expanded: bool = True


@dataclass(slots=True)
class NmlBox:
    id: int
    name: str
    top_left: tuple[float, ...]
    size: tuple[float, ...]
    color: tuple[float, ...]
    is_visible: bool


@dataclass(slots=True)
class Nml:
    name: str = ""
    description: str = ""
    voxel_size: tuple[float, ...] | None = None
    unit: str = "nanometer"
    offset: tuple[float, ...] = (0.0, 0.0, 0.0)
    time: int = 0
    edit_position: tuple[float, ...] | None = None
    active_node: int | None = None
    trees: list[NmlTree] = field(default_factory=list)
    comments: list[tuple[int, str]] = field(default_factory=list)
    branchpoints: list[tuple[int, int]] = field(default_factory=list)
    groups: list[NmlGroup] = field(default_factory=list)
    boxes: list[NmlBox] = field(default_factory=list)

    @property
    def node_count(self) -> int:
        return sum(len(t.nodes) for t in self.trees)


# -- reading ---------------------------------------------------------------------


class _Reader:
    def __init__(self) -> None:
        self.nml = Nml()
        self.parser = expat.ParserCreate()
        self.parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self.parser.buffer_text = True
        self.parser.StartDoctypeDeclHandler = self._doctype
        self.parser.EntityDeclHandler = self._entity
        self.parser.ExternalEntityRefHandler = self._external
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.stack: list[str] = []
        self.tree: NmlTree | None = None
        # The current tree's nodes and edges: tables from fast blocks, then
        # what the exact reader read element by element.
        self.node_parts: list[NodeTable] = []
        self.slow_nodes: list[NmlNode] = []
        self.edge_parts: list[np.ndarray] = []
        self.slow_edges: list[tuple[int, int]] = []
        self.group_stack: list[int] = []
        self.node_ids: set[int] = set()
        self.seen_root = False
        # Block splitting (see feed): the element whose content is being
        # collected for the fast reader, and that content so far.
        self.block: str | None = None
        self.block_slow = False
        self.pending: list[bytes] = []
        self.pending_size = 0

    # security
    def _doctype(self, *args: Any) -> None:
        raise self.error(
            "DOCTYPE", "DTDs are not allowed in NML (no entities are expanded or fetched)"
        )

    def _entity(self, *args: Any) -> None:
        raise self.error("ENTITY", "entity declarations are not allowed")

    def _external(self, *args: Any) -> int:
        raise self.error("ENTITY", "external entities are not allowed")

    def error(self, element: str, message: str) -> NmlError:
        line = self.parser.CurrentLineNumber
        return NmlError(f"line {line}, <{element}>: {message}", line=line, element=element)

    # attribute helpers
    def _num(
        self, el: str, attrs: dict[str, str], name: str, default: float | None = None
    ) -> float:
        raw = attrs.get(name)
        if raw is None:
            return self._default(el, name, default)
        try:
            value = float(raw)
        except ValueError:
            raise self.error(el, f"attribute {name!r} is not a number: {raw[:40]!r}") from None
        if not math.isfinite(value):
            raise self.error(el, f"attribute {name!r} is not finite: {raw[:40]!r}")
        return value

    def _int(self, el: str, attrs: dict[str, str], name: str, default: int | None = None) -> int:
        raw = attrs.get(name)
        if raw is None:
            return self._default(el, name, default)
        try:
            number = int(raw)
        except ValueError:
            try:
                value = float(raw)  # "3.0" is an integer written as a float
            except ValueError:
                value = math.nan
            if not value.is_integer():
                raise self.error(
                    el, f"attribute {name!r} is not an integer: {raw[:40]!r}"
                ) from None
            number = int(value)
        if not -MAX_INT <= number <= MAX_INT:
            raise self.error(el, f"attribute {name!r} is out of range: {raw[:40]!r}")
        return number

    def _default(self, el: str, name: str, default: Any) -> Any:
        if default is None:
            raise self.error(el, f"missing attribute {name!r}")
        return default

    @staticmethod
    def _bool(attrs: dict[str, str], name: str, default: bool) -> bool:
        raw = attrs.get(name)
        return default if raw is None else raw.strip().lower() in ("true", "1")

    def _color(self, el: str, attrs: dict[str, str]) -> tuple[float, ...]:
        return (
            self._num(el, attrs, "color.r", 1.0),
            self._num(el, attrs, "color.g", 0.0),
            self._num(el, attrs, "color.b", 0.0),
            self._num(el, attrs, "color.a", 1.0),
        )

    # elements
    def _start(self, name: str, attrs: dict[str, str]) -> None:
        parent = self.stack[-1] if self.stack else None
        self.stack.append(name)
        nml = self.nml
        if parent is None:
            if name != "things":
                raise self.error(name, "the root element of an NML file is <things>")
            self.seen_root = True
            return
        if name == "node" and parent == "nodes" and self.tree is not None:
            node = self._fast_node(attrs) or self._checked_node(name, attrs)
            if node.id in self.node_ids:
                raise self.error(name, f"duplicate node id {node.id}")
            self.node_ids.add(node.id)
            self.slow_nodes.append(node)
        elif name == "edge" and parent == "edges" and self.tree is not None:
            source, target = self._int(name, attrs, "source"), self._int(name, attrs, "target")
            if source == target:
                raise self.error(name, f"self-edge on node {source}")
            self.slow_edges.append((source, target))
        elif name == "thing":
            tree_type = attrs.get("type", "DEFAULT")
            if tree_type not in ("DEFAULT", "AGGLOMERATE"):
                raise self.error(name, f"unknown tree type {tree_type!r}")
            group = attrs.get("groupId")
            self.tree = NmlTree(
                self._int(name, attrs, "id"),
                attrs.get("name", ""),
                self._color(name, attrs),
                self._int(name, attrs, "groupId") if group not in (None, "") else None,
                self._bool(attrs, "isVisible", True),
                tree_type,
            )
        elif name == "metadataEntry" and self.tree is not None:
            self._metadata(name, attrs, self.tree.metadata)
        elif name == "comment" and parent == "comments":
            text = attrs.get("content")
            if text is None:
                raise self.error(name, "missing attribute 'content'")
            nml.comments.append((self._int(name, attrs, "node"), text))
        elif name == "branchpoint" and parent == "branchpoints":
            nml.branchpoints.append(
                (self._int(name, attrs, "id"), self._int(name, attrs, "time", 0))
            )
        elif name == "group" and parent in ("groups", "group") and "volume" not in self.stack:
            # (a <volume>'s <segments> have groups of their own: not skeleton groups)
            group_id = self._int(name, attrs, "id")
            parent_id = self.group_stack[-1] if parent == "group" and self.group_stack else None
            nml.groups.append(
                NmlGroup(
                    group_id,
                    attrs.get("name", ""),
                    parent_id,
                    self._bool(attrs, "isExpanded", True),
                )
            )
            self.group_stack.append(group_id)
        elif parent == "parameters":
            self._parameter(name, attrs)

    @staticmethod
    def _fast_node(attrs: dict[str, str]) -> NmlNode | None:
        """The common, well-formed node in one go (about twice as fast as the
        checked path); anything unusual returns None and is read by
        :meth:`_checked_node`, which names the bad attribute."""
        get = attrs.get
        try:
            x, y, z = float(attrs["x"]), float(attrs["y"]), float(attrs["z"])
            radius = float(get("radius", 1.0))
            rot = (float(get("rotX", 0.0)), float(get("rotY", 0.0)), float(get("rotZ", 0.0)))
            node = NmlNode(
                int(attrs["id"]),
                x,
                y,
                z,
                radius,
                rot,
                int(get("inVp", 0)),
                int(get("inMag", 1)),
                int(get("bitDepth", 8)),
                get("interpolation", "false").strip().lower() in ("true", "1"),
                int(get("time", 0)),
            )
        except (KeyError, ValueError):
            return None
        if not math.isfinite(x + y + z + radius + rot[0] + rot[1] + rot[2]):
            return None
        if not (-MAX_INT <= node.id <= MAX_INT and -MAX_INT <= node.time <= MAX_INT):
            return None
        return node

    def _checked_node(self, name: str, attrs: dict[str, str]) -> NmlNode:
        return NmlNode(
            self._int(name, attrs, "id"),
            self._num(name, attrs, "x"),
            self._num(name, attrs, "y"),
            self._num(name, attrs, "z"),
            self._num(name, attrs, "radius", 1.0),
            (
                self._num(name, attrs, "rotX", 0.0),
                self._num(name, attrs, "rotY", 0.0),
                self._num(name, attrs, "rotZ", 0.0),
            ),
            self._int(name, attrs, "inVp", 0),
            self._int(name, attrs, "inMag", 1),
            self._int(name, attrs, "bitDepth", 8),
            self._bool(attrs, "interpolation", False),
            self._int(name, attrs, "time", 0),
        )

    def _end(self, name: str) -> None:
        self.stack.pop()
        if name == "thing" and self.tree is not None:
            tree = self.tree
            tree.nodes = NodeTable.concat([*self.node_parts, NodeTable.from_nodes(self.slow_nodes)])
            tree.edges = np.concatenate([*self.edge_parts, edge_array(self.slow_edges)])
            self.node_parts, self.slow_nodes, self.edge_parts, self.slow_edges = [], [], [], []
            self.nml.trees.append(tree)
            self.tree = None
        elif name == "group" and self.group_stack and "volume" not in self.stack:
            self.group_stack.pop()

    def _metadata(self, el: str, attrs: dict[str, str], into: dict[str, Any]) -> None:
        key = attrs.get("key")
        if not key:
            raise self.error(el, "missing attribute 'key'")
        if "stringValue" in attrs:
            into[key] = attrs["stringValue"]
        elif "numberValue" in attrs:
            number = self._num(el, attrs, "numberValue")
            into[key] = (
                int(number) if number.is_integer() and "." not in attrs["numberValue"] else number
            )
        elif "boolValue" in attrs:
            into[key] = self._bool(attrs, "boolValue", False)
        elif "stringListValue-0" in attrs:
            values = []
            i = 0
            while f"stringListValue-{i}" in attrs:
                values.append(attrs[f"stringListValue-{i}"])
                i += 1
            into[key] = values
        else:
            into[key] = None

    def _parameter(self, name: str, attrs: dict[str, str]) -> None:
        nml = self.nml
        if name == "experiment":
            nml.name = attrs.get("name", "")
            nml.description = attrs.get("description", "")
        elif name == "scale":
            nml.voxel_size = (
                self._num(name, attrs, "x"),
                self._num(name, attrs, "y"),
                self._num(name, attrs, "z"),
            )
            nml.unit = attrs.get("unit", "nanometer")
        elif name == "offset":
            nml.offset = (
                self._num(name, attrs, "x", 0),
                self._num(name, attrs, "y", 0),
                self._num(name, attrs, "z", 0),
            )
        elif name == "time":
            nml.time = self._int(name, attrs, "ms", 0)
        elif name == "editPosition":
            nml.edit_position = (
                self._num(name, attrs, "x"),
                self._num(name, attrs, "y"),
                self._num(name, attrs, "z"),
            )
        elif name == "activeNode":
            nml.active_node = self._int(name, attrs, "id")
        elif name in ("userBoundingBox", "taskBoundingBox"):
            nml.boxes.append(
                NmlBox(
                    self._int(name, attrs, "id", len(nml.boxes) + 1),
                    attrs.get("name", "task bounding box" if name == "taskBoundingBox" else ""),
                    (
                        self._num(name, attrs, "topLeftX"),
                        self._num(name, attrs, "topLeftY"),
                        self._num(name, attrs, "topLeftZ"),
                    ),
                    (
                        self._num(name, attrs, "width"),
                        self._num(name, attrs, "height"),
                        self._num(name, attrs, "depth"),
                    ),
                    self._color(name, attrs),
                    self._bool(attrs, "isVisible", True),
                )
            )

    def _parse(self, chunk: bytes, final: bool = False) -> None:
        try:
            self.parser.Parse(chunk, final)
        except expat.ExpatError as exc:
            line = exc.lineno
            raise NmlError(
                f"line {line}: not well-formed XML ({expat.ErrorString(exc.code)})",
                line=line,
                element=self.stack[-1] if self.stack else "",
            ) from None
        except (LookupError, UnicodeError, ValueError) as exc:
            # An XML declaration naming an encoding Python does not know (or
            # bytes it cannot decode): found by tests/fuzz/test_upload_fuzz.py.
            raise NmlError(
                f"line {self.parser.CurrentLineNumber}: cannot decode ({exc})",
                line=self.parser.CurrentLineNumber,
                element=self.stack[-1] if self.stack else "",
            ) from None

    # Block splitting. The content of a tree's <nodes> and <edges> elements is
    # cut out of the stream and given to the fast column reader
    # (collab/skeleton/nml_tables.py); expat gets the same number of newlines
    # instead, so its line numbers stay right. Whether a "<nodes>" in the
    # bytes opens a real element (not text in a comment) is decided by expat
    # itself: the bytes up to the tag are parsed first and the element stack
    # must end in thing/nodes. A block the fast reader declines is parsed by
    # expat as usual.

    _OPEN = {b"<nodes>": "nodes", b"<edges>": "edges"}
    _TAIL = 8  # longest tag - 1: bytes kept back in case a tag straddles chunks

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.block is None and self.pending:
            chunk = b"".join(self.pending) + chunk
            self.pending, self.pending_size = [], 0
        while chunk:
            chunk = self._scan(chunk) if self.block is None else self._collect(chunk)

    def _scan(self, chunk: bytes) -> bytes:
        """Outside a block: parse up to the next block's start tag; return the rest."""
        starts = [(at, tag) for tag in self._OPEN if (at := chunk.find(tag)) >= 0]
        if not starts:
            keep = min(self._TAIL, len(chunk))
            self._parse(chunk[: len(chunk) - keep])
            self.pending, self.pending_size = [chunk[len(chunk) - keep :]], keep
            return b""
        at, tag = min(starts)
        end = at + len(tag)
        self._parse(chunk[:end])
        name = self._OPEN[tag]
        if self.stack[-2:] == ["thing", name] and self.tree is not None:
            self.block = name
        return chunk[end:]

    def _collect(self, chunk: bytes) -> bytes:
        """Inside a block: gather its content until the end tag; return what
        follows. A long block is read in pieces of whole elements."""
        close = f"</{self.block}>".encode()
        self.pending.append(chunk)
        self.pending_size += len(chunk)
        found = close in chunk or (
            len(self.pending) > 1 and close in self.pending[-2][-len(close) :] + chunk[: len(close)]
        )
        if not found and self.pending_size < BLOCK_PIECE:
            return b""
        data = b"".join(self.pending)
        self.pending, self.pending_size = [], 0
        if not found:
            cut = data.rfind(b">") + 1
            if cut:
                self._block(data[:cut])
            if data[cut:]:
                self.pending, self.pending_size = [data[cut:]], len(data) - cut
            return b""
        at = data.index(close)
        self._block(data[:at])
        self.block, self.block_slow = None, False
        return data[at:]

    def _block(self, content: bytes) -> None:
        if not self.block_slow and content.strip():
            if self.block == "nodes":
                table = read_nodes(content)
                if table is not None:
                    ids = set(table.id.tolist())
                    if ids.isdisjoint(self.node_ids):
                        self.node_ids |= ids
                        self.node_parts.append(table)
                        self._parse(b"\n" * content.count(b"\n"))
                        return
            else:
                edges = read_edges(content)
                if edges is not None:
                    self.edge_parts.append(edges)
                    self._parse(b"\n" * content.count(b"\n"))
                    return
            # Declined: expat reads the rest of this block (it may now be
            # inside a comment, where the fast reader must not look).
            self.block_slow = True
        self._parse(content)

    def finish(self) -> Nml:
        if self.pending:
            # An unterminated block or the kept-back tail: expat says what is wrong.
            data = b"".join(self.pending)
            self.pending, self.pending_size, self.block = [], 0, None
            self.block_slow = False
            self._parse(data)
        self._parse(b"", True)
        if not self.seen_root:
            raise NmlError(
                "the file is empty: an NML file has a <things> root", line=0, element="things"
            )
        self._check_references()
        return self.nml

    def _check_references(self) -> None:
        nml = self.nml
        tree_ids = [t.id for t in nml.trees]
        if len(set(tree_ids)) != len(tree_ids):
            raise NmlError("duplicate tree (thing) ids", line=0, element="thing")
        # Every node id with its tree's position, sorted by id, for lookups.
        ids = np.concatenate([t.nodes.id for t in nml.trees] or [np.empty(0, np.int64)])
        owner = np.repeat(np.arange(len(nml.trees)), [len(t.nodes) for t in nml.trees])
        order = np.argsort(ids, kind="stable")
        ids, owner = ids[order], owner[order]

        def where(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Each wanted id's tree position (-1: no such node)."""
            at = np.searchsorted(ids, wanted).clip(0, max(len(ids) - 1, 0))
            found = ids[at] == wanted if len(ids) else np.zeros(len(wanted), bool)
            return np.where(found, owner[at] if len(ids) else -1, -1), found

        for k, tree in enumerate(nml.trees):
            if not len(tree.edges):
                continue
            trees_of, found = where(tree.edges.ravel())
            bad = ~found | (trees_of != k)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                source, target = (int(v) for v in tree.edges[i // 2])
                end = int(tree.edges.ravel()[i])
                if not found[i]:
                    raise NmlError(
                        f"<thing id={tree.id}>: edge {source}-{target} names node {end}, which does not exist",
                        line=0,
                        element="edge",
                    )
                raise NmlError(
                    f"<thing id={tree.id}>: edge {source}-{target} joins nodes of different trees",
                    line=0,
                    element="edge",
                )
        for kind, pairs in (("comment", nml.comments), ("branchpoint", nml.branchpoints)):
            if not pairs:
                continue
            _, found = where(np.array([p[0] for p in pairs], dtype=np.int64))
            if not found.all():
                node_id = pairs[int(np.flatnonzero(~found)[0])][0]
                raise NmlError(
                    f"{kind} on node {node_id}, which does not exist", line=0, element=kind
                )
        group_ids = {g.id for g in nml.groups}
        if len(group_ids) != len(nml.groups):
            raise NmlError("duplicate group ids", line=0, element="group")
        for tree in nml.trees:
            if tree.group_id is not None and tree.group_id not in group_ids:
                raise NmlError(
                    f"<thing id={tree.id}> is in group {tree.group_id}, which does not exist",
                    line=0,
                    element="thing",
                )


def read(source: IO[bytes] | bytes) -> Nml:
    """Parse an NML document (bytes or a binary stream, read in 1 MiB chunks)."""
    reader = _Reader()
    if isinstance(source, bytes | bytearray | memoryview):
        source = io.BytesIO(bytes(source))
    while chunk := source.read(CHUNK):
        reader.feed(chunk)
    return reader.finish()


def read_zip(data: bytes | IO[bytes], max_nml_bytes: int) -> Nml:
    """A WEBKNOSSOS download: a zip whose one top-level ``.nml`` is the skeleton.

    The .nml may hold at most ``max_nml_bytes`` once inflated (the server
    passes ``COLLAB_MAX_BODY_BYTES``, what an NML sent as it is may hold): a
    zip bomb is refused from its declared size, and one that lies about its
    size stops at it (zipfile reads no further and then fails the CRC)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except zipfile.BadZipFile:
        raise NmlError("not a zip file", line=0, element="") from None
    except Exception as exc:
        # zipfile reading untrusted bytes raises more than BadZipFile: a member
        # name flagged UTF-8 that is not, an unknown "version needed to
        # extract" (NotImplementedError), struct errors… (upload fuzzer).
        raise NmlError(
            f"the zip is damaged: {type(exc).__name__}: {exc}", line=0, element=""
        ) from None
    with archive:
        names = [
            i
            for i in archive.infolist()
            if i.filename.lower().endswith(".nml") and "/" not in i.filename.strip("/")
        ]
        if len(names) != 1:
            raise NmlError(
                f"the zip must hold exactly one top-level .nml file, found {len(names)}",
                line=0,
                element="",
            )
        info = names[0]
        if info.file_size > max_nml_bytes:
            raise PayloadTooLarge(
                f"the .nml inside the zip inflates to {info.file_size} bytes, "
                f"over the {max_nml_bytes}-byte limit"
            )
        if info.flag_bits & 0x1:
            raise NmlError("the .nml inside the zip is encrypted", line=0, element="")
        try:
            with archive.open(info) as stream:
                return read(stream)
        except (
            zipfile.BadZipFile,
            EOFError,
            OSError,
            zlib.error,
            NotImplementedError,
            UnicodeError,
            struct.error,
            RuntimeError,  # zipfile's "password required" for a flag it then finds
        ) as exc:  # what zipfile and zlib raise on damaged bytes
            raise NmlError(f"the zip is damaged: {exc}", line=0, element="") from None


# -- writing -----------------------------------------------------------------------


def fmt(value: float) -> str:
    """Numbers as NML writes them: integers without a fraction, else the shortest repr."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


#: Characters XML 1.0 cannot hold at all (not even escaped): written as U+FFFD.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _esc(text: str) -> str:
    if _NOT_XML.search(text):
        text = _NOT_XML.sub("\ufffd", text)
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
        .replace("\t", "&#9;")
    )


def _attrs(pairs: Iterable[tuple[str, Any]]) -> str:
    out = []
    for key, value in pairs:
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = fmt(value)
        else:
            text = _esc(str(value))
        out.append(f' {key}="{text}"')
    return "".join(out)


def write(nml: Nml) -> Iterator[str]:
    """The NML text in pieces, deterministic for the same input."""
    yield '<?xml version="1.0" encoding="UTF-8"?>\n<things>\n  <parameters>\n'
    yield f"    <experiment{_attrs([('name', nml.name), ('description', nml.description)])} />\n"
    # Always a scale: webknossos.Skeleton.load refuses an NML without one
    # (an annotation with no dataset and no voxel size gets 1 nm).
    x, y, z = nml.voxel_size if nml.voxel_size is not None else (1.0, 1.0, 1.0)
    yield f"    <scale{_attrs([('x', x), ('y', y), ('z', z), ('unit', nml.unit)])} />\n"
    ox, oy, oz = nml.offset
    yield f"    <offset{_attrs([('x', ox), ('y', oy), ('z', oz)])} />\n"
    yield f"    <time{_attrs([('ms', nml.time)])} />\n"
    if nml.edit_position is not None:
        ex, ey, ez = nml.edit_position
        yield f"    <editPosition{_attrs([('x', ex), ('y', ey), ('z', ez)])} />\n"
    if nml.active_node is not None:
        yield f"    <activeNode{_attrs([('id', nml.active_node)])} />\n"
    for box in nml.boxes:
        r, g, b, a = box.color
        yield (
            f"    <userBoundingBox{_attrs([('id', box.id), ('name', box.name), ('isVisible', box.is_visible), ('color.r', r), ('color.g', g), ('color.b', b), ('color.a', a), ('topLeftX', box.top_left[0]), ('topLeftY', box.top_left[1]), ('topLeftZ', box.top_left[2]), ('width', box.size[0]), ('height', box.size[1]), ('depth', box.size[2])])} />\n"
        )
    yield "  </parameters>\n"
    for tree in nml.trees:
        r, g, b, a = tree.color
        yield f"  <thing{_attrs([('id', tree.id), ('color.r', r), ('color.g', g), ('color.b', b), ('color.a', a), ('name', tree.name), ('groupId', tree.group_id), ('isVisible', tree.is_visible), ('type', tree.type)])}>\n"
        yield "    <nodes>\n"
        yield from _node_lines(tree.nodes)
        yield "    </nodes>\n    <edges>\n"
        yield from _edge_lines(tree.edges)
        yield "    </edges>\n"
        if tree.metadata:
            yield "    <metadata>\n"
            for key in sorted(tree.metadata):
                yield f"      <metadataEntry{_attrs(_metadata_attrs(key, tree.metadata[key]))} />\n"
            yield "    </metadata>\n"
        else:
            yield "    <metadata />\n"
        yield "  </thing>\n"
    yield "  <branchpoints>\n"
    yield "".join(f'    <branchpoint id="{n}" time="{t}" />\n' for n, t in nml.branchpoints)
    yield "  </branchpoints>\n  <comments>\n"
    yield "".join(
        f"    <comment{_attrs([('node', n), ('content', c)])} />\n" for n, c in nml.comments
    )
    yield "  </comments>\n  <groups>\n"
    yield from _write_groups(nml.groups)
    yield "  </groups>\n</things>\n"


_NODE_LINE = (
    '      <node id="%s" radius="%s" x="%s" y="%s" z="%s" rotX="%s" rotY="%s" rotZ="%s" '
    'inVp="%s" inMag="%s" bitDepth="%s" interpolation="%s" time="%s" />\n'
)
_LINES_PER_PIECE = 8192


def _texts(column: np.ndarray, integer: bool = False) -> Iterable[str]:
    """A column's values as NML writes them (see :func:`fmt`), column-wise."""
    if len(column) and (column == column[0]).all():
        return itertools.repeat(str(int(column[0])) if integer else fmt(float(column[0])))
    if integer:
        return map(str, column.tolist())
    whole = (column == np.round(column)) & (np.abs(column) < 1e15)
    if whole.all():
        return map(str, column.astype(np.int64).tolist())
    return [fmt(v) for v in column.tolist()]


def _node_lines(nodes: NodeTable) -> Iterator[str]:
    n = len(nodes)
    columns = zip(  # noqa: B905 (constant columns are endless repeats)
        map(str, nodes.id.tolist()),
        _texts(nodes.radius),
        _texts(nodes.x),
        _texts(nodes.y),
        _texts(nodes.z),
        _texts(nodes.rx),
        _texts(nodes.ry),
        _texts(nodes.rz),
        _texts(nodes.viewport, True),
        _texts(nodes.mag, True),
        _texts(nodes.bit_depth, True),
        np.where(nodes.interpolation, "true", "false").tolist(),
        _texts(nodes.time, True),
    )
    lines = map(_NODE_LINE.__mod__, columns)
    for _ in range(0, n, _LINES_PER_PIECE):
        yield "".join(itertools.islice(lines, _LINES_PER_PIECE))


def _edge_lines(edges: np.ndarray) -> Iterator[str]:
    pairs = edges.tolist()
    for start in range(0, len(pairs), _LINES_PER_PIECE):
        yield "".join(
            f'      <edge source="{s}" target="{t}" />\n'
            for s, t in pairs[start : start + _LINES_PER_PIECE]
        )


def _metadata_attrs(key: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, bool):
        return [("key", key), ("boolValue", value)]
    if isinstance(value, int | float):
        return [("key", key), ("numberValue", value)]
    if isinstance(value, list):
        return [("key", key), *((f"stringListValue-{i}", str(v)) for i, v in enumerate(value))]
    return [("key", key), ("stringValue", "" if value is None else str(value))]


def _write_groups(groups: list[NmlGroup]) -> Iterator[str]:
    children: dict[int | None, list[NmlGroup]] = {}
    for g in groups:
        children.setdefault(g.parent_id, []).append(g)

    def walk(parent: int | None, depth: int) -> Iterator[str]:
        pad = "  " * (depth + 2)
        for g in children.get(parent, []):
            attrs = _attrs([("id", g.id), ("name", g.name), ("isExpanded", g.is_expanded)])
            if children.get(g.id):
                yield f"{pad}<group{attrs}>\n"
                yield from walk(g.id, depth + 1)
                yield f"{pad}</group>\n"
            else:
                yield f"{pad}<group{attrs} />\n"

    yield from walk(None, 0)
