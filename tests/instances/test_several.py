"""Several instances over one PostgreSQL (contract, "Several instances"):
three real ``collab serve`` processes with one ``COLLAB_DATABASE_URL``,
clients of one annotation spread over them.

- Clients on all three write concurrently and converge; each version is
  numbered once, and written by the annotation's owner alone; every
  client's ``saved`` reaches the head.
- SIGKILL of the owner while everyone writes with acks: another instance
  takes over within 5 s, the killed instance's clients reconnect elsewhere
  with what they kept, and nothing acknowledged is lost.
- SIGSTOP of the owner while the others write: another instance takes
  over, the paused one's clients hear nothing meanwhile; after SIGCONT the
  old owner writes no version, and whatever its clients wrote into it ends
  up stored. (The others' versions take the numbers the old owner would
  use, so the primary key alone would refuse it here.)
- SIGSTOP of the owner with nobody else writing: the next version number
  is free when it wakes, so only the fence keeps it from writing what its
  clients sent meanwhile (a server with the fence removed fails this test).

The owner is the instance that first opens the annotation (every test
connects its first client to instance 0); the tests check it in
PostgreSQL's lease table. A trigger in the test's database notes which
instance's session wrote each version (cluster.record_version_writers).
Each test runs well under a minute on two cores.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.instances.cluster import (
    TAKEOVER_SECONDS,
    Cluster,
    Writer,
    acks_after,
    assert_numbered_once,
    doc_json,
    first_ack_after,
    fresh_view,
    record_version_writers,
    running_cluster,
    runs,
    stored_versions,
    until,
    version_writers,
    wait_owner,
)

INSTANCES = 3
PER_INSTANCE = 2
#: On top of the 5 s of the issue, for the first write after a takeover to be
#: acknowledged at a client of a surviving instance (no reconnect: that
#: client's instance is alive): the new owner loads the document and drains
#: the forwarded updates, commits, and the version's announcement crosses
#: the database back to the mirror; two cores shared by three servers,
#: PostgreSQL and the clients.
ACK_ALLOWANCE = 1.0


async def _writers(cluster: Cluster, ann: int, token: str) -> list[Writer]:
    """PER_INSTANCE writers per instance; the very first connects to instance 0,
    which makes it the annotation's owner."""
    writers = []
    for k in range(INSTANCES):
        for j in range(PER_INSTANCE):
            w = Writer(cluster, ann, token, f"w{k}{j}")
            await w.connect(k)
            writers.append(w)
    return writers


async def _close(writers: list[Writer]) -> None:
    await asyncio.gather(*(w.close() for w in writers))


async def _check_stored(
    cluster: Cluster, ann: int, token: str, writers: list[Writer], instances: list[int]
) -> list[int]:
    """Versions 1..N once each; every acknowledged write (and, once all are
    acknowledged, every write) in a fresh client's view at each instance;
    no client was told of a saved version the database lacks."""
    versions = await stored_versions(cluster.database_url, ann)
    assert_numbered_once(versions)
    head = versions[-1]
    for w in writers:
        assert w.max_saved <= head, f"{w.name} was told {w.max_saved} is saved; newest is {head}"
    acked = set().union(*(w.acked_nodes() for w in writers))
    written = set().union(*(w.all_nodes() for w in writers))
    for k in instances:
        view = await fresh_view(
            cluster.sync_url(k, ann, token), lambda j: written <= set(j["nodes"]), 10
        )
        nodes = set(view["nodes"])
        assert acked <= nodes, f"instance {k}: acknowledged writes lost: {sorted(acked - nodes)}"
        assert nodes == written, f"instance {k}: missing {sorted(written - nodes)}"
    return versions


