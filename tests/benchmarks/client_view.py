"""The browser client's viewer on the demo dataset, in headless Chromium:

    python -m tests.benchmarks.client_view [--runs 5] [--keep DIR]

Starts ``collab demo`` (a real server, embedded PostgreSQL, the 512³ demo
dataset; ``--keep`` reuses a data dir so the dataset is made once), then
client/e2e/bench_view.mjs measures the first view with EM data in all three
planes (navigation until every brick in view is drawn; each run a fresh
browser context, the server's brick cache warm after the first) and
panning at 1280×800 (frame intervals with an arrow key held for 3 s, and
the time from the stop until every brick in view is drawn). Software GL on
the machine's cores: the figures are what this machine does.
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
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    print(f"machine: {machine()}")
    first = result["firstView"]
    print(f"first view with EM data (ms, {len(first)} fresh contexts): {first}")
    pan = result["pan"]
    print(
        f"panning: {pan['frames']} frames, interval p50 {pan['p50']:.1f} ms, "
        f"p95 {pan['p95']:.1f} ms, max {pan['max']:.1f} ms; "
        f"every brick in view {pan['loadedAfterStopMs']} ms after the stop"
    )


if __name__ == "__main__":
    main()
