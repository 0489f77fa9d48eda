"""NML at a million nodes: import (parse + merge into the live document, one
version) and export through the REST API of a real server, peak server memory,
a new client's first sync of that document, and writer→reader latency of one
node added while 20 clients watch it.

    python -m tests.benchmarks.nml_million [--nodes 1000000] [--trees 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import websockets

from collab.sync import messages as m
from tests.benchmarks.harness import collab_server, machine, summary_ms
from tests.benchmarks.yraw import UPDATE_PREFIX, connect


def make_nml(path: Path, nodes: int, trees: int, seed: int = 7) -> None:
    """A synthetic tracing: each tree a random walk with branches, written as NML."""
    rnd = random.Random(seed)
    per_tree = nodes // trees
    node_id = 1
    with path.open("w") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<things>\n  <parameters>\n')
        f.write(
            '    <experiment name="bench" />\n    <scale x="11.24" y="11.24" z="28.0" unit="nanometer" />\n  </parameters>\n'
        )
        comments = []
        for t in range(1, trees + 1):
            f.write(
                f'  <thing id="{t}" color.r="0.5" color.g="0.2" color.b="0.9" color.a="1.0" name="neuron {t}">\n    <nodes>\n'
            )
            x, y, z = rnd.uniform(0, 50000), rnd.uniform(0, 50000), rnd.uniform(0, 5000)
            first = node_id
            edges = []
            for k in range(per_tree):
                x += rnd.uniform(-20, 20)
                y += rnd.uniform(-20, 20)
                z += rnd.uniform(-5, 5)
                f.write(
                    f'      <node id="{node_id}" radius="{rnd.uniform(1, 5):.2f}" x="{x:.1f}" y="{y:.1f}" z="{z:.1f}" rotX="0.0" rotY="0.0" rotZ="0.0" inVp="0" inMag="1" bitDepth="8" interpolation="true" time="{1700000000000 + node_id}" />\n'
                )
                if k:
                    parent = node_id - 1 if rnd.random() > 0.02 else rnd.randint(first, node_id - 1)
                    edges.append((parent, node_id))
                if k % 1000 == 0:
                    comments.append((node_id, f"checkpoint {k}"))
                node_id += 1
            f.write("    </nodes>\n    <edges>\n")
            f.writelines(f'      <edge source="{s}" target="{e}" />\n' for s, e in edges)
            f.write("    </edges>\n  </thing>\n")
        f.write("  <branchpoints />\n  <comments>\n")
        f.writelines(f'    <comment node="{n}" content="{c}" />\n' for n, c in comments)
        f.write("  </comments>\n  <groups />\n</things>\n")


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            await asyncio.sleep(0.05)


async def first_sync(url: str) -> float:
    started = time.perf_counter()
    async with websockets.connect(
        url, max_size=None, compression=None, ping_interval=None, open_timeout=60
    ) as ws:
        await ws.send(m.pack_sync_step1(b"\x00"))
        async for frame in ws:
            if isinstance(frame, bytes) and frame[:2] == b"\x00\x01":
                return time.perf_counter() - started
    raise RuntimeError("no sync step 2")


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nodes", type=int, default=1_000_000)
    p.add_argument("--trees", type=int, default=1000)
    p.add_argument("--watchers", type=int, default=20)
    p.add_argument("--adds", type=int, default=300)
    p.add_argument(
        "--gc-full-every", type=float, default=None, help="server's COLLAB_GC_FULL_EVERY_SECONDS"
    )
    a = p.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="collab-nml-") as tmp:
        (Path(tmp) / "data").mkdir()
        await run(a, Path(tmp) / "big.nml", Path(tmp) / "data")


async def run(a: argparse.Namespace, nml_path: Path, data_dir: Path) -> None:
    t0 = time.perf_counter()
    make_nml(nml_path, a.nodes, a.trees)
    print(
        f"generated {nml_path.stat().st_size / 2**20:.0f} MiB NML ({a.nodes} nodes, {a.trees} trees) in {time.perf_counter() - t0:.1f} s"
    )
    env = {"COLLAB_LOG_LEVEL": "INFO"}
    if a.gc_full_every:
        env["COLLAB_GC_FULL_EVERY_SECONDS"] = str(a.gc_full_every)
    async with collab_server(env, data_dir=data_dir) as server:
        ann = await server.annotation("million")
        headers = {"authorization": f"Bearer {server.token}"}
        peak = PeakRss(server.pid)
        sampler = asyncio.create_task(peak.run())
        rss_before = server.rss_mb()
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=600) as http:
            body = nml_path.read_bytes()
            t0 = time.perf_counter()
            r = await http.post(
                f"/api/annotations/{ann}/nml",
                content=body,
                headers={"content-type": "application/xml"},
            )
            import_s = time.perf_counter() - t0
            r.raise_for_status()
            del body
            print(
                f"import: {import_s:.2f} s for {r.json()['nodes']} nodes -> version {r.json()['version']}; "
                f"server RSS {rss_before:.0f} MB before, peak {peak.peak / 2**20:.0f} MB"
            )
            t0 = time.perf_counter()
            r = await http.get(f"/api/annotations/{ann}/nml")
            export_s = time.perf_counter() - t0
            r.raise_for_status()
            print(f"export: {export_s:.2f} s, {len(r.content) / 2**20:.0f} MiB")
        sampler.cancel()
        syncs = [await first_sync(server.sync_url(ann)) for _ in range(3)]
        print(f"first sync of a new client (room loaded): {summary_ms(syncs)}")
        # One node added while N clients watch.
        # Twenty clients open the document (each gets all of it), then watch.
        t0 = time.perf_counter()
        watchers = [await connect(server.sync_url(ann)) for _ in range(a.watchers)]
        times: list[list[float]] = [[] for _ in watchers]
        synced = [asyncio.Event() for _ in watchers]

        async def watch(k: int) -> None:
            try:
                async for frame in watchers[k]:
                    if isinstance(frame, bytes) and frame[:2] == UPDATE_PREFIX:
                        if synced[k].is_set():
                            times[k].append(time.perf_counter())
                    elif isinstance(frame, bytes) and frame[:2] == b"\x00\x01":
                        synced[k].set()
            except websockets.ConnectionClosed:
                pass

        tasks = [asyncio.create_task(watch(k)) for k in range(len(watchers))]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in synced)), 600)
        print(
            f"{a.watchers} clients opened the document at once: all synced after "
            f"{time.perf_counter() - t0:.1f} s; server RSS {server.rss_mb():.0f} MB"
        )
        from pycrdt import Doc, Map

        writer_ws = await websockets.connect(
            server.sync_url(ann),
            max_size=None,
            compression=None,
            ping_interval=None,
            open_timeout=60,
        )
        await writer_ws.send(m.pack_sync_step1(b"\x00"))
        wdoc: Doc = Doc()
        async for frame in writer_ws:
            if isinstance(frame, bytes) and frame[:2] == b"\x00\x01":
                wdoc.apply_update(m.parse(frame).payload)  # type: ignore[union-attr]
                break
        frames: list[bytes] = []
        wdoc.observe(lambda e: frames.append(m.pack_update(e.update)))
        nodes = wdoc.get("nodes", type=Map)
        await asyncio.sleep(1)
        sent = []
        for i in range(a.adds):
            nodes[f"bench-{i}"] = {"treeId": "1", "position": [i, i, i], "radius": 1.0}
            sent.append(time.perf_counter())
            await writer_ws.send(frames.pop())
            await asyncio.sleep(0.02)
        await asyncio.sleep(2)
        lat = [t - s for ts in times for t, s in zip(ts, sent, strict=False)]
        print(
            f"one node added while {a.watchers} clients watch the {a.nodes}-node document: {summary_ms(lat)}"
        )
        await writer_ws.close()
        for w in watchers:
            await w.close()
        for t in tasks:
            await t
        print(
            f"server RSS at the end: {server.rss_mb():.0f} MB; median first sync {statistics.median(syncs) * 1000:.0f} ms"
        )
        print_log(server.data_dir)
    # A restart: the room loads again from its stored bytes. A fresh client
    # is answered from those while the room builds; /healthz is asked every
    # 20 ms meanwhile, its slowest answer is how long the loop was blocked.
    log_size = (data_dir / "server.log").stat().st_size
    async with collab_server(env, data_dir=data_dir) as server:
        slowest = 0.0
        t0 = time.perf_counter()
        first = asyncio.create_task(first_sync(server.sync_url(ann)))
        async with httpx.AsyncClient(base_url=server.url, timeout=600) as http:
            for _ in range(30_000):  # bounded: 600 s
                asked = time.perf_counter()
                await http.get("/healthz")
                slowest = max(slowest, time.perf_counter() - asked)
                log = (data_dir / "server.log").read_bytes()[log_size:]
                if b'"room loaded"' in log:
                    break
                await asyncio.sleep(0.02)
        loaded_s = time.perf_counter() - t0
        print(
            f"after a restart: fresh client synced in {await first:.2f} s (room loading); "
            f"room loaded after {loaded_s:.1f} s; slowest /healthz meanwhile {slowest * 1000:.0f} ms"
        )
        print_log(server.data_dir, log_size)


def print_log(data_dir: Path, start: int = 0) -> None:
    text = (data_dir / "server.log").read_bytes()[start:].decode(errors="replace")
    for line in text.splitlines():
        if '"nml imported"' in line or '"room loaded"' in line or '"full collection"' in line:
            print("  server:", line[:300])


if __name__ == "__main__":
    asyncio.run(main())
