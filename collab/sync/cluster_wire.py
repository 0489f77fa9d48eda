"""What instances tell each other on the cluster's channel (PostgreSQL
``NOTIFY collab``, collab/store/inbox.py): pure pack and unpack.

Payloads are JSON text (NOTIFY carries text, at most 8,000 bytes):

- ``{"k":"v","a":A,"d":D,"v":V,"t":T,"c":[[origin,id,version],...]}`` —
  the owner committed versions of document D of annotation A up to V at
  time T (seconds since the epoch, the owner's clock: the fan-out lag), and
  applied the listed forwarded updates (inbox ids) as those versions.
  Long lists of consumed ids are split over several payloads.
- ``{"k":"i","a":A}`` — forwarded updates of annotation A wait in the
  inbox (for its owner).
- ``{"k":"w","a":A,"d":D,"o":origin,"p":base64}`` — an awareness update
  of the clients of an instance (``origin``), for the other instances'
  clients of that document.

Anything else is ignored (a newer instance's kind, during an upgrade).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

#: NOTIFY's payload limit is 8,000 bytes; stay clear of it.
MAX_PAYLOAD = 7_000


@dataclass(frozen=True, slots=True)
class Versions:
    annotation_id: int
    doc: str
    version: int
    time: float
    #: (origin, inbox id, version) of forwarded updates applied.
    consumed: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Waiting:
    annotation_id: int


@dataclass(frozen=True, slots=True)
class Awareness:
    annotation_id: int
    doc: str
    origin: str
    payload: bytes


Notice = Versions | Waiting | Awareness


def pack_versions(notice: Versions) -> list[str]:
    """One payload, or several when the consumed list is long."""
    head: dict[str, Any] = {
        "k": "v",
        "a": notice.annotation_id,
        "d": notice.doc,
        "v": notice.version,
        "t": round(notice.time, 6),
    }
    out: list[str] = []
    chunk: list[list[Any]] = []
    size = 0
    for origin, ident, version in notice.consumed:
        entry = [origin, ident, version]
        cost = len(origin) + 40
        if chunk and size + cost > MAX_PAYLOAD - 200:
            out.append(orjson.dumps({**head, "c": chunk}).decode())
            chunk, size = [], 0
        chunk.append(entry)
        size += cost
    out.append(orjson.dumps({**head, "c": chunk} if chunk else head).decode())
    return out


def pack_waiting(annotation_id: int) -> str:
    return orjson.dumps({"k": "i", "a": annotation_id}).decode()


def pack_awareness(notice: Awareness) -> str | None:
    """None when the update is too large for one notification (not sent:
    awareness is renewed every few seconds anyway)."""
    text = orjson.dumps(
        {
            "k": "w",
            "a": notice.annotation_id,
            "d": notice.doc,
            "o": notice.origin,
            "p": base64.b64encode(notice.payload).decode(),
        }
    ).decode()
    return text if len(text) <= MAX_PAYLOAD else None


def unpack(payload: str) -> Notice | None:
    """The notice, or None for anything not understood."""
    try:
        obj = orjson.loads(payload)
        kind = obj["k"]
        if kind == "v":
            consumed = tuple((str(o), int(i), int(v)) for o, i, v in obj.get("c", ()))
            return Versions(int(obj["a"]), str(obj["d"]), int(obj["v"]), float(obj["t"]), consumed)
        if kind == "i":
            return Waiting(int(obj["a"]))
        if kind == "w":
            return Awareness(
                int(obj["a"]), str(obj["d"]), str(obj["o"]), base64.b64decode(obj["p"])
            )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
    return None
