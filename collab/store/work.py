"""Queries for people and work: teams, experiences, projects, task types,
tasks, task instances, the audit log, review comments and time tracking."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from collab.errors import BadState, Conflict, NotFound
from collab.work.specs import TaskSpec

INSTANCE_STATES = ("open", "in_progress", "finished", "accepted", "rejected", "cancelled")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# -- teams and people ---------------------------------------------------------


async def create_team(db: asyncpg.Connection, name: str) -> int:
    try:
        return int(await db.fetchval("INSERT INTO teams (name) VALUES ($1) RETURNING id", name))
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a team named {name!r} exists") from None


async def get_team(db: asyncpg.Connection, team_id: int) -> dict[str, Any]:
    row = await db.fetchrow("SELECT id, name, created_at FROM teams WHERE id = $1", team_id)
    if row is None:
        raise NotFound(f"no team {team_id}")
    members = await db.fetch(
        "SELECT u.id, u.name, u.roles FROM team_members m JOIN users u ON u.id = m.user_id "
        "WHERE m.team_id = $1 ORDER BY u.id",
        team_id,
    )
    return {
        "id": row["id"],
        "name": row["name"],
        "members": [{"id": m["id"], "name": m["name"], "roles": list(m["roles"])} for m in members],
    }


async def list_teams(db: asyncpg.Connection, only: Sequence[int] | None) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT id, name FROM teams WHERE $1::bigint[] IS NULL OR id = ANY($1) ORDER BY id",
        list(only) if only is not None else None,
    )
    return [dict(r) for r in rows]


async def missing_teams(db: asyncpg.Connection, team_ids: Sequence[int]) -> list[int]:
    found = {
        r["id"] for r in await db.fetch("SELECT id FROM teams WHERE id = ANY($1)", list(team_ids))
    }
    return [t for t in team_ids if t not in found]


async def user_teams(db: asyncpg.Connection, user_id: int) -> list[int]:
    rows = await db.fetch(
        "SELECT team_id FROM team_members WHERE user_id = $1 ORDER BY team_id", user_id
    )
    return [r["team_id"] for r in rows]


async def set_membership(db: asyncpg.Connection, user_id: int, team_ids: Sequence[int]) -> None:
    await db.execute("DELETE FROM team_members WHERE user_id = $1", user_id)
    await db.executemany(
        "INSERT INTO team_members (team_id, user_id) VALUES ($1, $2)",
        [(t, user_id) for t in sorted(set(team_ids))],
    )


async def experiences(db: asyncpg.Connection, user_id: int) -> dict[str, int]:
    rows = await db.fetch("SELECT domain, level FROM experiences WHERE user_id = $1", user_id)
    return {r["domain"]: r["level"] for r in rows}


async def set_experiences(db: asyncpg.Connection, user_id: int, levels: dict[str, int]) -> None:
    await db.execute("DELETE FROM experiences WHERE user_id = $1", user_id)
    await db.executemany(
        "INSERT INTO experiences (user_id, domain, level) VALUES ($1, $2, $3)",
        [(user_id, d, lvl) for d, lvl in sorted(levels.items())],
    )


# -- projects and task types -----------------------------------------------------


async def create_project(
    db: asyncpg.Connection,
    name: str,
    team_id: int,
    priority: int,
    paused: bool,
    expected_minutes: int | None,
    created_by: int | None,
) -> int:
    return int(
        await db.fetchval(
            "INSERT INTO projects (name, team_id, priority, paused, expected_minutes, created_by) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            name,
            team_id,
            priority,
            paused,
            expected_minutes,
            created_by,
        )
    )


async def project_row(db: asyncpg.Connection, project_id: int) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT id, name, team_id, priority, paused, expected_minutes, created_at "
        "FROM projects WHERE id = $1",
        project_id,
    )
    if row is None:
        raise NotFound(f"no project {project_id}")
    return row


async def get_project(db: asyncpg.Connection, project_id: int) -> dict[str, Any]:
    row = await project_row(db, project_id)
    counts = {state: 0 for state in INSTANCE_STATES}
    for r in await db.fetch(
        "SELECT state, count(*) AS n FROM task_instances WHERE project_id = $1 GROUP BY state",
        project_id,
    ):
        counts[r["state"]] = r["n"]
    tasks = await db.fetchval("SELECT count(*) FROM tasks WHERE project_id = $1", project_id)
    return {
        "id": row["id"],
        "name": row["name"],
        "team": row["team_id"],
        "priority": row["priority"],
        "paused": row["paused"],
        "expectedMinutes": row["expected_minutes"],
        "tasks": tasks,
        "instances": counts,
    }


async def update_project(
    db: asyncpg.Connection, project_id: int, paused: bool | None, priority: int | None
) -> None:
    """Change a project; the copies on its open instances follow in the same transaction."""
    await project_row(db, project_id)
    await db.execute(
        "UPDATE projects SET paused = coalesce($2, paused), priority = coalesce($3, priority) "
        "WHERE id = $1",
        project_id,
        paused,
        priority,
    )
    await db.execute(
        "UPDATE task_instances i SET paused = p.paused, priority = p.priority "
        "FROM projects p WHERE p.id = $1 AND i.project_id = p.id",
        project_id,
    )


async def list_projects(
    db: asyncpg.Connection, teams: Sequence[int] | None
) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT id, name, team_id, priority, paused, expected_minutes FROM projects "
        "WHERE $1::bigint[] IS NULL OR team_id = ANY($1) ORDER BY id",
        list(teams) if teams is not None else None,
    )
    return [
        {
            "id": r["id"],
            "name": r["name"],
            "team": r["team_id"],
            "priority": r["priority"],
            "paused": r["paused"],
            "expectedMinutes": r["expected_minutes"],
        }
        for r in rows
    ]


async def create_task_type(
    db: asyncpg.Connection,
    name: str,
    description: str,
    modes: list[str],
    settings: dict[str, Any],
    created_by: int | None,
) -> int:
    return int(
        await db.fetchval(
            "INSERT INTO task_types (name, description, modes, settings, created_by) "
            "VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING id",
            name,
            description,
            modes,
            _json(settings),
            created_by,
        )
    )


def _task_type(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "modes": list(row["modes"]),
        "settings": orjson.loads(row["settings"]),
    }


async def get_task_type(db: asyncpg.Connection, type_id: int) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT id, name, description, modes, settings FROM task_types WHERE id = $1", type_id
    )
    if row is None:
        raise NotFound(f"no task type {type_id}")
    return _task_type(row)


async def list_task_types(db: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every task type, by id (a manager picks one for new tasks)."""
    rows = await db.fetch(
        "SELECT id, name, description, modes, settings FROM task_types ORDER BY id"
    )
    return [_task_type(row) for row in rows]


