"""Undo of voxel ops, any order, any mag: the voxels after any sequence of
ops added, deleted (undo) and added again (redo, restore) are those of the
standing ops applied in their order from nothing — at every mag
(collab/segmentation/materialise.py, ``_recompute``)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from pycrdt import Map

from collab.document.log import RoomKey
from collab.store import materialised
from collab.volume import encoding as enc
from tests.conftest import LiveServer
from tests.yclient import YClient

MAGS = ["1", "2", "4"]
LAYER = {"name": "L1", "dtype": "uint32", "mags": MAGS}


def brush(
    author: int,
    segment: int,
    points: list[list[int]],
    radius: float,
    mag: str = "1",
    mode: str = "all",
    erase: bool = False,
) -> dict[str, Any]:
    return {"kind": "brush", "layer": "L1", "author": author, "time": 1, "mag": mag,
            "plane": "xy", "points": points, "radius": radius, "segment": segment,
            "erase": erase, "mode": mode}  # fmt: skip


def fill2d(author: int, segment: int, seed: list[int], mag: str = "1") -> dict[str, Any]:
    return {"kind": "fill2d", "layer": "L1", "author": author, "time": 1, "mag": mag,
            "plane": "xy", "seed": seed, "segment": segment}  # fmt: skip


async def volume(live: LiveServer, ann: int) -> dict[tuple[str, tuple[int, int, int]], np.ndarray]:
    """Every brick the annotation wrote, newest, at every mag; all-zero ones left out."""
    key = RoomKey(ann, "segmentation")
    out = {}
    async with live.services.pool.acquire() as conn:
        for mag in MAGS:
            found = await materialised.written_bricks(conn, key, "L1", mag, None, 4096)
            for b, data in found.items():
                voxels = enc.from_raw(enc.decompress(data), np.dtype("uint32"))
                if voxels.any():
                    out[(mag, b)] = voxels
    return out


def assert_same(got: dict[Any, np.ndarray], want: dict[Any, np.ndarray], note: str) -> None:
    assert got.keys() == want.keys(), f"{note}: bricks differ: {got.keys() ^ want.keys()}"
    for where in want:
        diff = int((got[where] != want[where]).sum())
        assert diff == 0, f"{note}: {diff} voxels differ in brick {where}"


async def start(live: LiveServer, name: str) -> tuple[int, YClient, int]:
    a_id, a = await live.user(name)
    client, ann = await annotation(live, a, name)
    return a_id, client, ann


async def annotation(live: LiveServer, token: str, name: str) -> tuple[YClient, int]:
    ann = await live.annotation(token, name)
    client = await YClient(live.sync_url(ann, "segmentation", token=token, acks="1")).connect()
    assert await client.write(lambda: client.map("layers").__setitem__("L1", Map(LAYER)))
    TOKENS[id(client)] = token
    return client, ann


#: The token each test client writes with (a replay from nothing writes as
#: the same user: ops name their author).
TOKENS: dict[int, str] = {}


async def from_nothing(
    live: LiveServer, like: YClient, name: str, standing: list[tuple[str, dict[str, Any]]]
) -> dict[tuple[str, tuple[int, int, int]], np.ndarray]:
    """The standing ops, in their order, each its own version, from nothing."""
    client, ann = await annotation(live, TOKENS[id(like)], name)
    ops = client.map("ops")
    for key, op in standing:
        assert await client.write(lambda k=key, o=op: ops.__setitem__(k, o))
    await live.server.config.app.state.materialiser.catch_up(ann)
    await client.close()
    return await volume(live, ann)


async def test_undo_of_the_first_after_the_second_leaves_nothing(live: LiveServer) -> None:
    """A, B over the same voxels; undo A, then B: nothing is left (the base
    of B's undo must not hold A, undone since)."""
    a_id, client, ann = await start(live, "Ada")
    ops = client.map("ops")
    m = live.server.config.app.state.materialiser
    assert await client.write(
        lambda: ops.__setitem__(f"{a_id}-1", brush(a_id, 5, [[10, 10, 3]], 6))
    )
    assert await client.write(
        lambda: ops.__setitem__(f"{a_id}-2", brush(a_id, 6, [[14, 10, 3]], 4))
    )
    await m.catch_up(ann)
    assert await client.write(lambda: ops.pop(f"{a_id}-1"))
    await m.catch_up(ann)
    left = await volume(live, ann)
    assert {int(v) for arr in left.values() for v in np.unique(arr)} == {0, 6}
    assert await client.write(lambda: ops.pop(f"{a_id}-2"))
    await m.catch_up(ann)
    assert await volume(live, ann) == {}, "an undone stroke came back"
    await client.close()


async def test_undo_at_a_finer_mag_keeps_an_op_drawn_at_a_coarser_one(live: LiveServer) -> None:
    a_id, client, ann = await start(live, "Bea")
    ops = client.map("ops")
    m = live.server.config.app.state.materialiser
    assert await client.write(
        lambda: ops.__setitem__(f"{a_id}-1", brush(a_id, 5, [[20, 20, 3]], 10))
    )
    # Drawn at mag 4 after, elsewhere in the same coarse brick.
    assert await client.write(
        lambda: ops.__setitem__(f"{a_id}-2", brush(a_id, 9, [[80, 80, 4]], 12, mag="4"))
    )
    await m.catch_up(ann)
    assert await client.write(lambda: ops.pop(f"{a_id}-1"))
    await m.catch_up(ann)
    got = await volume(live, ann)
    assert ("4", (0, 0, 0)) in got and (got[("4", (0, 0, 0))] == 9).any(), "the mag-4 op was erased"
    assert_same(
        got, await from_nothing(live, client, "Bea2", [(f"{a_id}-2", ops[f"{a_id}-2"])]), "mixed"
    )
    await client.close()


async def test_any_sequence_of_ops_undos_and_redos_equals_replay_from_nothing(
    live: LiveServer,
) -> None:
    """Seeded random sequences: brushes at mags 1, 2 and 4 (modes all and
    empty, erasing), 2D fills, undos in any order, redos of undone ops;
    checked against the standing ops replayed from nothing at points
    along the way."""
    rng = random.Random(20261203)
    a_id, client, ann = await start(live, "Cy")
    ops = client.map("ops")
    m = live.server.config.app.state.materialiser
    standing: list[tuple[str, dict[str, Any]]] = []
    undone: list[tuple[str, dict[str, Any]]] = []
    n = 0
    for step in range(60):
        roll = rng.random()
        if roll < 0.25 and standing:
            key, op = standing.pop(rng.randrange(len(standing)))
            assert await client.write(lambda k=key: ops.pop(k))
            undone.append((key, op))
        elif roll < 0.35 and undone:
            key, op = undone.pop(rng.randrange(len(undone)))
            assert await client.write(lambda k=key, o=op: ops.__setitem__(k, o))
            standing.append((key, op))
        else:
            n += 1
            key = f"{a_id}-{n}"
            segment = rng.randint(1, 6)
            mag = rng.choice(MAGS)
            if rng.random() < 0.15:
                op = fill2d(a_id, segment, [rng.randrange(0, 96), rng.randrange(0, 96), 4], mag)
            else:
                points = [[rng.randrange(0, 96), rng.randrange(0, 96), 4] for _ in range(2)]
                op = brush(a_id, segment, points, rng.choice([3, 6, 11]), mag,
                           rng.choice(["all", "empty"]), rng.random() < 0.1)  # fmt: skip
            assert await client.write(lambda k=key, o=op: ops.__setitem__(k, o))
            standing.append((key, op))
        if step % 20 == 19:
            await m.catch_up(ann)
            want = await from_nothing(live, client, f"Cy{step}", list(standing))
            assert_same(await volume(live, ann), want, f"after step {step}")
    await client.close()
