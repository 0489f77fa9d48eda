"""The life of a task instance, each step one transaction with its audit row.

open ──next/assign──▶ in_progress ──finish──▶ finished ──review──▶ accepted
  ▲                      │  ▲                    │
  │ reset                │  └──── finish ◀── rejected ◀──┘ (reason to the annotator)
  └──────────────────────┴── cancel ──▶ cancelled (from open or in_progress)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from pycrdt import merge_updates

from collab.auth import Principal
from collab.document.kind import Kinds
from collab.document.log import RoomKey, UpdateRecord
from collab.errors import Forbidden, NoTask, NotFound, Unprocessable
from collab.store import identity, oplog, work
from collab.store import proofreading as proofreading_ops
from collab.store.database import Connection, Database, Record
from collab.work.access import Actor


async def _copy_base(db: Connection, base: int, target: int, kinds: Kinds) -> None:
    """The base annotation's stored documents become version 1 of ``target``
    (a kind that ``keeps_order``: its versions 1…n, as they were), each
    version's summary naming the base in ``copiedFrom``. The segmentation's
    ``import`` ops name the base's uploads: the copy shares them through
    that summary (collab/store/uploads.py, ``get``), bricks not duplicated;
    its ``pr-<seq>`` ops mean the base's proofreading ops, copied."""
    await proofreading_ops.copy(db, base, target)
    for kind in await oplog.stored_docs(db, base):
        if kind in kinds and kinds[kind].keeps_order:
            records = [
                UpdateRecord(
                    RoomKey(target, kind),
                    info.version,
                    None,
                    time.time(),
                    orjson.dumps({"copiedFrom": base, "version": info.version}),
                    data,
                )
                async for info, data in oplog.iter_updates(db, RoomKey(base, kind), 1, 2**31 - 1)
            ]
            if records:
                await oplog.append(db, records)
            continue
        stored = await oplog.load_in(db, RoomKey(base, kind))
        parts = ([stored.snapshot] if stored.snapshot else []) + list(stored.updates)
        if not parts:
            continue
        merged = await asyncio.to_thread(merge_updates, *parts) if len(parts) > 1 else parts[0]
        summary = orjson.dumps({"copiedFrom": base, "version": stored.head})
        await oplog.append(
            db, [UpdateRecord(RoomKey(target, kind), 1, None, time.time(), summary, merged)]
        )


async def _start(
    db: Connection, row: Record, annotator: int, actor_id: int | None, action: str, kinds: Kinds
) -> Record:
    task = await work.task_row(db, row["task_id"])
    annotation = await identity.create_annotation(
        db, f"task {task['id']} / instance {row['id']}", task["dataset"], annotator
    )
    if task["base_annotation_id"] is not None:
        await _copy_base(db, task["base_annotation_id"], annotation, kinds)
    updated = await work.set_instance(
        db, row["id"], "in_progress", annotator, annotation, assigned=True
    )
    await work.record_holder(db, row["task_id"], annotator)
    await work.audit(
        db,
        actor_id,
        "instance",
        row["id"],
        action,
        row["state"],
        "in_progress",
        details={"annotator": annotator, "annotation": annotation},
    )
    return updated


async def take_next(pool: Database, principal: Principal, kinds: Kinds) -> dict[str, Any]:
    """``POST /api/tasks/next``: one statement picks, locks and starts the
    instance (store.work.take_next); a base annotation is copied in the same
    transaction."""
    if principal.is_link or principal.user_id is None:
        raise Forbidden("a sharing link cannot take tasks")
    if "annotator" not in principal.roles:
        raise Forbidden("tasks/next needs the annotator role")
    user = principal.user_id
    async with pool.acquire() as db, db.transaction():
        row = await work.take_next(db, user)
        if row is None:
            raise NoTask("no open task instance fits you (team, experience, not done before)")
        if row["base_annotation_id"] is not None:
            await _copy_base(db, row["base_annotation_id"], row["annotation_id"], kinds)
    return {"task": row["task_id"], "instance": row["id"], "annotation": row["annotation_id"]}


