"""Many rooms: C clients across R rooms (C/R per room), each client editing once
a second; writer→reader latency over all rooms, and server memory per idle room.

    python tests/benchmarks/many_rooms.py [--rooms 500] [--per-room 3] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time

import websockets

from tests.benchmarks.harness import collab_server, machine, summary_ms
from tests.benchmarks.yraw import UPDATE_PREFIX, Writer, connect


class RoomLoad:
    def __init__(self, writers: list[Writer]) -> None:
        self.writers = writers
        self.log: list[tuple[int, float]] = []  # (writer index, send time) in send order
        self.received: list[list[float]] = [[] for _ in writers]

    async def read(self, k: int) -> None:
        try:
            async for frame in self.writers[k].ws:
                if isinstance(frame, bytes) and frame[:2] == UPDATE_PREFIX:
                    self.received[k].append(time.perf_counter())
        except websockets.ConnectionClosed:
            pass

    async def drive(self, start: float, offset: float, seconds: float) -> None:
        n = len(self.writers)
        for t in range(int(seconds * n)):
            target = start + offset + t / n
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            k = t % n
            self.log.append((k, time.perf_counter()))
            await self.writers[k].send_node(t)

    def latencies(self, with_time: bool = False) -> tuple[list, int]:
        out: list = []
        missing = 0
        for k in range(len(self.writers)):
            expected = [ts for (w, ts) in self.log if w != k]
            got = self.received[k]
            missing += max(0, len(expected) - len(got))
            out.extend(
                ((g - e, e) if with_time else g - e) for g, e in zip(got, expected, strict=False)
            )
        return out, missing


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rooms", type=int, default=500)
    p.add_argument("--per-room", type=int, default=3)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--timeline", action="store_true", help="latency per second of the run")
    a = p.parse_args()
    print(f"machine: {machine()}")
    print(
        f"many rooms: {a.rooms * a.per_room} clients in {a.rooms} rooms, each client editing once a second for {a.seconds:.0f} s"
    )
    async with collab_server() as server:
        await asyncio.sleep(1)
        rss_empty = server.rss_mb()
        loads = []
        for r in range(a.rooms):
            ann = await server.annotation(f"room-{r}")
            writers = [Writer(await connect(server.sync_url(ann))) for _ in range(a.per_room)]
            loads.append(RoomLoad(writers))
        # Keep the load generator's own garbage collector out of the figures.
        gc.collect()
        gc.freeze()
        readers = [asyncio.create_task(load.read(k)) for load in loads for k in range(a.per_room)]
        await asyncio.sleep(2)
        rss_idle = server.rss_mb()
        start = time.perf_counter() + 0.5
        await asyncio.gather(
            *(load.drive(start, r / a.rooms, a.seconds) for r, load in enumerate(loads))
        )
        await asyncio.sleep(2)
        lat: list[float] = []
        missing = 0
        for load in loads:
            got, miss = load.latencies()
            lat.extend(got)
            missing += miss
        rss_after = server.rss_mb()
        if a.timeline:
            timed = [x for load in loads for x in load.latencies(True)[0]]
            for sec in range(int(a.seconds) + 1):
                bucket = [d for d, t in timed if sec <= t - start < sec + 1]
                if bucket:
                    print(f"    second {sec}: {summary_ms(bucket)}")
        print(f"  latency writer→reader: {summary_ms(lat)}; missing {missing}")
        print(
            f"  server RSS: {rss_empty:.0f} MB empty, {rss_idle:.0f} MB with {a.rooms} rooms loaded and "
            f"{a.rooms * a.per_room} idle clients, {rss_after:.0f} MB after the run"
        )
        print(
            f"  memory per idle room (incl. its {a.per_room} connections): {(rss_idle - rss_empty) * 1024 / a.rooms:.0f} KiB"
        )
        for load in loads:
            for w in load.writers:
                await w.ws.close()
        for t in readers:
            await t


if __name__ == "__main__":
    asyncio.run(main())