async def test_clients_on_three_instances_converge_and_versions_are_numbered_once(
    tmp_path: Path, database: str
) -> None:
    await record_version_writers(database)
    async with running_cluster(tmp_path, database, INSTANCES) as cluster:
        token, ann = await cluster.user_and_annotation()
        writers = await _writers(cluster, ann, token)
        assert await wait_owner(cluster, ann) == 0, "the first instance to open it owns it"

        async def write(w: Writer) -> None:
            for _ in range(12):  # one at a time, each acknowledged
                await w.write(timeout=15)
            burst = [w.put() for _ in range(8)]  # then several in flight
            assert await w.wait_acked(burst, 15), f"{w.name}: burst not acknowledged"

        await asyncio.gather(*(write(w) for w in writers))

        versions = await stored_versions(cluster.database_url, ann)
        assert_numbered_once(versions)
        head = versions[-1]
        # Versions are written by the owner alone (mirrors forward).
        assert runs(await version_writers(cluster, ann)) == [(0, head)]
        # Every client hears that everything is saved.
        await until(
            lambda: all(w.client is not None and w.client.saved >= head for w in writers),
            10,
            f"every client's saved to reach {head}",
        )
        assert all(w.max_saved == head for w in writers)
        assert all(c.unexpected_accepted == 0 for w in writers for c in w.clients)
        # Every client converges to the same document, holding every write.
        written = set().union(*(w.all_nodes() for w in writers))
        await until(
            lambda: all(set(doc_json(w.doc)["nodes"]) == written for w in writers),
            10,
            "every client to hold every write",
        )
        reference = doc_json(writers[0].doc)
        for w in writers[1:]:
            assert doc_json(w.doc) == reference, f"{w.name} differs from {writers[0].name}"
        # ... which is what a new client gets from each instance.
        for k in range(INSTANCES):
            view = await fresh_view(cluster.sync_url(k, ann, token), lambda j: j == reference, 10)
            assert view == reference, f"a new client of instance {k} sees another document"
        await _close(writers)


async def test_sigkill_of_the_owner_loses_nothing_acknowledged(
    tmp_path: Path, database: str
) -> None:
    await record_version_writers(database)
    async with running_cluster(tmp_path, database, INSTANCES) as cluster:
        token, ann = await cluster.user_and_annotation()
        writers = await _writers(cluster, ann, token)
        owner = await wait_owner(cluster, ann)
        assert owner == 0, "the first instance to open it owns it"
        victims = [w for w in writers if w.instance == owner]
        survivors = [w for w in writers if w.instance != owner]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(w.run(stop)) for w in writers]
        try:
            await until(
                lambda: sum(len(w.acked_at) for w in writers) >= 30,
                30,
                "30 acknowledged writes before the kill",
            )
            killed_at = time.monotonic()
            await asyncio.to_thread(cluster.instances[owner].kill)
            await until(
                lambda: first_ack_after(survivors, killed_at) is not None,
                TAKEOVER_SECONDS + 15,
                "a write made after the kill to be acknowledged",
            )
            took = first_ack_after(survivors, killed_at)
            assert took is not None and took <= TAKEOVER_SECONDS + ACK_ALLOWANCE, (
                f"first acknowledgement {took:.2f} s after the kill"
            )
            print(f"first acknowledgement {took:.2f} s after the kill")
            # The killed instance's clients went elsewhere and write on.
            await until(
                lambda: all(acks_after([w], killed_at) >= 3 for w in writers),
                20,
                "every writer acknowledged again after the kill",
            )
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        assert not [w.failure for w in writers if w.failure], [w.failure for w in writers]
        assert all(w.instance != owner for w in victims)
        new_owner = await wait_owner(cluster, ann, other_than=owner)
        # What each writer had not seen acknowledged when it stopped is, soon.
        await until(lambda: all(w.all_acked() for w in writers), 15, "every write acknowledged")
        versions = await _check_stored(
            cluster, ann, token, writers, [k for k in range(INSTANCES) if k != owner]
        )
        handover = runs(await version_writers(cluster, ann))
        assert [k for k, _ in handover] == [owner, new_owner], handover
        assert sum(n for _, n in handover) == versions[-1]
        await _close(writers)


