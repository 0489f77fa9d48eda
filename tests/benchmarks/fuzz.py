"""The fuzz targets at benchmark size: ``python -m tests.benchmarks.fuzz [N [target ...]]``.

Runs tests/fuzz/ with N inputs per target (default 100,000) and random
(not derandomised) generation, then prints each target's inputs per second.
Findings are printed by hypothesis as failing examples; record the rates and
findings in docs/performance.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time


def main() -> int:
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    env = {**os.environ, "COLLAB_FUZZ_EXAMPLES": str(examples), "COLLAB_FUZZ_RANDOM": "1"}
    rates = []
    only = sys.argv[2:]  # target names to run (default: all)
    for target in (
        "tests/fuzz/test_rest_fuzz.py::test_rest_never_answers_5xx",
        "tests/fuzz/test_sync_fuzz.py::test_random_frames",
        "tests/fuzz/test_sync_fuzz.py::test_schema_breaking_updates",
        "tests/fuzz/test_brick_fuzz.py::test_brick_frames",
        "tests/fuzz/test_upload_fuzz.py::test_uploads",
    ):
        if only and not any(name in target for name in only):
            continue
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-o",
                "timeout=0",
                target,
            ],
            env=env,
        )
        elapsed = time.perf_counter() - started
        rates.append((target, done.returncode, examples / elapsed, elapsed))
    for target, code, rate, elapsed in rates:
        status = "ok" if code == 0 else f"FINDINGS (exit {code})"
        print(f"{target}: {examples} inputs in {elapsed:.0f} s, {rate:.0f}/s, {status}")
    return 0 if all(code == 0 for _, code, _, _ in rates) else 1


if __name__ == "__main__":
    sys.exit(main())
