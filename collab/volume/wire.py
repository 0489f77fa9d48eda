"""The brick socket's binary frames: pure pack/unpack (docs/protocol.md).

All integers little-endian. Client → server: REQUEST (0x01) and CANCEL
(0x02). Server → client: BRICKS (0x81, one or more bricks per frame), ERROR
(0x82), DONE (0x83, a request fully answered) and PUSHED (0x84, bricks a
new version of an annotation's volume layer changed, unasked: their voxels,
or a stale mark telling the viewer to ask again) and MAPPED (0x85,
supervoxel → agglomerate pairs of the layer's editable mapping that a merge
or split changed).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

REQUEST = 0x01
CANCEL = 0x02
BRICKS = 0x81
ERROR = 0x82
DONE = 0x83
PUSHED = 0x84
MAPPED = 0x85
#: MAPPED flag: the viewer missed changes (it did not read): every
#: supervoxel → agglomerate pair it holds must be asked for again.
MAPPED_RESET = 0x01

STATUS_OK = 0
STATUS_MISSING = 1
STATUS_FAILED = 2
#: PUSHED only: the brick changed as of the frame's version, its voxels not
#: sent (the socket held its limit of pushes); the viewer asks for it again.
STATUS_STALE = 3

# Error codes of ERROR frames.
E_BAD_FRAME = 1
E_UNKNOWN_TYPE = 2
E_BATCH_TOO_LARGE = 3
E_UNKNOWN_MAG = 4
E_UNKNOWN_MAPPING = 5
E_BAD_ENCODING = 6
E_TOO_MANY_PENDING = 7
E_DUPLICATE_REQUEST = 8
ERROR_NAMES = {
    E_BAD_FRAME: "bad_frame",
    E_UNKNOWN_TYPE: "unknown_type",
    E_BATCH_TOO_LARGE: "batch_too_large",
    E_UNKNOWN_MAG: "unknown_mag",
    E_UNKNOWN_MAPPING: "unknown_mapping",
    E_BAD_ENCODING: "bad_encoding",
    E_TOO_MANY_PENDING: "too_many_pending",
    E_DUPLICATE_REQUEST: "duplicate_request",
}

_REQUEST_HEAD = struct.Struct("<BBHIHHHBB")  # 16 bytes
_CANCEL_HEAD = struct.Struct("<BBHI")  # 8 bytes
_COORD = struct.Struct("<iii")
_BRICKS_HEAD = struct.Struct("<BBH")  # 4 bytes
_RECORD = struct.Struct("<IiiiBBBBHHHHI")  # 32 bytes
_ERROR_HEAD = struct.Struct("<BBHI")  # 8 bytes
_DONE = struct.Struct("<BBBBIIIII")  # 24 bytes
_PUSHED_HEAD = struct.Struct("<BBHIHHHH")  # 16 bytes
_MAPPED_HEAD = struct.Struct("<BBHII")  # 12 bytes, then count × (uint64, uint64)
RECORD_BYTES = _RECORD.size
MAX_MAPPING_NAME = 255


class FrameError(ValueError):
    """A frame we cannot parse; ``code`` is the ERROR frame's code."""

    def __init__(self, code: int, message: str, request_id: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class Request:
    request_id: int
    encoding: int
    mag: tuple[int, int, int]
    mapping: str | None
    bricks: list[tuple[int, int, int]]


@dataclass(frozen=True, slots=True)
class Cancel:
    request_id: int
    #: Bricks to cancel; empty means the whole request.
    bricks: list[tuple[int, int, int]]


@dataclass(frozen=True, slots=True)
class Record:
    request_id: int
    brick: tuple[int, int, int]
    status: int
    dtype: int
    encoding: int
    shape: tuple[int, int, int]
    payload: bytes


def _coords(data: bytes | memoryview, offset: int, count: int) -> list[tuple[int, int, int]]:
    return [
        (x, y, z) for x, y, z in _COORD.iter_unpack(data[offset : offset + count * _COORD.size])
    ]


def parse(frame: bytes) -> Request | Cancel:
    """Parse a client frame; raises :class:`FrameError` when it is not one."""
    if not frame:
        raise FrameError(E_BAD_FRAME, "empty frame")
    kind = frame[0]
    if kind == REQUEST:
        if len(frame) < _REQUEST_HEAD.size:
            raise FrameError(E_BAD_FRAME, f"request frame of {len(frame)} bytes is truncated")
        _, encoding, count, rid, mx, my, mz, name_len, _reserved = _REQUEST_HEAD.unpack_from(frame)
        offset = _REQUEST_HEAD.size
        mapping = None
        if name_len:
            raw = frame[offset : offset + name_len]
            if len(raw) != name_len:
                raise FrameError(E_BAD_FRAME, "mapping name is truncated", rid)
            try:
                mapping = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise FrameError(E_BAD_FRAME, "mapping name is not UTF-8", rid) from None
            offset += name_len
        expected = offset + count * _COORD.size
        if len(frame) != expected:
            raise FrameError(
                E_BAD_FRAME,
                f"request {rid}: {count} bricks need {expected} bytes, frame has {len(frame)}",
                rid,
            )
        if count == 0:
            raise FrameError(E_BAD_FRAME, f"request {rid} asks for no bricks", rid)
        return Request(rid, encoding, (mx, my, mz), mapping, _coords(frame, offset, count))
    if kind == CANCEL:
        if len(frame) < _CANCEL_HEAD.size:
            raise FrameError(E_BAD_FRAME, f"cancel frame of {len(frame)} bytes is truncated")
        _, _, count, rid = _CANCEL_HEAD.unpack_from(frame)
        expected = _CANCEL_HEAD.size + count * _COORD.size
        if len(frame) != expected:
            raise FrameError(
                E_BAD_FRAME, f"cancel {rid}: {count} bricks need {expected} bytes", rid
            )
        return Cancel(rid, _coords(frame, _CANCEL_HEAD.size, count))
    raise FrameError(E_UNKNOWN_TYPE, f"unknown frame type 0x{kind:02x}")


# -- packing (the server's frames; the client's, for tests and benchmarks) ---


def pack_request(
    request_id: int,
    mag: tuple[int, int, int],
    bricks: list[tuple[int, int, int]],
    encoding: int = 0,
    mapping: str | None = None,
) -> bytes:
    name = mapping.encode() if mapping else b""
    if len(name) > MAX_MAPPING_NAME:
        raise ValueError("mapping name too long")
    head = _REQUEST_HEAD.pack(
        REQUEST, encoding, len(bricks), request_id, mag[0], mag[1], mag[2], len(name), 0
    )
    return head + name + b"".join(_COORD.pack(*b) for b in bricks)


def pack_cancel(request_id: int, bricks: list[tuple[int, int, int]] | None = None) -> bytes:
    bricks = bricks or []
    return _CANCEL_HEAD.pack(CANCEL, 0, len(bricks), request_id) + b"".join(
        _COORD.pack(*b) for b in bricks
    )


def record_head(
    request_id: int,
    brick: tuple[int, int, int],
    status: int,
    dtype: int,
    encoding: int,
    payload_len: int,
    shape: tuple[int, int, int] = (32, 32, 32),
) -> bytes:
    return _RECORD.pack(
        request_id,
        brick[0],
        brick[1],
        brick[2],
        status,
        dtype,
        encoding,
        0,
        shape[0],
        shape[1],
        shape[2],
        0,
        payload_len,
    )


def bricks_head(count: int) -> bytes:
    return _BRICKS_HEAD.pack(BRICKS, 0, count)


def pushed_head(count: int, version: int, mag: tuple[int, int, int]) -> bytes:
    """Head of a PUSHED frame; its records follow as in BRICKS (request id 0)."""
    return _PUSHED_HEAD.pack(PUSHED, 0, count, version, mag[0], mag[1], mag[2], 0)


@dataclass(frozen=True, slots=True)
class PushedBrick:
    """One record of a PUSHED frame: ``payload`` None is a stale mark."""

    brick: tuple[int, int, int]
    dtype: int
    encoding: int
    payload: bytes | None


def pack_pushed(version: int, mag: tuple[int, int, int], bricks: list[PushedBrick]) -> bytes:
    """A PUSHED frame: each brick's voxels (status ok) or, without a payload,
    its stale mark (status stale, no payload)."""
    if len(bricks) > 65535:
        raise ValueError("at most 65535 records per frame")
    parts = [pushed_head(len(bricks), version, mag)]
    for b in bricks:
        status = STATUS_STALE if b.payload is None else STATUS_OK
        payload = b.payload or b""
        parts.append(record_head(0, b.brick, status, b.dtype, b.encoding, len(payload)))
        parts.append(payload)
    return b"".join(parts)


def pack_mapped(version: int, pairs: Any, reset: bool = False) -> bytes:
    """A MAPPED frame: supervoxel → agglomerate pairs of the layer's
    editable mapping that changed at ``version`` (an n × 2 array of uint64,
    or pairs), or with ``reset`` none (the viewer must ask again)."""
    table = np.asarray(pairs, dtype="<u8").reshape(-1, 2)
    if reset:
        table = table[:0]
    head = _MAPPED_HEAD.pack(MAPPED, MAPPED_RESET if reset else 0, 0, version, len(table))
    return head + table.tobytes()


def unpack_mapped(frame: bytes | memoryview) -> tuple[int, bool, np.ndarray]:
    """A MAPPED frame: (version, reset, n × 2 uint64 pairs)."""
    kind, flags, _, version, count = _MAPPED_HEAD.unpack_from(frame)
    if kind != MAPPED:
        raise ValueError(f"not a mapped frame: 0x{kind:02x}")
    body = np.frombuffer(frame, dtype="<u8", count=2 * count, offset=_MAPPED_HEAD.size)
    return version, bool(flags & MAPPED_RESET), body.reshape(count, 2).astype(np.uint64)


def pack_error(code: int, message: str, request_id: int = 0) -> bytes:
    return _ERROR_HEAD.pack(ERROR, 0, code, request_id) + message.encode()[:1024]


def pack_done(request_id: int, sent: int, missing: int, cancelled: int, failed: int) -> bytes:
    return _DONE.pack(DONE, 0, 0, 0, request_id, sent, missing, cancelled, failed)


# -- unpacking the server's frames (clients, tests, benchmarks) --------------


def unpack_bricks(frame: bytes | memoryview) -> list[Record]:
    kind, _, count = _BRICKS_HEAD.unpack_from(frame)
    if kind != BRICKS:
        raise ValueError(f"not a bricks frame: 0x{kind:02x}")
    return _records(frame, _BRICKS_HEAD.size, count)


def unpack_pushed(frame: bytes | memoryview) -> tuple[int, tuple[int, int, int], list[Record]]:
    """A PUSHED frame: (version, mag, records)."""
    kind, _, count, version, mx, my, mz, _r = _PUSHED_HEAD.unpack_from(frame)
    if kind != PUSHED:
        raise ValueError(f"not a pushed frame: 0x{kind:02x}")
    return version, (mx, my, mz), _records(frame, _PUSHED_HEAD.size, count)


def _records(frame: bytes | memoryview, offset: int, count: int) -> list[Record]:
    out = []
    for _ in range(count):
        rid, x, y, z, status, dtype, encoding, _r, sx, sy, sz, _r2, n = _RECORD.unpack_from(
            frame, offset
        )
        offset += _RECORD.size
        out.append(
            Record(
                rid,
                (x, y, z),
                status,
                dtype,
                encoding,
                (sx, sy, sz),
                bytes(frame[offset : offset + n]),
            )
        )
        offset += n
    if offset != len(frame):
        raise ValueError("bricks frame has trailing bytes")
    return out


def unpack_error(frame: bytes) -> tuple[int, int, str]:
    kind, _, code, rid = _ERROR_HEAD.unpack_from(frame)
    if kind != ERROR:
        raise ValueError("not an error frame")
    return code, rid, frame[_ERROR_HEAD.size :].decode()


def unpack_done(frame: bytes) -> tuple[int, int, int, int, int]:
    kind, _, _, _, rid, sent, missing, cancelled, failed = _DONE.unpack(frame)
    if kind != DONE:
        raise ValueError("not a done frame")
    return rid, sent, missing, cancelled, failed
