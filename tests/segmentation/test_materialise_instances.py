"""Several processes materialise one annotation at once (several instances
over one database): each version is written once, whoever gets there first,
and every process tells its own watchers the bricks of every version, from
what was stored when another wrote them (collab/segmentation/materialise.py,
collab/store/materialised.py). Each ``Materialiser`` here has a pool of its
own over the test's database: a process of its own as far as PostgreSQL can
tell."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from pycrdt import Doc, Map

from collab.document.log import RoomKey
from collab.segmentation.materialise import Materialiser
from collab.store import materialised, oplog
from collab.store.database import Database
from collab.store.materialised import BrickRow
from collab.volume.encoding import ZSTD, decompress, from_raw
from tests.conftest import LiveServer, free_port, live_with, with_settings
from tests.segmentation.test_undo import MAGS, brush, fill2d
from tests.volume.helpers import BrickClient
from tests.yclient import YClient

LAYER = {"name": "L1", "dtype": "uint32", "mags": MAGS}
U32 = np.dtype("uint32")
Rows = dict[int, dict[tuple[str, str, tuple[int, int, int]], bytes]]


class Process:
    """A materialiser over a pool of its own, with a watcher and an ops
    listener noting what it was told."""

    def __init__(self, pool: Database, ann: int) -> None:
        self.pool = pool
        self.materialiser = Materialiser(pool)
        #: Per version: the bricks the watcher was told.
        self.heard: Rows = {}
        #: Versions the ops listener was told, and where it started following.
        self.listened: list[int] = []
        self.started: list[int] = []
        self.materialiser.listen_ops(self._ops)
        self._watch = self.materialiser.watch(ann, self._changed)
        self._watch.__enter__()

    def _changed(self, version: int, rows: list[BrickRow]) -> None:
        told = self.heard.setdefault(version, {})
        for row in rows:
            told[(row.layer, row.mag, row.brick)] = row.data

    async def _ops(self, _ann: int, doc: Doc | None, version: int, *_: Any) -> None:
        (self.started if doc is None else self.listened).append(version)

    def close(self) -> None:
        self._watch.__exit__(None, None, None)


@asynccontextmanager
async def processes(live: LiveServer, ann: int, n: int = 2) -> Any:
    pools = [await Database.connect(live.settings.database_url, max_size=3) for _ in range(n)]
    made = [Process(pool, ann) for pool in pools]
    try:
        yield made
    finally:
        for p in made:
            p.close()
        for pool in pools:
            await pool.close()


def random_ops(rng: random.Random, a_id: int, steps: int, first: int) -> Iterator[Any]:
    """Seeded strokes at mags 1, 2 and 4 over a few bricks, fills, undos of
    any standing op and redos: (key, op) to set, or (key, None) to delete."""
    standing: list[tuple[str, dict[str, Any]]] = []
    undone: list[tuple[str, dict[str, Any]]] = []
    n = first
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.2 and standing:
            key, op = standing.pop(rng.randrange(len(standing)))
            undone.append((key, op))
            yield key, None
        elif roll < 0.28 and undone:
            key, op = undone.pop(rng.randrange(len(undone)))
            standing.append((key, op))
            yield key, op
        else:
            n += 1
            key, segment, mag = f"{a_id}-{n}", rng.randint(1, 9), rng.choice(MAGS)
            if rng.random() < 0.12:
                op = fill2d(a_id, segment, [rng.randrange(0, 80), rng.randrange(0, 80), 4], mag)
            else:
                points = [[rng.randrange(0, 80), rng.randrange(0, 80), 4] for _ in range(2)]
                op = brush(a_id, segment, points, rng.choice([3, 6, 11]), mag,
                           rng.choice(["all", "empty"]), rng.random() < 0.1)  # fmt: skip
            standing.append((key, op))
            yield key, op


async def write(client: YClient, key: str, op: dict[str, Any] | None) -> None:
    ops = client.map("ops")
    if op is None:
        assert await client.write(lambda: ops.pop(key))
    else:
        assert await client.write(lambda: ops.__setitem__(key, op))


async def stored(pool: Database, ann: int) -> tuple[Rows, dict[Any, Any]]:
    """Every brick row of the annotation, by version, and every op row."""
    async with pool.acquire() as conn:
        bricks = await conn.fetch(
            "SELECT version, layer, mag, bx, by, bz, data FROM materialised_bricks "
            "WHERE annotation_id = $1",
            ann,
        )
        ops = await conn.fetch(
            "SELECT op, version, seq, layer, mag, b0x, b0y, b0z, b1x, b1y, b1z, bricks, "
            "deleted_at FROM materialised_ops WHERE annotation_id = $1",
            ann,
        )
    rows: Rows = {}
    for r in bricks:
        rows.setdefault(r["version"], {})[(r["layer"], r["mag"], (r["bx"], r["by"], r["bz"]))] = (
            bytes(r["data"])
        )
    return rows, {(r["op"], r["version"]): tuple(r)[2:] for r in ops}


async def wipe(pool: Database, ann: int) -> None:
    async with pool.acquire() as conn:
        for table in ("materialised_bricks", "materialised_ops", "materialised_versions"):
            await conn.execute(f"DELETE FROM {table} WHERE annotation_id = $1", ann)


async def single_replay(live: LiveServer, token: str, ann: int) -> tuple[Rows, dict[Any, Any]]:
    """The annotation's log copied to an annotation of its own (no room, no
    nudge: nothing else follows it), materialised by one materialiser alone."""
    copy = await live.annotation(token, "copy")
    pool = live.services.pool
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO doc_updates (annotation_id, doc, version, author_id, created_at, "
            "summary, data) SELECT $2, doc, version, author_id, created_at, summary, data "
            "FROM doc_updates WHERE annotation_id = $1 AND doc = 'segmentation'",
            ann,
            copy,
        )
        await conn.execute(
            "INSERT INTO doc_snapshots (annotation_id, doc, version, created_at, data) "
            "SELECT $2, doc, version, created_at, data FROM doc_snapshots "
            "WHERE annotation_id = $1 AND doc = 'segmentation'",
            ann,
            copy,
        )
    await Materialiser(pool).catch_up(copy)
    return await stored(pool, copy)


def assert_told(p: Process, rows: Rows, head: int, note: str) -> None:
    """The process's watcher heard, for every version after it started
    following, exactly the bricks that version stored; its listener every
    version that changed ops."""
    since = p.started[0]
    want = {v: bricks for v, bricks in rows.items() if v > since}
    heard = {v: bricks for v, bricks in p.heard.items() if bricks}
    assert heard.keys() == want.keys(), f"{note}: versions differ: {heard.keys() ^ want.keys()}"
    for v in want:
        assert heard[v] == want[v], f"{note}: the bricks of version {v} differ"
    assert set(want) <= set(p.listened), f"{note}: listeners missed versions"


async def test_two_materialisers_race_to_the_bricks_of_one_replay(live: LiveServer) -> None:
    """Two processes catch up one annotation at once, from nothing and while
    seeded random strokes, fills, undos and redos arrive (the server's own
    materialiser follows them too: a third): the stored bricks and op rows
    are exactly those of one materialiser replaying the same log alone, and
    each process told its watcher every version's bricks."""
    rng = random.Random(20261207)
    a_id, a = await live.user("Race")
    ann = await live.annotation(a, "race")
    key = RoomKey(ann, "segmentation")
    client = await YClient(live.sync_url(ann, "segmentation", token=a, acks="1")).connect()
    assert await client.write(lambda: client.map("layers").__setitem__("L1", Map(LAYER)))
    ops = random_ops(rng, a_id, 70, 0)
    for _ in range(30):
        await write(client, *next(ops))
    # From nothing: the log is there, nothing materialised (the server's own
    # materialiser done with its nudges first).
    await live.server.config.app.state.materialiser.catch_up(ann)
    await asyncio.sleep(0.2)
    await wipe(live.services.pool, ann)
    async with processes(live, ann) as (one, two):
        await asyncio.gather(one.materialiser.catch_up(ann), two.materialiser.catch_up(ann))
        counts = one.materialiser.counts + two.materialiser.counts
        # They raced: versions were written, and computed by both at once
        # (one found the other's written first and dropped its own).
        assert counts["written"] and counts["lost"], counts

        # While strokes arrive: each catches up again and again, at its own pace.
        writing = True

        async def writer() -> None:
            nonlocal writing
            for change in ops:
                await write(client, *change)
            writing = False

        async def follower(p: Process, seed: int) -> None:
            pace = random.Random(seed)
            while writing:
                await p.materialiser.catch_up(ann)
                await asyncio.sleep(pace.random() * 0.02)

        await asyncio.gather(writer(), follower(one, 1), follower(two, 2))
        async with live.services.pool.acquire() as conn:
            head = await oplog.head(conn, key)
        await asyncio.gather(one.materialiser.catch_up(ann), two.materialiser.catch_up(ann))
        rows, op_rows = await stored(live.services.pool, ann)
        for name, p in (("one", one), ("two", two)):
            assert len(p.started) == 1, f"{name} started following at {p.started}"
            assert_told(p, rows, head, name)
        # A third, late: everything is written; it starts following there.
        async with processes(live, ann, 1) as (late,):
            assert await late.materialiser.catch_up(ann) == head
            assert late.started == [head] and not late.heard
        print(f"\none {dict(one.materialiser.counts)}, two {dict(two.materialiser.counts)}")
    async with live.services.pool.acquire() as conn:
        assert await materialised.materialised_version(conn, key) == head
    want_rows, want_ops = await single_replay(live, a, ann)
    assert rows.keys() == want_rows.keys(), f"versions differ: {rows.keys() ^ want_rows.keys()}"
    for v in want_rows:
        assert rows[v] == want_rows[v], f"the bricks of version {v} differ from one replay"
    assert op_rows == want_ops, "the op rows differ from one replay"
    await client.close()


