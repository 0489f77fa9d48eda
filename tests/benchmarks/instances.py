"""Several instances over one PostgreSQL: 1, 2 and 3 ``collab serve``
processes side by side in one run, one external (embedded, pgserver)
PostgreSQL, a database of its own per configuration.

Per configuration:

- **throughput**: ``--rooms`` rooms spread over the instances, room r owned
  by instance r mod n; each room's writer is connected to its owner, as a
  reverse proxy routing by annotation would place it. Writers send small
  pregenerated updates as fast as they can (at most 200 unsaved each);
  committed updates/s from the ``saved`` acks.
- **fan-out**: new rooms, owned the same way; in each, a writer on the
  owner A sends RATE updates/s; a reader on A and a reader on the next
  instance B (a mirror) apply them. Latency = send → applied at a reader;
  lag between instances = per update, when B's reader got it minus when
  A's did. With one instance both readers are on it (no lag to measure).
- **SIGKILL** (two instances or more): instance 0 owns rooms//n new rooms,
  one acknowledged writer each; SIGKILL; each writer reconnects at once to
  the next instance with the document it kept. Reported: kill → synced
  there (its sync step 2 arrived), and kill → its first write made after
  that acknowledged (the takeover: COLLAB_LEASE_SECONDS is 3).

    python -m tests.benchmarks.instances [--seconds 10] [--rooms 20] [--instances 1,2,3]

Everything shares the machine: the load generator, n servers and
PostgreSQL. On a two-core machine more instances mostly add contention;
the table shows what the cluster machinery costs, not how it scales.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil
import websockets
from pycrdt import Doc, Map, MapEvent

from collab.store.embedded import EmbeddedPostgres
from collab.sync import messages as m
from tests.benchmarks.harness import machine, pct
from tests.benchmarks.throughput import pregenerate, write
from tests.benchmarks.yraw import Writer as RawWriter
from tests.benchmarks.yraw import connect
from tests.instances.cluster import Cluster, Writer, lease_owner
from tests.processes import NO_LIMITS

RATE = 10.0  # updates/s per room in the fan-out phase
WINDOW = 200  # unsaved updates per writer in the throughput phase


@dataclass
class Result:
    instances: int
    committed_per_s: float = float("nan")
    server_cpu: float = float("nan")  # cores busy, all instances together
    exhausted: bool = False
    misowned: int = 0
    local: list[float] = field(default_factory=list)  # seconds
    remote: list[float] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)
    missing: int = 0
    synced_again: list[float] = field(default_factory=list)
    acked_again: list[float] = field(default_factory=list)
    kill_failures: int = 0


class DocReader:
    """Applies what it receives to a document; notes when each node arrived."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.doc: Doc = Doc()
        self.seen: dict[str, float] = {}
        # Both kept: the subscription ends with the Map object that made it.
        self.nodes = self.doc.get("nodes", type=Map)
        self._sub = self.nodes.observe(self._on_nodes)

    def _on_nodes(self, event: MapEvent) -> None:
        now = time.perf_counter()
        for key in event.keys:  # type: ignore[attr-defined]
            self.seen.setdefault(key, now)

    async def run(self) -> None:
        try:
            async for frame in self.ws:
                if not isinstance(frame, bytes) or frame[0] != m.MessageType.SYNC:
                    continue
                msg = m.parse(frame)
                assert isinstance(msg, m.SyncMessage)
                if msg.sub == m.SyncType.STEP1:
                    await self.ws.send(m.pack_sync_step2(self.doc.get_update(msg.payload)))
                else:
                    self.doc.apply_update(msg.payload)
        except websockets.ConnectionClosed:
            pass


async def connect_synced(url: str) -> websockets.ClientConnection:
    """``connect``, then read until the server's sync step 2 (what comes before it is dropped)."""
    ws = await connect(url)
    async with asyncio.timeout(30):
        while True:
            frame = await ws.recv()
            if isinstance(frame, bytes) and frame[:2] == bytes(
                [m.MessageType.SYNC, m.SyncType.STEP2]
            ):
                return ws


def database_url(server_url: str, name: str) -> str:
    # pgserver URLs look like postgresql://postgres:@/postgres?host=/socket/dir
    base, _, query = server_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


async def new_annotations(cluster: Cluster, count: int, prefix: str) -> tuple[str, list[int]]:
    """A user's token and ``count`` new annotations of theirs."""
    s = cluster.instances[0]
    async with httpx.AsyncClient(base_url=s.url, headers=s.headers(), timeout=30) as http:
        r = await http.post("/api/users", json={"name": f"bench {prefix}"})
        r.raise_for_status()
        token = r.json()["token"]
        anns = []
        for i in range(count):
            r = await http.post(
                "/api/annotations",
                json={"name": f"{prefix} {i}"},
                headers={"authorization": f"Bearer {token}"},
            )
            r.raise_for_status()
            anns.append(int(r.json()["id"]))
    return token, anns


