"""Cold load: a room whose log holds N versions (default 100,000) is opened by a
new client after the room was unloaded; time from connect to synced.

    python tests/benchmarks/cold_load.py [--versions 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time

import httpx
import websockets
from pycrdt import Doc, Map

from collab.sync import messages as m
from tests.benchmarks.harness import collab_server, machine, summary_ms
from tests.benchmarks.yraw import Writer, connect


async def fill(w: Writer, versions: int, window: int = 500) -> None:
    i = 0
    while i < versions:
        if i - w.saved >= window:
            await asyncio.sleep(0.001)
            continue
        if i % 10 == 9:  # move a node (overwrite)
            key = f"n{i - 5}"
            if key in w.nodes:
                w.nodes[key] = {"treeId": "t1", "position": [i, i, i], "radius": 2.0}  # t1 exists
                await w.ws.send(w._frames.pop())
                i += 1
                continue
        if i % 20 == 19 and f"n{i - 3}" in w.nodes:  # delete a node
            del w.nodes[f"n{i - 3}"]
            await w.ws.send(w._frames.pop())
            i += 1
            continue
        await w.send_node(i)
        i += 1
    while w.saved < versions:
        await asyncio.sleep(0.01)


CONNECT: list[float] = []


async def open_once(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        CONNECT.append(time.perf_counter() - started)
        await ws.send(m.pack_sync_step1(b"\x00"))
        async for frame in ws:
            if isinstance(frame, bytes) and frame[:2] == bytes([0, 1]):
                elapsed = time.perf_counter() - started
                doc: Doc = Doc()
                doc.apply_update(m.parse(frame).payload)  # type: ignore[union-attr]
                return elapsed, len(doc.get("nodes", type=Map))
    raise RuntimeError("no sync step 2")


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--versions", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--server-log", help="keep the server's JSON log (INFO) at this path")
    a = p.parse_args()
    print(f"machine: {machine()}")
    env = {"COLLAB_ROOM_IDLE_SECONDS": "0.5"}
    if a.server_log:
        env["COLLAB_LOG_LEVEL"] = "INFO"
    async with collab_server(env) as server:
        ann = await server.annotation("cold")
        w = Writer(await connect(server.sync_url(ann, acks="1")))
        drain = asyncio.create_task(w.drain())
        t0 = time.perf_counter()
        await fill(w, a.versions)
        print(f"wrote {a.versions} versions in {time.perf_counter() - t0:.1f} s")
        await w.ws.close()
        await drain
        async with httpx.AsyncClient() as http:  # let the snapshotter catch up
            for _ in range(600):
                metrics = (await http.get(f"{server.url}/metrics")).text
                if "collab_snapshots_pending 0.0" in metrics:
                    break
                await asyncio.sleep(0.1)
        times = []
        for _ in range(a.repeat):
            async with httpx.AsyncClient() as http:
                for _ in range(100):  # wait until the room is unloaded
                    rooms = (await http.get(f"{server.url}/healthz")).json()["rooms"]
                    if rooms == 0:
                        break
                    await asyncio.sleep(0.2)
            assert rooms == 0, "room not unloaded"
            elapsed, nodes = await open_once(server.sync_url(ann))
            times.append(elapsed)
        print(
            f"cold load of a room with {a.versions} versions ({nodes} nodes): {summary_ms(times)}"
        )
        print("  each (ms):", " ".join(f"{t * 1000:.1f}" for t in times))
        if a.server_log:
            shutil.copy(server.data_dir / "server.log", a.server_log)


if __name__ == "__main__":
    asyncio.run(main())