async def test_a_paused_owner_writes_nothing_after_a_takeover(
    tmp_path: Path, database: str
) -> None:
    await record_version_writers(database)
    async with running_cluster(tmp_path, database, INSTANCES) as cluster:
        token, ann = await cluster.user_and_annotation()
        writers = await _writers(cluster, ann, token)
        owner = await wait_owner(cluster, ann)
        assert owner == 0, "the first instance to open it owns it"
        paused = [w for w in writers if w.instance == owner]
        others = [w for w in writers if w.instance != owner]
        for w in paused:
            for _ in range(3):
                await w.write(timeout=15)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(w.run(stop)) for w in others]
        try:
            await until(
                lambda: sum(len(w.acked_at) for w in others) >= 20,
                30,
                "20 acknowledged writes before the pause",
            )
            paused_at = time.monotonic()
            cluster.pause(owner)
            # Its clients keep writing into it.
            during = {w.name: [w.put()] for w in paused}
            await until(
                lambda: first_ack_after(others, paused_at) is not None,
                TAKEOVER_SECONDS + 15,
                "a write made after the pause to be acknowledged",
            )
            took = first_ack_after(others, paused_at)
            assert took is not None and took <= TAKEOVER_SECONDS + ACK_ALLOWANCE, (
                f"first acknowledgement {took:.2f} s after the pause"
            )
            print(f"first acknowledgement {took:.2f} s after the pause")
            new_owner = await wait_owner(cluster, ann, timeout=5, other_than=owner)
            # Whatever the kernel held before the pause has arrived by now.
            heard = {w.name: w.client.received if w.client else 0 for w in paused}
            for w in paused:
                during[w.name] += [w.put(), w.put()]
            later = time.monotonic()
            await until(
                lambda: acks_after(others, later) >= 10,
                15,
                "10 more acknowledged writes while the old owner is paused",
            )
            for w in paused:
                assert w.client is not None and w.client.received == heard[w.name], (
                    f"{w.name} heard from a paused instance"
                )
                assert not any(i in w.acked_at for i in during[w.name])
            head_at_resume = (await stored_versions(cluster.database_url, ann))[-1]
            cluster.resume(owner)
            resumed_at = time.monotonic()

            # The old owner's clients are closed (and reconnect elsewhere) or
            # their writes reach the new owner through it: either way stored.
            async def settle(w: Writer) -> None:
                for _ in range(5):  # bounded: a few reconnections
                    if w.closed() and not await w.reconnect():
                        break
                    pending = [i for i in range(w.written) if i not in w.acked_at]
                    try:
                        if await w.wait_acked(pending, 20):
                            return
                    except TimeoutError:
                        break
                unacked = [i for i in range(w.written) if i not in w.acked_at]
                raise AssertionError(
                    f"{w.name}: writes {unacked} never acknowledged after the resume "
                    f"(closes: {w.closes}; {w.failure or ''})"
                )

            await asyncio.gather(*(settle(w) for w in paused))
            print("after the resume, the paused instance's clients:", [w.closes for w in paused])
            await until(
                lambda: all(acks_after([w], resumed_at) >= 3 for w in others),
                15,
                "the other instances' clients acknowledged after the resume",
            )
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        assert not [w.failure for w in others if w.failure], [w.failure for w in others]
        await until(lambda: all(w.all_acked() for w in writers), 15, "every write acknowledged")
        versions = await _check_stored(cluster, ann, token, writers, list(range(INSTANCES)))
        assert versions[-1] > head_at_resume
        # Fencing: after the new owner's first version, none by the old one.
        handover = runs(await version_writers(cluster, ann))
        assert [k for k, _ in handover] == [owner, new_owner], handover
        assert sum(n for _, n in handover) == versions[-1]
        assert await wait_owner(cluster, ann, other_than=owner) == new_owner
        await _close(writers)


async def test_what_a_paused_owner_took_in_is_not_written_by_it_after_a_takeover(
    tmp_path: Path, database: str
) -> None:
    """The fence itself: nobody else writes while the owner is paused, so
    when it wakes the next version number is free and only the lease check
    in its commit keeps it from writing what its clients sent meanwhile
    (the previous test's other writers take those numbers first)."""
    await record_version_writers(database)
    async with running_cluster(tmp_path, database, INSTANCES) as cluster:
        token, ann = await cluster.user_and_annotation()
        writers = await _writers(cluster, ann, token)
        owner = await wait_owner(cluster, ann)
        assert owner == 0, "the first instance to open it owns it"
        paused = [w for w in writers if w.instance == owner]
        for w in writers:  # the mirrors' clients too: their instances watch the annotation
            for _ in range(2):
                await w.write(timeout=15)
        head_at_pause = (await stored_versions(cluster.database_url, ann))[-1]
        cluster.pause(owner)
        during = [i for w in paused for i in (w.put(), w.put(), w.put())]
        assert during
        new_owner = await wait_owner(cluster, ann, timeout=TAKEOVER_SECONDS + 10, other_than=owner)
        assert (await stored_versions(cluster.database_url, ann))[-1] == head_at_pause
        cluster.resume(owner)

        async def settle(w: Writer) -> None:
            for _ in range(5):  # bounded: a few reconnections
                if w.closed() and not await w.reconnect():
                    break
                pending = [i for i in range(w.written) if i not in w.acked_at]
                try:
                    if await w.wait_acked(pending, 20):
                        return
                except TimeoutError:
                    break
            raise AssertionError(f"{w.name}: not all acknowledged: {w.state()}")

        await asyncio.gather(*(settle(w) for w in paused))
        versions = await _check_stored(cluster, ann, token, writers, list(range(INSTANCES)))
        handover = runs(await version_writers(cluster, ann))
        assert handover == [(owner, head_at_pause), (new_owner, versions[-1] - head_at_pause)], (
            f"versions by instance, in order: {handover} (the old owner is {owner})"
        )
        await _close(writers)
