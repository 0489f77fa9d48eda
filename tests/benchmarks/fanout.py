"""Fan-out: 1 writer + N readers in one room, small updates at a steady rate;
writer→reader latency, collab (with persistence) against the reference Node
server (``@y/websocket-server`` 0.1.1, stores nothing), alternating runs.

    python tests/benchmarks/fanout.py [--readers 50] [--updates 2000] [--rate 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from tests.benchmarks.harness import collab_server, machine, node_reference_server, pct, summary_ms
from tests.benchmarks.yraw import Reader, Writer, connect


async def one_run(
    url_writer: str, url_reader: str, readers: int, updates: int, rate: float
) -> list[float]:
    rs = [Reader(await connect(url_reader)) for _ in range(readers)]
    w = Writer(await connect(url_writer))
    tasks = [asyncio.create_task(r.run()) for r in rs]
    drain = asyncio.create_task(w.drain())
    await asyncio.sleep(0.5)
    start = time.perf_counter()
    for i in range(updates):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await w.send_node(i)
    deadline = time.monotonic() + 30
    while any(len(r.times) < updates for r in rs) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    lat = []
    for r in rs:
        for i, t in enumerate(r.times[:updates]):
            lat.append(t - w.sent[i])
    missing = sum(max(0, updates - len(r.times)) for r in rs)
    for r in rs:
        await r.ws.close()
    await w.ws.close()
    for t in (*tasks, drain):
        await t
    if missing:
        print(f"  WARNING: {missing} updates never arrived")
    return lat


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--readers", type=int, default=50)
    p.add_argument("--updates", type=int, default=2000)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    print(f"machine: {machine()}")
    print(
        f"fan-out: 1 writer + {a.readers} readers, {a.updates} updates at {a.rate:.0f}/s, {a.runs} runs each, alternating"
    )
    results: dict[str, list[tuple[float, float]]] = {"collab": [], "node": []}
    async with collab_server() as server, node_reference_server() as node_ws:
        for run in range(a.runs):
            order = ["collab", "node"] if run % 2 == 0 else ["node", "collab"]
            for name in order:
                if name == "collab":
                    ann = await server.annotation(f"fanout-{run}")
                    lat = await one_run(
                        server.sync_url(ann), server.sync_url(ann), a.readers, a.updates, a.rate
                    )
                else:
                    room = f"{node_ws}/fanout-{run}"
                    lat = await one_run(room, room, a.readers, a.updates, a.rate)
                ms = [x * 1000 for x in lat]
                results[name].append((pct(ms, 50), pct(ms, 99)))
                print(f"  run {run + 1} {name:6s} {summary_ms(lat)}")
    for name, rows in results.items():
        p50 = statistics.median(r[0] for r in rows)
        p99 = statistics.median(r[1] for r in rows)
        print(f"{name:6s} median of runs: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    c50 = statistics.median(r[0] for r in results["collab"])
    n50 = statistics.median(r[0] for r in results["node"])
    c99 = statistics.median(r[1] for r in results["collab"])
    n99 = statistics.median(r[1] for r in results["node"])
    print(f"ratio collab/node: p50 {c50 / n50:.2f}, p99 {c99 / n99:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
