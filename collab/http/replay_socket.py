"""``ws /replay/{annotation_id}/{doc}?from=&to=&speed=``: watch a document grow.

Text frames carry JSON metadata; each version's update follows its metadata
as one binary y-protocol sync-update frame, so a stock Y.Doc can apply it.
See docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from starlette.websockets import WebSocket

from collab.auth import Access
from collab.document.log import RoomKey
from collab.errors import BadRequest, CollabError, Forbidden
from collab.history import doc_at
from collab.http.common import bearer, path_int, services
from collab.http.sync_socket import close_reason
from collab.http.throttle import admit
from collab.store import identity, oplog
from collab.sync import messages as m

PAGE = 500


def _speed(raw: str | None) -> float:
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"?speed must be a number, got {raw!r}") from None
    if not 0 <= value <= 1_000_000:
        raise BadRequest("?speed must be between 0 (as fast as possible) and 1e6")
    return value


def _int(ws: WebSocket, name: str) -> int | None:
    raw = ws.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        raise BadRequest(f"?{name} must be a non-negative integer")
    return int(raw)


async def replay_endpoint(ws: WebSocket) -> None:
    svc = services(ws)
    await ws.accept()
    try:
        admit(ws)
        annotation_id = path_int(ws, "annotation_id")
        kind = svc.kinds.parse(ws.path_params["doc"]).name
        async with svc.pool.acquire() as db:
            who = await identity.authenticate(db, bearer(ws))
            if await identity.access_to(db, who, annotation_id) < Access.READ:
                raise Forbidden(f"no access to annotation {annotation_id}")
        key = RoomKey(annotation_id, kind)
        await svc.rooms.committer.flush()
        async with svc.pool.acquire() as db:
            head = await oplog.head(db, key)
        first = max(1, _int(ws, "from") or 1)
        last = min(head, _int(ws, "to") or head)
        speed = _speed(ws.query_params.get("speed"))
    except CollabError as exc:
        await ws.close(exc.close_code, close_reason(exc.message))
        return

    await ws.send_text(
        orjson.dumps(
            {"type": "start", "from": first, "to": last, "head": head, "speed": speed}
        ).decode()
    )
    if first > 1:
        base = await doc_at(svc.pool, svc.kinds, key, first - 1)
        await ws.send_text(orjson.dumps({"type": "base", "version": first - 1}).decode())
        await ws.send_bytes(m.pack_sync_step2(base.get_update()))
    max_gap = svc.settings.replay_max_gap_seconds
    previous: float | None = None
    cursor = first
    while cursor <= last:
        # Read a page, release the connection, then send it (never hold a
        # database connection while awaiting a socket).
        async with svc.pool.acquire() as db, db.transaction(readonly=True):
            page = []
            async for item in oplog.iter_updates(db, key, cursor, min(last, cursor + PAGE - 1)):
                page.append(item)
        if not page:
            break
        for info, data in page:
            stamp = info.time.timestamp()
            if speed > 0 and previous is not None:
                await asyncio.sleep(min(max(stamp - previous, 0) / speed, max_gap))
            previous = stamp
            await ws.send_text(orjson.dumps({"type": "version", **info.to_json()}).decode())
            await ws.send_bytes(m.pack_update(data))
        cursor = page[-1][0].version + 1
    await ws.send_text(
        orjson.dumps({"type": "end", "version": min(last, cursor - 1), "at": time.time()}).decode()
    )
    await ws.close(1000, "replay complete")
