"""Rate limits and the document size cap, against a real server.

Each test gives the server a tight limit (a refill of 0.001/s: nothing comes
back while the test runs) and checks three things: the client over it is
refused with the documented code and a reason naming the limit, everything
accepted before the refusal is stored, and other callers carry on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import websockets

from collab.config import DEFAULT_LIMITS
from collab.limits import Rate
from collab.volume import wire
from tests.conftest import live_with, with_settings
from tests.volume.helpers import make_dataset
from tests.yclient import YClient, put_node

TIGHT = 0.001  # tokens per second: no refill within a test


async def refusal(url: str) -> tuple[int | None, str]:
    """Open a socket the server refuses; its close code and reason."""
    ws = await websockets.connect(url)
    with pytest.raises(websockets.ConnectionClosed):
        await ws.recv()
    return ws.close_code, ws.close_reason or ""


def limits(**rates: Rate) -> object:
    from dataclasses import replace

    return replace(DEFAULT_LIMITS, **rates)


async def test_connections_per_token_and_per_ip(settings) -> None:  # type: ignore[no-untyped-def]
    s = with_settings(settings, limits=limits(connect_token=Rate(TIGHT, 3)))
    async with live_with(s) as live:
        _, a = await live.user("a")
        _, b = await live.user("b")
        ann = await live.annotation(a)
        opened = [await YClient(live.sync_url(ann, token=a)).connect() for _ in range(3)]
        code, reason = await refusal(live.sync_url(ann, token=a))
        assert code == 1008 and "connections per token" in reason, (code, reason)
        # The replay socket counts against the same bucket.
        assert (await refusal(f"{live.ws_url}/replay/{ann}/skeleton?token={a}"))[0] == 1008
        # Another token is not held back, and the open sockets still work.
        other = await YClient(live.sync_url(await live.annotation(b), token=b)).connect()
        put_node(opened[0], "n1", {"treeId": "t1", "x": 1, "y": 2, "z": 3})
        await opened[1].wait(lambda: "n1" in opened[1].map("nodes"))
        for c in (*opened, other):
            await c.close()

    s = with_settings(settings, limits=limits(connect_ip=Rate(TIGHT, 2)))
    async with live_with(s) as live:
        _, a = await live.user("a")
        _, b = await live.user("b")
        ann = await live.annotation(a)
        first = await YClient(live.sync_url(ann, token=a)).connect()
        mine = await live.annotation(b)
        second = await YClient(live.sync_url(mine, token=b)).connect()
        code, reason = await refusal(live.sync_url(mine, token=b))
        assert code == 1008 and "connections per IP" in reason, (code, reason)
        await first.close()
        await second.close()


async def test_messages_per_token_refused_others_saved(settings) -> None:  # type: ignore[no-untyped-def]
    s = with_settings(settings, limits=limits(messages_token=Rate(TIGHT, 40)))
    async with live_with(s) as live:
        _, a = await live.user("flooder")
        b_id, b = await live.user("bystander")
        ann = await live.annotation(a)
        async with live.client(a) as http:
            r = await http.post(
                f"/api/annotations/{ann}/grants", json={"user": b_id, "role": "editor"}
            )
        flooder = await YClient(live.sync_url(ann, token=a, acks="1")).connect()
        bystander = await YClient(live.sync_url(ann, token=b, acks="1")).connect()
        assert r.status_code in (200, 201), r.text
        for i in range(100):  # well past 40 messages
            put_node(flooder, f"f{i}", {"treeId": "t1", "x": i, "y": 0, "z": 0})
        code, reason = await flooder.wait_closed()
        assert code == 1008 and "messages per token" in reason, (code, reason)
        # What the server took before the refusal is stored and reached the others.
        put_node(bystander, "b1", {"treeId": "t2", "x": 0, "y": 0, "z": 0})
        await bystander.wait(lambda: "b1" in bystander.map("nodes"))
        async with live.client(b) as http:
            head = (await http.get(f"/api/annotations/{ann}/versions")).json()["versions"][0][
                "version"
            ]
        await bystander.wait(lambda: bystander.saved >= head)
        fresh = await YClient(live.sync_url(ann, token=b)).connect()
        taken = {k for k in fresh.map("nodes").keys() if k.startswith("f")}
        assert 20 <= len(taken) < 100
        assert taken == {k for k in bystander.map("nodes").keys() if k.startswith("f")}
        for c in (bystander, fresh):
            await c.close()


async def test_requests_per_token_answer_429(settings) -> None:  # type: ignore[no-untyped-def]
    s = with_settings(settings, limits=limits(requests_token=Rate(TIGHT, 5)))
    async with live_with(s) as server:
        _, a = await server.user("a")  # the admin's token made this request
        async with server.client(a) as http:
            answers = [(await http.get("/api/annotations")).status_code for _ in range(5)]
            assert answers == [200] * 5
            r = await http.get("/api/annotations")
            assert r.status_code == 429
            assert r.json()["error"]["code"] == "rate_limited"
            assert "requests per token" in r.json()["error"]["message"]
            assert int(r.headers["retry-after"]) >= 1
        async with server.client(server.admin_token) as http:
            assert (await http.get("/api/annotations")).status_code == 200


async def test_data_socket_messages(settings) -> None:  # type: ignore[no-untyped-def]
    s = with_settings(settings, limits=limits(messages_token=Rate(TIGHT, 5)))
    async with live_with(s) as live:
        make_dataset(Path(s.roots[0]) / "small")
        async with live.client(live.admin_token) as http:
            assert (
                await http.post("/api/datasets", json={"name": "small", "url": "small"})
            ).status_code == 201
        _, a = await live.user("a")
        async with websockets.connect(f"{live.ws_url}/data/small/color?token={a}") as ws:
            for i in range(20):
                try:
                    await ws.send(wire.pack_cancel(i))
                except websockets.ConnectionClosed:
                    break
            await ws.wait_closed()
            assert ws.close_code == 1008 and "messages per token" in (ws.close_reason or "")


async def test_document_size_cap(settings) -> None:  # type: ignore[no-untyped-def]
    s = with_settings(settings, max_document_bytes=6000)
    async with live_with(s) as live:
        _, a = await live.user("a")
        ann = await live.annotation(a)
        other = await live.annotation(a, "other")
        writer = await YClient(live.sync_url(ann, token=a, acks="1")).connect()
        for i in range(60):  # ~200 bytes each: passes 6,000 bytes
            put_node(
                writer, f"n{i}", {"treeId": "t1", "x": i, "y": 0, "z": 0, "comment": "c" * 150}
            )
        code, reason = await writer.wait_closed()
        assert code == 4413 and reason.startswith("document full"), (code, reason)
        # Readers still open it; what was accepted is stored; other documents take writes.
        reader = await YClient(live.sync_url(ann, token=a)).connect()
        kept = len(reader.map("nodes"))
        assert 10 <= kept < 60
        async with live.client(a) as http:
            versions = (await http.get(f"/api/annotations/{ann}/versions")).json()["versions"]
            assert versions[0]["version"] >= kept
            nodes = "".join(f"<node id='{i}' x='1' y='1' z='{i}'/>" for i in range(1, 20))
            nml = f"<things><thing id='1'><nodes>{nodes}</nodes></thing></things>"
            r = await http.post(
                f"/api/annotations/{ann}/nml",
                content=nml,
                headers={"content-type": "application/xml"},
            )
            assert r.status_code == 413 and r.json()["error"]["code"] == "document_full", r.text
        elsewhere = await YClient(live.sync_url(other, token=a, acks="1")).connect()
        put_node(elsewhere, "x", {"treeId": "t", "x": 0, "y": 0, "z": 0})
        await elsewhere.wait(lambda: elsewhere.saved >= 1)
        for c in (reader, elsewhere):
            await c.close()
