"""Isolation: what one client sends never stops the saving of anyone's work.

A stock Yjs client writes a NUL character (which PostgreSQL's jsonb refuses)
in a key; everyone's work, in that room and in others, keeps being
acknowledged, and the history answers. When the database refuses every
write, the server says so (/healthz 503 naming persistence, writers closed
with 1013, flush raises) and recovers by itself once it can write again.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg

from tests.conftest import LiveServer
from tests.yclient import YClient, put_node

JS = Path(__file__).parents[1] / "js"


async def _hostile(live: LiveServer, ann: int, token: str, case: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(JS / "hostile_client.mjs"),
        live.ws_url,
        str(ann),
        token,
        case,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert json.loads(line) == {"written": True}, line
    return proc


async def _finish(proc: asyncio.subprocess.Process) -> dict[str, object]:
    assert proc.stdin is not None
    proc.stdin.close()
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, (out, err)
    result: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_nul_key_from_stock_client_stops_nobody(live: LiveServer, node_modules: Path) -> None:
    _, token = await live.user()
    ann = await live.annotation(token, "hostile room")
    other = await live.annotation(token, "another room")
    here = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    there = await YClient(live.sync_url(other, token=token, acks="1")).connect()
    for case, key in (("nul-comment", "\x00"), ("nul-value", "n1")):
        proc = await _hostile(live, ann, token, case)
        # Relayed, hence stored: the bystander gets it, and then acks go on.
        await here.wait(lambda key=key: key in here.map("comments"))
        result = await _finish(proc)
        assert result["closed"] is None, result
    put_node(here, "after", {"treeId": "t", "position": [1, 2, 3]})
    put_node(there, "elsewhere", {"treeId": "t", "position": [3, 2, 1]})
    await here.wait(lambda: here.saved >= 3)
    await there.wait(lambda: there.saved >= 1)
    async with live.client(token) as http:
        r = await http.get(f"/api/annotations/{ann}/versions")
        assert r.status_code == 200, r.text
        assert r.json()["versions"][0]["version"] == here.saved
        health = await http.get("/healthz")
        assert health.status_code == 200, health.text
        v = await http.get(f"/api/annotations/{ann}/versions/{here.saved}")
        assert v.json()["content"]["comments"] == {"\x00": "x", "n1": "a\x00b"}, v.text
    # Stored: a fresh client after a reload of the room has them.
    fresh = await YClient(live.sync_url(ann, token=token)).connect()
    assert fresh.map("comments")["\x00"] == "x"
    assert "after" in fresh.map("nodes")
    for c in (here, there, fresh):
        await c.close()


async def test_writes_refused_until_the_database_takes_them_again(live: LiveServer) -> None:
    _, token = await live.user()
    ann = await live.annotation(token)
    writer = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    put_node(writer, "first", {"treeId": "t", "position": [1, 1, 1]})
    await writer.wait(lambda: writer.saved == 1)
    db = await asyncpg.connect(live.settings.database_url)
    try:
        # Behind the server's back: every write now fails (not a passing outage).
        await db.execute("ALTER TABLE doc_updates RENAME TO doc_updates_away")
        put_node(writer, "second", {"treeId": "t", "position": [2, 2, 2]})
        code, reason = await writer.wait_closed()
        assert code == 1013 and "not saving" in reason, (code, reason)
        assert writer.saved == 1
        async with live.client(token) as http:
            health = await http.get("/healthz")
            assert health.status_code == 503, health.text
            assert "persistence" in health.json()["error"]["failing"], health.text
            # History needs what is pending: it answers 503 instead of hanging.
            r = await http.get(f"/api/annotations/{ann}/versions")
            assert r.status_code == 503, r.text
        # A writer that comes back with something new is refused while
        # nothing can be saved ("second" is kept in the queue meanwhile).
        retry = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
        put_node(retry, "third", {"treeId": "t", "position": [3, 3, 3]})
        code, _ = await retry.wait_closed()
        assert code == 1013
        await db.execute("ALTER TABLE doc_updates_away RENAME TO doc_updates")
        async with live.client(token) as http:
            for _ in range(200):  # bounded: the committer retries every <= 2 s
                health = await http.get("/healthz")
                if health.status_code == 200:
                    break
                await asyncio.sleep(0.05)
            assert health.status_code == 200, health.text
        # The refused writer reconnects with what it kept: all is saved.
        again = await YClient(live.sync_url(ann, token=token, acks="1"), retry.doc).connect()
        await again.wait(lambda: again.saved >= 3)
        fresh = await YClient(live.sync_url(ann, token=token)).connect()
        assert {"first", "second", "third"} <= set(fresh.map("nodes").keys())
        await again.close()
        await fresh.close()
    finally:
        await db.close()
