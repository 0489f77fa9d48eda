"""Bricks from a dataset on object storage against the same dataset local.

    python tests/benchmarks/s3_bricks.py [--size 256] [--rounds 3] [--keep DIR]

One dataset (tests/volume/helpers.py ``make_dataset``: uint8 color, random,
so its zstd chunks are as large as raw; ``--size``³ voxels, sharded 256³
with 32³ chunks) is written once, uploaded to moto's S3 server (its own
process, on a loopback port) and copied into a ``collab serve`` process's
dataset root; both are registered (``s3://bench-data/em/ds`` and ``ds``).
The server reads s3:// through its settings from the environment
(COLLAB_S3_ENDPOINT_URL, AWS_*), as in production.

Measured, alternating local and s3 for ``--rounds`` rounds (docs/performance.md,
"Several instances" → "Datasets on object storage"):

* HTTP, one keep-alive connection (Python ``http.client``, sequential GETs of
  every mag-1 color brick): **uncached** (a server with
  ``COLLAB_BRICK_CACHE_BYTES=0``: every brick is read from the store) and
  **warm** (a server with the default cache, after one pass);
* the brick socket, one client, every mag-1 color brick in requests of 256,
  4 in flight, raw and zstd: uncached and warm.

Shard indexes are kept per open dataset in both cases (one ranged read per
shard), so "uncached" is one ranged read per brick. moto is a Python (Flask)
server: its own speed bounds the s3 figures; a real S3 or MinIO answers
faster per request but over a longer round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from collab.volume import wire
from tests.benchmarks.harness import collab_server, free_port, machine
from tests.volume.helpers import make_dataset
from tests.volume.moto_s3 import ACCESS_KEY, REGION, SECRET_KEY

BUCKET = "bench-data"
BATCH = 256
IN_FLIGHT = 4


@contextlib.contextmanager
def moto_process() -> Iterator[str]:
    """moto's S3 server in its own process (it does not share our GIL)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto's server did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def upload(endpoint: str, folder: Path, prefix: str) -> int:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )
    s3.create_bucket(Bucket=BUCKET)
    n = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(folder).as_posix()}")
            n += 1
    return n


