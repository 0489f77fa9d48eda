"""The y-websocket wire messages: strict parsing and packing. Pure, no I/O.

One WebSocket binary frame carries exactly one message (the stock y-websocket
v3 client reads only the first message of a frame). Layouts, with ``varuint``
the lib0 unsigned LEB128 and ``varbytes`` a varuint length followed by bytes:

    sync         varuint 0, varuint sub (0 step1 | 1 step2 | 2 update), varbytes payload
    awareness    varuint 1, varbytes (varuint n, n × (varuint client, varuint clock, varstring json))
    auth         varuint 2, varuint 0 (permission denied), varstring reason
    query-aw.    varuint 3
    saved        varuint 100, varuint version      (collab extension, only with ?acks=1)

pycrdt's ``Decoder`` indexes past the end of a truncated frame (IndexError);
everything here checks bounds and raises :class:`ProtocolError` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import orjson
from pycrdt import (
    create_awareness_message,
    create_update_message,
    write_var_uint,
)

from collab.document.update_builder import read_varuint as lib0_read_varuint
from collab.errors import ProtocolError, UnknownMessageType


class MessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3
    SAVED = 100  # collab extension: newest saved version (see docs/protocol.md)
    ACCEPTED = 101  # collab extension: the version a client's update became (opt-in)


class SyncType(IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


EMPTY_UPDATE = b"\x00\x00"
_SYNC_TYPES = (SyncType.STEP1, SyncType.STEP2, SyncType.UPDATE)


def read_varuint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Return ``(value, next_pos)``; raise ProtocolError when truncated or too long."""
    try:
        return lib0_read_varuint(data, pos)
    except ValueError as exc:
        raise ProtocolError(str(exc)) from None


def read_varbytes(data: bytes | memoryview, pos: int) -> tuple[bytes, int]:
    length, pos = read_varuint(data, pos)
    end = pos + length
    if end > len(data):
        raise ProtocolError(
            f"truncated payload: {length} bytes announced, {len(data) - pos} present"
        )
    return bytes(data[pos:end]), end


def write_varbytes(payload: bytes) -> bytes:
    return write_var_uint(len(payload)) + payload


def write_varstring(text: str) -> bytes:
    return write_varbytes(text.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class SyncMessage:
    sub: SyncType
    payload: bytes  # state vector (step1) or update (step2, update)


@dataclass(frozen=True, slots=True)
class AwarenessMessage:
    payload: bytes  # the awareness update, as relayed
    entries: tuple[AwarenessEntry, ...]


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    client_id: int
    clock: int
    state: str  # JSON text; "null" means the client left


@dataclass(frozen=True, slots=True)
class QueryAwarenessMessage:
    pass


@dataclass(frozen=True, slots=True)
class AuthMessage:
    reason: str


Message = SyncMessage | AwarenessMessage | QueryAwarenessMessage | AuthMessage


def parse(frame: bytes) -> Message:
    """Parse one frame into one message; trailing bytes are an error."""
    if not frame:
        raise ProtocolError("empty frame")
    kind, pos = read_varuint(frame, 0)
    if kind == MessageType.SYNC:
        sub, pos = read_varuint(frame, pos)
        if sub > 2:
            raise UnknownMessageType(f"unknown sync message type {sub}")
        payload, pos = read_varbytes(frame, pos)
        _expect_end(frame, pos)
        return SyncMessage(_SYNC_TYPES[sub], payload)
    if kind == MessageType.AWARENESS:
        payload, pos = read_varbytes(frame, pos)
        _expect_end(frame, pos)
        return AwarenessMessage(payload, parse_awareness_update(payload))
    if kind == MessageType.QUERY_AWARENESS:
        _expect_end(frame, pos)
        return QueryAwarenessMessage()
    if kind == MessageType.AUTH:
        sub, pos = read_varuint(frame, pos)
        reason, pos = read_varbytes(frame, pos)
        return AuthMessage(reason.decode("utf-8", "replace"))
    raise UnknownMessageType(f"unknown message type {kind}")


def _expect_end(frame: bytes, pos: int) -> None:
    if pos != len(frame):
        raise ProtocolError(f"{len(frame) - pos} trailing bytes after message")


def parse_awareness_update(payload: bytes) -> tuple[AwarenessEntry, ...]:
    count, pos = read_varuint(payload, 0)
    if count > 10_000:
        raise ProtocolError("too many awareness entries")
    entries = []
    for _ in range(count):
        client_id, pos = read_varuint(payload, pos)
        clock, pos = read_varuint(payload, pos)
        raw, pos = read_varbytes(payload, pos)
        try:
            text = raw.decode("utf-8")
            orjson.loads(text)
        except (UnicodeDecodeError, orjson.JSONDecodeError):
            raise ProtocolError("awareness state is not JSON") from None
        entries.append(AwarenessEntry(client_id, clock, text))
    _expect_end(payload, pos)
    return tuple(entries)


def pack_awareness_update(entries: list[AwarenessEntry] | tuple[AwarenessEntry, ...]) -> bytes:
    out = [write_var_uint(len(entries))]
    for e in entries:
        out.append(write_var_uint(e.client_id))
        out.append(write_var_uint(e.clock))
        out.append(write_varstring(e.state))
    return b"".join(out)


def pack_sync_step1(state_vector: bytes) -> bytes:
    return bytes([MessageType.SYNC, SyncType.STEP1]) + write_varbytes(state_vector)


def pack_sync_step2(update: bytes) -> bytes:
    return bytes([MessageType.SYNC, SyncType.STEP2]) + write_varbytes(update)


def pack_update(update: bytes) -> bytes:
    return create_update_message(update)


def pack_awareness(payload: bytes) -> bytes:
    return create_awareness_message(payload)


def pack_auth_denied(reason: str) -> bytes:
    return bytes([MessageType.AUTH, 0]) + write_varstring(reason)


def pack_query_awareness() -> bytes:
    return bytes([MessageType.QUERY_AWARENESS])


def pack_saved(version: int) -> bytes:
    return write_var_uint(MessageType.SAVED) + write_var_uint(version)


def pack_accepted(version: int) -> bytes:
    """To the sender of an update (``?accepted=1``): the version that holds
    it. One per update message the server takes, in the order received, so a
    client knows which of its changes "saved up to N" covers."""
    return write_var_uint(MessageType.ACCEPTED) + write_var_uint(version)


def _parse_version(frame: bytes, expected: MessageType, name: str) -> int:
    """The version of a collab message of kind ``expected`` (type, version)."""
    kind, pos = read_varuint(frame, 0)
    if kind != expected:
        raise ProtocolError(f"not {name} message")
    version, pos = read_varuint(frame, pos)
    _expect_end(frame, pos)
    return version


def parse_accepted(frame: bytes) -> int:
    return _parse_version(frame, MessageType.ACCEPTED, "an accepted")


def parse_saved(frame: bytes) -> int:
    return _parse_version(frame, MessageType.SAVED, "a saved")
