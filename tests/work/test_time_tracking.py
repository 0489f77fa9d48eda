"""Time tracking from the operation log, with updates at chosen (fake) times."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from collab.document.log import RoomKey, UpdateRecord
from collab.store import oplog
from tests.conftest import LiveServer
from tests.work.helpers import Org, make_org

T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC).timestamp()


async def _updates(live: LiveServer, annotation: int, author: int, offsets: list[float]) -> None:
    """Rows of the operation log at T0 + offsets seconds (a fake clock)."""
    conn = await asyncpg.connect(live.settings.database_url)
    try:
        head = await oplog.head(conn, RoomKey(annotation, "skeleton"))
        await oplog.append(
            conn,
            [
                UpdateRecord(
                    RoomKey(annotation, "skeleton"),
                    head + n + 1,
                    author,
                    T0 + off,
                    b"{}",
                    b"\x00\x00",
                )
                for n, off in enumerate(offsets)
            ],
        )
    finally:
        await conn.close()


@pytest.fixture
async def org(live: LiveServer) -> Org:
    return await make_org(live)


async def test_active_time_per_user_task_project_day(org: Org) -> None:
    live = org.live
    r = await org.tasks(
        [{"project": org.project, "taskType": org.task_type, "position": [1, 1, 1]}] * 2
    )
    t1, t2 = r.json()["ids"]
    async with org.client(org.annotator) as http:
        a1 = (await http.post("/api/tasks/next")).json()["annotation"]
        a2 = (await http.post("/api/tasks/next")).json()["annotation"]
    # a1: 0, 60, 120 (two gaps of 60 s) then a 2-hour break, then 30 s more: 150 s.
    await _updates(live, a1, org.annotator.id, [0, 60, 120, 7320, 7350])
    # a2, the next day: 10 s steps for 100 s; a 301 s gap does not count (idle 300).
    await _updates(
        live, a2, org.annotator.id, [86400 + 10 * k for k in range(11)] + [86400 + 100 + 301]
    )
    async with org.client(org.manager) as http:
        by_task = (await http.get("/api/reports/time", params={"by": "task"})).json()
        assert by_task["idleSeconds"] == 300
        assert {row["task"]: row["seconds"] for row in by_task["rows"]} == {t1: 150.0, t2: 100.0}
        by_user = (await http.get("/api/reports/time", params={"by": "user"})).json()["rows"]
        assert by_user == [{"user": org.annotator.id, "seconds": 250.0, "updates": 17}]
        by_project = (await http.get("/api/reports/time", params={"by": "project"})).json()["rows"]
        assert by_project[0]["project"] == org.project and by_project[0]["seconds"] == 250.0
        by_day = (await http.get("/api/reports/time", params={"by": "day"})).json()["rows"]
        assert [(row["day"], row["seconds"]) for row in by_day] == [
            ("2026-11-20", 150.0),
            ("2026-11-21", 100.0),
        ]
        tighter = (await http.get("/api/reports/time", params={"by": "task", "idle": 30})).json()
        assert {row["task"]: row["seconds"] for row in tighter["rows"]} == {t1: 30.0, t2: 100.0}
        window = (
            await http.get(
                "/api/reports/time", params={"by": "user", "from": "2026-11-21T00:00:00Z"}
            )
        ).json()["rows"]
        assert window[0]["seconds"] == 100.0
        csv = await http.get("/api/reports/time", params={"by": "task", "format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv")
        assert csv.text.splitlines() == ["task,seconds,updates", f"{t1},150.0,5", f"{t2},100.0,12"]
    # Annotators see their own time only; other teams' managers see nothing of team A.
    async with org.client(org.annotator) as http:
        mine = (await http.get("/api/reports/time")).json()["rows"]
        assert mine[0]["seconds"] == 250.0
        r = await http.get("/api/reports/time", params={"user": org.manager.id})
        assert r.status_code == 403
    async with org.client(org.manager_b) as http:
        assert (await http.get("/api/reports/time", params={"by": "task"})).json()["rows"] == []
        r = await http.get("/api/reports/time", params={"project": org.project})
        assert r.status_code == 403
    async with org.client(org.manager) as http:
        assert (await http.get("/api/reports/time", params={"by": "week"})).status_code == 400
