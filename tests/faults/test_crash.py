"""Crash and fault safety against real processes (a ``collab serve`` with its
embedded PostgreSQL in a data dir of the test's own):

- SIGKILL of the server while 20 clients write with ``?acks=1``; again with
  PostgreSQL SIGKILLed at the same moment (the restart copes with the stale
  postmaster): every acknowledged version is there after the restart, and
  every client converges once it reconnects with what it kept.
- ``pg_ctl restart -m immediate`` behind the server's back under load: the
  server recovers by itself and acknowledges writers again; nothing
  acknowledged is lost.

Each writer owns a room, so its k-th write is version k there and an
acknowledgement of N proves that exactly its first N writes are durable.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from collab.auth import new_token
from tests.conftest import free_port
from tests.processes import ServerProcess
from tests.yclient import YClient, put_node

WRITERS = 20


async def _start(server: ServerProcess) -> ServerProcess:
    return await asyncio.to_thread(server.start)


async def _setup(server: ServerProcess) -> tuple[str, list[int]]:
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers(), timeout=30) as http:
        r = await http.post("/api/users", json={"name": "writer"})
        token = r.json()["token"]
        anns = []
        for i in range(WRITERS):
            r = await http.post(
                "/api/annotations",
                json={"name": f"room {i}"},
                headers={"authorization": f"Bearer {token}"},
            )
            anns.append(int(r.json()["id"]))
    return token, anns


class Writer:
    """Writes node after node into its own room, each once the previous is saved."""

    def __init__(self, server: ServerProcess, token: str, ann: int) -> None:
        self.url = f"{server.ws_url}/sync/{ann}/skeleton?token={token}&acks=1"
        self.ann = ann
        self.client = YClient(self.url)
        self.written = 0
        self.acked = 0

    async def run(self, stop: asyncio.Event) -> None:
        c = self.client
        await c.connect()
        while not stop.is_set() and c.closed is None:
            put_node(c, f"n{self.written}", {"treeId": "t", "position": [self.written, 0, 0]})
            self.written += 1
            try:
                await c.wait(lambda: c.saved >= self.written or c.closed is not None, timeout=30)
            except TimeoutError:
                return
            self.acked = max(self.acked, c.saved)


async def _write_until(writers: list[Writer], total_acks: int) -> asyncio.Event:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in writers]
    for _ in range(6000):  # bounded: ~60 s of 10 ms checks
        if sum(w.acked for w in writers) >= total_acks:
            break
        await asyncio.sleep(0.01)
    assert sum(w.acked for w in writers) >= total_acks, "writers made no progress"
    _crash_targets.append((stop, tasks))
    return stop


_crash_targets: list[tuple[asyncio.Event, list[asyncio.Task[None]]]] = []


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0])


async def _check_after_restart(server: ServerProcess, token: str, writers: list[Writer]) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for w in writers:
            fresh = await YClient(f"{server.ws_url}/sync/{w.ann}/skeleton?token={token}").connect()
            stored = set(fresh.map("nodes").keys())
            acked = {f"n{k}" for k in range(w.acked)}
            assert acked <= stored, f"room {w.ann}: acknowledged {sorted(acked - stored)} lost"
            await fresh.close()
            r = await http.get(
                f"/api/annotations/{w.ann}/versions",
                params={"limit": 1000},
                headers={"authorization": f"Bearer {token}"},
            )
            versions = sorted(v["version"] for v in r.json()["versions"])
            assert versions == list(range(1, len(versions) + 1)), (
                "versions numbered twice or skipped"
            )
            assert len(versions) >= w.acked
    # Every writer reconnects with what it kept and converges with the server.
    for w in writers:
        again = await YClient(w.url, w.client.doc).connect()
        await again.wait(lambda again=again, w=w: again.saved >= w.written)
        fresh = await YClient(f"{server.ws_url}/sync/{w.ann}/skeleton?token={token}").connect()
        assert set(fresh.map("nodes").keys()) == {f"n{k}" for k in range(w.written)}
        await again.close()
        await fresh.close()


@pytest.mark.parametrize("also_postgres", [False, True], ids=["server", "server+postgres"])
async def test_sigkill_loses_nothing_acknowledged(tmp_path: Path, also_postgres: bool) -> None:
    server = ServerProcess(tmp_path / "data", free_port(), new_token())
    await _start(server)
    try:
        token, anns = await _setup(server)
        writers = [Writer(server, token, ann) for ann in anns]
        stop = await _write_until(writers, total_acks=300)
        pg = _postmaster_pid(server.data_dir)
        server.kill()
        if also_postgres:
            os.kill(pg, signal.SIGKILL)
        stop.set()
        for w in writers:
            await w.client.wait_closed()
        await asyncio.gather(*_crash_targets.pop()[1])
        await _start(server)  # same data dir: the stale postmaster is handled
        await _check_after_restart(server, token, writers)
        for w in writers:
            await w.client.close()
    finally:
        await asyncio.to_thread(server.stop)


async def test_postgres_restarted_behind_the_servers_back(tmp_path: Path) -> None:
    from pgserver._commands import POSTGRES_BIN_PATH  # type: ignore[import-untyped]

    server = ServerProcess(tmp_path / "data", free_port(), new_token())
    await _start(server)
    try:
        token, anns = await _setup(server)
        writers = [Writer(server, token, ann) for ann in anns[:10]]
        stop = await _write_until(writers, total_acks=100)
        pgdata = server.data_dir / "postgres"
        owner = pgdata.stat().st_uid
        before = {w.ann: w.acked for w in writers}
        done = await asyncio.to_thread(
            subprocess.run,
            [
                str(POSTGRES_BIN_PATH / "pg_ctl"),
                "-D",
                str(pgdata),
                "-m",
                "immediate",
                "-w",
                "restart",
            ],
            user=owner if os.geteuid() == 0 else None,
            # Not pipes: the new postmaster would hold them open (and us waiting).
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        assert done.returncode == 0
        # Writers go on (or reconnect) and are acknowledged again by themselves.
        for _ in range(3000):  # bounded: ~30 s
            if all(w.acked >= before[w.ann] + 5 or w.client.closed for w in writers):
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*_crash_targets.pop()[1])
        progressed = [w for w in writers if w.acked >= before[w.ann] + 5]
        assert progressed, "no writer was acknowledged after the restart"
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await http.get("/healthz")).status_code == 200
        await _check_after_restart(server, token, writers)
        for w in writers:
            await w.client.close()
    finally:
        await asyncio.to_thread(server.stop)
