"""Proofreading against the real server: merges and splits of an
annotation's editable mapping, pushed to viewers, refused when wrong,
undone, reverted and restored, and the connectome following them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
from pycrdt import Map

from collab.volume.writer import write_agglomerate_graph
from tests.conftest import LiveServer
from tests.volume.helpers import BrickClient, make_dataset
from tests.yclient import YClient

# The small dataset's supervoxels are blocks: id = 1 + x//25 + 4·(y//20) + 16·(z//35).
# Agglomerate 1: supervoxels 1-8 (z 0, y 0-1), two halves joined weakly
# (2-3, 6-7); agglomerate 2: 9-16; agglomerate 3: 17-32.
WEAK = {(2, 3), (6, 7)}


def _block(s: int) -> tuple[int, int, int]:
    s -= 1
    return s % 4, (s // 4) % 4, s // 16


def write_graph(root: Path) -> None:
    mapping = np.zeros(33, dtype=np.uint64)
    mapping[1:9], mapping[9:17], mapping[17:33] = 1, 2, 3
    edges, affinities = [], []
    for a in range(1, 33):
        for b in range(a + 1, 33):
            pa, pb = _block(a), _block(b)
            if mapping[a] == mapping[b] and sum(abs(pa[i] - pb[i]) for i in range(3)) == 1:
                edges.append((a, b))
                affinities.append(0.1 if (a, b) in WEAK else 0.9)
    positions = np.zeros((33, 3), dtype=np.int64)
    for s in range(1, 33):
        x, y, z = _block(s)
        positions[s] = (x * 25 + 12, y * 20 + 10, z * 35 + 17)
    write_agglomerate_graph(
        root, "segmentation", "graph", mapping, np.array(edges), np.array(affinities), positions
    )
    synapses = [
        {"id": 1, "position": [80, 20, 34], "pre": 1, "post": 3, "preSegment": 4,
         "postSegment": 20, "type": "excitatory"},
        {"id": 2, "position": [30, 50, 34], "pre": 3, "post": 2, "preSegment": 22,
         "postSegment": 10, "type": "inhibitory"},
    ]  # fmt: skip
    (root / "synapses.json").write_text(json.dumps({"synapses": synapses}))


async def setup(live: LiveServer, name: str) -> tuple[int, str, int, YClient]:
    root = Path(live.settings.roots[0]) / name
    make_dataset(root)
    write_graph(root)
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/datasets", json={"name": name, "url": name})
        assert r.status_code == 201, r.text
    a_id, a = await live.user(f"{name}-owner")
    async with live.client(a) as http:
        r = await http.post("/api/annotations", json={"name": "proof", "dataset": name})
        assert r.status_code == 201, r.text
        ann = r.json()["id"]
    w = await YClient(live.sync_url(ann, "segmentation", token=a, acks="1")).connect()
    layer = {"name": "L1", "dtype": "uint32", "fallback": "segmentation",
             "activeMapping": "graph", "mags": ["1", "2-2-2"]}  # fmt: skip
    assert await w.write(lambda: w.map("layers").__setitem__("L1", Map(layer)))
    return a_id, a, ann, w


async def lookup(live: LiveServer, token: str, ann: int, ids: list[int]) -> list[int]:
    async with live.client(token) as http:
        r = await http.post(
            f"/api/annotations/{ann}/volume/L1/agglomerates", json={"segments": ids}
        )
        assert r.status_code == 200, r.text
        return list(r.json()["agglomerates"])


async def post(live: LiveServer, token: str, ann: int, what: str, body: Any) -> Any:
    async with live.client(token) as http:
        return await http.post(f"/api/annotations/{ann}/volume/L1/{what}", json=body)


async def test_merge_split_undo_revert_and_the_connectome(live: LiveServer) -> None:
    _a_id, a, ann, w = await setup(live, "pr1")
    viewer = await BrickClient.connect(f"{live.ws_url}/volume/{ann}/L1?token={a}")
    await viewer.fetch(1, (1, 1, 1), [(0, 0, 0)])  # the socket is watching from here
    assert await lookup(live, a, ann, [1, 4, 9, 17, 999]) == [1, 1, 2, 3, 0]

    async def connectome(segment: int) -> dict[int, tuple[int, int]]:
        async with live.client(a) as http:
            r = await http.get(f"/api/annotations/{ann}/volume/L1/connectome?segment={segment}")
            assert r.status_code == 200, r.text
            return {p["agglomerate"]: (p["out"], p["in"]) for p in r.json()["partners"]}

    assert await connectome(17) == {1: (0, 1), 2: (1, 0)}

    # Merge: 9's agglomerate joins 1's; the viewer is told at once.
    r = await post(
        live, a, ann, "merge", {"a": 1, "b": 9, "positions": [[12, 10, 17], [12, 50, 17]]}
    )
    assert r.status_code == 201, r.text
    merged = r.json()
    assert (merged["agglomerate"], merged["merged"]) == (1, 2)
    await viewer.until(lambda: any(len(p) for _, _, p in viewer.mapped))
    pushed = {int(s): int(g) for _, _, pairs in viewer.mapped for s, g in pairs.tolist()}
    assert pushed == dict.fromkeys(range(9, 17), 1)
    assert await lookup(live, a, ann, [9, 16, 17]) == [1, 1, 3]
    assert await connectome(17) == {1: (1, 1)}

    # Refused, nothing written: within one agglomerate, unknown ids, seeds
    # across agglomerates, a seed on both sides, a malformed body.
    for what, body, status in [
        ("merge", {"a": 1, "b": 16}, 409),
        ("merge", {"a": 1, "b": 999}, 422),
        ("split", {"sources": [1], "sinks": [17]}, 409),
        ("split", {"sources": [1], "sinks": [1]}, 422),
        ("merge", {"a": "one", "b": 2}, 400),
        ("split", {"sources": [], "sinks": [2]}, 400),
    ]:
        r = await post(live, a, ann, what, body)
        assert r.status_code == status, (what, body, r.status_code, r.text)
        assert r.json()["error"], r.text
    async with live.client(a) as http:
        history = (await http.get(f"/api/annotations/{ann}/versions?doc=segmentation")).json()
    assert history["versions"][0]["version"] == merged["version"], "a refusal wrote a version"

    # Split agglomerate 1 between 1 and 4: the weak edges are the cut.
    r = await post(live, a, ann, "split", {"sources": [1], "sinks": [4]})
    assert r.status_code == 201, r.text
    split = r.json()
    assert sorted(map(tuple, split["cut"])) == sorted(WEAK)
    # A new id of the op's own: the base's largest (3) + seq · 2^16 + 1.
    new = 3 + int(split["op"][3:]) * 65536 + 1
    assert split["agglomerates"] == [1, new]
    assert await lookup(live, a, ann, [1, 2, 3, 4, 7, 8, 9]) == [1, 1, new, new, new, new, 1]
    assert await connectome(17) == {new: (0, 1), 1: (1, 0)}

    # A client cannot write a proofreading op itself.
    rogue = await YClient(live.sync_url(ann, "segmentation", token=a)).connect()
    rogue.map("ops")["mine"] = {"kind": "merge", "layer": "L1", "a": 1, "b": 17}
    code, reason = await rogue.wait_closed()
    assert code == 4422 and "server only" in reason

    # Undo the split (delete its op): exactly the edges it cut come back.
    viewer.mapped.clear()
    assert await w.write(lambda: w.map("ops").pop(split["op"]))
    await viewer.until(lambda: any(len(p) for _, _, p in viewer.mapped))
    assert await lookup(live, a, ann, [3, 4, 7, 8]) == [1, 1, 1, 1]
    async with live.client(a) as http:
        graph = (await http.get(f"/api/annotations/{ann}/volume/L1/agglomerates/1")).json()
    assert {(2, 3), (6, 7), (1, 9)} <= {tuple(e) for e in graph["edges"]}
    assert len(graph["supervoxels"]) == 16

    # Revert the merge, then restore the version before the revert.
    async with live.client(a) as http:
        r = await http.post(
            f"/api/annotations/{ann}/revert",
            json={"version": merged["version"], "doc": "segmentation"},
        )
        assert r.status_code == 200, r.text
        reverted = r.json()["version"]
    assert await lookup(live, a, ann, [1, 9, 16]) == [1, 2, 2]
    async with live.client(a) as http:
        r = await http.post(
            f"/api/annotations/{ann}/restore",
            json={"version": reverted - 1, "doc": "segmentation"},
        )
        assert r.status_code == 200, r.text
    assert await lookup(live, a, ann, [1, 9, 16]) == [1, 1, 1]

    # A client rewriting the server's op in the document changes nothing:
    # the mapping applies the server's record of it.
    rewritten = {"kind": "merge", "layer": "L1", "a": 1, "b": 17, "seq": 1}
    assert await w.write(lambda: w.map("ops").__setitem__(merged["op"], rewritten))
    assert await lookup(live, a, ann, [1, 9, 17]) == [1, 1, 3]
    await rogue.close()
    await viewer.close()
    await w.close()


async def test_two_proofreaders_at_once_converge(live: LiveServer) -> None:
    """Merges and splits by two users at once: each request is checked
    against the mapping as sequenced (a loser gets 409); every viewer ends
    with the same mapping, and one rebuilt from the log agrees."""
    _a_id, a, ann, w = await setup(live, "pr2")
    b_id, b = await live.user("pr2-editor")
    async with live.client(a) as http:
        r = await http.post(f"/api/annotations/{ann}/grants", json={"user": b_id, "role": "editor"})
        assert r.status_code in (200, 201), r.text
    views = [await BrickClient.connect(f"{live.ws_url}/volume/{ann}/L1?token={t}") for t in (a, b)]
    for v in views:
        await v.fetch(1, (1, 1, 1), [(0, 0, 0)])
    requests = [
        (a, "merge", {"a": 1, "b": 9}),
        (b, "merge", {"a": 16, "b": 2}),  # the same merge, the other way round
        (a, "split", {"sources": [1], "sinks": [4]}),
        (b, "split", {"sources": [5], "sinks": [8]}),
        (a, "merge", {"a": 20, "b": 12}),
        (b, "merge", {"a": 3, "b": 30}),
    ]
    answers = await asyncio.gather(*(post(live, t, ann, what, body) for t, what, body in requests))
    assert all(r.status_code in (201, 409) for r in answers), [r.text for r in answers]
    assert sum(r.status_code == 201 for r in answers) >= 3
    versions = [r.json()["version"] for r in answers if r.status_code == 201]
    assert len(set(versions)) == len(versions), "two ops share a version"
    everyone = list(range(1, 33))
    seen_a = await lookup(live, a, ann, everyone)
    assert await lookup(live, b, ann, everyone) == seen_a
    # Viewers: the base with every pushed pair applied, in order.
    last = max(versions)
    for v in views:
        await v.until(lambda v=v: any(ver == last for ver, _, _ in v.mapped))
        now = dict(zip(everyone, [1] * 8 + [2] * 8 + [3] * 16, strict=True))
        for _, reset, pairs in v.mapped:
            assert not reset
            now.update({int(s): int(g) for s, g in pairs.tolist()})
        assert [now[s] for s in everyone] == seen_a
    # Built again from the log alone: the same.
    live.server.config.app.state.proofreading._mappings.clear()
    assert await lookup(live, a, ann, everyone) == seen_a
    for v in views:
        await v.close()
    await w.close()
