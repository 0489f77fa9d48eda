"""Task specifications from JSON objects and CSV rows — pure.

A broken element raises :class:`InvalidTask` whose message starts with
``tasks[i]`` (JSON) or ``row N`` (CSV, counting the header as row 1) and
whose ``index`` is the element's position; nothing of the batch is stored.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any

from collab.errors import InvalidTask

MAX_TASKS = 100_000
MAX_INSTANCES = 10_000
MAX_COORD = 1 << 40
CSV_COLUMNS = (
    "project",
    "taskType",
    "dataset",
    "x",
    "y",
    "z",
    "experienceDomain",
    "experienceMin",
    "instances",
    "rotX",
    "rotY",
    "rotZ",
    "baseAnnotation",
)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    project: int
    task_type: int
    dataset: str | None
    position: tuple[int, int, int]
    rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    bounding_box: dict[str, list[int]] | None = None
    base_annotation: int | None = None
    experience_domain: str | None = None
    experience_min: int = 0
    instances: int = 1


class _Bad(ValueError):
    pass


def _int(value: Any, name: str, minimum: int = 0, maximum: int = MAX_COORD) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _Bad(f"{name} must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise _Bad(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _vec(value: Any, name: str, minimum: int = 0) -> tuple[int, int, int]:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise _Bad(f"{name} must be [x, y, z], got {value!r}")
    x, y, z = (_int(v, name, minimum) for v in value)
    return x, y, z


def _rotation(value: Any) -> tuple[float, float, float]:
    if value is None:
        return (0.0, 0.0, 0.0)
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise _Bad(f"rotation must be [x, y, z] degrees, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise _Bad(f"rotation must hold finite numbers, got {value!r}")
        out.append(float(v))
    return out[0], out[1], out[2]


def _text(value: Any, name: str, limit: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise _Bad(f"{name} must be a non-empty string of at most {limit} characters")
    return value


def task_from_json(obj: Any) -> TaskSpec:
    if not isinstance(obj, dict):
        raise _Bad("must be an object")
    known = {
        "project",
        "taskType",
        "dataset",
        "position",
        "rotation",
        "boundingBox",
        "baseAnnotation",
        "experience",
        "instances",
    }
    extra = sorted(set(obj) - known)
    if extra:
        raise _Bad(f"unknown field {extra[0]!r}")
    if "project" not in obj:
        raise _Bad("'project' is required")
    if "taskType" not in obj:
        raise _Bad("'taskType' is required")
    if "position" not in obj:
        raise _Bad("'position' is required")
    dataset = obj.get("dataset")
    box = obj.get("boundingBox")
    bounding_box = None
    if box is not None:
        if not isinstance(box, dict):
            raise _Bad("boundingBox must be {topLeft, size}")
        bounding_box = {
            "topLeft": list(_vec(box.get("topLeft"), "boundingBox.topLeft")),
            "size": list(_vec(box.get("size"), "boundingBox.size", 1)),
        }
    experience = obj.get("experience")
    domain, level = None, 0
    if experience is not None:
        if not isinstance(experience, dict):
            raise _Bad("experience must be {domain, min}")
        domain = _text(experience.get("domain"), "experience.domain", 100)
        level = _int(experience.get("min", 0), "experience.min", 0, 1_000_000)
    base = obj.get("baseAnnotation")
    return TaskSpec(
        project=_int(obj["project"], "project", 1, 2**62),
        task_type=_int(obj["taskType"], "taskType", 1, 2**62),
        dataset=None if dataset is None else _text(dataset, "dataset", 100),
        position=_vec(obj["position"], "position"),
        rotation=_rotation(obj.get("rotation")),
        bounding_box=bounding_box,
        base_annotation=None if base is None else _int(base, "baseAnnotation", 1, 2**62),
        experience_domain=domain,
        experience_min=level,
        instances=_int(obj.get("instances", 1), "instances", 1, MAX_INSTANCES),
    )


def tasks_from_json(body: Any) -> tuple[list[TaskSpec], bool]:
    """Specs of a JSON body (one object or a list); second: whether it was a list."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise InvalidTask("the list of tasks is empty", index=0)
    if len(items) > MAX_TASKS:
        raise InvalidTask(f"at most {MAX_TASKS} tasks per request", index=MAX_TASKS)
    out = []
    for i, item in enumerate(items):
        try:
            out.append(task_from_json(item))
        except _Bad as exc:
            raise InvalidTask(f"tasks[{i}]: {exc}", index=i) from None
    return out, isinstance(body, list)


def _cell(row: dict[str, str], name: str) -> str | None:
    value = (row.get(name) or "").strip()
    return value or None


def _cell_int(row: dict[str, str], name: str) -> int | None:
    value = _cell(row, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise _Bad(f"{name} must be an integer, got {value!r}") from None


def _cell_float(row: dict[str, str], name: str) -> float:
    value = _cell(row, name)
    if value is None:
        return 0.0
    try:
        return float(value)
    except ValueError:
        raise _Bad(f"{name} must be a number, got {value!r}") from None


def tasks_from_csv(text: str) -> list[TaskSpec]:
    """Specs of a CSV with a header row naming :data:`CSV_COLUMNS` (any order;
    project, taskType, x, y, z required)."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in ("project", "taskType", "x", "y", "z") if c not in header]
    if missing:
        raise InvalidTask(f"row 1: the header lacks {', '.join(missing)}", index=0)
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if unknown:
        raise InvalidTask(f"row 1: unknown column {unknown[0]!r}", index=0)
    out = []
    for i, row in enumerate(reader):
        line = i + 2
        try:
            if None in row:
                raise _Bad("has more cells than the header")
            obj: dict[str, Any] = {
                "project": _cell_int(row, "project"),
                "taskType": _cell_int(row, "taskType"),
                "position": [_cell_int(row, "x"), _cell_int(row, "y"), _cell_int(row, "z")],
                "rotation": [
                    _cell_float(row, "rotX"),
                    _cell_float(row, "rotY"),
                    _cell_float(row, "rotZ"),
                ],
                "instances": _cell_int(row, "instances") or 1,
            }
            if obj["project"] is None or obj["taskType"] is None:
                raise _Bad("project and taskType are required")
            if _cell(row, "dataset"):
                obj["dataset"] = _cell(row, "dataset")
            if _cell(row, "baseAnnotation"):
                obj["baseAnnotation"] = _cell_int(row, "baseAnnotation")
            if _cell(row, "experienceDomain"):
                obj["experience"] = {
                    "domain": _cell(row, "experienceDomain"),
                    "min": _cell_int(row, "experienceMin") or 0,
                }
            out.append(task_from_json(obj))
        except _Bad as exc:
            raise InvalidTask(f"row {line}: {exc}", index=i, row=line) from None
        if len(out) > MAX_TASKS:
            raise InvalidTask(f"at most {MAX_TASKS} tasks per request", index=i, row=line)
    if not out:
        raise InvalidTask("the CSV holds no tasks", index=0)
    return out
