"""Write throughput: W writers in W rooms send small updates as fast as they can
(at most ``--window`` unsaved each); committed updates/s from the ``saved`` acks.

    python tests/benchmarks/throughput.py [--writers 20] [--seconds 10] [--window 200]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from tests.benchmarks.harness import collab_server, machine
from tests.benchmarks.yraw import Writer, connect


async def write(w: Writer, stop_at: float, window: int) -> int:
    i = 0
    while time.perf_counter() < stop_at:
        if i - w.saved >= window:
            await asyncio.sleep(0.001)
            continue
        await w.send_node(i)
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
        drains = [asyncio.create_task(w.drain()) for w in writers]
        await asyncio.sleep(0.5)
        base = [w.saved for w in writers]
        start = time.perf_counter()
        sent = await asyncio.gather(*(write(w, start + a.seconds, a.window) for w in writers))
        elapsed_send = time.perf_counter() - start
        deadline = time.monotonic() + 30
        while any(w.saved < n for w, n in zip(writers, sent, strict=True)) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        committed = sum(w.saved - b for w, b in zip(writers, base, strict=True))
        print(f"throughput: {a.writers} writers in {a.writers} rooms, window {a.window}")
        print(f"  sent {sum(sent)} updates in {elapsed_send:.2f} s; all committed after {elapsed:.2f} s")
        print(f"  committed updates/s: {committed / elapsed:.0f}  (server RSS {server.rss_mb():.0f} MB)")
        for w in writers:
            await w.ws.close()
        for d in drains:
            await d


if __name__ == "__main__":
    asyncio.run(main())
