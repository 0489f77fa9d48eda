"""Write throughput: W writers in W rooms send small updates as fast as they can
(at most ``--window`` unsaved each); committed updates/s from the ``saved`` acks.

    python tests/benchmarks/throughput.py [--writers 20] [--seconds 10] [--window 200]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import psutil
from pycrdt import Map

from tests.benchmarks.harness import collab_server, machine
from tests.benchmarks.yraw import Writer, connect


def pregenerate(w: Writer, count: int) -> list[bytes]:
    """The writer's update frames, made before the clock starts (the load
    generator's CRDT work would otherwise be what is measured)."""
    frames = []
    for i in range(count):
        with w.doc.transaction():
            if "t1" not in w.trees:
                w.trees["t1"] = Map({"name": "bench"})
            w.nodes[f"n{i}"] = {"treeId": "t1", "position": [i, i + 1, i + 2], "radius": 1.0}
        frames.append(w._frames.pop())
    return frames


async def write(w: Writer, frames: list[bytes], stop_at: float, window: int) -> int:
    i = 0
    while i < len(frames) and time.perf_counter() < stop_at:
        if i - w.saved >= window:
            await asyncio.sleep(0.0005)
            continue
        await w.ws.send(frames[i])
        i += 1
    return i


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--writers", type=int, default=20)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--window", type=int, default=200)
    a = p.parse_args()
    print(f"machine: {machine()}")
    async with collab_server() as server:
        writers = []
        for k in range(a.writers):
            ann = await server.annotation(f"tp-{k}")
            writers.append(Writer(await connect(server.sync_url(ann, acks="1"))))
        per_writer = int(a.seconds * 4000)
        frames = [pregenerate(w, per_writer) for w in writers]
        drains = [asyncio.create_task(w.drain()) for w in writers]
        await asyncio.sleep(0.5)
        base = [w.saved for w in writers]
        proc = psutil.Process(server.pid)
        cpu0, own0 = proc.cpu_times(), psutil.Process().cpu_times()
        start = time.perf_counter()
        sent = await asyncio.gather(
            *(
                write(w, f, start + a.seconds, a.window)
                for w, f in zip(writers, frames, strict=True)
            )
        )
        elapsed_send = time.perf_counter() - start
        deadline = time.monotonic() + 30
        while (
            any(w.saved < n for w, n in zip(writers, sent, strict=True))
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        committed = sum(w.saved - b for w, b in zip(writers, base, strict=True))
        cpu1, own1 = proc.cpu_times(), psutil.Process().cpu_times()
        server_cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
        client_cpu = (own1.user + own1.system) - (own0.user + own0.system)
        print(f"throughput: {a.writers} writers in {a.writers} rooms, window {a.window}")
        print(
            f"  sent {sum(sent)} updates in {elapsed_send:.2f} s; all committed after {elapsed:.2f} s"
        )
        print(
            f"  committed updates/s: {committed / elapsed:.0f}  (server RSS {server.rss_mb():.0f} MB)"
        )
        print(
            f"  CPU: server {server_cpu / elapsed * 100:.0f}% of a core, load generator {client_cpu / elapsed * 100:.0f}%; "
            f"server µs per update {server_cpu / max(committed, 1) * 1e6:.0f}"
        )
        for w in writers:
            await w.ws.close()
        for d in drains:
            await d


if __name__ == "__main__":
    asyncio.run(main())
