"""The annotation's volume layer live: undo (an op deleted) computes its
bricks again from the ops that remain, revert and restore work for voxels,
a replay from the log gives the same bytes, and the brick socket of the
layer pushes changed bricks to its viewers (docs/protocol.md, "Bricks of
an annotation's volume layer")."""

from __future__ import annotations

from typing import Any

import numpy as np
import websockets
from pycrdt import Map

from collab.segmentation.materialise import Materialiser
from collab.volume import wire
from collab.volume.encoding import RAW, ZSTD, decompress, from_raw
from tests.conftest import LiveServer
from tests.segmentation.test_materialise import brush
from tests.volume.helpers import BrickClient
from tests.yclient import YClient

U32 = np.dtype("uint32")


async def _layer(live: LiveServer, name: str = "paint") -> tuple[int, str, int, YClient]:
    a_id, a = await live.user("Ada")
    ann = await live.annotation(a, name)
    writer = await YClient(live.sync_url(ann, "segmentation", token=a, acks="1")).connect()
    entry = {"name": "L1", "dtype": "uint32", "mags": ["1", "2"]}
    assert await writer.write(lambda: writer.map("layers").__setitem__("L1", Map(entry)))
    return a_id, a, ann, writer


async def _stored(live: LiveServer, ann: int, mag: str = "1") -> dict[Any, bytes]:
    """Every brick's newest bytes (decompressed) of layer L1 at ``mag``."""
    async with live.services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT DISTINCT ON (bx, by, bz) bx, by, bz, data FROM materialised_bricks "
            "WHERE annotation_id = $1 AND layer = 'L1' AND mag = $2 "
            "ORDER BY bx, by, bz, version DESC",
            ann,
            mag,
        )
    return {(r["bx"], r["by"], r["bz"]): decompress(bytes(r["data"])) for r in rows}


def _nonzero(stored: dict[Any, bytes]) -> dict[Any, bytes]:
    return {b: raw for b, raw in stored.items() if from_raw(raw, U32).any()}


async def test_undo_replays_the_ops_that_remain(live: LiveServer) -> None:
    a_id, _a, ann, w = await _layer(live)
    ops = w.map("ops")
    first = brush(a_id, 5, [[20, 10, 3], [44, 10, 3]], 3)
    # Only empty voxels: where segment 5 lies, this stroke writes nothing ...
    second = {**brush(a_id, 6, [[40, 10, 3], [40, 30, 3]], 4), "mode": "empty"}
    third = brush(a_id, 8, [[100, 100, 9]], 2)  # far away: untouched by the undo
    for n, op in enumerate((first, second, third), 1):
        assert await w.write(lambda n=n, op=op: ops.__setitem__(f"{a_id}-{n}", op))
    m = live.server.config.app.state.materialiser
    assert await m.catch_up(ann) == 4
    before = _nonzero(await _stored(live, ann))
    row = np.concatenate([from_raw(before[(0, 0, 0)], U32)[:, 10, 3],
                          from_raw(before[(1, 0, 0)], U32)[:, 10, 3]])  # fmt: skip
    assert row[40] == 5
    # ... until it is undone: then the second stroke is replayed over zeros.
    assert await w.write(lambda: ops.__delitem__(f"{a_id}-1"))
    assert await m.catch_up(ann) == 5
    after = _nonzero(await _stored(live, ann))
    assert after[(3, 3, 0)] == before[(3, 3, 0)]  # the far stroke as it was
    left = from_raw(after[(1, 0, 0)], U32)
    assert left[40 - 32, 10, 3] == 6 and not (left == 5).any()
    # Replay: a materialiser on an annotation holding only the remaining ops
    # writes the same bytes, and so does one starting over on this log.
    b_id, _b, other, w2 = await _layer(live, "replay")
    for n, op in ((2, second), (3, third)):
        op = {**op, "author": b_id}
        assert await w2.write(lambda n=n, op=op: w2.map("ops").__setitem__(f"{b_id}-{n}", op))
    assert await m.catch_up(other) == 3
    assert _nonzero(await _stored(live, other)) == after
    async with live.services.pool.acquire() as conn:
        await conn.execute("DELETE FROM materialised_bricks WHERE annotation_id = $1", ann)
        await conn.execute("DELETE FROM materialised_ops WHERE annotation_id = $1", ann)
        await conn.execute("DELETE FROM materialised_versions WHERE annotation_id = $1", ann)
    assert await Materialiser(live.services.pool).catch_up(ann) == 5
    assert _nonzero(await _stored(live, ann)) == after
    # Coarser mags follow the undo: mag 2 holds no 5 either.
    coarse = _nonzero(await _stored(live, ann, "2"))
    assert coarse and not any((from_raw(raw, U32) == 5).any() for raw in coarse.values())
    await w.close()
    await w2.close()


