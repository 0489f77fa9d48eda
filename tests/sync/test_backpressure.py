"""Backpressure: a client that stops reading is closed with 1013; the room,
its writers and the log are unaffected."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from collab.config import Settings
from collab.http.sync_socket import SocketPeer
from collab.sync import messages as m
from tests.conftest import LiveServer, live_with, with_settings
from tests.sync.test_bad_input import _setup, _still_works_after


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A small send queue, so a stalled client is found quickly."""
    return with_settings(settings, send_queue_max=16)


async def test_slow_client_is_closed_with_1013_and_others_carry_on(live: LiveServer) -> None:
    token, ann, bystander = await _setup(live)
    assert live.settings.send_queue_max == 16
    # A client that stops reading: its library buffers one frame, then TCP fills up.
    slow = await websockets.connect(
        live.sync_url(ann, token=token), max_size=None, max_queue=1, compression=None
    )
    await slow.send(m.pack_sync_step1(b"\x00"))
    big = "x" * 100_000
    for i in range(120):
        bystander.map("meta")[f"c{i}"] = big
        if i % 10 == 0:
            await asyncio.sleep(0.01)
    await bystander.wait(lambda: bystander.saved == 121, timeout=30)
    # Reading now, the slow client finds its socket closed by the server with 1013.
    with pytest.raises(websockets.ConnectionClosed):
        for _ in range(1000):
            await asyncio.wait_for(slow.recv(), 10)
    assert slow.close_code == 1013
    await _still_works_after(live, token, ann, bystander, versions=122)


async def test_a_stalled_client_holds_at_most_send_queue_bytes(settings: Settings) -> None:
    """The byte bound: relayed frames queued for a client that stopped reading
    never pass ``send_queue_bytes`` (the frame count is no limit here), however
    much the room relays (40× the bound)."""
    limit = 1024 * 1024
    s = with_settings(settings, send_queue_bytes=limit, send_queue_max=1_000_000)
    async with live_with(s) as live:
        token, ann, bystander = await _setup(live)
        slow = await websockets.connect(
            live.sync_url(ann, token=token), max_size=None, max_queue=1, compression=None
        )
        await slow.send(m.pack_sync_step1(b"\x00"))
        port = slow.local_address[1]
        room = next(r for k, r in live.services.rooms.rooms.items() if k.annotation_id == ann)

        def stalled() -> list[SocketPeer]:
            return [p for p in room.peers if isinstance(p, SocketPeer) and p.ws.client.port == port]

        await bystander.wait(lambda: bool(stalled()))
        peer = stalled()[0]
        big = "y" * 200_000
        for i in range(200):  # 40 MB relayed
            bystander.map("meta")[f"d{i}"] = big
            if i % 10 == 0:
                await asyncio.sleep(0.01)
        await bystander.wait(lambda: bystander.saved >= 201, timeout=60)
        assert peer.too_slow
        assert 0 < peer.peak_bytes <= limit
        assert peer.queued_bytes == 0 and not peer.out  # released at once
        with pytest.raises(websockets.ConnectionClosed):
            for _ in range(1000):
                await asyncio.wait_for(slow.recv(), 10)
        assert slow.close_code == 1013
        await bystander.close()
