"""The real command line: ``collab serve`` with the embedded PostgreSQL, a
restart on the same data dir, and ``collab demo``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from collab.auth import new_token
from tests.conftest import free_port
from tests.volume.helpers import BrickClient
from tests.yclient import YClient, put_node


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "collab.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _wait_healthy(
    url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(log.read_text())


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    # uvicorn re-raises SIGTERM once its graceful shutdown is done.
    assert proc.wait(30) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in log.read_text()


def _postgres_running(data_dir: Path) -> bool:
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if p.info["name"] == "postgres" and str(data_dir) in cmd:
            return True
    return False


def _env(data_dir: Path, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_")}
    env.update(COLLAB_ADMIN_TOKEN=token, COLLAB_DATA_DIR=str(data_dir))
    return env


async def test_restart_keeps_every_saved_version(tmp_path: Path) -> None:
    data_dir = (tmp_path / "data").resolve()
    token = new_token()
    port = free_port()
    url, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    env = _env(data_dir, token)
    proc = _start(["serve", "--port", str(port)], env, log)
    try:
        await _wait_healthy(url, proc, log)
        async with httpx.AsyncClient(
            base_url=url, headers={"authorization": f"Bearer {token}"}
        ) as http:
            ann = (await http.post("/api/annotations", json={"name": "persist"})).json()["id"]
        client = await YClient(f"{ws}/sync/{ann}/skeleton?token={token}&acks=1").connect()
        for i in range(30):
            put_node(client, str(i), {"treeId": "t", "position": [i, i, i]})
            await asyncio.sleep(0)
        await client.wait(lambda: client.saved == 30)
        expected = client.map("nodes").to_py()
        await client.close()
    finally:
        _stop(proc, log)
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    assert not _postgres_running(data_dir), "embedded PostgreSQL left running"

    proc = _start(["serve", "--port", str(port)], env, log)
    try:
        await _wait_healthy(url, proc, log)
        async with httpx.AsyncClient(
            base_url=url, headers={"authorization": f"Bearer {token}"}
        ) as http:
            versions = (
                await http.get(f"/api/annotations/{ann}/versions", params={"limit": 100})
            ).json()
        assert [v["version"] for v in versions["versions"]] == list(range(30, 0, -1))
        client = await YClient(f"{ws}/sync/{ann}/skeleton?token={token}").connect()
        assert client.map("nodes").to_py() == expected
        await client.close()
    finally:
        _stop(proc, log)
    assert not _postgres_running(data_dir)


@pytest.mark.timeout(300)
async def test_demo_creates_the_dataset_and_a_ready_annotation(tmp_path: Path) -> None:
    data_dir = (tmp_path / "data").resolve()
    port = free_port()
    log = tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_")}
    env["COLLAB_DATA_DIR"] = str(data_dir)
    proc = _start(["demo", "--port", str(port)], env, log)
    try:
        # The first start generates the 512³ dataset (issue: under a minute on 2 cores).
        await _wait_healthy(f"http://127.0.0.1:{port}", proc, log, timeout=200)
        text = log.read_text()
        assert "admin token (shown once)" in text
        token = text.split("demo token:")[1].split()[0]
        sync = text.split("sync (Yjs):")[1].split()[0]
        client = await YClient(sync).connect()
        # The demo annotation holds a small traced neurite (the first view shows it).
        assert len(client.map("nodes")) == 32 and len(client.map("branchpoints")) == 1
        put_node(client, "1", {"treeId": "t", "position": [1, 2, 3]})
        # One URL opens it in a browser, signed in as the demo user.
        page = text.split("open in a browser:")[1].split()[0]
        assert f"token={token}" in page and "/annotations/" in page
        async with httpx.AsyncClient() as http:
            r = await http.get(page)
            assert r.status_code == 200 and "text/html" in r.headers["content-type"], r.text
        async with httpx.AsyncClient(headers={"authorization": f"Bearer {token}"}) as http:
            r = await http.get(f"http://127.0.0.1:{port}/api/annotations")
            assert r.json()["annotations"][0]["name"] == "demo annotation"
            assert r.json()["annotations"][0]["dataset"] == "demo"
            meta = (await http.get(f"http://127.0.0.1:{port}/api/datasets/demo")).json()
            sizes = {layer["name"]: layer["boundingBox"]["size"] for layer in meta["layers"]}
            assert sizes == {"color": [512, 512, 512], "segmentation": [512, 512, 512]}
            # The demo project's tasks sit at synapses of the demo dataset.
            taken = await http.post(f"http://127.0.0.1:{port}/api/tasks/next")
            assert taken.status_code == 200, taken.text
            synapses = (
                await http.get(f"http://127.0.0.1:{port}/api/datasets/demo/synapses")
            ).json()
            assert len(synapses["synapses"]) >= 20
            assert "tasks:" in text
        bricks = text.split("bricks (binary):")[1].split()[0]
        data = await BrickClient.connect(bricks)
        records = await data.fetch(1, (1, 1, 1), [(8, 8, 8), (15, 15, 15), (16, 0, 0)])
        assert [r.status for r in sorted(records, key=lambda r: r.brick)] == [0, 0, 1]
        await data.close()
        await client.close()
    finally:
        _stop(proc, log)
    assert not _postgres_running(data_dir)
    # A second start reuses the dataset and annotation; no token is kept in
    # clear text, so the old demo token is revoked and a new one printed.
    log2 = tmp_path / "demo2.log"
    proc = _start(["demo", "--port", str(port)], env, log2)
    try:
        await _wait_healthy(f"http://127.0.0.1:{port}", proc, log2, timeout=60)
        text2 = log2.read_text()
        assert "creating the demo dataset" not in text2
        token2 = text2.split("demo token:")[1].split()[0]
        assert token2 != token
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            old = await http.get("/api/annotations", headers={"authorization": f"Bearer {token}"})
            assert old.status_code == 401
            r = await http.get("/api/annotations", headers={"authorization": f"Bearer {token2}"})
            names = [a["name"] for a in r.json()["annotations"]]
            assert "demo annotation" in names and len(names) == 2  # plus the task's
    finally:
        _stop(proc, log2)