async def test_revert_and_restore_voxels(live: LiveServer) -> None:
    a_id, a, ann, w = await _layer(live)
    ops = w.map("ops")
    assert await w.write(lambda: ops.__setitem__(f"{a_id}-1", brush(a_id, 5, [[10, 10, 1]], 3)))
    assert await w.write(lambda: ops.__setitem__(f"{a_id}-2", brush(a_id, 6, [[20, 20, 1]], 3)))
    url = f"/api/annotations/{ann}/volume/L1/1/0/0/0"
    async with live.client(a) as http:

        async def now() -> np.ndarray:
            r = await http.get(url)
            assert r.status_code == 200, r.text
            return from_raw(r.content, U32)

        both = await now()
        assert both[10, 10, 1] == 5 and both[20, 20, 1] == 6
        r = await http.post(
            f"/api/annotations/{ann}/revert", json={"version": 2, "doc": "segmentation"}
        )
        assert r.status_code == 200, r.text
        reverted = await now()
        assert reverted[10, 10, 1] == 0 and reverted[20, 20, 1] == 6
        r = await http.post(
            f"/api/annotations/{ann}/restore", json={"version": 3, "doc": "segmentation"}
        )
        assert r.status_code == 200, r.text
        np.testing.assert_array_equal(await now(), both)
        # Every version stays readable as it was.
        r = await http.get(url, params={"version": 4})
        np.testing.assert_array_equal(from_raw(r.content, U32), reverted)
    await w.close()


async def test_the_layer_socket_pushes_changed_bricks(live: LiveServer) -> None:
    a_id, a, ann, w = await _layer(live)
    _v_id, viewer = await live.user("Vera")
    async with live.client(a) as http:
        r = await http.post(
            f"/api/annotations/{ann}/grants", json={"user": _v_id, "role": "viewer"}
        )
        assert r.status_code in (200, 201), r.text
    url = f"{live.ws_url}/volume/{ann}/L1?token={viewer}"
    client = await BrickClient.connect(url)
    records = await client.fetch(1, (1, 1, 1), [(0, 0, 0), (1, 0, 0), (-1, 0, 0)], RAW)
    status = {r.brick: r.status for r in records}
    assert status == {(0, 0, 0): wire.STATUS_OK, (1, 0, 0): wire.STATUS_OK,
                      (-1, 0, 0): wire.STATUS_MISSING}  # fmt: skip
    assert all(not from_raw(r.payload, U32).any() for r in records if r.payload)
    coarse = await client.fetch(2, (2, 2, 2), [(0, 0, 0)], ZSTD)
    assert coarse[0].status == wire.STATUS_OK
    # A stroke over bricks (0,0,0) and (1,0,0): both are pushed, unasked.
    op = brush(a_id, 7, [[28, 5, 2], [36, 5, 2]], 2)
    assert await w.write(lambda: w.map("ops").__setitem__(f"{a_id}-1", op))
    seen: dict[tuple[Any, Any], np.ndarray] = {}

    def pushed_all() -> bool:
        for version, mag, recs in client.pushed:
            assert version == 2
            for r in recs:
                raw = decompress(r.payload) if r.encoding == ZSTD else r.payload
                seen[(mag, r.brick)] = from_raw(raw, U32)
        client.pushed.clear()
        return {((1, 1, 1), (0, 0, 0)), ((1, 1, 1), (1, 0, 0)), ((2, 2, 2), (0, 0, 0))} <= set(seen)

    await client.until(pushed_all)
    assert seen[((1, 1, 1), (0, 0, 0))][28:32, 5, 2].tolist() == [7] * 4
    assert seen[((1, 1, 1), (1, 0, 0))][0:5, 5, 2].tolist() == [7] * 5
    assert (seen[((2, 2, 2), (0, 0, 0))] == 7).any()  # the coarser mag, as asked: zstd
    # A socket at a fixed version shows it and hears nothing.
    old = await BrickClient.connect(f"{live.ws_url}/volume/{ann}/L1?token={viewer}&version=1")
    rec = await old.fetch(1, (1, 1, 1), [(0, 0, 0)], RAW)
    assert not from_raw(rec[0].payload, U32).any()
    assert await w.write(
        lambda: w.map("ops").__setitem__(f"{a_id}-2", brush(a_id, 9, [[1, 1, 2]], 1))
    )
    await client.until(lambda: any(v == 3 for v, _m, _r in client.pushed))
    assert old.pushed == [] and not old.frames > 2
    for c in (client, old):
        await c.close()
    await w.close()


