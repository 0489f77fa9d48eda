"""Proofreading together: merges and min-cut splits on an agglomerate of
10,000 supervoxels, from the request to the new mapping at another client;
and the synapses of such an agglomerate.

    python -m tests.benchmarks.proofread [--half 5832] [--ops 100] [--runs 1]

The dataset: two agglomerates of ``--half`` supervoxels each (an 18³ grid,
six neighbours, affinities uniform in [0.6, 1): cutting off a corner costs
more than a merge's edge), 5,000 single-supervoxel
agglomerates as partners, and 20,000 synapses. The ops alternate: a merge
of the two halves (one edge: the merged agglomerate has 2 × half
supervoxels, ``--half`` of them change agglomerate) and a split of that
agglomerate between a supervoxel of each half (the minimum cut is the
merge's edge; the other half gets a new id).

* **request → new mapping at another client**: from sending ``POST
  …/merge`` or ``…/split`` to the MAPPED frame of that version arriving at
  a viewer on the layer's brick socket (another connection).
* **synapses**: ``GET …/connectome?agglomerate=`` of the merged
  agglomerate (2 × half supervoxels), round trip on one keep-alive
  connection.

The server runs as a subprocess on its embedded PostgreSQL; the clients run
here.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets

from collab.volume import wire
from collab.volume.mags import Mag
from collab.volume.writer import write_agglomerate_graph, write_layer, write_properties
from tests.benchmarks.harness import collab_server, machine, pct
from tests.yclient import YClient

PARTNERS = 5000
SYNAPSES = 20_000


def grid(n: int, first: int, rng: np.random.Generator) -> tuple[list[tuple[int, int]], list[float]]:
    side = int(np.ceil(n ** (1 / 3)))
    ids = {}
    k = 0
    for x in range(side):
        for y in range(side):
            for z in range(side):
                if k < n:
                    ids[(x, y, z)] = first + k
                    k += 1
    edges = []
    for (x, y, z), a in ids.items():
        for d in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
            b = ids.get((x + d[0], y + d[1], z + d[2]))
            if b is not None:
                edges.append((a, b))
    return edges, rng.uniform(0.6, 1.0, len(edges)).tolist()


def make_dataset(root: Path, half: int) -> None:
    rng = np.random.default_rng(11)
    seg = (1 + np.arange(64**3) % (2 * half + PARTNERS)).reshape(64, 64, 64).astype(np.uint32)
    layers = [write_layer(root, "segmentation", "segmentation", seg, [Mag(1, 1, 1)])]
    write_properties(root, root.name, (8.0, 8.0, 8.0), layers)
    n = 2 * half + PARTNERS
    mapping = np.zeros(n + 1, dtype=np.uint64)
    mapping[1 : half + 1] = 1
    mapping[half + 1 : 2 * half + 1] = 2
    mapping[2 * half + 1 :] = np.arange(3, 3 + PARTNERS)
    e1, a1 = grid(half, 1, rng)
    e2, a2 = grid(half, half + 1, rng)
    positions = rng.integers(0, 64, (n + 1, 3))
    write_agglomerate_graph(
        root, "segmentation", "graph", mapping, np.array(e1 + e2), np.array(a1 + a2), positions
    )
    pre = rng.integers(1, 2 * half + 1, SYNAPSES)
    post = rng.integers(1, n + 1, SYNAPSES)
    synapses = [
        {"id": i + 1, "position": [int(v) for v in rng.integers(0, 64, 3)],
         "preSegment": int(a), "postSegment": int(b), "type": "excitatory"}
        for i, (a, b) in enumerate(zip(pre, post, strict=True))
    ]  # fmt: skip
    (root / "synapses.json").write_text(json.dumps({"synapses": synapses}))


class Viewer:
    """A brick socket on the layer noting when each version's MAPPED frame arrives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.arrived: dict[int, float] = {}
        self.pairs: dict[int, int] = {}
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async for frame in self.ws:
            if isinstance(frame, bytes) and frame[0] == wire.DONE:
                self.ready.set()
            elif isinstance(frame, bytes) and frame[0] == wire.MAPPED:
                version, _reset, pairs = wire.unpack_mapped(frame)
                self.arrived.setdefault(version, time.perf_counter())
                self.pairs[version] = self.pairs.get(version, 0) + len(pairs)


