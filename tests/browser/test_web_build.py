"""Building the client from a clone (collab/web_build.py) when several
processes start at once: one builds, the others find it built."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from collab.web_build import ensure_built

# A stand-in client whose "build" refuses to run twice at once: it claims a
# marker with O_EXCL, writes the page, counts itself, and lets go.
BUILD_JS = """
const fs = require('fs')
const claim = fs.openSync('building', 'wx') // throws if another build runs
const until = Date.now() + 300
while (Date.now() < until) {} // hold it, so a second build would overlap
fs.mkdirSync('out', { recursive: true })
fs.writeFileSync('out/index.html', '<!doctype html>')
fs.appendFileSync('builds', 'x')
fs.closeSync(claim)
fs.unlinkSync('building')
"""


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm")
def test_concurrent_starts_build_once(tmp_path: Path) -> None:
    client = tmp_path / "client"
    (client / "src").mkdir(parents=True)
    (client / "src" / "main.ts").write_text("export {}\n")
    (client / "package.json").write_text(
        json.dumps({"name": "stand-in", "private": True, "scripts": {"build": "node build.js"}})
    )
    (client / "build.js").write_text(BUILD_JS)
    (client / "node_modules").mkdir()
    (client / "node_modules" / ".package-lock.json").write_text("{}")  # installed
    built = client / "out" / "index.html"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: ensure_built(client, built), range(4)))
    assert results == [True] * 4
    assert (client / "builds").read_text() == "x"  # one build; no overlap
    assert not (client / "building").exists()
