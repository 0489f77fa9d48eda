"""The skeleton document's entities as plain, validated values. Pure.

The document layout is fixed by the public contract (docs/schema.md). Readers
here never trust the document: every field is parsed with a default, so a
document written by a buggy client (or an unrepaired concurrent edit) is read
deterministically instead of crashing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from collab.errors import Unprocessable

#: The document's top-level maps (../shared/contract.md, "The skeleton
#: document"); trees, groups and bounding boxes hold nested Y.Maps.
ROOTS = ("meta", "trees", "nodes", "edges", "comments", "branchpoints", "groups", "boundingBoxes")
NESTED_ROOTS = ("trees", "groups", "boundingBoxes")
TREE_TYPES = ("DEFAULT", "AGGLOMERATE")
MAX_ID_LENGTH = 64
DEFAULT_COLOR = (1.0, 0.0, 0.0, 1.0)


class SkeletonError(Unprocessable):
    """An edit or an import the skeleton cannot take (422)."""

    code = "invalid_skeleton"


class UnknownEntity(SkeletonError):
    """An edit names a tree, node, group or bounding box that does not exist."""

    status = 404
    code = "unknown_entity"


# -- parsing helpers (strict: for input) --------------------------------------


def check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH or "," in value:
        raise SkeletonError(
            f"{what} id must be a non-empty string of at most {MAX_ID_LENGTH} characters without commas, got {value!r}"
        )
    return value


def check_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SkeletonError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def check_vec(value: Any, what: str, n: int = 3) -> list[float]:
    if not isinstance(value, list | tuple) or len(value) != n:
        raise SkeletonError(f"{what} must be a list of {n} numbers, got {value!r}")
    return [check_number(v, what) for v in value]


def check_color(value: Any) -> list[float]:
    color = check_vec(value, "color", 4)
    if any(c < 0 or c > 1 for c in color):
        raise SkeletonError(f"color components must be within 0..1, got {value!r}")
    return color


def check_int(value: Any, what: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not float(value).is_integer()
    ):
        raise SkeletonError(f"{what} must be an integer, got {value!r}")
    return int(value)


# -- tolerant readers (for the document) ---------------------------------------


def _num(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)


def _vec(value: Any, n: int, default: tuple[float, ...]) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or len(value) != n:
        return default
    return tuple(_num(v, d) for v, d in zip(value, default, strict=True))


def _int(value: Any, default: int) -> int:
    number = _num(value, float(default))
    return int(number) if number.is_integer() and abs(number) < _INT64 else default


#: Integers beyond int64 read as the default (NML readers use 64-bit integers).
_INT64 = 2.0**63


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    tree_id: str
    position: tuple[float, ...]
    radius: float = 1.0
    rotation: tuple[float, ...] = (0.0, 0.0, 0.0)
    viewport: int = 0
    mag: int = 1
    bit_depth: int = 8
    interpolation: bool = False
    time: int = 0

    @classmethod
    def read(cls, node_id: str, value: Any) -> Node:
        v = value if isinstance(value, dict) else {}
        return cls(
            id=node_id,
            tree_id=_str(v.get("treeId")),
            position=_vec(v.get("position"), 3, (0.0, 0.0, 0.0)),
            radius=_num(v.get("radius"), 1.0),
            rotation=_vec(v.get("rotation"), 3, (0.0, 0.0, 0.0)),
            viewport=_int(v.get("viewport"), 0),
            mag=_int(v.get("mag"), 1),
            bit_depth=_int(v.get("bitDepth"), 8),
            interpolation=bool(v.get("interpolation", False)),
            time=_int(v.get("time"), 0),
        )

    def to_value(self) -> dict[str, Any]:
        return {
            "treeId": self.tree_id,
            "position": list(self.position),
            "radius": self.radius,
            "rotation": list(self.rotation),
            "viewport": self.viewport,
            "mag": self.mag,
            "bitDepth": self.bit_depth,
            "interpolation": self.interpolation,
            "time": self.time,
        }


@dataclass(frozen=True, slots=True)
class Tree:
    id: str
    name: str = ""
    color: tuple[float, ...] = DEFAULT_COLOR
    group_id: str | None = None
    is_visible: bool = True
    type: str = "DEFAULT"
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, tree_id: str, fields: Any) -> Tree:
        f = fields if isinstance(fields, dict) else {}
        metadata = f.get("metadata")
        return cls(
            id=tree_id,
            name=_str(f.get("name")),
            color=_vec(f.get("color"), 4, DEFAULT_COLOR),
            group_id=_opt_str(f.get("groupId")),
            is_visible=bool(f.get("isVisible", True)),
            type=str(f["type"]) if f.get("type") in TREE_TYPES else "DEFAULT",
            metadata=metadata if isinstance(metadata, dict) else {},
        )

    def to_fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "color": list(self.color),
            "groupId": self.group_id,
            "isVisible": self.is_visible,
            "type": self.type,
            "metadata": self.metadata,
        }


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str = ""
    parent_id: str | None = None
    is_expanded: bool = True

    @classmethod
    def read(cls, group_id: str, fields: Any) -> Group:
        f = fields if isinstance(fields, dict) else {}
        return cls(
            id=group_id,
            name=_str(f.get("name")),
            parent_id=_opt_str(f.get("parentId")),
            is_expanded=bool(f.get("isExpanded", True)),
        )

    def to_fields(self) -> dict[str, Any]:
        return {"name": self.name, "parentId": self.parent_id, "isExpanded": self.is_expanded}


@dataclass(frozen=True, slots=True)
class BoundingBox:
    id: str
    name: str = ""
    top_left: tuple[float, ...] = (0.0, 0.0, 0.0)
    size: tuple[float, ...] = (0.0, 0.0, 0.0)
    color: tuple[float, ...] = DEFAULT_COLOR
    is_visible: bool = True

    @classmethod
    def read(cls, box_id: str, fields: Any) -> BoundingBox:
        f = fields if isinstance(fields, dict) else {}
        return cls(
            id=box_id,
            name=_str(f.get("name")),
            top_left=_vec(f.get("topLeft"), 3, (0.0, 0.0, 0.0)),
            size=_vec(f.get("size"), 3, (0.0, 0.0, 0.0)),
            color=_vec(f.get("color"), 4, DEFAULT_COLOR),
            is_visible=bool(f.get("isVisible", True)),
        )

    def to_fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "topLeft": list(self.top_left),
            "size": list(self.size),
            "color": list(self.color),
            "isVisible": self.is_visible,
        }


def edge_key(a: str, b: str) -> str:
    """The stored key of the undirected edge a–b: ``"a,b"`` (the writer's order)."""
    return f"{a},{b}"


def split_edge(key: str) -> tuple[str, str] | None:
    parts = key.split(",")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]
