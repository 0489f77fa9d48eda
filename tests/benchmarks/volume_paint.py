"""Volume annotation together: N clients paint brush strokes (radius 10) into
one annotation's volume layer at once while viewers watch the bricks over
the layer's brick socket; and reading at an old version against the newest;
and the storage each stroke costs.

    python -m tests.benchmarks.volume_paint [--painters 10] [--rate 2] [--seconds 30]
        [--viewers 2] [--runs 1]

* **stroke → brick latency**: from a painter setting its op in the
  segmentation document to the first PUSHED brick holding that stroke's
  segment id at a viewer (another client), every stroke, every viewer. Each
  stroke paints its own segment id, so a viewer recognises it in the voxels.
* **old version read**: ``GET …/volume/{layer}/1/{x}/{y}/{z}`` of the most
  painted brick, newest against ``?version=`` the first version that wrote
  it, interleaved on one keep-alive connection.
* **storage per stroke**: PostgreSQL bytes the strokes wrote (log entry,
  materialised bricks of every mag, the op's row), against WEBKNOSSOS's way:
  a whole compressed bucket (LZ4, as its tracing store keeps them) per
  changed bucket and version, for the same bricks.

The server runs as a subprocess on an embedded PostgreSQL this script
starts (so it can read the table sizes); the clients run here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import websockets
from numcodecs import LZ4
from pycrdt import Map

from collab.store.embedded import EmbeddedPostgres
from collab.volume import wire
from collab.volume.encoding import ZSTD, decompress, from_raw
from tests.benchmarks.harness import collab_server, machine, pct
from tests.yclient import YClient

BRICK = 32
#: The painted region: bricks x 0..19, y 0..3, z 0 at mag 1 (640 × 128 × 32).
REGION = [(x, y, 0) for x in range(20) for y in range(4)]
U32 = np.dtype("uint32")


class Viewer:
    """A brick socket on the layer that notes when each segment id first
    arrives in a pushed brick."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.first_seen: dict[int, float] = {}
        self.pushed = 0
        self.done = asyncio.Event()

    async def run(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in self.ws:
                assert isinstance(frame, bytes)
                now = time.perf_counter()
                if frame[0] == wire.DONE:
                    self.done.set()
                    continue
                if frame[0] != wire.PUSHED:
                    continue
                _version, _mag, records = wire.unpack_pushed(frame)
                for r in records:
                    self.pushed += 1
                    raw = decompress(r.payload) if r.encoding == ZSTD else r.payload
                    for seg in np.unique(from_raw(raw, U32)).tolist():
                        self.first_seen.setdefault(int(seg), now)


def stroke(author: int, segment: int, painter: int, k: int) -> dict[str, Any]:
    """A radius-10 stroke of 5 centres over 40 voxels in the painter's strip
    (neighbouring strips share bricks), in a slice of its own."""
    x0 = painter * 60 + (k * 7) % 40
    y0 = 12 + (k * 13) % 100
    z = (k * 3 + painter) % 32
    points = [[x0 + 10 * i, y0 + 2 * i, z] for i in range(5)]
    return {"kind": "brush", "layer": "L1", "author": author, "time": time.time() * 1000,
            "mag": "1", "plane": "xy", "points": points, "radius": 10, "segment": segment,
            "erase": False, "mode": "all"}  # fmt: skip


async def run_once(server: Any, dsn: str, a: argparse.Namespace) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"authorization": f"Bearer {server.token}"}, timeout=60
    ) as http:
        me = (await http.get("/api/users/me")).json()["id"]
        ann = (await http.post("/api/annotations", json={"name": "paint"})).json()["id"]
    sync = server.sync_url(ann, "segmentation", acks="1")
    owner = await YClient(sync).connect()
    layer = {"name": "L1", "dtype": "uint32", "mags": ["1", "2", "4"]}
    assert await owner.write(lambda: owner.map("layers").__setitem__("L1", Map(layer)))
    viewers = []
    for _ in range(a.viewers):
        ws = await websockets.connect(
            f"{server.ws}/volume/{ann}/L1?token={server.token}", max_size=2**26, compression=None
        )
        v = Viewer(ws)
        viewers.append(v)
    async with asyncio.TaskGroup() as tg:
        for v in viewers:
            tg.create_task(v.run())
            await v.ws.send(wire.pack_request(1, (1, 1, 1), REGION, ZSTD))
        await asyncio.wait_for(asyncio.gather(*(v.done.wait() for v in viewers)), 30)
        painters = [await YClient(server.sync_url(ann, "segmentation")).connect()
                    for _ in range(a.painters)]  # fmt: skip
        for p in painters:
            await p.wait(lambda p=p: "L1" in p.map("layers"))
        sent: dict[int, float] = {}
        strokes = int(a.rate * a.seconds)

        async def paint(n: int, client: YClient) -> None:
            start = time.perf_counter() + n / (a.rate * a.painters)  # spread the painters
            for k in range(strokes):
                delay = start + k / a.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                segment = 1 + n * 100_000 + k
                op = stroke(me, segment, n, k)
                sent[segment] = time.perf_counter()
                client.map("ops")[f"{client.doc.client_id}-{k + 1}"] = op

        async with asyncio.TaskGroup() as painting:
            for n, client in enumerate(painters):
                painting.create_task(paint(n, client))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            set(sent) <= set(v.first_seen) for v in viewers
        ):
            await asyncio.sleep(0.1)
        for v in viewers:
            await v.ws.close()
    latencies = [
        (v.first_seen[s] - t) * 1000 for v in viewers for s, t in sent.items() if s in v.first_seen
    ]
    missing = sum(1 for v in viewers for s in sent if s not in v.first_seen)
    for c in (owner, *painters):
        await c.close()

    # Storage the strokes cost, and WEBKNOSSOS's way for the same bricks.
    conn = await asyncpg.connect(dsn)
    try:
        versions = await conn.fetchval(
            "SELECT count(*) FROM doc_updates WHERE annotation_id = $1 AND doc = 'segmentation'",
            ann,
        )
        log_bytes = await conn.fetchval(
            "SELECT coalesce(sum(octet_length(data)), 0) FROM doc_updates "
            "WHERE annotation_id = $1 AND doc = 'segmentation'",
            ann,
        )
        rows = await conn.fetch(
            "SELECT mag, bx, by, bz, version, data FROM materialised_bricks WHERE annotation_id = $1",
            ann,
        )
        op_rows = await conn.fetchval(
            "SELECT count(*) FROM materialised_ops WHERE annotation_id = $1", ann
        )
    finally:
        await conn.close()
    lz4 = LZ4()
    brick_bytes = sum(len(r["data"]) for r in rows)
    wk_bytes = sum(len(lz4.encode(decompress(bytes(r["data"])))) for r in rows)
    mag1 = [r for r in rows if r["mag"] == "1"]
    per_brick: dict[tuple[int, int, int], list[int]] = {}
    for r in mag1:
        per_brick.setdefault((r["bx"], r["by"], r["bz"]), []).append(r["version"])
    busiest, its_versions = max(per_brick.items(), key=lambda item: len(item[1]))

    # Reading the busiest brick at its first version against the newest.
    newest: list[float] = []
    old: list[float] = []
    url = f"/api/annotations/{ann}/volume/L1/1/{busiest[0]}/{busiest[1]}/{busiest[2]}"
    async with httpx.AsyncClient(
        base_url=server.url, headers={"authorization": f"Bearer {server.token}"}, timeout=60
    ) as http:
        for _ in range(20):  # warm up
            (await http.get(url)).raise_for_status()
        for _ in range(a.reads):
            for target, params in ((newest, {}), (old, {"version": min(its_versions)})):
                t0 = time.perf_counter()
                r = await http.get(url, params=params)
                target.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
    total = len(sent)
    return {
        "strokes": total,
        "latencies": latencies,
        "missing": missing,
        "versions": versions,
        "log_bytes": log_bytes,
        "brick_rows": len(rows),
        "brick_bytes": brick_bytes,
        "wk_bytes": wk_bytes,
        "op_rows": op_rows,
        "busiest": (busiest, len(its_versions)),
        "newest_ms": newest,
        "old_ms": old,
    }


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--painters", type=int, default=10)
    p.add_argument("--rate", type=float, default=2.0, help="strokes per second per painter")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--viewers", type=int, default=2)
    p.add_argument("--reads", type=int, default=300)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    p.add_argument("--keep", type=Path, default=None, help="the server's data dir (its log)")
    a = p.parse_args()
    # The clients' own pauses would count as latency: ten painters' replicas
    # and the viewers' decoded bricks make this process's full collections
    # take 100+ ms. The load generator does not collect; the server does.
    gc.disable()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="collab-paint-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg")
        dsn = await asyncio.to_thread(pg.start)
        try:
            extra = dict(item.split("=", 1) for item in a.env)
            async with collab_server(
                {"COLLAB_DATABASE_URL": dsn, **extra}, data_dir=a.keep
            ) as server:
                for run in range(a.runs):
                    r = await run_once(server, dsn, a)
                    lat = r["latencies"]
                    n = r["strokes"]
                    print(
                        f"run {run + 1}: {a.painters} painters × {a.rate}/s for {a.seconds:.0f} s "
                        f"= {n} strokes, {a.viewers} viewers"
                    )
                    print(
                        f"  stroke → pushed brick at another client: p50 {pct(lat, 50):.1f} ms, "
                        f"p95 {pct(lat, 95):.1f} ms, p99 {pct(lat, 99):.1f} ms, "
                        f"max {max(lat):.1f} ms ({len(lat)} arrivals, {r['missing']} missing)"
                    )
                    print(
                        f"  busiest brick {r['busiest'][0]}: {r['busiest'][1]} versions; "
                        f"GET newest median {statistics.median(r['newest_ms']):.2f} ms, "
                        f"at its first version {statistics.median(r['old_ms']):.2f} ms "
                        f"(ratio {statistics.median(r['old_ms']) / statistics.median(r['newest_ms']):.2f})"
                    )
                    print(
                        f"  storage per stroke: log {r['log_bytes'] / n:.0f} B + bricks "
                        f"{r['brick_bytes'] / n:.0f} B ({r['brick_rows'] / n:.2f} brick rows of "
                        f"all mags, zstd) + 1 op row; WEBKNOSSOS's way (LZ4 bucket per changed "
                        f"bucket and version, same bricks): {r['wk_bytes'] / n:.0f} B"
                    )
        finally:
            await asyncio.to_thread(pg.stop)


if __name__ == "__main__":
    asyncio.run(main())
