"""``collab demo``: the demo dataset, a demo user and annotation, created once, then served.

The demo project and tasks arrive with the task issue.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from collab.config import Settings
from collab.http.common import Services
from collab.store import datasets as dataset_rows
from collab.store import identity

DATASET = "demo"


def dataset_dir(settings: Settings) -> Path:
    return settings.data_dir / "datasets" / DATASET


def ensure_dataset(settings: Settings, size: int = 512) -> Path:
    """Generate the synthetic dataset unless a finished one is there."""
    root = dataset_dir(settings)
    if (root / "datasource-properties.json").exists():
        return root
    from collab.volume.demo_data import generate

    print(f"collab demo: creating the demo dataset ({size}³ voxels, once) in {root}", flush=True)
    generate(root, size, log=lambda text: print(f"  {text}", file=sys.stderr, flush=True))
    return root


async def register_dataset(svc: Services) -> None:
    root = dataset_dir(svc.settings)
    async with svc.pool.acquire() as db:
        known = await dataset_rows.exists(db, DATASET)
    if not known and (root / "datasource-properties.json").exists():
        await svc.volumes.register_location(DATASET, str(root.resolve()), None)


async def prepare(svc: Services) -> None:
    settings = svc.settings
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
        else:
            old = orjson.loads(raw)
            state = {"user": old["user"], "annotation": old["annotation"]}
            if has_dataset:
                await db.execute(
                    "UPDATE annotations SET dataset = $1 WHERE id = $2 AND dataset IS NULL",
                    DATASET,
                    state["annotation"],
                )
        # Tokens are stored hashed only: each start revokes the last demo
        # token and prints a new one.
        await identity.revoke_labelled(db, state["user"], "demo")
        _, token = await identity.create_token(db, user_id=state["user"], label="demo")
        await db.execute(
            "INSERT INTO server_settings (key, value) VALUES ('demo', $1) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            orjson.dumps(state).decode(),
        )
    shown: dict[str, object] = {**state, "token": token}
    base = f"http://{settings.host}:{settings.port}"
    ws = f"ws://{settings.host}:{settings.port}"
    print(
        "\ncollab demo is running\n"
        f"  server:          {base}/healthz\n"
        f"  demo token:      {shown['token']}\n"
        f"  annotation:      {base}/api/annotations/{shown['annotation']}\n"
        f"  sync (Yjs):      {ws}/sync/{shown['annotation']}/skeleton?token={shown['token']}\n"
        f"  dataset:         {base}/api/datasets/{DATASET}\n"
        f"  bricks (binary): {ws}/data/{DATASET}/color?token={shown['token']}\n",
        flush=True,
    )