# -- tasks ------------------------------------------------------------------------


async def create_tasks(
    db: asyncpg.Connection, specs: Sequence[TaskSpec], created_by: int | None
) -> list[int]:
    """Insert tasks and their instances (the caller's transaction), two statements."""
    if not specs:
        return []
    ids = await db.fetch(
        """INSERT INTO tasks (project_id, task_type_id, dataset, position, rotation, bounding_box,
                              base_annotation_id, experience_domain, experience_min, instances,
                              created_by)
           SELECT p, tt, ds, ARRAY[x, y, z], ARRAY[rx, ry, rz], bb::jsonb, base, dom, lvl, n, $11
           FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[],
                       $6::bigint[], $7::float8[], $8::float8[], $9::float8[], $10::text[],
                       $12::bigint[], $13::text[], $14::int[], $15::int[])
                AS s(p, tt, ds, x, y, z, rx, ry, rz, bb, base, dom, lvl, n)
           RETURNING id""",
        [s.project for s in specs],
        [s.task_type for s in specs],
        [s.dataset for s in specs],
        [s.position[0] for s in specs],
        [s.position[1] for s in specs],
        [s.position[2] for s in specs],
        [s.rotation[0] for s in specs],
        [s.rotation[1] for s in specs],
        [s.rotation[2] for s in specs],
        [_json(s.bounding_box) if s.bounding_box is not None else None for s in specs],
        created_by,
        [s.base_annotation for s in specs],
        [s.experience_domain for s in specs],
        [s.experience_min for s in specs],
        [s.instances for s in specs],
    )
    task_ids = [int(r["id"]) for r in ids]
    await db.execute(
        """INSERT INTO task_instances (task_id, project_id, team_id, priority, paused,
                                       experience_domain, experience_min)
           SELECT t.id, t.project_id, p.team_id, p.priority, p.paused,
                  t.experience_domain, t.experience_min
           FROM tasks t JOIN projects p ON p.id = t.project_id,
                generate_series(1, t.instances)
           WHERE t.id = ANY($1)
           ORDER BY t.id""",
        task_ids,
    )
    return task_ids