async def misowned(cluster: Cluster, anns: list[int], owners: list[int]) -> int:
    """How many of the rooms are not owned where meant (0 with one instance)."""
    if len(cluster.instances) == 1:
        return 0
    wrong = 0
    for ann, k in zip(anns, owners, strict=True):
        found = await lease_owner(cluster.database_url, ann)
        if found is None or found[1] != cluster.instances[k].url:
            wrong += 1
            print(f"  annotation {ann}: meant for instance {k}, lease {found}")
    return wrong


def server_cpu_seconds(cluster: Cluster) -> float:
    total = 0.0
    for s in cluster.instances:
        if s.alive() and s.proc is not None:
            with contextlib.suppress(psutil.Error):
                t = psutil.Process(s.proc.pid).cpu_times()
                total += t.user + t.system
    return total


async def throughput(cluster: Cluster, result: Result, rooms: int, seconds: float) -> None:
    n = len(cluster.instances)
    token, anns = await new_annotations(cluster, rooms, "throughput")
    owners = [r % n for r in range(rooms)]
    writers = [
        RawWriter(await connect(cluster.sync_url(k, ann, token, acks="1")))
        for ann, k in zip(anns, owners, strict=True)
    ]
    drains = [asyncio.create_task(w.drain()) for w in writers]
    # Enough for 30,000 committed updates/s in all (twice what two cores do).
    frames = [pregenerate(w, int(seconds * max(500, 30_000 / rooms))) for w in writers]
    result.misowned += await misowned(cluster, anns, owners)
    cpu0 = server_cpu_seconds(cluster)
    start = time.perf_counter()
    sent = await asyncio.gather(
        *(write(w, f, start + seconds, WINDOW) for w, f in zip(writers, frames, strict=True))
    )
    result.exhausted = any(s == len(f) for s, f in zip(sent, frames, strict=True))
    deadline = time.monotonic() + 30
    while (
        any(w.saved < s for w, s in zip(writers, sent, strict=True)) and time.monotonic() < deadline
    ):
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    result.committed_per_s = sum(w.saved for w in writers) / elapsed
    result.server_cpu = (server_cpu_seconds(cluster) - cpu0) / elapsed
    for w in writers:
        await w.ws.close()
    await asyncio.gather(*drains)


async def fanout(cluster: Cluster, result: Result, rooms: int, seconds: float) -> None:
    n = len(cluster.instances)
    token, anns = await new_annotations(cluster, rooms, "fan-out")
    owners = [r % n for r in range(rooms)]
    writers, local, remote = [], [], []
    for ann, k in zip(anns, owners, strict=True):
        # Synced first: the room is open (and owned) at k before the readers come.
        writers.append(RawWriter(await connect_synced(cluster.sync_url(k, ann, token, acks="1"))))
        local.append(DocReader(await connect(cluster.sync_url(k, ann, token))))
        other = (k + 1) % n
        remote.append(DocReader(await connect(cluster.sync_url(other, ann, token))))
    result.misowned += await misowned(cluster, anns, owners)
    tasks = [asyncio.create_task(r.run()) for r in (*local, *remote)]
    drains = [asyncio.create_task(w.drain()) for w in writers]
    # Everyone synced (the readers answered the server's step 1) before the clock starts.
    for w in writers:
        await w.send_node(0)
    readers = [*local, *remote]
    deadline = time.monotonic() + 30
    while any("n0" not in r.seen for r in readers) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    count = max(1, int(seconds * RATE))
    start = time.perf_counter()
    for i in range(1, count + 1):
        delay = start + i / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        for w in writers:
            await w.send_node(i)
    deadline = time.monotonic() + 30
    keys = [f"n{i}" for i in range(1, count + 1)]
    while any(any(k not in r.seen for k in keys) for r in readers) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for w, a, b in zip(writers, local, remote, strict=True):
        for i in range(1, count + 1):
            key, sent = f"n{i}", w.sent[i]
            if key in a.seen:
                result.local.append(a.seen[key] - sent)
            if key in b.seen:
                (result.remote if n > 1 else result.local).append(b.seen[key] - sent)
            if n > 1 and key in a.seen and key in b.seen:
                result.lag.append(b.seen[key] - a.seen[key])
            result.missing += (key not in a.seen) + (key not in b.seen)
    for ws in [*(w.ws for w in writers), *(r.ws for r in readers)]:
        await ws.close()
    await asyncio.gather(*tasks, *drains)