async def test_layer_socket_refusals(live: LiveServer) -> None:
    _a_id, a, ann, w = await _layer(live)
    _o, stranger = await live.user("Otto")
    cases = [
        (f"/volume/{ann}/L1?token=nope", 4401),
        (f"/volume/{ann}/L1?token={stranger}", 4403),
        (f"/volume/{ann}/L9?token={a}", 4404),
        (f"/volume/{ann}/L1?token={a}&version=99", 4404),
        (f"/volume/{ann}/L1?token={a}&version=x", 4400),
        (f"/volume/999999/L1?token={a}", 4404),
    ]
    for path, code in cases:
        async with websockets.connect(live.ws_url + path) as ws:
            try:
                await ws.recv()
            except websockets.ConnectionClosed as exc:
                assert exc.rcvd is not None and exc.rcvd.code == code, (path, exc.rcvd)
            else:
                raise AssertionError(f"{path} was not closed")
    # A frame that is no request: an ERROR frame, the socket goes on.
    client = await BrickClient.connect(f"{live.ws_url}/volume/{ann}/L1?token={a}")
    await client.ws.send(b"\x07")
    await client.until(lambda: client.errors)
    assert client.errors[0][0] == wire.E_UNKNOWN_TYPE
    assert (await client.fetch(1, (1, 1, 1), [(0, 0, 0)]))[0].status == wire.STATUS_OK
    await client.close()
    await w.close()


async def test_a_task_base_keeps_the_order_of_its_strokes(live: LiveServer) -> None:
    """A task's base annotation is copied with every segmentation version as
    it was: merged into one, its ops would be applied by id counter, not in
    the order the server sequenced them, and overlapping strokes would come
    out differently."""
    from tests.work.helpers import make_org

    org = await make_org(live)
    async with org.client(org.manager) as http:
        base = (await http.post("/api/annotations", json={"name": "base"})).json()["id"]
    token = org.manager.token
    a = await YClient(live.sync_url(base, "segmentation", token=token, acks="1")).connect()
    b = await YClient(live.sync_url(base, "segmentation", token=token, acks="1")).connect()
    entry = {"name": "L1", "dtype": "uint32", "mags": ["1"]}
    assert await a.write(lambda: a.map("layers").__setitem__("L1", Map(entry)))
    await b.wait(lambda: "L1" in b.map("layers"))
    me = org.manager.id
    # Sequenced: a-1, a-2, then b-1 over a-2. By counter: a-1, b-1, a-2.
    assert await a.write(lambda: a.map("ops").__setitem__("a-1", brush(me, 3, [[5, 5, 1]], 3)))
    assert await a.write(lambda: a.map("ops").__setitem__("a-2", brush(me, 4, [[20, 20, 1]], 4)))
    await b.wait(lambda: "a-2" in b.map("ops"))
    assert await b.write(lambda: b.map("ops").__setitem__("b-1", brush(me, 5, [[22, 20, 1]], 4)))
    r = await org.tasks({"project": org.project, "taskType": org.task_type,
                         "position": [1, 2, 3], "baseAnnotation": base})  # fmt: skip
    assert r.status_code == 201, r.text
    async with org.client(org.annotator) as http:
        copy = (await http.post("/api/tasks/next")).json()["annotation"]
        mine = from_raw((await http.get(f"/api/annotations/{copy}/volume/L1/1/0/0/0")).content, U32)
    async with org.client(org.manager) as http:
        theirs = from_raw(
            (await http.get(f"/api/annotations/{base}/volume/L1/1/0/0/0")).content, U32
        )
    assert theirs[21, 20, 1] == 5  # b-1 last: it wins where it overlaps a-2
    np.testing.assert_array_equal(mine, theirs)
    await a.close()
    await b.close()