async def test_a_process_that_follows_reads_the_bricks_another_wrote(live: LiveServer) -> None:
    """One process materialises; another, following the same annotation,
    finds the versions written and tells its watcher their bricks, read from
    what is stored — at a small cost per version."""
    rng = random.Random(7)
    a_id, a = await live.user("Follow")
    ann = await live.annotation(a, "follow")
    client = await YClient(live.sync_url(ann, "segmentation", token=a, acks="1")).connect()
    assert await client.write(lambda: client.map("layers").__setitem__("L1", Map(LAYER)))
    async with processes(live, ann) as (writer, follower):
        await follower.materialiser.catch_up(ann)
        for change in random_ops(rng, a_id, 40, 0):
            await write(client, *change)
            await writer.materialiser.catch_up(ann)
        await live.server.config.app.state.materialiser.catch_up(ann)  # quiet now
        started = time.perf_counter()
        head = await follower.materialiser.catch_up(ann)
        spent = time.perf_counter() - started
        rows, _ = await stored(live.services.pool, ann)
        assert_told(follower, rows, head, "follower")
        assert follower.materialiser.counts["written"] == 0
        n = follower.materialiser.counts["followed"]
        print(f"\nfollowing {n} versions: {spent / n * 1000:.2f} ms each")
    await client.close()


