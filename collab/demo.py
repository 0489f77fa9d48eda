"""``collab demo``: the demo dataset, a demo user and annotation, created once, then served.

The demo project and tasks arrive with the task issue.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import orjson
from pycrdt import Doc

from collab.config import Settings
from collab.document.log import RoomKey
from collab.http.common import Services
from collab.skeleton.model import Skeleton
from collab.store import datasets as dataset_rows
from collab.store import identity, work
from collab.store.database import Connection
from collab.work.specs import TaskSpec

DATASET = "demo"


def dataset_dir(settings: Settings) -> Path:
    return settings.data_dir / "datasets" / DATASET


def ensure_dataset(settings: Settings, size: int = 512) -> Path:
    """Generate the synthetic dataset unless a finished one is there."""
    from collab.volume.demo_data import FORMAT, generate

    root = dataset_dir(settings)
    if (root / "datasource-properties.json").exists() and _format(root) >= FORMAT:
        return root

    print(f"collab demo: creating the demo dataset ({size}³ voxels, once) in {root}", flush=True)
    generate(root, size, log=lambda text: print(f"  {text}", file=sys.stderr, flush=True))
    return root


def _format(root: Path) -> int:
    """The format of a generated dataset (demo_data.FORMAT; 1 before it was kept)."""
    try:
        found = orjson.loads((root / "demo.json").read_bytes()).get("format", 1)
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return 1
    return found if isinstance(found, int) else 1


async def register_dataset(svc: Services) -> None:
    root = dataset_dir(svc.settings)
    async with svc.pool.acquire() as db:
        known = await dataset_rows.exists(db, DATASET)
    if not known and (root / "datasource-properties.json").exists():
        await svc.volumes.register_location(DATASET, str(root.resolve()), None)


async def _demo_work(db: Connection, user_id: int, has_dataset: bool, root: Path) -> dict[str, int]:
    """A team with the demo user, a proofreading project and one task per
    synapse of the demo dataset (the first 20), two instances each."""
    team = await work.create_team(db, "demo lab")
    await work.set_membership(db, user_id, [team])
    await work.set_experiences(db, user_id, {"proofreading": 1, "tracing": 1})
    await db.execute(
        "UPDATE users SET roles = $2 WHERE id = $1", user_id, ["annotator", "reviewer"]
    )
    project = await work.create_project(db, "demo: synapse proofreading", team, 1, False, 10, None)
    task_type = await work.create_task_type(
        db,
        "check a synapse",
        "Trace the pre- and post-synaptic neurites from the synapse at the task position "
        "and fix merge and split errors of the with_errors mapping.",
        ["skeleton", "proofreading"],
        {"mapping": "with_errors", "allowedMags": ["1", "2", "4", "8"]},
        None,
    )
    positions: list[tuple[int, int, int]] = [(256, 256, 256)]
    synapses_file = root / "synapses.json"
    if has_dataset and synapses_file.exists():
        found = orjson.loads(synapses_file.read_bytes()).get("synapses", [])
        positions = [tuple(s["position"]) for s in found[:20]] or positions
    specs = [
        TaskSpec(
            project, task_type, DATASET if has_dataset else None, (p[0], p[1], p[2]), instances=2
        )
        for p in positions
    ]
    await work.create_tasks(db, specs, None)
    return {"team": team, "project": project}


#: Where the demo's traced neurite starts (mag-1 voxels), and the page opens.
TRACE_START = (256, 256, 256)


def _trace(doc: Doc) -> None:
    """A small traced neurite: a main path of 24 nodes through a few slices,
    a side branch, a branchpoint and a comment, so the first view shows
    something to continue."""
    sk = Skeleton(doc)
    sk.create_tree("demo-1", name="neurite 1", color=[0.9, 0.4, 0.2, 1.0])
    x, y, z = TRACE_START
    previous = None
    for k in range(24):
        node = f"demo-n{k}"
        sk.add_node("demo-1", [x + 6 * k, y + round(12 * math.sin(k / 4)), z + k // 6], node,
                    radius=2.0, connect_to=previous)  # fmt: skip
        previous = node
    sk.set_branchpoint("demo-n10", 1_700_000_000_000)
    previous = "demo-n10"
    for k in range(8):
        node = f"demo-b{k}"
        sk.add_node("demo-1", [x + 60 + 3 * k, y + 8 + 7 * k, z + 1], node, connect_to=previous)
        previous = node
    sk.set_comment("demo-n0", "soma side")


async def prepare(svc: Services) -> None:
    settings = svc.settings
    traced = False
    await register_dataset(svc)
    async with svc.pool.acquire() as db, db.transaction():
        await db.execute("SELECT pg_advisory_xact_lock(7302)")
        raw = await db.fetchval("SELECT value FROM server_settings WHERE key = 'demo'")
        has_dataset = await dataset_rows.exists(db, DATASET)
        if raw is None:
            user_id = await identity.create_user(db, "demo", "demo@example.org", ["annotator"])
            annotation_id = await identity.create_annotation(
                db, "demo annotation", DATASET if has_dataset else None, user_id
            )
            state = {"user": user_id, "annotation": annotation_id}
            traced = True
        else:
            old = orjson.loads(raw)
            state = {k: old[k] for k in ("user", "annotation", "team", "project") if k in old}
            if has_dataset:
                await db.execute(
                    "UPDATE annotations SET dataset = $1 WHERE id = $2 AND dataset IS NULL",
                    DATASET,
                    state["annotation"],
                )
        if "project" not in state:
            state.update(await _demo_work(db, state["user"], has_dataset, dataset_dir(settings)))
        # Tokens are stored hashed only: each start revokes the last demo
        # token and prints a new one.
        await identity.revoke_labelled(db, state["user"], "demo")
        _, token = await identity.create_token(db, user_id=state["user"], label="demo")
        await db.execute(
            "INSERT INTO server_settings (key, value) VALUES ('demo', $1) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            orjson.dumps(state).decode(),
        )
    if traced:  # the first start: the demo annotation gets a traced neurite
        async with svc.rooms.hold(RoomKey(state["annotation"], "skeleton")) as room:
            room.change(_trace, state["user"], {"demo": "traced neurite"})
    shown: dict[str, object] = {**state, "token": token}
    base = f"http://{settings.host}:{settings.port}"
    ws = f"ws://{settings.host}:{settings.port}"
    print(
        "\ncollab demo is running\n"
        f"  open in a browser: {base}/annotations/{shown['annotation']}?token={shown['token']}"
        f"&pos={','.join(map(str, TRACE_START))}\n"
        "  (signed in as the demo user, an annotator; the admin's token is the one the\n"
        "   server printed at its first start, or COLLAB_ADMIN_TOKEN)\n"
        f"  server:          {base}/healthz\n"
        f"  demo token:      {shown['token']}\n"
        f"  annotation:      {base}/api/annotations/{shown['annotation']}\n"
        f"  sync (Yjs):      {ws}/sync/{shown['annotation']}/skeleton?token={shown['token']}\n"
        f"  dataset:         {base}/api/datasets/{DATASET}\n"
        f"  tasks:           POST {base}/api/tasks/next (project {shown['project']})\n"
        f"  bricks (binary): {ws}/data/{DATASET}/color?token={shown['token']}\n",
        flush=True,
    )