async def run_once(server: Any, a: argparse.Namespace, name: str) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as http:
        r = await http.post("/api/annotations", json={"name": "proof", "dataset": name})
        ann = r.json()["id"]
    owner = await YClient(server.sync_url(ann, "segmentation", acks="1")).connect()
    layer = {"name": "L1", "dtype": "uint32", "fallback": "segmentation",
             "activeMapping": "graph", "mags": ["1"]}  # fmt: skip
    from pycrdt import Map

    assert await owner.write(lambda: owner.map("layers").__setitem__("L1", Map(layer)))
    ws = await websockets.connect(
        f"{server.ws}/volume/{ann}/L1?token={server.token}", max_size=2**26, compression=None
    )
    viewer = Viewer(ws)
    base = f"/api/annotations/{ann}/volume/L1"
    latencies: dict[str, list[float]] = {"merge": [], "split": []}
    answers: dict[str, list[float]] = {"merge": [], "split": []}
    synapses_ms: list[float] = []
    half = a.half
    async with asyncio.TaskGroup() as tg:
        reading = tg.create_task(viewer.run())
        await ws.send(wire.pack_request(1, (1, 1, 1), [(0, 0, 0)], 0))
        await asyncio.wait_for(viewer.ready.wait(), 30)
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as http:
            # The first requests build the mapping (read the graphs): not measured.
            for k in range(a.ops + 2):
                kind = "merge" if k % 2 == 0 else "split"
                body = (
                    {"a": 1 + k % half, "b": half + 1 + (7 * k) % half}
                    if kind == "merge"
                    else {"sources": [1 + (3 * k) % half], "sinks": [half + 1 + (5 * k) % half]}
                )
                started = time.perf_counter()
                r = await http.post(f"{base}/{kind}", json=body)
                answered = time.perf_counter()
                assert r.status_code == 201, r.text
                version = r.json()["version"]
                deadline = time.monotonic() + 30
                while version not in viewer.arrived and time.monotonic() < deadline:
                    await asyncio.sleep(0.001)
                assert version in viewer.arrived, "no MAPPED frame for the op"
                assert viewer.pairs[version] == half, (kind, viewer.pairs[version])
                if k >= 2:
                    latencies[kind].append((viewer.arrived[version] - started) * 1000)
                    answers[kind].append((answered - started) * 1000)
                if kind == "merge" and k >= 2 and len(synapses_ms) < a.synapse_reads:
                    agg = r.json()["agglomerate"]
                    for _ in range(5):
                        t = time.perf_counter()
                        s = await http.get(f"{base}/connectome", params={"agglomerate": agg})
                        synapses_ms.append((time.perf_counter() - t) * 1000)
                        assert s.status_code == 200 and s.json()["supervoxels"] == 2 * half
        await ws.close()
        reading.cancel()
    await owner.close()
    return {"latencies": latencies, "answers": answers, "synapses_ms": synapses_ms}


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--half", type=int, default=18**3, help="supervoxels of each half (a cube: 18³)")
    p.add_argument("--ops", type=int, default=100)
    p.add_argument("--synapse-reads", type=int, default=100)
    p.add_argument("--runs", type=int, default=1)
    a = p.parse_args()
    gc.disable()  # the load generator's own pauses would count as latency
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="collab-proof-") as tmp:
        data_dir = Path(tmp) / "data"
        root = data_dir / "datasets" / "proof"
        started = time.perf_counter()
        make_dataset(root, a.half)
        print(f"dataset: {time.perf_counter() - started:.1f} s")
        async with collab_server(data_dir=data_dir) as server:
            async with httpx.AsyncClient(
                base_url=server.url, headers={"authorization": f"Bearer {server.token}"}
            ) as http:
                r = await http.post("/api/datasets", json={"name": "proof", "url": "proof"})
                assert r.status_code == 201, r.text
            for run in range(a.runs):
                r = await run_once(server, a, "proof")
                print(f"run {run + 1}: agglomerate of {2 * a.half} supervoxels, {a.ops} ops")
                for kind in ("merge", "split"):
                    lat, ans = r["latencies"][kind], r["answers"][kind]
                    print(
                        f"  {kind}: request → MAPPED at another client p50 {pct(lat, 50):.1f} ms, "
                        f"p99 {pct(lat, 99):.1f} ms, max {max(lat):.1f} ms "
                        f"(answer p50 {pct(ans, 50):.1f} ms; {len(lat)} ops, "
                        f"{a.half} supervoxels changed each)"
                    )
                s = r["synapses_ms"]
                print(
                    f"  synapses of the {2 * a.half}-supervoxel agglomerate: p50 "
                    f"{pct(s, 50):.1f} ms, p99 {pct(s, 99):.1f} ms ({len(s)} reads, "
                    f"{SYNAPSES} synapses in the table)"
                )


if __name__ == "__main__":
    asyncio.run(main())