def http_pass(url: str, token: str, name: str, bricks: list[tuple[int, int, int]]) -> float:
    """Sequential GETs of ``bricks`` on one keep-alive connection; bricks/s."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port))
    headers = {"authorization": f"Bearer {token}"}
    t0 = time.perf_counter()
    for x, y, z in bricks:
        conn.request(
            "GET", f"/api/datasets/{name}/layers/color/mags/1/bricks/{x}/{y}/{z}", headers=headers
        )
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"{name} {x},{y},{z}: {r.status}")
    elapsed = time.perf_counter() - t0
    conn.close()
    return len(bricks) / elapsed


async def socket_pass(
    ws_url: str, token: str, name: str, bricks: list[tuple[int, int, int]], encoding: int
) -> float:
    """Every brick over one brick socket, ``IN_FLIGHT`` requests of ``BATCH``; bricks/s."""
    import websockets

    got = failed = 0
    async with websockets.connect(
        f"{ws_url}/data/{name}/color?token={token}", max_size=2**26, compression=None
    ) as ws:
        t0 = time.perf_counter()
        chunks = [bricks[i : i + BATCH] for i in range(0, len(bricks), BATCH)]
        pending: set[int] = set()
        rid = 0
        while chunks or pending:
            while chunks and len(pending) < IN_FLIGHT:
                rid += 1
                await ws.send(wire.pack_request(rid, (1, 1, 1), chunks.pop(0), encoding))
                pending.add(rid)
            frame = await ws.recv()
            assert isinstance(frame, bytes)
            if frame[0] == wire.BRICKS:
                got += struct.unpack_from("<H", frame, 2)[0]
            elif frame[0] == wire.DONE:
                done = wire.unpack_done(frame)
                failed += done[4]
                pending.discard(done[0])
            elif frame[0] == wire.ERROR:
                raise RuntimeError(wire.unpack_error(frame))
        elapsed = time.perf_counter() - t0
    if failed or got != len(bricks):
        raise RuntimeError(f"{name}: {got} bricks, {failed} failed")
    return got / elapsed


async def moto_alone(endpoint: str, requests: int = 300) -> float:
    """moto's own ceiling: sequential 32 KiB ranged GETs of one shard, from
    obstore in this process (no collab in between); requests/s."""
    import obstore

    from collab.volume.storage import s3_store
    from tests.volume.moto_s3 import MotoS3

    storage = MotoS3().storage(endpoint_url=endpoint)
    store = s3_store(f"s3://{BUCKET}/em/ds", storage)
    key = "color/1/c/0/0/0/0"
    t0 = time.perf_counter()
    for i in range(requests):
        await obstore.get_range_async(store, key, start=(i % 256) * 32768, length=32768)
    return requests / (time.perf_counter() - t0)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


async def run(size: int, rounds: int, keep: Path | None) -> None:
    work = keep or Path(tempfile.mkdtemp(prefix="collab-s3-bench-"))
    source = work / "ds"
    t0 = time.perf_counter()
    if not (source / "datasource-properties.json").exists():
        make_dataset(source, (size, size, size))
    print(f"machine: {machine()}")
    print(f"dataset {size}³ ready in {time.perf_counter() - t0:.1f} s")
    n = -(-size // 32)
    bricks = [(x, y, z) for z in range(n) for y in range(n) for x in range(n)]
    results: dict[tuple[str, str], list[float]] = {}
    with moto_process() as endpoint:
        t0 = time.perf_counter()
        files = upload(endpoint, source, "em/ds")
        print(f"uploaded {files} files to moto in {time.perf_counter() - t0:.1f} s")
        ceiling = [await moto_alone(endpoint) for _ in range(rounds)]
        print(
            f"moto alone, sequential 32 KiB ranged GETs (obstore): "
            f"{median(ceiling):,.0f}/s ({min(ceiling):,.0f}–{max(ceiling):,.0f})"
        )
        for cache, label in (("0", "uncached"), ("536870912", "warm")):
            data_dir = work / f"server-{label}"
            shutil.rmtree(data_dir, ignore_errors=True)
            (data_dir / "datasets").mkdir(parents=True)
            shutil.copytree(source, data_dir / "datasets" / "ds")
            env = {
                "COLLAB_S3_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_REGION": REGION,
                "COLLAB_DATASET_ROOTS": f"{data_dir / 'datasets'}:s3://{BUCKET}/em",
                "COLLAB_BRICK_CACHE_BYTES": cache,
            }
            async with collab_server(env, data_dir) as server:
                async with httpx.AsyncClient(
                    base_url=server.url, headers={"authorization": f"Bearer {server.token}"}
                ) as http_client:
                    for name, url in (("local", "ds"), ("s3", f"s3://{BUCKET}/em/ds")):
                        r = await http_client.post("/api/datasets", json={"name": name, "url": url})
                        r.raise_for_status()
                for name in ("local", "s3"):  # shard indexes read, cache filled
                    await asyncio.to_thread(http_pass, server.url, server.token, name, bricks)
                    for encoding in (0, 1):
                        await socket_pass(server.ws, server.token, name, bricks, encoding)
                for _ in range(rounds):
                    for name in ("local", "s3"):
                        rate = await asyncio.to_thread(
                            http_pass, server.url, server.token, name, bricks
                        )
                        results.setdefault((f"HTTP, 1 connection, {label}", name), []).append(rate)
                        for encoding, enc_name in ((0, "raw"), (1, "zstd")):
                            rate = await socket_pass(
                                server.ws, server.token, name, bricks, encoding
                            )
                            key = (f"socket {enc_name}, 1 client, {label}", name)
                            results.setdefault(key, []).append(rate)
    print(f"\n{len(bricks)} mag-1 color bricks (32³ uint8), median of {rounds} rounds (min–max)\n")
    print("| path | local | s3 (moto) |")
    print("| --- | ---: | ---: |")
    for path in dict.fromkeys(k[0] for k in results):
        cells = []
        for name in ("local", "s3"):
            v = results[(path, name)]
            cells.append(f"{median(v):,.0f} ({min(v):,.0f}–{max(v):,.0f})")
        print(f"| {path} | {cells[0]} | {cells[1]} |")
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="keep the dataset here")
    args = parser.parse_args()
    asyncio.run(run(args.size, args.rounds, args.keep))


if __name__ == "__main__":
    main()
