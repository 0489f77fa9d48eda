"""Walks every cell of docs/permissions.md against the running server."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from collab.volume import wire
from tests.conftest import LiveServer
from tests.volume.helpers import make_dataset
from tests.work.helpers import Org, make_org
from tests.yclient import YClient, put_node

MATRIX = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"
ROLES = ["admin", "manager", "reviewer", "annotator", "manager B", "annotator B", "link"]


def matrix() -> list[tuple[str, dict[str, bool]]]:
    rows = []
    for line in MATRIX.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == len(ROLES) + 1 and cells[0].startswith("`"):
            rows.append(
                (
                    cells[0].strip("`").replace("` (", " ("),
                    {r: c == "✓" for r, c in zip(ROLES, cells[1:], strict=True)},
                )
            )
    return rows


ROWS = matrix()


def test_the_matrix_is_complete() -> None:
    assert len(ROWS) >= 30
    # Every REST route of the work, dataset and annotation-review surface is a row.
    names = {name.split("?")[0] for name, _ in ROWS}
    for needed in (
        "POST /api/tasks/next",
        "POST /api/annotations/{ann}/review",
        "PATCH /api/projects/{P}",
        "WS /data/{ds}/color",
    ):
        assert needed in names


BODIES: dict[str, Any] = {
    "POST /api/teams": lambda o, n: {"name": f"team {n}"},
    "POST /api/users": lambda o, n: {"name": f"u{n}", "roles": ["annotator"], "teams": [o.team_a]},
    "PATCH /api/users/{user}": lambda o, n: {"experiences": {"tracing": 3}},
    "POST /api/projects": lambda o, n: {"name": f"p{n}", "team": o.team_a},
    "PATCH /api/projects/{P}": lambda o, n: {"priority": 5},
    "POST /api/tasktypes": lambda o, n: {"name": f"t{n}", "modes": ["volume"]},
    "POST /api/tasks": lambda o, n: {
        "project": o.project,
        "taskType": o.task_type,
        "position": [1, 1, 1],
    },
    "POST /api/instances/{open}/assign": lambda o, n: {"user": o.novice.id},
    "POST /api/instances/{open}/cancel": lambda o, n: {"reason": "test"},
    "POST /api/instances/{open}/reset": lambda o, n: {"reason": "test"},
    "POST /api/annotations/{ann}/review": lambda o, n: {"decision": "accept"},
    "POST /api/annotations/{ann}/comments": lambda o, n: {"text": "look here"},
    "POST /api/datasets": lambda o, n: {"name": f"ds{n}", "url": "small"},
}


@pytest.fixture
async def world(live: LiveServer) -> tuple[Org, dict[str, str], dict[str, Any]]:
    org = await make_org(live)
    make_dataset(Path(live.settings.roots[0]) / "small")
    async with live.client(live.admin_token) as http:
        assert (
            await http.post("/api/datasets", json={"name": "small", "url": "small"})
        ).status_code == 201
    r = await org.tasks(
        {"project": org.project, "taskType": org.task_type, "position": [1, 1, 1], "instances": 2}
    )
    task = r.json()["ids"][0]
    async with org.client(org.annotator) as http:
        held = (await http.post("/api/tasks/next")).json()
    async with org.client(org.manager) as http:
        detail = (await http.get(f"/api/tasks/{task}")).json()
        open_instance = next(i["id"] for i in detail["instances"] if i["state"] == "open")
    async with org.client(org.annotator) as http:
        link = (
            await http.post(f"/api/annotations/{held['annotation']}/links", json={"access": "read"})
        ).json()["token"]
    tokens = {
        "admin": live.admin_token,
        "manager": org.manager.token,
        "reviewer": org.reviewer.token,
        "annotator": org.annotator.token,
        "manager B": org.manager_b.token,
        "annotator B": org.outsider.token,
        "link": link,
    }
    values = {
        "P": org.project,
        "T": org.task_type,
        "task": task,
        "inst": held["instance"],
        "open": open_instance,
        "ann": held["annotation"],
        "user": org.annotator.id,
        "ds": "small",
    }
    return org, tokens, values


async def _rest(
    org: Org, name: str, http: httpx.AsyncClient, values: dict[str, Any], n: int
) -> int:
    method, path = name.split(" ", 1)
    path = re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), path)
    body = BODIES.get(name, lambda o, i: None)(org, n)
    r = await http.request(method, path, json=body if method in ("POST", "PATCH") else None)
    return r.status_code


async def _socket(org: Org, name: str, token: str, values: dict[str, Any]) -> bool:
    live = org.live
    if name.startswith("WS /data/"):
        async with websockets.connect(f"{live.ws_url}/data/small/color?token={token}") as ws:
            await ws.send(wire.pack_request(1, (1, 1, 1), [(0, 0, 0)]))
            try:
                frame = await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code in (4401, 4403)
                return False
            return isinstance(frame, bytes)
    url = live.sync_url(values["ann"], token=token)
    async with websockets.connect(url) as ws:
        try:
            await asyncio.wait_for(ws.recv(), 5)  # the server's sync step 1
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code in (4401, 4403)
            return False
    client = await YClient(live.sync_url(values["ann"], token=token, acks="1")).connect()
    try:
        if "(write)" not in name:
            return True
        # Allowed: the write is saved (a newer saved version is acknowledged);
        # refused: the server's auth denial ("read-only access"). No verdict
        # in time fails the test instead of reading as either.
        probe = f"probe-{token[-6:]}"
        return await client.write(
            lambda: put_node(client, probe, {"treeId": "t", "position": [0, 0, 0]})
        )
    finally:
        await client.close()


async def test_every_cell(world: tuple[Org, dict[str, str], dict[str, Any]]) -> None:
    org, tokens, values = world
    wrong = []
    clients = {role: org.live.client(token) for role, token in tokens.items()}
    try:
        await _walk(org, tokens, values, clients, wrong)
    finally:
        for http in clients.values():
            await http.aclose()
    assert not wrong, "\n".join(wrong)


async def _walk(
    org: Org,
    tokens: dict[str, str],
    values: dict[str, Any],
    clients: dict[str, httpx.AsyncClient],
    wrong: list[str],
) -> None:
    n = 0
    for name, allowed in ROWS:
        for role in ROLES:
            n += 1
            if name.startswith("WS "):
                got = await _socket(org, name, tokens[role], values)
                detail = ""
            else:
                status = await _rest(org, name, clients[role], values, n)
                got = status not in (401, 403)
                detail = f" ({status})"
            if got != allowed[role]:
                wrong.append(
                    f"{name} as {role}: {'allowed' if got else 'refused'}{detail}, matrix says {'✓' if allowed[role] else '✗'}"
                )
