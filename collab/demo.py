"""``collab demo``: a demo user and annotation, created once, then served.

The demo dataset, project and tasks arrive with the volume and task issues.
"""

from __future__ import annotations

import orjson

from collab.http.common import Services
from collab.store import identity


async def prepare(svc: Services) -> None:
    settings = svc.settings
    async with svc.pool.acquire() as db, db.transaction():
        await db.execute("SELECT pg_advisory_xact_lock(7302)")
        raw = await db.fetchval("SELECT value FROM server_settings WHERE key = 'demo'")
        if raw is None:
            user_id = await identity.create_user(db, "demo", "demo@example.org", ["annotator"])
            annotation_id = await identity.create_annotation(db, "demo annotation", None, user_id)
            _, token = await identity.create_token(db, user_id=user_id, label="demo")
            state = {"user": user_id, "annotation": annotation_id, "token": token}
            await db.execute(
                "INSERT INTO server_settings (key, value) VALUES ('demo', $1)",
                orjson.dumps(state).decode(),
            )
        else:
            state = orjson.loads(raw)
    base = f"http://{settings.host}:{settings.port}"
    ws = f"ws://{settings.host}:{settings.port}"
    print(
        "\ncollab demo is running\n"
        f"  server:          {base}/healthz\n"
        f"  demo token:      {state['token']}\n"
        f"  annotation:      {base}/api/annotations/{state['annotation']}\n"
        f"  sync (Yjs):      {ws}/sync/{state['annotation']}/skeleton?token={state['token']}\n",
        flush=True,
    )
