"""Building the browser client from a source tree (a clone), when needed.

A release wheel carries the built client (collab/web); a clone has only its
sources in client/. ``collab demo`` and ``collab serve`` call
:func:`ensure_built` before starting: when the sources are newer than the
build (or there is none) it runs ``npm ci`` (once) and ``npm run build``
there, printing what it does. Without Node ≥ 20 on PATH it says so and the
server starts without a page (the API and sockets work; ``/`` answers 503
naming the problem).

Several processes may start at once from one clone (a demo beside a test
run's servers): the check and the build hold an exclusive lock on
``client/.build.lock``, so one builds and the others then find it built
(two ``npm ci`` in one folder corrupt each other's node_modules).
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CLIENT = PACKAGE.parent / "client"
BUILT = PACKAGE / "web" / "index.html"
MIN_NODE = 20


def _newest_source(client: Path) -> float:
    files = [client / "index.html", client / "package.json", client / "vite.config.ts"]
    files += [p for p in (client / "src").rglob("*") if p.is_file()]
    return max((p.stat().st_mtime for p in files if p.exists()), default=0.0)


def _say(text: str) -> None:
    print(f"collab: {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _exclusive(client: Path) -> Iterator[None]:
    with (client / ".build.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def ensure_built(client: Path = CLIENT, built: Path = BUILT) -> bool:
    """Build the client if this is a source tree and the build is missing or
    stale; True when a built client is there afterwards."""
    if not (client / "package.json").is_file():
        return built.is_file()  # an installed release: nothing to build
    with _exclusive(client):
        return _build_if_stale(client, built)


def _build_if_stale(client: Path, built: Path) -> bool:
    if built.is_file() and built.stat().st_mtime >= _newest_source(client):
        return True
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _say(
            f"Node.js >= {MIN_NODE} with npm is needed to build the browser client from a "
            "clone (https://nodejs.org); starting without it: the API works, / does not"
        )
        return built.is_file()
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    major = int(version.stdout.strip().lstrip("v").split(".")[0] or 0)
    if major < MIN_NODE:
        _say(f"Node.js {version.stdout.strip()} is too old to build the client (>= {MIN_NODE})")
        return built.is_file()
    try:
        if not (client / "node_modules" / ".package-lock.json").is_file():
            _say("installing the browser client's packages (npm ci, once)")
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=client, check=True, timeout=900
            )
        _say("building the browser client (npm run build)")
        subprocess.run([npm, "run", "build", "--silent"], cwd=client, check=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        _say(f"building the browser client failed ({exc}); starting without it")
    return built.is_file()
