"""Reading a document: its JSON view and the entries a transaction touched."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pycrdt import Doc, Map, MapEvent

from collab.document.kinds import KINDS

#: An entry is addressed by a path: ``(root, key)`` or ``(root, key, field)``
#: for a field of a nested map (a tree's name, a group's parent).
Path = tuple[str, ...]
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()


def roots(doc: Doc, kind: str) -> list[str]:
    names = list(KINDS[kind])
    names.extend(sorted(k for k in doc.keys() if k not in KINDS[kind]))
    return names


def root_map(doc: Doc, name: str) -> Map:
    return doc.get(name, type=Map)


def to_json(doc: Doc, kind: str) -> dict[str, Any]:
    """The whole document as plain JSON-able data, one dict per root."""
    return {name: root_map(doc, name).to_py() or {} for name in roots(doc, kind)}


def plain(value: Any) -> Any:
    return value.to_py() if isinstance(value, Map) else value


class TouchRecorder:
    """Observes every root map and records, per transaction, the touched entries.

    ``touches`` maps each touched path to ``(old, new)`` plain values (or
    ``MISSING``) for the transactions applied while recording; the first old
    value and the last new value are kept. ``counts`` holds, per root,
    ``{"add": n, "update": n, "delete": n}`` of the current transaction.
    """

    def __init__(self, doc: Doc, kind: str, keep_values: bool = True) -> None:
        self.doc = doc
        self.keep_values = keep_values
        self.touches: dict[Path, tuple[Any, Any]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.sample: dict[str, list[str]] = {}
        self._subs = []
        for name in roots(doc, kind):
            m = root_map(doc, name)
            self._subs.append((m, m.observe_deep(self._make_callback(name))))

    def _make_callback(self, root: str):  # type: ignore[no-untyped-def]
        def callback(events: list[Any]) -> None:
            for event in events:
                if not isinstance(event, MapEvent):
                    continue
                prefix = (root, *(str(p) for p in event.path))
                nested = len(prefix) > 1
                for key, change in event.keys.items():
                    action = change["action"]
                    entry = prefix[1] if nested else key
                    counts = self.counts.setdefault(root, {"add": 0, "update": 0, "delete": 0})
                    counts["update" if nested else action] += 1
                    sample = self.sample.setdefault(root, [])
                    if len(sample) < 8 and entry not in sample:
                        sample.append(entry)
                    path = (*prefix, key)
                    old = plain(change.get("oldValue", MISSING)) if action != "add" else MISSING
                    new = plain(change.get("newValue", MISSING)) if action != "delete" else MISSING
                    if not self.keep_values:
                        old = new = None
                    if path in self.touches:
                        old = self.touches[path][0]
                    self.touches[path] = (old, new)

        return callback

    def take_summary(self) -> dict[str, Any]:
        """The machine-readable summary of what was recorded since the last call."""
        summary = {
            root: {**{k: v for k, v in c.items() if v}, "keys": self.sample.get(root, [])}
            for root, c in sorted(self.counts.items())
        }
        self.counts = {}
        self.sample = {}
        return summary

    def take_touches(self) -> dict[Path, tuple[Any, Any]]:
        touches, self.touches = self.touches, {}
        return touches

    def close(self) -> None:
        for m, sub in self._subs:
            m.unobserve(sub)
        self._subs = []

    def __enter__(self) -> TouchRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lookup(content: dict[str, Any], path: Path) -> Any:
    """The value at ``path`` in a JSON view, or MISSING."""
    value: Any = content
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def overlaps(a: Path, b: Path) -> bool:
    """Two paths conflict when one is a prefix of the other."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def iter_paths(paths: dict[Path, Any]) -> Iterator[Path]:
    return iter(sorted(paths))
