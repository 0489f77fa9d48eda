"""Brick delivery on the demo dataset: the WebSocket path against zarr-python
in-process and nginx serving the same chunks as static files, in one run.

    python tests/benchmarks/bricks.py [--seconds 6] [--keep DIR]
    python tests/benchmarks/bricks.py --http [--rounds 3] [--seconds 6] [--keep DIR]

Measures (docs/performance.md, issue "Volume data"):
* demo dataset creation time (512³, once);
* bricks/s and MB/s to 1 and 8 WebSocket clients, raw and zstd, cold and
  warm brick cache (cold: a fresh server; the OS page cache stays warm, as it
  does for nginx);
* zarr-python reading the same bricks in-process (one getitem per brick,
  8 in flight);
* nginx (Debian package) serving the same bricks as one file each (raw and
  zstd, the stored bytes) over keep-alive to `wrk` with 1 and 8 connections;
* time to first brick of a 100-brick request, warm, p50/p99;
* server RSS while 8 clients stream the whole dataset (both layers, all mags).

With ``--http``, only this: the HTTP brick endpoint (warm brick cache, an
admin's and an annotator's token) against nginx serving the same raw bricks
as files, each GET on one keep-alive connection from `wrk -t1 -c1`,
alternating for ``--rounds`` rounds (docs/performance.md, "HTTP bricks").

Client processes are separate from the server; everything is on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from collab.config import Settings
from collab.demo import ensure_dataset
from collab.volume import wire
from tests.benchmarks.harness import collab_server, free_port, machine, pct

BATCH = 256
IN_FLIGHT = 4


def all_bricks(n: int) -> list[tuple[int, int, int]]:
    return [(x, y, z) for z in range(n) for y in range(n) for x in range(n)]


async def _stream(
    url: str, mag: tuple[int, int, int], bricks: list, encoding: int, deadline: float
) -> tuple[int, int]:
    """Fetch ``bricks`` (repeatedly until ``deadline`` if it is set); returns (bricks, bytes)."""
    import websockets

    got = 0
    nbytes = 0
    async with websockets.connect(url, max_size=2**26, compression=None) as ws:
        next_rid = 1
        pending: set[int] = set()
        position = 0
        passes = 0
        while True:
            while len(pending) < IN_FLIGHT and (deadline or passes == 0):
                if position >= len(bricks):
                    if not deadline:
                        break
                    position = 0
                    passes += 1
                chunk = bricks[position : position + BATCH]
                position += BATCH
                if position >= len(bricks) and not deadline:
                    passes = 1
                await ws.send(wire.pack_request(next_rid, mag, chunk, encoding))
                pending.add(next_rid)
                next_rid += 1
            if not pending:
                break
            frame = await ws.recv()
            nbytes += len(frame)
            kind = frame[0]
            if kind == wire.BRICKS:
                got += struct.unpack_from("<H", frame, 2)[0]
            elif kind == wire.DONE:
                pending.discard(struct.unpack_from("<I", frame, 4)[0])
                if deadline and time.monotonic() > deadline:
                    deadline = 0.0
                    passes = 1
            elif kind == wire.ERROR:
                raise RuntimeError(wire.unpack_error(frame))
    return got, nbytes


def _client_process(args: tuple) -> tuple[int, int, float]:
    urls, mag, bricks, encoding, seconds, start_at = args
    while time.time() < start_at:
        time.sleep(0.001)

    async def run() -> list[tuple[int, int]]:
        deadline = time.monotonic() + seconds if seconds else 0.0
        return await asyncio.gather(*(_stream(u, mag, bricks, encoding, deadline) for u in urls))

    t0 = time.perf_counter()
    results = asyncio.run(run())
    return sum(r[0] for r in results), sum(r[1] for r in results), time.perf_counter() - t0


def ws_load(
    url: str, clients: int, mag: tuple, bricks: list, encoding: int, seconds: float
) -> dict:
    procs = min(clients, 2)
    groups = [[url] * (clients // procs + (1 if i < clients % procs else 0)) for i in range(procs)]
    start_at = time.time() + 1.0
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(procs) as pool:
        out = pool.map(
            _client_process, [(g, mag, bricks, encoding, seconds, start_at) for g in groups]
        )
    n = sum(o[0] for o in out)
    nbytes = sum(o[1] for o in out)
    elapsed = max(o[2] for o in out)
    return {
        "bricks": n,
        "seconds": elapsed,
        "bricks_s": n / elapsed,
        "mb_s": nbytes / elapsed / 1e6,
    }


def node_load(url: str, clients: int, mag: tuple, n: int, encoding: int, seconds: float) -> dict:
    """The same load from Node's `ws` (what a browser client is closer to):
    clients split over two Node processes."""
    from tests.benchmarks.harness import JS

    procs = min(clients, 2)
    mag_text = "-".join(str(m) for m in mag)
    runs = [
        subprocess.Popen(
            [
                "node",
                str(JS / "brick_load.mjs"),
                url,
                str(clients // procs + (1 if i < clients % procs else 0)),
                mag_text,
                str(n),
                str(encoding),
                str(seconds),
            ],
            stdout=subprocess.PIPE,
            cwd=JS,
        )
        for i in range(procs)
    ]
    outs = [json.loads(p.communicate(timeout=seconds + 120)[0]) for p in runs]
    total = sum(o["bricks"] for o in outs)
    nbytes = sum(o["bytes"] for o in outs)
    elapsed = max(o["seconds"] for o in outs)
    return {
        "bricks": total,
        "seconds": elapsed,
        "bricks_s": total / elapsed,
        "mb_s": nbytes / elapsed / 1e6,
    }


def server_cpu(server) -> float:
    times = psutil.Process(server.pid).cpu_times()
    return times.user + times.system


async def time_to_first(url: str, bricks: list, rounds: int) -> list[float]:
    import websockets

    out = []
    async with websockets.connect(url, max_size=2**26, compression=None) as ws:
        for i in range(rounds):
            chunk = [bricks[(i * 100 + k) % len(bricks)] for k in range(100)]
            t0 = time.perf_counter()
            await ws.send(wire.pack_request(i + 1, (1, 1, 1), chunk, 0))
            first = None
            while True:
                frame = await ws.recv()
                if first is None and frame[0] == wire.BRICKS:
                    first = time.perf_counter() - t0
                if frame[0] == wire.DONE:
                    break
            out.append(first or 0.0)
    return out


async def zarr_in_process(dataset: Path, bricks: list, seconds: float) -> dict:
    import zarr.api.asynchronous as za

    array = await za.open_array(store=str(dataset / "color" / "1"))
    sem = asyncio.Semaphore(8)
    count = 0
    deadline = time.monotonic() + seconds

    async def one(b: tuple[int, int, int]) -> None:
        nonlocal count
        async with sem:
            data = await array.getitem(
                (
                    0,
                    slice(b[0] * 32, b[0] * 32 + 32),
                    slice(b[1] * 32, b[1] * 32 + 32),
                    slice(b[2] * 32, b[2] * 32 + 32),
                )
            )
            np.asarray(data).tobytes(order="F")
            count += 1

    t0 = time.perf_counter()
    i = 0
    while time.monotonic() < deadline:
        await asyncio.gather(*(one(bricks[(i + k) % len(bricks)]) for k in range(256)))
        i += 256
    elapsed = time.perf_counter() - t0
    return {"bricks_s": count / elapsed, "mb_s": count * 32768 / elapsed / 1e6}


def export_static(
    dataset: Path, out: Path, n: int, kinds: tuple[str, ...] = ("raw", "zstd")
) -> None:
    """One file per mag-1 color brick, raw and as stored (zstd)."""
    import zarr

    from collab.volume.encoding import compress

    array = zarr.open_array(str(dataset / "color" / "1"))
    data = np.asarray(array[0])
    for x in range(n):
        for y in range(n):
            for z in range(n):
                raw = data[
                    x * 32 : x * 32 + 32, y * 32 : y * 32 + 32, z * 32 : z * 32 + 32
                ].tobytes(order="F")
                for kind in kinds:
                    payload = raw if kind == "raw" else compress(raw)
                    d = out / kind / str(x) / str(y)
                    d.mkdir(parents=True, exist_ok=True)
                    (d / str(z)).write_bytes(payload)


class Unavailable(Exception):
    """nginx or wrk is missing or did not start; the message says which."""


@contextlib.contextmanager
def nginx_server(root: Path) -> Iterator[int]:
    """nginx (Debian package) serving ``root`` on a free port; yields the port."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or shutil.which("wrk") is None:
        raise Unavailable("nginx or wrk missing (apt-get install nginx-light wrk)")
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(
        textwrap.dedent(f"""
        worker_processes 2;
        error_log {root}/error.log;
        pid {root}/nginx.pid;
        events {{ worker_connections 1024; }}
        http {{
            access_log off;
            sendfile on;
            tcp_nopush on;
            keepalive_requests 1000000;
            server {{
                listen 127.0.0.1:{port};
                root {root};
                location / {{ default_type application/octet-stream; }}
            }}
        }}
    """)
    )
    proc = subprocess.Popen([nginx, "-c", str(conf), "-g", "daemon off;"], stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/raw/0/0/0", timeout=1).status_code
                if status != 200:
                    raise Unavailable(f"nginx answered {status} for a brick file")
                break
            except httpx.TransportError:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode()[-500:] if proc.stderr else ""
                    raise Unavailable(f"nginx exited: {err}") from None
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def wrk_run(
    url: str,
    path: str,
    n: int,
    conns: int,
    seconds: float,
    script_dir: Path,
    headers: dict[str, str] | None = None,
) -> dict:
    """`wrk` GETting ``path``/x/y/z over the n³ bricks in turn; bricks/s and MB/s.

    A run with any non-2xx answer reports 0 (and prints wrk's output)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise Unavailable("wrk missing (apt-get install wrk)")
    lua = script_dir / f"wrk-{abs(hash((path, tuple(sorted((headers or {}).items())))))}.lua"
    header_table = ", ".join(f'["{k}"] = "{v}"' for k, v in (headers or {}).items())
    lua.write_text(
        textwrap.dedent(f"""
        local n = {n}
        local i = 0
        local headers = {{ {header_table} }}
        request = function()
            i = i + 1
            local b = i % (n * n * n)
            local x = b % n
            local y = math.floor(b / n) % n
            local z = math.floor(b / (n * n))
            return wrk.format("GET", "{path}/" .. x .. "/" .. y .. "/" .. z, headers)
        end
    """)
    )
    done = subprocess.run(
        [
            wrk,
            "-t",
            str(min(conns, 2)),
            "-c",
            str(conns),
            "-d",
            f"{max(1, round(seconds))}s",
            "-s",
            str(lua),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    rps = mbs = 0.0
    for line in done.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        if line.startswith("Transfer/sec:"):
            value = line.split()[1]
            scale = {"KB": 1e-3, "MB": 1, "GB": 1e3}[value[-2:]]
            mbs = float(value[:-2]) * scale * 1.048576
    if "Non-2xx" in done.stdout:
        print("answered errors:", done.stdout[-300:])
        rps = mbs = 0.0
    if not rps:
        print("wrk:", done.stdout[-500:], done.stderr[-500:])
    return {"bricks_s": rps, "mb_s": mbs}


def nginx_load(root: Path, n: int, seconds: float) -> dict:
    results = {}
    try:
        with nginx_server(root) as port:
            for kind in ("raw", "zstd"):
                for conns in (1, 8):
                    results[f"{kind} {conns}"] = wrk_run(
                        f"http://127.0.0.1:{port}/", f"/{kind}", n, conns, seconds, root
                    )
    except Unavailable as exc:
        return {"error": str(exc)}
    return results


async def rss_while_streaming(server, seconds: float) -> tuple[float, float]:
    """8 clients stream both layers at all mags; returns (peak RSS MB, bricks/s)."""
    layers = {"color": 1, "segmentation": 4}
    jobs = []
    for layer in layers:
        for mag in (1, 2, 4, 8):
            jobs.append(
                (f"{server.ws}/data/demo/{layer}?token={server.token}", (mag, mag, mag), 16 // mag)
            )
    peak = server.rss_mb()
    loop = asyncio.get_running_loop()

    def run_all() -> int:
        total = 0
        for url, mag, n in jobs:
            total += node_load(url, 8, mag, n, 0, 0)["bricks"]
        return total

    t0 = time.perf_counter()
    future = loop.run_in_executor(None, run_all)
    while not future.done():
        peak = max(peak, server.rss_mb())
        await asyncio.sleep(0.05)
    total = await future
    return peak, total / (time.perf_counter() - t0)


BRICK_PATH = "/api/datasets/demo/layers/color/mags/1/bricks"


async def http_bricks(data_dir: Path, dataset: Path, n: int, seconds: float, rounds: int) -> None:
    """``--http``: GET one brick per request on one keep-alive connection
    (`wrk -t1 -c1`), the HTTP brick endpoint (warm brick cache) against nginx
    serving the same raw bricks as files, alternating, ``rounds`` times."""
    static = Path(tempfile.mkdtemp(prefix="collab-static-"))
    static.chmod(0o755)  # nginx's workers run as another user
    try:
        export_static(dataset, static, n, kinds=("raw",))
        with nginx_server(static) as nginx_port:
            async with collab_server(data_dir=data_dir) as server:
                admin = {"authorization": f"Bearer {server.token}"}
                async with httpx.AsyncClient(base_url=server.url, headers=admin) as http:
                    r = await http.post("/api/datasets", json={"name": "demo", "url": "demo"})
                    assert r.status_code in (201, 409), r.text
                    r = await http.post(
                        "/api/users", json={"name": "bench", "roles": ["annotator"]}
                    )
                    assert r.status_code == 201, r.text
                    user = {"authorization": f"Bearer {r.json()['token']}"}
                    # Same bytes as nginx's file, and the cache warmed with every brick.
                    for b in all_bricks(n):
                        got = await http.get(f"{BRICK_PATH}/{b[0]}/{b[1]}/{b[2]}")
                        assert got.status_code == 200, got.text
                        if b == (3, 2, 1):
                            assert got.content == (static / "raw/3/2/1").read_bytes()
                nginx_url = f"http://127.0.0.1:{nginx_port}/"
                runs: dict[str, list[float]] = {}
                for i in range(rounds):
                    for label, url, path, headers in (
                        ("nginx static file", nginx_url, "/raw", None),
                        ("collab HTTP, admin token", server.url + "/", BRICK_PATH, admin),
                        ("collab HTTP, annotator token", server.url + "/", BRICK_PATH, user),
                    ):
                        cpu0 = server_cpu(server)
                        r = wrk_run(url, path, n, 1, seconds, static, headers)
                        note = ""
                        if url != nginx_url:
                            used = server_cpu(server) - cpu0
                            note = (
                                f"  server CPU {used / (r['bricks_s'] * seconds) * 1e6:.0f} µs/brick"
                                if r["bricks_s"]
                                else ""
                            )
                        print(
                            f"round {i + 1}: {label:<30} {r['bricks_s']:>8,.0f} bricks/s{note}",
                            flush=True,
                        )
                        runs.setdefault(label, []).append(r["bricks_s"])
                print("one keep-alive connection, 32³ uint8 raw bricks (median, min-max):")
                for label, values in runs.items():
                    values.sort()
                    print(
                        f"  {label:<30} {values[len(values) // 2]:>8,.0f} bricks/s "
                        f"({values[0]:,.0f}-{values[-1]:,.0f})"
                    )
    finally:
        shutil.rmtree(static, ignore_errors=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument(
        "--keep", type=Path, default=None, help="data dir to keep the demo dataset in"
    )
    parser.add_argument(
        "--http",
        action="store_true",
        help="only the HTTP brick endpoint against nginx, one keep-alive connection",
    )
    parser.add_argument("--rounds", type=int, default=3, help="--http: alternating rounds")
    args = parser.parse_args()
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="collab-bricks-"))
    settings = Settings(data_dir=data_dir)
    fresh = not (data_dir / "datasets" / "demo" / "datasource-properties.json").exists()
    t0 = time.perf_counter()
    dataset = ensure_dataset(settings)
    created = time.perf_counter() - t0
    print(f"machine: {machine()}")
    if fresh:
        print(f"demo dataset created in {created:.1f} s")
    n = 16
    if args.http:
        await http_bricks(data_dir, dataset, n, args.seconds, args.rounds)
        if args.keep is None:
            shutil.rmtree(data_dir, ignore_errors=True)
        return
    bricks = all_bricks(n)
    lines: list[str] = []

    def report(label: str, r: dict) -> None:
        text = f"{label:<44} {r['bricks_s']:>9,.0f} bricks/s {r['mb_s']:>8,.0f} MB/s"
        print(text, flush=True)
        lines.append(text)

    report(
        "zarr-python in-process, 8 in flight", await zarr_in_process(dataset, bricks, args.seconds)
    )
    static = Path(tempfile.mkdtemp(prefix="collab-static-"))
    static.chmod(0o755)  # nginx's workers run as another user
    export_static(dataset, static, n)
    for key, r in nginx_load(static, n, args.seconds).items():
        if key == "error":
            print(r)
            continue
        kind, conns = key.split()
        report(f"nginx static files, {kind}, {conns} conn", r)
    shutil.rmtree(static, ignore_errors=True)

    for encoding, name in ((0, "raw"), (1, "zstd")):
        for clients in (1, 8):
            async with collab_server(data_dir=data_dir) as server:
                async with httpx.AsyncClient(
                    headers={"authorization": f"Bearer {server.token}"}
                ) as http:
                    r = await http.post(
                        f"{server.url}/api/datasets", json={"name": "demo", "url": "demo"}
                    )
                    assert r.status_code in (201, 409), r.text
                url = f"{server.ws}/data/demo/color?token={server.token}"
                cold = node_load(url, clients, (1, 1, 1), n, encoding, 0)
                report(f"WebSocket {name}, {clients} client(s), cold cache", cold)
                cpu0 = server_cpu(server)
                warm = node_load(url, clients, (1, 1, 1), n, encoding, args.seconds)
                report(f"WebSocket {name}, {clients} client(s), warm cache", warm)
                busy = (server_cpu(server) - cpu0) / warm["seconds"] * 100
                text = f"  (server process CPU while warm: {busy:.0f} % of one core)"
                print(text)
                lines.append(text)
                if clients == 8 and encoding == 0:
                    py = ws_load(url, clients, (1, 1, 1), bricks, encoding, args.seconds)
                    report(f"WebSocket {name}, 8 Python clients, warm cache", py)
                if encoding == 0 and clients == 1:
                    ttfb = await time_to_first(url, bricks, 300)
                    ms = [t * 1000 for t in ttfb]
                    text = f"time to first brick (100-brick request, warm): p50 {pct(ms, 50):.2f} ms p99 {pct(ms, 99):.2f} ms"
                    print(text)
                    lines.append(text)

    async with collab_server(data_dir=data_dir) as server:
        base = server.rss_mb()
        peak, rate = await rss_while_streaming(server, args.seconds)
        text = (
            f"server RSS streaming everything to 8 clients: start {base:.0f} MB, peak {peak:.0f} MB "
            f"(cache budget 512 MiB + 200 MB = {512 * 1.048576 + 200:.0f} MB), {rate:,.0f} bricks/s"
        )
        print(text)
        lines.append(text)
    if args.keep is None:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
