"""Tasks from the page: next task, finish, review (client/e2e/task.mjs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import run_e2e
from tests.conftest import LiveServer
from tests.work.helpers import make_org

pytestmark = pytest.mark.timeout(300)


async def test_next_task_finish_and_reject(live: LiveServer, built_client: Path) -> None:
    org = await make_org(live)
    r = await org.tasks(
        {"project": org.project, "taskType": org.task_type, "position": [10, 20, 30]}
    )
    assert r.status_code == 201, r.text
    seen = await run_e2e("task.mjs", live.url, org.annotator.token, org.reviewer.token)
    assert seen["stateBefore"] == "in progress" and seen["stateAfterFinish"] == "finished", seen
    assert seen["reviewerNodes"] == 1 and seen["stateAfterReview"] == "rejected", seen
    async with org.client(org.annotator) as http:
        info = (await http.get(f"/api/annotations/{seen['annotation']}")).json()
        comments = (await http.get(f"/api/annotations/{seen['annotation']}/comments")).json()
    assert info["task"]["state"] == "rejected"
    assert "the axon continues to the north" in str(comments)


async def test_manager_assigns_from_the_dashboard(live: LiveServer, built_client: Path) -> None:
    org = await make_org(live)
    r = await org.tasks({"project": org.project, "taskType": org.task_type, "position": [1, 2, 3]})
    assert r.status_code == 201, r.text
    task_id = r.json()["ids"][0]
    seen = await run_e2e(
        "manager.mjs", live.url, org.manager.token, str(org.project), str(org.annotator.id)
    )
    assert "open 1" in seen["summary"] and seen["before"] == "open", seen
    assert seen["after"] == "in progress"
    async with org.client(org.manager) as http:
        (instance,) = (await http.get(f"/api/tasks/{task_id}")).json()["instances"]
    assert instance["state"] == "in_progress" and instance["annotator"] == org.annotator.id
    assert seen["taskTypes"] == ["trace (skeleton)", "paint (skeleton)"], seen
    assert str(seen["created"]).startswith("task "), seen
    async with org.client(org.manager) as http:
        tasks = (await http.get(f"/api/tasks?project={org.project}")).json()["tasks"]
    made = [t for t in tasks if t["position"] == [5, 6, 7]]
    assert len(made) == 1 and made[0]["states"]["open"] == 2, tasks