async def test_segment_statistics_over_the_fallback(live: LiveServer) -> None:
    from pathlib import Path

    from tests.volume.helpers import make_dataset

    make_dataset(Path(live.settings.roots[0]) / "small")  # segment 1: x<25, y<20, z<35
    async with live.client(live.admin_token) as http:
        assert (
            await http.post("/api/datasets", json={"name": "small", "url": "small"})
        ).status_code == 201
    a_id, a = await live.user("Ada")
    async with live.client(a) as http:
        r = await http.post("/api/annotations", json={"name": "s", "dataset": "small"})
        ann = r.json()["id"]
    w = await YClient(live.sync_url(ann, "segmentation", token=a, acks="1")).connect()
    entry = {"name": "L1", "dtype": "uint32", "fallback": "segmentation", "mags": ["1", "2"]}
    assert await w.write(lambda: w.map("layers").__setitem__("L1", Map(entry)))
    op = brush(a_id, 99, [[5, 5, 2], [9, 5, 2]], 2)
    assert await w.write(lambda: w.map("ops").__setitem__(f"{a_id}-1", op))
    url = f"/api/annotations/{ann}/volume/L1/segments"
    async with live.client(a) as http:
        brick = from_raw((await http.get(f"/api/annotations/{ann}/volume/L1/1/0/0/0")).content, U32)
        painted = int((brick == 99).sum())
        xs, ys, _zs = np.nonzero(brick == 99)
        r = await http.get(f"{url}/99", params={"mag": "1"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["voxelCount"] == painted and body["version"] == 2
        assert body["boundingBox"] == {
            "topLeft": [int(xs.min()), int(ys.min()), 2],
            "size": [int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1, 1],
        }
        one = (await http.get(f"{url}/1", params={"mag": "1"})).json()
        assert one["voxelCount"] == 25 * 20 * 35 - painted
        assert one["boundingBox"] == {"topLeft": [0, 0, 0], "size": [25, 20, 35]}
        before = (await http.get(f"{url}/1", params={"mag": "1", "version": 1})).json()
        assert before["voxelCount"] == 25 * 20 * 35
        assert (await http.get(f"{url}/99", params={"version": 1})).status_code == 404
        coarse = (await http.get(f"{url}/1")).json()  # default: the finest mag that fits
        assert coarse["mag"] == "1"
        for bad, status in (("x", 400), ("-1", 400), ("1?mag=8", 400)):
            assert (await http.get(f"{url}/{bad}")).status_code == status, bad
    await w.close()


async def test_two_painters_at_once_converge(live: LiveServer) -> None:
    """Two clients paint overlapping strokes at the same time, neither
    waiting for the other: both see the same voxels, and a materialiser that
    replays the log from nothing writes the same bytes."""
    a_id, a, ann, w = await _layer(live)
    b_id, b = await live.user("Bo")
    async with live.client(a) as http:
        r = await http.post(f"/api/annotations/{ann}/grants", json={"user": b_id, "role": "editor"})
        assert r.status_code == 201, r.text
    wa = await YClient(live.sync_url(ann, "segmentation", token=a, acks="1")).connect()
    wb = await YClient(live.sync_url(ann, "segmentation", token=b, acks="1")).connect()
    await wb.wait(lambda: "L1" in wb.map("layers"))
    for k in range(20):  # interleaved, unacknowledged: the server sequences them
        wa.map("ops")[f"a-{k + 1}"] = brush(a_id, 100 + k, [[10 + k, 5, 2], [40, 20 + k, 2]], 3)
        wb.map("ops")[f"b-{k + 1}"] = brush(b_id, 200 + k, [[40 - k, 5, 2], [10, 20 + k, 2]], 3)
    for c in (wa, wb):
        await c.wait(lambda c=c: len(c.map("ops")) == 40, timeout=20)
    bricks = [(0, 0, 0), (1, 0, 0)]
    seen = []
    for token in (a, b):
        client = await BrickClient.connect(f"{live.ws_url}/volume/{ann}/L1?token={token}")
        records = await client.fetch(1, (1, 1, 1), bricks, ZSTD)
        seen.append({r.brick: decompress(r.payload) for r in records})
        await client.close()
    assert seen[0] == seen[1]
    painted = from_raw(seen[0][(0, 0, 0)], U32)
    assert {int(v) for v in np.unique(painted)} >= {0, 119, 219}  # the last of each
    async with live.services.pool.acquire() as conn:
        for table in ("materialised_bricks", "materialised_ops", "materialised_versions"):
            await conn.execute(f"DELETE FROM {table} WHERE annotation_id = $1", ann)
    await Materialiser(live.services.pool).catch_up(ann)
    again = await _stored(live, ann)
    assert {b: again[b] for b in bricks} == seen[0]
    for c in (w, wa, wb):
        await c.close()


async def test_a_viewer_that_stops_reading_is_marked_stale(settings: Any) -> None:
    """A viewer that stops reading while its bricks change: the server holds
    at most its send buffer of pushes (here none fits: the fallback is noise,
    every painted brick ~128 KiB of zstd), the rest as stale marks; once it
    reads again it is told which bricks changed, asks for them again and
    sees the newest voxels (docs/protocol.md, "Bricks of an annotation's
    volume layer")."""
    import asyncio
    from pathlib import Path

    from collab.volume.mags import Mag
    from collab.volume.writer import write_layer, write_properties
    from tests.conftest import live_with, with_settings

    limit = 64 * 1024
    tuned = with_settings(settings, brick_send_buffer_bytes=limit, brick_frame_bytes=64 * 1024)
    async with live_with(tuned) as live:
        root = Path(tuned.roots[0]) / "noisy"
        noise = np.random.default_rng(3).integers(1, 2**32, (128, 128, 32), dtype=np.uint32)
        layers = [write_layer(root, "segmentation", "segmentation", noise, [Mag(1, 1, 1)])]
        write_properties(root, "noisy", (4.0, 4.0, 40.0), layers)
        async with live.client(live.admin_token) as http:
            assert (
                await http.post("/api/datasets", json={"name": "noisy", "url": "noisy"})
            ).status_code == 201
        a_id, a = await live.user("Ada")
        async with live.client(a) as http:
            ann = await http.post("/api/annotations", json={"name": "n", "dataset": "noisy"})
            ann = ann.json()["id"]
        w = await YClient(live.sync_url(ann, "segmentation", token=a, acks="1")).connect()
        entry = {"name": "L1", "dtype": "uint32", "fallback": "segmentation", "mags": ["1"]}
        assert await w.write(lambda: w.map("layers").__setitem__("L1", Map(entry)))
        bricks = [(x, y, 0) for x in range(4) for y in range(4)]
        viewer = await BrickClient.connect(f"{live.ws_url}/volume/{ann}/L1?token={a}", max_queue=1)
        assert len(await viewer.fetch(1, (1, 1, 1), bricks, ZSTD)) == 16  # now watched
        [stream] = [s for s in live.services.volumes.streams if s.reader.name == "L1"]
        # It stops reading; raw answers (128 KiB a brick) fill the socket
        # until the stream's producers wait for it.
        asks = range(2, 22)
        for rid in asks:
            await viewer.ws.send(wire.pack_request(rid, (1, 1, 1), bricks, RAW))
        await asyncio.wait_for(stream.stalled.wait(), 30)
        zigzag = [[4, 8, 5], [124, 8, 5], [124, 40, 5], [4, 40, 5], [4, 72, 5], [124, 72, 5],
                  [124, 104, 5], [4, 104, 5], [4, 124, 5], [124, 124, 5]]  # fmt: skip
        for n in (1, 2):
            op = brush(a_id, 10 + n, zigzag, 12)
            assert await w.write(lambda n=n, op=op: w.map("ops").__setitem__(f"{a_id}-{n}", op))
        m = live.server.config.app.state.materialiser
        newest = await m.catch_up(ann)
        assert newest == 3
        assert stream.push_peak_bytes <= limit and stream.push_bytes <= limit
        assert {where[1] for where in stream.pushes} == set(bricks)
        assert all(data is None for _v, data in stream.pushes.values())  # marks only
        # It reads again: every answer, and each brick marked stale at the newest version.
        marked: set[tuple[int, int, int]] = set()

        def caught_up() -> bool:
            for version, _mag, records in viewer.pushed:
                for r in records:
                    assert r.status == wire.STATUS_STALE and r.payload == b""
                    if version == newest:
                        marked.add(r.brick)
            viewer.pushed.clear()
            return all(rid in viewer.done for rid in asks) and marked == set(bricks)

        await viewer.until(caught_up, timeout=60)
        again = await viewer.fetch(99, (1, 1, 1), bricks, ZSTD)
        async with live.client(a) as http:
            for r in again:
                x, y, z = r.brick
                truth = await http.get(f"/api/annotations/{ann}/volume/L1/1/{x}/{y}/{z}")
                assert truth.headers["x-version"] == str(newest)
                assert decompress(r.payload) == truth.content
        assert (from_raw(decompress(again[0].payload), U32) == 12).any()  # the last stroke
        metrics = live.services.metrics.render().decode()
        assert "collab_bricks_push_stale_total" in metrics
        await viewer.close()
        await w.close()


async def test_materialiser_failures_are_unavailable_to_readers(live: LiveServer) -> None:
    """A read of the voxels that fails inside the materialiser — a stored
    brick that does not decompress, its tables gone — answers 503 and
    closes the layer's socket with 1013 (retry later), never 500 or 1011;
    the rest of the layer, and everything once the tables are back, reads
    as before (collab/segmentation/voxels.py)."""
    a_id, a, ann, w = await _layer(live)
    op = brush(a_id, 5, [[10, 10, 1], [40, 10, 1]], 3)  # bricks (0,0,0) and (1,0,0)
    assert await w.write(lambda: w.map("ops").__setitem__(f"{a_id}-1", op))
    url = f"/api/annotations/{ann}/volume/L1/1"
    async with live.client(a) as http:
        assert (await http.get(f"{url}/0/0/0")).status_code == 200  # materialised
        async with live.services.pool.acquire() as conn:
            await conn.execute(
                "UPDATE materialised_bricks SET data = '\\xdeadbeef'::bytea "
                "WHERE annotation_id = $1 AND mag = '1' AND bx = 1 AND by = 0 AND bz = 0",
                ann,
            )
        r = await http.get(f"{url}/1/0/0")
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "unavailable"
        assert (await http.get(f"{url}/0/0/0")).status_code == 200  # the others read on
        # Over the socket: that brick fails (raw: it is decompressed), the socket goes on.
        client = await BrickClient.connect(f"{live.ws_url}/volume/{ann}/L1?token={a}")
        records = await client.fetch(1, (1, 1, 1), [(0, 0, 0), (1, 0, 0)], RAW)
        assert {r.brick: r.status for r in records} == {
            (0, 0, 0): wire.STATUS_OK,
            (1, 0, 0): wire.STATUS_FAILED,
        }
        await client.close()
        # Its tables gone (an operator's mistake, a broken migration): 503 and 1013.
        async with live.services.pool.acquire() as conn:
            await conn.execute("ALTER TABLE materialised_versions RENAME TO mv_away")
        try:
            r = await http.get(f"{url}/0/0/0")
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "unavailable"
            r = await http.get(f"/api/annotations/{ann}/volume/L1/segments/5")
            assert r.status_code == 503, r.text
            async with websockets.connect(f"{live.ws_url}/volume/{ann}/L1?token={a}") as ws:
                try:
                    await ws.recv()
                except websockets.ConnectionClosed as exc:
                    assert exc.rcvd is not None and exc.rcvd.code == 1013, exc.rcvd
                else:
                    raise AssertionError("the socket was not closed")
        finally:
            async with live.services.pool.acquire() as conn:
                await conn.execute("ALTER TABLE mv_away RENAME TO materialised_versions")
        # Back by itself.
        assert (await http.get(f"{url}/0/0/0")).status_code == 200
        client = await BrickClient.connect(f"{live.ws_url}/volume/{ann}/L1?token={a}")
        assert (await client.fetch(1, (1, 1, 1), [(0, 0, 0)]))[0].status == wire.STATUS_OK
        await client.close()
    await w.close()
