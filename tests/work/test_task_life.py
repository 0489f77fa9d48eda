"""The whole life of a task against the real server: create, next, annotate
over the socket, finish, review, reject, redo, accept; concurrency; bad input."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import LiveServer
from tests.work.helpers import Org, make_org
from tests.yclient import YClient, put_node


@pytest.fixture
async def org(live: LiveServer) -> Org:
    return await make_org(live)


def task(org: Org, **extra: object) -> dict:
    return {"project": org.project, "taskType": org.task_type, "position": [10, 20, 30], **extra}


async def test_whole_life(org: Org) -> None:
    live = org.live
    r = await org.tasks([task(org), task(org, experience={"domain": "tracing", "min": 2})])
    assert r.status_code == 201, r.text
    first, second = r.json()["ids"]
    async with org.client(org.annotator) as http:
        taken = (await http.post("/api/tasks/next")).json()
        assert taken["task"] == first  # the oldest task of the project first
        ann = taken["annotation"]
        # Annotate over the socket.
        client = await YClient(live.sync_url(ann, token=org.annotator.token, acks="1")).connect()
        assert await client.write(
            lambda: put_node(client, "n1", {"treeId": "t", "position": [1, 2, 3]})
        )
        await client.close()
        # Reviewing before it is finished is the wrong state.
    async with org.client(org.reviewer) as http:
        r = await http.post(f"/api/annotations/{ann}/review", json={"decision": "accept"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "bad_state"
    async with org.client(org.novice) as http:
        r = await http.post(f"/api/annotations/{ann}/finish")
        assert r.status_code == 403  # not its annotator
    async with org.client(org.annotator) as http:
        r = await http.post(f"/api/annotations/{ann}/finish")
        assert r.status_code == 200 and r.json()["state"] == "finished"
        r = await http.post(f"/api/annotations/{ann}/finish")
        assert r.status_code == 409
    async with org.client(org.reviewer) as http:
        # The reviewer reads it read-only and replays its history.
        viewer = await YClient(live.sync_url(ann, token=org.reviewer.token, acks="1")).connect()
        assert "n1" in viewer.map("nodes").to_py()
        # Read-only: an edit is refused (told once), and it is not applied.
        assert not await viewer.write(
            lambda: put_node(viewer, "r1", {"treeId": "t", "position": [0, 0, 0]})
        )
        await viewer.close()
        versions = (await http.get(f"/api/annotations/{ann}/versions")).json()["versions"]
        assert versions and versions[-1]["author"] == org.annotator.id
        r = await http.post(f"/api/annotations/{ann}/review", json={"decision": "reject"})
        assert r.status_code == 400  # a reason is required to reject
        r = await http.post(
            f"/api/annotations/{ann}/review",
            json={"decision": "reject", "reason": "the axon continues at 40,50,60"},
        )
        assert r.status_code == 200 and r.json()["state"] == "rejected"
    async with org.client(org.annotator) as http:
        comments = (await http.get(f"/api/annotations/{ann}/comments")).json()["comments"]
        assert "the axon continues" in comments[0]["text"]
        client = await YClient(live.sync_url(ann, token=org.annotator.token, acks="1")).connect()
        assert await client.write(
            lambda: put_node(client, "n2", {"treeId": "t", "position": [40, 50, 60]})
        )
        await client.close()
        assert (await http.post(f"/api/annotations/{ann}/finish")).json()["state"] == "finished"
    async with org.client(org.reviewer) as http:
        r = await http.post(
            f"/api/annotations/{ann}/review", json={"decision": "accept", "reason": "good"}
        )
        assert r.json()["state"] == "accepted"
    async with org.client(org.manager) as http:
        project = (await http.get(f"/api/projects/{org.project}")).json()
        assert project["instances"]["accepted"] == 1 and project["instances"]["open"] == 1
        detail = (await http.get(f"/api/tasks/{first}")).json()
        instance = detail["instances"][0]
        assert instance["state"] == "accepted" and instance["annotator"] == org.annotator.id
        assert instance["annotation"] == ann
        trail = (await http.get(f"/api/instances/{instance['id']}")).json()["audit"]
        assert [(a["action"], a["to"]) for a in trail] == [
            ("take", "in_progress"),
            ("finish", "finished"),
            ("reject", "rejected"),
            ("finish", "finished"),
            ("accept", "accepted"),
        ]
        assert trail[2]["actor"] == org.reviewer.id and "axon" in trail[2]["reason"]
        listed = (await http.get("/api/tasks", params={"project": org.project})).json()["tasks"]
        assert [t["id"] for t in listed] == [first, second]
    # Never the same task twice for one user; experience gates the second task.
    async with org.client(org.annotator) as http:
        r = await http.post("/api/tasks/next")
        assert r.json()["task"] == second
        r = await http.post("/api/tasks/next")
        assert r.status_code == 404 and r.json()["error"]["code"] == "no_task"
    async with org.client(org.novice) as http:
        r = await http.post("/api/tasks/next")
        assert r.status_code == 404  # the only open instance needs tracing >= 2
    async with org.client(org.outsider) as http:
        r = await http.post("/api/tasks/next")
        assert r.status_code == 404  # other team
    async with org.client(org.reviewer) as http:
        assert (await http.post("/api/tasks/next")).status_code == 403  # not an annotator


async def test_priority_and_pause(org: Org) -> None:
    async with org.client(org.manager) as http:
        low = (
            await http.post(
                "/api/projects", json={"name": "low", "team": org.team_a, "priority": 1}
            )
        ).json()["id"]
        r = await http.patch(f"/api/projects/{org.project}", json={"paused": True})
        assert r.json()["paused"] is True
    r_low = await org.tasks({"project": low, "taskType": org.task_type, "position": [0, 0, 0]})
    r_high = await org.tasks(task(org))
    async with org.client(org.annotator) as http:
        got = (await http.post("/api/tasks/next")).json()
        assert got["task"] == r_low.json()["id"]  # the high-priority project is paused
    async with org.client(org.manager) as http:
        await http.patch(f"/api/projects/{org.project}", json={"paused": False})
    async with org.client(org.novice) as http:
        got = (await http.post("/api/tasks/next")).json()
        assert got["task"] == r_high.json()["id"]


async def test_fifty_callers_ten_instances(org: Org) -> None:
    live = org.live
    r = await org.tasks(task(org, instances=10))
    assert r.status_code == 201
    tokens = []
    async with live.client(live.admin_token) as http:
        for i in range(50):
            r = await http.post(
                "/api/users", json={"name": f"a{i}", "roles": ["annotator"], "teams": [org.team_a]}
            )
            tokens.append(r.json()["token"])

    async def ask(token: str) -> tuple[int, dict]:
        async with live.client(token) as http:
            r = await http.post("/api/tasks/next")
            return r.status_code, r.json()

    results = await asyncio.gather(*(ask(t) for t in tokens))
    won = [body for status, body in results if status == 200]
    assert len(won) == 10
    assert len({b["instance"] for b in won}) == 10 and len({b["annotation"] for b in won}) == 10
    assert all(
        status == 404 and body["error"]["code"] == "no_task"
        for status, body in results
        if status != 200
    )
    async with org.client(org.manager) as http:
        detail = (await http.get(f"/api/tasks/{won[0]['task']}")).json()
        assert sorted(i["state"] for i in detail["instances"]) == ["in_progress"] * 10


async def test_bad_input_changes_nothing(org: Org, live: LiveServer) -> None:
    from pathlib import Path

    from tests.volume.helpers import make_dataset

    make_dataset(Path(live.settings.roots[0]) / "small")
    async with live.client(live.admin_token) as http:
        assert (
            await http.post("/api/datasets", json={"name": "small", "url": "small"})
        ).status_code == 201
    good = task(org, dataset="small")
    cases = [
        ([good, task(org, project=999999)], 1, "no project"),
        ([good, good, task(org, dataset="nope")], 2, "no registered dataset"),
        ([good, task(org, dataset="small", position=[500, 0, 0])], 1, "outside dataset"),
        ([good, task(org, instances=-1)], 1, "instances"),
        ([good, task(org, instances=0)], 1, "instances"),
        ([task(org, taskType=999999)], 0, "no task type"),
        ([good, {"project": org.project}], 1, "taskType"),
        ([good, task(org, position=[1, 2])], 1, "position"),
        ([good, task(org, baseAnnotation=999999)], 1, "no annotation"),
    ]
    for body, index, needle in cases:
        r = await org.tasks(body)
        assert r.status_code == 422, (body, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_task" and error["index"] == index, error
        assert error["message"].startswith(f"tasks[{index}]") and needle in error["message"], error
    csv_text = (
        "project,taskType,x,y,z,instances\n"
        f"{org.project},{org.task_type},1,2,3,1\n"
        f"{org.project},{org.task_type},1,two,3,1\n"
    )
    async with org.client(org.manager) as http:
        r = await http.post("/api/tasks", content=csv_text, headers={"content-type": "text/csv"})
        assert r.status_code == 422 and r.json()["error"]["message"].startswith("row 3:")
        assert r.json()["error"]["index"] == 1
        r = await http.get("/api/tasks", params={"project": org.project})
        assert r.json()["tasks"] == []  # nothing of any batch was stored
        ok = await http.post(
            "/api/tasks",
            content=csv_text.rsplit("\n", 2)[0] + "\n",
            headers={"content-type": "text/csv"},
        )
        assert ok.status_code == 201 and len(ok.json()["ids"]) == 1
        r = await http.post("/api/projects", json={"name": "x", "team": org.team_b})
        assert r.status_code == 403  # a manager acting outside their teams
        r = await http.post("/api/projects", json={"name": "x", "team": 999999})
        assert r.status_code == 404
        r = await http.patch("/api/projects/999999", json={"paused": True})
        assert r.status_code == 404
        assert (await http.get("/api/tasks/999999")).status_code == 404
        assert (await http.post("/api/instances/999999/reset", json={})).status_code == 404
    r = await org.tasks(task(org), who=org.manager_b)
    assert r.status_code == 403
    async with org.client(org.manager) as http:
        assert (
            len((await http.get("/api/tasks", params={"project": org.project})).json()["tasks"])
            == 1
        )


async def test_manager_assign_reassign_cancel_reset(org: Org) -> None:
    r = await org.tasks(task(org, instances=2))
    task_id = r.json()["ids"][0]
    async with org.client(org.manager) as http:
        detail = (await http.get(f"/api/tasks/{task_id}")).json()
        one, two = (i["id"] for i in detail["instances"])
        r = await http.post(f"/api/instances/{one}/assign", json={"user": org.novice.id})
        assert r.status_code == 200 and r.json()["annotator"] == org.novice.id
        ann = r.json()["annotation"]
        r = await http.post(f"/api/instances/{one}/assign", json={"user": org.outsider.id})
        assert r.status_code == 422  # not in the team
        r = await http.post(f"/api/instances/{one}/assign", json={"user": org.annotator.id})
        assert r.json()["annotator"] == org.annotator.id and r.json()["annotation"] == ann
        r = await http.post(f"/api/instances/{two}/cancel", json={"reason": "duplicate"})
        assert r.json()["state"] == "cancelled"
        r = await http.post(f"/api/instances/{one}/reset", json={"reason": "start over"})
        assert r.json()["state"] == "open" and r.json()["annotator"] is None
        trail = (await http.get(f"/api/instances/{one}")).json()["audit"]
        assert [a["action"] for a in trail] == ["assign", "reassign", "reset"]
    async with org.client(org.annotator) as http:
        # The reassigned annotation moved to the annotator; after the reset the
        # instance is open again (for users who never held the task).
        assert (await http.get(f"/api/annotations/{ann}")).status_code == 200
    async with org.client(org.novice) as http:
        assert (await http.get(f"/api/annotations/{ann}")).status_code == 403
        assert (await http.post("/api/tasks/next")).status_code == 404  # held it before
    async with org.client(org.manager_b) as http:
        assert (await http.post(f"/api/instances/{one}/cancel", json={})).status_code == 403


async def test_task_type_modes_limit_the_writable_documents(org: Org) -> None:
    """A skeleton-only task type: its annotations' segmentation is read-only."""
    await org.tasks(task(org))
    async with org.client(org.annotator) as http:
        ann = (await http.post("/api/tasks/next")).json()["annotation"]
    live = org.live
    seg = await YClient(live.sync_url(ann, "segmentation", token=org.annotator.token)).connect()
    sk = await YClient(
        live.sync_url(ann, "skeleton", token=org.annotator.token, acks="1")
    ).connect()
    try:
        seg.map("meta")["x"] = 1  # an edit of the read-only document: refused, told once
        await seg.wait(lambda: bool(seg.denied))
        # Saved, not denied: the skeleton stays writable.
        assert await sk.write(lambda: put_node(sk, "n1", {"treeId": "t", "position": [1, 1, 1]}))
        assert not sk.denied
    finally:
        await seg.close()
        await sk.close()
    async with org.client(org.annotator) as http:
        versions = (
            await http.get(f"/api/annotations/{ann}/versions", params={"doc": "skeleton"})
        ).json()
        assert versions["versions"]


async def test_task_types_are_listed(org: Org) -> None:
    async with org.client(org.manager) as http:
        r = await http.post(
            "/api/tasktypes",
            json={"name": "paint", "modes": ["volume"], "settings": {"allowedMags": ["1"]}},
        )
        assert r.status_code == 201, r.text
    async with org.client(org.annotator) as http:
        r = await http.get("/api/tasktypes")
        assert r.status_code == 200, r.text
    listed = r.json()["taskTypes"]
    assert [t["name"] for t in listed] == ["trace", "paint"]
    assert listed[1] == {
        "id": listed[1]["id"],
        "name": "paint",
        "description": "",
        "modes": ["volume"],
        "settings": {"allowedMags": ["1"]},
    }
    async with org.live.client() as http:
        assert (await http.get("/api/tasktypes")).status_code == 401