async def sigkill(cluster: Cluster, result: Result, rooms: int) -> None:
    """Instance 0 owns rooms//n rooms with a writer each; SIGKILL it."""
    n = len(cluster.instances)
    token, anns = await new_annotations(cluster, max(1, rooms // n), "sigkill")
    writers = [Writer(cluster, ann, token, f"k{i}") for i, ann in enumerate(anns)]
    for w in writers:
        await w.connect(0)
        await w.write(timeout=15)
    result.misowned += await misowned(cluster, anns, [0] * len(anns))
    killed_at = time.monotonic()
    await asyncio.to_thread(cluster.instances[0].kill)

    async def recover(w: Writer) -> None:
        try:
            assert w.client is not None
            await w.client.wait_closed(10)
            if not await w.reconnect():
                raise AssertionError(w.failure)
            result.synced_again.append(w.synced_at[-1][1] - killed_at)
            i = await w.write(timeout=20)
            result.acked_again.append(w.acked_at[i] - killed_at)
        except (AssertionError, TimeoutError) as e:
            result.kill_failures += 1
            print(f"  {w.name}: not recovered: {e}")

    await asyncio.gather(*(recover(w) for w in writers))
    await asyncio.gather(*(w.close() for w in writers))


async def one_configuration(pg_url: str, root: Path, n: int, rooms: int, seconds: float) -> Result:
    name = f"bench_instances_{n}"
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    result = Result(n)
    cluster = Cluster(root / f"instances-{n}", database_url(pg_url, name), n, env=NO_LIMITS)
    await cluster.start()
    try:
        print(f"{n} instance(s): throughput ...", flush=True)
        await throughput(cluster, result, rooms, seconds)
        print(f"{n} instance(s): fan-out ...", flush=True)
        await fanout(cluster, result, rooms, seconds)
        if n > 1:
            print(f"{n} instance(s): SIGKILL of instance 0 ...", flush=True)
            await sigkill(cluster, result, rooms)
    finally:
        await cluster.stop()
    return result


def ms(values: list[float], p: float) -> str:
    return f"{pct(values, p) * 1000:.1f}" if values else "—"


def spread(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values):.2f} / {max(values):.2f}"


def table(results: list[Result], rooms: int) -> str:
    head = (
        "| instances | committed updates/s | server CPU (cores) | fan-out same instance "
        "p50 / p99 ms | fan-out A→B p50 / p99 ms | lag B−A p50 / p99 ms | "
        "SIGKILL → synced elsewhere, median / max s | SIGKILL → first ack, median / max s |"
    )
    lines = [head, "|" + " --- |" * 8]
    for r in results:
        lines.append(
            f"| {r.instances} | {r.committed_per_s:.0f}{' (frames ran out)' if r.exhausted else ''} "
            f"| {r.server_cpu:.2f} | {ms(r.local, 50)} / {ms(r.local, 99)} "
            f"| {ms(r.remote, 50)} / {ms(r.remote, 99)} | {ms(r.lag, 50)} / {ms(r.lag, 99)} "
            f"| {spread(r.synced_again)} | {spread(r.acked_again)} |"
        )
    notes = [
        f"{rooms} rooms; fan-out {RATE:.0f} updates/s per room; lease 3 s.",
    ]
    for r in results:
        extra = []
        if r.misowned:
            extra.append(f"{r.misowned} rooms not owned by the instance meant")
        if r.missing:
            extra.append(f"{r.missing} fan-out updates never arrived")
        if r.kill_failures:
            extra.append(f"{r.kill_failures} writers did not recover after the SIGKILL")
        if extra:
            notes.append(f"{r.instances} instance(s): " + "; ".join(extra) + ".")
    return "\n".join(lines) + "\n\n" + "\n".join(notes)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=10.0, help="per phase")
    p.add_argument("--rooms", type=int, default=20)
    p.add_argument("--instances", default="1,2,3", help="configurations, e.g. 1,3")
    a = p.parse_args()
    sizes = [int(x) for x in a.instances.split(",") if x.strip()]
    print(f"machine: {machine()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="collab-instances-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg")
        pg_url = await asyncio.to_thread(pg.start)
        try:
            for n in sizes:
                results.append(await one_configuration(pg_url, Path(tmp), n, a.rooms, a.seconds))
        finally:
            await asyncio.to_thread(pg.stop)
    print()
    print(table(results, a.rooms))


if __name__ == "__main__":
    asyncio.run(main())
