"""The stock npm ``yjs`` + ``y-websocket`` client joins a room, edits, and sees
a Python client's edits (tests/js/ has its own package.json)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.conftest import LiveServer
from tests.yclient import YClient, put_node

JS = Path(__file__).parent / "js"


async def test_stock_yjs_client_interoperates(live: LiveServer, node_modules: Path) -> None:
    _, token = await live.user()
    ann = await live.annotation(token)
    py = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    put_node(py, "from-python", {"treeId": "t", "position": [1, 2, 3]})
    await py.wait(lambda: py.saved == 1)
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(JS / "interop_client.mjs"),
        live.ws_url,
        str(ann),
        token,
        "from-node",
        "from-python",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        # Its line once it holds both nodes; it stays connected meanwhile.
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, "the Node client printed nothing"
        result = json.loads(line)
        assert result["ok"] and result["nodes"]["from-python"]["position"] == [1, 2, 3], result
        await py.wait(lambda: "from-node" in py.map("nodes"))
        assert py.map("nodes")["from-node"]["radius"] == 1.5
        assert py.map("trees")["node-tree"]["name"] == "traced in node"
        await py.wait(lambda: py.saved >= 2)
    finally:
        out, err = await asyncio.wait_for(proc.communicate(b""), 30)  # closes its stdin
    assert proc.returncode == 0, (out, err)
    # What the Node client wrote is durable: a fresh client loads it.
    fresh = await YClient(live.sync_url(ann, token=token)).connect()
    assert set(fresh.map("nodes").keys()) == {"from-python", "from-node"}
    await py.close()
    await fresh.close()


async def test_stock_client_stops_reconnecting_on_final_refusals(
    live: LiveServer, node_modules: Path
) -> None:
    _, token = await live.user()
    ann = await live.annotation(token)
    _, stranger = await live.user("stranger")
    for bad_token, code in (("clb_wrong", 4401), (stranger, 4403)):
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(JS / "refused_client.mjs"),
            live.ws_url,
            str(ann),
            bad_token,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err
        result = json.loads(out.decode().strip().splitlines()[-1])
        assert result["closed"]["code"] == code
        assert result["attempts"] == 1 and result["final"]  # and no reconnect can follow
