"""``collab task create`` from CSV, JSON and NML files, against a live server;
a task built from an NML hands its annotator a copy of that skeleton."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.cli import run_cli
from tests.conftest import LiveServer
from tests.fixtures import NML
from tests.work.helpers import make_org
from tests.yclient import YClient


async def _cli(*args: str, token: str) -> tuple[int, str, str]:
    return await run_cli("task", "create", *args, token=token)


async def test_csv_json_and_nml(live: LiveServer, tmp_path: Path) -> None:
    org = await make_org(live)
    server = ("--server", live.url)
    good = tmp_path / "tasks.csv"
    good.write_text(
        "project,taskType,x,y,z,instances,experienceDomain,experienceMin\n"
        + "".join(f"{org.project},{org.task_type},{i},2,3,1,tracing,1\n" for i in range(25))
    )
    code, out, err = await _cli(str(good), *server, token=org.manager.token)
    assert code == 0, err
    assert "created 25 tasks" in out and "upload tasks.csv" in err
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text() + f"{org.project},{org.task_type},1,2\n")
    code, _, err = await _cli(str(bad), *server, token=org.manager.token)
    assert code == 1 and "row 27" in err
    as_json = tmp_path / "tasks.json"
    as_json.write_bytes(
        orjson.dumps([{"project": org.project, "taskType": org.task_type, "position": [5, 5, 5]}])
    )
    code, out, err = await _cli(str(as_json), *server, token=org.manager.token)
    assert code == 0 and "created 1 tasks" in out, err
    nmls = [NML / "tracing.nml"]
    code, out, err = await _cli(
        *map(str, nmls),
        "--project",
        str(org.project),
        "--task-type",
        str(org.task_type),
        "--experience",
        "tracing:3",
        *server,
        token=org.manager.token,
    )
    assert code == 0 and "created 1 tasks from 1 NML files" in out, err
    async with org.client(org.manager) as http:
        tasks = (await http.get("/api/tasks", params={"project": org.project})).json()["tasks"]
        assert len(tasks) == 27
        nml_task = tasks[-1]
        assert nml_task["baseAnnotation"] is not None and nml_task["experience"]["min"] == 3
    # Only the annotator with tracing 3 fits the NML task; it gets a copy of the skeleton.
    async with org.client(org.annotator) as http:
        picked = None
        for _ in range(30):
            got = (await http.post("/api/tasks/next")).json()
            if got["task"] == nml_task["id"]:
                picked = got
                break
        assert picked is not None
    client = await YClient(live.sync_url(picked["annotation"], token=org.annotator.token)).connect()
    try:
        assert len(client.map("nodes").to_py()) == 22
    finally:
        await client.close()
