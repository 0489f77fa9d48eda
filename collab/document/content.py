"""Reading a document: its JSON view and the entries a transaction touched."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from pycrdt import Doc, Map

from collab.document.kind import DocumentKind

#: An entry is addressed by a path: ``(root, key)`` or ``(root, key, field)``
#: for a field of a nested map (a tree's name, a group's parent).
Path = tuple[str, ...]
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()


def roots(doc: Doc, kind: DocumentKind) -> list[str]:
    """The kind's roots in its order, then any other root the document has."""
    declared = kind.root_names
    names = list(declared)
    names.extend(sorted(k for k in doc.keys() if k not in declared))
    return names


def root_map(doc: Doc, name: str) -> Map:
    return doc.get(name, type=Map)


def to_json(doc: Doc, kind: DocumentKind) -> dict[str, Any]:
    """The whole document as plain JSON-able data, one dict per root."""
    return {name: read_map(root_map(doc, name)) for name in roots(doc, kind)}


#: Entries nested deeper than this read as :data:`TOO_DEEP` (orjson parses
#: at most 1,024 levels; Python's json, pickle and ``==`` recurse).
MAX_DEPTH = 512
#: What an entry nested deeper than MAX_DEPTH reads as in plain views.
TOO_DEEP = f"<nested deeper than {MAX_DEPTH} levels>"


def read_map(m: Map) -> dict[str, Any]:
    """A map as plain data. yrs renders JSON in Rust and orjson parses it:
    about twice as fast as ``Map.to_py()`` (0.6 s against 1.4 s for 100,000 nodes).

    A client may nest a value thousands deep, past orjson's limit: then the
    map is read entry by entry and such an entry reads as :data:`TOO_DEEP`
    (found by the 100,000-input fuzz run: a room holding one could not be
    loaded again — its repair index is read this way in a worker)."""
    try:
        value = orjson.loads(str(m))
    except orjson.JSONDecodeError:
        out: dict[str, Any] = {}
        for key in list(m.keys()):
            entry = plain(m[key])
            out[key] = TOO_DEEP if _deeper_than(entry, MAX_DEPTH) else entry
        return out
    return value if isinstance(value, dict) else {}


def _deeper_than(value: Any, limit: int) -> bool:
    """Nested deeper than ``limit`` (looked at without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def plain(value: Any) -> Any:
    return value.to_py() if isinstance(value, Map) else value


#: A summary names at most this many characters of a key (keys may be huge).
SAMPLE_KEY_CHARS = 64


def pack_summary(summary: dict[str, Any]) -> bytes:
    """A version's summary as JSON that PostgreSQL's jsonb always takes.

    jsonb refuses the NUL character (``\\u0000``), which any client may put
    in a key: every NUL becomes U+FFFD in the summary (the document itself
    keeps its bytes). A summary orjson cannot write (nesting too deep, an
    integer beyond 64 bits) is stored as its description."""
    try:
        data = orjson.dumps(summary)
    except (TypeError, orjson.JSONEncodeError) as exc:
        return orjson.dumps({"unreadable": str(exc)[:200]})
    if b"\\u0000" in data:
        data = orjson.dumps(_without_nul(summary))
    return data


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_nul(v) for v in value]
    return value


class TouchRecorder:
    """Observes every root map and records the entries that transactions touch.

    ``touches`` holds every touched path (in first-touch order) since the last
    :meth:`take_touches`; ``counts`` holds, per root, ``{"add", "update",
    "delete"}`` counts since the last :meth:`take_summary`. Values are not
    recorded: callers that need old values read them from a JSON view taken
    before (a deleted nested map reads as empty inside the event anyway).

    It subscribes to pycrdt's raw deep events: the wrapped ``observe_deep``
    converts every field of every event eagerly, which cost about half of the
    server's time per update (measured: 52 → 28 µs).
    """

    def __init__(self, doc: Doc, kind: DocumentKind, values_of: tuple[str, ...] = ()) -> None:
        """``values_of``: roots whose entries' new values are kept in ``values``
        (plain values of top-level entries, ``MISSING`` when deleted), so
        indexes need not read the document again."""
        self.doc = doc
        self.values_of = frozenset(values_of)
        self.values: dict[Path, Any] = {}
        self.touches: dict[Path, None] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.sample: dict[str, list[str]] = {}
        self._subs: list[Any] = []
        self._doc, self._kind = doc, kind
        self.attach()

    def attach(self) -> None:
        """Observe the document (done at creation)."""
        if not self._subs:
            for name in roots(self._doc, self._kind):
                m = root_map(self._doc, name)
                self._subs.append(m.integrated.observe_deep(self._make_callback(name)))

    def _make_callback(self, root: str) -> Callable[[list[Any]], None]:
        def callback(events: list[Any]) -> None:
            counts = self.counts.get(root)
            if counts is None:
                counts = self.counts[root] = {"add": 0, "update": 0, "delete": 0}
            sample = self.sample.setdefault(root, [])
            for event in events:
                keys = getattr(event, "keys", None)
                if keys is None:  # not a map event (text or array inside a map)
                    continue
                path = event.path
                if path:
                    entry = str(path[0])
                    prefix: Path = (root, *(str(p) for p in path))
                    for key in keys:
                        counts["update"] += 1
                        self.touches[(*prefix, key)] = None
                else:
                    entry = ""
                    keep = root in self.values_of
                    for key, change in keys.items():
                        action = change["action"]
                        counts[action] += 1
                        self.touches[(root, key)] = None
                        if keep:
                            new = MISSING if action == "delete" else change.get("newValue")
                            if isinstance(new, _PLAIN) or new is MISSING:
                                self.values[(root, key)] = new
                            # else a shared type (a client's Y.Array, Y.Text or
                            # Y.Map as the entry): the event hands yrs's raw
                            # object, which nothing can write back or compare;
                            # readers take the entry from the document instead.
                        if len(sample) < 8:
                            short = key[:SAMPLE_KEY_CHARS]
                            if short not in sample:
                                sample.append(short)
                if entry and len(sample) < 8:
                    short = entry[:SAMPLE_KEY_CHARS]
                    if short not in sample:
                        sample.append(short)

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

    def take_touches(self) -> list[Path]:
        touches, self.touches = self.touches, {}
        return list(touches)

    def take_values(self) -> dict[Path, Any]:
        values, self.values = self.values, {}
        return values

    def close(self) -> None:
        """Stop observing (``attach`` resumes). While detached, yrs builds no
        deep events at all: applying a million-entry update costs about a
        third less than with observers that merely return."""
        for sub in self._subs:
            sub.drop()
        self._subs = []

    def __enter__(self) -> TouchRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: What a map entry's plain (non-shared) JSON value can be.
_PLAIN = (type(None), bool, int, float, str, list, dict, bytes)


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
