"""Two server processes over one database, one annotation: proofreading ops
recorded and written through one are followed by the other — its kept
mapping, its lookups and its viewers — through its own materialiser
(collab/proofreading/service.py, collab/segmentation/materialise.py).

The second server stands for another instance: an app of its own (pool,
materialiser, proofreading service) in this process. Until rooms fan out
between instances it is not nudged by the first's versions: its reads
catch up, and that is when it follows."""

from __future__ import annotations

from tests.conftest import LiveServer, free_port, live_with, with_settings
from tests.proofreading.test_proofreading_live import WEAK, lookup, post, setup
from tests.volume.helpers import BrickClient


async def test_ops_recorded_by_one_process_are_followed_by_another(live: LiveServer) -> None:
    _a_id, a, ann, w = await setup(live, "pri")
    async with live_with(with_settings(live.settings, port=free_port())) as other:
        # The other process builds and keeps the layer's mapping, and has a viewer.
        assert await lookup(other, a, ann, [1, 4, 9, 17]) == [1, 1, 2, 3]
        viewer = await BrickClient.connect(f"{other.ws_url}/volume/{ann}/L1?token={a}")
        await viewer.fetch(1, (1, 1, 1), [(0, 0, 0)])
        kept = other.server.config.app.state.proofreading._mappings
        assert (ann, "L1") in kept

        # A merge recorded and written by the first: the other's kept
        # mapping follows it (the record read again there), its viewer is
        # told the pairs that changed.
        r = await post(live, a, ann, "merge", {"a": 1, "b": 9})
        assert r.status_code == 201, r.text
        merged = r.json()
        assert await lookup(other, a, ann, [1, 9, 16, 17]) == [1, 1, 1, 3]
        assert (ann, "L1") in kept, "the other rebuilt instead of following"
        await viewer.until(lambda: any(v == merged["version"] for v, _, _ in viewer.mapped))
        pushed = {int(s): int(g) for _, _, pairs in viewer.mapped for s, g in pairs.tolist()}
        assert pushed == dict.fromkeys(range(9, 17), 1)

        # A split there, and its undo by a client of the first: the other follows both.
        r = await post(live, a, ann, "split", {"sources": [1], "sinks": [4]})
        assert r.status_code == 201, r.text
        split = r.json()
        assert sorted(map(tuple, split["cut"])) == sorted(WEAK)
        new = 3 + int(split["op"][3:]) * 65536 + 1
        assert await lookup(other, a, ann, [1, 3, 4, 9]) == [1, new, new, 1]
        assert await w.write(lambda: w.map("ops").pop(split["op"]))
        assert await lookup(other, a, ann, [1, 3, 4, 9]) == [1, 1, 1, 1]

        # Both processes agree with a mapping built from the log alone.
        everyone = list(range(1, 33))
        here = await lookup(live, a, ann, everyone)
        assert await lookup(other, a, ann, everyone) == here
        kept.clear()
        assert await lookup(other, a, ann, everyone) == here
        await viewer.close()
    await w.close()
