"""The brick socket's frames: golden bytes (tests/golden/brick_frames.json,
also the reference for clients in other languages) and round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collab.volume import wire

GOLDEN = json.loads((Path(__file__).parents[1] / "golden" / "brick_frames.json").read_text())


def test_golden_request_and_cancel() -> None:
    req = GOLDEN["request"]
    a = req["args"]
    frame = wire.pack_request(
        a["request_id"],
        tuple(a["mag"]),
        [tuple(b) for b in a["bricks"]],
        a["encoding"],
        a["mapping"],
    )
    assert frame.hex() == req["hex"]
    # Header: type, encoding, count, request id, mag x/y/z, mapping length, reserved.
    assert frame[:16].hex() == "010102000700000002000200010005" + "00"
    parsed = wire.parse(bytes.fromhex(req["hex"]))
    assert parsed == wire.Request(7, 1, (2, 2, 1), "cells", [(1, 2, 3), (-1, 0, 65536)])
    for key in ("cancel", "cancel_all"):
        c = GOLDEN[key]["args"]
        frame = wire.pack_cancel(c["request_id"], [tuple(b) for b in c["bricks"]])
        assert frame.hex() == GOLDEN[key]["hex"]
        assert wire.parse(frame) == wire.Cancel(c["request_id"], [tuple(b) for b in c["bricks"]])


def test_golden_server_frames() -> None:
    records = wire.unpack_bricks(bytes.fromhex(GOLDEN["bricks"]["hex"]))
    assert [
        (r.request_id, r.brick, r.status, r.dtype, r.encoding, r.shape, r.payload.hex())
        for r in records
    ] == [
        (
            g["request_id"],
            tuple(g["brick"]),
            g["status"],
            g["dtype"],
            g["encoding"],
            (32, 32, 32),
            g["payload"],
        )
        for g in GOLDEN["bricks"]["records"]
    ]
    e = GOLDEN["error"]["args"]
    assert wire.pack_error(e["code"], e["message"], e["request_id"]).hex() == GOLDEN["error"]["hex"]
    assert wire.unpack_error(bytes.fromhex(GOLDEN["error"]["hex"])) == (3, 7, "too many")
    assert wire.pack_done(*GOLDEN["done"]["args"]).hex() == GOLDEN["done"]["hex"]
    assert wire.unpack_done(bytes.fromhex(GOLDEN["done"]["hex"])) == tuple(GOLDEN["done"]["args"])
    assert wire.RECORD_BYTES == 32


coord = st.tuples(*[st.integers(-(2**31), 2**31 - 1)] * 3)


@given(
    rid=st.integers(0, 2**32 - 1),
    mag=st.tuples(*[st.integers(1, 65535)] * 3),
    bricks=st.lists(coord, min_size=1, max_size=50),
    encoding=st.integers(0, 255),
    mapping=st.none() | st.text(min_size=1, max_size=40),
)
def test_request_round_trip(
    rid: int, mag: tuple, bricks: list, encoding: int, mapping: str | None
) -> None:
    if mapping is not None and len(mapping.encode()) > 255:
        return
    frame = wire.pack_request(rid, mag, bricks, encoding, mapping)
    assert wire.parse(frame) == wire.Request(rid, encoding, mag, mapping, bricks)


@given(st.binary(max_size=200))
def test_garbage_never_crashes_the_parser(data: bytes) -> None:
    try:
        wire.parse(data)
    except wire.FrameError as exc:
        assert exc.code in wire.ERROR_NAMES


def test_truncations_are_frame_errors() -> None:
    frame = bytes.fromhex(GOLDEN["request"]["hex"])
    for n in range(len(frame)):
        with pytest.raises(wire.FrameError):
            wire.parse(frame[:n])


def test_golden_pushed() -> None:
    """PUSHED (0x84): bricks a new version changed, unasked (request id 0)."""
    golden = GOLDEN["pushed"]
    frame = bytes.fromhex(golden["hex"])
    assert frame[:16].hex() == "840001002a000000020002000100" + "0000"
    version, mag, records = wire.unpack_pushed(frame)
    assert (version, list(mag)) == (golden["version"], golden["mag"])
    assert [(r.request_id, list(r.brick), r.status, r.dtype, r.encoding, r.payload.hex())
            for r in records] == [
        (g["request_id"], g["brick"], g["status"], g["dtype"], g["encoding"], g["payload"])
        for g in golden["records"]
    ]  # fmt: skip
    rebuilt = wire.pushed_head(1, 42, (2, 2, 1)) + wire.record_head(0, (4, 5, 6), 0, 3, 0, 4)
    assert rebuilt + bytes.fromhex("0a000000") == frame


def test_golden_pushed_with_a_stale_mark() -> None:
    """A PUSHED record of status 3 (stale) has no payload: the brick changed
    as of the frame's version, and the viewer asks for it again."""
    golden = GOLDEN["pushed_stale"]
    bricks = [
        wire.PushedBrick(
            tuple(g["brick"]), g["dtype"], g["encoding"], bytes.fromhex(g["payload"]) or None
        )
        for g in golden["records"]
    ]
    frame = wire.pack_pushed(golden["version"], tuple(golden["mag"]), bricks)
    assert frame.hex() == golden["hex"]
    version, mag, records = wire.unpack_pushed(frame)
    assert (version, list(mag)) == (43, [2, 2, 1])
    assert [(list(r.brick), r.status, r.encoding, r.payload.hex()) for r in records] == [
        (g["brick"], g["status"], g["encoding"], g["payload"]) for g in golden["records"]
    ]
    assert records[1].status == wire.STATUS_STALE


def test_golden_uint64_bricks() -> None:
    """uint64 voxels (dtype 4) little-endian; ids above 2^53 survive."""
    golden = GOLDEN["bricks_uint64"]
    [record] = wire.unpack_bricks(bytes.fromhex(golden["hex"]))
    assert (record.request_id, record.dtype, record.status) == (3, 4, wire.STATUS_OK)
    values = [int.from_bytes(record.payload[i : i + 8], "little") for i in range(0, 32, 8)]
    assert [str(v) for v in values] == golden["values"]
    assert values[0] == 2**53 + 1
    head = wire.bricks_head(1) + wire.record_head(3, (1, 0, 2), 0, 4, 0, 32)
    assert (head + record.payload).hex() == golden["hex"]


def test_mapped_golden() -> None:
    for name in ("mapped", "mapped_reset"):
        g = GOLDEN[name]
        pairs = [[int(a), int(b)] for a, b in g["pairs"]]
        assert wire.pack_mapped(g["version"], pairs, reset=g["reset"]).hex() == g["hex"]
        version, reset, got = wire.unpack_mapped(bytes.fromhex(g["hex"]))
        assert (version, reset, got.tolist()) == (g["version"], g["reset"], pairs)
