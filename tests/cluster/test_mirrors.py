"""Two instances in one test process over one PostgreSQL (each a live
uvicorn with its own app: its own leases, committer and listener): the
owner/mirror paths, quick to run. tests/instances/ runs real processes and
kills them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from collab.config import Settings
from collab.store import leases
from tests.conftest import LiveServer, free_port, live_with, with_settings
from tests.yclient import YClient, put_node


@pytest.fixture
async def pair(settings: Settings) -> AsyncIterator[tuple[LiveServer, LiveServer]]:
    other = with_settings(settings, port=free_port(), lease_seconds=0.6)
    async with live_with(with_settings(settings, lease_seconds=0.6)) as a, live_with(other) as b:
        yield a, b


def _nodes(client: YClient) -> set[str]:
    return set(client.map("nodes").keys())


async def test_clients_on_two_instances_converge_and_are_acknowledged(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    a, b = pair
    _, token = await a.user("Mia")
    ann = await a.annotation(token, "two instances")
    first = await YClient(a.sync_url(ann, token=token, acks="1")).connect()  # a owns it
    second = await YClient(b.sync_url(ann, token=token, acks="1")).connect()  # b mirrors
    async with a.services.pool.acquire() as conn:
        owner = await leases.owner_of(conn, ann)
    assert owner is not None and owner.url == a.url
    for i in range(20):
        put_node(first, f"a{i}", {"treeId": "t", "position": [i, 0, 0]})
        put_node(second, f"b{i}", {"treeId": "t", "position": [i, 1, 0]})
    want = {f"a{i}" for i in range(20)} | {f"b{i}" for i in range(20)}
    await first.wait(lambda: _nodes(first) == want)
    await second.wait(lambda: _nodes(second) == want)
    async with a.services.pool.acquire() as conn:
        versions = await conn.fetch(
            "SELECT version FROM doc_updates WHERE annotation_id = $1 AND doc = 'skeleton' "
            "ORDER BY version",
            ann,
        )
    numbers = [r[0] for r in versions]
    assert numbers == list(range(1, len(numbers) + 1))
    # Both clients hear that everything is saved, the mirror's through the owner.
    await second.wait(lambda: second.saved >= numbers[-1])
    await first.wait(lambda: first.saved >= numbers[-1])
    fresh = await YClient(b.sync_url(ann, token=token)).connect()
    await fresh.wait(lambda: _nodes(fresh) == want)
    for c in (first, second, fresh):
        await c.close()


async def test_a_mirror_takes_over_when_the_owner_leaves(settings: Settings) -> None:
    one = with_settings(settings, lease_seconds=0.6)
    async with live_with(with_settings(one, port=free_port())) as b:
        _, token = await b.user("Ola")
        ann = await b.annotation(token, "takeover")
        async with live_with(one) as a:
            owner_client = await YClient(a.sync_url(ann, token=token, acks="1")).connect()
            mirror_client = await YClient(b.sync_url(ann, token=token, acks="1")).connect()
            put_node(mirror_client, "before", {"treeId": "t", "position": [1, 2, 3]})
            await owner_client.wait(lambda: "before" in _nodes(owner_client))
            await owner_client.close()
        # a is gone (its lease released): b owns the annotation and acknowledges.
        put_node(mirror_client, "after", {"treeId": "t", "position": [4, 5, 6]})
        await mirror_client.wait(lambda: mirror_client.saved >= 2, timeout=10)
        async with b.services.pool.acquire() as conn:
            owner = await leases.owner_of(conn, ann)
            count = await conn.fetchval(
                "SELECT count(*) FROM doc_updates WHERE annotation_id = $1", ann
            )
        assert owner is not None and owner.url == b.url
        assert count == mirror_client.saved
        await mirror_client.close()


async def test_a_rest_write_at_another_instance_is_made_by_the_owner(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    a, b = pair
    _, token = await a.user("Rue")
    ann = await a.annotation(token, "rest")
    owner_client = await YClient(a.sync_url(ann, token=token, acks="1")).connect()
    mirror_client = await YClient(b.sync_url(ann, token=token, acks="1")).connect()
    put_node(owner_client, "kept", {"treeId": "t", "position": [1, 1, 1]})
    await owner_client.wait(lambda: owner_client.saved >= 1)
    put_node(owner_client, "dropped", {"treeId": "t", "position": [2, 2, 2]})
    await owner_client.wait(lambda: owner_client.saved >= 2)
    # Restore version 1 through the instance that does not own the annotation.
    async with b.client(token) as http:
        r = await http.post(
            f"/api/annotations/{ann}/restore", json={"doc": "skeleton", "version": 1}
        )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 3
    await mirror_client.wait(lambda: _nodes(mirror_client) == {"kept"})
    await owner_client.wait(lambda: _nodes(owner_client) == {"kept"})
    await mirror_client.wait(lambda: mirror_client.saved >= 3)
    # Refusals come back as the owner made them.
    async with b.client(token) as http:
        r = await http.post(
            f"/api/annotations/{ann}/restore", json={"doc": "skeleton", "version": "x"}
        )
    assert r.status_code == 400 and "error" in r.json()
    for c in (owner_client, mirror_client):
        await c.close()


async def test_an_owner_that_lost_its_lease_writes_nothing_and_closes_its_clients(
    settings: Settings,
) -> None:
    """The lease taken behind the owner's back (as by an instance that took
    over while this one was paused): its next commit is refused by the
    fence, its clients are closed with 1012, and what they reconnect with
    is stored once the annotation is owned again."""
    async with live_with(with_settings(settings, lease_seconds=3.0)) as a:
        _, token = await a.user("Pia")
        ann = await a.annotation(token, "fenced")
        client = await YClient(a.sync_url(ann, token=token, acks="1")).connect()
        put_node(client, "first", {"treeId": "t", "position": [1, 1, 1]})
        await client.wait(lambda: client.saved >= 1)
        async with a.services.pool.acquire() as conn:
            await conn.execute(
                "UPDATE annotation_leases SET owner = 'http://elsewhere:1#z', "
                "url = 'http://elsewhere:1', epoch = epoch + 1, "
                "expires_at = now() + interval '1 second' WHERE annotation_id = $1",
                ann,
            )
        put_node(client, "second", {"treeId": "t", "position": [2, 2, 2]})
        code, reason = await client.wait_closed()
        assert code == 1012 and "another instance" in reason, (code, reason)
        async with a.services.pool.acquire() as conn:
            stored = await conn.fetchval(
                "SELECT count(*) FROM doc_updates WHERE annotation_id = $1", ann
            )
        assert stored == 1  # the fenced commit wrote nothing
        # Reconnecting with what it kept: stored once the lease is free again.
        again = await YClient(a.sync_url(ann, token=token, acks="1"), doc=client.doc).connect()
        await again.wait(lambda: again.saved >= 2, timeout=15)
        fresh = await YClient(a.sync_url(ann, token=token)).connect()
        await fresh.wait(lambda: _nodes(fresh) == {"first", "second"})
        for c in (again, fresh):
            await c.close()
