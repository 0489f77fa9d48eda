"""Annotation leases with fencing (collab/store/leases.py), on the real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from collab.store import leases
from tests.conftest import LiveServer

A, B = "http://a:1#x", "http://b:1#y"


async def test_one_owner_at_a_time_and_the_epoch_fences_an_old_owner(live: LiveServer) -> None:
    _, token = await live.user("Lea")
    ann = await live.annotation(token, "lease")
    pool = live.services.pool
    async with pool.acquire() as a, pool.acquire() as b:
        first = await leases.acquire(a, ann, A, "http://a:1", 0.3)
        assert first is not None and first.epoch == 1
        # Held: the other instance cannot take it; the owner renews it.
        assert await leases.acquire(b, ann, B, "http://b:1", 5) is None
        again = await leases.acquire(a, ann, A, "http://a:1", 0.3)
        assert again is not None and again.epoch == 1
        assert await leases.fence(a, A, {ann: 1}, 5) == {ann: False}
        # Expired (the owner paused): taken, the epoch moves on.
        deadline = asyncio.get_running_loop().time() + 10
        taken = None
        while taken is None:  # bounded: the lease ends 0.3 s after its renewal
            assert asyncio.get_running_loop().time() < deadline, "never taken"
            taken = await leases.acquire(b, ann, B, "http://b:1", 5)
        assert taken.owner == B and taken.epoch == 2
        # The old owner wakes: it can neither renew nor pass the fence.
        assert await leases.renew_all(a, A, {ann: 1}, 5) == {}
        assert await leases.fence(a, A, {ann: 1}, 5) == {}
        assert await leases.fence(b, B, {ann: 2}, 5) == {ann: False}
        # A watcher makes the owner announce; the lease says where the owner is.
        live_leases = await leases.watch(a, [ann], 5)
        assert live_leases[ann].url == "http://b:1"
        assert await leases.fence(b, B, {ann: 2}, 5) == {ann: True}
        # A clean release: the other takes it at once, under a new epoch.
        await leases.release(b, ann, B, 2)
        back = await leases.acquire(a, ann, A, "http://a:1", 5)
        assert back is not None and back.epoch == 3
        # A restart at the same url takes it at once (the old process is gone).
        restarted = await leases.acquire(b, ann, "http://a:1#z", "http://a:1", 5)
        assert restarted is not None and restarted.epoch == 4


async def test_the_fence_holds_a_taker_out_until_the_write_ends(live: LiveServer) -> None:
    """A version written under the fence (FOR SHARE) blocks a takeover of an
    expired lease until its transaction ends; after it, the taker wins and
    the old owner's next fence check fails."""
    _, token = await live.user("Fen")
    ann = await live.annotation(token, "fence")
    pool = live.services.pool
    async with pool.acquire() as a, pool.acquire() as b, pool.acquire() as watcher:
        held = await leases.acquire(a, ann, A, "http://a:1", 0.2)
        assert held is not None
        taker_pid = await b.fetchval("SELECT pg_backend_pid()")
        deadline = asyncio.get_running_loop().time() + 10
        async with asyncio.TaskGroup() as tg:
            async with a.transaction():
                assert await leases.fence(a, A, {ann: held.epoch}, 5) == {ann: False}
                # The lease expires inside the writer's transaction (bounded wait).
                while await leases.owner_of(watcher, ann) is not None:
                    assert asyncio.get_running_loop().time() < deadline, "never expired"
                taking = tg.create_task(leases.acquire(b, ann, B, "http://b:1", 5))
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
        assert await leases.fence(a, A, {ann: held.epoch}, 5) == {}


async def test_a_writer_paused_inside_its_commit_is_ended_and_a_taker_gets_through(
    live: LiveServer,
) -> None:
    """A writer that took the fence and then stops talking (SIGSTOP between
    two statements of its commit) holds the row lock only until the
    transaction's idle limit: PostgreSQL ends its session, the taker's
    wait ends, and the paused writer's transaction is gone."""
    _, token = await live.user("Ida")
    ann = await live.annotation(token, "paused commit")
    pool = live.services.pool
    a = await asyncpg.connect(live.settings.database_url)  # its own: it is ended under us
    try:
        held = await leases.acquire(a, ann, A, "http://a:1", 0.2)
        assert held is not None
        tx = a.transaction()
        await tx.start()
        assert await leases.fence(a, A, {ann: held.epoch}, 0.5) == {ann: False}
        # "Paused": a says nothing more; b waits for the lock, then takes it.
        async with pool.acquire() as b:
            taken = await asyncio.wait_for(leases.acquire(b, ann, B, "http://b:1", 5), 10)
        assert taken is not None and taken.epoch == held.epoch + 1
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):  # ended under it
            await a.fetchval("SELECT 1")
    finally:
        a.terminate()