async def assign(
    pool: Database, actor: Actor, instance_id: int, user: int, kinds: Kinds
) -> dict[str, Any]:
    """A manager hands an open instance to a user, or moves an in-progress one to another."""
    async with pool.acquire() as db, db.transaction():
        row = await work.instance_row(db, instance_id, lock=True)
        actor.require_manager_of(row["team_id"], "assigning")
        if user not in await _members(db, row["team_id"]):
            raise Unprocessable(f"user {user} is not in team {row['team_id']}")
        held = await db.fetchval(
            "SELECT 1 FROM task_instances WHERE task_id = $1 AND annotator_id = $2 AND id <> $3",
            row["task_id"],
            user,
            instance_id,
        )
        if held:
            raise Unprocessable(f"user {user} already held an instance of task {row['task_id']}")
        if row["state"] == "open":
            updated = await _start(db, row, user, actor.user_id, "assign", kinds)
        else:
            work.ensure_state(row, ("in_progress", "rejected"), "reassign")
            annotation = row["annotation_id"]
            await db.execute(
                "DELETE FROM annotation_grants WHERE annotation_id = $1 AND user_id = $2",
                annotation,
                row["annotator_id"],
            )
            await db.execute(
                "INSERT INTO annotation_grants (annotation_id, user_id, role, granted_by) "
                "VALUES ($1, $2, 'owner', $3) ON CONFLICT (annotation_id, user_id) "
                "DO UPDATE SET role = 'owner'",
                annotation,
                user,
                actor.user_id,
            )
            await db.execute("UPDATE annotations SET owner_id = $2 WHERE id = $1", annotation, user)
            updated = await work.set_instance(db, instance_id, row["state"], user, annotation)
            await work.record_holder(db, row["task_id"], user)
            await work.audit(
                db,
                actor.user_id,
                "instance",
                instance_id,
                "reassign",
                row["state"],
                row["state"],
                details={"from": row["annotator_id"], "to": user},
            )
    return work.instance_json(updated)


async def _members(db: Connection, team: int) -> set[int]:
    rows = await db.fetch("SELECT user_id FROM team_members WHERE team_id = $1", team)
    return {r["user_id"] for r in rows}


async def cancel(
    pool: Database, actor: Actor, instance_id: int, reason: str | None
) -> dict[str, Any]:
    async with pool.acquire() as db, db.transaction():
        row = await work.instance_row(db, instance_id, lock=True)
        actor.require_manager_of(row["team_id"], "cancelling")
        work.ensure_state(row, ("open", "in_progress", "rejected"), "cancel")
        updated = await work.set_instance(
            db, instance_id, "cancelled", row["annotator_id"], row["annotation_id"]
        )
        await work.audit(
            db, actor.user_id, "instance", instance_id, "cancel", row["state"], "cancelled", reason
        )
    return work.instance_json(updated)


async def reset(
    pool: Database, actor: Actor, instance_id: int, reason: str | None
) -> dict[str, Any]:
    """Back to open for someone else; the old annotation stays (listed in the audit row)."""
    async with pool.acquire() as db, db.transaction():
        row = await work.instance_row(db, instance_id, lock=True)
        actor.require_manager_of(row["team_id"], "resetting")
        work.ensure_state(row, ("in_progress", "finished", "rejected", "cancelled"), "reset")
        updated = await work.set_instance(db, instance_id, "open", None, None)
        await work.audit(
            db,
            actor.user_id,
            "instance",
            instance_id,
            "reset",
            row["state"],
            "open",
            reason,
            details={"annotator": row["annotator_id"], "annotation": row["annotation_id"]},
        )
    return work.instance_json(updated)


async def _locked_instance_of(db: Connection, annotation_id: int) -> Record:
    """The task instance of an annotation, locked; 404 when there is none."""
    row = await work.instance_of_annotation(db, annotation_id, lock=True)
    if row is None:
        await identity.get_annotation(db, annotation_id)  # 404 when it does not exist
        raise NotFound(f"annotation {annotation_id} belongs to no task")
    return row


async def finish(pool: Database, actor: Actor, annotation_id: int) -> dict[str, Any]:
    async with pool.acquire() as db, db.transaction():
        row = await _locked_instance_of(db, annotation_id)
        if actor.user_id is None or row["annotator_id"] != actor.user_id:
            raise Forbidden("only the instance's annotator finishes it")
        work.ensure_state(row, ("in_progress", "rejected"), "finish")
        updated = await work.set_instance(
            db, row["id"], "finished", row["annotator_id"], annotation_id, finished=True
        )
        await work.audit(
            db, actor.user_id, "instance", row["id"], "finish", row["state"], "finished"
        )
    return work.instance_json(updated)


async def review(
    pool: Database, actor: Actor, annotation_id: int, decision: str, reason: str | None
) -> dict[str, Any]:
    async with pool.acquire() as db, db.transaction():
        row = await _locked_instance_of(db, annotation_id)
        if not actor.reviews(row["team_id"]):
            raise Forbidden(f"reviewing needs a reviewer of team {row['team_id']}")
        if (
            actor.user_id is not None
            and actor.user_id == row["annotator_id"]
            and not actor.is_admin
        ):
            raise Forbidden("nobody reviews their own work")
        work.ensure_state(row, ("finished",), "review")
        state = "accepted" if decision == "accept" else "rejected"
        updated = await work.set_instance(db, row["id"], state, row["annotator_id"], annotation_id)
        await work.audit(
            db, actor.user_id, "instance", row["id"], decision, "finished", state, reason
        )
        if reason:
            await work.add_comment(db, annotation_id, actor.user_id, f"[{state}] {reason}", None)
    return work.instance_json(updated)