async def test_a_viewer_of_another_instance_sees_the_strokes(live: LiveServer) -> None:
    """Strokes painted through one server, a viewer on another: once the
    other catches up (here a read of it: until rooms fan out between
    instances nothing nudges it), its viewer is pushed the changed bricks,
    undo included — whichever server materialised them."""
    a_id, a = await live.user("Paula")
    ann = await live.annotation(a, "two")
    w = await YClient(live.sync_url(ann, "segmentation", token=a, acks="1")).connect()
    assert await w.write(lambda: w.map("layers").__setitem__("L1", Map(LAYER)))
    async with live_with(with_settings(live.settings, port=free_port())) as other:
        viewer = await BrickClient.connect(f"{other.ws_url}/volume/{ann}/L1?token={a}")
        await viewer.fetch(1, (1, 1, 1), [(0, 0, 0), (1, 0, 0)], ZSTD)
        await write(w, f"{a_id}-1", brush(a_id, 7, [[28, 5, 4], [36, 5, 4]], 2))
        await write(w, f"{a_id}-2", brush(a_id, 8, [[5, 5, 4]], 2))
        await live.server.config.app.state.materialiser.catch_up(ann)  # written there
        async with other.client(a) as http:  # a read on the other: it catches up
            assert (await http.get(f"/api/annotations/{ann}/volume/L1/1/0/0/0")).status_code == 200

        def brick(b: tuple[int, int, int]) -> np.ndarray:
            last = [r for _, mag, recs in viewer.pushed if mag == (1, 1, 1) for r in recs]
            found = [r for r in last if r.brick == b]
            return from_raw(decompress(found[-1].payload), U32) if found else np.zeros(1)

        await viewer.until(lambda: {v for v, _, _ in viewer.pushed} >= {2, 3})
        assert brick((0, 0, 0))[28:32, 5, 4].tolist() == [7] * 4
        assert brick((1, 0, 0))[0:5, 5, 4].tolist() == [7] * 5
        assert brick((0, 0, 0))[5, 5, 4] == 8
        # An undo through the first: the other's viewer sees the voxels go.
        await write(w, f"{a_id}-1", None)
        async with other.client(a) as http:
            assert (await http.get(f"/api/annotations/{ann}/volume/L1/1/0/0/0")).status_code == 200
        await viewer.until(lambda: any(v == 4 for v, _, _ in viewer.pushed))
        assert not (brick((1, 0, 0)) == 7).any() and brick((0, 0, 0))[5, 5, 4] == 8
        await viewer.close()
    await w.close()
