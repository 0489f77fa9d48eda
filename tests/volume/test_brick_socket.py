"""The brick socket: batches, out-of-order answers, cancel, missing bricks,
backpressure and every bad frame (the socket's other requests go on)."""

from __future__ import annotations

import asyncio
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import websockets

from collab.http.data_socket import BrickStream
from collab.volume import wire
from collab.volume.encoding import RAW, ZSTD, decompress, from_raw
from tests.conftest import LiveServer, live_with, with_settings
from tests.volume.helpers import (
    BrickClient,
    SmallDataset,
    damage_chunk,
    expected_brick,
    make_dataset,
)


@pytest.fixture
async def small(live: LiveServer) -> SmallDataset:
    data = make_dataset(Path(live.settings.roots[0]) / "small")
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": "small", "url": "small"})
        assert r.status_code == 201
    return data


def data_url(live: LiveServer, token: str, layer: str = "color", dataset: str = "small") -> str:
    return f"{live.ws_url}/data/{dataset}/{layer}?token={token}"


ALL = [(x, y, z) for x in range(4) for y in range(3) for z in range(3)]


async def test_batch_raw_and_zstd(live: LiveServer, small: SmallDataset) -> None:
    _, token = await live.user("viewer")
    client = await BrickClient.connect(data_url(live, token))
    try:
        for rid, encoding in ((1, RAW), (2, ZSTD)):
            records = await client.fetch(rid, (1, 1, 1), ALL, encoding)
            assert sorted(r.brick for r in records) == sorted(ALL)
            for r in records:
                assert r.status == wire.STATUS_OK and r.dtype == 1 and r.shape == (32, 32, 32)
                assert r.encoding == encoding
                raw = decompress(r.payload) if encoding == ZSTD else r.payload
                np.testing.assert_array_equal(
                    from_raw(raw, np.dtype("uint8")), expected_brick(small.color, r.brick)
                )
            assert client.done[rid] == (rid, len(ALL), 0, 0, 0)
        # Several bricks share a frame when they are ready together.
        assert client.frames < 2 * len(ALL)
        # Missing bricks (wholly outside the layer, negative) carry a flag, not silence.
        records = await client.fetch(3, (1, 1, 1), [(0, 0, 0), (4, 0, 0), (-1, 0, 0), (0, 0, 9)])
        status = {r.brick: r.status for r in records}
        assert status == {
            (0, 0, 0): wire.STATUS_OK,
            (4, 0, 0): wire.STATUS_MISSING,
            (-1, 0, 0): wire.STATUS_MISSING,
            (0, 0, 9): wire.STATUS_MISSING,
        }
        assert all(r.payload == b"" for r in records if r.status == wire.STATUS_MISSING)
        assert client.done[3][1:3] == (1, 3)
    finally:
        await client.close()


async def test_a_damaged_chunk_fails_only_its_brick(live: LiveServer, small: SmallDataset) -> None:
    """Bricks are read in batches: a chunk that does not decompress is a
    failed record for its own brick, never for the others read with it.
    (Asked for as zstd, stored zstd bytes pass through undecoded: the page
    finds the damage when it decompresses and draws a missing tile —
    client/test/brick_cache.test.ts.)"""
    damage_chunk(small.root / "color" / "1", (1, 0, 0))
    _, token = await live.user("viewer")
    client = await BrickClient.connect(data_url(live, token))
    try:
        records = await client.fetch(1, (1, 1, 1), ALL, RAW)
        status = {r.brick: r.status for r in records}
        assert status.pop((1, 0, 0)) == wire.STATUS_FAILED
        assert set(status.values()) == {wire.STATUS_OK} and len(status) == len(ALL) - 1
        assert client.done[1] == (1, len(ALL) - 1, 0, 0, 1)
    finally:
        await client.close()


async def test_mags_segmentation_and_mapping(live: LiveServer, small: SmallDataset) -> None:
    _, token = await live.user("viewer")
    client = await BrickClient.connect(data_url(live, token, "segmentation"))
    try:
        records = await client.fetch(1, (2, 2, 2), [(0, 0, 0), (1, 1, 1)])
        for r in records:
            assert r.dtype == 3
            got = from_raw(r.payload, np.dtype("uint32"))
            np.testing.assert_array_equal(
                got, expected_brick(small.segmentation[::2, ::2, ::2], r.brick)
            )
        records = await client.fetch(2, (1, 1, 1), [(1, 0, 1)], ZSTD, "cells")
        got = from_raw(decompress(records[0].payload), np.dtype("uint32"))
        np.testing.assert_array_equal(
            got, small.mapping[expected_brick(small.segmentation, (1, 0, 1))]
        )
    finally:
        await client.close()


