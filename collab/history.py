"""History services: a document at any version, restore, selective revert.

Both restore and revert are computed against the live room and written into
it as one new version through :meth:`Room.change`, so connected clients
receive them like any other update and history is never rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pycrdt import Doc

from collab.document.changes import apply_revert, make_equal, plan_revert
from collab.document.content import TouchRecorder, lookup, to_json
from collab.document.kind import Kinds
from collab.document.log import RoomKey
from collab.errors import NotFound, Unavailable, Unprocessable
from collab.store import oplog
from collab.store.database import Database
from collab.sync.registry import RoomRegistry


async def doc_at(pool: Database, kinds: Kinds, key: RoomKey, version: int) -> Doc:
    """The document as it was right after ``version`` (0: empty); ``kinds``
    declare its roots."""
    if version < 0:
        raise NotFound(f"no version {version}")
    async with pool.acquire() as conn:
        state = await oplog.load(conn, key, upto=version)
    if state.head < version:
        raise NotFound(f"{key.doc} of annotation {key.annotation_id} has no version {version}")
    doc = kinds[key.doc].new_doc(state.snapshot)
    for update in state.updates:
        doc.apply_update(update)
    return doc


@dataclass(frozen=True, slots=True)
class ChangeResult:
    version: int | None  # None: nothing had to change
    reverted: list[list[str]]
    kept: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "reverted": self.reverted, "kept": self.kept}


async def restore(
    pool: Database, rooms: RoomRegistry, key: RoomKey, version: int, author: int | None
) -> int | None:
    async with rooms.hold(key) as room:
        if version > room.version:
            raise NotFound(f"no version {version}; newest is {room.version}")
        await rooms.committer.flush()
        target = await doc_at(pool, rooms.kinds, key, version)
        await room.quiet()  # no await from here to the change
        return (
            room.change(
                lambda doc: make_equal(doc, target, room.kind), author, {"restore": version}
            )
            or None
        )


#: Catch-up rounds of revert read the log while writers go on, each what
#: arrived during the one before. A room written faster than that gets one
#: last round with its writes held (:meth:`Room.writes_held`): a short pause,
#: as it reads only the last round's arrivals. More rounds would only delay
#: the revert; the map it plans from is complete either way.
CATCH_UP_ROUNDS = 10


async def revert(
    pool: Database,
    rooms: RoomRegistry,
    key: RoomKey,
    version: int,
    author: int | None,
    *,
    rounds: int = CATCH_UP_ROUNDS,
) -> ChangeResult:
    """Undo only what ``version`` changed; entries changed again later are kept."""
    if version < 1:
        raise NotFound(f"no version {version}")
    async with rooms.hold(key) as room:
        if version > room.version:
            raise NotFound(f"no version {version}; newest is {room.version}")
        await rooms.committer.flush()
        base = await doc_at(pool, rooms.kinds, key, version - 1)
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            rows = [row async for row in oplog.iter_updates(conn, key, version, version)]
        if not rows:
            raise NotFound(f"no version {version}")
        before = to_json(base, room.kind)
        with TouchRecorder(base, room.kind) as recorder:
            base.apply_update(rows[0][1])
            # Old values come from the JSON taken before the apply: a deleted
            # nested map reads as empty inside the event.
            touched = {path: (lookup(before, path), None) for path in recorder.take_touches()}
        if not touched:
            raise Unprocessable(f"version {version} changed no entry that can be reverted")
        # Everything after ``version``: replay it on the document at ``version``
        # and note the first later version that touched each entry. The plan
        # needs all of it up to the version the change follows.
        later: dict[tuple[str, ...], int] = {}
        with TouchRecorder(base, room.kind) as recorder:

            async def read_after(seen: int) -> int:
                """Replay the stored versions after ``seen``; return the last one read."""
                await rooms.committer.flush()
                async with pool.acquire() as conn, conn.transaction(readonly=True):
                    async for info, data in oplog.iter_updates(conn, key, seen + 1, None):
                        base.apply_update(data)
                        for path in recorder.take_touches():
                            later.setdefault(path, info.version)
                        seen = info.version
                return seen

            seen = version
            for _ in range(rounds):
                await room.quiet()  # once caught up, no await until the change
                if seen >= room.version:
                    break
                seen = await read_after(seen)
            else:
                await room.quiet()
                if seen < room.version:
                    # Still behind: hold the writers, so the last round reaches
                    # the version the change will follow. The hold ends without
                    # an await: nothing lands between it and the change.
                    async with room.writes_held():
                        seen = await read_after(seen)
                        if seen < room.version:  # the log lacks versions the room has
                            raise Unavailable(
                                f"the stored log ends at version {seen}, the document is "
                                f"at {room.version}; retry"
                            )
        plan = plan_revert(touched, later)
        new_version = None
        if plan.revert:
            new_version = room.change(
                lambda doc: apply_revert(doc, plan, room.kind), author, {"revert": version}
            )
        return ChangeResult(
            version=new_version,
            reverted=[list(p) for p in sorted(plan.revert)],
            kept=[{"path": list(p), "changedIn": v} for p, v in sorted(plan.kept.items())],
        )
