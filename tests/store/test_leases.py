"""Room leases with fencing (collab/store/leases.py), on the real PostgreSQL."""

from __future__ import annotations

import asyncio

from collab.document.log import RoomKey
from collab.store import leases
from tests.conftest import LiveServer


async def test_one_owner_at_a_time_and_the_epoch_fences_an_old_owner(live: LiveServer) -> None:
    _, token = await live.user("Lea")
    key = RoomKey(await live.annotation(token, "lease"), "skeleton")
    pool = live.services.pool
    async with pool.acquire() as a, pool.acquire() as b:
        first = await leases.acquire(a, key, "instance-a", 0.3)
        assert first is not None and first.epoch == 1
        # Held: the other instance cannot take it; the owner renews it.
        assert await leases.acquire(b, key, "instance-b", 5) is None
        again = await leases.acquire(a, key, "instance-a", 0.3)
        assert again is not None and again.epoch == 1
        assert await leases.holds(a, key, first)
        # Expired (the owner paused): taken, the epoch moves on.
        deadline = asyncio.get_running_loop().time() + 10
        taken = None
        while taken is None:  # bounded: the lease ends 0.3 s after its renewal
            assert asyncio.get_running_loop().time() < deadline, "never taken"
            taken = await leases.acquire(b, key, "instance-b", 5)
        assert taken.owner == "instance-b" and taken.epoch == 2
        # The old owner wakes: it can neither renew nor pass the fence.
        assert await leases.renew(a, key, first, 5) is None
        assert not await leases.holds(a, key, first)
        assert await leases.holds(b, key, taken)
        owner = await leases.owner_of(a, key)
        assert owner is not None and (owner.owner, owner.epoch) == ("instance-b", 2)
        # A clean release: the other takes it at once, under a new epoch.
        await leases.release(b, key, taken)
        back = await leases.acquire(a, key, "instance-a", 5)
        assert back is not None and back.epoch == 3


async def test_the_fence_holds_a_taker_out_until_the_write_ends(live: LiveServer) -> None:
    """A version written under the fence (FOR SHARE) blocks a takeover of an
    expired lease until its transaction ends; after it, the taker wins and
    the old owner's next fence check fails."""
    _, token = await live.user("Fen")
    key = RoomKey(await live.annotation(token, "fence"), "skeleton")
    pool = live.services.pool
    async with pool.acquire() as a, pool.acquire() as b, pool.acquire() as watcher:
        held = await leases.acquire(a, key, "instance-a", 0.2)
        assert held is not None
        taker_pid = await b.fetchval("SELECT pg_backend_pid()")
        deadline = asyncio.get_running_loop().time() + 10
        async with asyncio.TaskGroup() as tg:
            async with a.transaction():
                assert await leases.holds(a, key, held)
                # The lease expires inside the writer's transaction (bounded wait).
                while await leases.owner_of(watcher, key) is not None:
                    assert asyncio.get_running_loop().time() < deadline, "never expired"
                taking = tg.create_task(leases.acquire(b, key, "instance-b", 5))
                # The taker waits on the writer's row lock, not past it.
                while not await watcher.fetchval(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                    taker_pid,
                ):
                    assert not taking.done(), "a taker got in while a version was being written"
                    assert asyncio.get_running_loop().time() < deadline, "the taker never waited"
                assert not taking.done()
            taken = await asyncio.wait_for(taking, 10)  # the write ended: it goes on
        assert taken is not None and taken.epoch == held.epoch + 1
        assert not await leases.holds(a, key, held)
