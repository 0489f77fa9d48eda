"""Blocks of new segment ids (collab/segmentation/ids.py): concurrent takers
never share an id, each block is in the document, and bad requests are 4xx."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pycrdt import Map

from collab.document.log import RoomKey
from tests.conftest import LiveServer
from tests.volume.helpers import make_dataset
from tests.yclient import YClient


async def add_layer(client: YClient, layer: str, **fields: object) -> None:
    entry = {"name": layer, "dtype": "uint32", "fallback": None, **fields}
    assert await client.write(lambda: client.map("layers").__setitem__(layer, Map(entry)))


async def server_layer(live: LiveServer, ann: int, layer: str, **fields: object) -> None:
    """A layer written by the server (as an import writes one: with its
    ``largestSegmentId``, which clients may not write)."""
    entry = {"name": layer, "dtype": "uint32", "fallback": None, **fields}
    async with live.services.rooms.hold(RoomKey(ann, "segmentation")) as room:
        await room.quiet()
        room.change(
            lambda doc: doc.get("layers", type=Map).__setitem__(layer, Map(entry)), None, {}
        )


async def test_concurrent_blocks_never_overlap(live: LiveServer) -> None:
    _, a = await live.user("Ada")
    b_id, b = await live.user("Bo")
    ann = await live.annotation(a, "ids")
    async with live.client(a) as http:
        r = await http.post(f"/api/annotations/{ann}/grants", json={"user": b_id, "role": "editor"})
        assert r.status_code in (200, 201), r.text
    writer = await YClient(live.sync_url(ann, "segmentation", token=a, acks="1")).connect()
    await add_layer(writer, "L1")

    async def take(token: str, n: int) -> list[tuple[int, int]]:
        got = []
        async with live.client(token) as http:
            for k in range(n):
                r = await http.post(
                    f"/api/annotations/{ann}/segment-ids", json={"layer": "L1", "count": 1 + k % 5}
                )
                assert r.status_code == 201, r.text
                body = r.json()
                got.append((body["first"], body["count"]))
        return got

    blocks = [b for part in await asyncio.gather(take(a, 25), take(b, 25)) for b in part]
    taken = [i for first, count in blocks for i in range(first, first + count)]
    assert len(taken) == len(set(taken)) and min(taken) == 1
    # Every block is in the document (idBlocks), and largestSegmentId covers them.
    reader = await YClient(live.sync_url(ann, "segmentation", token=a)).connect()
    await reader.wait(lambda: len(reader.map("idBlocks")) == len(blocks))
    recorded = {
        (int(key.split("/")[1]), int(value["count"]))
        for key, value in reader.map("idBlocks").items()
    }
    assert recorded == set(blocks)
    assert int(reader.map("layers")["L1"]["largestSegmentId"]) == max(taken)
    for c in (writer, reader):
        await c.close()


async def test_blocks_start_above_the_fallback_and_the_recorded_largest(live: LiveServer) -> None:
    make_dataset(Path(live.settings.roots[0]) / "small")
    props = Path(live.settings.roots[0]) / "small" / "datasource-properties.json"
    largest = json.loads(props.read_text())["dataLayers"][1]["largestSegmentId"]
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": "small", "url": "small"})
        assert r.status_code == 201, r.text
    _, token = await live.user("Ada")
    async with live.client(token) as http:
        ann = (await http.post("/api/annotations", json={"name": "f", "dataset": "small"})).json()[
            "id"
        ]
    writer = await YClient(live.sync_url(ann, "segmentation", token=token, acks="1")).connect()
    await add_layer(writer, "over-fallback", fallback="segmentation")
    await server_layer(live, ann, "imported", largestSegmentId=5000)
    async with live.client(token) as http:
        url = f"/api/annotations/{ann}/segment-ids"
        first = (await http.post(url, json={"layer": "over-fallback", "count": 3})).json()
        assert first["first"] == largest + 1, (first, largest)
        imported = (await http.post(url, json={"layer": "imported", "count": 1})).json()
        assert imported["first"] == 5001
    await writer.close()


async def test_bad_requests(live: LiveServer) -> None:
    _, token = await live.user("Ada")
    _, other = await live.user("Eve")
    ann = await live.annotation(token, "bad")
    writer = await YClient(live.sync_url(ann, "segmentation", token=token, acks="1")).connect()
    await add_layer(writer, "L1", dtype="uint8")
    await server_layer(live, ann, "huge", largestSegmentId=1e300)
    # Clients may not write it: the sender is refused, nothing applied.
    other_writer = await YClient(live.sync_url(ann, "segmentation", token=token)).connect()
    other_writer.map("layers")["forged"] = Map({"name": "f", "largestSegmentId": 2**32})
    await other_writer.wait_closed()
    assert other_writer.closed is not None and other_writer.closed[0] == 4422
    url = f"/api/annotations/{ann}/segment-ids"
    async with live.client(token) as http:
        for body, status in (
            ({"layer": "nope", "count": 1}, 422),  # no such volume layer in the document
            ({"layer": "L1", "count": 0}, 400),
            ({"layer": "L1", "count": 1025}, 400),
            ({"layer": "L1", "count": "5"}, 400),
            ({"layer": "L1\u0000", "count": 1}, 400),
            ({"count": 1}, 400),
            ({"layer": "L1", "count": 255}, 201),
            ({"layer": "L1", "count": 1}, 422),  # a uint8 layer has ids 1..255 only
            ({"layer": "huge", "count": 1}, 422),
        ):
            r = await http.post(url, json=body)
            assert r.status_code == status, (body, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/json")
    async with live.client(other) as http:
        r = await http.post(url, json={"layer": "L1", "count": 1})
        assert r.status_code == 403, r.text
    await writer.close()
