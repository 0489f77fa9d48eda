"""The brick socket, fuzzed: random and truncated binary frames, text frames,
and well-formed requests and cancels with any field out of range (mags that
do not exist, coordinates at the int32 limits, batch sizes the frame does not
hold, unknown encodings and mappings, duplicate and cancelled request ids).

Invariant for every input: the server answers bad frames with ERROR frames
(docs/protocol.md) and keeps the socket; a valid request sent after the
input on the same socket is answered in full (bricks, then DONE); the server
stays up; a bystander's document work is acknowledged at the end."""

from __future__ import annotations

import struct
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from collab.volume import wire
from tests.fuzz.conftest import FUZZ, FUZZ_TIMEOUT, annotation, assert_still_saving, user
from tests.processes import ServerProcess
from tests.volume.helpers import make_dataset

I32 = st.one_of(st.integers(-3, 8), st.sampled_from([-(2**31), 2**31 - 1, 1000, -1]))
MAGS = st.one_of(
    st.sampled_from([(1, 1, 1), (2, 2, 1), (4, 4, 2), (2, 2, 2)]),
    st.tuples(*[st.integers(0, 2**16 - 1)] * 3),
)
coords = st.tuples(I32, I32, I32)
requests = st.builds(
    lambda rid, mag, bricks, enc, mapping: wire.pack_request(rid, mag, bricks, enc, mapping),
    st.integers(0, 2**31),  # the probes use ids from 2**32 - 1 down
    MAGS,
    st.lists(coords, max_size=20),
    st.integers(0, 255),
    st.one_of(st.none(), st.sampled_from(["cells", "nope", "../x", "\x00"]), st.text(max_size=8)),
)
cancels = st.builds(
    wire.pack_cancel, st.integers(0, 2**31), st.one_of(st.none(), st.lists(coords, max_size=5))
)


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.one_of(requests, cancels)))
    how = draw(st.sampled_from(["truncate", "flip", "count", "extend"]))
    if how == "truncate":
        del frame[draw(st.integers(0, len(frame) - 1)) :]
    elif how == "flip":
        for _ in range(draw(st.integers(1, 4))):
            frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    elif how == "count":  # the brick count says more (or less) than the frame holds
        frame[2:4] = struct.pack("<H", draw(st.integers(0, 2**16 - 1)))
    else:
        frame += draw(st.binary(min_size=1, max_size=40))
    return bytes(frame)


frames = st.lists(
    st.one_of(requests, cancels, damaged(), st.binary(max_size=64), st.text(max_size=16)),
    min_size=1,
    max_size=5,
)


def _answered(ws: ClientConnection, rid: int) -> int:
    """Read until request ``rid`` is DONE; the bricks it got."""
    got = 0
    for _ in range(10_000):  # bounded: frames of the fuzz input may come first
        frame = ws.recv(timeout=10)
        assert isinstance(frame, bytes) and frame[:1] in (b"\x81", b"\x82", b"\x83"), frame[:16]
        if frame[0] == wire.BRICKS:
            got += sum(1 for r in wire.unpack_bricks(frame) if r.request_id == rid)
        elif frame[0] == wire.DONE and wire.unpack_done(frame)[0] == rid:
            return got
    raise AssertionError(f"request {rid} never done")


def _volume_layer(server: ServerProcess, token: str) -> str:
    """An annotation with a volume layer (its brick socket's path)."""
    from pycrdt import Doc, Map

    from collab.sync import messages as m
    from tests.fuzz.test_sync_fuzz import Session

    ann = annotation(server, token)
    doc = Doc()
    updates: list[bytes] = []
    sub = doc.observe(lambda e: updates.append(e.update))
    entry = {"name": "L1", "dtype": "uint32", "mags": ["1", "2-2-1", "4-4-2"]}
    doc.get("layers", type=Map)["L1"] = Map(entry)
    doc.unobserve(sub)
    session = Session(f"{server.ws_url}/sync/{ann}/segmentation?token={token}")
    session.open().send(m.pack_update(updates[0]))
    assert session.probe() is None
    session.close()
    return f"/volume/{ann}/L1"


@pytest.mark.timeout(FUZZ_TIMEOUT)
@pytest.mark.parametrize("where", ["dataset", "annotation"])
def test_brick_frames(server: ServerProcess, where: str) -> None:
    """The same frames on a dataset's layer and on an annotation's volume layer."""
    _, token = user(server, f"brick fuzzer {where}")
    if where == "dataset":
        make_dataset(Path(server.data_dir) / "datasets" / "small")
        r = httpx.post(
            f"{server.url}/api/datasets",
            json={"name": "small", "url": "small"},
            headers=server.headers(),
            timeout=30,
        )
        assert r.status_code == 201, r.text
        path = "/data/small/color"
    else:
        path = _volume_layer(server, token)
    probe = [(0, 0, 0), (1, 0, 1)]
    with connect(
        f"{server.ws_url}{path}?token={token}",
        max_size=None,
        compression=None,
        open_timeout=10,
        ping_interval=None,  # its ping payloads use the random module: hypothesis objects
    ) as ws:
        check = 2**32 - 1  # each probe a fresh id, far from the fuzzer's

        @FUZZ
        @given(frames)
        def attack(sent: list[bytes | str]) -> None:
            nonlocal check
            for frame in sent:
                ws.send(frame)
            check -= 1
            ws.send(wire.pack_request(check, (1, 1, 1), probe))
            assert _answered(ws, check) == len(probe)

        attack()
    assert_still_saving(server, token, annotation(server, token))
