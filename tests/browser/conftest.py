"""The browser client, end to end: real headless Chromium (from the npm
package @sparticuz/chromium, driven by playwright-core; no download at test
time) against a real server and PostgreSQL. The scripts live in client/e2e/
(they import the client's packages); each prints one JSON line."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from collab.web_build import BUILT, CLIENT, ensure_built


@pytest.fixture(scope="session")
def built_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node.js >= 20 and npm are required for the browser tests")
    if not (CLIENT / "node_modules" / ".package-lock.json").is_file():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=CLIENT, check=True, timeout=900
        )
    assert ensure_built(), "the browser client did not build"
    return BUILT


async def run_e2e(script: str, *args: str, timeout: float = 120) -> dict[str, object]:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(CLIENT / "e2e" / script),
        *args,
        cwd=CLIENT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, err.decode()[-3000:]
    result: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
    return result
