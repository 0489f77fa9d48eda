"""An organisation for the work tests: two teams, their people, a project."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.conftest import LiveServer


@dataclass
class Person:
    id: int
    token: str


@dataclass
class Org:
    live: LiveServer
    team_a: int
    team_b: int
    manager: Person
    reviewer: Person
    annotator: Person  # tracing: 3
    novice: Person  # tracing: 1
    outsider: Person  # annotator of team B
    manager_b: Person
    project: int
    task_type: int
    people: dict[str, Person] = field(default_factory=dict)

    def client(self, who: Person | str | None) -> httpx.AsyncClient:
        token = who.token if isinstance(who, Person) else who
        return self.live.client(token)

    async def tasks(self, body: Any, who: Person | None = None, **kw: Any) -> httpx.Response:
        async with self.client(who or self.manager) as http:
            return await http.post("/api/tasks", json=body, **kw)


async def make_org(live: LiveServer) -> Org:
    async with live.client(live.admin_token) as http:
        team_a = (await http.post("/api/teams", json={"name": "lab A"})).json()["id"]
        team_b = (await http.post("/api/teams", json={"name": "lab B"})).json()["id"]

        async def person(
            name: str, roles: list[str], teams: list[int], exp: dict | None = None
        ) -> Person:
            r = await http.post(
                "/api/users",
                json={
                    "name": name,
                    "email": f"{name}@lab.org",
                    "roles": roles,
                    "teams": teams,
                    "experiences": exp or {},
                },
            )
            assert r.status_code == 201, r.text
            return Person(r.json()["id"], r.json()["token"])

        manager = await person("manager", ["manager"], [team_a])
        manager_b = await person("manager-b", ["manager"], [team_b])
        reviewer = await person("reviewer", ["reviewer"], [team_a])
        annotator = await person("annotator", ["annotator"], [team_a], {"tracing": 3})
        novice = await person("novice", ["annotator"], [team_a], {"tracing": 1})
        outsider = await person("outsider", ["annotator"], [team_b], {"tracing": 9})
    async with live.client(manager.token) as http:
        r = await http.post(
            "/api/projects",
            json={
                "name": "cortex",
                "team": team_a,
                "priority": 5,
                "paused": False,
                "expectedMinutes": 30,
            },
        )
        assert r.status_code == 201, r.text
        project = r.json()["id"]
        r = await http.post(
            "/api/tasktypes",
            json={"name": "trace", "description": "trace the axon", "modes": ["skeleton"]},
        )
        assert r.status_code == 201, r.text
        task_type = r.json()["id"]
    return Org(
        live,
        team_a,
        team_b,
        manager,
        reviewer,
        annotator,
        novice,
        outsider,
        manager_b,
        project,
        task_type,
    )