async def test_out_of_order_answers(live: LiveServer, small: SmallDataset) -> None:
    """A warm brick asked after cold ones is answered before them."""
    _, token = await live.user("viewer")
    client = await BrickClient.connect(data_url(live, token))
    try:
        await client.fetch(1, (1, 1, 1), [(3, 2, 2)])  # now cached
        order = [(0, 0, 0), (1, 0, 0), (2, 0, 0), (0, 1, 0), (3, 2, 2)]
        records = await client.fetch(2, (1, 1, 1), order)
        got = [r.brick for r in records]
        assert sorted(got) == sorted(order)
        assert got[0] == (3, 2, 2)  # out of order: the cached one first
    finally:
        await client.close()


async def test_bad_frames_get_errors_and_the_socket_goes_on(
    live: LiveServer, small: SmallDataset
) -> None:
    _, token = await live.user("viewer")
    client = await BrickClient.connect(data_url(live, token, "segmentation"))
    try:
        good = wire.pack_request(9, (1, 1, 1), [(0, 0, 0)])
        bad = [
            (b"", wire.E_BAD_FRAME),
            (good[:10], wire.E_BAD_FRAME),  # truncated header
            (good[:-3], wire.E_BAD_FRAME),  # truncated coordinates
            (good + b"\x00", wire.E_BAD_FRAME),  # trailing garbage
            (b"\x7f" + good[1:], wire.E_UNKNOWN_TYPE),
            (
                wire.pack_request(10, (1, 1, 1), [(0, 0, i) for i in range(1025)]),
                wire.E_BATCH_TOO_LARGE,
            ),
            (wire.pack_request(11, (8, 8, 8), [(0, 0, 0)]), wire.E_UNKNOWN_MAG),
            (wire.pack_request(12, (3, 3, 3), [(0, 0, 0)]), wire.E_UNKNOWN_MAG),
            (wire.pack_request(13, (1, 1, 1), [(0, 0, 0)], mapping="nope"), wire.E_UNKNOWN_MAPPING),
            (wire.pack_request(14, (1, 1, 1), [(0, 0, 0)], encoding=7), wire.E_BAD_ENCODING),
            (wire.pack_request(15, (1, 1, 1), []), wire.E_BAD_FRAME),
            (wire.pack_cancel(1)[:5], wire.E_BAD_FRAME),
            (
                struct.pack("<BBHIHHHBB", 1, 0, 1, 16, 1, 1, 1, 200, 0) + b"\xff" * 12,
                wire.E_BAD_FRAME,
            ),
        ]
        for frame, _code in bad:
            await client.ws.send(frame)
        await client.ws.send("text is not a frame")
        # A good request interleaved with the bad ones is answered in full.
        records = await client.fetch(9, (1, 1, 1), [(0, 0, 0)])
        assert records[0].status == wire.STATUS_OK
        await client.until(lambda: len(client.errors) >= len(bad) + 1)
        assert [e[0] for e in client.errors[: len(bad)]] == [code for _, code in bad]
        assert client.errors[-1][0] == wire.E_BAD_FRAME
        assert all(message for _, _, message in client.errors)
        # A request id still open cannot be reused.
        await client.ws.send(wire.pack_request(20, (1, 1, 1), ALL))
        await client.ws.send(wire.pack_request(20, (1, 1, 1), ALL))
        await client.until(lambda: 20 in client.done)
        assert any(e[0] == wire.E_DUPLICATE_REQUEST and e[1] == 20 for e in client.errors)
        assert client.done[20][1] == len(ALL)
    finally:
        await client.close()
    # Other clients were never disturbed, and the server still answers.
    other = await BrickClient.connect(data_url(live, token))
    try:
        assert len(await other.fetch(1, (1, 1, 1), ALL[:3])) == 3
    finally:
        await other.close()


