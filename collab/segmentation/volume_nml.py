"""The ``<volume>`` elements of an NML: WEBKNOSSOS's volume layers, their
segments and segment groups. Pure: read from bytes, written as text.

WEBKNOSSOS writes one ``<volume>`` per volume layer at the end of
``<things>`` (its ``NmlWriter``)::

    <volume id="0" name="Volume" location="data_Volume.zip" format="zarr3"
            fallbackLayer="segmentation" largestSegmentId="7">
      <segments>
        <segment id="7" name="bouton" created="…" anchorPositionX="8" …
                 color.r="0.1" … groupId="3"><metadata>…</metadata></segment>
      </segments>
      <groups><group id="3" name="cells" isExpanded="true">…</group></groups>
    </volume>

The skeleton reader (collab/skeleton/nml.py) skips these; this module
reads nothing else. Files are read with any DOCTYPE refused, as there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from collab.errors import InvalidVolume
from collab.skeleton.nml import _attrs, _metadata_attrs

#: Volume layers one NML may carry.
MAX_LAYERS = 16
#: Segments (of all layers together) one NML may carry.
MAX_SEGMENTS = 100_000
#: Segment groups (of all layers together) one NML may carry.
MAX_GROUPS = 10_000
#: Metadata entries of one segment.
MAX_METADATA = 100
#: Characters kept of a name, a location or a metadata string.
MAX_TEXT = 1000
#: Segment and group ids: exact in JavaScript.
MAX_ID = 2**53 - 1


@dataclass(slots=True)
class SegmentSpec:
    id: int
    name: str | None = None
    color: list[float] | None = None
    anchor: list[int] | None = None
    group_id: int | None = None
    is_visible: bool = True
    created: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class GroupSpec:
    id: int
    name: str
    parent_id: int | None
    is_expanded: bool = True


@dataclass(slots=True)
class VolumeSpec:
    """One ``<volume>`` element."""

    id: int
    name: str
    location: str | None
    fallback: str | None
    format: str | None
    largest_segment_id: int | None
    segments: list[SegmentSpec] = field(default_factory=list)
    groups: list[GroupSpec] = field(default_factory=list)


class _Reader:
    def __init__(self) -> None:
        self.volumes: list[VolumeSpec] = []
        self.parser = expat.ParserCreate()
        self.parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self.parser.StartDoctypeDeclHandler = self._doctype
        self.parser.EntityDeclHandler = self._doctype
        self.parser.ExternalEntityRefHandler = self._external
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.stack: list[str] = []
        self.group_stack: list[int] = []
        self.segments = 0
        self.groups = 0

    def _doctype(self, *args: Any) -> None:
        raise self.error("DOCTYPE", "DTDs are not allowed in NML")

    def _external(self, *args: Any) -> int:
        raise self.error("DOCTYPE", "external entities are not allowed in NML")

    def error(self, element: str, message: str) -> InvalidVolume:
        line = self.parser.CurrentLineNumber
        return InvalidVolume(f"<{element}> (line {line}): {message}", element=element, line=line)

    def _int(
        self, el: str, attrs: dict[str, str], name: str, low: int = 0, high: int = MAX_ID
    ) -> int | None:
        raw = attrs.get(name)
        if raw is None or raw == "":
            return None
        try:
            value = float(raw)
        except ValueError:
            raise self.error(el, f"{name}={raw[:40]!r} is not a number") from None
        if not value.is_integer() or not low <= value <= high:
            raise self.error(el, f"{name}={raw[:40]!r}: expected an integer in [{low}, {high}]")
        return int(value)

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        parent = self.stack[-1] if self.stack else None
        self.stack.append(name)
        if name == "volume" and parent == "things":
            if len(self.volumes) >= MAX_LAYERS:
                raise self.error(name, f"more than {MAX_LAYERS} volume layers")
            vid = self._int(name, attrs, "id")
            if vid is None:
                raise self.error(name, "the id attribute is missing")
            if any(v.id == vid for v in self.volumes):
                raise self.error(name, f"two volume layers have id {vid}")
            self.volumes.append(
                VolumeSpec(
                    id=vid,
                    name=(attrs.get("name") or "Volume")[:MAX_TEXT],
                    location=attrs.get("location") or None,
                    fallback=(attrs.get("fallbackLayer") or None),
                    format=attrs.get("format") or None,
                    largest_segment_id=self._int(name, attrs, "largestSegmentId"),
                )
            )
        elif "volume" not in self.stack:
            return
        elif name == "segment" and parent == "segments":
            self.segments += 1
            if self.segments > MAX_SEGMENTS:
                raise self.error(name, f"more than {MAX_SEGMENTS} segments")
            sid = self._int(name, attrs, "id", 1)
            if sid is None:
                raise self.error(name, "the id attribute is missing")
            volume = self.volumes[-1]
            seg = SegmentSpec(id=sid)
            seg.name = attrs["name"][:MAX_TEXT] if "name" in attrs else None
            if "color.r" in attrs:
                seg.color = [self._unit(name, attrs, f"color.{c}") for c in "rgba"]
            if "anchorPositionX" in attrs:
                seg.anchor = [
                    self._int(name, attrs, f"anchorPosition{c}", 0, 2**31 - 1) or 0 for c in "XYZ"
                ]
            seg.group_id = self._int(name, attrs, "groupId", -1)
            if seg.group_id == -1:
                seg.group_id = None  # WEBKNOSSOS's root group
            seg.is_visible = attrs.get("isVisible", "true").lower() != "false"
            seg.created = self._int(name, attrs, "created")
            volume.segments.append(seg)
        elif name == "metadataEntry" and parent == "metadata" and self.stack[-3] == "segment":
            seg = self.volumes[-1].segments[-1]
            if len(seg.metadata) >= MAX_METADATA:
                raise self.error(name, f"more than {MAX_METADATA} metadata entries")
            key = attrs.get("key")
            if not key:
                raise self.error(name, "the key attribute is missing")
            seg.metadata[key[:MAX_TEXT]] = self._metadata_value(name, attrs)
        elif name == "group" and parent in ("groups", "group"):
            self.groups += 1
            if self.groups > MAX_GROUPS:
                raise self.error(name, f"more than {MAX_GROUPS} segment groups")
            gid = self._int(name, attrs, "id")
            if gid is None:
                raise self.error(name, "the id attribute is missing")
            volume = self.volumes[-1]
            if any(g.id == gid for g in volume.groups):
                raise self.error(name, f"two segment groups have id {gid}")
            volume.groups.append(
                GroupSpec(
                    id=gid,
                    name=attrs.get("name", "")[:MAX_TEXT],
                    parent_id=self.group_stack[-1] if self.group_stack else None,
                    is_expanded=attrs.get("isExpanded", "true").lower() != "false",
                )
            )
            self.group_stack.append(gid)

    def _unit(self, el: str, attrs: dict[str, str], name: str) -> float:
        try:
            value = float(attrs.get(name, "1"))
        except ValueError:
            raise self.error(el, f"{name} is not a number") from None
        if not math.isfinite(value):
            raise self.error(el, f"{name} is not a finite number")
        return min(1.0, max(0.0, value))

    def _metadata_value(self, el: str, attrs: dict[str, str]) -> Any:
        if "stringValue" in attrs:
            return attrs["stringValue"][:MAX_TEXT]
        if "boolValue" in attrs:
            return attrs["boolValue"].lower() == "true"
        if "numberValue" in attrs:
            try:
                value = float(attrs["numberValue"])
            except ValueError:
                raise self.error(el, "numberValue is not a number") from None
            if not math.isfinite(value):
                raise self.error(el, "numberValue is not a finite number")
            return int(value) if value.is_integer() and abs(value) <= MAX_ID else value
        items: list[str] = []
        while f"stringListValue-{len(items)}" in attrs and len(items) < MAX_METADATA:
            items.append(attrs[f"stringListValue-{len(items)}"][:MAX_TEXT])
        return items

    def _end(self, name: str) -> None:
        self.stack.pop()
        if name == "group" and "volume" in self.stack and self.group_stack:
            self.group_stack.pop()

    def finish(self) -> list[VolumeSpec]:
        for volume in self.volumes:
            groups = {g.id for g in volume.groups}
            for seg in volume.segments:
                if seg.group_id is not None and seg.group_id not in groups:
                    seg.group_id = None  # as WEBKNOSSOS shows it: in the root group
        return self.volumes


def read_volumes(stream: Any, chunk: int = 1 << 20) -> list[VolumeSpec]:
    """The ``<volume>`` elements of the NML read from the binary ``stream``."""
    reader = _Reader()
    try:
        while data := stream.read(chunk):
            reader.parser.Parse(data, False)
        reader.parser.Parse(b"", True)
    except expat.ExpatError as exc:
        raise InvalidVolume(f"the NML is not well-formed XML: {exc}") from None
    return reader.finish()


# -- writing -----------------------------------------------------------------------


def write_volumes(volumes: Iterable[VolumeSpec]) -> Iterator[str]:
    """The ``<volume>`` elements as WEBKNOSSOS writes them (to go right
    before ``</things>``)."""
    for v in volumes:
        yield (
            "  <volume"
            + _attrs(
                [
                    ("id", v.id),
                    ("name", v.name),
                    ("location", v.location),
                    ("format", v.format),
                    ("fallbackLayer", v.fallback),
                    ("largestSegmentId", v.largest_segment_id),
                ]
            )
            + ">\n    <segments>\n"
        )
        for s in v.segments:
            pairs: list[tuple[str, Any]] = [("id", s.id), ("name", s.name)]
            if s.created is not None:
                pairs.append(("created", s.created))
            if s.anchor is not None:
                pairs += [(f"anchorPosition{c}", s.anchor[i]) for i, c in enumerate("XYZ")]
            if s.color is not None:
                pairs += [(f"color.{c}", float(s.color[i])) for i, c in enumerate("rgba")]
            pairs += [("groupId", s.group_id), ("isVisible", s.is_visible)]
            if s.metadata:
                yield f"      <segment{_attrs(pairs)}>\n        <metadata>\n"
                for key in sorted(s.metadata):
                    yield f"          <metadataEntry{_attrs(_metadata_attrs(key, s.metadata[key]))} />\n"
                yield "        </metadata>\n      </segment>\n"
            else:
                yield f"      <segment{_attrs(pairs)}>\n        <metadata />\n      </segment>\n"
        yield "    </segments>\n"
        if v.groups:
            yield "    <groups>\n"
            yield from _groups(v.groups)
            yield "    </groups>\n"
        else:
            yield "    <groups />\n"
        yield "  </volume>\n"


def _groups(groups: list[GroupSpec]) -> Iterator[str]:
    children: dict[int | None, list[GroupSpec]] = {}
    for g in groups:
        children.setdefault(g.parent_id, []).append(g)

    def walk(parent: int | None, depth: int, seen: set[int]) -> Iterator[str]:
        pad = "  " * (depth + 3)
        for g in children.get(parent, []):
            if g.id in seen:
                continue  # a cycle: written once
            seen.add(g.id)
            attrs = _attrs([("id", g.id), ("name", g.name), ("isExpanded", g.is_expanded)])
            if children.get(g.id):
                yield f"{pad}<group{attrs}>\n"
                yield from walk(g.id, depth + 1, seen)
                yield f"{pad}</group>\n"
            else:
                yield f"{pad}<group{attrs} />\n"

    yield from walk(None, 0, set())
