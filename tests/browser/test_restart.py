"""A server restart under a writing page (client/e2e/restart.mjs)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from collab.web_build import CLIENT
from tests.conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.timeout(300)


async def test_the_page_rides_out_a_server_restart(live: LiveServer, built_client: Path) -> None:
    _, token = await live.user("Ada")
    ann = await live.annotation(token, "restart")
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(CLIENT / "e2e" / "restart.mjs"),
        live.url,
        str(ann),
        token,
        cwd=CLIENT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None

    async def step() -> dict[str, object]:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line, (await proc.stderr.read()).decode()[-3000:]  # type: ignore[union-attr]
        result: dict[str, object] = json.loads(line)
        return result

    try:
        assert (await step())["step"] == "ready"
        await stop_server(live.server)
        proc.stdin.write(b"down\n")
        added = await step()
        assert added["offline"] == "offline — 2 change(s) not saved yet", added
        live.server = await start_server(live.settings)
        proc.stdin.write(b"up\n")
        done = await step()
        # The two offline changes reach the server in the reconnection's sync
        # step 2: one update, one version; nothing is pending.
        assert done["saved"] == "saved up to version 2", done
    finally:
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 60)
    async with live.client(token) as http:
        nml = (await http.get(f"/api/annotations/{ann}/nml")).text
    assert nml.count("<node ") == 3