def _task_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "project": row["project_id"],
        "taskType": row["task_type_id"],
        "dataset": row["dataset"],
        "position": list(row["position"]),
        "rotation": list(row["rotation"]),
        "boundingBox": orjson.loads(row["bounding_box"]) if row["bounding_box"] else None,
        "baseAnnotation": row["base_annotation_id"],
        "experience": (
            {"domain": row["experience_domain"], "min": row["experience_min"]}
            if row["experience_domain"] is not None
            else None
        ),
        "instanceCount": row["instances"],
        "created": row["created_at"].isoformat(),
    }


_TASK_COLUMNS = (
    "id, project_id, task_type_id, dataset, position, rotation, bounding_box, "
    "base_annotation_id, experience_domain, experience_min, instances, created_at"
)


def _instance_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "task": row["task_id"],
        "state": row["state"],
        "annotator": row["annotator_id"],
        "annotation": row["annotation_id"],
        "assigned": row["assigned_at"].isoformat() if row["assigned_at"] else None,
        "finished": row["finished_at"].isoformat() if row["finished_at"] else None,
    }


_INSTANCE_COLUMNS = (
    "id, task_id, project_id, team_id, state, annotator_id, annotation_id, assigned_at, finished_at"
)


async def task_row(db: asyncpg.Connection, task_id: int) -> asyncpg.Record:
    row = await db.fetchrow(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = $1", task_id)
    if row is None:
        raise NotFound(f"no task {task_id}")
    return row


async def get_task(db: asyncpg.Connection, task_id: int) -> dict[str, Any]:
    row = await task_row(db, task_id)
    instances = await db.fetch(
        f"SELECT {_INSTANCE_COLUMNS} FROM task_instances WHERE task_id = $1 ORDER BY id", task_id
    )
    return {**_task_json(row), "instances": [_instance_json(i) for i in instances]}


async def list_tasks(
    db: asyncpg.Connection, project_id: int, limit: int, after: int | None
) -> list[dict[str, Any]]:
    rows = await db.fetch(
        f"SELECT {_TASK_COLUMNS} FROM tasks WHERE project_id = $1 AND id > coalesce($2, 0) "
        "ORDER BY id LIMIT $3",
        project_id,
        after,
        limit,
    )
    tasks = [_task_json(r) for r in rows]
    if tasks:
        counts: dict[int, dict[str, int]] = {}
        for r in await db.fetch(
            "SELECT task_id, state, count(*) AS n FROM task_instances "
            "WHERE task_id = ANY($1) GROUP BY task_id, state",
            [t["id"] for t in tasks],
        ):
            counts.setdefault(r["task_id"], {})[r["state"]] = r["n"]
        for t in tasks:
            t["states"] = counts.get(t["id"], {})
    return tasks


async def instance_row(
    db: asyncpg.Connection, instance_id: int, lock: bool = False
) -> asyncpg.Record:
    row = await db.fetchrow(
        f"SELECT {_INSTANCE_COLUMNS} FROM task_instances WHERE id = $1"
        + (" FOR UPDATE" if lock else ""),
        instance_id,
    )
    if row is None:
        raise NotFound(f"no task instance {instance_id}")
    return row


async def instance_of_annotation(
    db: asyncpg.Connection, annotation_id: int, lock: bool = False
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(
        f"SELECT {_INSTANCE_COLUMNS} FROM task_instances WHERE annotation_id = $1"
        + (" FOR UPDATE" if lock else ""),
        annotation_id,
    )
    return row


def instance_json(row: asyncpg.Record) -> dict[str, Any]:
    return _instance_json(row)


async def take_next(db: asyncpg.Connection, user_id: int) -> asyncpg.Record | None:
    """Pick, lock and start the user's best open instance in one statement
    (caller's transaction): the choice walks ``task_instances_next`` once per
    team of the user, in priority, task, instance order, skipping rows other
    transactions hold; then the annotation, its owner grant, the instance's new
    state, the holder row and the audit row are written by the same statement.
    Returns the instance's id, task, annotation and the task's base annotation.
    """
    row: asyncpg.Record | None = await db.fetchrow(
        """WITH pick AS (
               SELECT c.id, c.task_id FROM team_members m
               CROSS JOIN LATERAL (
                   SELECT i.id, i.task_id, i.priority FROM task_instances i
                   WHERE i.team_id = m.team_id AND i.state = 'open' AND NOT i.paused
                     AND (i.experience_domain IS NULL OR i.experience_min <= coalesce(
                          (SELECT e.level FROM experiences e
                           WHERE e.user_id = $1 AND e.domain = i.experience_domain), 0))
                     AND NOT EXISTS (SELECT 1 FROM task_holders h
                                     WHERE h.user_id = $1 AND h.task_id = i.task_id)
                   ORDER BY i.priority DESC, i.task_id, i.id
                   LIMIT 1
                   FOR UPDATE SKIP LOCKED
               ) c
               WHERE m.user_id = $1
               ORDER BY c.priority DESC, c.task_id, c.id
               LIMIT 1
           ),
           task AS (
               SELECT t.id, t.dataset, t.base_annotation_id FROM tasks t JOIN pick ON t.id = pick.task_id
           ),
           ann AS (
               INSERT INTO annotations (name, dataset, owner_id)
               SELECT 'task ' || task.id || ' / instance ' || pick.id, task.dataset, $1
               FROM pick, task
               RETURNING id
           ),
           grant_row AS (
               INSERT INTO annotation_grants (annotation_id, user_id, role, granted_by)
               SELECT ann.id, $1, 'owner', $1 FROM ann
           ),
           upd AS (
               UPDATE task_instances i
               SET state = 'in_progress', annotator_id = $1, annotation_id = ann.id,
                   assigned_at = now(), updated_at = now()
               FROM pick, ann WHERE i.id = pick.id
               RETURNING i.id, i.task_id, i.annotation_id
           ),
           holder AS (
               INSERT INTO task_holders (task_id, user_id) SELECT task_id, $1 FROM upd
               ON CONFLICT DO NOTHING
           ),
           audit_row AS (
               INSERT INTO audit_log (actor_id, entity, entity_id, action, from_state, to_state,
                                      details)
               SELECT $1, 'instance', upd.id, 'take', 'open', 'in_progress',
                      jsonb_build_object('annotator', $1, 'annotation', upd.annotation_id)
               FROM upd
           )
           SELECT upd.id, upd.task_id, upd.annotation_id, task.base_annotation_id
           FROM upd, task""",
        user_id,
    )
    return row


async def task_modes(db: asyncpg.Connection, annotation_id: int) -> list[str] | None:
    """The modes of the task type of a task's annotation (which documents it
    may change: each kind's ``modes``), or None when the annotation belongs
    to no task (no restriction)."""
    modes = await db.fetchval(
        "SELECT tt.modes FROM task_instances i JOIN tasks t ON t.id = i.task_id "
        "JOIN task_types tt ON tt.id = t.task_type_id WHERE i.annotation_id = $1",
        annotation_id,
    )
    return None if modes is None else list(modes)


async def record_holder(db: asyncpg.Connection, task_id: int, user_id: int) -> None:
    await db.execute(
        "INSERT INTO task_holders (task_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        task_id,
        user_id,
    )


async def held_before(db: asyncpg.Connection, task_id: int, user_id: int) -> bool:
    return bool(
        await db.fetchval(
            "SELECT 1 FROM task_holders WHERE task_id = $1 AND user_id = $2", task_id, user_id
        )
    )


async def set_instance(
    db: asyncpg.Connection,
    instance_id: int,
    state: str,
    annotator_id: int | None,
    annotation_id: int | None,
    assigned: bool = False,
    finished: bool = False,
) -> asyncpg.Record:
    row: asyncpg.Record = await db.fetchrow(
        f"""UPDATE task_instances SET state = $2, annotator_id = $3, annotation_id = $4,
                   assigned_at = CASE WHEN $5 THEN now() ELSE assigned_at END,
                   finished_at = CASE WHEN $6 THEN now() WHEN $2 = 'open' THEN NULL
                                      ELSE finished_at END,
                   updated_at = now()
            WHERE id = $1 RETURNING {_INSTANCE_COLUMNS}""",
        instance_id,
        state,
        annotator_id,
        annotation_id,
        assigned,
        finished,
    )
    return row


async def audit(
    db: asyncpg.Connection,
    actor_id: int | None,
    entity: str,
    entity_id: int,
    action: str,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    await db.execute(
        "INSERT INTO audit_log (actor_id, entity, entity_id, action, from_state, to_state, "
        "reason, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)",
        actor_id,
        entity,
        entity_id,
        action,
        from_state,
        to_state,
        reason,
        _json(details or {}),
    )


async def audit_trail(db: asyncpg.Connection, entity: str, entity_id: int) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT at, actor_id, action, from_state, to_state, reason, details FROM audit_log "
        "WHERE entity = $1 AND entity_id = $2 ORDER BY id",
        entity,
        entity_id,
    )
    return [
        {
            "time": r["at"].isoformat(),
            "actor": r["actor_id"],
            "action": r["action"],
            "from": r["from_state"],
            "to": r["to_state"],
            "reason": r["reason"],
            "details": orjson.loads(r["details"]),
        }
        for r in rows
    ]


async def add_comment(
    db: asyncpg.Connection,
    annotation_id: int,
    author_id: int | None,
    text: str,
    position: list[int] | None,
) -> dict[str, Any]:
    row = await db.fetchrow(
        "INSERT INTO review_comments (annotation_id, author_id, text, position) "
        "VALUES ($1, $2, $3, $4) RETURNING id, created_at",
        annotation_id,
        author_id,
        text,
        position,
    )
    return {
        "id": row["id"],
        "author": author_id,
        "text": text,
        "position": position,
        "time": row["created_at"].isoformat(),
    }


async def comments(db: asyncpg.Connection, annotation_id: int) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT id, author_id, text, position, created_at FROM review_comments "
        "WHERE annotation_id = $1 ORDER BY id",
        annotation_id,
    )
    return [
        {
            "id": r["id"],
            "author": r["author_id"],
            "text": r["text"],
            "position": list(r["position"]) if r["position"] else None,
            "time": r["created_at"].isoformat(),
        }
        for r in rows
    ]


async def check_refs(
    db: asyncpg.Connection, specs: Sequence[TaskSpec]
) -> tuple[dict[int, int], set[int], set[str], set[int]]:
    """Existing projects (id → team), task types, datasets and base annotations named by ``specs``."""
    projects = {
        r["id"]: r["team_id"]
        for r in await db.fetch(
            "SELECT id, team_id FROM projects WHERE id = ANY($1)", list({s.project for s in specs})
        )
    }
    types = {
        r["id"]
        for r in await db.fetch(
            "SELECT id FROM task_types WHERE id = ANY($1)", list({s.task_type for s in specs})
        )
    }
    names = list({s.dataset for s in specs if s.dataset is not None})
    datasets = {
        r["name"] for r in await db.fetch("SELECT name FROM datasets WHERE name = ANY($1)", names)
    }
    bases = list({s.base_annotation for s in specs if s.base_annotation is not None})
    annotations = {
        r["id"] for r in await db.fetch("SELECT id FROM annotations WHERE id = ANY($1)", bases)
    }
    return projects, types, datasets, annotations


async def dataset_boxes(db: asyncpg.Connection, names: Sequence[str]) -> dict[str, list[Any]]:
    """Each dataset's layer bounding boxes from its stored metadata."""
    out: dict[str, list[Any]] = {}
    for r in await db.fetch(
        "SELECT name, metadata FROM datasets WHERE name = ANY($1)", list(names)
    ):
        meta = orjson.loads(r["metadata"])
        out[r["name"]] = [layer["boundingBox"] for layer in meta.get("layers", [])]
    return out


def ensure_state(row: asyncpg.Record, allowed: Sequence[str], action: str) -> None:
    if row["state"] not in allowed:
        raise BadState(
            f"cannot {action} a task instance that is {row['state']} (needs {' or '.join(allowed)})"
        )


# -- time tracking ------------------------------------------------------------------

TIME_GROUPS = {
    "user": ("ev.author_id",),
    "annotation": ("ev.annotation_id", "ev.author_id"),
    "task": ("i.task_id",),
    "project": ("i.project_id",),
    "day": ("(ev.created_at AT TIME ZONE 'UTC')::date", "ev.author_id"),
}
TIME_COLUMNS = {
    "user": ("user",),
    "annotation": ("annotation", "user"),
    "task": ("task",),
    "project": ("project",),
    "day": ("day", "user"),
}


async def time_report(
    db: asyncpg.Connection,
    by: str,
    idle_seconds: float,
    user: int | None = None,
    project: int | None = None,
    task: int | None = None,
    teams: Sequence[int] | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Active editing time from the operation log.

    For each (user, annotation), updates are ordered by time; the gap before an
    update counts when it is at most ``idle_seconds`` (a longer pause is a
    break: the update after it starts a new stretch and adds nothing). Server
    repairs (no author) never count. ``teams`` limits rows to annotations of
    those teams' tasks (managers); None means no limit.
    """
    groups = TIME_GROUPS[by]
    task_only = (
        by in ("task", "project") or project is not None or task is not None or teams is not None
    )
    rows = await db.fetch(
        f"""WITH ev AS (
                SELECT u.annotation_id, u.author_id, u.created_at,
                       extract(epoch FROM u.created_at - lag(u.created_at) OVER (
                           PARTITION BY u.author_id, u.annotation_id ORDER BY u.created_at, u.version
                       )) AS gap
                FROM doc_updates u
                WHERE u.author_id IS NOT NULL
                  AND ($1::bigint IS NULL OR u.author_id = $1)
                  AND ($4::timestamptz IS NULL OR u.created_at >= $4)
                  AND ($5::timestamptz IS NULL OR u.created_at < $5)
            )
            SELECT {", ".join(f"{g} AS k{n}" for n, g in enumerate(groups))},
                   sum(CASE WHEN ev.gap <= $3 THEN ev.gap ELSE 0 END)::float8 AS seconds,
                   count(*) AS updates
            FROM ev {"JOIN" if task_only else "LEFT JOIN"} task_instances i
                 ON i.annotation_id = ev.annotation_id
            WHERE ($2::bigint IS NULL OR i.project_id = $2)
              AND ($6::bigint IS NULL OR i.task_id = $6)
              AND ($7::bigint[] IS NULL OR i.team_id = ANY($7))
            GROUP BY {", ".join(f"k{n}" for n in range(len(groups)))}
            ORDER BY {", ".join(f"k{n}" for n in range(len(groups)))}""",
        user,
        project,
        float(idle_seconds),
        since,
        until,
        task,
        list(teams) if teams is not None else None,
    )
    names = TIME_COLUMNS[by]
    out = []
    for r in rows:
        item: dict[str, Any] = {}
        for n, name in enumerate(names):
            value = r[f"k{n}"]
            item[name] = value.isoformat() if isinstance(value, dt.date) else value
        item["seconds"] = round(r["seconds"] or 0.0, 3)
        item["updates"] = r["updates"]
        out.append(item)
    return out


async def task_of_annotation(db: asyncpg.Connection, annotation_id: int) -> dict[str, Any] | None:
    """The task instance an annotation belongs to (its id, task, state), if any."""
    row = await db.fetchrow(
        "SELECT id, task_id, state FROM task_instances WHERE annotation_id = $1", annotation_id
    )
    if row is None:
        return None
    return {"instance": row["id"], "task": row["task_id"], "state": row["state"]}