async def test_refusals_close_with_codes(live: LiveServer, small: SmallDataset) -> None:
    _, token = await live.user("viewer")
    for url, code in [
        (f"{live.ws_url}/data/small/color", 4401),
        (f"{live.ws_url}/data/small/color?token=clb_nope", 4401),
        (data_url(live, token, dataset="nope"), 4404),
        (data_url(live, token, layer="nope"), 4404),
    ]:
        async with websockets.connect(url) as ws:
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd is not None and info.value.rcvd.code == code, url
    # A sharing link reads only its annotation's dataset.
    _owner_id, owner = await live.user("owner")
    async with live.client(owner) as http:
        ann = (await http.post("/api/annotations", json={"name": "a"})).json()["id"]
        link = (await http.post(f"/api/annotations/{ann}/links", json={"access": "read"})).json()
    async with websockets.connect(data_url(live, link["token"])) as ws:
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4403


async def test_cancel(live: LiveServer, small: SmallDataset) -> None:
    _, token = await live.user("viewer")
    client = await BrickClient.connect(data_url(live, token))
    try:
        # Cancel named bricks, then a whole request, before reading anything.
        await client.ws.send(wire.pack_request(1, (1, 1, 1), ALL))
        await client.ws.send(wire.pack_cancel(1, ALL[10:]))
        await client.ws.send(wire.pack_request(2, (2, 2, 1), [(0, 0, 0), (1, 1, 1)]))
        await client.ws.send(wire.pack_cancel(2))
        await client.until(lambda: 1 in client.done and 2 in client.done)
        _rid, sent, missing, cancelled, failed = client.done[1]
        assert sent + cancelled == len(ALL) and failed == 0 and missing == 0
        got = [r.brick for r in client.records if r.request_id == 1]
        assert len(got) == sent and len(set(got)) == sent
        assert client.done[2][1] + client.done[2][3] == 2
        # Cancelling something already answered is harmless.
        await client.ws.send(wire.pack_cancel(1))
        assert len(await client.fetch(3, (1, 1, 1), ALL[:2])) == 2
    finally:
        await client.close()


async def test_backpressure_bounds_what_the_server_buffers(settings, tmp_path: Path) -> None:
    limit = 256 * 1024
    live_settings = with_settings(
        settings, brick_send_buffer_bytes=limit, brick_frame_bytes=64 * 1024
    )
    async with live_with(live_settings) as live:
        root = Path(live_settings.roots[0]) / "big"
        make_dataset(root, (256, 256, 128))
        async with live.client(live.admin_token) as http:
            assert (
                await http.post("/api/datasets", json={"name": "big", "url": "big"})
            ).status_code == 201
        _, token = await live.user("viewer")
        bricks = [(x, y, z) for x in range(8) for y in range(8) for z in range(4)]
        # A client that stops reading: small receive buffers on its side.
        slow = await BrickClient.connect(
            f"{live.ws_url}/data/big/segmentation?token={token}", max_queue=1
        )
        fast = await BrickClient.connect(f"{live.ws_url}/data/big/color?token={token}")
        try:
            await slow.ws.send(wire.pack_request(1, (1, 1, 1), bricks))  # 256 x 128 KiB
            # Wait until the buffer is provably full: a producer of the slow
            # socket found ``limit`` bytes waiting and stopped (bounded poll).
            stream = await _stream_of(live, "segmentation")
            for _ in range(3000):  # ~30 s of 10 ms checks
                if stream.stalls:
                    break
                await asyncio.sleep(0.01)
            assert stream.stalls, f"the buffer never filled (peak {stream.peak_bytes} bytes)"
            assert 1 in stream.requests  # held back by the client, not finished
            # Filled to the limit, and never more than one brick past it.
            assert limit <= stream.peak_bytes <= limit + 128 * 1024 + wire.RECORD_BYTES
            # The server keeps serving others meanwhile.
            assert len(await fast.fetch(1, (1, 1, 1), bricks[:20])) == 20
            # When the slow client reads again it gets everything, the bound held throughout.
            await slow.until(lambda: 1 in slow.done, timeout=30)
            assert slow.done[1][1] == len(bricks)
            assert stream.peak_bytes <= limit + 128 * 1024 + wire.RECORD_BYTES
            metrics = live.services.metrics.render().decode()
            stalls = re.search(r"^collab_brick_stalls_total (\S+)$", metrics, re.MULTILINE)
            assert stalls is not None and float(stalls.group(1)) >= 1
        finally:
            await slow.close()
            await fast.close()


async def _stream_of(live: LiveServer, layer: str, timeout: float = 10) -> BrickStream:
    """The server's brick stream of the (one) open data socket on ``layer``."""
    for _ in range(int(timeout / 0.01)):
        found = [s for s in live.services.volumes.streams if s.reader.name == layer]
        if found:
            assert len(found) == 1
            return found[0]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no data socket open on {layer}")
