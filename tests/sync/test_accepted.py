"""The collab "accepted" message (``?accepted=1``, docs/protocol.md)."""

from __future__ import annotations

import asyncio

import websockets
from pycrdt import Doc, Map

from collab.sync import messages as m
from tests.conftest import LiveServer


async def test_accepted_names_the_version_of_each_update_in_order(live: LiveServer) -> None:
    """``?accepted=1``: one "accepted" per step 2 or update taken, in order."""
    _, token = await live.user()
    ann = await live.annotation(token)
    async with websockets.connect(
        live.sync_url(ann, token=token, accepted="1", acks="1"), compression=None
    ) as ws:
        doc = Doc()
        updates: list[bytes] = []
        doc.observe(lambda e: updates.append(e.update))
        trees = doc.get("trees", type=Map)
        for i in range(3):
            trees[f"t{i}"] = Map({"name": f"t{i}"})
        await ws.send(m.pack_sync_step2(m.EMPTY_UPDATE))  # nothing new: the current version
        for update in updates:
            await ws.send(m.pack_update(update))
        await ws.send(m.pack_update(updates[0]))  # known already: the newest version
        accepted = []
        async with asyncio.timeout(10):
            while len(accepted) < 5:
                frame = await ws.recv()
                if isinstance(frame, bytes) and frame[0] == m.MessageType.ACCEPTED:
                    accepted.append(m.parse_accepted(frame))
        assert accepted == [0, 1, 2, 3, 3]
