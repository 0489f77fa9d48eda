"""The browser client's viewer on the demo dataset, in headless Chromium:

    python -m tests.benchmarks.client_view [--runs 5] [--keep DIR] [--nodes 100000]

Starts ``collab demo`` (a real server, embedded PostgreSQL, the 512³ demo
dataset; ``--keep`` reuses a data dir so the dataset is made once), then
client/e2e/bench_view.mjs measures the first view with EM data in all three
planes (navigation until every brick in view is drawn; each run a fresh
browser context, the server's brick cache warm after the first) and
panning at 1280×800 (frame intervals with an arrow key held for 3 s, and
the time from the stop until every brick in view is drawn). With
``--nodes N`` it also imports a synthetic N-node skeleton (the generator of
tests/benchmarks/nml_million.py) into an annotation of its own and measures,
in the page, a click to the frame showing the new node (20 clicks), the time
to open it and the page's JS heap (client/e2e/bench_click.mjs). Software GL
on the machine's cores: the figures are what this machine does.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from collab.web_build import CLIENT, ensure_built
from tests.benchmarks.harness import free_port, machine
from tests.processes import NO_LIMITS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--nodes", type=int, default=0)
    parser.add_argument("--query", default="", help="appended to the page URL, e.g. seg=0")
    args = parser.parse_args()
    assert ensure_built(), "the browser client did not build"
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="collab-client-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_")}
    env.update(NO_LIMITS, COLLAB_DATA_DIR=str(data_dir), COLLAB_LOG_LEVEL="WARNING")
    log = data_dir / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "collab.cli", "demo", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 300
        while "open in a browser:" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.5)
        url = log.read_text().split("open in a browser:")[1].split()[0]
        if args.query:
            url += f"&{args.query}"
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).raise_for_status()
        done = subprocess.run(
            ["node", str(CLIENT / "e2e" / "bench_view.mjs"), url, str(args.runs)],
            cwd=CLIENT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        clicks = _large_skeleton(port, url, args.nodes, data_dir) if args.nodes else None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    print(f"machine: {machine()}")
    first = result["firstView"]
    print(f"first view, every brick at full resolution (ms, {len(first)} fresh contexts): {first}")
    if clicks:
        ms = sorted(clicks["clickMs"])
        print(
            f"{clicks['nodes']} nodes: opened (synced) in {clicks['openMs']} ms; click to the new "
            f"node on screen p50 {ms[len(ms) // 2]} ms, max {ms[-1]} ms ({len(ms)} clicks); "
            f"JS heap {clicks['heapMB']} MB"
        )
    print(f"planes filled with EM, some coarser (ms): {result['firstFilled']}")
    for name, label in (
        ("panHeld", "→ held (~30 presses/s)"),
        ("pan", "→ pressed as fast as possible"),
    ):
        pan = result[name]
        print(
            f"panning, {label}: {pan['presses']} presses, {pan['frames']} frames, interval "
            f"p50 {pan['p50']:.1f} ms, p95 {pan['p95']:.1f} ms, max {pan['max']:.1f} ms; "
            f"every brick in view {pan['loadedAfterStopMs']} ms after the stop"
        )
    if clicks:
        pan = clicks["pan"]
        print(
            f"{clicks['nodes']} nodes, panning (→ held): {pan['frames']} frames, interval "
            f"p50 {pan['p50']:.1f} ms, p95 {pan['p95']:.1f} ms, max {pan['max']:.1f} ms"
        )


def _large_skeleton(port: int, demo_url: str, nodes: int, folder: Path) -> dict:
    from tests.benchmarks.nml_million import make_nml

    token = demo_url.split("token=")[1].split("&")[0]
    base = f"http://127.0.0.1:{port}"
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=600) as http:
        ann = http.post("/api/annotations", json={"name": f"{nodes} nodes"}).json()["id"]
        nml = folder / f"bench-{nodes}.nml"
        make_nml(nml, nodes, max(1, nodes // 1000))
        r = http.post(
            f"/api/annotations/{ann}/nml",
            content=nml.read_bytes(),
            headers={"content-type": "application/xml"},
        )
        r.raise_for_status()
    # Open where the first tree starts, so nodes are in view.
    with httpx.Client(base_url=base, headers=headers, timeout=600) as http:
        text = http.get(f"/api/annotations/{ann}/nml").text
    first = text.split("<node ", 1)[1]
    x, y, z = (round(float(first.split(f'{a}="')[1].split('"')[0])) for a in "xyz")
    url = f"{base}/annotations/{ann}?token={token}&pos={x},{y},{z}"
    done = subprocess.run(
        ["node", str(CLIENT / "e2e" / "bench_click.mjs"), url, "20"],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    main()
