"""What every benchmark shares: a real server process, machine facts, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from collab.auth import new_token
from tests.processes import NO_LIMITS

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "tests" / "js"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def pct(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(values: Sequence[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"n={len(ms)} p50={pct(ms, 50):.2f} ms p90={pct(ms, 90):.2f} ms "
        f"p99={pct(ms, 99):.2f} ms max={max(ms) if ms else float('nan'):.2f} ms "
        f"mean={statistics.fmean(ms) if ms else float('nan'):.2f} ms"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    ws: str
    token: str
    proc: subprocess.Popen[bytes]
    data_dir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float:
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    async def annotation(self, name: str = "bench") -> int:
        async with httpx.AsyncClient(
            base_url=self.url, headers={"authorization": f"Bearer {self.token}"}
        ) as http:
            r = await http.post("/api/annotations", json={"name": name})
            r.raise_for_status()
            return int(r.json()["id"])

    def sync_url(self, annotation: int, doc: str = "skeleton", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"token": self.token, **params}.items())
        return f"{self.ws}/sync/{annotation}/{doc}?{query}"


@contextlib.asynccontextmanager
async def collab_server(
    env_extra: dict[str, str] | None = None,
    data_dir: Path | None = None,
    *,
    limits: bool = False,
) -> AsyncIterator[Server]:
    """``collab serve`` in a subprocess with its embedded PostgreSQL.

    Benchmarks drive thousands of sockets and messages with one token from one
    address; they measure the server's own speed, so the rate limits are off
    unless a benchmark asks for them (the reconnect storm runs with them on)."""
    own = data_dir is None
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="collab-bench-"))
    token = new_token()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_")}
    env.update(COLLAB_DATA_DIR=str(data_dir), COLLAB_ADMIN_TOKEN=token, COLLAB_LOG_LEVEL="WARNING")
    if not limits:
        env.update(NO_LIMITS)
    env.update(env_extra or {})
    log = (data_dir / "server.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "collab.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError((data_dir / "server.log").read_text())
                try:
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("server did not start")
                await asyncio.sleep(0.2)
        yield Server(url, f"ws://127.0.0.1:{port}", token, proc, data_dir)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if own:
            shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def node_reference_server() -> AsyncIterator[str]:
    """``@y/websocket-server`` 0.1.1 (stores nothing); yields its ws:// base URL."""
    if not (JS / "node_modules" / "@y" / "websocket-server").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=JS, check=True
        )
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}
    server_js = JS / "node_modules" / "@y" / "websocket-server" / "src" / "server.js"
    proc = subprocess.Popen(
        ["node", str(server_js)],
        env=env,
        cwd=JS,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            await asyncio.sleep(0.1)
        yield f"ws://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
